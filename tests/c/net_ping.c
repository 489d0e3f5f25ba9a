// Ping sockets (SOCK_DGRAM + IPPROTO_ICMP/ICMPV6) over loopback: refused (EACCES)
// while net.ipv4.ping_group_range is Linux's default "1 0", allowed once the range
// holds the caller's group; the kernel writes the identifier (the socket's bound
// "port") and the checksum, only echo requests may be sent, and the echo reply
// comes back to the socket with that identifier. Natively in a fresh network
// namespace (see net_common_ns.h).
// e2e: timeout=30
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/icmp6.h>
#include <netinet/in.h>
#include <netinet/ip_icmp.h>
#include <poll.h>
#include <stdlib.h>
#include "net_common_ns.h"

static const char *RANGE = "/proc/sys/net/ipv4/ping_group_range";

static void show_range(void)
{
    char b[64] = {0};
    int fd = open(RANGE, O_RDONLY);
    ssize_t n = read(fd, b, sizeof b - 1);
    close(fd);
    for (ssize_t i = 0; i < n; i++)
        if (b[i] == '\t')
            b[i] = ' ';
    printf("ping_group_range: %s", n > 0 ? b : "?\n");
}

static int set_range(const char *v)
{
    int fd = open(RANGE, O_WRONLY);
    if (fd < 0)
        return -1;
    int r = (int)write(fd, v, strlen(v));
    int e = errno;
    close(fd);
    errno = e;
    return r;
}

static int sock(const char *label, int dom, int type, int proto)
{
    errno = 0;
    int s = socket(dom, type, proto);
    printf("%s: %s %d\n", label, s >= 0 ? "ok" : "fail", s >= 0 ? 0 : errno);
    return s;
}

