// One 4 KiB write(2) to /dev/null (opened once).
// bench: title=write 4KiB /dev/null
// bench: order=50
// bench: syscall-bound
// bench: iters=2000000
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include "bench.h"

int main(int argc, char **argv)
{
    long n = bench_iters(argc, argv);
    static char buf[4096];
    memset(buf, 'x', sizeof buf);
    int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
        perror("open /dev/null");
        return 1;
    }
    double t0 = bench_now_ns();
    for (long i = 0; i < n; i++) {
        if (write(fd, buf, sizeof buf) != (ssize_t)sizeof buf) {
            perror("write");
            return 1;
        }
    }
    double t1 = bench_now_ns();
    bench_report(n, t0, t1);
    return 0;
}
