// Raw ICMP sockets over loopback: socket(AF_INET, SOCK_RAW, IPPROTO_ICMP), the
// ICMPv6 one and AF_PACKET are EPERM without CAP_NET_RAW in the effective set; with
// it, a raw IPv4 socket receives whole datagrams (IP header first) - the echo
// request it sent and the kernel's reply - ICMP_FILTER drops types, IP_HDRINCL
// sends a datagram whose header the caller wrote, and a raw ICMPv6 socket gets
// messages without the IP header, its checksum filled in by the kernel.
// Natively in a fresh network namespace (see net_common_ns.h).
// e2e: timeout=30
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <linux/capability.h>
#include <netinet/icmp6.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/ip_icmp.h>
#include <poll.h>
#include <stdint.h>
#include <sys/syscall.h>
#include "net_common_ns.h"

#ifndef ICMP_FILTER
#define ICMP_FILTER 1
#endif
#ifndef AF_PACKET
#define AF_PACKET 17
#endif

static int caps(int with_raw)
{
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct d[2];
    if (syscall(SYS_capget, &h, d) != 0)
        return -1;
    if (with_raw)
        d[0].effective |= 1u << CAP_NET_RAW;
    else
        d[0].effective &= ~(1u << CAP_NET_RAW);
    return (int)syscall(SYS_capset, &h, d);
}

static int sock(const char *label, int dom, int type, int proto)
{
    errno = 0;
    int s = socket(dom, type, proto);
    printf("%s: %s %d\n", label, s >= 0 ? "ok" : "fail", s >= 0 ? 0 : errno);
    return s;
}

/* Shows one datagram from a raw IPv4 socket. */
static void show4(int s)
{
    struct pollfd p = {s, POLLIN, 0};
    if (poll(&p, 1, 2000) != 1) {
        printf("nothing\n");
        return;
    }
    unsigned char b[256];
    struct sockaddr_in from;
    socklen_t fl = sizeof from;
    ssize_t n = recvfrom(s, b, sizeof b, 0, (struct sockaddr *)&from, &fl);
    if (n < 28) {
        printf("short %zd\n", n);
        return;
    }
    int ihl = (b[0] & 15) * 4;
    char src[32], dst[32];
    inet_ntop(AF_INET, b + 12, src, sizeof src);
    inet_ntop(AF_INET, b + 16, dst, sizeof dst);
    printf("len %zd v%d ihl %d totlen %d ttl %d proto %d hsum-ok %d %s > %s | type %d code %d id %#x seq %d sum-ok %d data %.6s | from %s port %d\n",
           n, b[0] >> 4, ihl, (b[2] << 8) | b[3], b[8], b[9], inet_sum(b, ihl, 0) == 0, src, dst,
           b[ihl], b[ihl + 1], (b[ihl + 4] << 8) | b[ihl + 5], (b[ihl + 6] << 8) | b[ihl + 7],
           inet_sum(b + ihl, n - ihl, 0) == 0, (char *)b + ihl + 8, inet_ntoa(from.sin_addr),
           ntohs(from.sin_port));
}

