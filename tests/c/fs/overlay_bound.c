// The in-memory overlay's bound (issue 10): `--overlay=memory,size=64m` holds the
// upper layer as a tmpfs of 64 MiB holds its files. Run by tests/tests/overlay.rs in
// the sandbox on DIR in the overlay, and natively (`bound DIR mount`) on a tmpfs of
// the same size it mounts at DIR in a mount namespace of its own; the outputs must
// be equal. write(2) is short and then ENOSPC at the bound, fallocate of a range
// that does not fit is ENOSPC and changes nothing, a sparse file may be any size
// (ftruncate), a fault through a shared mapping past the bound is SIGBUS
// (BUS_ADRERR) at exactly the first page that does not fit, statfs shows the bound
// and every page in use, and an unlinked file's pages come back.
//
// `bound DIR statfs` prints only the filesystem's size in bytes (for the default
// bounds).
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>
#include "../mount_common.h"
#include "../e2e.h"
#include "../tmpfs_fault.h"

#define MIB (1L << 20)
#define SIZE (64 * MIB)

static char dir[512];

static long free_pages(void)
{
    struct statfs sf;
    if (statfs(dir, &sf) != 0)
        return -1;
    return (long)sf.f_bfree * (long)sf.f_bsize / PG;
}

static void path(char *out, const char *name)
{
    snprintf(out, 600, "%s/%s", dir, name);
}

/* Writes `len` bytes at `off` in 1 MiB pieces; the bytes written. */
static long fill(int fd, long off, long len)
{
    static char buf[MIB];
    memset(buf, 'd', sizeof buf);
    long done = 0;
    while (done < len) {
        long n = len - done < MIB ? len - done : MIB;
        ssize_t w = pwrite(fd, buf, n, off + done);
        if (w <= 0) {
            printf("  write stopped after %ld MiB + %ld pages: %s\n", done / MIB,
                   done % MIB / PG, w == 0 ? "0" : e2e_errname(errno));
            break;
        }
        done += w;
    }
    return done;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        printf("usage: overlay_bound DIR [mount|statfs]\n");
        return 2;
    }
    snprintf(dir, sizeof dir, "%s", argv[1]);
    tf_setup();
    if (argc > 2 && strcmp(argv[2], "statfs") == 0) {
        struct statfs sf;
        if (statfs(dir, &sf) != 0) {
            printf("statfs: %s\n", e2e_errname(errno));
            return 1;
        }
        printf("size %ld\n", (long)sf.f_blocks * (long)sf.f_bsize);
        return 0;
    }
    if (argc > 2 && strcmp(argv[2], "mount") == 0) {
        mc_private_ns();
        mkdir(dir, 0755);
        if (mount("tmpfs", dir, "tmpfs", 0, "size=64m") != 0) {
            printf("mount: %s\n", e2e_errname(errno));
            return 1;
        }
    } else {
        mkdir(dir, 0755);
    }
    struct statfs sf;
    statfs(dir, &sf);
    printf("size %ld MiB, free %ld MiB\n", (long)sf.f_blocks * (long)sf.f_bsize / MIB,
           free_pages() * PG / MIB);

    char a[600], b[600], c[600], d[600];
    path(a, "a");
    path(b, "b");
    path(c, "c");
    path(d, "d");
    int fa = open(a, O_RDWR | O_CREAT | O_TRUNC, 0600);
    printf("write 16 MiB: %ld MiB\n", fill(fa, 0, 16 * MIB) / MIB);
    printf("free %ld pages\n", free_pages());

    int fb = open(b, O_RDWR | O_CREAT | O_TRUNC, 0600);
    E2E_T("fallocate 64 MiB (more than is free)", fallocate(fb, 0, 0, SIZE));
    E2E_T("fallocate 65 MiB (more than the size)", fallocate(fb, 0, 0, SIZE + MIB));
    struct stat st;
    fstat(fb, &st);
    printf("  refused fallocates left size %ld, blocks %ld\n", (long)st.st_size,
           (long)st.st_blocks);
    E2E_T("fallocate 16 MiB", fallocate(fb, 0, 0, 16 * MIB));
    E2E_T("fallocate 1 MiB, keep size", fallocate(fb, FALLOC_FL_KEEP_SIZE, 16 * MIB, MIB));
    printf("free %ld pages\n", free_pages());

    /* A sparse file larger than the filesystem, faulted in through a mapping. */
    int fc = open(c, O_RDWR | O_CREAT | O_TRUNC, 0600);
    E2E_T("ftruncate 1 GiB (sparse)", ftruncate(fc, 1024 * MIB));
    char *p = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fc, 0);
    if (p == MAP_FAILED) {
        printf("mmap: %s\n", e2e_errname(errno));
        return 1;
    }
    long held = tf_touch("write faults", p, 0, SIZE / PG, 1);
    printf("free %ld pages\n", free_pages());
    tf_touch("the refused page again", p, held, held + 1, 1);
    int z = open("/dev/zero", O_RDONLY);
    E2E_T("read(2) into the refused page", read(z, p + held * PG, 16));
    close(z);
    int fd2 = open(d, O_RDWR | O_CREAT | O_TRUNC, 0600);
    E2E_T("write 1 byte to a new file", pwrite(fd2, "x", 1, 0));
    E2E_T("write 1 byte into a held page", pwrite(fa, "x", 1, PG));
    E2E_T("fallocate 1 page", fallocate(fd2, 0, 0, PG));
    E2E_T("punch 4 faulted pages", fallocate(fc, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                                             8 * PG, 4 * PG));
    printf("free %ld pages\n", free_pages());
    tf_touch("faults into a new range", p, held, held + 8, 1);
    munmap(p, SIZE);
    close(fc);
    CHECK("unlink the mapped file", unlink(c));
    printf("free after unlink: %ld pages\n", free_pages());
    printf("a new file fills %ld MiB\n", fill(fd2, 0, SIZE) / MIB);
    printf("free %ld pages\n", free_pages());
    close(fd2);
    close(fa);
    close(fb);
    unlink(a);
    unlink(b);
    unlink(d);
    printf("free at the end %ld MiB\n", free_pages() * PG / MIB);
    return 0;
}
