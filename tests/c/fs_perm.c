// Permission checks as a non-root uid (DAC, sticky directories, O_NOATIME, owner-only
// operations, supplementary groups, access()), and names/paths over NAME_MAX and
// PATH_MAX, huge counts and negative offsets. Runs as root, sets files up, then drops
// to uid 1000 in a child. On a fresh directory under /dev/shm (tmpfs in both worlds).
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

static void show(const char *what, long r)
{
    if (r < 0)
        printf("%s: %s\n", what, strerrorname_np(errno));
    else
        printf("%s: OK\n", what);
}
#define T(what, expr) do { errno = 0; show(what, (long)(expr)); } while (0)

static int mkfile(const char *p, mode_t mode, uid_t uid, gid_t gid)
{
    int fd = open(p, O_CREAT | O_WRONLY | O_TRUNC, 0600);
    if (fd < 0)
        return -1;
    if (write(fd, "#!/bin/sh\n", 10) != 10)
        return -1;
    close(fd);
    if (chown(p, uid, gid) || chmod(p, mode))
        return -1;
    return 0;
}

/* Removes the test tree (everything it made is at most two levels deep). */
static void rm_tree(const char *d, int depth)
{
    DIR *dp = opendir(d);
    if (!dp)
        return;
    struct dirent *e;
    while ((e = readdir(dp))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", d, e->d_name);
        if (e->d_type == DT_DIR && depth < 3)
            rm_tree(p, depth + 1);
        else
            unlink(p);
    }
    closedir(dp);
    rmdir(d);
}

static long tryopen(const char *p, int flags)
{
    int fd = open(p, flags, 0644);
    if (fd >= 0)
        close(fd);
    return fd;
}

static void as_user(void)
{
    gid_t groups[] = {2000};
    if (setgroups(1, groups) || setresgid(1000, 1000, 1000) || setresuid(1000, 1000, 1000)) {
        perror("drop");
        _exit(1);
    }
    /* Reading and writing by owner, group and other bits. */
    T("read own 0600", tryopen("own", O_RDONLY));
    T("write own 0400", tryopen("own_ro", O_WRONLY));
    T("read root 0600", tryopen("root_only", O_RDONLY));
    T("read root 0644", tryopen("root_644", O_RDONLY));
    T("write root 0644", tryopen("root_644", O_WRONLY));
    T("read group 0640 (supplementary)", tryopen("group_2000", O_RDONLY));
    T("write group 0640", tryopen("group_2000", O_WRONLY));
    T("owner bits win over other", tryopen("own_0007", O_RDONLY));
    T("trunc root 0644", truncate("root_644", 0));
    /* access() uses the real ids. */
    T("access R root_644", access("root_644", R_OK));
    T("access W root_644", access("root_644", W_OK));
    T("access X root_644", access("root_644", X_OK));
    T("access X exec_755", access("exec_755", X_OK));
    T("faccessat2 eaccess", syscall(SYS_faccessat2, AT_FDCWD, "root_only", R_OK, AT_EACCESS));
    /* Directories: search and write bits. */
    T("stat through 0700 root dir", access("closed/inner", F_OK));
    T("create in 0755 root dir", tryopen("ro_dir/new", O_CREAT | O_WRONLY));
    T("mkdir in 0755 root dir", mkdir("ro_dir/d", 0755));
    T("unlink in 0755 root dir", unlink("ro_dir/victim"));
    T("list 0711 dir", tryopen("search_only", O_RDONLY | O_DIRECTORY));
    T("walk 0711 dir", access("search_only/visible", F_OK));
    /* Sticky directory: only the owner of the entry (or the dir) may remove it. */
    T("create in sticky", tryopen("sticky/mine", O_CREAT | O_WRONLY));
    T("unlink own in sticky", unlink("sticky/mine"));
    T("unlink root's in sticky", unlink("sticky/roots"));
    T("rename root's in sticky", rename("sticky/roots", "sticky/taken"));
    /* Owner-only operations. */
    T("chmod root's", chmod("root_644", 0777));
    T("chmod own", chmod("own", 0640));
    T("chown own to root", chown("own", 0, 0));
    T("chgrp own to member group", chown("own", -1, 2000));
    T("chgrp own to other group", chown("own", -1, 3000));
    T("utimes now on root's 0666", utimensat(AT_FDCWD, "root_666", NULL, 0));
    struct timespec ts[2] = {{1, 0}, {1, 0}};
    T("utimes set on root's 0666", utimensat(AT_FDCWD, "root_666", ts, 0));
    T("O_NOATIME on root's 0644", tryopen("root_644", O_RDONLY | O_NOATIME));
    T("O_NOATIME on own", tryopen("own", O_RDONLY | O_NOATIME));
    T("link to root's 0600", link("root_only", "hardlink"));
    /* Set-group-id bit cleared when a non-member changes mode. */
    T("chmod g+s own (group not a member)", chmod("own_gid3000", 02755));
    struct stat st;
    stat("own_gid3000", &st);
    printf("setgid kept %d\n", !!(st.st_mode & S_ISGID));
    /* New files take the creator's ids; setgid directories pass their group on. */
    if (tryopen("setgid_dir/f", O_CREAT | O_WRONLY) >= 0 && stat("setgid_dir/f", &st) == 0)
        printf("new file in setgid dir: uid %u gid %u\n", st.st_uid, st.st_gid);
    /* Writing clears set-user-id. */
    int fd = open("own_suid", O_WRONLY);
    if (fd >= 0) {
        write(fd, "x", 1);
        close(fd);
        stat("own_suid", &st);
        printf("suid after write %d\n", !!(st.st_mode & S_ISUID));
    }
    T("mknod fifo", mknod("fifo", S_IFIFO | 0600, 0));
    T("mknod char dev", mknod("dev", S_IFCHR | 0600, makedev(1, 3)));
    fflush(stdout);
    _exit(0);
}

