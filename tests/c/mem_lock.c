// mlock, mlock2, munlock, mlockall, munlockall: VmLck in /proc/self/status, page
// rounding, ranges not mapped, bad flags, MCL_FUTURE for later mappings, and as an
// unprivileged user (no CAP_IPC_LOCK) RLIMIT_MEMLOCK: over it ENOMEM, zero EPERM.
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include "e2e.h"

#define show e2e_show
#define T E2E_T

static long vmlck_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmLck: %ld kB", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb;
}

int main(void)
{
    long pg = sysconf(_SC_PAGESIZE);
    char *p = mmap(NULL, 4 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    printf("VmLck at start: %ld\n", vmlck_kb());
    T("mlock 2 pages", mlock(p, 2 * pg));
    printf("VmLck: %ld\n", vmlck_kb());
    T("mlock inside a page rounds out", mlock(p + 2 * pg + 100, 10));
    printf("VmLck: %ld\n", vmlck_kb());
    T("mlock again (no double count)", mlock(p, 3 * pg));
    printf("VmLck: %ld\n", vmlck_kb());
    T("munlock middle page", munlock(p + pg, pg));
    printf("VmLck: %ld\n", vmlck_kb());
    T("mlock2 ONFAULT", syscall(SYS_mlock2, p + 3 * pg, pg, 1));
    T("mlock2 bad flag", syscall(SYS_mlock2, p, pg, 2));
    printf("VmLck: %ld\n", vmlck_kb());
    munmap(p + 3 * pg, pg);
    printf("VmLck after munmap: %ld\n", vmlck_kb());
    T("mlock over a hole", mlock(p + 2 * pg, 2 * pg));
    T("munlock over a hole", munlock(p + 2 * pg, 2 * pg));
    T("munlockall", munlockall());
    printf("VmLck: %ld\n", vmlck_kb());
    T("mlockall 0", mlockall(0));
    T("mlockall ONFAULT alone", mlockall(MCL_ONFAULT));
    T("mlockall bad flag", mlockall(MCL_CURRENT | 64));
    T("mlockall FUTURE", mlockall(MCL_FUTURE));
    printf("VmLck: %ld\n", vmlck_kb());
    char *q = mmap(NULL, 5 * pg, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    printf("VmLck after a new 5-page mapping: %ld\n", vmlck_kb());
    munmap(q, 5 * pg);
    T("munlockall", munlockall());
    T("mlockall CURRENT", mlockall(MCL_CURRENT));
    printf("VmLck > 0: %d\n", vmlck_kb() > 0);
    munlockall();

    // Without CAP_IPC_LOCK the limit counts.
    fflush(stdout);
    pid_t c = fork();
    if (c == 0) {
        printf("child VmLck (not inherited): %ld\n", vmlck_kb());
        struct rlimit rl = {2 * pg, 2 * pg};
        setrlimit(RLIMIT_MEMLOCK, &rl);
        if (setgid(1000) || setuid(1000))
            printf("setuid failed\n");
        T("unprivileged mlock 1 page", mlock(p, pg));
        T("unprivileged mlock 3 pages", mlock(p, 3 * pg));
        T("unprivileged mlock 2 pages", mlock(p, 2 * pg));
        T("unprivileged mlockall CURRENT", mlockall(MCL_CURRENT));
        T("unprivileged mlockall FUTURE", mlockall(MCL_FUTURE));
        munlockall();
        rl.rlim_cur = 0;
        setrlimit(RLIMIT_MEMLOCK, &rl);
        T("mlock with limit 0", mlock(p, pg));
        T("munlock with limit 0", munlock(p, pg));
        fflush(stdout);
        _exit(0);
    }
    int st;
    waitpid(c, &st, 0);
    return 0;
}
