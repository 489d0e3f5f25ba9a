// SECCOMP_RET_TRAP: the SIGSYS siginfo (si_code SYS_SECCOMP, si_errno = the filter's
// data, si_syscall, si_arch, si_call_addr = the instruction after the system call),
// rax in the handler's context holds the call's number, the handler's rax is the
// call's result; a blocked or ignored SIGSYS ends the process instead.
#include "seccomp.h"

#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <ucontext.h>

static volatile int seen;

static void on_sigsys(int sig, siginfo_t *si, void *uc_)
{
    ucontext_t *uc = uc_;
    seen++;
    printf("signal %d code %d errno %d syscall %d arch %#x\n", sig, si->si_code, si->si_errno,
           si->si_syscall, si->si_arch);
    printf("call_addr == rip: %s\n",
           (uintptr_t)si->si_call_addr == (uintptr_t)uc->uc_mcontext.gregs[REG_RIP] ? "yes" : "no");
    printf("call_addr follows a syscall instruction: %s\n",
           ((unsigned char *)si->si_call_addr)[-2] == 0x0f &&
                   ((unsigned char *)si->si_call_addr)[-1] == 0x05
               ? "yes"
               : "no");
    printf("rax in context == nr: %s\n",
           uc->uc_mcontext.gregs[REG_RAX] == si->si_syscall ? "yes" : "no");
    printf("arg0 in context: %lld\n", (long long)uc->uc_mcontext.gregs[REG_RDI]);
    uc->uc_mcontext.gregs[REG_RAX] = 4242;
}

static int child(int how)
{
    if (how == 1) {
        sigset_t s;
        sigemptyset(&s);
        sigaddset(&s, SIGSYS);
        sigprocmask(SIG_BLOCK, &s, NULL);
    } else {
        signal(SIGSYS, SIG_IGN);
    }
    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    if (sc_one(0, SYS_getppid, SECCOMP_RET_TRAP | 3) != 0)
        return 2;
    syscall(SYS_getppid);
    printf("still running\n");
    return 0;
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    for (int how = 1; how <= 2; how++) {
        pid_t c = fork();
        if (c == 0)
            _exit(child(how));
        int st;
        waitpid(c, &st, 0);
        printf("%s SIGSYS: signaled %d sig %d\n", how == 1 ? "blocked" : "ignored",
               WIFSIGNALED(st), WIFSIGNALED(st) ? WTERMSIG(st) : -1);
    }
    struct sigaction sa = { 0 };
    sa.sa_sigaction = on_sigsys;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSYS, &sa, NULL);
    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    SC_T("install", sc_one(0, SYS_getppid, SECCOMP_RET_TRAP | 77));
    SC_T("getppid(5) via trap", syscall(SYS_getppid, 5));
    printf("handler ran %d times\n", seen);
    /* Stacked over the trap: KILL ranks first, ERRNO after TRAP. */
    SC_T("errno filter", sc_one(0, SYS_getppid, SECCOMP_RET_ERRNO | 1));
    SC_T("getppid (TRAP ranks before ERRNO)", syscall(SYS_getppid, 6));
    printf("handler ran %d times\n", seen);
    return 0;
}
