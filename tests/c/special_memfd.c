// memfd_create: write, MAP_SHARED mappings that see each other and the fd, fstat;
// fallocate (allocate, keep size, punch a hole) and the seals that refuse it.
#define _GNU_SOURCE
#include "e2e.h"
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define R(label, expr)                                                                   \
    do {                                                                                 \
        long r_ = (long)(expr);                                                          \
        int e_ = errno;                                                                  \
        printf("%s: %ld %s(%d)\n", label, r_, r_ < 0 ? e2e_errname(e_) : "OK", r_ < 0 ? e_ : 0); \
    } while (0)

static char page[8192];

int main(void)
{
    int fd = memfd_create("test", MFD_CLOEXEC);
    printf("created: %s cloexec=%d\n", fd >= 0 ? "yes" : "no", fcntl(fd, F_GETFD));
    R("bad flags", memfd_create("x", 0x100));
    char longname[300];
    memset(longname, 'a', sizeof longname - 1);
    longname[299] = 0;
    R("long name", memfd_create(longname, 0));
    memset(page, 'a', sizeof page);
    R("write", write(fd, page, sizeof page));
    struct stat st;
    fstat(fd, &st);
    printf("regular: %d size: %ld mode: %o\n", S_ISREG(st.st_mode), (long)st.st_size, st.st_mode & 0777);
    char *m1 = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    char *m2 = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 4096);
    printf("mapped: %s %s\n", m1 != MAP_FAILED ? "yes" : "no", m2 != MAP_FAILED ? "yes" : "no");
    if (m1 == MAP_FAILED || m2 == MAP_FAILED)
        return 1;
    m1[4096] = 'Z';
    m1[0] = 'Q';
    printf("second mapping sees: %c\n", m2[0]);
    char c = 0;
    pread(fd, &c, 1, 0);
    printf("fd sees: %c\n", c);
    pwrite(fd, "W", 1, 4097);
    printf("mapping sees fd write: %c\n", m2[1]);
    lseek(fd, 0, SEEK_SET);
    char buf[3] = {0};
    read(fd, buf, 2);
    printf("read: %s\n", buf);
    printf("lseek end: %ld\n", (long)lseek(fd, 0, SEEK_END));

    /* ftruncate shrinks and grows a memfd; F_SEAL_SHRINK then refuses a shrink
       (EPERM) but not a grow, F_SEAL_GROW the reverse; the size reads back. */
    int s = memfd_create("e2e-shrink", MFD_ALLOW_SEALING);
    R("write 8192", write(s, page, sizeof page));
    R("shrink to 100", ftruncate(s, 100));
    fstat(s, &st);
    printf("size after shrink: %ld\n", (long)st.st_size);
    R("pread past the end", pread(s, buf, 2, 100));
    R("pread last byte", pread(s, buf, 1, 99));
    printf("last byte: %c\n", buf[0]);
    R("shrink to 0", ftruncate(s, 0));
    R("grow to 4096", ftruncate(s, 4096));
    fstat(s, &st);
    printf("size after grow: %ld\n", (long)st.st_size);
    R("pread grown hole", pread(s, buf, 2, 0));
    printf("hole reads zero: %s\n", buf[0] == 0 && buf[1] == 0 ? "yes" : "no");
    R("seal shrink", fcntl(s, F_ADD_SEALS, F_SEAL_SHRINK));
    R("get seals", fcntl(s, F_GET_SEALS));
    R("shrink when sealed", ftruncate(s, 10));
    R("grow when shrink-sealed", ftruncate(s, 8192));
    R("seal grow", fcntl(s, F_ADD_SEALS, F_SEAL_GROW));
    R("grow when grow-sealed", ftruncate(s, 16384));
    R("same size when sealed", ftruncate(s, 8192));
    fstat(s, &st);
    printf("size after sealed attempts: %ld\n", (long)st.st_size);
    R("no sealing without MFD_ALLOW_SEALING", fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK));
    R("fallocate inside when grow-sealed", fallocate(s, 0, 0, 8192));
    R("fallocate past end when grow-sealed", fallocate(s, 0, 0, 16384));
    R("keep-size past end when grow-sealed", fallocate(s, FALLOC_FL_KEEP_SIZE, 4096, 16384));
    R("punch when grow-sealed", fallocate(s, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4096));
    R("seal write", fcntl(s, F_ADD_SEALS, F_SEAL_WRITE));
    R("punch when write-sealed", fallocate(s, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4096));
    close(s);

    int a = memfd_create("alloc", 0);
    R("fallocate 1 MiB", fallocate(a, 0, 4096, 1 << 20));
    fstat(a, &st);
    printf("size %ld blocks %ld\n", (long)st.st_size, (long)st.st_blocks);
    R("keep size 1 MiB more", fallocate(a, FALLOC_FL_KEEP_SIZE, 1 << 20, 1 << 20));
    fstat(a, &st);
    printf("size %ld blocks %ld\n", (long)st.st_size, (long)st.st_blocks);
    R("write", pwrite(a, "abcdefgh", 8, 8192));
    R("punch 3 pages", fallocate(a, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 8190, 3 * 4096));
    fstat(a, &st);
    printf("size %ld blocks %ld\n", (long)st.st_size, (long)st.st_blocks);
    char pb[8];
    memset(pb, 1, sizeof pb);
    R("read punched", pread(a, pb, 8, 8192));
    printf("punched reads zero: %s\n", pb[0] == 0 && pb[7] == 0 ? "yes" : "no");
    R("punch without keep-size", fallocate(a, FALLOC_FL_PUNCH_HOLE, 0, 4096));
    R("collapse range", fallocate(a, FALLOC_FL_COLLAPSE_RANGE, 0, 4096));
    R("zero length", fallocate(a, 0, 0, 0));
    R("negative offset", fallocate(a, 0, -1, 4096));
    close(a);
    return 0;
}
