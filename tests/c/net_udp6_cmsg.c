// UDP control messages over loopback (RFC 3542 and the IPv4 ones): IPV6_RECVHOPLIMIT,
// IPV6_RECVTCLASS and IPV6_RECVPKTINFO deliver IPV6_HOPLIMIT, IPV6_TCLASS and
// IPV6_PKTINFO; sendmsg's IPV6_HOPLIMIT / IPV6_TCLASS set one datagram's values (and
// their range and length errors); Linux's truncation of a short control buffer
// (MSG_CTRUNC, cmsg_len cut, msg_controllen); IP_PKTINFO, IP_RECVTTL and IP_RECVTOS
// with sendmsg's IP_TTL / IP_TOS. UDP-Lite (IPPROTO_UDPLITE): SO_PROTOCOL, its port
// space apart from UDP's, UDPLITE_SEND_CSCOV / UDPLITE_RECV_CSCOV (clamping, and a
// receiver dropping datagrams covered less than it asks). Natively in a fresh network namespace holding only
// loopback (net_common_ns.h).
// e2e: timeout=30
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include "net_common_ns.h"

static int one = 1;

/* Receives one datagram with `room` bytes of control buffer and prints what came. */
static void show(const char *label, int s, size_t room)
{
    char data[64];
    union {
        char b[256];
        struct cmsghdr align;
    } ctl;
    memset(&ctl, 0xee, sizeof ctl);
    struct iovec iov = {data, sizeof data};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1,
                       .msg_control = room ? ctl.b : NULL, .msg_controllen = room};
    errno = 0;
    long n = recvmsg(s, &m, MSG_DONTWAIT);
    printf("%s: ret %ld errno %d ctrunc %d controllen %zu\n", label, n, n < 0 ? errno : 0,
           (m.msg_flags & MSG_CTRUNC) != 0, (size_t)m.msg_controllen);
    if (n < 0 || m.msg_controllen < sizeof(struct cmsghdr))
        return;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
        size_t len = c->cmsg_len - CMSG_LEN(0);
        printf("  cmsg level %d type %d len %zu", c->cmsg_level, c->cmsg_type,
               (size_t)c->cmsg_len);
        if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO && len >= 20) {
            struct in6_pktinfo pi;
            memcpy(&pi, CMSG_DATA(c), sizeof pi);
            char a[64];
            inet_ntop(AF_INET6, &pi.ipi6_addr, a, sizeof a);
            printf(" addr %s lo %d", a, pi.ipi6_ifindex == (int)if_nametoindex("lo"));
        } else if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO && len >= 12) {
            struct in_pktinfo pi;
            memcpy(&pi, CMSG_DATA(c), sizeof pi);
            char a[32], d[32];
            inet_ntop(AF_INET, &pi.ipi_addr, a, sizeof a);
            inet_ntop(AF_INET, &pi.ipi_spec_dst, d, sizeof d);
            printf(" addr %s spec_dst %s lo %d", a, d, pi.ipi_ifindex == (int)if_nametoindex("lo"));
        } else if (len >= sizeof(int)) {
            int v;
            memcpy(&v, CMSG_DATA(c), sizeof v);
            printf(" int %d", v);
        } else if (len == 1) {
            printf(" byte %d", *(unsigned char *)CMSG_DATA(c));
        }
        printf("\n");
    }
}

/* sendmsg of "x" to `to` with control messages (level, type, int value); n of them;
 * `width` bytes of each value (4 normally). */
static long send_with(int s, struct sockaddr *to, socklen_t tl, int level, const int *types,
                      const int *vals, int n, int width)
{
    union {
        char b[256];
        struct cmsghdr align;
    } ctl;
    memset(&ctl, 0, sizeof ctl);
    struct iovec iov = {"x", 1};
    struct msghdr m = {.msg_name = to, .msg_namelen = tl, .msg_iov = &iov, .msg_iovlen = 1,
                       .msg_control = n ? ctl.b : NULL, .msg_controllen = n * CMSG_SPACE(width)};
    struct cmsghdr *c = n ? CMSG_FIRSTHDR(&m) : NULL;
    for (int i = 0; i < n; i++, c = CMSG_NXTHDR(&m, c)) {
        c->cmsg_level = level;
        c->cmsg_type = types[i];
        c->cmsg_len = CMSG_LEN(width);
        if (width == 1)
            *(unsigned char *)CMSG_DATA(c) = (unsigned char)vals[i];
        else
            memcpy(CMSG_DATA(c), &vals[i], sizeof(int));
    }
    errno = 0;
    long r = sendmsg(s, &m, 0);
    return r < 0 ? -errno : r;
}

