// The listen backlog over loopback: listen(fd, 1) holds two established
// connections; a third connect does not complete (its SYN is dropped: a non-blocking
// connect stays in progress, a blocking one waits) until accept makes room, and fails
// with ECONNREFUSED when the listener closes instead. Natively in a fresh network
// namespace (net_common_ns.h).
// e2e: timeout=60
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/wait.h>
#include "net_common_ns.h"

static struct sockaddr_in addr;

static int nb_connect(const char *label)
{
    int c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int r = connect(c, (struct sockaddr *)&addr, sizeof addr);
    printf("%s: connect %d %s\n", label, r, r < 0 ? strerrorname_np(errno) : "");
    return c;
}

/* Whether `c` became writable within `ms`, and its pending error. */
static void state(const char *label, int c, int ms)
{
    struct pollfd p = {c, POLLOUT, 0};
    int n = poll(&p, 1, ms);
    int err = -1;
    socklen_t l = sizeof err;
    getsockopt(c, SOL_SOCKET, SO_ERROR, &err, &l);
    printf("%s: ready %d revents %#x SO_ERROR %s\n", label, n, n > 0 ? p.revents : 0,
           err ? strerrorname_np(err) : "0");
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    fresh_netns();
    int l = socket(AF_INET, SOCK_STREAM, 0);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(l, (struct sockaddr *)&addr, sizeof addr);
    socklen_t al = sizeof addr;
    getsockname(l, (struct sockaddr *)&addr, &al);
    TRYN("listen 1", listen(l, 1));

    int c1 = nb_connect("c1");
    state("c1", c1, 2000);
    int c2 = nb_connect("c2");
    state("c2", c2, 2000);
    int c3 = nb_connect("c3 (queue full)");
    state("c3 before accept", c3, 300);
    int a = accept(l, NULL, NULL);
    printf("accept: %d\n", a >= 0);
    state("c3 after accept", c3, 8000);

    // A blocking connect waits in a child until the parent accepts.
    int pfd[2];
    pipe(pfd);
    pid_t pid = fork();
    if (pid == 0) {
        int c = socket(AF_INET, SOCK_STREAM, 0);
        int r = connect(c, (struct sockaddr *)&addr, sizeof addr);
        char b = r == 0 ? 'y' : 'n';
        write(pfd[1], &b, 1);
        _exit(0);
    }
    struct pollfd pp = {pfd[0], POLLIN, 0};
    printf("blocking connect returned before accept: %d\n", poll(&pp, 1, 300));
    a = accept(l, NULL, NULL);
    printf("accept: %d\n", a >= 0);
    char b = '?';
    if (poll(&pp, 1, 10000) > 0)
        read(pfd[0], &b, 1);
    printf("blocking connect after accept: %c\n", b);
    waitpid(pid, NULL, 0);

    // The queue is full again (c3, the child's); the listener closes instead.
    int c5 = nb_connect("c5 (queue full)");
    state("c5 before close", c5, 300);
    close(l);
    state("c5 after the listener closed", c5, 8000);
    return 0;
}
