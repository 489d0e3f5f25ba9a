// open + read + close of a small file the runner created.
// bench: title=open+read+close
// bench: order=30
// bench: syscall-bound
// bench: iters=300000
// bench: file=small.txt:256
// bench: arg={dir}/small.txt
#include <fcntl.h>
#include <unistd.h>
#include "bench.h"

int main(int argc, char **argv)
{
    long n = bench_iters(argc, argv);
    if (argc < 3)
        return 2;
    char buf[512];
    double t0 = bench_now_ns();
    for (long i = 0; i < n; i++) {
        int fd = open(argv[2], O_RDONLY | O_CLOEXEC);
        if (fd < 0 || read(fd, buf, sizeof buf) != 256) {
            perror("open/read");
            return 1;
        }
        close(fd);
    }
    double t1 = bench_now_ns();
    bench_report(n, t0, t1);
    return 0;
}
