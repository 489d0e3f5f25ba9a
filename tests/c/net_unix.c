// AF_UNIX sockets: socketpair of each type, EOF and EPIPE, SCM_RIGHTS and
// SCM_CREDENTIALS, SO_PEERCRED, a path listener served by a child, abstract names,
// autobind, datagrams by name, poll readiness, MSG_PEEK/MSG_TRUNC/MSG_DONTWAIT,
// shutdown, and families the sandbox has no stack for.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include "e2e.h"

#define show e2e_show
#define T E2E_T

static int send_fd(int s, int fd, const char *msg)
{
    char cbuf[CMSG_SPACE(sizeof(int))] = {0};
    struct iovec iov = {(void *)msg, strlen(msg)};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
                       .msg_controllen = sizeof cbuf};
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof fd);
    return sendmsg(s, &m, 0);
}

static int recv_fd(int s, char *buf, size_t len, int *fd)
{
    char cbuf[CMSG_SPACE(sizeof(int))];
    struct iovec iov = {buf, len};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
                       .msg_controllen = sizeof cbuf};
    int n = recvmsg(s, &m, MSG_CMSG_CLOEXEC);
    *fd = -1;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
            memcpy(fd, CMSG_DATA(c), sizeof *fd);
    return n;
}

static void pairs(void)
{
    int types[] = {SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET};
    const char *names[] = {"stream", "dgram", "seqpacket"};
    for (int i = 0; i < 3; i++) {
        int sv[2];
        char b[64];
        printf("-- %s\n", names[i]);
        T("socketpair", socketpair(AF_UNIX, types[i], 0, sv));
        T("send abc", send(sv[0], "abc", 3, 0));
        T("send defg", send(sv[0], "defg", 4, 0));
        T("peek 2", recv(sv[1], b, 2, MSG_PEEK));
        T("recv 2 trunc", recv(sv[1], b, 2, MSG_TRUNC));
        T("recv 10", recv(sv[1], b, 10, 0));
        T("recv empty nonblock", recv(sv[1], b, 10, MSG_DONTWAIT));
        int type = 0;
        socklen_t l = sizeof type;
        getsockopt(sv[0], SOL_SOCKET, SO_TYPE, &type, &l);
        printf("SO_TYPE matches %d\n", type == types[i]);
        struct ucred cr;
        l = sizeof cr;
        T("SO_PEERCRED", getsockopt(sv[0], SOL_SOCKET, SO_PEERCRED, &cr, &l));
        printf("peer is me %d uid %u\n", cr.pid == getpid(), cr.uid);
        struct pollfd p[2] = {{sv[0], POLLIN | POLLOUT, 0}, {sv[1], POLLIN | POLLOUT, 0}};
        poll(p, 2, 0);
        printf("poll idle %x %x\n", p[0].revents, p[1].revents);
        T("shutdown wr", shutdown(sv[0], SHUT_WR));
        if (types[i] != SOCK_DGRAM)
            T("recv after peer shutdown", recv(sv[1], b, 10, 0));
        T("send after shutdown", send(sv[0], "x", 1, MSG_NOSIGNAL));
        close(sv[0]);
        poll(p + 1, 1, 0);
        printf("poll after close %x\n", p[1].revents);
        T("send to closed peer", send(sv[1], "x", 1, MSG_NOSIGNAL));
        close(sv[1]);
    }
}

static void rights(void)
{
    int sv[2], pp[2], got;
    char b[64];
    printf("-- rights\n");
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    pipe(pp);
    T("send fd", send_fd(sv[0], pp[1], "fd"));
    close(pp[1]);
    T("recv fd", recv_fd(sv[1], b, sizeof b, &got));
    printf("got fd %d cloexec %d\n", got >= 0, got >= 0 ? !!(fcntl(got, F_GETFD) & FD_CLOEXEC) : -1);
    T("write through passed fd", write(got, "via", 3));
    close(got);
    T("read other end", read(pp[0], b, sizeof b));
    T("read eof (all writers closed)", read(pp[0], b, sizeof b));
    close(pp[0]);
    /* Credentials on request. */
    int on = 1;
    setsockopt(sv[1], SOL_SOCKET, SO_PASSCRED, &on, sizeof on);
    send(sv[0], "c", 1, 0);
    char cbuf[CMSG_SPACE(sizeof(struct ucred))];
    struct iovec iov = {b, sizeof b};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
                       .msg_controllen = sizeof cbuf};
    T("recv with creds", recvmsg(sv[1], &m, 0));
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    if (c && c->cmsg_type == SCM_CREDENTIALS) {
        struct ucred u;
        memcpy(&u, CMSG_DATA(c), sizeof u);
        printf("creds pid ok %d uid %u gid %u\n", u.pid == getpid(), u.uid, u.gid);
    } else {
        printf("no creds\n");
    }
    /* A bad fd in SCM_RIGHTS. */
    T("send bad fd", send_fd(sv[0], 999, "x"));
    close(sv[0]);
    close(sv[1]);
}

