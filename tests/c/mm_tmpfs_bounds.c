// A tmpfs mounted by the program (in the sandbox: after the sentry is confined) is
// held to its size= for faults through mappings too where the sandbox cannot give
// it a host tmpfs of its exact size (issue 10, the tmpfs size edge cases):
// - exhaust: thirty mounts of 1m, more than the pool of spare host instances holds
//   near that size (25), so the last ones keep their files in memfds;
// - far: four mounts of 100m, the fourth of which takes a spare of 192m, more than a
//   filler may hold (64 MiB) above its size;
// - one (run by tests/tests/resources.rs with RVISOR_TESTONLY_FILLER_FAILS: the
//   filler's allocation fails, as when the sandbox's memory limit is reached).
// On the last mount: 10 pages written, a file of the rest of the room mapped and
// faulted page by page (all fit), then nothing more fits: a write is ENOSPC, a new
// sparse file's mapped pages and a mapped file grown past the room are refused
// (natively the fault is SIGBUS at the first page; in those cases the sandbox
// refuses the mapping with ENOMEM or the growth with ENOSPC instead, since it must
// set a mapped file's pages aside: both print "held"); punched pages come back.
// e2e: arg={dir}
// e2e: timeout=120
// e2e: case=exhaust
// e2e: arg=exhaust
// e2e: case=far
// e2e: arg=far
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>
#include "mount_common.h"
#include "e2e.h"
#include "tmpfs_fault.h"

static long free_pages(const char *dir)
{
    struct statfs sf;
    if (statfs(dir, &sf) != 0)
        return -1;
    return (long)sf.f_bfree * (long)sf.f_bsize / PG;
}

/* Writes a byte in each page of p[from..to) until a SIGBUS; the first page that
 * failed, or `to`. */
static long touch(char *p, long from, long to)
{
    volatile long i = from;
    if (sigsetjmp(tf_back, 1) == 0)
        for (; i < to; i++)
            p[i * PG] = 'f';
    return i;
}

static void check(const char *dir, long pages)
{
    char a[600], b[600], c[600];
    snprintf(a, sizeof a, "%s/written", dir);
    snprintf(b, sizeof b, "%s/mapped", dir);
    snprintf(c, sizeof c, "%s/sparse", dir);
    printf("free %ld of %ld pages\n", free_pages(dir), pages);
    int fa = open(a, O_RDWR | O_CREAT | O_TRUNC, 0600);
    static char page[PG];
    memset(page, 'w', sizeof page);
    for (int i = 0; i < 10; i++)
        pwrite(fa, page, PG, i * PG);
    long room = pages - 10;
    int fb = open(b, O_RDWR | O_CREAT | O_TRUNC, 0600);
    E2E_T("ftruncate the mapped file to the room left", ftruncate(fb, room * PG));
    char *p = mmap(NULL, (room + 4) * PG, PROT_READ | PROT_WRITE, MAP_SHARED, fb, 0);
    if (p == MAP_FAILED) {
        printf("mmap: %s\n", e2e_errname(errno));
        return;
    }
    long got = touch(p, 0, room);
    printf("faults: %ld pages of %ld\n", got, room);
    printf("free %ld pages\n", free_pages(dir));
    E2E_T("write 1 byte to a new page", pwrite(fa, "x", 1, 20 * PG));
    int fc = open(c, O_RDWR | O_CREAT | O_TRUNC, 0600);
    E2E_T("ftruncate a sparse file to 16 pages", ftruncate(fc, 16 * PG));
    char *q = mmap(NULL, 16 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, fc, 0);
    if (q == MAP_FAILED)
        printf("a sparse file's faults: %s\n", errno == ENOMEM ? "held" : e2e_errname(errno));
    else {
        long n = touch(q, 0, 16);
        printf("a sparse file's faults: %s\n", n == 0 ? "held" : "NOT held");
        munmap(q, 16 * PG);
    }
    if (ftruncate(fb, (room + 4) * PG) != 0)
        printf("grow the mapped file by 4 pages: %s\n", errno == ENOSPC ? "held" : e2e_errname(errno));
    else {
        long n = touch(p, room, room + 4);
        printf("grow the mapped file by 4 pages: %s\n", n == room ? "held" : "NOT held");
        ftruncate(fb, room * PG);
    }
    printf("free %ld pages\n", free_pages(dir));
    E2E_T("punch 4 mapped pages", fallocate(fb, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                                            8 * PG, 4 * PG));
    printf("free %ld pages\n", free_pages(dir));
    printf("faults into them again: %ld of 4\n", touch(p, 8, 12) - 8);
    printf("free %ld pages\n", free_pages(dir));
    munmap(p, (room + 4) * PG);
    close(fa);
    close(fb);
    close(fc);
    unlink(a);
    unlink(b);
    unlink(c);
    printf("free at the end %ld pages\n", free_pages(dir));
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        printf("usage: mm_tmpfs_bounds DIR exhaust|far|one\n");
        return 2;
    }
    tf_setup();
    mc_private_ns();
    const char *opts = "size=1m";
    int mounts = 30;
    long pages = 256;
    if (strcmp(argv[2], "far") == 0) {
        opts = "size=100m";
        mounts = 4;
        pages = 25600;
    } else if (strcmp(argv[2], "one") == 0) {
        opts = "size=5000k";
        mounts = 1;
        pages = 1250;
    }
    char d[600];
    for (int i = 0; i < mounts; i++) {
        snprintf(d, sizeof d, "%s/m%d", argv[1], i);
        mkdir(d, 0755);
        if (mount("tmpfs", d, "tmpfs", 0, opts) != 0) {
            printf("mount %d %s: %s\n", i, opts, e2e_errname(errno));
            return 1;
        }
    }
    printf("-- %d mounts of %s, the last one filled\n", mounts, opts);
    snprintf(d, sizeof d, "%s/m%d", argv[1], mounts - 1);
    check(d, pages);
    for (int i = 0; i < mounts; i++) {
        snprintf(d, sizeof d, "%s/m%d", argv[1], i);
        umount2(d, 0);
        rmdir(d);
    }
    return 0;
}
