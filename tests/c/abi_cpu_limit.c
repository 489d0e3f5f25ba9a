// CPU-time limits and timers count CPU time, not wall time: RLIMIT_CPU sends
// SIGXCPU at the soft limit and SIGKILL at the hard one (a process past its soft
// limit was never signalled); ITIMER_VIRTUAL, ITIMER_PROF and a timer on
// CLOCK_PROCESS_CPUTIME_ID do not fire while the process sleeps, and fire once it
// has spent the time on the CPU.
// e2e: case=rlimit
// e2e: arg=rlimit
// e2e: stdout=SIGXCPU
// e2e: exit=137
// e2e: timeout=30
// e2e: case=timers
// e2e: arg=timers
// e2e: stdout=ITIMER_VIRTUAL during sleep: 0
// e2e: stdout=ITIMER_VIRTUAL after spin: 1
// e2e: stdout=ITIMER_PROF during sleep: 0
// e2e: stdout=ITIMER_PROF after spin: 1
// e2e: stdout=cpu-clock timer during sleep: 0
// e2e: stdout=cpu-clock timer after spin: 1
// e2e: timeout=30
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t hits;
static void on_sig(int s) {
    if (s == SIGXCPU && hits == 0)
        write(1, "SIGXCPU\n", 8);
    hits++;
}

static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Burns CPU until `sig` has been handled or `secs` of CPU time are spent. */
static void spin(double secs) {
    double end = cpu_now() + secs;
    volatile unsigned long x = 0;
    while (hits == 0 && cpu_now() < end)
        for (int i = 0; i < 2000000; i++)
            x += i;
}

static int rlimit_case(void) {
    signal(SIGXCPU, on_sig);
    struct rlimit rl = {1, 2};
    setrlimit(RLIMIT_CPU, &rl);
    /* Wall time alone must not count. */
    usleep(1200000);
    if (hits)
        printf("signalled while asleep\n");
    volatile unsigned long x = 0;
    for (;;)
        x++;
}

static void one_itimer(const char *name, int which, int sig) {
    hits = 0;
    signal(sig, on_sig);
    struct itimerval it = {{0, 0}, {0, 100000}};
    setitimer(which, &it, NULL);
    usleep(300000);
    printf("%s during sleep: %d\n", name, (int)hits);
    spin(3);
    printf("%s after spin: %d\n", name, (int)hits);
    struct itimerval off;
    memset(&off, 0, sizeof off);
    setitimer(which, &off, NULL);
}

static int timers_case(void) {
    one_itimer("ITIMER_VIRTUAL", ITIMER_VIRTUAL, SIGVTALRM);
    one_itimer("ITIMER_PROF", ITIMER_PROF, SIGPROF);
    hits = 0;
    signal(SIGUSR1, on_sig);
    struct sigevent ev;
    memset(&ev, 0, sizeof ev);
    ev.sigev_notify = SIGEV_SIGNAL;
    ev.sigev_signo = SIGUSR1;
    timer_t t;
    timer_create(CLOCK_PROCESS_CPUTIME_ID, &ev, &t);
    struct itimerspec its = {{0, 0}, {0, 100000000}};
    timer_settime(t, 0, &its, NULL);
    usleep(300000);
    printf("cpu-clock timer during sleep: %d\n", (int)hits);
    spin(3);
    printf("cpu-clock timer after spin: %d\n", (int)hits);
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc < 2)
        return 2;
    if (!strcmp(argv[1], "rlimit"))
        return rlimit_case();
    if (!strcmp(argv[1], "timers"))
        return timers_case();
    return 2;
}
