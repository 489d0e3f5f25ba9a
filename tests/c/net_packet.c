// Packet sockets on loopback: AF_PACKET is EPERM without CAP_NET_RAW; with it, an
// ETH_P_ALL SOCK_RAW socket sees a UDP datagram sent to 127.0.0.1 twice (outgoing,
// then as lo receives it) as a whole frame with lo's zero Ethernet header, the
// sockaddr_ll naming lo (ARPHRD_LOOPBACK, 6 zero address bytes); an ETH_P_IP
// SOCK_DGRAM socket bound to lo's index sees it once, from the IP header on;
// SO_ATTACH_FILTER programs pick the frames (and cut them); MSG_PEEK, MSG_TRUNC,
// FIONREAD, poll; a frame written on a SOCK_RAW socket and an IP datagram given to
// a SOCK_DGRAM socket with a destination sockaddr_ll come back through lo to a UDP
// socket; the errors of bind, send and the options.
// Natively in a fresh network namespace (see net_common_ns.h).
// e2e: timeout=30
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/epoll.h>
#include <stdint.h>
#include <sys/syscall.h>
#include "net_common_ns.h"

#define PORT 5555

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

static int wait_in(int s)
{
    struct pollfd p = {s, POLLIN, 0};
    return poll(&p, 1, 2000) == 1 && (p.revents & POLLIN);
}

/* Shows the frame (raw: from the Ethernet header; else from the IP header). */
static void show(const char *label, int s, int raw)
{
    if (!wait_in(s)) {
        printf("%s: nothing\n", label);
        return;
    }
    unsigned char b[2048];
    struct sockaddr_ll from;
    memset(&from, 0xee, sizeof from);
    socklen_t fl = sizeof from;
    ssize_t n = recvfrom(s, b, sizeof b, 0, (struct sockaddr *)&from, &fl);
    if (n < 0) {
        printf("%s: recvfrom %d\n", label, errno);
        return;
    }
    int zero_addr = 1;
    for (int i = 0; i < from.sll_halen && i < 8; i++)
        zero_addr &= from.sll_addr[i] == 0;
    printf("%s: %zd bytes, addrlen %u family %d protocol 0x%04x ifindex_is_lo %d hatype %d "
           "pkttype %d halen %d zero_addr %d\n",
           label, n, fl, from.sll_family, ntohs(from.sll_protocol),
           from.sll_ifindex == (int)if_nametoindex("lo"), from.sll_hatype, from.sll_pkttype,
           from.sll_halen, zero_addr);
    unsigned char *ip = b;
    if (raw) {
        int zero = 1;
        for (int i = 0; i < 12; i++)
            zero &= b[i] == 0;
        printf("  ethernet: macs zero %d type 0x%02x%02x\n", zero, b[12], b[13]);
        ip = b + 14;
    }
    int ihl = (ip[0] & 0xf) * 4;
    printf("  ip: version %d ihl %d total %d df %d ttl %d proto %d %d.%d.%d.%d -> %d.%d.%d.%d "
           "header sum ok %d\n",
           ip[0] >> 4, ihl, (ip[2] << 8) | ip[3], (ip[6] & 0x40) != 0, ip[8], ip[9], ip[12],
           ip[13], ip[14], ip[15], ip[16], ip[17], ip[18], ip[19], inet_sum(ip, ihl, 0) == 0);
    unsigned char *u = ip + ihl;
    printf("  udp: %d -> %d len %d payload \"%.*s\"\n", (u[0] << 8) | u[1], (u[2] << 8) | u[3],
           (u[4] << 8) | u[5], ((u[4] << 8) | u[5]) - 8, (char *)u + 8);
}

/* A filter taking UDP to PORT, `snap` bytes; `off` is where the IP header starts. */
static int attach(int s, int off, unsigned snap)
{
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_B | BPF_ABS, off + 9),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 17, 0, 4),
        BPF_STMT(BPF_LDX | BPF_B | BPF_MSH, off),
        BPF_STMT(BPF_LD | BPF_H | BPF_IND, off + 2),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, PORT, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, snap),
        BPF_STMT(BPF_RET | BPF_K, 0),
    };
    struct sock_fprog p = {sizeof f / sizeof f[0], f};
    return setsockopt(s, SOL_SOCKET, SO_ATTACH_FILTER, &p, sizeof p);
}

static void udp_send(int u, const char *msg)
{
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(PORT),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    sendto(u, msg, strlen(msg), 0, (struct sockaddr *)&to, sizeof to);
}

