/* Capability helpers for the caps_*.c programs: raw capget/capset (no libcap), a
 * known starting point that both the host (root with the host's capabilities) and
 * the sandbox (started with every capability) can reach, and a one-line dump. */
#ifndef CAPS_COMMON_H
#define CAPS_COMMON_H

#include <errno.h>
#include <linux/capability.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_IS_SET 1
#define PR_CAP_AMBIENT_RAISE 2
#define PR_CAP_AMBIENT_LOWER 3
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#endif

#define BIT(c) (1ULL << (c))

/* Runs a call and prints its result with errno's name (errno read after the call). */
#define TRY(label, expr)                \
    do {                                \
        errno = 0;                      \
        long r_ = (long)(expr);         \
        e2e_result(label, r_, errno);   \
    } while (0)

/* The sets every caps test starts from: a few capabilities in bounding,
 * permitted and effective (and some in inheritable), nothing else. */
#define KEEP (BIT(CAP_CHOWN) | BIT(CAP_DAC_OVERRIDE) | BIT(CAP_FOWNER) | BIT(CAP_KILL) | \
              BIT(CAP_SETGID) | BIT(CAP_SETUID) | BIT(CAP_SETPCAP) | BIT(CAP_NET_BIND_SERVICE) | \
              BIT(CAP_SYS_CHROOT))

static int caps_get(uint64_t *eff, uint64_t *perm, uint64_t *inh)
{
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct d[2];
    if (syscall(SYS_capget, &h, d) != 0)
        return -1;
    *eff = d[0].effective | (uint64_t)d[1].effective << 32;
    *perm = d[0].permitted | (uint64_t)d[1].permitted << 32;
    *inh = d[0].inheritable | (uint64_t)d[1].inheritable << 32;
    return 0;
}

static int caps_set(uint64_t eff, uint64_t perm, uint64_t inh)
{
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct d[2] = {
        {(uint32_t)eff, (uint32_t)perm, (uint32_t)inh},
        {(uint32_t)(eff >> 32), (uint32_t)(perm >> 32), (uint32_t)(inh >> 32)},
    };
    return (int)syscall(SYS_capset, &h, d);
}

static uint64_t caps_bounding(void)
{
    uint64_t b = 0;
    for (int c = 0; c <= 63; c++) {
        int r = prctl(PR_CAPBSET_READ, c, 0, 0, 0);
        if (r < 0)
            break;
        if (r)
            b |= BIT(c);
    }
    return b;
}

static uint64_t caps_ambient(void)
{
    uint64_t a = 0;
    for (int c = 0; c <= 63; c++) {
        int r = prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, c, 0, 0);
        if (r < 0)
            break;
        if (r)
            a |= BIT(c);
    }
    return a;
}

/* Prints the five sets and the ids on one line. */
static void caps_show(const char *what)
{
    uint64_t e = 0, p = 0, i = 0;
    caps_get(&e, &p, &i);
    uid_t r, ef, s;
    getresuid(&r, &ef, &s);
    printf("%s: uid=%u/%u/%u eff=%llx prm=%llx inh=%llx bnd=%llx amb=%llx\n", what, r, ef, s,
           (unsigned long long)e, (unsigned long long)p, (unsigned long long)i,
           (unsigned long long)caps_bounding(), (unsigned long long)caps_ambient());
    fflush(stdout);
}

/* Reaches the starting point: bounding = permitted = effective = KEEP,
 * inheritable = `inh`, ambient empty. Exits 99 if the caller lacks a KEEP cap. */
static void caps_start(uint64_t inh)
{
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
    for (int c = 0; c <= 63; c++) {
        if (KEEP & BIT(c))
            continue;
        if (prctl(PR_CAPBSET_READ, c, 0, 0, 0) < 0)
            break;
        if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) != 0) {
            perror("PR_CAPBSET_DROP");
            _exit(99);
        }
    }
    if (caps_set(KEEP, KEEP, inh) != 0) {
        perror("capset");
        _exit(99);
    }
}

#endif
