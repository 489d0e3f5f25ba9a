// epoll: ctl rules, level/edge/oneshot, nested epoll, eventfd in epoll.
#define _GNU_SOURCE
#include "e2e.h"
#include <fcntl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* Evaluates the call before reading errno (argument order is unspecified). */
#define R(label, expr)                                                                   \
    do {                                                                                 \
        long r_ = (long)(expr);                                                          \
        int e_ = errno;                                                                  \
        printf("%s: %ld %s(%d)\n", label, r_, r_ < 0 ? e2e_errname(e_) : "OK", r_ < 0 ? e_ : 0); \
    } while (0)

static int ew(int ep, int timeout)
{
    struct epoll_event ev[8];
    int n = epoll_wait(ep, ev, 8, timeout);
    printf("  wait: %d", n);
    for (int i = 0; i < n; i++)
        printf(" [%x data=%lu]", ev[i].events, (unsigned long)ev[i].data.u64);
    printf("\n");
    return n;
}

int main(int argc, char **argv)
{
    (void)argc;
    int ep = epoll_create1(EPOLL_CLOEXEC);
    printf("cloexec: %d\n", fcntl(ep, F_GETFD));
    R("create1 bad flags", epoll_create1(1));
    R("create 0", epoll_create(0));
    int p[2];
    pipe2(p, O_NONBLOCK);
    struct epoll_event e = {.events = EPOLLIN, .data.u64 = 11};
    R("add", epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &e));
    R("add again", epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &e));
    R("mod missing", epoll_ctl(ep, EPOLL_CTL_MOD, p[1], &e));
    R("del missing", epoll_ctl(ep, EPOLL_CTL_DEL, p[1], &e));
    R("add self", epoll_ctl(ep, EPOLL_CTL_ADD, ep, &e));
    R("bad op", epoll_ctl(ep, 9, p[1], &e));
    R("not epoll", epoll_ctl(p[0], EPOLL_CTL_ADD, p[1], &e));
    R("bad fd", epoll_ctl(ep, EPOLL_CTL_ADD, 500, &e));
    int reg = open(argv[0], O_RDONLY);
    R("regular file", epoll_ctl(ep, EPOLL_CTL_ADD, reg, &e));
    struct epoll_event ex = {.events = EPOLLIN | EPOLLEXCLUSIVE};
    R("exclusive+oneshot", epoll_ctl(ep, EPOLL_CTL_ADD, p[1], &(struct epoll_event){.events = EPOLLOUT | EPOLLEXCLUSIVE | EPOLLONESHOT}));
    (void)ex;

    printf("empty:\n");
    ew(ep, 0);
    printf("timeout 50ms:\n");
    ew(ep, 50);
    write(p[1], "ab", 2);
    printf("level:\n");
    ew(ep, -1);
    ew(ep, 0);
    e.events = EPOLLIN | EPOLLET;
    e.data.u64 = 12;
    epoll_ctl(ep, EPOLL_CTL_MOD, p[0], &e);
    printf("edge:\n");
    ew(ep, 0);
    ew(ep, 0);
    char c;
    read(p[0], &c, 1);
    printf("edge after partial read:\n");
    ew(ep, 0);
    write(p[1], "c", 1);
    printf("edge after write:\n");
    ew(ep, 0);
    e.events = EPOLLIN | EPOLLONESHOT;
    e.data.u64 = 13;
    epoll_ctl(ep, EPOLL_CTL_MOD, p[0], &e);
    printf("oneshot:\n");
    ew(ep, 0);
    ew(ep, 0);
    epoll_ctl(ep, EPOLL_CTL_MOD, p[0], &e);
    printf("oneshot rearmed:\n");
    ew(ep, 0);
    R("del", epoll_ctl(ep, EPOLL_CTL_DEL, p[0], NULL));

    int ef = eventfd(0, EFD_NONBLOCK);
    e.events = EPOLLIN | EPOLLOUT;
    e.data.u64 = 20;
    epoll_ctl(ep, EPOLL_CTL_ADD, ef, &e);
    printf("eventfd writable:\n");
    ew(ep, 0);
    eventfd_write(ef, 3);
    printf("eventfd readable:\n");
    ew(ep, 0);

    // Nested: the outer epoll sees the inner one become readable.
    int outer = epoll_create1(0);
    e.events = EPOLLIN;
    e.data.u64 = 30;
    R("add inner", epoll_ctl(outer, EPOLL_CTL_ADD, ep, &e));
    R("loop", epoll_ctl(ep, EPOLL_CTL_ADD, outer, &e));
    printf("nested:\n");
    ew(outer, 0);
    epoll_ctl(ep, EPOLL_CTL_DEL, ef, NULL);
    printf("nested idle:\n");
    ew(outer, 0);
    struct pollfd pf = {ep, POLLIN, 0};
    printf("poll epoll idle: %d\n", poll(&pf, 1, 0));
    int q[2];
    pipe(q);
    e.data.u64 = 40;
    epoll_ctl(ep, EPOLL_CTL_ADD, q[0], &e);
    write(q[1], "z", 1);
    printf("poll epoll ready: %d revents=%x\n", poll(&pf, 1, 1000), pf.revents);
    ew(outer, 1000);

    // Closing the only fd of a watched file removes the interest.
    close(q[0]);
    printf("after close:\n");
    ew(ep, 0);
    close(p[1]);
    e.events = EPOLLIN;
    e.data.u64 = 50;
    epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &e);
    printf("hangup:\n");
    ew(ep, 0);
    R("maxevents 0", epoll_wait(ep, &e, 0, 0));
    return 0;
}
