// ICMP port unreachable to UDP over loopback, IPv4 and IPv6: a datagram a connected
// socket sends to a closed port makes its next call fail once with ECONNREFUSED
// (send, recv, or SO_ERROR, which clears it; poll shows POLLERR meanwhile); an
// unconnected socket hears nothing (no IP_RECVERR). Natively in a fresh network
// namespace (net_common_ns.h). The pod interface: udp_refused_through_the_pod_interface
// in tests/tests/network.rs.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include "net_common_ns.h"

#define T(label, expr)                                                            \
    do {                                                                          \
        errno = 0;                                                                \
        long r_ = (long)(expr);                                                   \
        printf("%s: %ld %s\n", label, r_ < 0 ? -1L : r_,                         \
               r_ < 0 ? strerrorname_np(errno) : "");                             \
    } while (0)

static void run(int family)
{
    struct sockaddr_storage ss;
    socklen_t len;
    memset(&ss, 0, sizeof ss);
    if (family == AF_INET) {
        struct sockaddr_in *a = (void *)&ss;
        a->sin_family = AF_INET;
        a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        len = sizeof *a;
    } else {
        struct sockaddr_in6 *a = (void *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_addr = in6addr_loopback;
        len = sizeof *a;
    }
    printf("-- %s\n", family == AF_INET ? "IPv4" : "IPv6");
    // A port that was bound and is closed again.
    int t = socket(family, SOCK_DGRAM, 0);
    bind(t, (struct sockaddr *)&ss, len);
    getsockname(t, (struct sockaddr *)&ss, &len);
    close(t);

    int c = socket(family, SOCK_DGRAM, 0);
    T("connect", connect(c, (struct sockaddr *)&ss, len));
    T("send to the closed port", send(c, "x", 1, 0));
    struct pollfd p = {c, POLLIN | POLLOUT, 0};
    poll(&p, 1, 1000);
    printf("revents POLLERR %d POLLIN %d\n", !!(p.revents & POLLERR), !!(p.revents & POLLIN));
    int err = -1;
    socklen_t el = sizeof err;
    getsockopt(c, SOL_SOCKET, SO_ERROR, &err, &el);
    printf("SO_ERROR %s\n", err ? strerrorname_np(err) : "0");
    getsockopt(c, SOL_SOCKET, SO_ERROR, &err, &el);
    printf("SO_ERROR again %s\n", err ? strerrorname_np(err) : "0");
    char b[8];
    T("send", send(c, "y", 1, 0));
    usleep(10000);
    T("recv", recv(c, b, sizeof b, MSG_DONTWAIT));
    T("recv again", recv(c, b, sizeof b, MSG_DONTWAIT));
    T("send", send(c, "z", 1, 0));
    usleep(10000);
    T("send (refused)", send(c, "z", 1, 0));
    T("send after", send(c, "z", 1, 0));
    usleep(10000);
    // A blocking recv returns the error too.
    T("blocking recv", recv(c, b, sizeof b, 0));
    close(c);

    int u = socket(family, SOCK_DGRAM, 0);
    T("unconnected sendto", sendto(u, "x", 1, 0, (struct sockaddr *)&ss, len));
    usleep(10000);
    T("unconnected sendto again", sendto(u, "x", 1, 0, (struct sockaddr *)&ss, len));
    T("unconnected recv", recv(u, b, sizeof b, MSG_DONTWAIT));
    getsockopt(u, SOL_SOCKET, SO_ERROR, &err, &el);
    printf("unconnected SO_ERROR %s\n", err ? strerrorname_np(err) : "0");
    close(u);
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    fresh_netns();
    run(AF_INET);
    run(AF_INET6);
    return 0;
}
