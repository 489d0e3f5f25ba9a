// POSIX ACLs (acl(5)) as Linux keeps them, in the working directory (the overlay
// inside, the host's disk natively) and in /dev/shm (tmpfs on both sides): the
// system.posix_acl_access/default attributes (their checks: version, torn values,
// entry order, bad bits, owner only, default only on directories), the mode's group
// bits as the mask, an ACL the mode can say alone not kept, the set-group-id bit
// dropped for a setter outside the group, the permission check by named user,
// named group, owning group and mask as another user, chmod moving the mask, a
// directory's default ACL inherited (masking the mode in place of the umask) by new
// files and directories, and setfacl/getfacl (Debian's acl package) over all of it.
// e2e: timeout=60
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

static void show(const char *w, long r) {
    if (r < 0)
        printf("%s: -1 %s\n", w, strerrorname_np(errno));
    else
        printf("%s: %ld\n", w, r);
}

// An ACL value: version 2 then (tag, perm, id) entries.
struct acl {
    uint32_t v[1 + 2 * 16];
    int n;
};

static void acl_init(struct acl *a) {
    a->v[0] = 2;
    a->n = 0;
}

static void add(struct acl *a, int tag, int perm, uint32_t id) {
    a->v[1 + 2 * a->n] = (uint32_t)tag | ((uint32_t)perm << 16);
    a->v[2 + 2 * a->n] = id;
    a->n++;
}

static size_t acl_size(const struct acl *a) { return 4 + 8 * a->n; }

// Prints an attribute as getfacl's short form would.
static void print_acl(const char *label, const char *path, const char *name) {
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
        const char *t = tag == USER_OBJ ? "u" : tag == USER ? "u" : tag == GROUP_OBJ ? "g"
                      : tag == GROUP    ? "g" : tag == MASK ? "m" : tag == OTHER ? "o" : "?";
        char idbuf[16] = "";
        if (id != NOID)
            snprintf(idbuf, sizeof idbuf, "%u", id);
        printf(" %s:%s:%c%c%c", t, idbuf, perm & 4 ? 'r' : '-', perm & 2 ? 'w' : '-',
               perm & 1 ? 'x' : '-');
    }
    printf("\n");
}

static void print_mode(const char *label, const char *path) {
    struct stat st;
    if (stat(path, &st) < 0)
        printf("%s mode: -1 %s\n", label, strerrorname_np(errno));
    else
        printf("%s mode: %o\n", label, st.st_mode & 07777);
}

// Whether the ACL names appear in listxattr.
static void print_list(const char *label, const char *path) {
    char buf[1024];
    ssize_t n = listxattr(path, buf, sizeof buf);
    int acc = 0, def = 0;
    for (char *p = buf; n > 0 && p < buf + n; p += strlen(p) + 1) {
        acc |= strcmp(p, A_ACCESS) == 0;
        def |= strcmp(p, A_DEFAULT) == 0;
    }
    printf("%s list: access %s, default %s\n", label, acc ? "yes" : "no", def ? "yes" : "no");
}

// Tries to open path with flags as uid (and with supplementary group sgid, if not -1).
static void try_as(const char *label, const char *path, int flags, uid_t uid, gid_t sgid) {
    fflush(stdout);
    pid_t c = fork();
    if (c == 0) {
        gid_t groups[1] = {sgid};
        if (setgroups(sgid == (gid_t)-1 ? 0 : 1, groups) || setresgid(65534, 65534, 65534) ||
            setresuid(uid, uid, uid)) {
            printf("drop failed\n");
            _exit(1);
        }
        int fd = open(path, flags);
        if (fd < 0)
            printf("%s: %s\n", label, strerrorname_np(errno));
        else
            printf("%s: ok\n", label);
        _exit(0);
    }
    waitpid(c, NULL, 0);
}

// Runs a setxattr of an ACL as another uid (who does not own the file).
static void set_as(const char *label, const char *path, const struct acl *a, uid_t uid) {
    fflush(stdout);
    pid_t c = fork();
    if (c == 0) {
        if (setresgid(65534, 65534, 65534) || setresuid(uid, uid, uid))
            _exit(1);
        show(label, setxattr(path, A_ACCESS, a->v, acl_size(a), 0));
        _exit(0);
    }
    waitpid(c, NULL, 0);
}

