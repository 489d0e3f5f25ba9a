// Control messages and TCP urgent data on internet sockets over loopback, printed
// so a run under --network=host (host sockets) can be compared with a native run
// in the same network namespace (tests/tests/hostnet.rs): IP_PKTINFO, IP_TTL,
// IP_TOS, IPV6_PKTINFO/HOPLIMIT/TCLASS received and sent, truncation
// (MSG_CTRUNC), SO_TIMESTAMP/SO_TIMESTAMPNS present, SCM_RIGHTS refused; MSG_OOB
// with and without SO_OOBINLINE, SIOCATMARK, POLLPRI, urgent data on UDP, and
// SIGURG to the F_SETOWN owner.
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static void show_cmsgs(const char *what, struct msghdr *m, ssize_t n) {
    printf("%s: n=%zd flags=%#x controllen=%zu\n", what, n, m->msg_flags & ~MSG_CMSG_CLOEXEC,
           (size_t)m->msg_controllen);
    for (struct cmsghdr *c = CMSG_FIRSTHDR(m); c; c = CMSG_NXTHDR(m, c)) {
        unsigned char *d = CMSG_DATA(c);
        printf("  cmsg level %d type %d len %zu", c->cmsg_level, c->cmsg_type, (size_t)c->cmsg_len);
        if (c->cmsg_len < CMSG_LEN(sizeof(int))) {
            // Cut by MSG_CTRUNC: no value to show.
        } else if (c->cmsg_level == SOL_IP && c->cmsg_type == IP_PKTINFO &&
                   c->cmsg_len < CMSG_LEN(sizeof(struct in_pktinfo))) {
        } else if (c->cmsg_level == SOL_IPV6 && c->cmsg_type == IPV6_PKTINFO &&
                   c->cmsg_len < CMSG_LEN(sizeof(struct in6_pktinfo))) {
        } else if (c->cmsg_level == SOL_IP && c->cmsg_type == IP_PKTINFO) {
            struct in_pktinfo pi;
            memcpy(&pi, d, sizeof pi);
            char a[32], b[32];
            inet_ntop(AF_INET, &pi.ipi_spec_dst, a, sizeof a);
            inet_ntop(AF_INET, &pi.ipi_addr, b, sizeof b);
            printf(" ifindex %d spec_dst %s addr %s", pi.ipi_ifindex, a, b);
        } else if (c->cmsg_level == SOL_IP && (c->cmsg_type == IP_TTL)) {
            int v;
            memcpy(&v, d, sizeof v);
            printf(" ttl %d", v);
        } else if (c->cmsg_level == SOL_IP && c->cmsg_type == IP_TOS) {
            printf(" tos %#x", d[0]);
        } else if (c->cmsg_level == SOL_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
            struct in6_pktinfo pi;
            memcpy(&pi, d, sizeof pi);
            char a[64];
            inet_ntop(AF_INET6, &pi.ipi6_addr, a, sizeof a);
            printf(" ifindex %d addr %s", pi.ipi6_ifindex, a);
        } else if (c->cmsg_level == SOL_IPV6 &&
                   (c->cmsg_type == IPV6_HOPLIMIT || c->cmsg_type == IPV6_TCLASS)) {
            int v;
            memcpy(&v, d, sizeof v);
            printf(" value %d", v);
        } else if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_TIMESTAMP) {
            struct timeval tv, now;
            memcpy(&tv, d, sizeof tv);
            gettimeofday(&now, NULL);
            long diff = (now.tv_sec - tv.tv_sec) * 1000000L + (now.tv_usec - tv.tv_usec);
            printf(" timestamp %s", diff >= 0 && diff < 5000000 ? "recent" : "off");
        } else if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_TIMESTAMPNS) {
            struct timespec ts, now;
            memcpy(&ts, d, sizeof ts);
            clock_gettime(CLOCK_REALTIME, &now);
            long diff = (now.tv_sec - ts.tv_sec);
            printf(" timestampns %s", diff >= 0 && diff < 5 ? "recent" : "off");
        }
        printf("\n");
    }
}

static int on = 1;

