// Clocks as Linux encodes and guards them: pthread_getcpuclockid and
// clock_getcpuclockid ids (`~pid << 3 | thread << 2 | which`) read with
// clock_gettime and clock_getres; an id naming nobody is EINVAL; clock_settime and
// settimeofday need CAP_SYS_TIME (EPERM), other clocks cannot be set (EINVAL).
// Sandbox note: root cannot set the host's clock either (EPERM), so the cases run
// as an unprivileged user.
// e2e: stdout=thread cpu clock: ok, non-decreasing: yes
// e2e: stdout=thread cpu clock res: 0
// e2e: stdout=own process cpu clock: ok
// e2e: stdout=child process cpu clock: ok
// e2e: stdout=gone process cpu clock: -1 EINVAL
// e2e: stdout=bad which cpu clock: -1 EINVAL
// e2e: stdout=timer on thread cpu clock: 0
// e2e: stdout=clock_settime REALTIME unprivileged: -1 EPERM
// e2e: stdout=clock_settime MONOTONIC: -1 EINVAL
// e2e: stdout=clock_settime bad timespec: -1 EINVAL
// e2e: stdout=clock_settime process cpu: -1 EINVAL
// e2e: stdout=clock_settime own cpu clock: -1 EPERM
// e2e: stdout=settimeofday unprivileged: -1 EPERM
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void show(const char *what, long r) {
    if (r < 0)
        printf("%s: -1 %s\n", what, strerrorname_np(errno));
    else
        printf("%s: %ld\n", what, r);
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    clockid_t tc;
    struct timespec a, b;
    if (pthread_getcpuclockid(pthread_self(), &tc) != 0)
        return 1;
    int r1 = clock_gettime(tc, &a);
    volatile unsigned x = 0;
    for (int i = 0; i < 1000000; i++)
        x += i;
    int r2 = clock_gettime(tc, &b);
    printf("thread cpu clock: %s, non-decreasing: %s\n", r1 == 0 && r2 == 0 ? "ok" : "fail",
           (b.tv_sec > a.tv_sec || (b.tv_sec == a.tv_sec && b.tv_nsec >= a.tv_nsec)) ? "yes" : "no");
    show("thread cpu clock res", clock_getres(tc, &a));

    clockid_t pc;
    clock_getcpuclockid(getpid(), &pc);
    printf("own process cpu clock: %s\n", clock_gettime(pc, &a) == 0 ? "ok" : "fail");
    pid_t c = fork();
    if (c == 0) {
        pause();
        _exit(0);
    }
    clockid_t cc;
    clock_getcpuclockid(c, &cc);
    printf("child process cpu clock: %s\n", clock_gettime(cc, &a) == 0 ? "ok" : "fail");
    kill(c, SIGKILL);
    waitpid(c, NULL, 0);
    show("gone process cpu clock", clock_gettime(cc, &a));
    show("bad which cpu clock", clock_gettime((clockid_t)((~0 << 3) | 3), &a));

    struct sigevent ev;
    memset(&ev, 0, sizeof ev);
    ev.sigev_notify = SIGEV_NONE;
    timer_t t;
    show("timer on thread cpu clock", timer_create(tc, &ev, &t));

    if (setgid(1000) != 0 || setuid(1000) != 0)
        return 1;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    show("clock_settime REALTIME unprivileged", clock_settime(CLOCK_REALTIME, &now));
    show("clock_settime MONOTONIC", clock_settime(CLOCK_MONOTONIC, &now));
    struct timespec bad = {0, 2000000000};
    show("clock_settime bad timespec", clock_settime(CLOCK_REALTIME, &bad));
    show("clock_settime process cpu", clock_settime(CLOCK_PROCESS_CPUTIME_ID, &now));
    show("clock_settime own cpu clock", clock_settime(pc, &now));
    struct timeval tv;
    gettimeofday(&tv, NULL);
    show("settimeofday unprivileged", settimeofday(&tv, NULL));
    return 0;
}