static void suite(const char *dir) {
    char f[256], d[256], sub[256], inh[256], g[256];
    int me = getpid();
    printf("== %s\n", dir[0] ? dir : "cwd");
    snprintf(f, sizeof f, "%sacl-file-%d", dir, me);
    snprintf(d, sizeof d, "%sacl-dir-%d", dir, me);
    snprintf(sub, sizeof sub, "%s/sub", d);
    snprintf(inh, sizeof inh, "%s/file", d);
    snprintf(g, sizeof g, "%sacl-sgid-%d", dir, me);
    umask(022);
    close(open(f, O_CREAT | O_WRONLY, 0640));
    chmod(f, 0640);

    struct acl a;
    char b[256];
    show("get access (none)", getxattr(f, A_ACCESS, b, sizeof b));
    show("remove access (none)", removexattr(f, A_ACCESS));
    print_list("plain file", f);

    // Checks of the value.
    acl_init(&a);
    add(&a, USER_OBJ, 6, NOID), add(&a, USER, 6, 65534), add(&a, GROUP_OBJ, 4, NOID),
        add(&a, OTHER, 0, NOID);
    show("named user without mask", setxattr(f, A_ACCESS, a.v, acl_size(&a), 0));
    acl_init(&a);
    add(&a, GROUP_OBJ, 4, NOID), add(&a, USER_OBJ, 6, NOID), add(&a, OTHER, 0, NOID);
    show("out of order", setxattr(f, A_ACCESS, a.v, acl_size(&a), 0));
    acl_init(&a);
    add(&a, USER_OBJ, 6, NOID), add(&a, GROUP_OBJ, 4, NOID), add(&a, OTHER, 8, NOID);
    show("bad permission bits", setxattr(f, A_ACCESS, a.v, acl_size(&a), 0));
    show("torn value", setxattr(f, A_ACCESS, a.v, acl_size(&a) - 3, 0));
    a.v[0] = 1;
    show("version 1", setxattr(f, A_ACCESS, a.v, acl_size(&a), 0));
    acl_init(&a);
    add(&a, USER_OBJ, 6, NOID), add(&a, GROUP_OBJ, 4, NOID), add(&a, OTHER, 4, NOID);
    show("default on a file", setxattr(f, A_DEFAULT, a.v, acl_size(&a), 0));
    show("empty default on a file", setxattr(f, A_DEFAULT, "", 0, 0));
    show("system.other", setxattr(f, "system.other", "x", 1, 0));

    // An ACL the mode can say: only the mode changes.
    show("minimal 0644 (XATTR_REPLACE ignored)",
         setxattr(f, A_ACCESS, a.v, acl_size(&a), XATTR_REPLACE));
    print_mode("after minimal", f);
    show("get access after minimal", getxattr(f, A_ACCESS, b, sizeof b));

    // Named user rw, owning group r, mask rw.
    acl_init(&a);
    add(&a, USER_OBJ, 6, NOID), add(&a, USER, 6, 65534), add(&a, GROUP_OBJ, 4, NOID),
        add(&a, GROUP, 4, 65533), add(&a, MASK, 6, NOID), add(&a, OTHER, 0, NOID);
    show("set named entries", setxattr(f, A_ACCESS, a.v, acl_size(&a), XATTR_CREATE));
    print_mode("with mask rw", f);
    print_acl("access", f, A_ACCESS);
    print_list("acl file", f);
    try_as("named user read", f, O_RDONLY, 65534, -1);
    try_as("named user write", f, O_WRONLY, 65534, -1);
    try_as("named group read", f, O_RDONLY, 65532, 65533);
    try_as("named group write", f, O_WRONLY, 65532, 65533);
    try_as("owning group read", f, O_RDONLY, 65532, 0);
    try_as("other read", f, O_RDONLY, 65532, -1);
    set_as("named user sets the ACL", f, &a, 65534);

    show("chmod 0600", chmod(f, 0600));
    print_acl("access after chmod 0600", f, A_ACCESS);
    try_as("named user read, mask ---", f, O_RDONLY, 65534, -1);
    show("chmod 0640", chmod(f, 0640));
    print_acl("access after chmod 0640", f, A_ACCESS);
    try_as("named user read, mask r--", f, O_RDONLY, 65534, -1);
    try_as("named user write, mask r--", f, O_WRONLY, 65534, -1);
    show("remove access", removexattr(f, A_ACCESS));
    print_mode("after remove", f);
    show("get access after remove", getxattr(f, A_ACCESS, b, sizeof b));
    try_as("named user read, no ACL", f, O_RDONLY, 65534, -1);

    // The set-group-id bit goes when the setter is not in the group.
    close(open(g, O_CREAT | O_WRONLY, 0644));
    chown(g, 65534, 0);
    chmod(g, 02770);
    acl_init(&a);
    add(&a, USER_OBJ, 7, NOID), add(&a, USER, 5, 65533), add(&a, GROUP_OBJ, 7, NOID),
        add(&a, MASK, 7, NOID), add(&a, OTHER, 0, NOID);
    set_as("owner outside the group sets", g, &a, 65534);
    print_mode("set-gid file", g);

    // Default ACLs: inherited by new files (the mode masked by the ACL, the umask
    // ignored) and by new directories (as their default too).
    mkdir(d, 0755);
    acl_init(&a);
    add(&a, USER_OBJ, 7, NOID), add(&a, USER, 7, 65534), add(&a, GROUP_OBJ, 5, NOID),
        add(&a, MASK, 7, NOID), add(&a, OTHER, 0, NOID);
    show("set default", setxattr(d, A_DEFAULT, a.v, acl_size(&a), 0));
    print_acl("dir default", d, A_DEFAULT);
    show("dir access (none)", getxattr(d, A_ACCESS, b, sizeof b));
    print_list("dir", d);
    close(open(inh, O_CREAT | O_WRONLY, 0666));
    print_mode("inherited file", inh);
    print_acl("inherited file access", inh, A_ACCESS);
    show("inherited file default", getxattr(inh, A_DEFAULT, b, sizeof b));
    mkdir(sub, 0777);
    print_mode("inherited dir", sub);
    print_acl("inherited dir access", sub, A_ACCESS);
    print_acl("inherited dir default", sub, A_DEFAULT);
    try_as("named user reads inherited file", inh, O_RDWR, 65534, -1);
    try_as("other reads inherited file", inh, O_RDONLY, 65532, -1);
    // A default that the mode says alone: new files get no access ACL.
    acl_init(&a);
    add(&a, USER_OBJ, 7, NOID), add(&a, GROUP_OBJ, 0, NOID), add(&a, OTHER, 0, NOID);
    show("set minimal default", setxattr(d, A_DEFAULT, a.v, acl_size(&a), 0));
    char inh2[300];
    snprintf(inh2, sizeof inh2, "%s/file2", d);
    close(open(inh2, O_CREAT | O_WRONLY, 0666));
    print_mode("file under minimal default", inh2);
    show("its access ACL", getxattr(inh2, A_ACCESS, b, sizeof b));
    show("remove default", removexattr(d, A_DEFAULT));
    char inh3[300];
    snprintf(inh3, sizeof inh3, "%s/file3", d);
    close(open(inh3, O_CREAT | O_WRONLY, 0666));
    print_mode("file after default removed (umask)", inh3);

    // The acl package's tools over the same files.
    if (access("/usr/bin/setfacl", X_OK) == 0) {
        char cmd[1024];
        snprintf(cmd, sizeof cmd,
                 "cd '%s.' && setfacl -m u:65534:rwx,g:65533:r acl-file-%d && "
                 "getfacl -cn acl-file-%d && setfacl -m m::r acl-file-%d && stat -c %%a acl-file-%d && "
                 "setfacl -d -m u:65534:rx acl-dir-%d && getfacl -cnd acl-dir-%d && "
                 "setfacl -b acl-file-%d && getfacl -cn acl-file-%d && "
                 "setfacl -k acl-dir-%d && getfacl -cnd acl-dir-%d",
                 dir, me, me, me, me, me, me, me, me, me, me);
        fflush(stdout);
        int r = system(cmd);
        printf("acl tools: %d\n", r);
    } else {
        printf("no setfacl\n");
    }
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s' '%s'", f, d, g);
    if (system(cmd) != 0)
        printf("cleanup failed\n");
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    suite("");
    suite("/dev/shm/");
    return 0;
}