static void v6(void)
{
    int r = socket(AF_INET6, SOCK_DGRAM, 0), s = socket(AF_INET6, SOCK_DGRAM, 0);
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_addr = in6addr_loopback};
    bind(r, (struct sockaddr *)&a, sizeof a);
    socklen_t al = sizeof a;
    getsockname(r, (struct sockaddr *)&a, &al);
    struct sockaddr *to = (struct sockaddr *)&a;

    sendto(s, "x", 1, 0, to, sizeof a);
    show("v6 nothing asked", r, 256);
    TRYN("IPV6_RECVHOPLIMIT", setsockopt(r, IPPROTO_IPV6, IPV6_RECVHOPLIMIT, &one, sizeof one));
    TRYN("IPV6_RECVTCLASS", setsockopt(r, IPPROTO_IPV6, IPV6_RECVTCLASS, &one, sizeof one));
    int v = -5;
    socklen_t vl = sizeof v;
    getsockopt(r, IPPROTO_IPV6, IPV6_RECVHOPLIMIT, &v, &vl);
    printf("get IPV6_RECVHOPLIMIT %d\n", v);
    getsockopt(r, IPPROTO_IPV6, IPV6_RECVTCLASS, &v, &vl);
    printf("get IPV6_RECVTCLASS %d\n", v);

    sendto(s, "x", 1, 0, to, sizeof a);
    show("v6 defaults", r, 256);
    int tc = 0x48;
    TRYN("IPV6_TCLASS 0x48", setsockopt(s, IPPROTO_IPV6, IPV6_TCLASS, &tc, sizeof tc));
    tc = 300;
    TRYN("IPV6_TCLASS 300", setsockopt(s, IPPROTO_IPV6, IPV6_TCLASS, &tc, sizeof tc));
    int hl = 33;
    TRYN("IPV6_UNICAST_HOPS 33", setsockopt(s, IPPROTO_IPV6, IPV6_UNICAST_HOPS, &hl, sizeof hl));
    sendto(s, "x", 1, 0, to, sizeof a);
    show("v6 socket options", r, 256);

    int types[2] = {IPV6_HOPLIMIT, IPV6_TCLASS};
    int vals[2] = {7, 0x28};
    printf("sendmsg both: %ld\n", send_with(s, to, sizeof a, IPPROTO_IPV6, types, vals, 2, 4));
    show("v6 per datagram", r, 256);
    int dflt[2] = {-1, -1};
    printf("sendmsg -1s: %ld\n", send_with(s, to, sizeof a, IPPROTO_IPV6, types, dflt, 2, 4));
    show("v6 -1 means the socket's", r, 256);
    int bad[1] = {256};
    printf("sendmsg hoplimit 256: %ld\n", send_with(s, to, sizeof a, IPPROTO_IPV6, types, bad, 1, 4));
    printf("sendmsg tclass -2: %ld\n",
           send_with(s, to, sizeof a, IPPROTO_IPV6, types + 1, (int[]){-2}, 1, 4));
    printf("sendmsg hoplimit 1 byte: %ld\n",
           send_with(s, to, sizeof a, IPPROTO_IPV6, types, vals, 1, 1));
    printf("sendmsg unknown ipv6 type: %ld\n",
           send_with(s, to, sizeof a, IPPROTO_IPV6, (int[]){IPV6_RECVERR}, vals, 1, 4));
    printf("sendmsg SCM_RIGHTS: %ld\n",
           send_with(s, to, sizeof a, SOL_SOCKET, (int[]){SCM_RIGHTS}, (int[]){0}, 1, 4));
    printf("sendmsg IP_TTL on v6 dest (skipped): %ld\n",
           send_with(s, to, sizeof a, IPPROTO_IP, (int[]){IP_TTL}, (int[]){9}, 1, 4));
    show("v6 after the errors", r, 256);
    show("v6 the skipped one", r, 256);
    show("v6 queue empty", r, 256);

    /* Truncation: room for the first message and part of the second. */
    size_t rooms[] = {0, 10, CMSG_SPACE(4), CMSG_SPACE(4) + CMSG_LEN(0),
                      CMSG_SPACE(4) + CMSG_LEN(0) + 2, CMSG_LEN(4) - 1,
                      CMSG_SPACE(4) + CMSG_LEN(4), 2 * CMSG_SPACE(4)};
    for (size_t i = 0; i < sizeof rooms / sizeof rooms[0]; i++) {
        send_with(s, to, sizeof a, IPPROTO_IPV6, types, vals, 2, 4);
        char label[64];
        snprintf(label, sizeof label, "v6 room %zu", rooms[i]);
        show(label, r, rooms[i]);
    }

    TRYN("IPV6_RECVPKTINFO", setsockopt(r, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof one));
    sendto(s, "x", 1, 0, to, sizeof a);
    show("v6 with pktinfo", r, 256);

    /* An IPv4 datagram on a dual-stack socket: IPV6_PKTINFO mapped, IPv4 ones. */
    int d = socket(AF_INET6, SOCK_DGRAM, 0);
    struct sockaddr_in6 any = {.sin6_family = AF_INET6, .sin6_addr = in6addr_any};
    bind(d, (struct sockaddr *)&any, sizeof any);
    al = sizeof any;
    getsockname(d, (struct sockaddr *)&any, &al);
    setsockopt(d, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof one);
    setsockopt(d, IPPROTO_IPV6, IPV6_RECVHOPLIMIT, &one, sizeof one);
    setsockopt(d, IPPROTO_IP, IP_RECVTTL, &one, sizeof one);
    int s4 = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in to4 = {.sin_family = AF_INET, .sin_port = any.sin6_port,
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    sendto(s4, "x", 1, 0, (struct sockaddr *)&to4, sizeof to4);
    show("v4 datagram on v6 socket", d, 256);
    close(s4);
    close(d);
    close(r);
    close(s);
}

