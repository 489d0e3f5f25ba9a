// TCP over loopback, IPv4 and IPv6: ephemeral ports, listen/connect/accept4 with
// flags, data both ways (MSG_PEEK, MSG_WAITALL, FIONREAD), half-close, EOF,
// ECONNREFUSED, EADDRINUSE, EADDRNOTAVAIL, EPIPE with SIGPIPE (and MSG_NOSIGNAL),
// ECONNRESET, IPv4-mapped addresses and IPV6_V6ONLY, common options and TCP_INFO.
// Only deterministic facts are printed: the native run uses the host's loopback.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include "e2e.h"

static volatile int sigpipes;
static void on_pipe(int s) { (void)s; sigpipes++; }

static int listener4(struct sockaddr_in *a) {
    int l = socket(AF_INET, SOCK_STREAM, 0);
    memset(a, 0, sizeof *a);
    a->sin_family = AF_INET;
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(l, (struct sockaddr *)a, sizeof *a) != 0) perror("bind");
    socklen_t len = sizeof *a;
    getsockname(l, (struct sockaddr *)a, &len);
    listen(l, 8);
    return l;
}

static int connect4(const struct sockaddr_in *a) {
    int c = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(c, (const struct sockaddr *)a, sizeof *a) != 0) perror("connect");
    return c;
}

static int geti(int fd, int level, int name) {
    int v = -1;
    socklen_t l = sizeof v;
    if (getsockopt(fd, level, name, &v, &l) != 0) return -errno;
    return v;
}