static void udp_case(int family) {
    int a = socket(family, SOCK_DGRAM, 0), b = socket(family, SOCK_DGRAM, 0);
    struct sockaddr_storage sa;
    socklen_t sl;
    memset(&sa, 0, sizeof sa);
    if (family == AF_INET) {
        struct sockaddr_in *s4 = (void *)&sa;
        s4->sin_family = AF_INET;
        s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        sl = sizeof *s4;
        setsockopt(b, SOL_IP, IP_PKTINFO, &on, sizeof on);
        setsockopt(b, SOL_IP, IP_RECVTTL, &on, sizeof on);
        setsockopt(b, SOL_IP, IP_RECVTOS, &on, sizeof on);
    } else {
        struct sockaddr_in6 *s6 = (void *)&sa;
        s6->sin6_family = AF_INET6;
        s6->sin6_addr = in6addr_loopback;
        sl = sizeof *s6;
        setsockopt(b, SOL_IPV6, IPV6_RECVPKTINFO, &on, sizeof on);
        setsockopt(b, SOL_IPV6, IPV6_RECVHOPLIMIT, &on, sizeof on);
        setsockopt(b, SOL_IPV6, IPV6_RECVTCLASS, &on, sizeof on);
    }
    if (bind(b, (void *)&sa, sl) != 0) {
        printf("bind: %s\n", strerror(errno));
        return;
    }
    getsockname(b, (void *)&sa, &sl);

    // 1: plain send; socket defaults.
    sendto(a, "one", 3, 0, (void *)&sa, sl);
    // 2: TTL/hop limit and TOS/class from the message.
    char cbuf[256];
    memset(cbuf, 0, sizeof cbuf);
    struct iovec iov = {.iov_base = "two", .iov_len = 3};
    struct msghdr m = {.msg_name = &sa, .msg_namelen = sl, .msg_iov = &iov, .msg_iovlen = 1,
                       .msg_control = cbuf};
    struct cmsghdr *c = (void *)cbuf;
    int v1 = 33, v2 = 0x20;
    if (family == AF_INET) {
        c->cmsg_level = SOL_IP, c->cmsg_type = IP_TTL, c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &v1, sizeof v1);
        c = (void *)((char *)c + CMSG_SPACE(sizeof(int)));
        c->cmsg_level = SOL_IP, c->cmsg_type = IP_TOS, c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &v2, sizeof v2);
    } else {
        c->cmsg_level = SOL_IPV6, c->cmsg_type = IPV6_HOPLIMIT, c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &v1, sizeof v1);
        c = (void *)((char *)c + CMSG_SPACE(sizeof(int)));
        c->cmsg_level = SOL_IPV6, c->cmsg_type = IPV6_TCLASS, c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &v2, sizeof v2);
    }
    m.msg_controllen = 2 * CMSG_SPACE(sizeof(int));
    ssize_t r = sendmsg(a, &m, 0);
    printf("sendmsg with ttl/tos: %zd %s\n", r, r < 0 ? strerror(errno) : "");
    // A bad TTL, an SCM_RIGHTS, a cut header.
    v1 = 300;
    memset(cbuf, 0, sizeof cbuf);
    c = (void *)cbuf;
    c->cmsg_level = family == AF_INET ? SOL_IP : SOL_IPV6;
    c->cmsg_type = family == AF_INET ? IP_TTL : IPV6_HOPLIMIT;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &v1, sizeof v1);
    m.msg_controllen = CMSG_SPACE(sizeof(int));
    r = sendmsg(a, &m, 0);
    printf("sendmsg bad ttl: %zd %s\n", r, r < 0 ? strerror(errno) : "");
    c->cmsg_level = SOL_SOCKET, c->cmsg_type = SCM_RIGHTS;
    int fd0 = 0;
    memcpy(CMSG_DATA(c), &fd0, sizeof fd0);
    r = sendmsg(a, &m, 0);
    printf("sendmsg SCM_RIGHTS: %zd %s\n", r, r < 0 ? strerror(errno) : "");
    c->cmsg_level = SOL_IP, c->cmsg_type = IP_TTL, c->cmsg_len = 8;
    r = sendmsg(a, &m, 0);
    printf("sendmsg short cmsg_len: %zd %s\n", r, r < 0 ? strerror(errno) : "");

    for (int i = 0; i < 2; i++) {
        char buf[64], cb[512], name[128];
        struct iovec ri = {.iov_base = buf, .iov_len = sizeof buf};
        struct msghdr rm = {.msg_name = name, .msg_namelen = sizeof name, .msg_iov = &ri,
                            .msg_iovlen = 1, .msg_control = cb, .msg_controllen = sizeof cb};
        r = recvmsg(b, &rm, 0);
        show_cmsgs(i == 0 ? "recv one" : "recv two", &rm, r);
    }
    // Truncated control: room for one message only, then none.
    sendto(a, "three", 5, 0, (void *)&sa, sl);
    sendto(a, "four", 4, 0, (void *)&sa, sl);
    char buf[64], cb[CMSG_SPACE(sizeof(int))];
    memset(cb, 0, sizeof cb);
    struct iovec ri = {.iov_base = buf, .iov_len = sizeof buf};
    struct msghdr rm = {.msg_iov = &ri, .msg_iovlen = 1, .msg_control = cb,
                        .msg_controllen = sizeof cb};
    r = recvmsg(b, &rm, 0);
    show_cmsgs("recv three (one cmsg room)", &rm, r);
    rm.msg_control = NULL, rm.msg_controllen = 0;
    r = recvmsg(b, &rm, 0);
    show_cmsgs("recv four (no room)", &rm, r);

    // Timestamps.
    setsockopt(b, SOL_SOCKET, SO_TIMESTAMP, &on, sizeof on);
    sendto(a, "five", 4, 0, (void *)&sa, sl);
    char cb2[512];
    rm.msg_control = cb2, rm.msg_controllen = sizeof cb2;
    r = recvmsg(b, &rm, 0);
    show_cmsgs("recv five (SO_TIMESTAMP)", &rm, r);
    int off = 0;
    setsockopt(b, SOL_SOCKET, SO_TIMESTAMP, &off, sizeof off);
    setsockopt(b, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof on);
    sendto(a, "six", 3, 0, (void *)&sa, sl);
    rm.msg_control = cb2, rm.msg_controllen = sizeof cb2;
    r = recvmsg(b, &rm, 0);
    show_cmsgs("recv six (SO_TIMESTAMPNS)", &rm, r);
    r = send(a, "x", 1, MSG_OOB);
    printf("udp send MSG_OOB: %zd %s\n", r, r < 0 ? strerror(errno) : "");
    close(a);
    close(b);
}

