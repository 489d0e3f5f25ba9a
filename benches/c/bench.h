/* Shared by the microbenchmarks: each program runs its operation ITERS times
 * (argv[1]) and prints "ns_per_op=<float>" measured around the loop only, so
 * runtime start-up cost is not counted. */
#ifndef BENCH_H
#define BENCH_H

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static inline double bench_now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

static inline long bench_iters(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 0;
    if (n <= 0) {
        fprintf(stderr, "usage: %s ITERS [args]\n", argv[0]);
        exit(2);
    }
    return n;
}

static inline void bench_report(long iters, double t0, double t1)
{
    printf("ns_per_op=%.2f\n", (t1 - t0) / (double)iters);
}

#endif
