// Mount, UTS and IPC namespaces: unshare and clone give a copy of the mount tree
// (changes after it are not seen by the other side), their own hostname and their
// own System V objects; /proc/self/ns links change inode with each new
// namespace; setns with a /proc/PID/ns/mnt fd goes back; pivot_root(".", ".")
// then umount2(".", MNT_DETACH), as runc and bubblewrap do.
// e2e: arg={dir}
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <sys/ipc.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>
#include "mount_common.h"

static char D[512];

static const char *p(const char *rel)
{
    static char buf[4][1024];
    static int i;
    i = (i + 1) % 4;
    snprintf(buf[i], sizeof buf[i], "%s/%s", D, rel);
    return buf[i];
}

static unsigned long ns_ino(const char *kind)
{
    char path[64];
    struct stat st;
    snprintf(path, sizeof path, "/proc/self/ns/%s", kind);
    if (stat(path, &st) != 0)
        return 0;
    return st.st_ino;
}

static void link_shape(const char *kind)
{
    char path[64], buf[128];
    snprintf(path, sizeof path, "/proc/self/ns/%s", kind);
    ssize_t n = readlink(path, buf, sizeof buf - 1);
    if (n < 0) {
        printf("readlink %s: %s\n", kind, mc_err(errno));
        return;
    }
    buf[n] = 0;
    unsigned long v = 0;
    char k[16];
    int ok = sscanf(buf, "%15[a-z]:[%lu]", k, &v) == 2 && v == ns_ino(kind);
    printf("link %s: %s matches stat: %s\n", kind, k, ok ? "yes" : "no");
}

