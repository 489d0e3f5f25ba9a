// signalfd4: creation, flags, readiness with nothing pending, mask replacement.
#define _GNU_SOURCE
#include "e2e.h"
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#define R(label, expr)                                                                   \
    do {                                                                                 \
        long r_ = (long)(expr);                                                          \
        int e_ = errno;                                                                  \
        printf("%s: %ld %s(%d)\n", label, r_, r_ < 0 ? e2e_errname(e_) : "OK", r_ < 0 ? e_ : 0); \
    } while (0)

int main(void)
{
    sigset_t m;
    sigemptyset(&m);
    sigaddset(&m, SIGUSR1);
    int fd = signalfd(-1, &m, SFD_NONBLOCK | SFD_CLOEXEC);
    printf("created: %s cloexec=%d nonblock=%d\n", fd >= 0 ? "yes" : "no", fcntl(fd, F_GETFD),
           !!(fcntl(fd, F_GETFL) & O_NONBLOCK));
    struct signalfd_siginfo si;
    R("read nothing pending", read(fd, &si, sizeof si));
    R("read short", read(fd, &si, 10));
    struct pollfd pf = {fd, POLLIN, 0};
    printf("poll: %d\n", poll(&pf, 1, 0));
    sigaddset(&m, SIGUSR2);
    R("replace mask", signalfd(fd, &m, 0) == fd ? 0 : -1);
    R("bad flags", signalfd(-1, &m, 0x10));
    R("bad size", syscall(SYS_signalfd4, -1, &m, 4, 0));
    int p[2];
    pipe(p);
    R("not a signalfd", signalfd(p[0], &m, 0));
    return 0;
}
