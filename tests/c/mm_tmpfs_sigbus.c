// A tmpfs's size= holds for every page, however it is asked for (issue 10, charging):
// in a full tmpfs a write fault through a MAP_SHARED mapping is SIGBUS (BUS_ADRERR)
// at the first page that cannot be had, and so is a read fault of a hole; write(2)
// into a hole is ENOSPC while a page already held still takes bytes; statfs counts
// exactly the pages that succeeded; pages given back (a punched hole) can be faulted
// in again, up to the limit and no further. A memfd is limited by nothing but memory.
// argv[1]: a directory on a tmpfs mounted with size=256k (64 pages), which the test
// mounts itself: natively in a private mount namespace, in the sandbox as a spec
// mount (tests/tests/oci.rs, spec_tmpfs_fault_past_size_is_sigbus, both platforms).
// e2e: ignore=needs a tmpfs mounted with size=256k: run by tests/tests/oci.rs (spec_tmpfs_fault_past_size_is_sigbus)
#define _GNU_SOURCE
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>
#include "e2e.h"
#include "tmpfs_fault.h"

#define MAPPED (1L << 20)

static const char *dir;

static void show_fs(const char *what)
{
    struct statfs sf;
    if (statfs(dir, &sf) != 0) {
        printf("%s: statfs %s\n", what, e2e_errname(errno));
        return;
    }
    printf("%s: statfs blocks=%ld used=%ld\n", what, (long)sf.f_blocks,
           (long)(sf.f_blocks - sf.f_bfree));
}

static long blocks(int fd)
{
    struct stat st;
    fstat(fd, &st);
    return (long)st.st_blocks / 8;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        printf("usage: mm_tmpfs_sigbus DIR-ON-A-256K-TMPFS\n");
        return 2;
    }
    dir = argv[1];
    tf_setup();
    char path[512];
    snprintf(path, sizeof path, "%s/f", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    show_fs("empty");
    E2E_T("ftruncate 1 MiB", ftruncate(fd, MAPPED));
    char *p = mmap(NULL, MAPPED, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    printf("mapped: %s\n", p == MAP_FAILED ? e2e_errname(errno) : "yes");
    long done = tf_touch("write faults from page 0", p, 0, MAPPED / PG, 1);
    printf("st_blocks in pages: %ld (all that succeeded: %s)\n", blocks(fd),
           blocks(fd) == done ? "yes" : "no");
    show_fs("full");
    /* The fault path, write(2) and statfs agree: a hole takes nothing, a held page
     * takes bytes, and the pages that faulted in kept their data. */
    E2E_T("pwrite 1 byte into a hole", pwrite(fd, "w", 1, MAPPED - PG));
    E2E_T("pwrite 10 bytes into a held page", pwrite(fd, "wwwwwwwwww", 10, 3 * PG + 100));
    E2E_T("pwrite 2 pages across held and hole", pwrite(fd, p, 2 * PG, (done - 1) * PG));
    char c = 0;
    E2E_T("pread a faulted-in page", pread(fd, &c, 1, 5 * PG + TF_OFFSET));
    printf("its byte: %c\n", c);
    tf_touch("write fault again at the first hole", p, done, done + 1, 1);
    tf_touch("read fault of a hole", p, done + 10, done + 11, 0);
    tf_touch("write fault of a held page", p, 2, 3, 1);
    E2E_T("fallocate 1 page", fallocate(fd, 0, MAPPED - PG, PG));
    /* Another file: the limit is the filesystem's, not the file's. */
    snprintf(path, sizeof path, "%s/g", dir);
    int g = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    E2E_T("another file's first byte", write(g, "x", 1));
    E2E_T("ftruncate it to 4 pages", ftruncate(g, 4 * PG));
    char *q = mmap(NULL, 4 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, g, 0);
    tf_touch("its write faults", q, 0, 4, 1);
    /* Pages given back are there to fault in again, up to the limit. */
    E2E_T("punch 8 pages", fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 16 * PG,
                                     8 * PG));
    show_fs("punched");
    tf_touch("write faults into the punched pages and on", p, 16, MAPPED / PG, 1);
    show_fs("full again");
    munmap(q, 4 * PG);
    close(g);
    munmap(p, MAPPED);
    close(fd);
    snprintf(path, sizeof path, "%s/f", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/g", dir);
    unlink(path);
    show_fs("unlinked");
    /* A memfd counts against no filesystem: its faults all succeed. */
    int m = memfd_create("e2e", 0);
    E2E_T("memfd ftruncate 1 MiB", ftruncate(m, MAPPED));
    char *r = mmap(NULL, MAPPED, PROT_READ | PROT_WRITE, MAP_SHARED, m, 0);
    tf_touch("memfd write faults", r, 0, MAPPED / PG, 1);
    printf("memfd st_blocks in pages: %ld\n", blocks(m));
    return 0;
}
