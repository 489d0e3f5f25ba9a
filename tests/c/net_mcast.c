// IP multicast over loopback: IP_ADD_MEMBERSHIP / IP_DROP_MEMBERSHIP (ip_mreq and
// ip_mreqn, their errors, the per-socket limit), IP_MULTICAST_IF (by address and by
// index), IP_MULTICAST_TTL, IP_MULTICAST_LOOP and IP_MULTICAST_ALL as they decide who
// receives a datagram sent to a group on lo; a membership ending with its socket;
// multicast options on TCP; IPV6_JOIN_GROUP / IPV6_LEAVE_GROUP and the IPv6 options
// (lo carries no IPv6 multicast: ENETUNREACH). Natively in a fresh network namespace
// holding only loopback (net_common_ns.h).
// e2e: timeout=30
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include "net_common_ns.h"

#define GROUP "239.1.2.3"
#define PORT 5007
#define PORT6 5008

static int udp4_on(const char *ip, int port)
{
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    int one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, ip, &a.sin_addr);
    if (bind(s, (struct sockaddr *)&a, sizeof a) != 0)
        printf("bind %s: %d\n", ip, errno);
    return s;
}

static unsigned short port_of(int s)
{
    struct sockaddr_in a;
    socklen_t l = sizeof a;
    getsockname(s, (struct sockaddr *)&a, &l);
    return ntohs(a.sin_port);
}

/* What `fd` received within 200 ms: the data and whether it came from `sender`
 * (127.0.0.1 and its port), or "none". Drains everything queued. */
static void got(const char *who, int fd, int sender)
{
    struct pollfd p = {fd, POLLIN, 0};
    int n = 0;
    while (poll(&p, 1, n ? 0 : 200) > 0) {
        char b[64];
        struct sockaddr_in from;
        socklen_t l = sizeof from;
        ssize_t r = recvfrom(fd, b, sizeof b - 1, 0, (struct sockaddr *)&from, &l);
        if (r < 0)
            break;
        b[r] = 0;
        char ip[32];
        inet_ntop(AF_INET, &from.sin_addr, ip, sizeof ip);
        printf("  %s got '%s' from %s sender %d\n", who, b, ip,
               ntohs(from.sin_port) == port_of(sender));
        n++;
    }
    if (!n)
        printf("  %s got none\n", who);
}

static int mreq(int s, int opt, const char *group, const char *iface)
{
    struct ip_mreq m;
    inet_pton(AF_INET, group, &m.imr_multiaddr);
    inet_pton(AF_INET, iface, &m.imr_interface);
    return setsockopt(s, IPPROTO_IP, opt, &m, sizeof m);
}

static int mreqn(int s, int opt, const char *group, int index)
{
    struct ip_mreqn m = {.imr_ifindex = index};
    inet_pton(AF_INET, group, &m.imr_multiaddr);
    return setsockopt(s, IPPROTO_IP, opt, &m, sizeof m);
}

static void send_group(int s, const char *what)
{
    struct sockaddr_in g = {.sin_family = AF_INET, .sin_port = htons(PORT)};
    inet_pton(AF_INET, GROUP, &g.sin_addr);
    TRYN(what, sendto(s, what, strlen(what), 0, (struct sockaddr *)&g, sizeof g));
}

static void int_opt(int s, int level, int name, const char *label)
{
    int v = -7;
    socklen_t l = sizeof v;
    int r = getsockopt(s, level, name, &v, &l);
    printf("%s: %d value %d len %u\n", label, r, v, l);
}

static int set_int(int s, int level, int name, int v)
{
    return setsockopt(s, level, name, &v, sizeof v);
}

