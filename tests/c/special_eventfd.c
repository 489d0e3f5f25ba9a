// eventfd counts and semaphore mode; timerfd one-shot, periodic, gettime, abstime.
#define _GNU_SOURCE
#include "e2e.h"
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

/* Evaluates the call before reading errno (argument order is unspecified). */
#define R(label, expr)                                                                   \
    do {                                                                                 \
        long r_ = (long)(expr);                                                          \
        int e_ = errno;                                                                  \
        printf("%s: %ld %s(%d)\n", label, r_, r_ < 0 ? e2e_errname(e_) : "OK", r_ < 0 ? e_ : 0); \
    } while (0)

int main(void)
{
    int e = eventfd(5, EFD_NONBLOCK | EFD_CLOEXEC);
    printf("flags: cloexec=%d nonblock=%d\n", fcntl(e, F_GETFD), !!(fcntl(e, F_GETFL) & O_NONBLOCK));
    uint64_t v = 0;
    R("read", read(e, &v, 8));
    printf("value: %llu\n", (unsigned long long)v);
    R("read empty", read(e, &v, 8));
    R("read short", read(e, &v, 4));
    v = 7;
    write(e, &v, 8);
    v = 8;
    write(e, &v, 8);
    read(e, &v, 8);
    printf("sum: %llu\n", (unsigned long long)v);
    v = UINT64_MAX;
    R("write max", write(e, &v, 8));
    v = UINT64_MAX - 1;
    R("write max-1", write(e, &v, 8));
    v = 1;
    R("overflow", write(e, &v, 8));
    struct pollfd pf = {e, POLLIN | POLLOUT, 0};
    poll(&pf, 1, 0);
    printf("full revents: %x\n", pf.revents);
    close(e);
    R("bad flags", eventfd(0, 0x100));

    int s = eventfd(2, EFD_SEMAPHORE | EFD_NONBLOCK);
    for (int i = 0; i < 3; i++) {
        long r = read(s, &v, 8);
        printf("sem read %d: %ld %llu\n", i, r, r > 0 ? (unsigned long long)v : 0ULL);
    }

    int t = timerfd_create(CLOCK_MONOTONIC, 0);
    R("timerfd bad clock", timerfd_create(12345, 0));
    R("timerfd bad flags", timerfd_create(CLOCK_MONOTONIC, 1));
    struct itimerspec its = {{0, 0}, {0, 20000000}}, old;
    timerfd_settime(t, 0, &its, NULL);
    struct itimerspec cur;
    timerfd_gettime(t, &cur);
    printf("armed: %s\n", cur.it_value.tv_nsec > 0 && cur.it_value.tv_nsec <= 20000000 ? "yes" : "no");
    long r = read(t, &v, 8); // blocks ~20ms
    printf("one-shot read: %ld %llu\n", r, (unsigned long long)v);
    timerfd_gettime(t, &cur);
    printf("disarmed: %ld %ld\n", (long)cur.it_value.tv_sec, cur.it_value.tv_nsec);

    its.it_interval.tv_nsec = 10000000;
    its.it_value.tv_nsec = 10000000;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    timerfd_settime(t, 0, &its, NULL);
    struct timespec sl = {0, 55000000};
    nanosleep(&sl, NULL);
    read(t, &v, 8);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    /* A loaded machine may oversleep: the count must match the time that passed. */
    long ticks = ((t1.tv_sec - t0.tv_sec) * 1000000000L + (t1.tv_nsec - t0.tv_nsec)) / 10000000L;
    printf("periodic count matches elapsed time: %s\n",
           v >= 5 && (long)v <= ticks + 1 ? "yes" : "no");
    memset(&its, 0, sizeof its);
    timerfd_settime(t, 0, &its, &old);
    printf("old interval: %ld\n", old.it_interval.tv_nsec);
    int fl = fcntl(t, F_GETFL);
    fcntl(t, F_SETFL, fl | O_NONBLOCK);
    R("disarmed read", read(t, &v, 8));

    int rt = timerfd_create(CLOCK_REALTIME, TFD_NONBLOCK);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    its.it_value.tv_sec = now.tv_sec - 1;
    timerfd_settime(rt, TFD_TIMER_ABSTIME, &its, NULL);
    pf.fd = rt;
    pf.events = POLLIN;
    printf("abstime past poll: %d\n", poll(&pf, 1, 1000));
    r = read(rt, &v, 8);
    printf("abstime past read: %ld %llu\n", r, (unsigned long long)v);
    its.it_value.tv_sec = now.tv_sec + 100;
    timerfd_settime(rt, TFD_TIMER_ABSTIME, &its, NULL);
    timerfd_gettime(rt, &cur);
    printf("abstime future: %s\n", cur.it_value.tv_sec >= 98 && cur.it_value.tv_sec <= 100 ? "yes" : "no");
    its.it_value.tv_nsec = 2000000000;
    R("bad timespec", timerfd_settime(rt, 0, &its, NULL));
    R("not a timerfd", timerfd_settime(s, 0, &its, NULL));
    return 0;
}
