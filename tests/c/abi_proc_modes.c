// The modes of /proc/self entries as Linux gives them (auxv and environ 0400, mem
// 0600, fd 0500, fdinfo 0555, ns 0511, the id maps 0644...), and that another
// user cannot read a root process's auxv or environ while the owner can.
// Entries the sandbox does not have (Linux debugging and accounting files) are not
// listed; comm is 0644 on Linux (writable) and read-only here, so it is left out.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *names[] = {
    "auxv", "cgroup", "cmdline", "cwd", "environ", "exe", "fd", "fdinfo", "gid_map",
    "limits", "maps", "mem", "mountinfo", "mounts", "net", "ns", "oom_score_adj", "root",
    "setgroups", "stat", "statm", "status", "task", "timens_offsets", "uid_map",
};

static const char *kind(mode_t m) {
    return S_ISDIR(m) ? "dir" : S_ISLNK(m) ? "link" : S_ISREG(m) ? "file" : "other";
}

static void try_open(const char *label, const char *path) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        printf("%s: %s\n", label, strerrorname_np(errno));
        return;
    }
    char b[16];
    printf("%s: %s\n", label, read(fd, b, sizeof b) >= 0 ? "read" : strerrorname_np(errno));
    close(fd);
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    char path[128];
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        struct stat st;
        snprintf(path, sizeof path, "/proc/self/%s", names[i]);
        if (lstat(path, &st) < 0)
            printf("%s: %s\n", names[i], strerrorname_np(errno));
        else
            printf("%s: %s %o uid %u\n", names[i], kind(st.st_mode), st.st_mode & 07777,
                   st.st_uid);
    }
    struct stat st;
    if (stat("/proc/self/task/.", &st) == 0)
        printf("task dir: %o\n", st.st_mode & 07777);

    try_open("own auxv", "/proc/self/auxv");
    try_open("own environ", "/proc/self/environ");
    pid_t parent = getpid();
    pid_t c = fork();
    if (c == 0) {
        if (setresgid(65534, 65534, 65534) || setresuid(65534, 65534, 65534))
            _exit(1);
        char p[64];
        snprintf(p, sizeof p, "/proc/%d/auxv", parent);
        try_open("other user, root's auxv", p);
        snprintf(p, sizeof p, "/proc/%d/environ", parent);
        try_open("other user, root's environ", p);
        snprintf(p, sizeof p, "/proc/%d/status", parent);
        try_open("other user, root's status", p);
        _exit(0);
    }
    waitpid(c, NULL, 0);
    return 0;
}
