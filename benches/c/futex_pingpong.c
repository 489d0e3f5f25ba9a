// Futex ping-pong between two threads: one round trip hands a word to the other thread and
// back, each hand-off a store plus FUTEX_WAKE, each wait a FUTEX_WAIT.
// bench: title=futex ping-pong (threads)
// bench: order=100
// bench: syscall-bound
// bench: iters=200000
// bench: cflags=-pthread
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "bench.h"

enum { MAIN_TURN, HELPER_TURN, STOP };
static _Atomic int word = MAIN_TURN;

static void fwait(int expected)
{
    syscall(SYS_futex, &word, FUTEX_WAIT_PRIVATE, expected, NULL, NULL, 0);
}

static void fwake(void)
{
    syscall(SYS_futex, &word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

static void *helper(void *arg)
{
    for (;;) {
        int v;
        while ((v = atomic_load(&word)) == MAIN_TURN)
            fwait(MAIN_TURN);
        if (v == STOP)
            return arg;
        atomic_store(&word, MAIN_TURN);
        fwake();
    }
}

int main(int argc, char **argv)
{
    long n = bench_iters(argc, argv);
    pthread_t t;
    if (pthread_create(&t, NULL, helper, NULL) != 0) {
        fprintf(stderr, "pthread_create failed\n");
        return 1;
    }
    double t0 = bench_now_ns();
    for (long i = 0; i < n; i++) {
        atomic_store(&word, HELPER_TURN);
        fwake();
        while (atomic_load(&word) == HELPER_TURN)
            fwait(HELPER_TURN);
    }
    double t1 = bench_now_ns();
    atomic_store(&word, STOP);
    fwake();
    pthread_join(t, NULL);
    bench_report(n, t0, t1);
    return 0;
}
