// timer_settime with TIMER_ABSTIME reads the deadline on the timer's own clock:
// CLOCK_MONOTONIC and CLOCK_BOOTTIME deadlines 150 ms ahead fire after about 150 ms (not at
// once, not never), a CLOCK_REALTIME one too, a deadline in the past fires at once, and a
// CLOCK_PROCESS_CPUTIME_ID deadline fires once the process has used that much CPU time.
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static volatile sig_atomic_t fired;
static void on_sig(int s) { (void)s; fired = 1; }

static double secs(clockid_t c) {
    struct timespec ts;
    clock_gettime(c, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void wall(const char *name, clockid_t clock, double ahead) {
    timer_t t;
    struct sigevent ev;
    memset(&ev, 0, sizeof ev);
    ev.sigev_notify = SIGEV_SIGNAL;
    ev.sigev_signo = SIGUSR1;
    if (timer_create(clock, &ev, &t) != 0) { printf("%s: timer_create failed\n", name); return; }
    fired = 0;
    double start = secs(CLOCK_MONOTONIC);
    double deadline = secs(clock) + ahead;
    struct itimerspec its;
    memset(&its, 0, sizeof its);
    its.it_value.tv_sec = (time_t)deadline;
    its.it_value.tv_nsec = (long)((deadline - (time_t)deadline) * 1e9);
    if (ahead < 0 && its.it_value.tv_sec < 0) its.it_value.tv_sec = 0;
    timer_settime(t, TIMER_ABSTIME, &its, NULL);
    while (!fired && secs(CLOCK_MONOTONIC) - start < 3.0) {
        struct timespec nap = {0, 1000000};
        nanosleep(&nap, NULL);
    }
    double took = secs(CLOCK_MONOTONIC) - start;
    if (ahead > 0)
        printf("%s: fired=%d after 0.12..1.5 s: %s\n", name, fired, took > 0.12 && took < 1.5 ? "yes" : "no");
    else
        printf("%s past deadline: fired=%d at once: %s\n", name, fired, took < 0.5 ? "yes" : "no");
    timer_delete(t);
}

int main(void) {
    signal(SIGUSR1, on_sig);
    wall("monotonic", CLOCK_MONOTONIC, 0.15);
    wall("boottime", CLOCK_BOOTTIME, 0.15);
    wall("realtime", CLOCK_REALTIME, 0.15);
    wall("monotonic", CLOCK_MONOTONIC, -5.0);

    timer_t t;
    struct sigevent ev;
    memset(&ev, 0, sizeof ev);
    ev.sigev_notify = SIGEV_SIGNAL;
    ev.sigev_signo = SIGUSR1;
    timer_create(CLOCK_PROCESS_CPUTIME_ID, &ev, &t);
    fired = 0;
    double target = secs(CLOCK_PROCESS_CPUTIME_ID) + 0.1;
    struct itimerspec its;
    memset(&its, 0, sizeof its);
    its.it_value.tv_sec = (time_t)target;
    its.it_value.tv_nsec = (long)((target - (time_t)target) * 1e9);
    timer_settime(t, TIMER_ABSTIME, &its, NULL);
    double start = secs(CLOCK_MONOTONIC);
    while (!fired && secs(CLOCK_MONOTONIC) - start < 5.0) {
    }
    double used = secs(CLOCK_PROCESS_CPUTIME_ID);
    printf("cputime: fired=%d, cpu time at least the deadline: %s\n", fired, used >= target - 0.02 ? "yes" : "no");
    return 0;
}