static void ipv6(void)
{
    int r = socket(AF_INET6, SOCK_DGRAM, 0);
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_port = htons(PORT6)};
    TRYN("v6 bind", bind(r, (struct sockaddr *)&a, sizeof a));
    struct ipv6_mreq m = {.ipv6mr_interface = 1};
    inet_pton(AF_INET6, "ff02::1:3", &m.ipv6mr_multiaddr);
    TRYN("v6 join on lo", setsockopt(r, IPPROTO_IPV6, IPV6_JOIN_GROUP, &m, sizeof m));
    TRYN("v6 join again", setsockopt(r, IPPROTO_IPV6, IPV6_JOIN_GROUP, &m, sizeof m));
    m.ipv6mr_interface = 0;
    TRYN("v6 join again, any interface", setsockopt(r, IPPROTO_IPV6, IPV6_JOIN_GROUP, &m, sizeof m));
    TRYN("v6 join short", setsockopt(r, IPPROTO_IPV6, IPV6_JOIN_GROUP, &m, 16));
    struct ipv6_mreq m2 = {.ipv6mr_interface = 0};
    inet_pton(AF_INET6, "ff05::5", &m2.ipv6mr_multiaddr);
    TRYN("v6 join, no route", setsockopt(r, IPPROTO_IPV6, IPV6_JOIN_GROUP, &m2, sizeof m2));
    m2.ipv6mr_interface = 42;
    TRYN("v6 join, no such interface", setsockopt(r, IPPROTO_IPV6, IPV6_JOIN_GROUP, &m2, sizeof m2));
    inet_pton(AF_INET6, "::1", &m2.ipv6mr_multiaddr);
    m2.ipv6mr_interface = 1;
    TRYN("v6 join unicast", setsockopt(r, IPPROTO_IPV6, IPV6_JOIN_GROUP, &m2, sizeof m2));
    TRYN("v6 leave unicast", setsockopt(r, IPPROTO_IPV6, IPV6_LEAVE_GROUP, &m2, sizeof m2));

    int s = socket(AF_INET6, SOCK_DGRAM, 0);
    int_opt(s, IPPROTO_IPV6, IPV6_MULTICAST_IF, "v6 IF");
    int_opt(s, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, "v6 HOPS");
    int_opt(s, IPPROTO_IPV6, IPV6_MULTICAST_LOOP, "v6 LOOP");
    TRYN("v6 IF 1", set_int(s, IPPROTO_IPV6, IPV6_MULTICAST_IF, 1));
    TRYN("v6 IF 55", set_int(s, IPPROTO_IPV6, IPV6_MULTICAST_IF, 55));
    int_opt(s, IPPROTO_IPV6, IPV6_MULTICAST_IF, "v6 IF");
    TRYN("v6 HOPS 256", set_int(s, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, 256));
    TRYN("v6 HOPS 5", set_int(s, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, 5));
    int_opt(s, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, "v6 HOPS");
    TRYN("v6 HOPS -1", set_int(s, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, -1));
    int_opt(s, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, "v6 HOPS");
    TRYN("v6 LOOP 2", set_int(s, IPPROTO_IPV6, IPV6_MULTICAST_LOOP, 2));
    TRYN("v6 LOOP 0", set_int(s, IPPROTO_IPV6, IPV6_MULTICAST_LOOP, 0));
    int_opt(s, IPPROTO_IPV6, IPV6_MULTICAST_LOOP, "v6 LOOP");
    struct sockaddr_in6 g = {.sin6_family = AF_INET6, .sin6_port = htons(PORT6), .sin6_scope_id = 1};
    inet_pton(AF_INET6, "ff02::1:3", &g.sin6_addr);
    TRYN("v6 send to the group on lo", sendto(s, "x", 1, 0, (struct sockaddr *)&g, sizeof g));
    m.ipv6mr_interface = 1;
    TRYN("v6 leave", setsockopt(r, IPPROTO_IPV6, IPV6_LEAVE_GROUP, &m, sizeof m));
    TRYN("v6 leave again", setsockopt(r, IPPROTO_IPV6, IPV6_LEAVE_GROUP, &m, sizeof m));
    int v4 = socket(AF_INET, SOCK_DGRAM, 0);
    TRYN("IPV6_JOIN_GROUP on an IPv4 socket", setsockopt(v4, IPPROTO_IPV6, IPV6_JOIN_GROUP, &m, sizeof m));
    int t6 = socket(AF_INET6, SOCK_STREAM, 0);
    TRYN("IPV6_JOIN_GROUP on TCP", setsockopt(t6, IPPROTO_IPV6, IPV6_JOIN_GROUP, &m, sizeof m));
    close(v4);
    close(t6);
    close(s);
    close(r);
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    fresh_netns();
    int r1 = udp4_on("0.0.0.0", PORT);
    int r2 = udp4_on("0.0.0.0", PORT);
    int r3 = udp4_on("127.0.0.1", PORT);
    int r4 = udp4_on(GROUP, PORT);
    int s = socket(AF_INET, SOCK_DGRAM, 0);

    send_group(s, "no interface");
    struct in_addr ifa = {0};
    socklen_t l = sizeof ifa;
    int r = getsockopt(s, IPPROTO_IP, IP_MULTICAST_IF, &ifa, &l);
    printf("IF: %d %s len %u\n", r, inet_ntoa(ifa), l);
    int_opt(s, IPPROTO_IP, IP_MULTICAST_TTL, "TTL");
    int_opt(s, IPPROTO_IP, IP_MULTICAST_LOOP, "LOOP");
    int_opt(s, IPPROTO_IP, IP_MULTICAST_ALL, "ALL");
    inet_pton(AF_INET, "127.0.0.1", &ifa);
    TRYN("IF 127.0.0.1", setsockopt(s, IPPROTO_IP, IP_MULTICAST_IF, &ifa, sizeof ifa));
    l = sizeof ifa;
    memset(&ifa, 0, sizeof ifa);
    getsockopt(s, IPPROTO_IP, IP_MULTICAST_IF, &ifa, &l);
    printf("IF now %s\n", inet_ntoa(ifa));
    TRYN("IF short", setsockopt(s, IPPROTO_IP, IP_MULTICAST_IF, &ifa, 3));
    inet_pton(AF_INET, "10.9.9.9", &ifa);
    TRYN("IF 10.9.9.9", setsockopt(s, IPPROTO_IP, IP_MULTICAST_IF, &ifa, sizeof ifa));

    send_group(s, "before any join");
    got("r1", r1, s);

    TRYN("join unicast", mreq(r1, IP_ADD_MEMBERSHIP, "10.0.0.1", "127.0.0.1"));
    TRYN("join on interface any", mreq(r1, IP_ADD_MEMBERSHIP, GROUP, "0.0.0.0"));
    TRYN("join on 10.1.1.1", mreq(r1, IP_ADD_MEMBERSHIP, GROUP, "10.1.1.1"));
    TRYN("join on index 99", mreqn(r1, IP_ADD_MEMBERSHIP, GROUP, 99));
    struct ip_mreq m;
    inet_pton(AF_INET, GROUP, &m.imr_multiaddr);
    TRYN("join short", setsockopt(r1, IPPROTO_IP, IP_ADD_MEMBERSHIP, &m, 4));
    TRYN("join on 127.0.0.1", mreq(r1, IP_ADD_MEMBERSHIP, GROUP, "127.0.0.1"));
    TRYN("join again", mreq(r1, IP_ADD_MEMBERSHIP, GROUP, "127.0.0.1"));
    TRYN("join again by index", mreqn(r1, IP_ADD_MEMBERSHIP, GROUP, 1));

    send_group(s, "joined");
    got("r1 (member)", r1, s);
    got("r2 (wildcard)", r2, s);
    got("r3 (127.0.0.1)", r3, s);
    got("r4 (the group)", r4, s);

    TRYN("r2 MULTICAST_ALL 0", set_int(r2, IPPROTO_IP, IP_MULTICAST_ALL, 0));
    int_opt(r2, IPPROTO_IP, IP_MULTICAST_ALL, "ALL");
    send_group(s, "all off");
    got("r1", r1, s);
    got("r2", r2, s);
    set_int(r2, IPPROTO_IP, IP_MULTICAST_ALL, 1);

    TRYN("LOOP 0", set_int(s, IPPROTO_IP, IP_MULTICAST_LOOP, 0));
    send_group(s, "loop off");
    got("r1", r1, s);
    TRYN("TTL 0", set_int(s, IPPROTO_IP, IP_MULTICAST_TTL, 0));
    send_group(s, "ttl 0 loop off");
    got("r1", r1, s);
    set_int(s, IPPROTO_IP, IP_MULTICAST_LOOP, 1);
    send_group(s, "ttl 0 loop on");
    got("r1", r1, s);
    TRYN("TTL 300", set_int(s, IPPROTO_IP, IP_MULTICAST_TTL, 300));
    TRYN("TTL -1", set_int(s, IPPROTO_IP, IP_MULTICAST_TTL, -1));
    int_opt(s, IPPROTO_IP, IP_MULTICAST_TTL, "TTL");
    unsigned char c = 9;
    TRYN("TTL as a byte", setsockopt(s, IPPROTO_IP, IP_MULTICAST_TTL, &c, 1));
    int_opt(s, IPPROTO_IP, IP_MULTICAST_TTL, "TTL");

    // The interface by index: the address reads back as 0.0.0.0.
    int s2 = socket(AF_INET, SOCK_DGRAM, 0);
    struct ip_mreqn mn = {.imr_ifindex = 1};
    TRYN("IF index 1", setsockopt(s2, IPPROTO_IP, IP_MULTICAST_IF, &mn, sizeof mn));
    l = sizeof ifa;
    getsockopt(s2, IPPROTO_IP, IP_MULTICAST_IF, &ifa, &l);
    printf("IF now %s\n", inet_ntoa(ifa));
    mn.imr_ifindex = 77;
    TRYN("IF index 77", setsockopt(s2, IPPROTO_IP, IP_MULTICAST_IF, &mn, sizeof mn));
    send_group(s2, "by index");
    got("r1", r1, s2);
    // A sender bound to 127.0.0.1 needs no IP_MULTICAST_IF.
    int s3 = udp4_on("127.0.0.1", 0);
    send_group(s3, "bound sender");
    got("r1", r1, s3);

    TRYN("drop", mreq(r1, IP_DROP_MEMBERSHIP, GROUP, "127.0.0.1"));
    TRYN("drop again", mreq(r1, IP_DROP_MEMBERSHIP, GROUP, "127.0.0.1"));
    TRYN("drop unicast", mreq(r1, IP_DROP_MEMBERSHIP, "10.0.0.1", "127.0.0.1"));
    TRYN("drop on interface any", mreq(r1, IP_DROP_MEMBERSHIP, GROUP, "0.0.0.0"));
    TRYN("drop on 10.1.1.1", mreq(r1, IP_DROP_MEMBERSHIP, GROUP, "10.1.1.1"));
    send_group(s, "after drop");
    got("r1", r1, s);

    // The interface leaves the group with its last member's socket.
    int r5 = udp4_on("0.0.0.0", PORT);
    TRYN("r5 join", mreqn(r5, IP_ADD_MEMBERSHIP, GROUP, 1));
    send_group(s, "r5 member");
    got("r1", r1, s);
    close(r5);
    send_group(s, "r5 closed");
    got("r1", r1, s);

    // The protocol-independent request (struct group_req).
    struct group_req gr = {.gr_interface = 1};
    struct sockaddr_in *gin = (struct sockaddr_in *)&gr.gr_group;
    gin->sin_family = AF_INET;
    inet_pton(AF_INET, GROUP, &gin->sin_addr);
    TRYN("MCAST_JOIN_GROUP", setsockopt(r1, IPPROTO_IP, MCAST_JOIN_GROUP, &gr, sizeof gr));
    TRYN("MCAST_JOIN_GROUP again", setsockopt(r1, IPPROTO_IP, MCAST_JOIN_GROUP, &gr, sizeof gr));
    TRYN("MCAST_JOIN_GROUP short", setsockopt(r1, IPPROTO_IP, MCAST_JOIN_GROUP, &gr, 8));
    send_group(s, "group_req member");
    got("r1", r1, s);
    TRYN("MCAST_LEAVE_GROUP", setsockopt(r1, IPPROTO_IP, MCAST_LEAVE_GROUP, &gr, sizeof gr));
    TRYN("MCAST_LEAVE_GROUP again", setsockopt(r1, IPPROTO_IP, MCAST_LEAVE_GROUP, &gr, sizeof gr));
    gin->sin_family = AF_INET6;
    TRYN("MCAST_JOIN_GROUP of another family", setsockopt(r1, IPPROTO_IP, MCAST_JOIN_GROUP, &gr, sizeof gr));

    // At most 20 memberships a socket.
    int many = socket(AF_INET, SOCK_DGRAM, 0);
    int ok = 0;
    for (int i = 0; i < 20; i++) {
        char g[32];
        snprintf(g, sizeof g, "239.9.0.%d", i + 1);
        ok += mreq(many, IP_ADD_MEMBERSHIP, g, "127.0.0.1") == 0;
    }
    printf("20 joins: %d ok\n", ok);
    TRYN("21st join", mreq(many, IP_ADD_MEMBERSHIP, "239.9.1.1", "127.0.0.1"));
    close(many);

    int t = socket(AF_INET, SOCK_STREAM, 0);
    TRYN("join on TCP", mreq(t, IP_ADD_MEMBERSHIP, GROUP, "127.0.0.1"));
    TRYN("TTL on TCP", set_int(t, IPPROTO_IP, IP_MULTICAST_TTL, 3));
    close(t);

    ipv6();
    return 0;
}
