// IP_RECVERR / IPV6_RECVERR on UDP over loopback, IPv4 and IPv6: a datagram to a
// closed port puts an ICMP port unreachable in the sender's error queue, connected
// or not, and sets its pending error (POLLERR). recvmsg(MSG_ERRQUEUE) gives the
// quoted payload (cut to what the ICMP message holds, MSG_TRUNC when the buffer is
// short), the datagram's destination as msg_name and a sock_extended_err with the
// offender; it never waits (EAGAIN when empty), and reading an error leaves the
// pending error at the next queued one's. Turning the option off empties the queue.
// TCP and ping sockets answer MSG_ERRQUEUE with EAGAIN. An IPv6 socket keeps the
// two options apart (apart() below). Natively in a fresh network namespace
// (net_common_ns.h).
// e2e: timeout=30
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <linux/errqueue.h>
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

static int family;

static void show_addr(const char *what, const struct sockaddr *sa, socklen_t len)
{
    char buf[INET6_ADDRSTRLEN] = "?";
    int port = -1;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *a = (const void *)sa;
        inet_ntop(AF_INET, &a->sin_addr, buf, sizeof buf);
        port = ntohs(a->sin_port) != 0;
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const void *)sa;
        inet_ntop(AF_INET6, &a->sin6_addr, buf, sizeof buf);
        port = ntohs(a->sin6_port) != 0;
        printf("%s scope %u flow %u ", what, a->sin6_scope_id, a->sin6_flowinfo);
    }
    printf("%s len %u family %d addr %s port-set %d\n", what, (unsigned)len, sa->sa_family,
           buf, port);
}

// One recvmsg(MSG_ERRQUEUE) into a buffer of `room` bytes, printed.
static void read_err(int s, size_t room, const char *label)
{
    char data[4096];
    union {
        char b[256];
        struct cmsghdr align;
    } ctl;
    struct sockaddr_storage name;
    memset(&name, 0, sizeof name);
    struct iovec iov = {data, room};
    struct msghdr m = {.msg_name = &name,
                       .msg_namelen = sizeof name,
                       .msg_iov = &iov,
                       .msg_iovlen = 1,
                       .msg_control = ctl.b,
                       .msg_controllen = sizeof ctl.b};
    errno = 0;
    long n = recvmsg(s, &m, MSG_ERRQUEUE);
    if (n < 0) {
        printf("%s: -1 %s\n", label, strerrorname_np(errno));
        return;
    }
    int same = 1;
    for (long i = 0; i < n; i++)
        same &= data[i] == (char)('a' + i % 26);
    printf("%s: %ld payload-ok %d flags ERRQUEUE %d TRUNC %d CTRUNC %d\n", label, n, same,
           !!(m.msg_flags & MSG_ERRQUEUE), !!(m.msg_flags & MSG_TRUNC),
           !!(m.msg_flags & MSG_CTRUNC));
    show_addr(" name", (struct sockaddr *)&name, m.msg_namelen);
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
        printf(" cmsg level %d type %d len %zu\n", c->cmsg_level, c->cmsg_type,
               (size_t)c->cmsg_len);
        if ((c->cmsg_level == SOL_IP && c->cmsg_type == IP_RECVERR) ||
            (c->cmsg_level == SOL_IPV6 && c->cmsg_type == IPV6_RECVERR)) {
            struct sock_extended_err *e = (void *)CMSG_DATA(c);
            printf(" ee errno %s origin %u type %u code %u pad %u info %u data %u\n",
                   strerrorname_np(e->ee_errno), e->ee_origin, e->ee_type, e->ee_code,
                   e->ee_pad, e->ee_info, e->ee_data);
            show_addr(" offender", SO_EE_OFFENDER(e),
                      c->cmsg_len - CMSG_LEN(sizeof *e));
        }
    }
}

static void so_error(int s, const char *label)
{
    int err = -1;
    socklen_t el = sizeof err;
    getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &el);
    printf("%s SO_ERROR %s\n", label, err ? strerrorname_np(err) : "0");
}

static void pollerr(int s, const char *label)
{
    struct pollfd p = {s, POLLIN, 0};
    poll(&p, 1, 1000);
    printf("%s revents POLLERR %d POLLIN %d\n", label, !!(p.revents & POLLERR),
           !!(p.revents & POLLIN));
}

static int recverr(int s, int on)
{
    if (family == AF_INET)
        return setsockopt(s, SOL_IP, IP_RECVERR, &on, sizeof on);
    return setsockopt(s, SOL_IPV6, IPV6_RECVERR, &on, sizeof on);
}