static void udp_recv(const char *label, int r)
{
    char b[128];
    struct sockaddr_in from;
    socklen_t fl = sizeof from;
    if (!wait_in(r)) {
        printf("%s: nothing\n", label);
        return;
    }
    ssize_t n = recvfrom(r, b, sizeof b, MSG_DONTWAIT, (struct sockaddr *)&from, &fl);
    printf("%s: %zd \"%.*s\" from port %d\n", label, n, (int)(n > 0 ? n : 0), b,
           ntohs(from.sin_port));
}

/* An IPv4+UDP datagram 127.0.0.1:sport -> 127.0.0.1:PORT carrying msg, with valid
 * checksums; returns its length. */
static int datagram(unsigned char *d, int sport, const char *msg)
{
    int len = (int)strlen(msg);
    memset(d, 0, 28);
    d[0] = 0x45;
    d[2] = (28 + len) >> 8;
    d[3] = (28 + len) & 0xff;
    d[6] = 0x40;
    d[8] = 64;
    d[9] = 17;
    d[12] = 127, d[15] = 1, d[16] = 127, d[19] = 1;
    unsigned short c = inet_sum(d, 20, 0);
    d[10] = c >> 8, d[11] = c & 0xff;
    unsigned char *u = d + 20;
    u[0] = sport >> 8, u[1] = sport & 0xff, u[2] = PORT >> 8, u[3] = PORT & 0xff;
    u[4] = (8 + len) >> 8, u[5] = (8 + len) & 0xff;
    memcpy(u + 8, msg, len);
    /* Pseudo-header: addresses, protocol, length. */
    unsigned long pseudo = 0x7f00 + 0x0001 + 0x7f00 + 0x0001 + 17 + 8 + len;
    c = inet_sum(u, 8 + len, pseudo);
    u[6] = c >> 8, u[7] = c & 0xff;
    return 28 + len;
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    fresh_netns();
    int lo = (int)if_nametoindex("lo");
    TRYN("drop CAP_NET_RAW", caps(0));
    sock("raw without the capability", AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
    sock("dgram without the capability", AF_PACKET, SOCK_DGRAM, htons(ETH_P_IP));
    TRYN("raise CAP_NET_RAW", caps(1));
    sock("stream type", AF_PACKET, SOCK_STREAM, htons(ETH_P_ALL));

    int all = sock("raw ETH_P_ALL", AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
    int v = -1;
    socklen_t vl = sizeof v;
    getsockopt(all, SOL_SOCKET, SO_TYPE, &v, &vl);
    printf("SO_TYPE %d\n", v);
    getsockopt(all, SOL_SOCKET, SO_DOMAIN, &v, &vl);
    printf("SO_DOMAIN %d\n", v);
    getsockopt(all, SOL_SOCKET, SO_PROTOCOL, &v, &vl);
    printf("SO_PROTOCOL 0x%x\n", v);
    struct sockaddr_ll me;
    socklen_t ml = sizeof me;
    memset(&me, 0, sizeof me);
    TRYN("getsockname unbound", getsockname(all, (struct sockaddr *)&me, &ml));
    printf("  len %u family %d protocol 0x%04x ifindex %d halen %d\n", ml, me.sll_family,
           ntohs(me.sll_protocol), me.sll_ifindex, me.sll_halen);
    TRYN("attach filter", attach(all, 14, 0xffff));
    TRYN("connect", connect(all, (struct sockaddr *)&me, sizeof me));
    TRYN("listen", listen(all, 1));

    int r = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in ra = {.sin_family = AF_INET, .sin_port = htons(PORT),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    TRYN("bind udp", bind(r, (struct sockaddr *)&ra, sizeof ra));
    int u = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in ua = {.sin_family = AF_INET, .sin_port = htons(PORT + 1),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bind(u, (struct sockaddr *)&ua, sizeof ua);

    udp_send(u, "hello frame");
    show("first", all, 1);
    show("second", all, 1);
    unsigned char tb[64];
    TRYN("nothing more", recv(all, tb, sizeof tb, MSG_DONTWAIT));
    udp_recv("udp socket", r);

    // SOCK_DGRAM for IPv4 only, bound to lo.
    int dg = sock("dgram ETH_P_IP", AF_PACKET, SOCK_DGRAM, htons(ETH_P_IP));
    struct sockaddr_ll bad = {.sll_family = AF_PACKET, .sll_ifindex = 999};
    TRYN("bind short", bind(dg, (struct sockaddr *)&bad, 8));
    struct sockaddr_ll wrong = {.sll_family = AF_INET, .sll_ifindex = lo};
    TRYN("bind wrong family", bind(dg, (struct sockaddr *)&wrong, sizeof wrong));
    TRYN("bind no such interface", bind(dg, (struct sockaddr *)&bad, sizeof bad));
    struct sockaddr_ll bl = {.sll_family = AF_PACKET, .sll_ifindex = lo};
    TRYN("bind lo", bind(dg, (struct sockaddr *)&bl, sizeof bl));
    ml = sizeof me;
    getsockname(dg, (struct sockaddr *)&me, &ml);
    printf("  len %u protocol 0x%04x ifindex_is_lo %d hatype %d halen %d\n", ml,
           ntohs(me.sll_protocol), me.sll_ifindex == lo, me.sll_hatype, me.sll_halen);
    TRYN("attach filter", attach(dg, 0, 0xffff));
    udp_send(u, "dgram view");
    show("dgram", dg, 0);
    TRYN("dgram nothing more", recv(dg, tb, sizeof tb, MSG_DONTWAIT));
    show("raw sees it too", all, 1);
    show("raw again", all, 1);

    // MSG_PEEK, MSG_TRUNC, FIONREAD, poll.
    udp_send(u, "0123456789abcdef");
    struct pollfd p = {dg, POLLIN | POLLOUT, 0};
    TRYN("poll", poll(&p, 1, 2000));
    printf("  revents in %d out %d\n", (p.revents & POLLIN) != 0, (p.revents & POLLOUT) != 0);
    int q = -1;
    TRYN("FIONREAD", ioctl(dg, FIONREAD, &q));
    printf("  %d\n", q);
    TRYN("peek 10 with MSG_TRUNC", recv(dg, tb, 10, MSG_PEEK | MSG_TRUNC));
    struct iovec iov = {tb, 10};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    TRYN("recvmsg 10", recvmsg(dg, &mh, MSG_DONTWAIT));
    printf("  MSG_TRUNC %d first byte 0x%02x\n", (mh.msg_flags & MSG_TRUNC) != 0, tb[0]);
    while (recv(all, tb, sizeof tb, MSG_DONTWAIT) > 0)
        ;
    udp_recv("udp socket", r);
    udp_recv("udp socket", r);

    // A snap length from the filter cuts the frame.
    TRYN("attach snap filter", attach(all, 14, 20));
    udp_send(u, "cut");
    TRYN("recv cut", recv(all, tb, sizeof tb, 0));
    TRYN("recv cut MSG_TRUNC", recv(all, tb, 4, MSG_TRUNC));
    TRYN("detach", setsockopt(all, SOL_SOCKET, SO_DETACH_FILTER, &v, sizeof v));
    TRYN("detach again", setsockopt(all, SOL_SOCKET, SO_DETACH_FILTER, &v, sizeof v));
    TRYN("attach again", attach(all, 14, 0xffff));
    udp_recv("udp socket", r);

    // Sending a whole frame on lo: it comes back to the UDP socket.
    int tx = sock("raw protocol 0", AF_PACKET, SOCK_RAW, 0);
    unsigned char f[128];
    memset(f, 0, 14);
    f[12] = 0x08;
    int n = 14 + datagram(f + 14, 4000, "from a frame");
    TRYN("send unbound", send(tx, f, n, 0));
    struct sockaddr_ll to = {.sll_family = AF_PACKET, .sll_ifindex = lo,
                             .sll_protocol = htons(ETH_P_IP), .sll_halen = 6};
    TRYN("sendto short frame", sendto(tx, f, 5, 0, (struct sockaddr *)&to, sizeof to));
    TRYN("sendto short address", sendto(tx, f, n, 0, (struct sockaddr *)&to, 8));
    TRYN("sendto lo", sendto(tx, f, n, 0, (struct sockaddr *)&to, sizeof to));
    udp_recv("udp socket", r);
    show("tx outgoing", all, 1);
    show("tx received", all, 1);
    TRYN("tx itself gets nothing", recv(tx, tb, sizeof tb, MSG_DONTWAIT));

    // SOCK_DGRAM: the IP datagram, the link header from the address.
    int dtx = sock("dgram protocol 0", AF_PACKET, SOCK_DGRAM, 0);
    n = datagram(f, 4001, "from a dgram");
    TRYN("dgram sendto lo", sendto(dtx, f, n, 0, (struct sockaddr *)&to, sizeof to));
    udp_recv("udp socket", r);
    show("dgram tx seen raw", all, 1);
    show("dgram tx seen raw", all, 1);
    show("dgram tx seen by dgram", dg, 0);

    // IPv6 on lo is not martian: a datagram ::1 -> ::1 given to a SOCK_DGRAM socket
    // reaches a UDP socket.
    int r6 = socket(AF_INET6, SOCK_DGRAM, 0);
    struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_port = htons(PORT + 2),
                              .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    TRYN("bind udp6", bind(r6, (struct sockaddr *)&a6, sizeof a6));
    {
        const char *msg = "over ipv6";
        int len = (int)strlen(msg);
        unsigned char d6[128];
        memset(d6, 0, 48);
        d6[0] = 0x60;
        d6[4] = (8 + len) >> 8, d6[5] = (8 + len) & 0xff;
        d6[6] = 17, d6[7] = 64;
        d6[23] = 1, d6[39] = 1;
        unsigned char *u6 = d6 + 40;
        u6[0] = 4002 >> 8, u6[1] = 4002 & 0xff, u6[2] = (PORT + 2) >> 8, u6[3] = (PORT + 2) & 0xff;
        u6[4] = (8 + len) >> 8, u6[5] = (8 + len) & 0xff;
        memcpy(u6 + 8, msg, len);
        /* Pseudo-header: ::1 twice, length, next header. */
        unsigned short c = inet_sum(u6, 8 + len, 1 + 1 + (8 + len) + 17);
        u6[6] = c >> 8, u6[7] = c & 0xff;
        struct sockaddr_ll to6 = {.sll_family = AF_PACKET, .sll_ifindex = lo,
                                  .sll_protocol = htons(ETH_P_IPV6), .sll_halen = 6};
        TRYN("dgram sendto lo, ipv6", sendto(dtx, d6, 48 + len, 0, (struct sockaddr *)&to6, sizeof to6));
        udp_recv("udp6 socket", r6);
        while (recv(all, tb, sizeof tb, MSG_DONTWAIT) > 0)
            ;
    }

    // Options.
    struct packet_mreq mr = {.mr_ifindex = lo, .mr_type = PACKET_MR_PROMISC};
    TRYN("add promisc", setsockopt(all, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mr, sizeof mr));
    TRYN("add short", setsockopt(all, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mr, 8));
    TRYN("drop promisc", setsockopt(all, SOL_PACKET, PACKET_DROP_MEMBERSHIP, &mr, sizeof mr));
    mr.mr_ifindex = 999;
    TRYN("add no such interface",
         setsockopt(all, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mr, sizeof mr));
    v = 4096;
    TRYN("SO_RCVBUF", setsockopt(all, SOL_SOCKET, SO_RCVBUF, &v, sizeof v));
    vl = sizeof v;
    getsockopt(all, SOL_SOCKET, SO_RCVBUF, &v, &vl);
    printf("  rcvbuf %d\n", v);
    v = 1;
    TRYN("PACKET_IGNORE_OUTGOING", setsockopt(all, SOL_PACKET, PACKET_IGNORE_OUTGOING, &v, sizeof v));
    udp_send(u, "incoming only");
    show("ignoring outgoing", all, 1);
    TRYN("no outgoing copy", recv(all, tb, sizeof tb, MSG_DONTWAIT));
    udp_recv("udp socket", r);
    TRYN("other level", setsockopt(all, SOL_IP, IP_TTL, &v, sizeof v));
    // epoll, edge-triggered, on the SOCK_DGRAM socket.
    while (recv(dg, tb, sizeof tb, MSG_DONTWAIT) > 0)
        ;
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.fd = dg};
    TRYN("epoll_ctl", epoll_ctl(ep, EPOLL_CTL_ADD, dg, &ev));
    TRYN("epoll_wait empty", epoll_wait(ep, &ev, 1, 0));
    udp_send(u, "epoll");
    TRYN("epoll_wait", epoll_wait(ep, &ev, 1, 2000));
    printf("  EPOLLIN %d\n", (ev.events & EPOLLIN) != 0);
    TRYN("epoll_wait again (edge)", epoll_wait(ep, &ev, 1, 0));
    show("epoll frame", dg, 0);
    udp_recv("udp socket", r);
    struct tpacket_stats st;
    socklen_t sl = sizeof st;
    TRYN("PACKET_STATISTICS", getsockopt(all, SOL_PACKET, PACKET_STATISTICS, &st, &sl));
    printf("  len %u packets %u drops %u\n", sl, st.tp_packets, st.tp_drops);
    sl = sizeof st;
    getsockopt(all, SOL_PACKET, PACKET_STATISTICS, &st, &sl);
    printf("  reset: packets %u drops %u\n", st.tp_packets, st.tp_drops);
    return 0;
}