int main(void)
{
    char dir[] = "/dev/shm/fs_perm_XXXXXX";
    if (!mkdtemp(dir) || chdir(dir) != 0 || chmod(".", 0777) != 0) {
        perror("setup");
        return 1;
    }
    umask(0);
    int ok = 0;
    ok |= mkfile("own", 0600, 1000, 1000);
    ok |= mkfile("own_ro", 0400, 1000, 1000);
    ok |= mkfile("own_0007", 0007, 1000, 1000);
    ok |= mkfile("own_gid3000", 0755, 1000, 3000);
    ok |= mkfile("own_suid", 04755, 1000, 1000);
    ok |= mkfile("root_only", 0600, 0, 0);
    ok |= mkfile("root_644", 0644, 0, 0);
    ok |= mkfile("root_666", 0666, 0, 0);
    ok |= mkfile("exec_755", 0755, 0, 0);
    ok |= mkfile("group_2000", 0640, 0, 2000);
    ok |= mkdir("closed", 0700) | mkfile("closed/inner", 0644, 0, 0);
    ok |= mkdir("ro_dir", 0755) | mkfile("ro_dir/victim", 0666, 1000, 1000);
    ok |= mkdir("search_only", 0711) | mkfile("search_only/visible", 0644, 0, 0);
    ok |= mkdir("sticky", 01777) | mkfile("sticky/roots", 0666, 0, 0);
    ok |= mkdir("setgid_dir", 02777) | chown("setgid_dir", 0, 4000);
    ok |= chmod("setgid_dir", 02777);
    if (ok) {
        perror("populate");
        return 1;
    }
    pid_t pid = fork();
    if (pid == 0)
        as_user();
    int status = 0;
    waitpid(pid, &status, 0);
    printf("child exit %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);

    /* Long names and paths, huge counts, negative offsets (as root). */
    char name[300];
    memset(name, 'n', sizeof name - 1);
    name[sizeof name - 1] = 0;
    T("open name > NAME_MAX", open(name, O_CREAT | O_WRONLY, 0644));
    name[255] = 0;
    int fd = open(name, O_CREAT | O_WRONLY, 0644);
    show("open name == NAME_MAX", fd);
    if (fd >= 0)
        close(fd);
    T("unlink NAME_MAX", unlink(name));
    static char path[5000];
    memset(path, 'a', sizeof path - 1);
    for (size_t i = 1; i < sizeof path - 1; i += 2)
        path[i] = '/';
    T("stat path > PATH_MAX", access(path, F_OK));
    memset(path, '/', sizeof path - 1);
    T("stat many slashes > PATH_MAX", access(path, F_OK));
    fd = open("root_644", O_RDWR);
    char b[64];
    T("pread negative offset", pread(fd, b, sizeof b, -1));
    T("pwrite negative offset", pwrite(fd, b, 1, -4096));
    T("lseek negative", lseek(fd, -1, SEEK_SET));
    T("lseek bad whence", lseek(fd, 0, 42));
    T("read huge count, bad buffer", syscall(SYS_read, fd, (void *)16, (size_t)1 << 62));
    T("write huge count, bad buffer", syscall(SYS_write, fd, (void *)16, (size_t)1 << 62));
    struct iovec iov[2] = {{b, (size_t)1 << 62}, {b, (size_t)1 << 62}};
    T("readv overflowing lengths", syscall(SYS_readv, fd, iov, 2));
    T("readv too many iovecs", syscall(SYS_readv, fd, iov, 5000));
    T("ftruncate negative", ftruncate(fd, -1));
    T("fallocate negative", fallocate(fd, 0, -1, 10));
    close(fd);
    T("read closed fd", read(fd, b, 1));
    chdir("/");
    rm_tree(dir, 0);
    T("tree removed", access(dir, F_OK));
    return 0;
}