/* Sends an echo request (id 0: the kernel puts the socket's) and shows the reply. */
static void echo4(int s, unsigned short seq, int with_addr)
{
    unsigned char m[64] = {ICMP_ECHO, 0, 0, 0, 0, 0, seq >> 8, seq & 0xff};
    memcpy(m + 8, "pingdata", 8);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    TRYN("sendto", with_addr ? sendto(s, m, 16, 0, (struct sockaddr *)&to, sizeof to)
                             : send(s, m, 16, 0));
    struct pollfd p = {s, POLLIN, 0};
    printf("poll: %d\n", poll(&p, 1, 2000));
    struct sockaddr_in from;
    socklen_t fl = sizeof from;
    unsigned char r[128];
    ssize_t n = recvfrom(s, r, sizeof r, MSG_DONTWAIT, (struct sockaddr *)&from, &fl);
    struct sockaddr_in me;
    socklen_t ml = sizeof me;
    getsockname(s, (struct sockaddr *)&me, &ml);
    if (n < 8) {
        printf("recv: %zd %d\n", n, errno);
        return;
    }
    printf("reply: len %zd type %d code %d id-is-port %d seq %d sum-ok %d data %.8s from %s port %d\n",
           n, r[0], r[1], ((r[4] << 8) | r[5]) == ntohs(me.sin_port), (r[6] << 8) | r[7],
           inet_sum(r, n, 0) == 0, (char *)r + 8, inet_ntoa(from.sin_addr), ntohs(from.sin_port));
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    fresh_netns();
    char saved[64] = {0};
    int fd = open(RANGE, O_RDONLY);
    if (read(fd, saved, sizeof saved - 1) < 0)
        saved[0] = 0;
    close(fd);
    set_range("1 0");
    show_range();
    sock("ping v4 refused", AF_INET, SOCK_DGRAM, IPPROTO_ICMP);
    sock("ping v6 refused", AF_INET6, SOCK_DGRAM, IPPROTO_ICMPV6);
    sock("v6 socket with IPPROTO_ICMP", AF_INET6, SOCK_DGRAM, IPPROTO_ICMP);
    sock("v4 socket with IPPROTO_ICMPV6", AF_INET, SOCK_DGRAM, IPPROTO_ICMPV6);

    TRYN("write one number", set_range("5"));
    TRYN("write a negative group", set_range("-1 5"));
    TRYN("write the full range", set_range("0 2147483647"));
    show_range();
    TRYN("write high below low", set_range("10 3"));
    show_range();
    TRYN("write 0 0", set_range("0 0"));
    show_range();

    int s = sock("ping v4", AF_INET, SOCK_DGRAM, IPPROTO_ICMP);
    unsigned char bad[16] = {ICMP_TIMESTAMP, 0};
    struct sockaddr_in lo = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    TRYN("send a timestamp request", sendto(s, bad, 16, 0, (struct sockaddr *)&lo, sizeof lo));
    unsigned char tiny[4] = {ICMP_ECHO, 0};
    TRYN("send 4 bytes", sendto(s, tiny, 4, 0, (struct sockaddr *)&lo, sizeof lo));
    TRYN("send without address", send(s, tiny, 4, 0));
    echo4(s, 1, 1);
    echo4(s, 2, 1);
    int ty = -1, pr = -1;
    socklen_t l = sizeof ty;
    getsockopt(s, SOL_SOCKET, SO_TYPE, &ty, &l);
    getsockopt(s, SOL_SOCKET, SO_PROTOCOL, &pr, &l);
    printf("SO_TYPE %d SO_PROTOCOL %d\n", ty, pr);
    TRYN("recv nothing pending", recv(s, bad, sizeof bad, MSG_DONTWAIT));

    // An identifier chosen by bind, taken once.
    int b = sock("ping v4 bound", AF_INET, SOCK_DGRAM, IPPROTO_ICMP);
    struct sockaddr_in ba = {.sin_family = AF_INET, .sin_port = htons(4242),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    TRYN("bind id 4242", bind(b, (struct sockaddr *)&ba, sizeof ba));
    struct sockaddr_in me;
    socklen_t ml = sizeof me;
    getsockname(b, (struct sockaddr *)&me, &ml);
    printf("bound: %s %d\n", inet_ntoa(me.sin_addr), ntohs(me.sin_port));
    int b2 = sock("ping v4 second", AF_INET, SOCK_DGRAM, IPPROTO_ICMP);
    struct sockaddr_in far = {.sin_family = AF_INET, .sin_addr.s_addr = inet_addr("10.255.1.1")};
    TRYN("bind a foreign address", bind(b2, (struct sockaddr *)&far, sizeof far));
    struct sockaddr_in bb = {.sin_family = AF_INET, .sin_port = htons(4343)};
    TRYN("bind id 4343 on any", bind(b2, (struct sockaddr *)&bb, sizeof bb));
    getsockname(b2, (struct sockaddr *)&me, &ml);
    printf("bound: %s %d\n", inet_ntoa(me.sin_addr), ntohs(me.sin_port));
    TRYN("bind twice", bind(b2, (struct sockaddr *)&bb, sizeof bb));
    TRYN("connect", connect(b, (struct sockaddr *)&lo, sizeof lo));
    echo4(b, 3, 0);

    // IPv6.
    int s6 = sock("ping v6", AF_INET6, SOCK_DGRAM, IPPROTO_ICMPV6);
    struct sockaddr_in6 lo6 = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    unsigned char m6[24] = {ICMP6_ECHO_REQUEST, 0, 0, 0, 0, 0, 0, 9};
    memcpy(m6 + 8, "six-data", 8);
    TRYN("sendto ::1", sendto(s6, m6, 16, 0, (struct sockaddr *)&lo6, sizeof lo6));
    unsigned char bad6[8] = {ICMP_ECHO, 0};
    TRYN("send a v4 echo type on v6", sendto(s6, bad6, 8, 0, (struct sockaddr *)&lo6, sizeof lo6));
    struct pollfd p = {s6, POLLIN, 0};
    printf("poll: %d\n", poll(&p, 1, 2000));
    unsigned char r[64];
    struct sockaddr_in6 f6;
    socklen_t f6l = sizeof f6;
    ssize_t n = recvfrom(s6, r, sizeof r, MSG_DONTWAIT, (struct sockaddr *)&f6, &f6l);
    char a6[64];
    inet_ntop(AF_INET6, &f6.sin6_addr, a6, sizeof a6);
    printf("v6 reply: len %zd type %d seq %d data %.8s from %s port %d\n", n, r[0],
           (r[6] << 8) | r[7], (char *)r + 8, a6, ntohs(f6.sin6_port));

    set_range(saved[0] ? saved : "1 0");
    return 0;
}