static void v4(void)
{
    int r = socket(AF_INET, SOCK_DGRAM, 0), s = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bind(r, (struct sockaddr *)&a, sizeof a);
    socklen_t al = sizeof a;
    getsockname(r, (struct sockaddr *)&a, &al);
    struct sockaddr *to = (struct sockaddr *)&a;
    TRYN("IP_PKTINFO", setsockopt(r, IPPROTO_IP, IP_PKTINFO, &one, sizeof one));
    TRYN("IP_RECVTTL", setsockopt(r, IPPROTO_IP, IP_RECVTTL, &one, sizeof one));
    TRYN("IP_RECVTOS", setsockopt(r, IPPROTO_IP, IP_RECVTOS, &one, sizeof one));
    int v = -5;
    socklen_t vl = sizeof v;
    getsockopt(r, IPPROTO_IP, IP_RECVTTL, &v, &vl);
    printf("get IP_RECVTTL %d\n", v);
    sendto(s, "x", 1, 0, to, sizeof a);
    show("v4 defaults", r, 256);
    int types[2] = {IP_TTL, IP_TOS};
    int vals[2] = {9, 0x10};
    printf("sendmsg both: %ld\n", send_with(s, to, sizeof a, IPPROTO_IP, types, vals, 2, 4));
    show("v4 per datagram", r, 256);
    printf("sendmsg tos 1 byte: %ld\n",
           send_with(s, to, sizeof a, IPPROTO_IP, types + 1, vals + 1, 1, 1));
    show("v4 tos byte", r, 256);
    printf("sendmsg ttl 0: %ld\n", send_with(s, to, sizeof a, IPPROTO_IP, types, (int[]){0}, 1, 4));
    printf("sendmsg IPV6_HOPLIMIT on v4 (skipped): %ld\n",
           send_with(s, to, sizeof a, IPPROTO_IPV6, (int[]){IPV6_HOPLIMIT}, (int[]){3}, 1, 4));
    show("v4 after", r, 256);
    sendto(s, "x", 1, 0, to, sizeof a);
    show("v4 room 20", r, 20);
    close(r);
    close(s);
}

