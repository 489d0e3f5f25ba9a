// Raw getpid(2) (libc may cache the pid; the syscall itself is what we time).
// bench: title=getpid
// bench: order=10
// bench: syscall-bound
// bench: iters=2000000
#include <sys/syscall.h>
#include <unistd.h>
#include "bench.h"

int main(int argc, char **argv)
{
    long n = bench_iters(argc, argv);
    double t0 = bench_now_ns();
    for (long i = 0; i < n; i++)
        syscall(SYS_getpid);
    double t1 = bench_now_ns();
    bench_report(n, t0, t1);
    return 0;
}
