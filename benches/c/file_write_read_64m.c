// Writes a 64 MiB file in 1 MiB writes, reads it back in 1 MiB reads, unlinks it. The file
// is in the run directory, a fresh temporary directory.
// bench: title=64MiB file write+read
// bench: order=120
// bench: iters=20
// bench: arg={dir}/big.bin
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include "bench.h"

#define CHUNK (1 << 20)
#define CHUNKS 64

int main(int argc, char **argv)
{
    long n = bench_iters(argc, argv);
    if (argc < 3)
        return 2;
    static char buf[CHUNK];
    memset(buf, 'y', sizeof buf);
    double t0 = bench_now_ns();
    for (long i = 0; i < n; i++) {
        int fd = open(argv[2], O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0) {
            perror("open");
            return 1;
        }
        for (int c = 0; c < CHUNKS; c++) {
            if (write(fd, buf, CHUNK) != CHUNK) {
                perror("write");
                return 1;
            }
        }
        if (lseek(fd, 0, SEEK_SET) != 0) {
            perror("lseek");
            return 1;
        }
        for (int c = 0; c < CHUNKS; c++) {
            if (read(fd, buf, CHUNK) != CHUNK) {
                perror("read");
                return 1;
            }
        }
        close(fd);
        if (unlink(argv[2]) != 0) {
            perror("unlink");
            return 1;
        }
    }
    double t1 = bench_now_ns();
    bench_report(n, t0, t1);
    return 0;
}
