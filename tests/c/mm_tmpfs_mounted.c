// A tmpfs the program mounts itself (in the sandbox: made after the sentry is
// confined) holds its size= for every page, as on Linux (issue 10, charging): on a
// size=1m tmpfs, dirtying 64 MiB through a MAP_SHARED mapping of a file there stops
// with SIGBUS (BUS_ADRERR) at the first page past 1 MiB; statfs's free blocks fall by
// exactly the pages dirtied; write(2) into a hole is then ENOSPC; the pages come
// back when the file goes. Two such mounts at once each keep their own limit, and a
// tmpfs mounted again after an unmount starts empty with its limit whole.
// With `DIR SIZE COUNT` (tests/tests/escape.rs): COUNT tmpfs mounts of SIZE kept at
// once, each filled through a 64 MiB shared mapping.
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

#define DIRTIED (64L << 20)

static long used(const char *dir, const char *what)
{
    struct statfs sf;
    if (statfs(dir, &sf) != 0) {
        printf("%s: statfs %s\n", what, mc_err(errno));
        return -1;
    }
    printf("%s: statfs blocks=%ld free=%ld\n", what, (long)sf.f_blocks, (long)sf.f_bfree);
    return (long)(sf.f_blocks - sf.f_bfree);
}

/* Fills a new file on the tmpfs at `dir` through a shared mapping of `len` bytes, one
 * byte per page, until SIGBUS; prints what happened; leaves the file in place when
 * `keep`. */
static void fill(const char *dir, const char *name, long len, int keep)
{
    char path[600];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    long before = used(dir, "before");
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    CHECK("open", fd);
    CHECK("ftruncate", ftruncate(fd, len));
    char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    printf("mmap %ld MiB shared: %s\n", len >> 20, p == MAP_FAILED ? mc_err(errno) : "OK");
    if (p == MAP_FAILED)
        return;
    long i = tf_touch("dirtied", p, 0, len / PG, 1);
    long after = used(dir, "after");
    printf("statfs used grew by %ld pages (the pages dirtied: %s)\n", after - before,
           after - before == i ? "yes" : "no");
    struct stat st;
    fstat(fd, &st);
    printf("st_blocks in pages: %ld\n", (long)st.st_blocks / 8);
    E2E_T("pwrite 1 byte into a hole", pwrite(fd, "w", 1, len - PG));
    E2E_T("fallocate 1 page", fallocate(fd, 0, len - PG, PG));
    char c = 0;
    CHECK("pread a dirtied page", pread(fd, &c, 1, TF_OFFSET));
    printf("its byte: %c\n", c);
    munmap(p, len);
    close(fd);
    if (!keep) {
        CHECK("unlink", unlink(path));
        used(dir, "unlinked");
    }
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        printf("usage: mm_tmpfs_mounted DIR\n");
        return 2;
    }
    tf_setup();
    mc_private_ns();
    if (argc == 4) {
        char opts[64];
        snprintf(opts, sizeof opts, "size=%s", argv[2]);
        for (int i = 0; i < atoi(argv[3]); i++) {
            char d[512];
            snprintf(d, sizeof d, "%s/m%d", argv[1], i);
            mkdir(d, 0755);
            printf("-- mount %d\n", i);
            CHECK("mount", mount("tmpfs", d, "tmpfs", 0, opts));
            fill(d, "f", DIRTIED, 1);
        }
        return 0;
    }
    char a[512], b[512];
    snprintf(a, sizeof a, "%s/a", argv[1]);
    snprintf(b, sizeof b, "%s/b", argv[1]);
    mkdir(a, 0755);
    mkdir(b, 0755);

    printf("-- size=1m, 64 MiB dirtied through a shared mapping\n");
    CHECK("mount a size=1m", mount("tmpfs", a, "tmpfs", 0, "size=1m"));
    fill(a, "f", DIRTIED, 0);

    printf("-- a second tmpfs, size=64k, while the first is full\n");
    fill(a, "full", DIRTIED, 1);
    CHECK("mount b size=64k", mount("tmpfs", b, "tmpfs", 0, "size=64k"));
    fill(b, "g", 1L << 20, 0);
    used(a, "a, still full");
    char path[600];
    snprintf(path, sizeof path, "%s/full", a);
    CHECK("unlink a/full", unlink(path));

    printf("-- unmounted and mounted again: empty, the limit whole\n");
    CHECK("umount a", umount2(a, 0));
    CHECK("umount b", umount2(b, 0));
    CHECK("mount a size=1m again", mount("tmpfs", a, "tmpfs", 0, "size=1m"));
    fill(a, "f", DIRTIED, 0);
    CHECK("umount a", umount2(a, 0));
    rmdir(a);
    rmdir(b);
    return 0;
}
