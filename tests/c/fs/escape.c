/* Tries every path trick we know to read a host file outside the sandbox's rootfs.
 * Used by tests/tests/escape.rs, which puts a secret next to (outside) the rootfs
 * and checks that no attempt ever prints it.
 *
 * usage: escape HOSTDIR            one line per attempt: "NAME: OK <content>" or
 *                                  "NAME: <ERRNO>"
 *        escape --race N DIRS      opens /raceK/secret for K = i % DIRS, N times
 *                                  (a host thread swaps each /raceK between a
 *                                  directory and symlinks meanwhile); prints any
 *                                  content that is not the decoy. */
#define _GNU_SOURCE
#include "../e2e.h"
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static char buf[4096];

/* Reads what `fd` holds (or reports the errno of getting it). */
static void report(const char *name, int fd)
{
    if (fd < 0) {
        printf("%s: %s\n", name, e2e_errname(errno));
        return;
    }
    ssize_t n = read(fd, buf, sizeof buf - 1);
    if (n < 0) {
        printf("%s: read %s\n", name, e2e_errname(errno));
    } else {
        buf[n] = 0;
        printf("%s: OK %s\n", name, buf);
    }
    close(fd);
}

static void try_path(const char *name, const char *path)
{
    report(name, open(path, O_RDONLY));
}

static int race(int n, int dirs)
{
    int decoys = 0, errors = 0, leaks = 0;
    char path[64];
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof path, "/race%d/secret", i % dirs);
        int fd = open(path, O_RDONLY);
        if (fd < 0) {
            errors++;
            continue;
        }
        ssize_t got = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (got < 0) {
            errors++;
            continue;
        }
        buf[got] = 0;
        if (strcmp(buf, "decoy\n") == 0) {
            decoys++;
        } else {
            leaks++;
            printf("LEAK: %s\n", buf);
        }
    }
    printf("race: %d decoys, %d errors, %d leaks\n", decoys, errors, leaks);
    return leaks ? 1 : 0;
}

/* Mount-tree tricks, in a child with a mount namespace of its own (steps are
 * reported as "step NAME: ..." so that their success is not taken for a read). */