static void echo_msg(unsigned char *m, int type, unsigned short id, unsigned short seq)
{
    memset(m, 0, 16);
    m[0] = type;
    m[4] = id >> 8;
    m[5] = id & 0xff;
    m[6] = seq >> 8;
    m[7] = seq & 0xff;
    memcpy(m + 8, "rawdat", 6);
    unsigned short c = inet_sum(m, 14, 0);
    m[2] = c >> 8;
    m[3] = c & 0xff;
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    fresh_netns();
    TRYN("drop CAP_NET_RAW", caps(0));
    sock("raw icmp without the capability", AF_INET, SOCK_RAW, IPPROTO_ICMP);
    sock("raw icmpv6 without the capability", AF_INET6, SOCK_RAW, IPPROTO_ICMPV6);
    sock("raw IPPROTO_RAW without the capability", AF_INET, SOCK_RAW, IPPROTO_RAW);
    sock("packet socket without the capability", AF_PACKET, SOCK_RAW, htons(3));
    sock("packet dgram without the capability", AF_PACKET, SOCK_DGRAM, htons(3));
    TRYN("raise CAP_NET_RAW", caps(1));

    int s = sock("raw icmp", AF_INET, SOCK_RAW, IPPROTO_ICMP);
    struct sockaddr_in me;
    socklen_t ml = sizeof me;
    getsockname(s, (struct sockaddr *)&me, &ml);
    printf("getsockname port %d\n", ntohs(me.sin_port));
    int v = -1;
    socklen_t vl = sizeof v;
    getsockopt(s, SOL_SOCKET, SO_TYPE, &v, &vl);
    printf("SO_TYPE %d\n", v);
    getsockopt(s, IPPROTO_IP, IP_HDRINCL, &v, &vl);
    printf("IP_HDRINCL %d\n", v);
    struct sockaddr_in lo = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    unsigned char m[16];
    echo_msg(m, ICMP_ECHO, 0x1234, 1);
    TRYN("sendto 127.0.0.1", sendto(s, m, 14, 0, (struct sockaddr *)&lo, sizeof lo));
    show4(s); /* our request, looped back */
    show4(s); /* the kernel's reply */

    // Only echo replies through the filter.
    uint32_t filt = ~(1u << ICMP_ECHOREPLY);
    TRYN("ICMP_FILTER", setsockopt(s, SOL_RAW, ICMP_FILTER, &filt, sizeof filt));
    echo_msg(m, ICMP_ECHO, 0x1234, 2);
    TRYN("sendto again", sendto(s, m, 14, 0, (struct sockaddr *)&lo, sizeof lo));
    show4(s);
    unsigned char tb[8];
    TRYN("nothing more", recv(s, tb, sizeof tb, MSG_DONTWAIT));

    // A small buffer truncates.
    echo_msg(m, ICMP_ECHO, 0x1234, 3);
    sendto(s, m, 14, 0, (struct sockaddr *)&lo, sizeof lo);
    struct pollfd p = {s, POLLIN, 0};
    poll(&p, 1, 2000);
    struct iovec iov = {tb, sizeof tb};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    TRYN("recvmsg 8 bytes", recvmsg(s, &mh, MSG_DONTWAIT));
    printf("MSG_TRUNC %d\n", (mh.msg_flags & MSG_TRUNC) != 0);

    // IP_HDRINCL: the caller writes the header (id, checksum and total length, left
    // 0 here, filled in by the kernel).
    int one = 1;
    TRYN("IP_HDRINCL on", setsockopt(s, IPPROTO_IP, IP_HDRINCL, &one, sizeof one));
    unsigned char d[64] = {0x45, 0, 0, 0, 0, 0, 0, 0, 33, IPPROTO_ICMP, 0, 0, 127, 0, 0, 1, 127, 0, 0, 1};
    echo_msg(d + 20, ICMP_ECHO, 0x4321, 4);
    TRYN("sendto with our header", sendto(s, d, 34, 0, (struct sockaddr *)&lo, sizeof lo));
    show4(s);

    // ICMPv6: no IP header either way; the kernel checksums.
    int s6 = sock("raw icmpv6", AF_INET6, SOCK_RAW, IPPROTO_ICMPV6);
    struct icmp6_filter f6;
    ICMP6_FILTER_SETBLOCKALL(&f6);
    ICMP6_FILTER_SETPASS(ICMP6_ECHO_REPLY, &f6);
    TRYN("ICMP6_FILTER", setsockopt(s6, IPPROTO_ICMPV6, ICMP6_FILTER, &f6, sizeof f6));
    struct sockaddr_in6 lo6 = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    unsigned char m6[16] = {ICMP6_ECHO_REQUEST, 0, 0, 0, 0x55, 0x66, 0, 5};
    memcpy(m6 + 8, "six6", 4);
    TRYN("sendto ::1", sendto(s6, m6, 12, 0, (struct sockaddr *)&lo6, sizeof lo6));
    struct pollfd p6 = {s6, POLLIN, 0};
    printf("poll: %d\n", poll(&p6, 1, 2000));
    unsigned char r6[64];
    struct sockaddr_in6 f;
    socklen_t flen = sizeof f;
    ssize_t n = recvfrom(s6, r6, sizeof r6, MSG_DONTWAIT, (struct sockaddr *)&f, &flen);
    /* The checksum with the pseudo-header (::1 to ::1, length, next header 58). */
    unsigned long ph = 1 + 1 + (unsigned long)n + 58;
    char a6[64];
    inet_ntop(AF_INET6, &f.sin6_addr, a6, sizeof a6);
    printf("v6: len %zd type %d id %#x seq %d sum-ok %d data %.4s from %s\n", n, r6[0],
           (r6[4] << 8) | r6[5], (r6[6] << 8) | r6[7], inet_sum(r6, n, ph) == 0, (char *)r6 + 8, a6);
    TRYN("nothing more v6", recv(s6, r6, sizeof r6, MSG_DONTWAIT));
    return 0;
}
