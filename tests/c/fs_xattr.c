// Extended attributes as Linux answers them, in the working directory (the memory
// overlay inside the sandbox, the host's disk natively) and in /dev/shm (tmpfs on
// both sides): XATTR_CREATE/REPLACE, size-0 queries, ERANGE and E2BIG limits, name
// checks, user.* only on regular files and directories, trusted.* and security.*
// with and without privilege, the l* and f* forms, procfs (EOPNOTSUPP, empty list).
//
// The file "xattr-lower" is made by the native run, which goes first in the same
// directory: in the sandbox run it is a host file under the overlay, so its attribute
// comes through the gofer and must survive the copy-up that a write causes.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

static void show(const char *w, long r) {
    if (r < 0)
        printf("%s: -1 %s\n", w, strerrorname_np(errno));
    else
        printf("%s: %ld\n", w, r);
}

static int cmp(const void *a, const void *b) { return strcmp(*(char **)a, *(char **)b); }

// Prints the names listxattr gives, sorted (filesystems list in their own order).
static void list(const char *label, const char *path) {
    char buf[4096];
    ssize_t n = llistxattr(path, buf, sizeof buf);
    if (n < 0) {
        printf("%s list: -1 %s\n", label, strerrorname_np(errno));
        return;
    }
    char *names[64];
    int k = 0;
    for (char *p = buf; p < buf + n && k < 64; p += strlen(p) + 1)
        names[k++] = p;
    qsort(names, k, sizeof *names, cmp);
    printf("%s list (%zd bytes):", label, n);
    for (int i = 0; i < k; i++)
        printf(" %s", names[i]);
    printf("\n");
}

static void value(const char *label, const char *path, const char *name) {
    char buf[256];
    ssize_t n = getxattr(path, name, buf, sizeof buf);
    if (n < 0)
        printf("%s get %s: -1 %s\n", label, name, strerrorname_np(errno));
    else
        printf("%s get %s: %zd \"%.*s\"\n", label, name, n, (int)n, buf);
}

