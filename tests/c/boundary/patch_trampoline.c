// Run inside the sandbox by tests/tests/escape.rs (not by the differential harness).
// argv[1]: "on" or "off", what --syscall-patching says.
//
// 1. A `mov eax, 39; syscall` site called a few times is patched on systrap
//    (`jmp qword ptr [slot]`, ff 24 25) when patching is on, and left alone when it
//    is off (or on ptrace, which has no trampoline).
// 2. An attacker jumps into the stub's trampoline with a gs base of its own that
//    points at a fake region in its memory, asking for exit_group: the trampoline
//    parks on the fake region; nothing runs on the host (the process lives on), the
//    sentry never sees the forged request, and the sandbox still ends the thread
//    when the process exits.
// Prints the same lines on both platforms and with patching on or off; on ptrace
// (no trampoline) part 2 has nothing to attack.
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define STUB_BASE 0x7ffffe000000UL
#define ARCH_SET_GS 0x1001
#define T_SELF 40
#define T_REGS 0xa00
#define STATE_FAST 4

// mov r11, qword ptr gs:[T_SELF]: the trampoline's first instruction.
static const unsigned char tramp_start[] = {0x65, 0x4c, 0x8b, 0x1c, 0x25, T_SELF, 0, 0, 0};

static unsigned char fake[4096] __attribute__((aligned(4096)));

__attribute__((noinline)) static long site(void)
{
    long r;
    __asm__ volatile(".globl patch_site\npatch_site:\n\tmov $39, %%eax\n\tsyscall"
                     : "=a"(r)
                     :
                     : "rcx", "r11", "memory");
    return r;
}
extern const unsigned char patch_site[];

static sigjmp_buf probe_jmp;

static void on_segv(int sig)
{
    (void)sig;
    siglongjmp(probe_jmp, 1);
}

// The stub's code page, if the application can read it (the sentry copies nothing
// from there on the application's behalf, so it is read directly; natively the
// page is not there and the read faults).
static unsigned long find_trampoline(void)
{
    struct sigaction sa = {0}, old;
    sa.sa_handler = on_segv;
    sigaction(SIGSEGV, &sa, &old);
    unsigned long found = 0;
    if (sigsetjmp(probe_jmp, 1) == 0) {
        const volatile unsigned char *page = (const volatile unsigned char *)STUB_BASE;
        for (size_t i = 0; i + sizeof tramp_start <= 4096 && !found; i++) {
            size_t j = 0;
            while (j < sizeof tramp_start && page[i + j] == tramp_start[j])
                j++;
            if (j == sizeof tramp_start)
                found = STUB_BASE + i;
        }
    }
    sigaction(SIGSEGV, &old, NULL);
    return found;
}

static unsigned long trampoline;

static void *attacker(void *arg)
{
    (void)arg;
    unsigned long self = (unsigned long)fake;
    memcpy(fake + T_SELF, &self, sizeof self);
    // The sentry records the gs base (and stops patching this process).
    if (syscall(SYS_arch_prctl, ARCH_SET_GS, (unsigned long)fake) != 0)
        return NULL;
    // rax: exit_group; rdi: status 42; rcx: where a "return" would go.
    __asm__ volatile("lea 1f(%%rip), %%rcx\n\t"
                     "jmp *%0\n\t"
                     "1:"
                     :
                     : "r"(trampoline), "a"((long)SYS_exit_group), "D"(42L)
                     : "rcx", "r11", "memory");
    // Only reached if something answered the forged request.
    printf("forged request ANSWERED\n");
    return NULL;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    int on = argc > 1 && strcmp(argv[1], "on") == 0;
    pid_t pid = getpid();
    for (int i = 0; i < 10; i++)
        if (site() != pid)
            printf("getpid WRONG\n");
    trampoline = find_trampoline();
    int patched = patch_site[0] == 0xff && patch_site[1] == 0x24 && patch_site[2] == 0x25;
    int expect = on && trampoline != 0;
    printf("site patched as expected: %s\n", patched == expect ? "yes" : "NO");
    if (patched)
        printf("site: %02x %02x %02x, fault byte %02x\n", patch_site[0], patch_site[1],
               patch_site[2], patch_site[5]);
    else
        printf("site: ff 24 25, fault byte 06\n");

    if (trampoline) {
        pthread_t t;
        pthread_create(&t, NULL, attacker, NULL);
        // The attacker commits its forged call on its own memory and waits there.
        struct timespec d = {0, 10 * 1000 * 1000};
        int parked = 0;
        for (int i = 0; i < 500 && !parked; i++) {
            parked = __atomic_load_n((unsigned *)fake, __ATOMIC_SEQ_CST) == STATE_FAST;
            nanosleep(&d, NULL);
        }
        unsigned long rax;
        memcpy(&rax, fake + T_REGS + 13 * 8, sizeof rax);
        printf("forged request parked on its own memory: %s\n",
               parked && rax == SYS_exit_group ? "yes" : "NO");
        struct timespec wait = {0, 200 * 1000 * 1000};
        nanosleep(&wait, NULL);
    } else {
        printf("forged request parked on its own memory: yes\n");
    }
    printf("still alive after the forged exit_group: yes\n");
    // exit_group through the sentry ends the thread parked in the stub's code.
    return 0;
}
