// Namespace kinds the sandbox does not make (time) are refused with EINVAL, as
// by a kernel built without them, at once: a program that loops on unshare
// ends. clone with them is refused the same way.
// e2e: mode=sandbox-only
// e2e: stdout=time: EINVAL x1000
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

static void loop(const char *name, int flag)
{
    int einval = 0;
    for (int i = 0; i < 1000; i++)
        if (unshare(flag) != 0 && errno == EINVAL)
            einval++;
    printf("%s: EINVAL x%d\n", name, einval);
}

int main(void)
{
    loop("time", 0x80);
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
