// /proc/sys/user/max_user_namespaces bounds the user namespaces alive in the
// sandbox: at 0 unshare(CLONE_NEWUSER) fails with ENOSPC, raised again it works;
// a process inside a user namespace of its own may not change it (EPERM).
// Sandbox-only: natively it would change the host's limit.
// e2e: mode=sandbox-only
// e2e: stdout=read: yes
// e2e: stdout=at 0: ENOSPC
// e2e: stdout=restored: OK
// e2e: stdout=write from inside: EPERM
// e2e: stdout=value kept: yes
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *F = "/proc/sys/user/max_user_namespaces";

static long get(void)
{
    char b[32] = {0};
    int fd = open(F, O_RDONLY);
    if (fd < 0 || read(fd, b, sizeof b - 1) <= 0)
        return -1;
    close(fd);
    return atol(b);
}

static int set(const char *v)
{
    int fd = open(F, O_WRONLY);
    if (fd < 0)
        return -1;
    int r = write(fd, v, strlen(v)) == (ssize_t)strlen(v) ? 0 : -1;
    int e = errno;
    close(fd);
    errno = e;
    return r;
}

static const char *en(int r)
{
    if (r == 0)
        return "OK";
    return errno == ENOSPC ? "ENOSPC" : errno == EPERM ? "EPERM" : errno == EACCES ? "EACCES" : "E?";
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    long old = get();
    printf("read: %s\n", old > 0 ? "yes" : "no");
    char v[32];
    snprintf(v, sizeof v, "%ld\n", old);
    set("0\n");
    pid_t pid = fork();
    if (pid == 0)
        _exit(unshare(CLONE_NEWUSER) == 0 ? 0 : errno);
    int st;
    waitpid(pid, &st, 0);
    errno = WEXITSTATUS(st);
    printf("at 0: %s\n", en(errno ? -1 : 0));
    set(v);
    pid = fork();
    if (pid == 0)
        _exit(unshare(CLONE_NEWUSER) == 0 ? 0 : errno);
    waitpid(pid, &st, 0);
    errno = WEXITSTATUS(st);
    printf("restored: %s\n", en(errno ? -1 : 0));
    pid = fork();
    if (pid == 0) {
        if (unshare(CLONE_NEWUSER) != 0)
            _exit(1);
        int fd = open("/proc/self/uid_map", O_WRONLY);
        write(fd, "0 0 1\n", 6);
        close(fd);
        printf("write from inside: %s\n", en(set("5\n")));
        _exit(0);
    }
    waitpid(pid, &st, 0);
    printf("value kept: %s\n", get() == old ? "yes" : "no");
    return 0;
}
