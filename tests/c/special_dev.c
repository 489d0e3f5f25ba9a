// /dev/null, /dev/zero, /dev/full, /dev/urandom semantics and device numbers;
// /sys/devices/system/cpu/online.
#define _GNU_SOURCE
#include "e2e.h"
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <unistd.h>

/* Evaluates the call before reading errno (argument order is unspecified). */
#define R(label, expr)                                                                   \
    do {                                                                                 \
        long r_ = (long)(expr);                                                          \
        int e_ = errno;                                                                  \
        printf("%s: %ld %s(%d)\n", label, r_, r_ < 0 ? e2e_errname(e_) : "OK", r_ < 0 ? e_ : 0); \
    } while (0)

static void node(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        printf("%s: stat %s\n", path, e2e_errname(errno));
        return;
    }
    printf("%s: chr=%d mode=%o rdev=%u,%u\n", path, S_ISCHR(st.st_mode), st.st_mode & 07777,
           major(st.st_rdev), minor(st.st_rdev));
}

int main(void)
{
    node("/dev/null");
    node("/dev/zero");
    node("/dev/full");
    node("/dev/random");
    node("/dev/urandom");
    char buf[64];
    int fd = open("/dev/null", O_RDWR);
    R("null read", read(fd, buf, sizeof buf));
    R("null write", write(fd, "abc", 3));
    /* /dev/null never reads the data: a bad buffer is accepted, in write and writev;
       the descriptor is still checked. */
    void *bad = (void *)16;
    R("null write bad buffer", write(fd, bad, 100));
    struct iovec iov[2] = {{bad, 10}, {buf, 5}};
    R("null writev bad buffer", writev(fd, iov, 2));
    R("null pwrite bad buffer", pwrite(fd, bad, 7, 0));
    int rd = open("/dev/null", O_RDONLY);
    R("null write on O_RDONLY", write(rd, bad, 100));
    R("null writev on O_RDONLY, bad iovec array", writev(rd, bad, 2));
    R("null pwrite on O_RDONLY", pwrite(rd, bad, 100, 0));
    R("null pwritev on O_RDONLY, bad iovec array", pwritev(rd, bad, 2, 0));
    R("null pwritev2 on O_RDONLY, bad iovec array", pwritev2(rd, bad, 2, 0, 0));
    R("null pwritev2 at -1 on O_RDONLY, bad iovec array", pwritev2(rd, bad, 2, -1, 0));
    R("null pwritev2 bad buffer", pwritev2(fd, iov, 2, 0, 0));
    int p[2];
    if (pipe(p) == 0) {
        R("pwrite on a pipe's read end", pwrite(p[0], bad, 10, 0));
        R("pwrite on a pipe's write end", pwrite(p[1], "x", 1, 0));
        R("pwritev on a pipe's read end", pwritev(p[0], bad, 2, 0));
        R("pwrite at a negative offset", pwrite(p[0], bad, 10, -1));
        /* pwritev2/preadv2: offset, descriptor, position, access mode, then the iovec
           array, then the flags. */
        R("pwritev2 on a pipe's read end, bad iovec array",
          pwritev2(p[0], bad, 2, 0, 0));
        R("pwritev2 at -1 on a pipe's read end, bad iovec array",
          pwritev2(p[0], bad, 2, -1, 0));
        R("pwritev2 at -2", pwritev2(p[1], bad, 2, -2, 0));
        R("pwritev2 unknown flag, bad iovec array", pwritev2(p[1], bad, 2, -1, 0x1000));
        R("pwritev2 unknown flag", pwritev2(p[1], iov + 1, 1, -1, 0x1000));
        R("pwritev2 bad fd, unknown flag", pwritev2(999, bad, 2, -1, 0x1000));
        R("pwritev2 bad fd at -2", pwritev2(999, bad, 2, -2, 0));
        R("pread bad fd at -2", pread(999, bad, 2, -2));
        R("readv on a pipe's write end, bad iovec array", readv(p[1], bad, 2));
        R("preadv on a pipe's read end, bad iovec array", preadv(p[0], bad, 2, 0));
        R("preadv2 on a pipe's write end, bad iovec array", preadv2(p[1], bad, 2, -1, 0));
        R("preadv2 at 0 on a pipe, bad iovec array", preadv2(p[0], bad, 2, 0, 0));
        R("preadv2 unknown flag", preadv2(p[0], iov + 1, 1, -1, 0x1000));
        R("preadv2 RWF_NOWAIT on an empty pipe", preadv2(p[0], iov + 1, 1, -1, RWF_NOWAIT));
        close(p[0]);
        close(p[1]);
    }
    close(rd);
    close(fd);
    fd = open("/dev/zero", O_RDONLY);
    memset(buf, 7, sizeof buf);
    long r = read(fd, buf, sizeof buf);
    int zero = 1;
    for (int i = 0; i < 64; i++)
        zero &= buf[i] == 0;
    printf("zero read: %ld all zero: %d\n", r, zero);
    close(fd);
    fd = open("/dev/full", O_WRONLY);
    R("full write", write(fd, "x", 1));
    close(fd);
    fd = open("/dev/urandom", O_RDONLY);
    unsigned char a[32] = {0}, b[32] = {0};
    read(fd, a, 32);
    read(fd, b, 32);
    printf("urandom differs: %s\n", memcmp(a, b, 32) ? "yes" : "no");
    close(fd);
    char link[64] = {0};
    readlink("/dev/fd", link, sizeof link - 1);
    printf("/dev/fd -> %s\n", link);
    memset(link, 0, sizeof link);
    readlink("/dev/stdout", link, sizeof link - 1);
    printf("/dev/stdout -> %s\n", link);

    fd = open("/sys/devices/system/cpu/online", O_RDONLY);
    memset(buf, 0, sizeof buf);
    r = read(fd, buf, sizeof buf - 1);
    printf("cpu online starts with 0: %s ends with newline: %s\n", buf[0] == '0' ? "yes" : "no",
           r > 0 && buf[r - 1] == '\n' ? "yes" : "no");
    return 0;
}
