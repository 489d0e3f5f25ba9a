// Interval timers and alarm: SIGALRM delivery, periodic re-arm, getitimer, alarm's
// return value, POSIX timers with SIGEV_SIGNAL, and nanosleep interrupted (EINTR).
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static volatile int ticks, rt_hits, rt_val;
static void on_alrm(int s) { (void)s; ticks++; }
static void on_rt(int s, siginfo_t *si, void *uc) { (void)s; (void)uc; rt_hits++; rt_val = si->si_value.sival_int; }

int main(void) {
    signal(SIGALRM, on_alrm);
    struct itimerval it = {.it_interval = {0, 20000}, .it_value = {0, 20000}};
    setitimer(ITIMER_REAL, &it, NULL);
    while (ticks < 5) pause();
    struct itimerval cur;
    getitimer(ITIMER_REAL, &cur);
    printf("itimer: ticks>=5 yes, interval=%ld us\n", (long)cur.it_interval.tv_usec);
    memset(&it, 0, sizeof it);
    setitimer(ITIMER_REAL, &it, NULL);

    printf("alarm first=%u\n", alarm(10));
    unsigned left = alarm(0);
    printf("alarm left in 9..10: %s\n", left >= 9 && left <= 10 ? "yes" : "no");

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_rt;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGRTMIN + 1, &sa, NULL);
    struct sigevent sev;
    memset(&sev, 0, sizeof sev);
    sev.sigev_notify = SIGEV_SIGNAL;
    sev.sigev_signo = SIGRTMIN + 1;
    sev.sigev_value.sival_int = 77;
    timer_t t;
    if (timer_create(CLOCK_MONOTONIC, &sev, &t) != 0) { perror("timer_create"); return 1; }
    struct itimerspec its = {.it_value = {0, 10000000}};
    timer_settime(t, 0, &its, NULL);
    while (!rt_hits) pause();
    printf("posix timer: hits=%d value=%d\n", rt_hits, rt_val);
    timer_delete(t);

    ticks = 0;
    struct itimerval once = {.it_value = {0, 30000}};
    setitimer(ITIMER_REAL, &once, NULL);
    struct timespec req = {5, 0}, rem = {0, 0};
    int r = nanosleep(&req, &rem);
    printf("nanosleep interrupted: r=%d errno=%s rem<5s=%s ticks=%d\n", r, errno == EINTR ? "EINTR" : "?", rem.tv_sec < 5 ? "yes" : "no", ticks);
    return 0;
}
