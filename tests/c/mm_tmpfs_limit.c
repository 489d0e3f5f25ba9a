// A tmpfs mounted by the program (in the sandbox: after the sentry is confined) holds
// its size= or nr_blocks= exactly for every page, whatever the size (issue 10, the
// last open memory item): a fault through a mapping that needs a new page when the
// mount is full is SIGBUS (BUS_ADRERR) at exactly the page Linux refuses, and the page
// is not allocated; write(2) into a hole is ENOSPC at the same point; a read(2) whose
// buffer is such a page is EFAULT; statfs's free blocks fall by exactly the pages
// held. Sizes that are spare sizes (1m, 3m) and sizes that are not (5000k, 1100k,
// nr_blocks=333), pages written by write(2) before the first mapping, pages punched
// and faulted in again, and eight mounts of one odd size held at once (more than the
// spare pool has of that size).
// e2e: arg={dir}
#define _GNU_SOURCE
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>
#include "mount_common.h"
#include "e2e.h"
#include "tmpfs_fault.h"

#define MAPPED (16L << 20)
#define WRITTEN 10

static long free_blocks(const char *dir, const char *what, int show)
{
    struct statfs sf;
    if (statfs(dir, &sf) != 0) {
        printf("%s: statfs %s\n", what, e2e_errname(errno));
        return -1;
    }
    if (show)
        printf("%s: statfs blocks=%ld free=%ld\n", what, (long)sf.f_blocks, (long)sf.f_bfree);
    return (long)sf.f_bfree;
}

/* Mounts a tmpfs with `opts` at `dir` and fills a file there: WRITTEN pages by
 * write(2), then page by page through a MAP_SHARED mapping of MAPPED bytes. Leaves
 * it mounted and full. */
static void fill(const char *dir, const char *opts, int verbose)
{
    mkdir(dir, 0755);
    if (mount("tmpfs", dir, "tmpfs", 0, opts) != 0) {
        printf("mount %s: %s\n", opts, e2e_errname(errno));
        return;
    }
    long empty = free_blocks(dir, "empty", verbose);
    char path[600];
    snprintf(path, sizeof path, "%s/f", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    static char page[PG];
    memset(page, 'w', sizeof page);
    for (int i = 0; i < WRITTEN; i++)
        pwrite(fd, page, PG, i * PG);
    ftruncate(fd, MAPPED);
    char *p = mmap(NULL, MAPPED, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        printf("mmap: %s\n", e2e_errname(errno));
        return;
    }
    long stop = tf_touch("  write faults after the written pages", p, WRITTEN, MAPPED / PG, 1);
    printf("  %s: pages held %ld (write(2) %d + faults %ld)\n", opts, stop, WRITTEN,
           stop - WRITTEN);
    long full = free_blocks(dir, "full", verbose);
    printf("  statfs free fell by the pages held: %s\n", empty - full == stop ? "yes" : "no");
    if (!verbose || stop == MAPPED / PG) {
        munmap(p, MAPPED);
        close(fd);
        return;
    }
    struct stat st;
    fstat(fd, &st);
    printf("  st_blocks in pages: %ld\n", (long)st.st_blocks / 8);
    E2E_T("  pwrite 1 byte into a hole", pwrite(fd, "x", 1, (stop + 1) * PG));
    E2E_T("  pwrite 1 byte into a held page", pwrite(fd, "x", 1, (stop - 1) * PG));
    int z = open("/dev/zero", O_RDONLY);
    E2E_T("  read(2) into the refused page", read(z, p + stop * PG, 16));
    close(z);
    tf_touch("  the refused page again", p, stop, stop + 1, 1);
    fstat(fd, &st);
    printf("  st_blocks unchanged by the refusals: %s\n", st.st_blocks / 8 == stop ? "yes" : "no");
    E2E_T("  punch 4 pages", fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                                      (WRITTEN + 2) * PG, 4 * PG));
    free_blocks(dir, "  punched", 1);
    tf_touch("  faults into the punched pages", p, WRITTEN + 2, WRITTEN + 6, 1);
    tf_touch("  then past the first refused page", p, stop, MAPPED / PG, 1);
    munmap(p, MAPPED);
    close(fd);
    /* A second file, mapped from its start: the limit is the filesystem's. */
    CHECK("  unlink", unlink(path));
    free_blocks(dir, "  unlinked", 1);
    fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    ftruncate(fd, MAPPED);
    p = mmap(NULL, MAPPED, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    tf_touch("  a new file's write faults", p, 0, MAPPED / PG, 1);
    munmap(p, MAPPED);
    close(fd);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        printf("usage: mm_tmpfs_limit DIR\n");
        return 2;
    }
    tf_setup();
    mc_private_ns();
    static const char *opts[] = {"size=1m", "size=3m", "size=5000k", "size=1100k",
                                 "nr_blocks=333", "size=4100k"};
    int n = sizeof opts / sizeof opts[0];
    char d[600];
    for (int i = 0; i < n; i++) {
        printf("-- %s\n", opts[i]);
        snprintf(d, sizeof d, "%s/s%d", argv[1], i);
        fill(d, opts[i], 1);
    }
    printf("-- eight mounts of size=5000k held at once\n");
    for (int i = 0; i < 8; i++) {
        snprintf(d, sizeof d, "%s/e%d", argv[1], i);
        fill(d, "size=5000k", 0);
    }
    for (int i = 0; i < n; i++) {
        snprintf(d, sizeof d, "%s/s%d", argv[1], i);
        umount2(d, 0);
        rmdir(d);
    }
    for (int i = 0; i < 8; i++) {
        snprintf(d, sizeof d, "%s/e%d", argv[1], i);
        umount2(d, 0);
        rmdir(d);
    }
    return 0;
}
