// Pipes in one process: nonblocking EAGAIN, FIONREAD, capacity, PIPE_BUF atomicity,
// EOF, EPIPE with SIGPIPE ignored, fstat, poll readiness.
#define _GNU_SOURCE
#include "e2e.h"
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

/* Evaluates the call before reading errno (argument order is unspecified). */
#define R(label, expr)                                                                   \
    do {                                                                                 \
        long r_ = (long)(expr);                                                          \
        int e_ = errno;                                                                  \
        printf("%s: %ld %s(%d)\n", label, r_, r_ < 0 ? e2e_errname(e_) : "OK", r_ < 0 ? e_ : 0); \
    } while (0)

static char big[70000];

int main(void)
{
    int p[2];
    R("pipe2 bad flags", pipe2(p, O_RDWR) );
    if (pipe2(p, O_NONBLOCK | O_CLOEXEC) != 0) { printf("pipe2 failed\n"); return 1; }
    printf("cloexec: %d\n", fcntl(p[0], F_GETFD));
    printf("rd flags: %o\n", fcntl(p[0], F_GETFL) & (O_ACCMODE | O_NONBLOCK));
    printf("wr flags: %o\n", fcntl(p[1], F_GETFL) & (O_ACCMODE | O_NONBLOCK));
    char buf[100];
    long r = read(p[0], buf, sizeof buf);
    R("read empty", r);
    struct pollfd pf[2] = {{p[0], POLLIN, 0}, {p[1], POLLOUT, 0}};
    int n = poll(pf, 2, 0);
    printf("poll empty: %d in=%x out=%x\n", n, pf[0].revents, pf[1].revents);
    R("write", write(p[1], "hello", 5));
    int avail = -1;
    ioctl(p[0], FIONREAD, &avail);
    printf("FIONREAD: %d\n", avail);
    n = poll(pf, 2, 0);
    printf("poll data: %d in=%x out=%x\n", n, pf[0].revents, pf[1].revents);
    r = read(p[0], buf, 3);
    printf("read 3: %ld %.3s\n", r, buf);
    r = read(p[0], buf, sizeof buf);
    printf("read rest: %ld %.2s\n", r, buf);

    struct stat st;
    fstat(p[0], &st);
    printf("fifo: %d size: %ld\n", S_ISFIFO(st.st_mode), (long)st.st_size);

    r = write(p[1], big, sizeof big);
    printf("big write: %ld\n", r);
    R("write full", write(p[1], "x", 1));
    r = read(p[0], buf, 10);
    R("atomic 20 into 10 free", write(p[1], big, 20));
    R("write 10 into 10 free", write(p[1], big, 10));
    r = read(p[0], big, 4096);
    R("20 into a freed page", write(p[1], big, 20));
    R("30 merged", write(p[1], big, 30));
    R("4050 does not fit the page", write(p[1], big, 4050));
    while (read(p[0], big, sizeof big) > 0) {}

    write(p[1], "bye", 3);
    close(p[1]);
    pf[0].events = POLLIN;
    n = poll(pf, 1, 0);
    printf("poll after close: %d revents=%x\n", n, pf[0].revents);
    r = read(p[0], buf, sizeof buf);
    printf("read tail: %ld\n", r);
    r = read(p[0], buf, sizeof buf);
    printf("read eof: %ld\n", r);
    close(p[0]);

    signal(SIGPIPE, SIG_IGN);
    pipe(p);
    close(p[0]);
    R("write no reader", write(p[1], "x", 1));
    pf[0].fd = p[1];
    pf[0].events = POLLOUT;
    n = poll(pf, 1, 0);
    printf("poll no reader: %d revents=%x\n", n, pf[0].revents);
    close(p[1]);

    // Blocking read after a write returns the data at once.
    pipe(p);
    write(p[1], "abc", 3);
    r = read(p[0], buf, sizeof buf);
    printf("blocking read: %ld\n", r);
    return 0;
}
