// CPU time accounting: a busy loop shows up as user time in getrusage, times and
// the process CPU clock; a waited-for child's time shows up in RUSAGE_CHILDREN.
#define _GNU_SOURCE
#include <stdio.h>
#include <sys/resource.h>
#include <sys/times.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(clockid_t c)
{
    struct timespec t;
    clock_gettime(c, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static volatile unsigned long sink;

/* A fixed amount of work (about 0.65 ns an addition on this machine class): its CPU
 * time does not shrink when a loaded machine gives the process less of a CPU, as a
 * wall-time loop's would (a pinned sandbox stub then got under 0.05 s of 0.3 s). */
static void burn(unsigned long additions)
{
    for (unsigned long i = 0; i < additions; i++)
        sink += i;
}

static double tv(struct timeval t)
{
    return t.tv_sec + t.tv_usec / 1e6;
}

int main(void)
{
    double w0 = now(CLOCK_MONOTONIC), c0 = now(CLOCK_PROCESS_CPUTIME_ID);
    burn(600000000UL);
    double w1 = now(CLOCK_MONOTONIC), c1 = now(CLOCK_PROCESS_CPUTIME_ID);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    /* A loaded machine may give us less than the wall time, never more. */
    printf("cpu clock counted the loop: %s\n", c1 - c0 > 0.05 ? "yes" : "no");
    printf("cpu clock within wall time: %s\n", c1 - c0 <= (w1 - w0) + 0.05 ? "yes" : "no");
    printf("getrusage user time: %s\n", tv(ru.ru_utime) > 0.05 ? "yes" : "no");
    struct tms t;
    times(&t);
    printf("times utime: %s\n", t.tms_utime > 5 * sysconf(_SC_CLK_TCK) / 100 ? "yes" : "no");
    getrusage(RUSAGE_CHILDREN, &ru);
    printf("no children yet: %s\n", tv(ru.ru_utime) + tv(ru.ru_stime) < 0.05 ? "yes" : "no");
    fflush(stdout);
    pid_t p = fork();
    if (p == 0) {
        burn(500000000UL);
        _exit(0);
    }
    struct rusage wru;
    wait4(p, NULL, 0, &wru);
    printf("wait4 reports the child's time: %s\n", tv(wru.ru_utime) > 0.05 ? "yes" : "no");
    getrusage(RUSAGE_CHILDREN, &ru);
    printf("child's time counted after wait: %s\n", tv(ru.ru_utime) > 0.05 ? "yes" : "no");
    times(&t);
    printf("times cutime: %s\n", t.tms_cutime > 5 * sysconf(_SC_CLK_TCK) / 100 ? "yes" : "no");
    return 0;
}
