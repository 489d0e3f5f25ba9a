// mmap of 1 MiB anonymous memory, a write to each 4 KiB page, munmap.
// Not syscall-bound: two system calls and 256 page faults per op; the faults dominate.
// bench: title=mmap+touch+munmap 1MiB
// bench: order=110
// bench: iters=20000
#include <sys/mman.h>
#include "bench.h"

#define SIZE (1 << 20)
#define PAGE 4096

int main(int argc, char **argv)
{
    long n = bench_iters(argc, argv);
    double t0 = bench_now_ns();
    for (long i = 0; i < n; i++) {
        char *p = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) {
            perror("mmap");
            return 1;
        }
        for (long off = 0; off < SIZE; off += PAGE)
            ((volatile char *)p)[off] = 1;
        if (munmap(p, SIZE) != 0) {
            perror("munmap");
            return 1;
        }
    }
    double t1 = bench_now_ns();
    bench_report(n, t0, t1);
    return 0;
}