static void suite(const char *dir) {
    char f[256], d[256], l[256], p[256];
    printf("== %s\n", dir[0] ? dir : "cwd");
    // Unique: the other variants of this test may run at once in the shared /dev/shm.
    int me = getpid();
    snprintf(f, sizeof f, "%sxattr-file-%d", dir, me);
    snprintf(d, sizeof d, "%sxattr-dir-%d", dir, me);
    snprintf(l, sizeof l, "%sxattr-link-%d", dir, me);
    snprintf(p, sizeof p, "%sxattr-fifo-%d", dir, me);
    unlink(f), rmdir(d), unlink(l), unlink(p);
    close(open(f, O_CREAT | O_WRONLY, 0644));
    mkdir(d, 0755);
    symlink(strrchr(f, '/') ? strrchr(f, '/') + 1 : f, l);
    mkfifo(p, 0644);

    char buf[256];
    show("get missing", getxattr(f, "user.a", buf, sizeof buf));
    show("set user.a", setxattr(f, "user.a", "hello", 5, 0));
    show("set user.a CREATE again", setxattr(f, "user.a", "x", 1, XATTR_CREATE));
    show("set user.b REPLACE", setxattr(f, "user.b", "x", 1, XATTR_REPLACE));
    show("set user.a REPLACE", setxattr(f, "user.a", "world!", 6, XATTR_REPLACE));
    show("set bad flags", setxattr(f, "user.a", "x", 1, 4));
    show("get size 0", getxattr(f, "user.a", NULL, 0));
    show("get small buffer", getxattr(f, "user.a", buf, 3));
    value("file", f, "user.a");
    show("set empty value", setxattr(f, "user.empty", NULL, 0, 0));
    value("file", f, "user.empty");
    show("list size 0", listxattr(f, NULL, 0));
    show("list small buffer", listxattr(f, buf, 5));
    list("file", f);

    char longname[300];
    memset(longname, 'n', sizeof longname);
    memcpy(longname, "user.", 5);
    longname[256] = 0;
    show("set 256-byte name", setxattr(f, longname, "x", 1, 0));
    show("get 256-byte name", getxattr(f, longname, buf, sizeof buf));
    longname[255] = 0;
    show("set 255-byte name", setxattr(f, longname, "x", 1, 0));
    show("remove 255-byte name", removexattr(f, longname));
    show("set empty name", setxattr(f, "", "x", 1, 0));
    show("set prefix only", setxattr(f, "user.", "x", 1, 0));
    show("set unknown namespace", setxattr(f, "bogus.x", "x", 1, 0));
    show("get unknown namespace", getxattr(f, "bogus.x", buf, sizeof buf));
    char *big = calloc(1, 70000);
    show("set 65537 bytes", setxattr(f, "user.big", big, 65537, 0));
    free(big);

    show("set trusted.t", setxattr(f, "trusted.t", "tv", 2, 0));
    show("set security.s", setxattr(f, "security.s", "sv", 2, 0));
    value("file", f, "trusted.t");
    value("file", f, "security.s");
    list("file", f);

    show("remove user.a", removexattr(f, "user.a"));
    show("remove user.a again", removexattr(f, "user.a"));
    show("remove unknown namespace", removexattr(f, "bogus.x"));

    show("dir set user.d", setxattr(d, "user.d", "dv", 2, 0));
    value("dir", d, "user.d");
    list("dir", d);

    show("symlink lset user.x", lsetxattr(l, "user.x", "x", 1, 0));
    show("symlink lget user.x", lgetxattr(l, "user.x", buf, sizeof buf));
    show("symlink get (follows) user.empty", getxattr(l, "user.empty", buf, sizeof buf));
    show("symlink lset trusted.x", lsetxattr(l, "trusted.x", "x", 1, 0));
    list("symlink", l);
    show("fifo set user.x", setxattr(p, "user.x", "x", 1, 0));
    show("fifo get user.x", getxattr(p, "user.x", buf, sizeof buf));

    int fd = open(f, O_RDONLY);
    show("fsetxattr on O_RDONLY fd", fsetxattr(fd, "user.f", "fv", 2, 0));
    show("fgetxattr", fgetxattr(fd, "user.f", buf, sizeof buf));
    show("flistxattr size 0", flistxattr(fd, NULL, 0));
    show("fremovexattr", fremovexattr(fd, "user.f"));
    close(fd);
    fd = open(f, O_PATH);
    show("fgetxattr O_PATH", fgetxattr(fd, "user.empty", buf, sizeof buf));
    show("fsetxattr O_PATH", fsetxattr(fd, "user.empty", "x", 1, 0));
    close(fd);

    // Without privilege: another user, who may read but not write the file.
    fflush(stdout);
    pid_t c = fork();
    if (c == 0) {
        if (setresgid(65534, 65534, 65534) || setresuid(65534, 65534, 65534)) {
            printf("setresuid failed\n");
            _exit(1);
        }
        value("unprivileged", f, "user.empty");
        show("unprivileged set user.empty", setxattr(f, "user.empty", "x", 1, 0));
        show("unprivileged get trusted.t", getxattr(f, "trusted.t", buf, sizeof buf));
        show("unprivileged set trusted.u", setxattr(f, "trusted.u", "x", 1, 0));
        value("unprivileged", f, "security.s");
        show("unprivileged set security.s", setxattr(f, "security.s", "x", 1, 0));
        show("unprivileged remove security.s", removexattr(f, "security.s"));
        list("unprivileged", f);
        _exit(0);
    }
    int st;
    waitpid(c, &st, 0);
    unlink(f), rmdir(d), unlink(l), unlink(p);
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    suite("");
    suite("/dev/shm/");

    char buf[64];
    printf("== procfs\n");
    show("proc get user.x", getxattr("/proc/self/status", "user.x", buf, sizeof buf));
    show("proc set user.x", setxattr("/proc/self/status", "user.x", "x", 1, 0));
    show("proc list", listxattr("/proc/self/status", buf, sizeof buf));
    show("missing file", getxattr("xattr-missing", "user.x", buf, sizeof buf));

    printf("== lower file\n");
    if (access("xattr-lower", F_OK) != 0) {
        close(open("xattr-lower", O_CREAT | O_WRONLY, 0644));
        setxattr("xattr-lower", "user.low", "from-host", 9, 0);
    }
    value("lower", "xattr-lower", "user.low");
    list("lower", "xattr-lower");
    int fd = open("xattr-lower", O_WRONLY | O_APPEND);
    show("write (copy-up)", write(fd, "x", 1));
    close(fd);
    value("copied up", "xattr-lower", "user.low");
    show("set after copy-up", setxattr("xattr-lower", "user.up", "u", 1, 0));
    list("copied up", "xattr-lower");
    // Leave the host file as the sandbox run must find it.
    show("remove after copy-up", removexattr("xattr-lower", "user.up"));
    return 0;
}