static void basics(void) {
    struct sockaddr_in a;
    int l = listener4(&a);
    int port = ntohs(a.sin_port);
    printf("ephemeral port in range: %d\n", port >= 32768 && port <= 60999);
    printf("listener: type %d domain %d proto %d acceptconn %d\n", geti(l, SOL_SOCKET, SO_TYPE),
           geti(l, SOL_SOCKET, SO_DOMAIN) == AF_INET, geti(l, SOL_SOCKET, SO_PROTOCOL),
           geti(l, SOL_SOCKET, SO_ACCEPTCONN));
    int c = connect4(&a);
    struct sockaddr_in peer, local;
    socklen_t pl = sizeof peer, ll = sizeof local;
    int s = accept4(l, (struct sockaddr *)&peer, &pl, SOCK_CLOEXEC | SOCK_NONBLOCK);
    printf("accept4: %s, cloexec %d, nonblock %d, addrlen %u\n", s >= 0 ? "ok" : strerrorname_np(errno),
           (fcntl(s, F_GETFD) & FD_CLOEXEC) != 0, (fcntl(s, F_GETFL) & O_NONBLOCK) != 0, pl);
    getsockname(c, (struct sockaddr *)&local, &ll);
    printf("peer is the client: %d, peer addr %s\n",
           peer.sin_port == local.sin_port && peer.sin_addr.s_addr == local.sin_addr.s_addr,
           inet_ntoa(peer.sin_addr));
    socklen_t pl2 = sizeof peer;
    getpeername(c, (struct sockaddr *)&peer, &pl2);
    printf("client's peer is the listener: %d\n", peer.sin_port == a.sin_port);
    printf("acceptconn of accepted: %d\n", geti(s, SOL_SOCKET, SO_ACCEPTCONN));

    char buf[256];
    E2E_T("recv empty nonblocking", recv(s, buf, sizeof buf, 0));
    E2E_T("send hello", send(c, "hello", 5, 0));
    usleep(20000);
    int n = -1;
    ioctl(s, FIONREAD, &n);
    printf("FIONREAD: %d\n", n);
    E2E_T("peek", recv(s, buf, 3, MSG_PEEK));
    E2E_T("read", read(s, buf, sizeof buf));
    printf("got: %.5s\n", buf);

    // A large transfer the other way, read with MSG_WAITALL.
    size_t big = 300000;
    char *out = malloc(big), *in = malloc(big);
    for (size_t i = 0; i < big; i++) out[i] = (char)(i * 7 + i / 251);
    pid_t w = fork();
    if (w == 0) {
        int fl = fcntl(s, F_GETFL);
        fcntl(s, F_SETFL, fl & ~O_NONBLOCK);
        size_t done = 0;
        while (done < big) {
            ssize_t k = write(s, out + done, big - done);
            if (k <= 0) _exit(1);
            done += k;
        }
        _exit(0);
    }
    ssize_t got = recv(c, in, big, MSG_WAITALL);
    printf("waitall got %zd, same %d\n", got, got == (ssize_t)big && memcmp(in, out, big) == 0);
    waitpid(w, NULL, 0);

    // Half-close: the client stops writing, the server sees EOF and still answers.
    E2E_T("shutdown wr", shutdown(c, SHUT_WR));
    usleep(20000);
    E2E_T("server reads EOF", read(s, buf, sizeof buf));
    E2E_T("client write after shutdown", send(c, "x", 1, MSG_NOSIGNAL));
    E2E_T("server answers", write(s, "bye", 3));
    E2E_T("client reads", read(c, buf, sizeof buf));
    close(s);
    usleep(20000);
    E2E_T("client reads EOF", read(c, buf, sizeof buf));
    close(c);

    // Another bind to the listener's port.
    int d = socket(AF_INET, SOCK_STREAM, 0);
    E2E_T("bind taken port", bind(d, (struct sockaddr *)&a, sizeof a));
    int one = 1;
    setsockopt(d, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    E2E_T("bind taken port, both reuseaddr, listening", bind(d, (struct sockaddr *)&a, sizeof a));
    close(d);
    close(l);

    // Nobody listens on a port that is bound but not listening.
    int b = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in ba = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bind(b, (struct sockaddr *)&ba, sizeof ba);
    socklen_t bl = sizeof ba;
    getsockname(b, (struct sockaddr *)&ba, &bl);
    int r = socket(AF_INET, SOCK_STREAM, 0);
    E2E_T("connect to non-listener", connect(r, (struct sockaddr *)&ba, sizeof ba));
    close(r);
    close(b);

    struct sockaddr_in far = {.sin_family = AF_INET, .sin_addr.s_addr = inet_addr("192.0.2.1")};
    int e = socket(AF_INET, SOCK_STREAM, 0);
    E2E_T("bind non-local", bind(e, (struct sockaddr *)&far, sizeof far));
    E2E_T("bind short addrlen", bind(e, (struct sockaddr *)&far, 8));
    struct sockaddr_in6 wrong = {.sin6_family = AF_INET6};
    E2E_T("bind other family", bind(e, (struct sockaddr *)&wrong, sizeof wrong));
    E2E_T("send unconnected", send(e, "x", 1, MSG_NOSIGNAL));
    E2E_T("recv unconnected", recv(e, buf, 1, 0));
    E2E_T("getpeername unconnected", getpeername(e, (struct sockaddr *)&far, &bl));
    E2E_T("accept not listening", accept(e, NULL, NULL));
    E2E_T("shutdown unconnected", shutdown(e, SHUT_RDWR));
    close(e);
    free(out);
    free(in);
}

static void errors_on_close(void) {
    struct sockaddr_in a;
    int l = listener4(&a);
    char buf[16];
    // EPIPE after the peer closed: the first write is accepted, the RST it draws
    // makes the next fail.
    int c = connect4(&a);
    int s = accept(l, NULL, NULL);
    close(s);
    usleep(50000);
    E2E_T("read after peer close", read(c, buf, sizeof buf));
    E2E_T("first write after peer close", write(c, "a", 1));
    usleep(50000);
    E2E_T("second write", write(c, "b", 1));
    printf("sigpipes: %d\n", sigpipes);
    E2E_T("send MSG_NOSIGNAL", send(c, "c", 1, MSG_NOSIGNAL));
    printf("sigpipes: %d\n", sigpipes);
    close(c);

    // ECONNRESET: the peer closed with data it never read.
    c = connect4(&a);
    s = accept(l, NULL, NULL);
    write(c, "unread", 6);
    usleep(20000);
    close(s);
    usleep(50000);
    E2E_T("read after reset", read(c, buf, sizeof buf));
    E2E_T("read again", read(c, buf, sizeof buf));
    close(c);

    // SO_LINGER with a zero timeout resets too.
    c = connect4(&a);
    s = accept(l, NULL, NULL);
    struct linger lg = {1, 0};
    setsockopt(s, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(s);
    usleep(50000);
    E2E_T("read after linger-0 close", read(c, buf, sizeof buf));
    close(c);
    close(l);
}

static void options(void) {
    struct sockaddr_in a;
    int l = listener4(&a);
    int c = connect4(&a);
    int s = accept(l, NULL, NULL);
    int v = 1;
    E2E_T("TCP_NODELAY", setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &v, sizeof v));
    printf("nodelay %d cork %d\n", geti(c, IPPROTO_TCP, TCP_NODELAY), geti(c, IPPROTO_TCP, TCP_CORK));
    E2E_T("SO_KEEPALIVE", setsockopt(c, SOL_SOCKET, SO_KEEPALIVE, &v, sizeof v));
    v = 30;
    setsockopt(c, IPPROTO_TCP, TCP_KEEPIDLE, &v, sizeof v);
    v = 5;
    setsockopt(c, IPPROTO_TCP, TCP_KEEPINTVL, &v, sizeof v);
    v = 3;
    setsockopt(c, IPPROTO_TCP, TCP_KEEPCNT, &v, sizeof v);
    printf("keepalive %d idle %d intvl %d cnt %d\n", geti(c, SOL_SOCKET, SO_KEEPALIVE),
           geti(c, IPPROTO_TCP, TCP_KEEPIDLE), geti(c, IPPROTO_TCP, TCP_KEEPINTVL),
           geti(c, IPPROTO_TCP, TCP_KEEPCNT));
    v = 0;
    E2E_T("TCP_KEEPIDLE 0", setsockopt(c, IPPROTO_TCP, TCP_KEEPIDLE, &v, sizeof v));
    v = 65536;
    setsockopt(c, SOL_SOCKET, SO_RCVBUF, &v, sizeof v);
    setsockopt(c, SOL_SOCKET, SO_SNDBUF, &v, sizeof v);
    printf("rcvbuf %d sndbuf %d\n", geti(c, SOL_SOCKET, SO_RCVBUF), geti(c, SOL_SOCKET, SO_SNDBUF));
    v = 0x10;
    setsockopt(c, IPPROTO_IP, IP_TOS, &v, sizeof v);
    printf("tos %#x ttl %d\n", geti(c, IPPROTO_IP, IP_TOS), geti(c, IPPROTO_IP, IP_TTL));
    struct linger lg = {1, 7}, lg2;
    socklen_t ll = sizeof lg2;
    setsockopt(c, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    getsockopt(c, SOL_SOCKET, SO_LINGER, &lg2, &ll);
    printf("linger %d %d\n", lg2.l_onoff, lg2.l_linger);
    printf("error %d reuseaddr %d\n", geti(c, SOL_SOCKET, SO_ERROR), geti(c, SOL_SOCKET, SO_REUSEADDR));
    struct timeval tv = {0, 100000};
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char buf[4];
    E2E_T("recv with SO_RCVTIMEO", recv(s, buf, sizeof buf, 0));
    struct tcp_info ti;
    socklen_t tl = sizeof ti;
    getsockopt(c, IPPROTO_TCP, TCP_INFO, &ti, &tl);
    printf("tcp_info state: connected %d", ti.tcpi_state);
    tl = sizeof ti;
    getsockopt(l, IPPROTO_TCP, TCP_INFO, &ti, &tl);
    printf(", listener %d", ti.tcpi_state);
    tl = sizeof ti;
    int fresh = socket(AF_INET, SOCK_STREAM, 0);
    getsockopt(fresh, IPPROTO_TCP, TCP_INFO, &ti, &tl);
    printf(", fresh %d\n", ti.tcpi_state);
    E2E_T("unknown option", getsockopt(c, SOL_SOCKET, 9999, &v, &ll));
    close(fresh);
    close(s);
    close(c);
    close(l);
}

static void ipv6(void) {
    char txt[64];
    // ::1 to ::1.
    int l = socket(AF_INET6, SOCK_STREAM, 0);
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_addr = in6addr_loopback};
    E2E_T("bind ::1", bind(l, (struct sockaddr *)&a, sizeof a));
    socklen_t len = sizeof a;
    getsockname(l, (struct sockaddr *)&a, &len);
    listen(l, 4);
    int c = socket(AF_INET6, SOCK_STREAM, 0);
    E2E_T("connect ::1", connect(c, (struct sockaddr *)&a, sizeof a));
    struct sockaddr_in6 p;
    socklen_t pl = sizeof p;
    int s = accept(l, (struct sockaddr *)&p, &pl);
    printf("v6 peer %s len %u\n", inet_ntop(AF_INET6, &p.sin6_addr, txt, sizeof txt), pl);
    write(c, "six", 3);
    char buf[8] = {0};
    read(s, buf, sizeof buf);
    printf("v6 got %s\n", buf);
    close(s);
    close(c);
    close(l);

    // A dual-stack listener on :: takes an IPv4 client as ::ffff:127.0.0.1.
    l = socket(AF_INET6, SOCK_STREAM, 0);
    struct sockaddr_in6 any = {.sin6_family = AF_INET6, .sin6_addr = in6addr_any};
    bind(l, (struct sockaddr *)&any, sizeof any);
    len = sizeof any;
    getsockname(l, (struct sockaddr *)&any, &len);
    listen(l, 4);
    struct sockaddr_in v4 = {.sin_family = AF_INET, .sin_port = any.sin6_port,
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    c = socket(AF_INET, SOCK_STREAM, 0);
    E2E_T("v4 client to dual-stack listener", connect(c, (struct sockaddr *)&v4, sizeof v4));
    pl = sizeof p;
    s = accept(l, (struct sockaddr *)&p, &pl);
    printf("mapped peer %s\n", inet_ntop(AF_INET6, &p.sin6_addr, txt, sizeof txt));
    pl = sizeof p;
    getsockname(s, (struct sockaddr *)&p, &pl);
    printf("mapped local %s\n", inet_ntop(AF_INET6, &p.sin6_addr, txt, sizeof txt));
    close(s);
    close(c);
    // A v6 client to ::ffff:127.0.0.1.
    int c6 = socket(AF_INET6, SOCK_STREAM, 0);
    struct sockaddr_in6 m = {.sin6_family = AF_INET6, .sin6_port = any.sin6_port};
    inet_pton(AF_INET6, "::ffff:127.0.0.1", &m.sin6_addr);
    E2E_T("v6 client to mapped address", connect(c6, (struct sockaddr *)&m, sizeof m));
    pl = sizeof p;
    getsockname(c6, (struct sockaddr *)&p, &pl);
    printf("v6 client's local %s\n", inet_ntop(AF_INET6, &p.sin6_addr, txt, sizeof txt));
    close(c6);
    close(l);

    // IPV6_V6ONLY: the listener no longer hears IPv4, and may share the port with it.
    l = socket(AF_INET6, SOCK_STREAM, 0);
    int one = 1;
    E2E_T("IPV6_V6ONLY", setsockopt(l, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one));
    any.sin6_port = 0;
    bind(l, (struct sockaddr *)&any, sizeof any);
    len = sizeof any;
    getsockname(l, (struct sockaddr *)&any, &len);
    listen(l, 4);
    printf("v6only %d\n", geti(l, IPPROTO_IPV6, IPV6_V6ONLY));
    E2E_T("V6ONLY after bind", setsockopt(l, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one));
    v4.sin_port = any.sin6_port;
    c = socket(AF_INET, SOCK_STREAM, 0);
    E2E_T("v4 client to v6only listener", connect(c, (struct sockaddr *)&v4, sizeof v4));
    close(c);
    c6 = socket(AF_INET6, SOCK_STREAM, 0);
    setsockopt(c6, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    E2E_T("v6only client to mapped", connect(c6, (struct sockaddr *)&m, sizeof m));
    close(c6);
    close(l);
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    signal(SIGPIPE, on_pipe);
    basics();
    errors_on_close();
    options();
    ipv6();
    return 0;
}
