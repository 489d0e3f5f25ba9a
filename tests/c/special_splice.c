// splice between pipes and between a pipe and a file, tee, sendfile to a pipe.
// e2e: file=data:10000
#define _GNU_SOURCE
#include "e2e.h"
#include <fcntl.h>
#include <sys/sendfile.h>
#include <unistd.h>

/* Evaluates the call before reading errno (argument order is unspecified). */
#define R(label, expr)                                                                   \
    do {                                                                                 \
        long r_ = (long)(expr);                                                          \
        int e_ = errno;                                                                  \
        printf("%s: %ld %s(%d)\n", label, r_, r_ < 0 ? e2e_errname(e_) : "OK", r_ < 0 ? e_ : 0); \
    } while (0)

int main(void)
{
    int a[2], b[2];
    pipe(a);
    pipe(b);
    write(a[1], "hello world", 11);
    R("tee", tee(a[0], b[1], 100, 0));
    char buf[20000];
    long r = read(b[0], buf, sizeof buf);
    printf("tee copy: %ld %.11s\n", r, buf);
    R("splice pipe->pipe", splice(a[0], NULL, b[1], NULL, 5, 0));
    r = read(b[0], buf, sizeof buf);
    printf("spliced: %ld %.5s\n", r, buf);
    r = read(a[0], buf, sizeof buf);
    printf("left in a: %ld %.6s\n", r, buf);
    R("tee same pipe", tee(a[0], a[1], 10, 0));
    R("splice nonblock empty", splice(a[0], NULL, b[1], NULL, 5, SPLICE_F_NONBLOCK));
    R("splice bad flags", splice(a[0], NULL, b[1], NULL, 5, 0x100));

    int f = open("data", O_RDONLY);
    loff_t off = 100;
    R("splice file->pipe", splice(f, &off, a[1], NULL, 3000, 0));
    printf("off now: %lld\n", (long long)off);
    r = read(a[0], buf, sizeof buf);
    unsigned long long h = e2e_fnv1a(E2E_FNV_INIT, buf, r);
    char ref[3000];
    pread(f, ref, 3000, 100);
    printf("file->pipe: %ld matches: %s (%llx)\n", r, memcmp(buf, ref, 3000) ? "no" : "yes", h);
    R("splice offset on pipe", splice(a[0], &off, b[1], NULL, 1, 0));
    R("splice file->file", splice(f, NULL, f, NULL, 1, 0));

    off = 0;
    R("sendfile", sendfile(a[1], f, &off, 5000));
    printf("sendfile off: %lld\n", (long long)off);
    r = read(a[0], buf, sizeof buf);
    printf("sendfile read: %ld\n", r);
    R("sendfile pos", sendfile(a[1], f, NULL, 10));
    printf("file pos: %ld\n", (long)lseek(f, 0, SEEK_CUR));
    read(a[0], buf, sizeof buf);

    R("sendfile from a pipe", sendfile(b[1], a[0], NULL, 10));
    int n = open("/dev/null", O_WRONLY);
    write(a[1], "0123456789", 10);
    R("splice pipe->/dev/null", splice(a[0], NULL, n, NULL, 100, 0));
    close(a[1]);
    R("splice eof", splice(a[0], NULL, b[1], NULL, 10, 0));
    return 0;
}