static void listener(const char *dir)
{
    printf("-- listener\n");
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof a.sun_path, "%s/sock", dir);
    int l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    T("listen unbound", listen(l, 4));
    T("bind", bind(l, (struct sockaddr *)&a, sizeof a));
    T("bind again", bind(l, (struct sockaddr *)&a, sizeof a));
    int l2 = socket(AF_UNIX, SOCK_STREAM, 0);
    T("bind taken path", bind(l2, (struct sockaddr *)&a, sizeof a));
    close(l2);
    struct stat st;
    stat(a.sun_path, &st);
    printf("socket file %d\n", S_ISSOCK(st.st_mode));
    T("listen", listen(l, 4));
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        int c = socket(AF_UNIX, SOCK_STREAM, 0);
        if (connect(c, (struct sockaddr *)&a, sizeof a) != 0)
            _exit(2);
        char b[64];
        int n = read(c, b, sizeof b);
        for (int i = 0; i < n; i++)
            b[i] = b[i] - 'a' + 'A';
        write(c, b, n);
        _exit(0);
    }
    int s = accept4(l, NULL, NULL, SOCK_CLOEXEC);
    show("accept", s < 0 ? -1 : 0);
    struct sockaddr_un me;
    socklen_t ml = sizeof me;
    getsockname(s, (struct sockaddr *)&me, &ml);
    printf("accepted name matches %d len ok %d\n", strcmp(me.sun_path, a.sun_path) == 0,
           ml == offsetof(struct sockaddr_un, sun_path) + strlen(a.sun_path) + 1);
    struct sockaddr_un peer;
    socklen_t pl = sizeof peer;
    T("getpeername (unbound client)", getpeername(s, (struct sockaddr *)&peer, &pl));
    printf("peer len %u\n", pl);
    write(s, "hello", 5);
    char b[64];
    int n = read(s, b, sizeof b);
    printf("echo %.*s\n", n, b);
    T("read eof", read(s, b, sizeof b));
    int status;
    waitpid(pid, &status, 0);
    printf("child %d\n", WEXITSTATUS(status));
    close(s);
    close(l);
    int c = socket(AF_UNIX, SOCK_STREAM, 0);
    T("connect after listener closed", connect(c, (struct sockaddr *)&a, sizeof a));
    unlink(a.sun_path);
    T("connect after unlink", connect(c, (struct sockaddr *)&a, sizeof a));
    close(c);
    int d = socket(AF_UNIX, SOCK_DGRAM, 0);
    snprintf(a.sun_path, sizeof a.sun_path, "%s/missing", dir);
    T("connect missing", connect(d, (struct sockaddr *)&a, sizeof a));
    snprintf(a.sun_path, sizeof a.sun_path, "%s", dir);
    T("connect to a directory", connect(d, (struct sockaddr *)&a, sizeof a));
    close(d);
}

static void abstract_and_dgram(void)
{
    printf("-- abstract\n");
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    /* The pid keeps parallel native runs (one abstract namespace) apart. */
    char name[64];
    int nlen = snprintf(name + 1, sizeof name - 1, "rvisor-net-unix-%d", (int)getpid()) + 1;
    name[0] = 0;
    memcpy(a.sun_path, name, nlen);
    socklen_t alen = offsetof(struct sockaddr_un, sun_path) + nlen;
    int r = socket(AF_UNIX, SOCK_DGRAM, 0);
    T("bind abstract", bind(r, (struct sockaddr *)&a, alen));
    int s = socket(AF_UNIX, SOCK_DGRAM, 0);
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    T("autobind", bind(s, (struct sockaddr *)&un, sizeof(sa_family_t)));
    struct sockaddr_un got;
    socklen_t gl = sizeof got;
    getsockname(s, (struct sockaddr *)&got, &gl);
    printf("autobind len %u abstract %d\n", gl, got.sun_path[0] == 0);
    T("sendto", sendto(s, "dgram", 5, 0, (struct sockaddr *)&a, alen));
    T("send unconnected", send(s, "x", 1, 0));
    char b[64];
    struct sockaddr_un from;
    socklen_t fl = sizeof from;
    T("recvfrom", recvfrom(r, b, sizeof b, 0, (struct sockaddr *)&from, &fl));
    printf("from matches %d\n", fl == gl && memcmp(&from, &got, gl) == 0);
    T("connect dgram", connect(s, (struct sockaddr *)&a, alen));
    T("send connected", send(s, "two", 3, 0));
    T("recv", recv(r, b, sizeof b, 0));
    close(r);
    T("send to closed", send(s, "x", 1, 0));
    close(s);
    int st = socket(AF_UNIX, SOCK_STREAM, 0);
    T("stream connect to dgram name", connect(st, (struct sockaddr *)&a, alen));
    close(st);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    char dir[] = "/dev/shm/net_unix_XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    pairs();
    rights();
    listener(dir);
    abstract_and_dgram();
    printf("-- other families\n");
    T("AF_UNIX bad type", socket(AF_UNIX, 12345, 0));
    T("AF_UNIX bad protocol", socket(AF_UNIX, SOCK_STREAM, 7));
    int fd = open("/dev/null", O_RDONLY);
    T("accept on a file", accept(fd, NULL, NULL));
    close(fd);
    rmdir(dir);
    return 0;
}
