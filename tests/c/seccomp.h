/* Helpers for the seccomp tests: building classic BPF filters and installing them. */
#ifndef SECCOMP_TEST_H
#define SECCOMP_TEST_H

#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#define NR_OFF offsetof(struct seccomp_data, nr)
#define ARCH_OFF offsetof(struct seccomp_data, arch)
#define ARG_LO(i) (offsetof(struct seccomp_data, args) + 8 * (i))
#define ARG_HI(i) (offsetof(struct seccomp_data, args) + 8 * (i) + 4)

static inline long sc_install(unsigned flags, struct sock_filter *f, unsigned short n)
{
    struct sock_fprog prog = { .len = n, .filter = f };
    return syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &prog);
}

/* A filter: arch must be x86-64 (else kill), system call `nr` returns `ret`, the
 * rest is allowed. */
static inline long sc_one(unsigned flags, int nr, unsigned ret)
{
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARCH_OFF),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, NR_OFF),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, nr, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, ret),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    return sc_install(flags, f, sizeof(f) / sizeof(f[0]));
}

/* Prints "what: N" or "what: -1 ENAME" for a raw result. */
static inline void sc_show(const char *what, long r)
{
    if (r < 0)
        printf("%s: -1 %s\n", what, strerrorname_np(errno));
    else
        printf("%s: %ld\n", what, r);
}
#define SC_T(what, expr) do { errno = 0; sc_show(what, (long)(expr)); } while (0)
/* As SC_T, but any success prints as 1 (fds, pids and ids differ between runs). */
#define SC_OK(what, expr) do { errno = 0; long r_ = (long)(expr); sc_show(what, r_ >= 0 ? 1 : r_); } while (0)

/* The Seccomp and Seccomp_filters lines of /proc/self/status. */
static inline void sc_status(const char *who)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    if (!f) {
        printf("%s: no status\n", who);
        return;
    }
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "Seccomp", 7) == 0)
            printf("%s: %s", who, line);
    fclose(f);
}

#endif