static void run(int fam)
{
    family = fam;
    char payload[2000];
    for (size_t i = 0; i < sizeof payload; i++)
        payload[i] = (char)('a' + i % 26);
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

    // Unconnected, with the option: the error is queued and pending.
    int u = socket(family, SOCK_DGRAM, 0);
    T("recverr on", recverr(u, 1));
    int v = -1;
    socklen_t vl = sizeof v;
    if (family == AF_INET)
        getsockopt(u, SOL_IP, IP_RECVERR, &v, &vl);
    else
        getsockopt(u, SOL_IPV6, IPV6_RECVERR, &v, &vl);
    printf("getsockopt %d\n", v);
    read_err(u, 100, "empty queue");
    T("sendto 100", sendto(u, payload, 100, 0, (struct sockaddr *)&ss, len));
    pollerr(u, "after one");
    read_err(u, 100, "errqueue");
    so_error(u, "after reading");
    read_err(u, 100, "errqueue again");
    pollerr(u, "emptied");

    // Two errors (a send with one pending would fail with it: SO_ERROR clears it
    // first): a plain recv takes the pending error, the queue keeps both; reading
    // the first leaves the second's error pending. The long datagram's payload is
    // cut to what the ICMP message quotes.
    T("sendto 10", sendto(u, payload, 10, 0, (struct sockaddr *)&ss, len));
    usleep(50000);
    so_error(u, "first pending");
    T("sendto 1500", sendto(u, payload, 1500, 0, (struct sockaddr *)&ss, len));
    usleep(50000);
    char b[16];
    T("recv", recv(u, b, sizeof b, MSG_DONTWAIT));
    T("recv again", recv(u, b, sizeof b, MSG_DONTWAIT));
    read_err(u, 4, "short buffer");
    so_error(u, "second pending");
    read_err(u, sizeof payload, "the long one");
    so_error(u, "none left");

    // A sendto with the error pending fails with it.
    T("sendto 5", sendto(u, payload, 5, 0, (struct sockaddr *)&ss, len));
    usleep(50000);
    T("sendto with error", sendto(u, payload, 5, 0, (struct sockaddr *)&ss, len));
    usleep(50000);
    // Turning the option off empties the queue.
    T("recverr off", recverr(u, 0));
    read_err(u, 100, "after off");
    so_error(u, "after off");
    T("sendto without", sendto(u, payload, 5, 0, (struct sockaddr *)&ss, len));
    usleep(50000);
    read_err(u, 100, "nothing queued");
    so_error(u, "unconnected without");
    close(u);

    // Connected, with the option.
    int c = socket(family, SOCK_DGRAM, 0);
    recverr(c, 1);
    T("connect", connect(c, (struct sockaddr *)&ss, len));
    T("send", send(c, payload, 26, 0));
    pollerr(c, "connected");
    read_err(c, 100, "connected errqueue");
    so_error(c, "connected");
    close(c);

    // Other sockets' error queues stay empty.
    int l = socket(family, SOCK_STREAM, 0);
    T("listen", listen(l, 1));
    struct sockaddr_storage la;
    socklen_t ll = sizeof la;
    getsockname(l, (struct sockaddr *)&la, &ll);
    int k = socket(family, SOCK_STREAM, 0);
    T("tcp connect", connect(k, (struct sockaddr *)&la, ll));
    read_err(k, 100, "tcp errqueue");
    close(k);
    close(l);
}

// An IPv6 socket keeps IP_RECVERR and IPV6_RECVERR apart: an error about its
// v4-mapped traffic (ICMP) is queued only under IP_RECVERR, one about IPv6 traffic
// (ICMPv6) only under IPV6_RECVERR; without the matching option only a connected
// socket hears of it (pending error, no queue). Turning either off empties the
// whole queue and leaves the pending error.
static void apart(void)
{
    static const char *dsts[2] = {"::ffff:127.0.0.1", "::1"};
    printf("-- IPv6 socket, IP_RECVERR and IPV6_RECVERR apart\n");
    family = AF_INET6;
    for (int di = 0; di < 2; di++)
        for (int mode = 0; mode < 4; mode++)
            for (int conn = 0; conn < 2; conn++) {
                struct sockaddr_in6 a = {.sin6_family = AF_INET6};
                inet_pton(AF_INET6, dsts[di], &a.sin6_addr);
                int t = socket(AF_INET6, SOCK_DGRAM, 0);
                bind(t, (struct sockaddr *)&a, sizeof a);
                socklen_t l = sizeof a;
                getsockname(t, (struct sockaddr *)&a, &l);
                close(t);
                int s = socket(AF_INET6, SOCK_DGRAM, 0);
                int on = 1, g4 = -1, g6 = -1;
                if (mode & 1)
                    T(" set IP_RECVERR", setsockopt(s, SOL_IP, IP_RECVERR, &on, sizeof on));
                if (mode & 2)
                    T(" set IPV6_RECVERR",
                      setsockopt(s, SOL_IPV6, IPV6_RECVERR, &on, sizeof on));
                socklen_t gl = sizeof g4;
                getsockopt(s, SOL_IP, IP_RECVERR, &g4, &gl);
                gl = sizeof g6;
                getsockopt(s, SOL_IPV6, IPV6_RECVERR, &g6, &gl);
                printf("to %s IP_RECVERR %d IPV6_RECVERR %d connected %d\n", dsts[di], g4, g6,
                       conn);
                if (conn) {
                    connect(s, (struct sockaddr *)&a, sizeof a);
                    T(" send", send(s, "abcde", 5, 0));
                } else {
                    T(" sendto", sendto(s, "abcde", 5, 0, (struct sockaddr *)&a, sizeof a));
                }
                usleep(20000);
                struct pollfd p = {s, POLLIN, 0};
                poll(&p, 1, 0);
                printf(" POLLERR %d\n", !!(p.revents & POLLERR));
                read_err(s, 100, " errqueue");
                so_error(s, " after");
                if (mode == 3 && !conn) {
                    sendto(s, "abcde", 5, 0, (struct sockaddr *)&a, sizeof a);
                    usleep(20000);
                    int off = 0;
                    // The option of the other family.
                    if (di == 0)
                        T(" IPV6_RECVERR off",
                          setsockopt(s, SOL_IPV6, IPV6_RECVERR, &off, sizeof off));
                    else
                        T(" IP_RECVERR off", setsockopt(s, SOL_IP, IP_RECVERR, &off, sizeof off));
                    read_err(s, 100, " errqueue after off");
                    so_error(s, " after off");
                }
                close(s);
            }
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    int on = 1;
    T("IPv4 socket IPV6_RECVERR", setsockopt(s, SOL_IPV6, IPV6_RECVERR, &on, sizeof on));
    close(s);
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    fresh_netns();
    run(AF_INET);
    run(AF_INET6);
    apart();
    return 0;
}