static int lite_on(int family, int *port)
{
    int s = socket(family, SOCK_DGRAM, IPPROTO_UDPLITE);
    struct sockaddr_storage a;
    memset(&a, 0, sizeof a);
    socklen_t l;
    if (family == AF_INET) {
        struct sockaddr_in *a4 = (struct sockaddr_in *)&a;
        a4->sin_family = AF_INET;
        a4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a4->sin_port = htons(*port);
        l = sizeof *a4;
    } else {
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&a;
        a6->sin6_family = AF_INET6;
        a6->sin6_addr = in6addr_loopback;
        a6->sin6_port = htons(*port);
        l = sizeof *a6;
    }
    if (bind(s, (struct sockaddr *)&a, l) != 0)
        printf("lite bind: errno %d\n", errno);
    getsockname(s, (struct sockaddr *)&a, &l);
    *port = ntohs(family == AF_INET ? ((struct sockaddr_in *)&a)->sin_port
                                    : ((struct sockaddr_in6 *)&a)->sin6_port);
    return s;
}

static void lite(int family)
{
    printf("UDP-Lite, %s\n", family == AF_INET ? "IPv4" : "IPv6");
    int port = 0;
    int r = lite_on(family, &port);
    int s = socket(family, SOCK_DGRAM, IPPROTO_UDPLITE);
    int v = -1;
    socklen_t vl = sizeof v;
    getsockopt(r, SOL_SOCKET, SO_PROTOCOL, &v, &vl);
    printf("SO_PROTOCOL %d\n", v);
    /* The same port number is free for UDP. */
    int u = socket(family, SOCK_DGRAM, 0);
    struct sockaddr_storage a;
    socklen_t al = sizeof a;
    getsockname(r, (struct sockaddr *)&a, &al);
    TRYN("udp bind the lite port", bind(u, (struct sockaddr *)&a, al));
    int x = 3;
    TRYN("SEND_CSCOV 3", setsockopt(s, IPPROTO_UDPLITE, 10, &x, sizeof x));
    getsockopt(s, IPPROTO_UDPLITE, 10, &v, &vl);
    printf("SEND_CSCOV now %d\n", v);
    x = 70000;
    TRYN("SEND_CSCOV 70000 at SOL_UDP", setsockopt(s, IPPROTO_UDP, 10, &x, sizeof x));
    getsockopt(s, IPPROTO_UDPLITE, 10, &v, &vl);
    printf("SEND_CSCOV now %d\n", v);
    getsockopt(r, IPPROTO_UDPLITE, 11, &v, &vl);
    printf("RECV_CSCOV %d\n", v);
    TRYN("SEND_CSCOV on UDP", setsockopt(u, IPPROTO_UDPLITE, 10, &x, sizeof x));
    TRYN("getsockopt RECV_CSCOV on UDP", getsockopt(u, IPPROTO_UDPLITE, 11, &v, &vl));

    char buf[64] = "thirty bytes of udp-lite data.";
    TRYN("send full coverage", sendto(s, buf, 30, 0, (struct sockaddr *)&a, al));
    TRYN("udp sees nothing", recv(u, buf, sizeof buf, MSG_DONTWAIT));
    TRYN("lite receives", recv(r, buf, sizeof buf, MSG_DONTWAIT));
    x = 20;
    TRYN("RECV_CSCOV 20", setsockopt(r, IPPROTO_UDPLITE, 11, &x, sizeof x));
    int covs[] = {8, 19, 20, 38, 0};
    for (int i = 0; i < 5; i++) {
        setsockopt(s, IPPROTO_UDPLITE, 10, &covs[i], sizeof covs[i]);
        sendto(s, buf, 30, 0, (struct sockaddr *)&a, al);
        errno = 0;
        long n = recv(r, buf, sizeof buf, MSG_DONTWAIT);
        printf("coverage %d: recv %ld errno %d\n", covs[i], n, n < 0 ? errno : 0);
    }
    x = 0;
    TRYN("RECV_CSCOV 0", setsockopt(r, IPPROTO_UDPLITE, 11, &x, sizeof x));
    for (int i = 0; i < 5; i++) {
        setsockopt(s, IPPROTO_UDPLITE, 10, &covs[i], sizeof covs[i]);
        sendto(s, buf, 30, 0, (struct sockaddr *)&a, al);
        errno = 0;
        long n = recv(r, buf, sizeof buf, MSG_DONTWAIT);
        printf("recv cov 0, coverage %d: recv %ld errno %d\n", covs[i], n, n < 0 ? errno : 0);
    }
    close(u);
    close(s);
    close(r);
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    (void)inet_sum;
    fresh_netns();
    v6();
    v4();
    lite(AF_INET);
    lite(AF_INET6);
    return 0;
}