static void tcp_pair(int *cl, int *sv) {
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sa;
    bind(l, (void *)&sa, sl);
    listen(l, 1);
    getsockname(l, (void *)&sa, &sl);
    *cl = socket(AF_INET, SOCK_STREAM, 0);
    connect(*cl, (void *)&sa, sl);
    *sv = accept(l, NULL, NULL);
    close(l);
    setsockopt(*cl, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
}

static void wait_pri(int fd) {
    struct pollfd p = {.fd = fd, .events = POLLIN | POLLPRI};
    int r = poll(&p, 1, 2000);
    printf("poll: %d revents %#x\n", r, p.revents & (POLLIN | POLLPRI));
}

static void tcp_case(void) {
    int cl, sv;
    tcp_pair(&cl, &sv);
    // Early: Linux turns timestamping on for the whole host a little later
    // (a deferred static key), so it is on by the time "k" is sent below.
    setsockopt(sv, SOL_SOCKET, SO_TIMESTAMP, &on, sizeof on);
    char c;
    ssize_t r = recv(sv, &c, 1, MSG_OOB);
    printf("recv MSG_OOB with none: %zd %s\n", r, r < 0 ? strerror(errno) : "");
    send(cl, "abc", 3, 0);
    r = send(cl, "U", 1, MSG_OOB);
    printf("send MSG_OOB: %zd\n", r);
    send(cl, "def", 3, 0);
    usleep(100000);
    wait_pri(sv);
    int mark = -1;
    r = ioctl(sv, SIOCATMARK, &mark);
    printf("SIOCATMARK: %zd %d\n", r, mark);
    char buf[16] = {0};
    r = recv(sv, buf, sizeof buf, 0);
    printf("recv up to mark: %zd '%.*s'\n", r, (int)(r > 0 ? r : 0), buf);
    r = ioctl(sv, SIOCATMARK, &mark);
    printf("SIOCATMARK: %zd %d\n", r, mark);
    r = recv(sv, &c, 1, MSG_OOB | MSG_PEEK);
    printf("recv MSG_OOB|MSG_PEEK: %zd '%c'\n", r, r == 1 ? c : '-');
    char cb[64];
    struct iovec iov = {.iov_base = &c, .iov_len = 1};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cb,
                       .msg_controllen = sizeof cb};
    r = recvmsg(sv, &m, MSG_OOB);
    printf("recvmsg MSG_OOB: %zd '%c' flags %#x controllen %zu\n", r, r == 1 ? c : '-',
           m.msg_flags, (size_t)m.msg_controllen);
    r = recv(sv, &c, 1, MSG_OOB);
    printf("recv MSG_OOB again: %zd %s\n", r, r < 0 ? strerror(errno) : "");
    memset(buf, 0, sizeof buf);
    r = recv(sv, buf, sizeof buf, 0);
    printf("recv rest: %zd '%.*s'\n", r, (int)(r > 0 ? r : 0), buf);

    // SO_OOBINLINE: the urgent byte stays in the stream.
    setsockopt(sv, SOL_SOCKET, SO_OOBINLINE, &on, sizeof on);
    send(cl, "gh", 2, 0);
    send(cl, "V", 1, MSG_OOB);
    send(cl, "ij", 2, 0);
    usleep(100000);
    r = recv(sv, &c, 1, MSG_OOB);
    printf("inline recv MSG_OOB: %zd %s\n", r, r < 0 ? strerror(errno) : "");
    memset(buf, 0, sizeof buf);
    r = recv(sv, buf, sizeof buf, 0);
    printf("inline recv: %zd '%.*s'\n", r, (int)(r > 0 ? r : 0), buf);
    r = ioctl(sv, SIOCATMARK, &mark);
    printf("SIOCATMARK: %zd %d\n", r, mark);
    if (r == 0 && mark) {
        memset(buf, 0, sizeof buf);
        r = recv(sv, buf, sizeof buf, 0);
        printf("inline recv: %zd '%.*s'\n", r, (int)(r > 0 ? r : 0), buf);
    }
    // Timestamps on TCP.
    send(cl, "k", 1, 0);
    usleep(50000);
    m.msg_control = cb, m.msg_controllen = sizeof cb;
    r = recvmsg(sv, &m, 0);
    show_cmsgs("tcp recv (SO_TIMESTAMP)", &m, r);
    close(cl);
    close(sv);
}

