// stat(2) of a small file the runner created.
// bench: title=stat
// bench: order=40
// bench: syscall-bound
// bench: iters=1000000
// bench: file=small.txt:256
// bench: arg={dir}/small.txt
#include <sys/stat.h>
#include "bench.h"

int main(int argc, char **argv)
{
    long n = bench_iters(argc, argv);
    if (argc < 3)
        return 2;
    struct stat st;
    double t0 = bench_now_ns();
    for (long i = 0; i < n; i++) {
        if (stat(argv[2], &st) != 0 || st.st_size != 256) {
            perror("stat");
            return 1;
        }
    }
    double t1 = bench_now_ns();
    bench_report(n, t0, t1);
    return 0;
}
