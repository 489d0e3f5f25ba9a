// open + getdents64 until the end + close of a directory of 10 000 empty files.
// Not syscall-bound: a dozen system calls per op, the time goes to listing 10 000 entries.
// bench: title=getdents 10k-entry dir
// bench: order=130
// bench: iters=500
// bench: dir=entries:10000
// bench: arg={dir}/entries
#include <fcntl.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "bench.h"

int main(int argc, char **argv)
{
    long n = bench_iters(argc, argv);
    if (argc < 3)
        return 2;
    static char buf[32768];
    double t0 = bench_now_ns();
    for (long i = 0; i < n; i++) {
        int fd = open(argv[2], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0) {
            perror("open");
            return 1;
        }
        long entries = 0;
        for (;;) {
            long got = syscall(SYS_getdents64, fd, buf, sizeof buf);
            if (got < 0) {
                perror("getdents64");
                return 1;
            }
            if (got == 0)
                break;
            for (long off = 0; off < got;) {
                unsigned short reclen = *(unsigned short *)(buf + off + 16);
                const char *name = buf + off + 19;
                if (strcmp(name, ".") != 0 && strcmp(name, "..") != 0)
                    entries++;
                off += reclen;
            }
        }
        close(fd);
        if (entries != 10000) {
            fprintf(stderr, "saw %ld files, want 10000\n", entries);
            return 1;
        }
    }
    double t1 = bench_now_ns();
    bench_report(n, t0, t1);
    return 0;
}
