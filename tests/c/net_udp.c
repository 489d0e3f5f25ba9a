// UDP over loopback, IPv4 and IPv6: autobind on sendto, recvfrom's sender address,
// MSG_PEEK and MSG_TRUNC, FIONREAD as the next datagram's size, connected sockets
// (filtering, ECONNREFUSED from a closed port), sendmmsg/recvmmsg, EMSGSIZE,
// EDESTADDRREQ, SO_REUSEADDR sharing, MSG_DONTWAIT, SO_RCVTIMEO, shutdown.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include "e2e.h"

static int bound4(struct sockaddr_in *a) {
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    memset(a, 0, sizeof *a);
    a->sin_family = AF_INET;
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(s, (struct sockaddr *)a, sizeof *a);
    socklen_t l = sizeof *a;
    getsockname(s, (struct sockaddr *)a, &l);
    return s;
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    struct sockaddr_in ra;
    int r = bound4(&ra);
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    char buf[64];
    E2E_T("recv empty, MSG_DONTWAIT", recv(r, buf, sizeof buf, MSG_DONTWAIT));
    E2E_T("send unconnected, no address", send(s, "x", 1, 0));
    E2E_T("sendto", sendto(s, "hello", 5, 0, (struct sockaddr *)&ra, sizeof ra));
    E2E_T("sendto", sendto(s, "world!!", 7, 0, (struct sockaddr *)&ra, sizeof ra));
    struct sockaddr_in sa, from;
    socklen_t sl = sizeof sa;
    getsockname(s, (struct sockaddr *)&sa, &sl);
    printf("sender autobound: %d\n", sa.sin_port != 0);
    struct pollfd p = {r, POLLIN | POLLOUT, 0};
    poll(&p, 1, 1000);
    printf("revents %#x\n", p.revents);
    int n = -1;
    ioctl(r, FIONREAD, &n);
    printf("FIONREAD %d\n", n);
    E2E_T("peek 2", recv(r, buf, 2, MSG_PEEK));
    socklen_t fl = sizeof from;
    E2E_T("recvfrom 3 with MSG_TRUNC", recvfrom(r, buf, 3, MSG_TRUNC, (struct sockaddr *)&from, &fl));
    printf("from sender: %d len %u\n", from.sin_port == sa.sin_port, fl);
    struct iovec iov = {buf, 4};
    struct msghdr m = {.msg_name = &from, .msg_namelen = sizeof from, .msg_iov = &iov, .msg_iovlen = 1};
    E2E_T("recvmsg 4 of 7", recvmsg(r, &m, 0));
    printf("msg_flags trunc %d namelen %u\n", (m.msg_flags & MSG_TRUNC) != 0, m.msg_namelen);

    // Connected: only the peer's datagrams arrive.
    int c = socket(AF_INET, SOCK_DGRAM, 0);
    E2E_T("connect", connect(c, (struct sockaddr *)&ra, sizeof ra));
    struct sockaddr_in ca;
    socklen_t cl = sizeof ca;
    getsockname(c, (struct sockaddr *)&ca, &cl);
    E2E_T("connect receiver to c", connect(r, (struct sockaddr *)&ca, sizeof ca));
    E2E_T("stranger sends", sendto(s, "no", 2, 0, (struct sockaddr *)&ra, sizeof ra));
    E2E_T("peer sends", send(c, "yes", 3, 0));
    E2E_T("recv", recv(r, buf, sizeof buf, 0));
    E2E_T("recv again, MSG_DONTWAIT", recv(r, buf, sizeof buf, MSG_DONTWAIT));
    struct sockaddr_in pa;
    socklen_t pl = sizeof pa;
    E2E_T("getpeername", getpeername(c, (struct sockaddr *)&pa, &pl));
    E2E_T("getpeername unconnected", getpeername(s, (struct sockaddr *)&pa, &pl));
    struct sockaddr un = {.sa_family = AF_UNSPEC};
    E2E_T("disconnect", connect(r, &un, sizeof un));
    E2E_T("getpeername after disconnect", getpeername(r, (struct sockaddr *)&pa, &pl));
    // A port bound as 0 is given up by the disconnect (Linux's SOCK_BINDPORT_LOCK).
    struct sockaddr_in after;
    socklen_t al = sizeof after;
    getsockname(r, (struct sockaddr *)&after, &al);
    printf("port after disconnect: %d\n", ntohs(after.sin_port));
    close(r);
    r = bound4(&ra);

    // A closed port refuses a connected sender.
    struct sockaddr_in gone;
    int g = bound4(&gone);
    close(g);
    int d = socket(AF_INET, SOCK_DGRAM, 0);
    connect(d, (struct sockaddr *)&gone, sizeof gone);
    E2E_T("send to closed port", send(d, "x", 1, 0));
    usleep(20000);
    E2E_T("next send", send(d, "x", 1, 0));
    E2E_T("then", send(d, "x", 1, 0));
    close(d);

    // Too big.
    char *big = calloc(1, 70000);
    E2E_T("sendto 65508", sendto(s, big, 65508, 0, (struct sockaddr *)&ra, sizeof ra));
    E2E_T("sendto 65507", sendto(s, big, 65507, 0, (struct sockaddr *)&ra, sizeof ra));
    E2E_T("recv 65507", recv(r, big, 70000, 0));
    free(big);

    // sendmmsg / recvmmsg.
    struct mmsghdr mm[3];
    struct iovec iv[3];
    char *words[3] = {"a", "bb", "ccc"};
    memset(mm, 0, sizeof mm);
    for (int i = 0; i < 3; i++) {
        iv[i].iov_base = words[i];
        iv[i].iov_len = strlen(words[i]);
        mm[i].msg_hdr.msg_iov = &iv[i];
        mm[i].msg_hdr.msg_iovlen = 1;
        mm[i].msg_hdr.msg_name = &ra;
        mm[i].msg_hdr.msg_namelen = sizeof ra;
    }
    E2E_T("sendmmsg", sendmmsg(s, mm, 3, 0));
    char rb[3][8];
    struct iovec riv[3];
    struct mmsghdr rm[3];
    memset(rm, 0, sizeof rm);
    for (int i = 0; i < 3; i++) {
        riv[i].iov_base = rb[i];
        riv[i].iov_len = sizeof rb[i];
        rm[i].msg_hdr.msg_iov = &riv[i];
        rm[i].msg_hdr.msg_iovlen = 1;
    }
    E2E_T("recvmmsg", recvmmsg(r, rm, 3, MSG_DONTWAIT, NULL));
    printf("lens %u %u %u\n", rm[0].msg_len, rm[1].msg_len, rm[2].msg_len);

    // SO_RCVTIMEO.
    struct timeval tv = {0, 50000};
    setsockopt(r, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    E2E_T("recv with timeout", recv(r, buf, sizeof buf, 0));

    // Two sockets on one port with SO_REUSEADDR.
    int one = 1;
    struct sockaddr_in sh = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int u1 = socket(AF_INET, SOCK_DGRAM, 0), u2 = socket(AF_INET, SOCK_DGRAM, 0);
    setsockopt(u1, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    bind(u1, (struct sockaddr *)&sh, sizeof sh);
    socklen_t shl = sizeof sh;
    getsockname(u1, (struct sockaddr *)&sh, &shl);
    E2E_T("second bind without SO_REUSEADDR", bind(u2, (struct sockaddr *)&sh, sizeof sh));
    setsockopt(u2, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    E2E_T("second bind with SO_REUSEADDR", bind(u2, (struct sockaddr *)&sh, sizeof sh));
    E2E_T("shutdown unconnected", shutdown(u1, SHUT_RD));
    printf("buffers %d\n", ({ int v; socklen_t l = sizeof v; getsockopt(u1, SOL_SOCKET, SO_RCVBUF, &v, &l); v; }));

    // IPv6.
    int r6 = socket(AF_INET6, SOCK_DGRAM, 0);
    struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_addr = in6addr_loopback};
    E2E_T("bind ::1", bind(r6, (struct sockaddr *)&a6, sizeof a6));
    socklen_t l6 = sizeof a6;
    getsockname(r6, (struct sockaddr *)&a6, &l6);
    int s6 = socket(AF_INET6, SOCK_DGRAM, 0);
    E2E_T("sendto ::1", sendto(s6, "six", 3, 0, (struct sockaddr *)&a6, sizeof a6));
    struct sockaddr_in6 f6;
    socklen_t f6l = sizeof f6;
    memset(buf, 0, sizeof buf);
    E2E_T("recvfrom ::1", recvfrom(r6, buf, sizeof buf, 0, (struct sockaddr *)&f6, &f6l));
    char txt[64];
    printf("v6 got %s from %s len %u\n", buf, inet_ntop(AF_INET6, &f6.sin6_addr, txt, sizeof txt), f6l);
    // A dual-stack socket hears IPv4 and reports it mapped.
    int dual = socket(AF_INET6, SOCK_DGRAM, 0);
    struct sockaddr_in6 any6 = {.sin6_family = AF_INET6, .sin6_addr = in6addr_any};
    bind(dual, (struct sockaddr *)&any6, sizeof any6);
    l6 = sizeof any6;
    getsockname(dual, (struct sockaddr *)&any6, &l6);
    struct sockaddr_in to4 = {.sin_family = AF_INET, .sin_port = any6.sin6_port,
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    E2E_T("v4 to dual-stack", sendto(s, "four", 4, 0, (struct sockaddr *)&to4, sizeof to4));
    f6l = sizeof f6;
    memset(buf, 0, sizeof buf);
    E2E_T("recvfrom dual", recvfrom(dual, buf, sizeof buf, 0, (struct sockaddr *)&f6, &f6l));
    printf("dual got %s from %s\n", buf, inet_ntop(AF_INET6, &f6.sin6_addr, txt, sizeof txt));
    E2E_T("listen on UDP", listen(r6, 1));
    E2E_T("socketpair AF_INET", socketpair(AF_INET, SOCK_DGRAM, 0, (int[2]){0, 0}));
    E2E_T("ping socket", socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP));
    E2E_T("stream with UDP", socket(AF_INET, SOCK_STREAM, IPPROTO_UDP));
    E2E_T("seqpacket", socket(AF_INET, SOCK_SEQPACKET, 0));
    return 0;
}
