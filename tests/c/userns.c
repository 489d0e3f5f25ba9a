// User namespaces, as an unprivileged user makes them: unshare(CLONE_NEWUSER)
// leaves every id unmapped (65534) and gives every capability inside; the
// uid_map, gid_map and setgroups files are written once each with Linux's rules
// (the own id only without privilege over the parent, the gid only after
// setgroups is denied, malformed lines EINVAL); then ids read and set through
// the map, files show their owners through it (unmapped: 65534), capabilities
// over files hold only for mapped owners, and the namespaces owned by the new
// user namespace can be made and used (mount of tmpfs, hostname, network with
// only loopback, cgroup view); setns back up is refused. A privileged parent
// maps a range for a child made with clone(CLONE_NEWUSER); nesting stops at
// Linux's 32 levels.
// e2e: arg={dir}
#define _GNU_SOURCE
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <signal.h>
#include <grp.h>
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
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

/* Writes `text` to /proc/PID/`file` in one write: "OK" or the errno's name. */
static const char *put(int pid, const char *file, const char *text)
{
    char path[64];
    if (pid)
        snprintf(path, sizeof path, "/proc/%d/%s", pid, file);
    else
        snprintf(path, sizeof path, "/proc/self/%s", file);
    int fd = open(path, O_WRONLY);
    if (fd < 0)
        return mc_err(errno);
    ssize_t n = write(fd, text, strlen(text));
    int e = errno;
    close(fd);
    return n == (ssize_t)strlen(text) ? "OK" : mc_err(e);
}

static void show(const char *file)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/self/%s", file);
    int fd = open(path, O_RDONLY);
    ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof buf - 1);
    if (fd >= 0)
        close(fd);
    if (n < 0) {
        printf("%s: %s\n", file, mc_err(errno));
        return;
    }
    buf[n] = 0;
    // Of /proc/self/cgroup only the cgroup v2 line (a host may have v1 ones too).
    char *v2 = strcmp(file, "cgroup") ? NULL : strstr(buf, "0::");
    printf("%s: [%s]\n", file, v2 ? v2 : buf);
}

static void ids(const char *when)
{
    gid_t g[8];
    int n = getgroups(8, g);
    printf("%s: uid %d euid %d gid %d egid %d groups", when, getuid(), geteuid(), getgid(),
           getegid());
    for (int i = 0; i < n; i++)
        printf(" %d", g[i]);
    printf("\n");
}

/* The Uid and Gid lines of /proc/self/status, which the reader's namespace names. */
static void status_ids(const char *when)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "Uid:", 4) || !strncmp(line, "Gid:", 4))
            printf("%s status %s", when, line);
    if (f)
        fclose(f);
}

static int has_cap(int cap)
{
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct d[2];
    if (syscall(SYS_capget, &h, d) != 0)
        return -1;
    return (d[cap / 32].effective >> (cap % 32)) & 1;
}

static void owner(const char *rel)
{
    struct stat st;
    if (stat(p(rel), &st) != 0)
        printf("stat %s: %s\n", rel, mc_err(errno));
    else
        printf("stat %s: %d:%d\n", rel, st.st_uid, st.st_gid);
}

/* Maps the caller's own uid and gid to 0 in its new namespace, as `unshare -r`. */
static int map_self(uid_t uid, gid_t gid)
{
    char m[64];
    snprintf(m, sizeof m, "0 %d 1\n", uid);
    if (strcmp(put(0, "uid_map", m), "OK"))
        return -1;
    if (strcmp(put(0, "setgroups", "deny"), "OK"))
        return -1;
    snprintf(m, sizeof m, "0 %d 1\n", gid);
    return strcmp(put(0, "gid_map", m), "OK") ? -1 : 0;
}

