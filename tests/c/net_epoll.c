// Readiness of TCP sockets: non-blocking connect (EINPROGRESS, then SO_ERROR and a
// second connect), a refused one, poll bits of fresh, listening and half-closed
// sockets, epoll level- and edge-triggered on a listener and a connection, and
// EPOLLRDHUP.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>
#include "e2e.h"

static int listener(struct sockaddr_in *a) {
    int l = socket(AF_INET, SOCK_STREAM, 0);
    memset(a, 0, sizeof *a);
    a->sin_family = AF_INET;
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(l, (struct sockaddr *)a, sizeof *a);
    socklen_t len = sizeof *a;
    getsockname(l, (struct sockaddr *)a, &len);
    listen(l, 8);
    return l;
}

static int soerror(int fd) {
    int v = -1;
    socklen_t l = sizeof v;
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &v, &l);
    return v;
}

static int pollbits(int fd, int timeout) {
    struct pollfd p = {fd, POLLIN | POLLOUT | POLLRDHUP, 0};
    poll(&p, 1, timeout);
    return p.revents;
}

static void wait_events(const char *what, int ep, int timeout) {
    struct epoll_event ev[4];
    int n = epoll_wait(ep, ev, 4, timeout);
    printf("%s: %d", what, n);
    for (int i = 0; i < n; i++) printf(" [%lu %#x]", (unsigned long)ev[i].data.u64, ev[i].events);
    printf("\n");
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    int fresh = socket(AF_INET, SOCK_STREAM, 0);
    printf("fresh socket poll: %#x\n", pollbits(fresh, 0));
    close(fresh);

    struct sockaddr_in a;
    int l = listener(&a);
    printf("idle listener poll: %#x\n", pollbits(l, 0));

    int c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    E2E_T("non-blocking connect", connect(c, (struct sockaddr *)&a, sizeof a));
    printf("writable: %#x\n", pollbits(c, 1000) & POLLOUT);
    printf("SO_ERROR: %d\n", soerror(c));
    E2E_T("second connect", connect(c, (struct sockaddr *)&a, sizeof a));
    E2E_T("third connect", connect(c, (struct sockaddr *)&a, sizeof a));
    printf("listener poll with a connection: %#x\n", pollbits(l, 1000));

    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 1};
    epoll_ctl(ep, EPOLL_CTL_ADD, l, &ev);
    wait_events("listener level", ep, 1000);
    wait_events("listener level again", ep, 0);
    int s = accept4(l, NULL, NULL, SOCK_NONBLOCK);
    wait_events("after accept", ep, 0);

    // Edge-triggered on the accepted socket.
    ev.events = EPOLLIN | EPOLLET | EPOLLRDHUP;
    ev.data.u64 = 2;
    epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev);
    wait_events("edge, nothing yet", ep, 0);
    write(c, "0123456789", 10);
    wait_events("edge, data", ep, 1000);
    wait_events("edge, again", ep, 0);
    char buf[64];
    E2E_T("read 4", read(s, buf, 4));
    wait_events("edge, after partial read", ep, 0);
    write(c, "ab", 2);
    wait_events("edge, more data", ep, 1000);
    E2E_T("drain", read(s, buf, sizeof buf));
    E2E_T("drain again", read(s, buf, sizeof buf));

    // Level-triggered keeps reporting while data remains.
    ev.events = EPOLLIN;
    epoll_ctl(ep, EPOLL_CTL_MOD, s, &ev);
    write(c, "xyz", 3);
    wait_events("level, data", ep, 1000);
    wait_events("level, still", ep, 0);
    read(s, buf, sizeof buf);
    wait_events("level, drained", ep, 0);

    // The peer shuts down writing.
    ev.events = EPOLLIN | EPOLLRDHUP;
    epoll_ctl(ep, EPOLL_CTL_MOD, s, &ev);
    shutdown(c, SHUT_WR);
    wait_events("peer shut down writing", ep, 1000);
    printf("half-closed poll: %#x\n", pollbits(s, 0));
    printf("writer side poll: %#x\n", pollbits(c, 0));
    close(c);
    usleep(20000);
    close(s);
    close(ep);

    // Refused, non-blocking.
    int b = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in ba = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bind(b, (struct sockaddr *)&ba, sizeof ba);
    socklen_t bl = sizeof ba;
    getsockname(b, (struct sockaddr *)&ba, &bl);
    int r = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    E2E_T("non-blocking connect to nobody", connect(r, (struct sockaddr *)&ba, sizeof ba));
    printf("refused poll: %#x\n", pollbits(r, 1000) & (POLLOUT | POLLERR | POLLHUP));
    printf("SO_ERROR: %s\n", strerrorname_np(soerror(r)));
    printf("SO_ERROR again: %d\n", soerror(r));
    close(r);
    close(b);
    close(l);
    return 0;
}
