// F_GETPIPE_SZ / F_SETPIPE_SZ.
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
    pipe2(p, O_NONBLOCK);
    char buf[16];
    printf("pipe size: %d\n", fcntl(p[1], F_GETPIPE_SZ));
    int dn = open("/dev/null", O_RDONLY);
    R("F_GETPIPE_SZ on non-pipe", fcntl(dn, F_GETPIPE_SZ));
    close(dn);
    long r = write(p[1], big, sizeof big);
    printf("big write: %ld\n", r);
    R("write full", write(p[1], "x", 1));
    r = read(p[0], buf, 10);
    R("atomic 20 into 10 free", write(p[1], big, 20));
    R("write 10 into 10 free", write(p[1], big, 10));
    while (read(p[0], big, sizeof big) > 0) {}
    printf("set size 5000: %d\n", fcntl(p[1], F_SETPIPE_SZ, 5000));
    printf("pipe size now: %d\n", fcntl(p[0], F_GETPIPE_SZ));
    r = write(p[1], big, sizeof big);
    printf("big write small pipe: %ld\n", r);
    R("shrink below content", fcntl(p[1], F_SETPIPE_SZ, 4096));
    while (read(p[0], big, sizeof big) > 0) {}

    return 0;
}
