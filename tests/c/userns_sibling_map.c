// uid_map and gid_map read from another user namespace show the lower ids as
// the reader's namespace sees them (user_namespaces(7)): from the parent, the
// parent's ids; from inside, the parent's too; from a sibling, the sibling's
// own ids, and 4294967295 ((uid_t)-1) for a range whose first id the sibling
// does not map. The first id of a range alone is translated.
#define _GNU_SOURCE
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "e2e.h"

static void put(int pid, const char *file, const char *text)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/%s", pid, file);
    int fd = open(path, O_WRONLY);
    ssize_t n = fd < 0 ? -1 : write(fd, text, strlen(text));
    if (n != (ssize_t)strlen(text))
        printf("write %s: %s\n", file, e2e_errname(errno));
    if (fd >= 0)
        close(fd);
}

static void show(const char *who, int pid, const char *file)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/%s", pid, file);
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        printf("%s reads %s: %s\n", who, file, e2e_errname(errno));
        return;
    }
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    buf[n < 0 ? 0 : n] = 0;
    printf("%s reads %s:\n%s", who, file, buf);
}

/* A child in a new user namespace: says it is ready on `ready`, reads the pid
 * of the process whose maps to show from `go`, shows them and its own, says it
 * is done on `ready`, and lives until `go` is closed. */
static int child(int ready[2], int go[2], const char *name)
{
    pid_t p = fork();
    if (p == 0) {
        /* Only the parent's copy of the write end may hold `go` open. */
        close(go[1]);
        if (unshare(CLONE_NEWUSER))
            _exit(2);
        char c = 1, buf[16];
        if (write(ready[1], &c, 1) != 1)
            _exit(3);
        ssize_t n = read(go[0], buf, sizeof buf - 1);
        if (n > 0) {
            buf[n] = 0;
            int o = atoi(buf);
            show(name, o, "uid_map");
            show(name, o, "gid_map");
        }
        show(name, getpid(), "uid_map");
        if (write(ready[1], &c, 1) != 1)
            _exit(3);
        /* Lives until told to go (one more byte). */
        if (read(go[0], buf, 1) < 0)
            _exit(3);
        _exit(0);
    }
    char c;
    if (read(ready[0], &c, 1) != 1)
        return -1;
    return p;
}

/* Tells `go` the pid to read and waits until the child is done. */
static void turn(int ready[2], int go[2], int pid)
{
    char msg[16], c;
    int n = snprintf(msg, sizeof msg, "%d", pid);
    if (write(go[1], msg, n) != n || read(ready[0], &c, 1) != 1)
        exit(1);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    int ra[2], ga[2], rb[2], gb[2];
    if (pipe(ra) || pipe(ga) || pipe(rb) || pipe(gb))
        return 1;
    int a = child(ra, ga, "A");
    int b = child(rb, gb, "B");
    if (a < 0 || b < 0)
        return 1;
    put(a, "uid_map", "0 1000 5\n5 1007 3\n100 2000 1\n");
    put(a, "setgroups", "deny");
    put(a, "gid_map", "0 3000 4\n");
    put(b, "uid_map", "0 1005 10\n");
    put(b, "setgroups", "deny");
    put(b, "gid_map", "7 3001 2\n");
    show("parent", a, "uid_map");
    show("parent", b, "gid_map");
    turn(ra, ga, b);
    turn(rb, gb, a);
    char q = 'q';
    if (write(ga[1], &q, 1) != 1 || write(gb[1], &q, 1) != 1)
        return 1;
    waitpid(a, NULL, 0);
    waitpid(b, NULL, 0);
    return 0;
}
