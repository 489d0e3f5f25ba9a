/* Writes MiB mebibytes (argv[1]) of a position-dependent pattern to /big in the
 * root overlay, says "written", waits for a line on stdin (the test looks at the
 * host meanwhile), then reads the file back through read(2) and through a shared
 * mapping and says "verified" if every byte matches. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define CHUNK (1 << 20)

static unsigned char byte_at(unsigned long long off) {
    return (unsigned char)((off * 2654435761ULL) >> 13);
}

static void fill(unsigned char *b, unsigned long long base) {
    for (size_t i = 0; i < CHUNK; i++) b[i] = byte_at(base + i);
}

int main(int argc, char **argv) {
    long mib = argc > 1 ? atol(argv[1]) : 200;
    static unsigned char buf[CHUNK], want[CHUNK];
    int fd = open("/big", O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        printf("open: %s\n", strerror(errno));
        return 1;
    }
    for (long i = 0; i < mib; i++) {
        fill(buf, (unsigned long long)i * CHUNK);
        size_t done = 0;
        while (done < CHUNK) {
            ssize_t n = write(fd, buf + done, CHUNK - done);
            if (n <= 0) {
                printf("write at %ld MiB: %s\n", i, n < 0 ? strerror(errno) : "short");
                return 1;
            }
            done += (size_t)n;
        }
    }
    printf("written\n");
    fflush(stdout);
    char line[16];
    if (!fgets(line, sizeof line, stdin)) {
        /* No test driving us: go on at once. */
    }
    for (long i = 0; i < mib; i++) {
        fill(want, (unsigned long long)i * CHUNK);
        size_t done = 0;
        while (done < CHUNK) {
            ssize_t n = pread(fd, buf + done, CHUNK - done, (off_t)i * CHUNK + (off_t)done);
            if (n <= 0) {
                printf("read at %ld MiB: %s\n", i, n < 0 ? strerror(errno) : "short");
                return 1;
            }
            done += (size_t)n;
        }
        if (memcmp(buf, want, CHUNK) != 0) {
            printf("mismatch in MiB %ld\n", i);
            return 1;
        }
    }
    /* The last MiB once more through a shared mapping, changed there and read back
     * with read(2). */
    off_t last = (off_t)(mib - 1) * CHUNK;
    unsigned char *m = mmap(NULL, CHUNK, PROT_READ | PROT_WRITE, MAP_SHARED, fd, last);
    if (m == MAP_FAILED) {
        printf("mmap: %s\n", strerror(errno));
        return 1;
    }
    fill(want, (unsigned long long)last);
    if (memcmp(m, want, CHUNK) != 0) {
        printf("mapping mismatch\n");
        return 1;
    }
    m[7] ^= 0xff;
    unsigned char c;
    if (pread(fd, &c, 1, last + 7) != 1 || c != (unsigned char)(want[7] ^ 0xff)) {
        printf("a write through the mapping is not seen by read\n");
        return 1;
    }
    printf("verified\n");
    return 0;
}
