// Time namespaces (time_namespaces(7)): unshare(CLONE_NEWTIME) makes one for the
// caller's children (the caller stays: /proc/self/ns/time and time_for_children
// differ); its offsets, copied from the old one, are written through
// /proc/self/timens_offsets until a process enters (then EACCES; the first
// namespace's are frozen from the start), with Linux's parsing (EINVAL) and range
// checks (ERANGE). A forked child is in it: CLOCK_MONOTONIC (and _RAW, _COARSE)
// and CLOCK_BOOTTIME (and _ALARM) read ahead by the offsets, through the vDSO as
// through the system call, CLOCK_REALTIME not; absolute deadlines of
// clock_nanosleep, timerfd and timer_create are on the namespace's clock. A
// process that execs after the unshare is in it too (util-linux's unshare -T),
// setns moves a single-threaded caller at once, and clone3 with CLONE_NEWTIME
// puts the child in a new namespace with the offsets of the caller's.
// e2e: timeout=60
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/sched.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "e2e.h"

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x80
#endif

static int64_t now_ns(clockid_t c)
{
    struct timespec ts;
    clock_gettime(c, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t sys_now_ns(clockid_t c)
{
    struct timespec ts;
    syscall(SYS_clock_gettime, c, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static const char *near(int64_t d, int64_t want)
{
    /* Within a second (the runs may be slow), well apart from 0 and the
     * offsets used. */
    return d > want - 1000000000LL && d < want + 1000000000LL ? "yes" : "no";
}

static void show_offsets(const char *label, const char *path)
{
    char buf[256];
    int fd = open(path, O_RDONLY);
    ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof buf - 1);
    if (fd >= 0)
        close(fd);
    if (n < 0) {
        printf("%s: %s\n", label, e2e_errname(errno));
        return;
    }
    buf[n] = 0;
    printf("%s:\n%s", label, buf);
}

static const char *put(const char *text)
{
    int fd = open("/proc/self/timens_offsets", O_WRONLY);
    if (fd < 0)
        return e2e_errname(errno);
    ssize_t n = write(fd, text, strlen(text));
    int e = errno;
    close(fd);
    return n == (ssize_t)strlen(text) ? "OK" : n < 0 ? e2e_errname(e) : "short";
}

static void link_of(const char *path, char *out, size_t len)
{
    ssize_t n = readlink(path, out, len - 1);
    out[n < 0 ? 0 : n] = 0;
}

static const char *same_links(const char *a, const char *b)
{
    char x[64], y[64];
    link_of(a, x, sizeof x);
    link_of(b, y, sizeof y);
    return x[0] && strcmp(x, y) == 0 ? "same" : "differ";
}

static const int64_t MONO = 1000LL * 1000000000;
static const int64_t BOOT = 2000LL * 1000000000 + 500;

/* Elapsed real time (ms) of an absolute sleep on `clock` `ahead` ns after its
 * now, or at a deadline `ahead` ns after now on the sandbox's (parent's) view. */
static int64_t abs_sleep_ms(clockid_t clock, int64_t deadline)
{
    struct timespec t = {deadline / 1000000000, deadline % 1000000000};
    int64_t r0 = now_ns(CLOCK_REALTIME);
    clock_nanosleep(clock, TIMER_ABSTIME, &t, NULL);
    return (now_ns(CLOCK_REALTIME) - r0) / 1000000;
}

static int64_t timerfd_ms(clockid_t clock, int64_t deadline)
{
    int fd = timerfd_create(clock, 0);
    struct itimerspec its = {{0, 0}, {deadline / 1000000000, deadline % 1000000000}};
    int64_t r0 = now_ns(CLOCK_REALTIME);
    if (timerfd_settime(fd, TFD_TIMER_ABSTIME, &its, NULL))
        return -1;
    uint64_t x;
    if (read(fd, &x, 8) != 8)
        return -1;
    close(fd);
    return (now_ns(CLOCK_REALTIME) - r0) / 1000000;
}

static int64_t posix_timer_ms(clockid_t clock, int64_t deadline)
{
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGUSR1);
    sigprocmask(SIG_BLOCK, &s, NULL);
    struct sigevent ev = {.sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGUSR1};
    timer_t t;
    if (timer_create(clock, &ev, &t))
        return -1;
    struct itimerspec its = {{0, 0}, {deadline / 1000000000, deadline % 1000000000}};
    int64_t r0 = now_ns(CLOCK_REALTIME);
    if (timer_settime(t, TIMER_ABSTIME, &its, NULL))
        return -1;
    int sig;
    sigwait(&s, &sig);
    timer_delete(t);
    return (now_ns(CLOCK_REALTIME) - r0) / 1000000;
}

static const char *in_window(int64_t ms, int64_t lo, int64_t hi)
{
    return ms >= lo && ms < hi ? "yes" : "no";
}

/* The parent's readings before anything moved. */
static int64_t m0, b0, r0, raw0;

/* What a process sees: its clocks ahead of the first readings by the offsets
 * (`moved`) or not. */
static void member(const char *who, int moved)
{
    int64_t mo = moved ? MONO : 0, bo = moved ? BOOT : 0;
    printf("%s: monotonic %s (vdso) %s, (syscall) %s\n", who, moved ? "ahead" : "unmoved",
           near(now_ns(CLOCK_MONOTONIC) - m0, mo), near(sys_now_ns(CLOCK_MONOTONIC) - m0, mo));
    printf("%s: monotonic coarse %s, raw %s\n", who,
           near(now_ns(CLOCK_MONOTONIC_COARSE) - m0, mo),
           near(sys_now_ns(CLOCK_MONOTONIC_RAW) - raw0, mo));
    printf("%s: boottime %s (vdso) %s, (syscall) %s\n", who, moved ? "ahead" : "unmoved",
           near(now_ns(CLOCK_BOOTTIME) - b0, bo), near(sys_now_ns(CLOCK_BOOTTIME) - b0, bo));
    printf("%s: realtime unmoved %s\n", who, near(now_ns(CLOCK_REALTIME) - r0, 0));
}

static void deadlines(const char *who)
{
    int64_t m = now_ns(CLOCK_MONOTONIC);
    printf("%s: clock_nanosleep abs +100ms on its clock waits %s\n", who,
           in_window(abs_sleep_ms(CLOCK_MONOTONIC, m + 100000000), 80, 900));
    /* A second past the first namespace's now is long past on this clock. */
    printf("%s: clock_nanosleep abs at the first namespace's now + 1s returns at once %s\n",
           who, in_window(abs_sleep_ms(CLOCK_MONOTONIC, m - MONO + 1000000000), 0, 500));
    int64_t b = now_ns(CLOCK_BOOTTIME);
    printf("%s: clock_nanosleep boottime abs +100ms waits %s\n", who,
           in_window(abs_sleep_ms(CLOCK_BOOTTIME, b + 100000000), 80, 900));
    m = now_ns(CLOCK_MONOTONIC);
    printf("%s: timerfd abs +100ms fires after %s\n", who,
           in_window(timerfd_ms(CLOCK_MONOTONIC, m + 100000000), 80, 900));
    m = now_ns(CLOCK_MONOTONIC);
    printf("%s: timer_create abs +100ms fires after %s\n", who,
           in_window(posix_timer_ms(CLOCK_MONOTONIC, m + 100000000), 80, 900));
}

static int tp[2];

static void *blocker(void *a)
{
    char c;
    (void)a;
    if (read(tp[0], &c, 1) < 0)
        return NULL;
    return NULL;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc == 5 && strcmp(argv[1], "exec-check") == 0) {
        /* Run by unshare -T --monotonic 1000 --boottime 2000: in the namespace. */
        printf("exec: ns/time and time_for_children %s\n",
               same_links("/proc/self/ns/time", "/proc/self/ns/time_for_children"));
        m0 = atoll(argv[2]);
        b0 = atoll(argv[3]);
        printf("exec: monotonic ahead %s, boottime ahead %s\n",
               near(now_ns(CLOCK_MONOTONIC) - m0, MONO),
               near(now_ns(CLOCK_BOOTTIME) - b0, 2000LL * 1000000000));
        show_offsets("exec: offsets", "/proc/self/timens_offsets");
        return 0;
    }
    printf("first: ns/time and time_for_children %s\n",
           same_links("/proc/self/ns/time", "/proc/self/ns/time_for_children"));
    show_offsets("first: offsets", "/proc/self/timens_offsets");
    printf("first: write offsets: %s\n", put("monotonic 1 0\n"));

    m0 = now_ns(CLOCK_MONOTONIC);
    b0 = now_ns(CLOCK_BOOTTIME);
    r0 = now_ns(CLOCK_REALTIME);
    raw0 = sys_now_ns(CLOCK_MONOTONIC_RAW);
    /* util-linux's unshare -T, then exec: the program is in the namespace. */
    pid_t p = fork();
    if (p == 0) {
        char ms[32], bs[32];
        snprintf(ms, sizeof ms, "%lld", (long long)m0);
        snprintf(bs, sizeof bs, "%lld", (long long)b0);
        execl("/usr/bin/unshare", "unshare", "-T", "--monotonic=1000", "--boottime=2000",
              argv[0], "exec-check", ms, bs, "x", (char *)NULL);
        printf("exec unshare: %s\n", e2e_errname(errno));
        _exit(1);
    }
    waitpid(p, NULL, 0);

    char own[64];
    link_of("/proc/self/ns/time", own, sizeof own);
    printf("unshare(CLONE_NEWTIME): %s\n", unshare(CLONE_NEWTIME) ? e2e_errname(errno) : "OK");
    printf("after unshare: ns/time and time_for_children %s\n",
           same_links("/proc/self/ns/time", "/proc/self/ns/time_for_children"));
    char now_own[64];
    link_of("/proc/self/ns/time", now_own, sizeof now_own);
    printf("after unshare: own namespace kept %s\n", strcmp(own, now_own) ? "no" : "yes");
    show_offsets("new: offsets", "/proc/self/timens_offsets");
    printf("bad nsec: %s\n", put("monotonic 1 1000000000\n"));
    printf("bad name: %s\n", put("realtime 1 0\n"));
    printf("bad field count: %s\n", put("monotonic 1\n"));
    printf("out of range: %s\n", put("monotonic -9999999999 0\n"));
    printf("before the first boot: %s\n", put("boottime -2000000000 0\n"));
    printf("clock id numbers: %s\n", put("1 5 0\n7 6 0\n"));
    show_offsets("new: offsets", "/proc/self/timens_offsets");
    printf("write offsets: %s\n", put("monotonic 1000 0\nboottime 2000 500\n"));
    show_offsets("new: offsets", "/proc/self/timens_offsets");
    member("caller", 0);

    int ready[2], go[2];
    if (pipe(ready) || pipe(go))
        return 1;
    pid_t c = fork();
    if (c == 0) {
        char x = 1;
        printf("child: in time_for_children %s\n",
               same_links("/proc/self/ns/time", "/proc/self/ns/time_for_children"));
        member("child", 1);
        deadlines("child");
        if (write(ready[1], &x, 1) != 1 || read(go[0], &x, 1) < 0)
            _exit(1);
        _exit(0);
    }
    char x;
    if (read(ready[0], &x, 1) != 1)
        return 1;
    printf("after a process entered: %s\n", put("monotonic 5 0\n"));
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/ns/time", c);
    printf("parent's time_for_children is the child's time: %s\n",
           same_links(path, "/proc/self/ns/time_for_children"));
    int fd = open(path, O_RDONLY);
    /* A second thread makes setns refuse (EUSERS). */
    pthread_t th;
    if (pipe(tp))
        return 1;
    pthread_create(&th, NULL, blocker, NULL);
    int r = setns(fd, CLONE_NEWTIME);
    printf("setns with a second thread: %s\n",
           r == 0 ? "OK" : errno == EUSERS ? "EUSERS" : e2e_errname(errno));
    if (write(tp[1], &x, 1) != 1)
        return 1;
    pthread_join(th, NULL);
    printf("setns(time): %s\n", setns(fd, CLONE_NEWTIME) ? e2e_errname(errno) : "OK");
    printf("after setns: ns/time is the child's %s\n", same_links(path, "/proc/self/ns/time"));
    member("after setns", 1);
    close(fd);
    if (write(go[1], &x, 1) != 1)
        return 1;
    waitpid(c, NULL, 0);

    /* clone3 with CLONE_NEWTIME: a new namespace with the caller's offsets. */
    struct clone_args ca = {.flags = CLONE_NEWTIME, .exit_signal = SIGCHLD};
    long k = syscall(SYS_clone3, &ca, sizeof ca);
    if (k == 0) {
        char a[64];
        link_of("/proc/self/ns/time", a, sizeof a);
        printf("clone3 child: own new namespace %s\n", strcmp(a, own) && strcmp(a, now_own) ? "yes" : "no");
        show_offsets("clone3 child: offsets", "/proc/self/timens_offsets");
        printf("clone3 child: frozen %s\n", put("monotonic 7 0\n"));
        member("clone3 child", 1);
        _exit(0);
    }
    if (k < 0)
        printf("clone3(CLONE_NEWTIME): %s\n", e2e_errname(errno));
    else
        waitpid(k, NULL, 0);
    return 0;
}