static void hostname(const char *who)
{
    struct utsname u;
    uname(&u);
    printf("%s hostname: %s\n", who, u.nodename);
}

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static int child_uts(void *arg)
{
    (void)arg;
    sethostname("inside", 6);
    hostname("clone child");
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    setvbuf(stdout, NULL, _IONBF, 0);
    snprintf(D, sizeof D, "%s/ns", argv[1]);
    mc_private_ns();
    // The host and IPC objects this test changes are its own too.
    if (unshare(CLONE_NEWUTS | CLONE_NEWIPC) != 0) {
        printf("unshare(CLONE_NEWUTS|CLONE_NEWIPC): %s\n", mc_err(errno));
        return 1;
    }
    mkdir(D, 0755);
    CHECK("tmpfs", mount("t", D, "tmpfs", 0, NULL));
    mkdir(p("x"), 0755);
    mkdir(p("y"), 0755);
    sethostname("outer", 5);
    link_shape("mnt");
    link_shape("uts");
    link_shape("ipc");
    unsigned long mnt0 = ns_ino("mnt"), uts0 = ns_ino("uts"), ipc0 = ns_ino("ipc");
    int shm = shmget(0x5eed, 4096, IPC_CREAT | 0600);
    printf("shm created: %s\n", shm >= 0 ? "yes" : "no");

    // A child with new mount, UTS and IPC namespaces.
    int to_child[2], to_parent[2];
    pipe(to_child);
    pipe(to_parent);
    pid_t pid = fork();
    if (pid == 0) {
        char c;
        CHECK("child unshare", unshare(CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC));
        printf("child mnt differs: %s\n", ns_ino("mnt") != mnt0 ? "yes" : "no");
        printf("child uts differs: %s\n", ns_ino("uts") != uts0 ? "yes" : "no");
        printf("child ipc differs: %s\n", ns_ino("ipc") != ipc0 ? "yes" : "no");
        CHECK("child sees shm", shmget(0x5eed, 4096, 0600));
        hostname("child before");
        CHECK("child sethostname", sethostname("child", 5));
        hostname("child after");
        CHECK("child mounts on x", mount("c", p("x"), "tmpfs", 0, NULL));
        CHECK("child file in x", open(p("x/childfile"), O_CREAT | O_WRONLY, 0644));
        CHECK("child sees the copy of tmpfs", exists(p("y")) ? 0 : -1);
        mc_show("child", D);
        write(to_parent[1], "1", 1);
        read(to_child[0], &c, 1);
        printf("child sees parent's mount on y: %s\n", exists(p("y/parentfile")) ? "yes" : "no");
        printf("child sees parent's new dir: %s\n", exists(p("newdir")) ? "yes" : "no");
        _exit(0);
    }
    char c;
    read(to_parent[0], &c, 1);
    printf("parent sees child's file: %s\n", exists(p("x/childfile")) ? "yes" : "no");
    CHECK("parent mounts on y", mount("p", p("y"), "tmpfs", 0, NULL));
    CHECK("parent file in y", open(p("y/parentfile"), O_CREAT | O_WRONLY, 0644));
    // Files (not mounts) are shared: the filesystem is the same.
    mkdir(p("newdir"), 0755);
    write(to_child[1], "1", 1);
    int st;
    waitpid(pid, &st, 0);
    hostname("parent");
    mc_show("parent", D);

    // clone(CLONE_NEWUTS).
    static char stack[65536];
    pid = clone(child_uts, stack + sizeof stack, CLONE_NEWUTS | SIGCHLD, NULL);
    int clone_err = errno;
    if (pid > 0)
        waitpid(pid, &st, 0);
    printf("clone NEWUTS: %s\n", pid > 0 ? "OK" : mc_err(clone_err));
    hostname("after clone");
    errno = 0;
    long r = syscall(SYS_clone, CLONE_NEWNS | CLONE_FS | SIGCHLD, 0, 0, 0, 0);
    if (r == 0)
        _exit(0);
    printf("clone NEWNS|FS: %s\n", r < 0 ? mc_err(errno) : "OK");

    // setns back to the first mount namespace.
    int orig = open("/proc/self/ns/mnt", O_RDONLY);
    int utsfd = open("/proc/self/ns/uts", O_RDONLY);
    CHECK("open ns/mnt", orig);
    CHECK("unshare again", unshare(CLONE_NEWNS));
    CHECK("mount on x", mount("s", p("x"), "tmpfs", 0, NULL));
    CHECK("file in x", open(p("x/f"), O_CREAT | O_WRONLY, 0644));
    CHECK("setns wrong type", setns(orig, CLONE_NEWUTS));
    CHECK("setns not a namespace", setns(0, 0));
    CHECK("setns uts fd as any", setns(utsfd, 0));
    CHECK("setns back", setns(orig, CLONE_NEWNS));
    printf("x/f after setns: %s\n", exists(p("x/f")) ? "yes" : "no");
    char cwd[512];
    printf("cwd after setns: %s\n", getcwd(cwd, sizeof cwd) ? cwd : mc_err(errno));
    printf("mnt back to first: %s\n", ns_ino("mnt") == mnt0 ? "yes" : "no");

    // pivot_root in a child with a namespace of its own.
    pid = fork();
    if (pid == 0) {
        CHECK("pivot child unshare", unshare(CLONE_NEWNS));
        mkdir(p("new"), 0755);
        CHECK("pivot not a mount", syscall(SYS_pivot_root, p("new"), p("new")));
        CHECK("tmpfs new", mount("newroot", p("new"), "tmpfs", 0, NULL));
        CHECK("marker", open(p("new/marker"), O_CREAT | O_WRONLY, 0644));
        CHECK("pivot onto a file", syscall(SYS_pivot_root, p("new/marker"), p("new")));
        CHECK("put_old outside", syscall(SYS_pivot_root, p("new"), p("x")));
        CHECK("chdir new", chdir(p("new")));
        CHECK("pivot_root . .", syscall(SYS_pivot_root, ".", "."));
        CHECK("umount old root", umount2(".", MNT_DETACH));
        CHECK("chdir /", chdir("/"));
        printf("marker at /: %s\n", exists("/marker") ? "yes" : "no");
        printf("old tree gone: %s\n", exists(p("x")) ? "no" : "yes");
        _exit(0);
    }
    waitpid(pid, &st, 0);
    printf("pivot child status %d\n", WEXITSTATUS(st));
    printf("parent still has x: %s\n", exists(p("x")) ? "yes" : "no");
    return 0;
}