static volatile sig_atomic_t urgs;
static volatile int urg_code;

static void on_urg(int sig, siginfo_t *si, void *uc) {
    (void)sig;
    (void)uc;
    urgs++;
    urg_code = si->si_code;
}

static void urg_count(const char *what) {
    usleep(100000);
    printf("%s: SIGURG %d si_code %s\n", what, (int)urgs,
           urgs ? (urg_code == SI_KERNEL ? "SI_KERNEL" : "other") : "-");
}

// SIGURG: the F_SETOWN owner of the receiving socket gets one when urgent data
// arrives, with or without O_ASYNC; none without an owner; more data while the
// urgent byte is unread sends no other; once it was read (out of band, or inline
// past the mark) the next urgent byte sends another.
static void sigurg_case(void) {
    struct sigaction sa = {.sa_sigaction = on_urg, .sa_flags = SA_SIGINFO | SA_RESTART};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGURG, &sa, NULL);
    int cl, sv;
    tcp_pair(&cl, &sv);
    char c, buf[16];
    send(cl, "U", 1, MSG_OOB);
    urg_count("no owner");
    recv(sv, &c, 1, MSG_OOB);
    printf("F_SETOWN: %d\n", fcntl(sv, F_SETOWN, getpid()));
    printf("F_GETOWN is self: %d\n", fcntl(sv, F_GETOWN) == getpid());
    send(cl, "a", 1, 0);
    urg_count("plain data");
    send(cl, "V", 1, MSG_OOB);
    urg_count("urgent byte");
    send(cl, "b", 1, 0);
    urg_count("more data, urgent unread");
    ssize_t r = recv(sv, &c, 1, MSG_OOB);
    printf("recv MSG_OOB: %zd '%c'\n", r, r == 1 ? c : '-');
    send(cl, "W", 1, MSG_OOB);
    urg_count("second urgent byte");
    r = recv(sv, buf, sizeof buf, 0);
    printf("recv: %zd\n", r);
    r = recv(sv, &c, 1, MSG_OOB);
    printf("recv MSG_OOB: %zd '%c'\n", r, r == 1 ? c : '-');
    // Inline: reading past the mark lets the next one signal.
    setsockopt(sv, SOL_SOCKET, SO_OOBINLINE, &on, sizeof on);
    send(cl, "X", 1, MSG_OOB);
    urg_count("inline urgent byte");
    memset(buf, 0, sizeof buf);
    r = recv(sv, buf, sizeof buf, 0);
    printf("inline recv: %zd '%.*s'\n", r, (int)(r > 0 ? r : 0), buf);
    send(cl, "cd", 2, 0);
    usleep(50000);
    r = recv(sv, buf, sizeof buf, 0);
    printf("inline recv: %zd\n", r);
    send(cl, "Y", 1, MSG_OOB);
    urg_count("inline urgent byte after reading past the mark");
    // With O_ASYNC too: still one SIGURG for the byte.
    fcntl(sv, F_SETFL, fcntl(sv, F_GETFL) | O_ASYNC);
    signal(SIGIO, SIG_IGN);
    r = recv(sv, buf, sizeof buf, 0);
    send(cl, "Z", 1, MSG_OOB);
    urg_count("O_ASYNC urgent byte");
    printf("F_SETOWN 0: %d\n", fcntl(sv, F_SETOWN, 0));
    r = recv(sv, buf, sizeof buf, 0);
    send(cl, "z", 1, MSG_OOB);
    urg_count("owner cleared");
    close(cl);
    close(sv);
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("== udp v4\n");
    udp_case(AF_INET);
    printf("== udp v6\n");
    udp_case(AF_INET6);
    printf("== tcp urgent\n");
    tcp_case();
    printf("== SIGURG\n");
    sigurg_case();
    return 0;
}
