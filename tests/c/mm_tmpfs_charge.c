// Every page of a tmpfs file is charged to its filesystem, as on Linux (issue 10,
// charging), pages written only through a shared mapping included: on /dev/shm, a
// sparse 64 MiB file costs nothing, 1024 pages written and one read through a
// mapping show in st_blocks and in statfs, fallocate and write charge what they
// add, and truncate and unlink give the pages back; a memfd grown by ftruncate
// holds nothing. statfs is compared with a
// margin, and native runs of this program take turns (flock), because the host's
// /dev/shm is shared with whatever else runs; st_blocks is exact. (The size= limit
// itself, ENOSPC and short writes, is in the sentry's tmpfs unit tests: the sandbox
// has no mount(2) for a small tmpfs of the test's own.)
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>
#include "e2e.h"

#define PG 4096L
#define BIG (64L << 20)

static long free_pages(void)
{
    struct statfs sf;
    statfs("/dev/shm", &sf);
    return (long)sf.f_bfree * (long)sf.f_bsize / PG;
}

static long blocks(int fd)
{
    struct stat st;
    fstat(fd, &st);
    return (long)st.st_blocks;
}

/* Whether statfs moved by about `want` pages since `base`. */
static const char *about(long base, long want)
{
    long used = base - free_pages();
    return used >= want - 64 && used <= want + 64 ? "yes" : "no";
}

int main(void)
{
    int lock = open("/tmp/rvisor-e2e-mm-tmpfs-charge.lock", O_RDWR | O_CREAT, 0600);
    flock(lock, LOCK_EX);
    char path[64];
    snprintf(path, sizeof path, "/dev/shm/e2e-charge-%d", getpid());
    long base = free_pages();
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    E2E_T("ftruncate 64 MiB", ftruncate(fd, BIG));
    printf("sparse: st_blocks=%ld statfs unchanged: %s\n", blocks(fd), about(base, 0));
    char *p = mmap(NULL, BIG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    for (long i = 0; i < 1024; i++)
        p[i * PG + 5] = 1;
    printf("1024 pages written through the mapping: st_blocks=%ld statfs: %s\n", blocks(fd),
           about(base, 1024));
    volatile char c = p[BIG - PG];
    (void)c;
    printf("a page read through the mapping: st_blocks=%ld\n", blocks(fd));
    E2E_T("fallocate 2048 pages", fallocate(fd, 0, 0, 2048 * PG));
    printf("fallocated: st_blocks=%ld statfs: %s\n", blocks(fd), about(base, 2049));
    static char buf[256 * PG];
    memset(buf, 'w', sizeof buf);
    E2E_T("write 256 pages at 32 MiB", pwrite(fd, buf, sizeof buf, 32 << 20));
    printf("written: st_blocks=%ld statfs: %s\n", blocks(fd), about(base, 2049 + 256));
    E2E_T("ftruncate 1024 pages", ftruncate(fd, 1024 * PG));
    printf("truncated: st_blocks=%ld statfs: %s\n", blocks(fd), about(base, 1024));
    munmap(p, BIG);
    close(fd);
    unlink(path);
    printf("unlinked: statfs back: %s\n", about(base, 0));
    /* A memfd grown by ftruncate holds nothing either. */
    int m = memfd_create("e2e", 0);
    E2E_T("memfd ftruncate 1 GiB", ftruncate(m, 1L << 30));
    printf("memfd sparse: st_blocks=%ld\n", blocks(m));
    close(m);
    flock(lock, LOCK_UN);
    return 0;
}
