// poll, ppoll, select, pselect: timeouts, readiness, remaining time, bad fds, and the
// fd table capacity that bounds select.
#define _GNU_SOURCE
#include "e2e.h"
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/wait.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* Evaluates the call before reading errno (argument order is unspecified). */
#define R(label, expr)                                                                   \
    do {                                                                                 \
        long r_ = (long)(expr);                                                          \
        int e_ = errno;                                                                  \
        printf("%s: %ld %s(%d)\n", label, r_, r_ < 0 ? e2e_errname(e_) : "OK", r_ < 0 ? e_ : 0); \
    } while (0)

/* The FDSize line of /proc/self/status: the fd table's capacity. */
static int fd_size(void)
{
    char line[256];
    int v = -1;
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "FDSize:", 7) == 0)
            v = atoi(line + 7);
    fclose(f);
    return v;
}

static long long now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000LL + t.tv_nsec / 1000000;
}

int main(void)
{
    int p[2];
    pipe(p);
    struct pollfd pf = {p[0], POLLIN, 0};
    long long t0 = now_ms();
    int n = poll(&pf, 1, 100);
    long long d = now_ms() - t0;
    printf("poll timeout: %d waited>=90: %s <2000: %s\n", n, d >= 90 ? "yes" : "no", d < 2000 ? "yes" : "no");

    struct pollfd bad[3] = {{-1, POLLIN, 7}, {999, POLLIN, 0}, {p[1], POLLOUT, 0}};
    n = poll(bad, 3, 0);
    printf("poll bad: %d %x %x %x\n", n, bad[0].revents, bad[1].revents, bad[2].revents);

    fd_set rs;
    FD_ZERO(&rs);
    FD_SET(p[0], &rs);
    struct timeval tv = {0, 50000};
    t0 = now_ms();
    n = select(p[0] + 1, &rs, NULL, NULL, &tv);
    d = now_ms() - t0;
    printf("select timeout: %d left=%ld.%06ld set=%d waited>=40: %s\n", n, (long)tv.tv_sec,
           (long)tv.tv_usec, FD_ISSET(p[0], &rs), d >= 40 ? "yes" : "no");

    write(p[1], "x", 1);
    FD_ZERO(&rs);
    FD_SET(p[0], &rs);
    fd_set ws;
    FD_ZERO(&ws);
    FD_SET(p[1], &ws);
    FD_SET(p[0], &ws);
    tv.tv_sec = 5;
    tv.tv_usec = 0;
    n = select(p[1] + 1, &rs, &ws, NULL, &tv);
    printf("select ready: %d r0=%d w0=%d w1=%d left>4s: %s\n", n, FD_ISSET(p[0], &rs),
           FD_ISSET(p[0], &ws), FD_ISSET(p[1], &ws), tv.tv_sec >= 4 ? "yes" : "no");

    // select looks only as far as the fd table's capacity (FDSize), which a fork sizes
    // to the highest open fd: a child is used so the runner's descriptors (closed at
    // exec, but sizing the table the native run starts with) cannot show through.
    fflush(stdout);
    pid_t child = fork();
    if (child == 0) {
        printf("child FDSize: %d\n", fd_size());
        FD_ZERO(&rs);
        FD_SET(1000, &rs);
        tv.tv_sec = 0;
        tv.tv_usec = 0;
        R("select past capacity", select(1001, &rs, NULL, NULL, &tv));
        dup2(0, 100);
        printf("after dup2 100 FDSize: %d\n", fd_size());
        close(100);
        printf("after close FDSize: %d\n", fd_size());
        FD_ZERO(&rs);
        FD_SET(100, &rs);
        R("select bad fd", select(101, &rs, NULL, NULL, &tv));
        FD_ZERO(&rs);
        FD_SET(127, &rs);
        R("select closed fd below capacity", select(128, &rs, NULL, NULL, &tv));
        FD_ZERO(&rs);
        FD_SET(128, &rs);
        R("select fd at capacity", select(129, &rs, NULL, NULL, &tv));
        fflush(stdout);
        _exit(0);
    }
    waitpid(child, NULL, 0);
    tv.tv_sec = 0;
    tv.tv_usec = 0;
    R("select negative nfds", select(-1, NULL, NULL, NULL, &tv));
    tv.tv_usec = -1;
    R("select bad timeval", select(1, NULL, NULL, NULL, &tv));

    // ppoll through the raw syscall so the kernel's timeout write-back is visible.
    struct timespec ts = {0, 30000000};
    pf.fd = p[1];
    pf.events = POLLIN;
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGUSR1);
    n = syscall(SYS_ppoll, &pf, 1, &ts, &mask, 8);
    printf("ppoll timeout: %d left=%ld.%09ld\n", n, (long)ts.tv_sec, ts.tv_nsec);
    R("ppoll bad sigsetsize", syscall(SYS_ppoll, &pf, 1, &ts, &mask, 4));
    pf.fd = p[0];
    ts.tv_sec = 3;
    n = syscall(SYS_ppoll, &pf, 1, &ts, NULL, 8);
    printf("ppoll ready: %d revents=%x left>2s: %s\n", n, pf.revents, ts.tv_sec >= 2 ? "yes" : "no");
    sigset_t cur;
    sigprocmask(SIG_BLOCK, NULL, &cur);
    printf("mask restored: %s\n", sigismember(&cur, SIGUSR1) ? "no" : "yes");

    FD_ZERO(&rs);
    FD_SET(p[0], &rs);
    struct timespec pts = {1, 0};
    n = pselect(p[0] + 1, &rs, NULL, NULL, &pts, &mask);
    printf("pselect ready: %d set=%d\n", n, FD_ISSET(p[0], &rs));
    char c;
    read(p[0], &c, 1);
    FD_ZERO(&rs);
    FD_SET(p[0], &rs);
    pts.tv_sec = 0;
    pts.tv_nsec = 20000000;
    n = pselect(p[0] + 1, &rs, NULL, NULL, &pts, NULL);
    printf("pselect timeout: %d set=%d\n", n, FD_ISSET(p[0], &rs));
    return 0;
}
