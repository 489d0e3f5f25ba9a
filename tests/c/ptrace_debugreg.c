// Hardware breakpoints and watchpoints are not offered inside the sandbox: the
// debug registers (struct user's u_debugreg, PTRACE_PEEKUSER/POKEUSER) read 0,
// a zero written to them is taken (gdb clears DR7 and DR6 at every resume), and
// any other value is refused with EIO, never accepted as a breakpoint that would
// not fire: the tracee runs to its end untouched. gdb then needs `set
// can-use-hw-watchpoints 0` (software watchpoints). Natively the writes succeed,
// so the expectations are the sandbox's.
// e2e: mode=sandbox-only
// e2e: stdout=DR0..DR7 read 0: yes
// e2e: stdout=DR7 = 0: OK
// e2e: stdout=DR6 = 0: OK
// e2e: stdout=DR0 = &x: EIO
// e2e: stdout=DR7 = L0 enable: EIO
// e2e: stdout=DR0 still reads 0: yes
// e2e: stdout=misaligned offset: EIO
// e2e: stdout=child ran to its end: yes
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/ptrace.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>
#include "e2e.h"

static volatile int x;

static long dr(int i)
{
    return offsetof(struct user, u_debugreg) + 8 * i;
}

static const char *poke(pid_t p, long off, long v)
{
    return ptrace(PTRACE_POKEUSER, p, (void *)off, (void *)v) == 0 ? "OK" : e2e_errname(errno);
}

int main(void)
{
    pid_t p = fork();
    if (p == 0) {
        ptrace(PTRACE_TRACEME, 0, 0, 0);
        raise(SIGSTOP);
        for (int i = 0; i < 5; i++)
            x = i * 10;
        _exit(x == 40 ? 7 : 1);
    }
    int st;
    waitpid(p, &st, 0);
    int zero = 1;
    for (int i = 0; i < 8; i++) {
        errno = 0;
        long v = ptrace(PTRACE_PEEKUSER, p, (void *)dr(i), 0);
        if (errno || v != 0)
            zero = 0;
    }
    printf("DR0..DR7 read 0: %s\n", zero ? "yes" : "no");
    printf("DR7 = 0: %s\n", poke(p, dr(7), 0));
    printf("DR6 = 0: %s\n", poke(p, dr(6), 0));
    printf("DR0 = &x: %s\n", poke(p, dr(0), (long)&x));
    printf("DR7 = L0 enable: %s\n", poke(p, dr(7), 0xd0001));
    errno = 0;
    long v = ptrace(PTRACE_PEEKUSER, p, (void *)dr(0), 0);
    printf("DR0 still reads 0: %s\n", errno == 0 && v == 0 ? "yes" : "no");
    printf("misaligned offset: %s\n", poke(p, dr(7) + 1, 0));
    ptrace(PTRACE_CONT, p, 0, 0);
    waitpid(p, &st, 0);
    printf("child ran to its end: %s\n", WIFEXITED(st) && WEXITSTATUS(st) == 7 ? "yes" : "no");
    return 0;
}