static void mount_tricks(const char *host)
{
    char p[8192];
    fflush(stdout);
    pid_t pid = fork();
    if (pid != 0) {
        waitpid(pid, NULL, 0);
        return;
    }
    printf("step unshare %s\n", unshare(CLONE_NEWNS) == 0 ? "ok" : e2e_errname(errno));
    /* The whole tree bound below itself, then walked up from there. */
    printf("step rbind %s\n",
           mount("/", "/sub", NULL, MS_BIND | MS_REC, NULL) == 0 ? "ok" : e2e_errname(errno));
    try_path("rbind_dotdot", "/sub/../secret");
    try_path("rbind_dotdot_deep", "/sub/sub/../../../../secret");
    snprintf(p, sizeof p, "/sub%s/secret", host);
    try_path("rbind_host_path", p);
    printf("step move root %s\n",
           mount("/", "/sub", NULL, MS_MOVE, NULL) == 0 ? "ok" : e2e_errname(errno));
    printf("step umount root %s\n", umount2("/", MNT_DETACH) == 0 ? "ok" : e2e_errname(errno));
    /* A new root by pivot_root, the old one detached: nothing above it. */
    int old_root = open("/", O_RDONLY | O_DIRECTORY);
    /* Pid 1's mount namespace, opened while /proc is still there. */
    int ns = open("/proc/1/ns/mnt", O_RDONLY);
    printf("step tmpfs %s\n",
           mount("t", "/sub/sub", "tmpfs", 0, NULL) == 0 ? "ok" : e2e_errname(errno));
    printf("step chdir %s\n", chdir("/sub/sub") == 0 ? "ok" : e2e_errname(errno));
    printf("step pivot %s\n",
           syscall(SYS_pivot_root, ".", ".") == 0 ? "ok" : e2e_errname(errno));
    printf("step detach %s\n", umount2(".", MNT_DETACH) == 0 ? "ok" : e2e_errname(errno));
    try_path("pivot_dotdot", "/../secret");
    try_path("pivot_host_path", p + 4);
    report("pivot_old_root_fd", old_root < 0 ? -1 : openat(old_root, "../secret", O_RDONLY));
    snprintf(p, sizeof p, "/proc/1/root%s/secret", host);
    try_path("pivot_proc_1_root", p);
    /* Back into the first namespace through pid 1's ns file. */
    printf("step setns %s\n", ns >= 0 && setns(ns, CLONE_NEWNS) == 0 ? "ok" : e2e_errname(errno));
    try_path("setns_dotdot", "/../secret");
    fflush(stdout);
    _exit(0);
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "--race") == 0)
        return race(atoi(argv[2]), atoi(argv[3]));
    if (argc != 2) {
        fprintf(stderr, "usage: escape HOSTDIR | --race N DIRS\n");
        return 2;
    }
    const char *host = argv[1]; /* where the secret is, as a host path */
    char p[8192];

    /* A file that is inside: proves the program reads files at all. */
    try_path("inside", "/inside.txt");

    /* ".." chains, absolute and relative. */
    try_path("dotdot_abs", "/../secret");
    try_path("dotdot_deep", "/../../../../../../../../secret");
    snprintf(p, sizeof p, "/../../../../../../../..%s/secret", host);
    try_path("dotdot_host_path", p);
    snprintf(p, sizeof p, "%s/secret", host);
    try_path("host_path", p);
    try_path("dotdot_rel", "../../../../secret");

    /* ".." from an fd of the root, walked with openat. */
    int fd = open("/", O_RDONLY | O_DIRECTORY);
    for (int i = 0; i < 64 && fd >= 0; i++) {
        int up = openat(fd, "..", O_RDONLY | O_DIRECTORY);
        close(fd);
        fd = up;
    }
    report("openat_dotdot", fd < 0 ? -1 : openat(fd, "secret", O_RDONLY));
    if (fd >= 0)
        close(fd);

    /* chdir("..") many times, then a relative open. */
    for (int i = 0; i < 64; i++)
        if (chdir("..") != 0)
            break;
    try_path("chdir_dotdot", "secret");
    char cwd[4096];
    printf("cwd after chdir ..: %s\n", getcwd(cwd, sizeof cwd) ? cwd : e2e_errname(errno));

    /* Symlinks the host side planted in the rootfs, pointing out. */
    try_path("symlink_abs", "/abs");
    try_path("symlink_rel", "/rel");
    try_path("symlink_dotdot_dir", "/dirup/secret");
    try_path("symlink_dotdot_dir2", "/dirup/dirup/dirup/secret");
    try_path("symlink_hostdir", "/hostdir/secret");
    try_path("symlink_in_subdir", "/sub/out/secret");

    /* Symlinks made from inside (where creating them works). */
    if (symlink("../../../../secret", "/mine") == 0)
        try_path("own_symlink", "/mine");
    else
        printf("own_symlink: create %s\n", e2e_errname(errno));

    /* /proc magic links. */
    try_path("proc_self_root", "/proc/self/root/../secret");
    snprintf(p, sizeof p, "/proc/self/root%s/secret", host);
    try_path("proc_self_root_host", p);
    try_path("proc_self_cwd", "/proc/self/cwd/../../secret");
    try_path("proc_1_cwd", "/proc/1/cwd/../secret");
    snprintf(p, sizeof p, "/proc/1/root%s/secret", host);
    try_path("proc_1_root_host", p);
    int dfd = open("/", O_RDONLY | O_DIRECTORY);
    snprintf(p, sizeof p, "/proc/self/fd/%d/../secret", dfd);
    try_path("proc_self_fd", p);
    snprintf(p, sizeof p, "/proc/self/fd/%d/../../../secret", dfd);
    try_path("proc_self_fd_deep", p);
    mount_tricks(host);
    return 0;
}
