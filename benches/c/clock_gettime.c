// clock_gettime(CLOCK_MONOTONIC) through libc: natively the vDSO answers without entering the
// kernel, so this row shows whether a runtime offers a vDSO or traps every call.
// bench: title=clock_gettime
// bench: order=20
// bench: iters=20000000
#include <time.h>
#include "bench.h"

int main(int argc, char **argv)
{
    long n = bench_iters(argc, argv);
    struct timespec t;
    long sum = 0;
    double t0 = bench_now_ns();
    for (long i = 0; i < n; i++) {
        clock_gettime(CLOCK_MONOTONIC, &t);
        sum += t.tv_nsec;
    }
    double t1 = bench_now_ns();
    bench_report(n, t0, t1);
    return sum == 42; /* keeps the loop from being optimised away */
}
