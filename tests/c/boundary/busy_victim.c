// Run inside the sandbox by tests/tests/escape.rs (not by the differential harness).
// Keeps the sentry writing into its memory as often as it can: three threads make
// system calls in a loop (each return may refresh the rseq area glibc registered,
// as threads move between CPUs) while a 1 ms interval timer makes the sentry build
// signal frames. Prints "ready", then runs until killed: the test kills its stub
// from outside at a random moment and expects SIGKILL, never a fault of its own.
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <sys/time.h>
#include <unistd.h>

static volatile sig_atomic_t ticks;

static void on_alarm(int sig) {
    (void)sig;
    ticks++;
}

static void *spin(void *arg) {
    (void)arg;
    for (;;) {
        getppid();
        sched_yield();
    }
    return NULL;
}

int main(void) {
    struct sigaction sa = {0};
    sa.sa_handler = on_alarm;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval it = {{0, 1000}, {0, 1000}};
    setitimer(ITIMER_REAL, &it, NULL);
    pthread_t t;
    for (int i = 0; i < 2; i++)
        pthread_create(&t, NULL, spin, NULL);
    printf("ready\n");
    fflush(stdout);
    spin(NULL);
    return 0;
}