static void unprivileged(void)
{
    int outer = open("/proc/self/ns/user", O_RDONLY);
    uid_t uid = geteuid();
    gid_t gid = getegid();
    CHECK("unshare user", unshare(CLONE_NEWUSER));
    ids("unmapped");
    status_ids("unmapped");
    printf("CAP_SYS_ADMIN inside: %d, CAP_SETUID: %d\n", has_cap(CAP_SYS_ADMIN),
           has_cap(CAP_SETUID));
    show("uid_map");
    show("setgroups");
    char m[64];
    snprintf(m, sizeof m, "0 %d 1\n", uid + 1);
    printf("uid_map malformed: %s\n", put(0, "uid_map", "0 0\n"));
    printf("uid_map zero count: %s\n", put(0, "uid_map", "0 0 0\n"));
    printf("uid_map someone else: %s\n", put(0, "uid_map", m));
    printf("uid_map two ids: %s\n", put(0, "uid_map", "0 0 2\n"));
    snprintf(m, sizeof m, "0 %d 1\n", uid);
    printf("uid_map own: %s\n", put(0, "uid_map", m));
    printf("uid_map again: %s\n", put(0, "uid_map", m));
    snprintf(m, sizeof m, "0 %d 1\n", gid);
    printf("gid_map before deny: %s\n", put(0, "gid_map", m));
    printf("setgroups bogus: %s\n", put(0, "setgroups", "maybe"));
    printf("setgroups deny: %s\n", put(0, "setgroups", "deny\n"));
    printf("setgroups allow again: %s\n", put(0, "setgroups", "allow"));
    printf("gid_map own: %s\n", put(0, "gid_map", m));
    printf("setgroups deny after map: %s\n", put(0, "setgroups", "deny"));
    show("uid_map");
    show("gid_map");
    show("setgroups");
    ids("mapped");
    status_ids("mapped");
    gid_t none[1] = {0};
    CHECK("setgroups(2)", setgroups(1, none));
    CHECK("setuid(0)", setuid(0));
    CHECK("setuid(5) unmapped", setuid(5));
    CHECK("setresgid(0,0,0)", setresgid(0, 0, 0));
    owner("mine");
    owner("other");
    CHECK("chown mine to unmapped", chown(p("mine"), 5, 5));
    CHECK("chown mine to 0", chown(p("mine"), 0, 0));
    CHECK("chown other", chown(p("other"), 0, 0));
    CHECK("open other's private file", open(p("other"), O_RDONLY) >= 0 ? 0 : -1);
    CHECK("open mine", open(p("mine"), O_RDONLY) >= 0 ? 0 : -1);
    CHECK("setns own user ns", setns(open("/proc/self/ns/user", O_RDONLY), CLONE_NEWUSER));
    CHECK("setns outer user ns", setns(outer, CLONE_NEWUSER));

    // Nothing of the parent's namespaces is ours to change.
    mkdir(p("mnt"), 0755);
    CHECK("mount in the outer mount ns", mount("t", p("mnt"), "tmpfs", 0, NULL));
    CHECK("sethostname in the outer uts ns", sethostname("x", 1));
    CHECK("signal the root parent", kill(getppid(), 0));
    CHECK("unshare mnt,uts,ipc,net,cgroup",
          unshare(CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET | CLONE_NEWCGROUP));
    CHECK("make / rprivate", mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL));
    CHECK("sethostname", sethostname("inner", 5));
    CHECK("mount tmpfs", mount("t", p("mnt"), "tmpfs", 0, "size=64k"));
    int f = open(p("mnt/f"), O_CREAT | O_WRONLY, 0600);
    CHECK("create in it", f >= 0 ? 0 : -1);
    close(f);
    owner("mnt/f");
    CHECK("mount proc (pid ns not owned)", mount("proc", p("mnt"), "proc", 0, NULL));
    CHECK("umount tmpfs", umount2(p("mnt"), 0));
    show("cgroup");
    struct if_nameindex *ifs = if_nameindex();
    printf("interfaces:");
    for (struct if_nameindex *i = ifs; i && i->if_index; i++)
        printf(" %s", i->if_name);
    printf("\n");

    // Nesting: each level maps its parent's root and goes one further.
    int level = 1;
    for (;;) {
        uid_t u = geteuid();
        gid_t g = getegid();
        if (unshare(CLONE_NEWUSER) != 0) {
            printf("nesting stopped after %d levels: %s\n", level,
                   errno == EUSERS ? "EUSERS" : errno == ENOSPC ? "ENOSPC" : mc_err(errno));
            break;
        }
        level++;
        if (map_self(u, g) != 0) {
            printf("map at level %d failed\n", level);
            break;
        }
    }
}

/* A child made with clone(CLONE_NEWUSER), mapped by its privileged parent. */
static void privileged_parent(void)
{
    int go[2], back[2];
    pipe(go);
    pipe(back);
    pid_t pid = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
    if (pid == 0) {
        char c;
        ids("child before map");
        write(back[1], "x", 1);
        read(go[0], &c, 1);
        ids("child after map");
        show("uid_map");
        gid_t g[2] = {3, 4};
        CHECK("child setgroups", setgroups(2, g));
        CHECK("child setuid(5)", setuid(5));
        ids("child after setuid");
        status_ids("child after setuid");
        printf("child CAP_SYS_ADMIN after setuid: %d\n", has_cap(CAP_SYS_ADMIN));
        _exit(0);
    }
    char c;
    read(back[0], &c, 1);
    printf("parent maps 10 uids: %s\n", put(pid, "uid_map", "0 0 10\n"));
    printf("parent maps 10 gids: %s\n", put(pid, "gid_map", "0 0 10\n"));
    printf("parent maps again: %s\n", put(pid, "uid_map", "0 0 10\n"));
    write(go[1], "x", 1);
    int st;
    waitpid(pid, &st, 0);
    printf("child exit: %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    setvbuf(stdout, NULL, _IONBF, 0);
    snprintf(D, sizeof D, "%s/userns", argv[1]);
    mkdir(D, 0755);
    int fd = open(p("mine"), O_CREAT | O_WRONLY, 0644);
    close(fd);
    fd = open(p("other"), O_CREAT | O_WRONLY, 0600);
    close(fd);
    chown(p("other"), 1234, 1234);
    // The unprivileged story runs as uid 1000 in a child, as a user would.
    pid_t pid = fork();
    if (pid == 0) {
        chown(D, 1000, 1000);
        chown(p("mine"), 1000, 1000);
        if (setgroups(0, NULL) || setgid(1000) || setuid(1000)) {
            printf("drop to 1000: %s\n", mc_err(errno));
            _exit(1);
        }
        // A user's own process is dumpable (the id change above cleared it), so
        // its /proc/self files are its own.
        prctl(PR_SET_DUMPABLE, 1);
        unprivileged();
        _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    printf("unprivileged exit: %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    privileged_parent();
    return 0;
}
