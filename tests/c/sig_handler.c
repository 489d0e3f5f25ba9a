// Signal handlers in one process: raise() to a handler with SA_SIGINFO, masks while
// the handler runs, SA_RESETHAND, SA_NODEFER, sigprocmask + sigpending, the alternate
// stack, and a SIGSEGV handler that recovers with siglongjmp.
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static volatile int got, got_code, blocked_in_handler, on_alt;
static char altstack[65536];
static sigjmp_buf env;

static void h_info(int sig, siginfo_t *si, void *uc) {
    (void)uc;
    got = sig;
    got_code = si->si_code;
    sigset_t cur;
    sigprocmask(SIG_BLOCK, NULL, &cur);
    blocked_in_handler = sigismember(&cur, sig) + 2 * sigismember(&cur, SIGUSR2);
}
static void h_alt(int sig) {
    (void)sig;
    char x;
    on_alt = ((uintptr_t)&x >= (uintptr_t)altstack && (uintptr_t)&x < (uintptr_t)altstack + sizeof altstack);
}
static void h_segv(int sig, siginfo_t *si, void *uc) {
    (void)uc;
    got = sig;
    got_code = si->si_addr == (void *)0x10 ? 1 : 0;
    siglongjmp(env, 1);
}

int main(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = h_info;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, SIGUSR2);
    sigaction(SIGUSR1, &sa, NULL);
    raise(SIGUSR1);
    printf("handler: sig=%d code_is_tkill=%d blocked(self,usr2)=%d\n", got, got_code == SI_TKILL, blocked_in_handler);

    sigset_t set, pend;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigprocmask(SIG_BLOCK, &set, NULL);
    got = 0;
    raise(SIGUSR1);
    sigpending(&pend);
    printf("blocked: delivered=%d pending=%d\n", got, sigismember(&pend, SIGUSR1));
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    printf("unblocked: delivered=%d\n", got);

    sa.sa_flags = SA_SIGINFO | SA_RESETHAND | SA_NODEFER;
    sigaction(SIGUSR1, &sa, NULL);
    got = 0;
    raise(SIGUSR1);
    struct sigaction now;
    sigaction(SIGUSR1, NULL, &now);
    printf("resethand: delivered=%d now_default=%d nodefer_unblocked=%d\n", got, now.sa_handler == SIG_DFL, (blocked_in_handler & 1) == 0);

    stack_t ss = {.ss_sp = altstack, .ss_size = sizeof altstack, .ss_flags = 0};
    sigaltstack(&ss, NULL);
    struct sigaction sb;
    memset(&sb, 0, sizeof sb);
    sb.sa_handler = h_alt;
    sb.sa_flags = SA_ONSTACK;
    sigaction(SIGUSR2, &sb, NULL);
    raise(SIGUSR2);
    printf("altstack: on_alt=%d\n", on_alt);

    struct sigaction sv;
    memset(&sv, 0, sizeof sv);
    sv.sa_sigaction = h_segv;
    sv.sa_flags = SA_SIGINFO;
    sigaction(SIGSEGV, &sv, NULL);
    got = 0;
    if (sigsetjmp(env, 1) == 0) {
        *(volatile int *)0x10 = 1;
        printf("not reached\n");
    }
    printf("segv: recovered sig=%d addr_ok=%d\n", got, got_code);

    signal(SIGTERM, SIG_IGN);
    raise(SIGTERM);
    printf("ignored SIGTERM survived\n");
    signal(SIGTERM, SIG_DFL);
    fflush(stdout);
    raise(SIGTERM);
    printf("not reached\n");
    return 0;
}
// e2e: exit=143
