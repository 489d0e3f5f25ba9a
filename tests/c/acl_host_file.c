// POSIX ACLs of host files: a file and a directory the native run leaves in the
// test directory with an access ACL (and the directory a default ACL) are, in
// the sandbox's run, host files reached through the gofer before any copy-up.
// Their system.posix_acl_access/default attributes read as natively (listxattr,
// getxattr, getfacl), the ACL decides the permission check (a named user reads,
// another does not), a file made in the directory inherits the default ACL, and
// after a write copies the file up its ACL is still there.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#define A_ACCESS "system.posix_acl_access"
#define A_DEFAULT "system.posix_acl_default"
enum { USER_OBJ = 1, USER = 2, GROUP_OBJ = 4, GROUP = 8, MASK = 0x10, OTHER = 0x20 };
#define NOID 0xffffffffu

static void set_acl(const char *path, const char *name, int named_perm)
{
    uint32_t v[1 + 2 * 5] = {2};
    uint32_t e[5][2] = {{USER_OBJ | 6 << 16, NOID}, {USER | named_perm << 16, 1234},
                        {GROUP_OBJ | 4 << 16, NOID}, {MASK | 7 << 16, NOID},
                        {OTHER | 0 << 16, NOID}};
    memcpy(v + 1, e, sizeof e);
    if (setxattr(path, name, v, sizeof v, 0))
        printf("setup %s %s: %s\n", path, name, strerrorname_np(errno));
}

static void print_acl(const char *label, const char *path, const char *name)
{
    unsigned char b[512];
    ssize_t n = getxattr(path, name, b, sizeof b);
    if (n < 0) {
        printf("%s: -1 %s\n", label, strerrorname_np(errno));
        return;
    }
    printf("%s: v%u", label, *(uint32_t *)b);
    for (ssize_t i = 4; i + 8 <= n; i += 8) {
        uint16_t tag = *(uint16_t *)(b + i), perm = *(uint16_t *)(b + i + 2);
        uint32_t id = *(uint32_t *)(b + i + 4);
        const char *t = tag == USER_OBJ || tag == USER ? "u"
                      : tag == GROUP_OBJ || tag == GROUP ? "g"
                      : tag == MASK ? "m" : tag == OTHER ? "o" : "?";
        char idbuf[16] = "";
        if (id != NOID)
            snprintf(idbuf, sizeof idbuf, "%u", id);
        printf(" %s:%s:%c%c%c", t, idbuf, perm & 4 ? 'r' : '-', perm & 2 ? 'w' : '-',
               perm & 1 ? 'x' : '-');
    }
    printf("\n");
}

static void list(const char *path)
{
    char b[1024];
    ssize_t n = listxattr(path, b, sizeof b);
    printf("listxattr %s:", path);
    if (n < 0)
        printf(" -1 %s", strerrorname_np(errno));
    for (ssize_t i = 0; i < n; i += strlen(b + i) + 1)
        if (strncmp(b + i, "system.posix_acl", 16) == 0)
            printf(" %s", b + i);
    printf("\n");
}

static void run(const char *const argv[])
{
    pid_t p = fork();
    if (p == 0) {
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    int st;
    waitpid(p, &st, 0);
    printf("%s exit %d\n", argv[0], WEXITSTATUS(st));
}

/* Opens `path` for reading as uid `uid` (gid 4321, no groups): OK or the error. */
static void read_as(const char *label, const char *path, uid_t uid)
{
    pid_t p = fork();
    if (p == 0) {
        if (setgroups(0, NULL) || setresgid(4321, 4321, 4321) || setresuid(uid, uid, uid))
            _exit(2);
        int fd = open(path, O_RDONLY);
        printf("%s: %s\n", label, fd < 0 ? strerrorname_np(errno) : "OK");
        _exit(0);
    }
    waitpid(p, NULL, 0);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    /* The native run leaves these behind; the sandbox's run finds them on the
     * host. */
    if (access("hostacl.f", F_OK) != 0) {
        int fd = open("hostacl.f", O_CREAT | O_WRONLY, 0640);
        if (fd < 0 || write(fd, "data\n", 5) != 5)
            return 1;
        close(fd);
        set_acl("hostacl.f", A_ACCESS, 4);
        mkdir("hostacl.d", 0750);
        set_acl("hostacl.d", A_ACCESS, 5);
        set_acl("hostacl.d", A_DEFAULT, 6);
    }
    list("hostacl.f");
    list("hostacl.d");
    print_acl("file access", "hostacl.f", A_ACCESS);
    print_acl("file default", "hostacl.f", A_DEFAULT);
    print_acl("dir access", "hostacl.d", A_ACCESS);
    print_acl("dir default", "hostacl.d", A_DEFAULT);
    fflush(stdout);
    run((const char *const[]){"/usr/bin/getfacl", "-n", "hostacl.f", "hostacl.d", NULL});
    read_as("named user 1234 reads", "hostacl.f", 1234);
    read_as("user 1235 reads", "hostacl.f", 1235);
    /* A new file in the directory inherits its default ACL. */
    unlink("hostacl.d/new");
    int fd = open("hostacl.d/new", O_CREAT | O_WRONLY, 0666);
    if (fd >= 0)
        close(fd);
    print_acl("inherited access", "hostacl.d/new", A_ACCESS);
    unlink("hostacl.d/new");
    /* A write copies the file up (inside): the ACL stays. */
    fd = open("hostacl.f", O_WRONLY | O_APPEND);
    if (fd < 0 || write(fd, "more\n", 5) != 5)
        printf("append: %s\n", strerrorname_np(errno));
    if (fd >= 0)
        close(fd);
    print_acl("after a write", "hostacl.f", A_ACCESS);
    read_as("after a write, named user 1234 reads", "hostacl.f", 1234);
    return 0;
}
