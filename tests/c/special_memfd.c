// memfd_create: write, MAP_SHARED mappings that see each other and the fd, fstat.
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
    return 0;
}
