// Reads a file the harness created in the test directory; prints fstat size,
// bytes read and a checksum.
// e2e: file=data.bin:200000
// e2e: arg={dir}/data.bin
// e2e: stdout=fstat size=200000
// e2e: stdout=read bytes=200000
// e2e: stdout=eof read=0
// e2e: stdout=checksum=5076cdc95f924836
// e2e: stdout=pread at 100000: 16 bytes, checksum=fcd757c1fbe7256b
// e2e: stdout=close=0
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>
#include "e2e.h"

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    int fd = open(argv[1], O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        printf("open: %s\n", e2e_errname(errno));
        return 1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        printf("fstat: %s\n", e2e_errname(errno));
        return 1;
    }
    printf("fstat size=%lld\n", (long long)st.st_size);
    char buf[7001]; /* odd size: reads do not line up with pages */
    unsigned long long h = E2E_FNV_INIT;
    long long total = 0;
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0) {
        h = e2e_fnv1a(h, buf, n);
        total += n;
    }
    if (n < 0) {
        printf("read: %s\n", e2e_errname(errno));
        return 1;
    }
    printf("read bytes=%lld\n", total);
    printf("eof read=%zd\n", read(fd, buf, sizeof buf));
    printf("checksum=%016llx\n", h);
    ssize_t pn = pread(fd, buf, 16, 100000);
    printf("pread at 100000: %zd bytes, checksum=%016llx\n", pn,
           pn > 0 ? e2e_fnv1a(E2E_FNV_INIT, buf, pn) : 0ULL);
    printf("close=%d\n", close(fd));
    return 0;
}
