// /proc/self/fd/N of a pipe end is a magic link, as on Linux: its text is
// pipe:[INO], and open(2) of it opens a new end of that same pipe, never
// waiting for a partner as a FIFO's open may (how `echo hi | cat /dev/stdin` reads the shell's pipe). Before, it was
// an ordinary symlink to that text and every open gave ENOENT.
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static int reopen(int fd, int flags)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    return open(path, flags);
}

static void say(const char *what, int r)
{
    if (r < 0)
        printf("%s: %s\n", what, strerror(errno));
    else
        printf("%s: ok\n", what);
}

int main(void)
{
    int p[2];
    if (pipe(p) != 0)
        return 1;
    char path[64], link[64] = {0};
    snprintf(path, sizeof path, "/proc/self/fd/%d", p[0]);
    ssize_t n = readlink(path, link, sizeof link - 1);
    printf("link is a pipe: %s\n", n > 6 && strncmp(link, "pipe:[", 6) == 0 ? "yes" : link);

    write(p[1], "hello", 5);
    int r = reopen(p[0], O_RDONLY);
    say("reopen read end", r);
    struct stat a, b;
    fstat(p[0], &a);
    fstat(r, &b);
    printf("same pipe: %s, fifo: %s\n", a.st_ino == b.st_ino && a.st_dev == b.st_dev ? "yes" : "no",
           S_ISFIFO(b.st_mode) ? "yes" : "no");
    char buf[16] = {0};
    printf("read through it: %zd [%s]\n", read(r, buf, sizeof buf - 1), buf);

    int w = reopen(p[1], O_WRONLY);
    say("reopen write end", w);
    write(w, "x", 1);
    memset(buf, 0, sizeof buf);
    printf("read the new end's write: %zd [%s]\n", read(p[0], buf, sizeof buf - 1), buf);

    // The reopened description is its own: O_NONBLOCK on it only.
    int nb = reopen(p[0], O_RDONLY | O_NONBLOCK);
    say("reopen non-blocking", nb);
    ssize_t got = read(nb, buf, 1);
    printf("empty non-blocking read: %zd (%s)\n", got, got < 0 ? strerror(errno) : "-");

    // A child writes through its own reopen of the parent's end.
    pid_t c = fork();
    if (c == 0) {
        int cw = reopen(p[1], O_WRONLY);
        write(cw, "child", 5);
        _exit(0);
    }
    waitpid(c, NULL, 0);
    memset(buf, 0, sizeof buf);
    printf("child's write: %zd [%s]\n", read(r, buf, sizeof buf - 1), buf);

    // Every writer gone: the reopened reader sees EOF.
    close(p[1]);
    close(w);
    printf("after writers closed: %zd\n", read(r, buf, sizeof buf));

    // No reader left: unlike a FIFO's, the open neither waits nor fails with
    // ENXIO (Linux leaves those rules out for pipes); writes then get EPIPE.
    int q[2];
    pipe(q);
    int qw = q[1];
    close(q[0]);
    say("write-only non-blocking open with no reader", reopen(qw, O_WRONLY | O_NONBLOCK));
    signal(SIGPIPE, SIG_IGN);
    int lone = reopen(qw, O_WRONLY);
    say("blocking write-only open with no reader", lone);
    say("write with no reader", (int)write(lone, "y", 1));
    // A read-write open is a reader itself.
    int rw = reopen(qw, O_RDWR);
    say("read-write open", rw);
    say("write with the read-write end open", (int)write(lone, "y", 1));

    // O_NOFOLLOW refuses the magic link as any symlink.
    say("O_NOFOLLOW", reopen(p[0], O_RDONLY | O_NOFOLLOW));
    return 0;
}
