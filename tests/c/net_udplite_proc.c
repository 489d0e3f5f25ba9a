// /proc/net/udplite and udplite6 list the UDP-Lite sockets (and /proc/net/udp
// does not): bound, connected, IPv4 and IPv6, with the UDP format's state and
// queue fields; a datagram waiting shows in rx_queue. Natively in a fresh network
// namespace (net_common_ns.h). The pod interface: udplite_through_the_pod_interface
// in tests/tests/network.rs.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include "net_common_ns.h"

#ifndef IPPROTO_UDPLITE
#define IPPROTO_UDPLITE 136
#endif

/* Lines of `path` for local port `port`: "st rx_queue-nonzero remote-port". */
static void show(const char *path, int port)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        printf("%s: %s\n", path, strerrorname_np(errno));
        return;
    }
    char line[512];
    fgets(line, sizeof line, f);
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        char la[64], ra[64];
        unsigned st, tx, rx;
        if (sscanf(line, " %*d: %63s %63s %x %x:%x", la, ra, &st, &tx, &rx) != 5)
            continue;
        char *lp = strrchr(la, ':'), *rp = strrchr(ra, ':');
        if (!lp || !rp || (int)strtoul(lp + 1, NULL, 16) != port)
            continue;
        printf("%s: st %02X rx_queue %s remote port %s\n", path, st,
               rx ? "nonzero" : "0", strtoul(rp + 1, NULL, 16) ? "set" : "0");
        n++;
    }
    printf("%s: %d lines for the port\n", path, n);
    fclose(f);
}

static int port_of(int s)
{
    struct sockaddr_storage a;
    socklen_t l = sizeof a;
    getsockname(s, (struct sockaddr *)&a, &l);
    return ntohs(((struct sockaddr_in *)&a)->sin_port);
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    fresh_netns();
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int r = socket(AF_INET, SOCK_DGRAM, IPPROTO_UDPLITE);
    bind(r, (struct sockaddr *)&a, sizeof a);
    int rp = port_of(r);
    int s = socket(AF_INET, SOCK_DGRAM, IPPROTO_UDPLITE);
    socklen_t al = sizeof a;
    getsockname(r, (struct sockaddr *)&a, &al);
    connect(s, (struct sockaddr *)&a, sizeof a);
    int sp = port_of(s);
    show("/proc/net/udplite", rp);
    show("/proc/net/udplite", sp);
    show("/proc/net/udp", rp);
    printf("send: %zd\n", send(s, "lite", 4, 0));
    usleep(10000);
    show("/proc/net/udplite", rp);

    struct sockaddr_in6 b = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    int r6 = socket(AF_INET6, SOCK_DGRAM, IPPROTO_UDPLITE);
    bind(r6, (struct sockaddr *)&b, sizeof b);
    int rp6 = port_of(r6);
    show("/proc/net/udplite6", rp6);
    show("/proc/net/udplite", rp6);
    show("/proc/net/udp6", rp6);
    // UDP has a port space of its own: the same number binds.
    int u = socket(AF_INET, SOCK_DGRAM, 0);
    printf("UDP bind to the UDP-Lite port: %d\n", bind(u, (struct sockaddr *)&a, sizeof a));
    show("/proc/net/udp", rp);
    return 0;
}
