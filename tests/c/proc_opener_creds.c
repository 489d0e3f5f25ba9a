// /proc files whose writes Linux checks against the credentials of the
// descriptor's opener (file->f_cred), not the writer's: timens_offsets
// (CAP_SYS_TIME over the time namespace's owner) and uid_map/gid_map (the
// opener's CAP_SETUID/CAP_SETGID over the parent namespace, and the writer's
// too). A descriptor opened while the capability was effective keeps working
// after it is dropped; one opened without it stays refused after it is raised.
// setgroups checks at open.
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/capability.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include "e2e.h"

// Turns `cap` on or off in the effective set, leaving permitted as it is.
static void effective(int cap, int on)
{
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct d[2];
    if (syscall(SYS_capget, &h, d) != 0) {
        printf("capget: %s\n", e2e_errname(errno));
        exit(1);
    }
    if (on)
        d[cap / 32].effective |= 1u << (cap % 32);
    else
        d[cap / 32].effective &= ~(1u << (cap % 32));
    if (syscall(SYS_capset, &h, d) != 0) {
        printf("capset: %s\n", e2e_errname(errno));
        exit(1);
    }
}

static const char *wr(int fd, const char *text)
{
    ssize_t n = write(fd, text, strlen(text));
    return n == (ssize_t)strlen(text) ? "OK" : e2e_errname(errno);
}

static void show(const char *path, const char *label)
{
    char buf[256] = {0};
    int fd = open(path, O_RDONLY);
    ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof buf - 1);
    printf("  %s: %s", label, n > 0 ? buf : n == 0 ? "(empty)\n" : e2e_errname(errno));
    if (fd >= 0)
        close(fd);
}

// In a child: a new time namespace for its children, written as `how` says.
static void timens(int opened_with_cap)
{
    pid_t pid = fork();
    if (pid == 0) {
        if (unshare(CLONE_NEWTIME) != 0) {
            printf("unshare(CLONE_NEWTIME): %s\n", e2e_errname(errno));
            _exit(1);
        }
        effective(CAP_SYS_TIME, opened_with_cap);
        int fd = open("/proc/self/timens_offsets", O_WRONLY);
        if (fd < 0) {
            printf("open: %s\n", e2e_errname(errno));
            _exit(1);
        }
        effective(CAP_SYS_TIME, !opened_with_cap);
        printf("timens_offsets opened %s CAP_SYS_TIME, written %s it: %s\n",
               opened_with_cap ? "with" : "without", opened_with_cap ? "without" : "with",
               wr(fd, "monotonic 100 0\n"));
        show("/proc/self/timens_offsets", "timens_offsets");
        _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
}

// A child in a new user namespace, its map written by us: `how` 0 opens
// without `cap` and writes with it, 1 the other way round, 2 holds it throughout.
static void uidmap(int cap, const char *file, int how)
{
    int go[2];
    if (pipe(go) != 0)
        return;
    pid_t pid = fork();
    if (pid == 0) {
        char c;
        close(go[1]);
        if (unshare(CLONE_NEWUSER) != 0) {
            printf("unshare(CLONE_NEWUSER): %s\n", e2e_errname(errno));
            _exit(1);
        }
        if (read(go[0], &c, 1) != 1)
            _exit(1);
        _exit(0);
    }
    close(go[0]);
    usleep(100000);  // the child's unshare
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/%s", pid, file);
    effective(cap, how != 0);
    int fd = open(path, O_WRONLY);
    effective(cap, how != 1);
    if (fd < 0) {
        printf("open %s: %s\n", file, e2e_errname(errno));
    } else {
        printf("%s opened %s the capability, written %s it: %s\n", file,
               how ? "with" : "without", how == 1 ? "without" : "with", wr(fd, "0 0 10\n"));
        close(fd);
    }
    effective(cap, 1);
    show(path, file);
    if (write(go[1], "x", 1) != 1)
        printf("pipe write failed\n");
    close(go[1]);
    int st;
    waitpid(pid, &st, 0);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    timens(1);
    timens(0);
    // Writing either set needs the opener's and the writer's capability over
    // the parent: both orders are refused.
    uidmap(CAP_SETUID, "uid_map", 1);
    uidmap(CAP_SETUID, "uid_map", 0);
    uidmap(CAP_SETGID, "gid_map", 1);
    uidmap(CAP_SETGID, "gid_map", 0);
    // With the capability effective throughout, the map is written.
    uidmap(CAP_SETUID, "uid_map", 2);
    return 0;
}
