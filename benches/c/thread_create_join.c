// pthread_create of a thread that returns at once + pthread_join.
// bench: title=thread create+join
// bench: order=90
// bench: syscall-bound
// bench: iters=50000
// bench: cflags=-pthread
#include <pthread.h>
#include "bench.h"

static void *body(void *arg)
{
    return arg;
}

int main(int argc, char **argv)
{
    long n = bench_iters(argc, argv);
    double t0 = bench_now_ns();
    for (long i = 0; i < n; i++) {
        pthread_t t;
        void *ret;
        int e = pthread_create(&t, NULL, body, &n);
        if (e != 0) {
            fprintf(stderr, "pthread_create: error %d\n", e);
            return 1;
        }
        if (pthread_join(t, &ret) != 0 || ret != &n) {
            fprintf(stderr, "pthread_join failed\n");
            return 1;
        }
    }
    double t1 = bench_now_ns();
    bench_report(n, t0, t1);
    return 0;
}
