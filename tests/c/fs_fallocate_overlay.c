// fallocate on files of the root filesystem (the host's disk natively; the sandbox's
// overlay over the gofer's root inside, whose written files live in memfds): a new
// file and a copied-up one, mode 0, FALLOC_FL_KEEP_SIZE and hole punching, then the
// pattern Go's linker uses for its output (fallocate, ftruncate, a shared writable
// mmap). These once answered ENODEV inside, so `go build` failed with "mapping
// output file failed: no such device". Block counts differ between filesystems:
// only what every Linux filesystem that supports the modes guarantees is printed.
// e2e: file=data:65536
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "e2e.h"

static void T(const char *what, int r) { printf("%s: %s\n", what, r == 0 ? "OK" : e2e_errname(errno)); }

static void show(int fd, const char *what) {
    struct stat st;
    fstat(fd, &st);
    printf("  %s: size %ld, allocated at least the size: %d\n", what, (long)st.st_size,
           (long)st.st_blocks * 512 >= (long)st.st_size);
}

static int zeros(int fd, off_t off, size_t len) {
    char b[4096];
    while (len > 0) {
        size_t n = len < sizeof(b) ? len : sizeof(b);
        if (pread(fd, b, n, off) != (ssize_t)n)
            return -1;
        for (size_t i = 0; i < n; i++)
            if (b[i])
                return 0;
        off += n;
        len -= n;
    }
    return 1;
}

int main(void) {
    // A file made here.
    int fd = open("new", O_RDWR | O_CREAT | O_TRUNC, 0644);
    T("fallocate new 64k", fallocate(fd, 0, 0, 65536));
    show(fd, "new");
    T("fallocate keep size past the end", fallocate(fd, FALLOC_FL_KEEP_SIZE, 65536, 65536));
    show(fd, "kept");
    T("write", pwrite(fd, "abc", 3, 8192) == 3 ? 0 : -1);
    T("punch hole", fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 4096, 8192));
    printf("  hole reads zeros: %d\n", zeros(fd, 4096, 8192));
    show(fd, "punched");
    T("punch without keep size", fallocate(fd, FALLOC_FL_PUNCH_HOLE, 0, 4096));
    T("bad mode", fallocate(fd, 0x4000, 0, 4096));
    T("zero length", fallocate(fd, 0, 0, 0));
    close(fd);
    fd = open("new", O_RDONLY);
    T("read-only fd", fallocate(fd, 0, 0, 4096));
    close(fd);
    unlink("new");

    // A file of the lower layer: opening it for writing copies it up.
    fd = open("data", O_RDWR);
    char before[16], after[16];
    pread(fd, before, sizeof(before), 30000);
    T("fallocate grow existing", fallocate(fd, 0, 60000, 20000));
    show(fd, "grown");
    T("punch in existing", fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 16384));
    printf("  hole reads zeros: %d\n", zeros(fd, 0, 16384));
    pread(fd, after, sizeof(after), 30000);
    printf("  data past the hole kept: %d\n", memcmp(before, after, sizeof(before)) == 0);
    close(fd);

    // Go's linker: fallocate the output, size it, map it shared and write through
    // the mapping; a read sees the bytes.
    fd = open("out", O_RDWR | O_CREAT | O_TRUNC, 0755);
    T("linker fallocate", fallocate(fd, 0, 0, 3 * 4096));
    T("linker ftruncate", ftruncate(fd, 3 * 4096));
    char *m = mmap(NULL, 3 * 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    T("linker mmap", m == MAP_FAILED ? -1 : 0);
    if (m != MAP_FAILED) {
        memcpy(m + 4096, "\x7f" "ELF", 4);
        T("msync", msync(m, 3 * 4096, MS_SYNC));
        munmap(m, 3 * 4096);
        char b[4] = {0};
        pread(fd, b, 4, 4096);
        printf("  written through the mapping: %d\n", memcmp(b, "\x7f" "ELF", 4) == 0);
    }
    close(fd);
    unlink("out");
    return 0;
}
