// Refusals of unshare and clone that a program may loop on end at once:
// clone's flag word cannot name a time namespace (its bit is the exit signal's:
// 0x80|SIGCHLD is no signal, EINVAL; clone3 has the flag), an unknown unshare
// flag is EINVAL; the kinds the sandbox makes still work.
// e2e: mode=sandbox-only
// e2e: stdout=clone time: EINVAL
// e2e: stdout=unknown flag: EINVAL
// e2e: stdout=uts still works: OK
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(void)
{
    long r = syscall(SYS_clone, 0x80 | SIGCHLD, 0, 0, 0, 0);
    if (r == 0)
        _exit(0);
    printf("clone time: %s\n", r < 0 && errno == EINVAL ? "EINVAL" : "other");
    r = unshare(0x1);
    printf("unknown flag: %s\n", r < 0 && errno == EINVAL ? "EINVAL" : "other");
    r = unshare(CLONE_NEWUTS);
    printf("uts still works: %s\n", r == 0 ? "OK" : "failed");
    return 0;
}
