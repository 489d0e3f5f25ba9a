/* For the net_ping and net_raw programs: natively, a fresh network namespace with
 * its loopback up, so the host's own settings (ping_group_range) and traffic do not
 * reach the comparison; in the sandbox the namespace is made too, its lo is up at
 * once and the ioctl that raises it fails, which is ignored. */
#ifndef NET_COMMON_NS_H
#define NET_COMMON_NS_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

static void fresh_netns(void)
{
#ifdef NET_SAME_NS
    /* Built so by tests/tests/hostnet.rs: the namespace it made is the one to use
     * (under --network=host a namespace made inside has the sandbox's own lo). */
    return;
#endif
    if (unshare(CLONE_NEWNET) != 0)
        return;
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    strcpy(ifr.ifr_name, "lo");
    if (ioctl(s, SIOCGIFFLAGS, &ifr) == 0) {
        ifr.ifr_flags |= IFF_UP;
        ioctl(s, SIOCSIFFLAGS, &ifr);
    }
    close(s);
    /* ::1 is added as lo comes up; give it a moment to be usable. */
    usleep(100000);
}

/* "label: ret errno" with errno as its number (the numbers are the same on both
 * sides; e2e.h names only a few). */
#define TRYN(label, expr)                                                  \
    do {                                                                   \
        errno = 0;                                                         \
        long r_ = (long)(expr);                                            \
        printf("%s: %ld %d\n", label, r_ < 0 ? -1L : r_, r_ < 0 ? errno : 0); \
    } while (0)

/* The Internet checksum of n bytes (0 when a message with its checksum is valid). */
static unsigned short inet_sum(const void *p, size_t n, unsigned long start)
{
    const unsigned char *b = p;
    unsigned long s = start;
    for (size_t i = 0; i + 1 < n; i += 2)
        s += (b[i] << 8) | b[i + 1];
    if (n & 1)
        s += b[n - 1] << 8;
    while (s >> 16)
        s = (s & 0xffff) + (s >> 16);
    return (unsigned short)~s;
}

#endif
