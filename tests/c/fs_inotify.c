// inotify as Linux reports it, in the working directory (the memory overlay inside
// the sandbox) and in /dev/shm (tmpfs): the events of create, open, read, write,
// close, chmod, rename (with matching cookies), mkdir/rmdir, link, unlink (IN_ATTRIB,
// IN_DELETE_SELF, IN_IGNORED; deferred to the last close of an open file),
// coalescing of identical events, IN_ONESHOT, IN_MASK_ADD/IN_MASK_CREATE,
// IN_ONLYDIR, IN_DONT_FOLLOW, IN_EXCL_UNLINK, inotify_rm_watch, FIONREAD, poll,
// EINVAL for a short read buffer, and the queue overflow (IN_Q_OVERFLOW).
// ino-lower-a and ino-lower-b exist before the run (host files under the overlay in
// the sandbox); the program deletes them and makes them again at the end, so the
// sandbox run, which follows the native one in the same directory, finds them too.
// e2e: file=ino-lower-a:1
// e2e: file=ino-lower-b:1
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <sys/stat.h>
#include <unistd.h>

static void show(const char *w, long r) {
    if (r < 0)
        printf("%s: -1 %s\n", w, strerrorname_np(errno));
    else
        printf("%s: %ld\n", w, r);
}

static const char *names[] = {"ACCESS", "MODIFY", "ATTRIB", "CLOSE_WRITE", "CLOSE_NOWRITE",
                              "OPEN", "MOVED_FROM", "MOVED_TO", "CREATE", "DELETE",
                              "DELETE_SELF", "MOVE_SELF", "?", "UNMOUNT", "Q_OVERFLOW",
                              "IGNORED"};

static unsigned last_cookie;

// Reads and prints every queued event; cookies are shown as "same as the previous"
// since their values differ between kernels.
static void drain(int fd, const char *label) {
    char buf[8192] __attribute__((aligned(8)));
    printf("-- %s\n", label);
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0) {
            if (errno != EAGAIN)
                printf("read: %s\n", strerrorname_np(errno));
            return;
        }
        for (char *p = buf; p < buf + n;) {
            struct inotify_event *e = (struct inotify_event *)p;
            printf("wd=%d", e->wd);
            for (int b = 0; b < 16; b++)
                if (e->mask & (1u << b))
                    printf(" %s", names[b]);
            if (e->mask & IN_ISDIR)
                printf(" ISDIR");
            if (e->cookie) {
                printf(" cookie=%s", e->cookie == last_cookie ? "same" : "new");
                last_cookie = e->cookie;
            }
            if (e->len)
                printf(" name=%s (len %u)", e->name, e->len);
            printf("\n");
            p += sizeof *e + e->len;
        }
    }
}

static void suite(const char *base) {
    char d[256], f[256], g[256], h[256], sub[256], l[256];
    printf("== %s\n", base[0] ? base : "cwd");
    // Unique: the other variants of this test may run at once in the shared /dev/shm.
    snprintf(d, sizeof d, "%sino-dir-%d", base, (int)getpid());
    snprintf(f, sizeof f, "%s/f", d);
    snprintf(g, sizeof g, "%s/g", d);
    snprintf(h, sizeof h, "%s/h", d);
    snprintf(sub, sizeof sub, "%s/sub", d);
    snprintf(l, sizeof l, "%s/l", d);
    unlink(f), unlink(g), unlink(h), unlink(l), rmdir(sub), rmdir(d);
    mkdir(d, 0755);

    int in = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    printf("flags: nonblock=%d cloexec=%d\n", !!(fcntl(in, F_GETFL) & O_NONBLOCK),
           !!(fcntl(in, F_GETFD) & FD_CLOEXEC));
    char c;
    show("read empty", read(in, &c, 1));
    int wd = inotify_add_watch(in, d, IN_ALL_EVENTS);
    printf("dir watch: %d\n", wd);
    show("same inode again", inotify_add_watch(in, d, IN_ALL_EVENTS));
    show("IN_MASK_CREATE on existing", inotify_add_watch(in, d, IN_CREATE | IN_MASK_CREATE));
    show("MASK_ADD|MASK_CREATE", inotify_add_watch(in, d, IN_CREATE | IN_MASK_ADD | IN_MASK_CREATE));
    show("mask 0", inotify_add_watch(in, d, 0));
    show("not inotify fd", inotify_add_watch(1, d, IN_CREATE));
    show("bad fd", inotify_add_watch(999, d, IN_CREATE));
    show("missing path", inotify_add_watch(in, "ino-missing", IN_CREATE));
    struct pollfd pf = {in, POLLIN, 0};
    show("poll empty", poll(&pf, 1, 0));

    int fd = open(f, O_CREAT | O_WRONLY, 0644);
    write(fd, "abc", 3);
    write(fd, "def", 3);
    write(fd, "ghi", 3);
    close(fd);
    show("poll with events", poll(&pf, 1, 0));
    printf("revents: %#x\n", pf.revents);
    int q = -1;
    ioctl(in, FIONREAD, &q);
    printf("FIONREAD: %d\n", q);
    char small[sizeof(struct inotify_event) + 1];
    show("read short buffer", read(in, small, sizeof small));
    show("read zero", read(in, small, 0));
    drain(in, "create, 3 writes, close");

    fd = open(f, O_RDONLY);
    read(fd, &c, 1);
    read(fd, &c, 1);
    close(fd);
    chmod(f, 0600);
    truncate(f, 1);
    fd = open(f, O_WRONLY | O_TRUNC);
    close(fd);
    drain(in, "read, chmod, truncate, O_TRUNC");

    fd = open(d, O_RDONLY | O_DIRECTORY);
    char dbuf[1024];
    syscall(217, fd, dbuf, sizeof dbuf); // getdents64
    close(fd);
    drain(in, "list the directory");

    int wf = inotify_add_watch(in, f, IN_MODIFY | IN_MOVE_SELF | IN_ATTRIB | IN_DELETE_SELF);
    printf("file watch: %d\n", wf);
    show("IN_ONLYDIR on a file", inotify_add_watch(in, f, IN_MODIFY | IN_ONLYDIR));
    fd = open(f, O_WRONLY);
    write(fd, "x", 1);
    close(fd);
    rename(f, g);
    drain(in, "write and rename a watched file");

    mkdir(sub, 0755);
    rmdir(sub);
    link(g, h);
    symlink("g", l);
    drain(in, "mkdir, rmdir, link, symlink");
    show("IN_DONT_FOLLOW on symlink", inotify_add_watch(in, l, IN_ATTRIB | IN_DONT_FOLLOW) > 0);
    unlink(l);
    unlink(h);
    unlink(g);
    drain(in, "unlink symlink, one link, last link");

    // A file still open when unlinked is gone only at its last close.
    int w2 = inotify_add_watch(in, d, IN_MODIFY | IN_EXCL_UNLINK | IN_MASK_ADD);
    printf("MASK_ADD same wd: %d\n", w2 == wd);
    fd = open(f, O_CREAT | O_RDWR, 0644);
    int wf2 = inotify_add_watch(in, f, IN_ALL_EVENTS);
    printf("new file watch: %d\n", wf2);
    unlink(f);
    write(fd, "y", 1);
    close(fd);
    drain(in, "unlink while open, write, close");

    int wo = inotify_add_watch(in, d, IN_CREATE | IN_ONESHOT);
    printf("oneshot replaces dir watch: %d\n", wo == wd);
    close(open(f, O_CREAT | O_WRONLY, 0644));
    close(open(g, O_CREAT | O_WRONLY, 0644));
    drain(in, "oneshot");
    show("rm removed watch", inotify_rm_watch(in, wd));

    wd = inotify_add_watch(in, d, IN_DELETE);
    show("rm_watch", inotify_rm_watch(in, wd));
    show("rm_watch again", inotify_rm_watch(in, wd));
    show("rm_watch not inotify", inotify_rm_watch(1, wd));
    drain(in, "rm_watch");

    // Overflow: alternate writes and reads so that no two events merge.
    wd = inotify_add_watch(in, f, IN_MODIFY | IN_ACCESS);
    fd = open(f, O_RDWR);
    for (int i = 0; i < 8300; i++) {
        pwrite(fd, "z", 1, 0);
        pread(fd, &c, 1, 0);
    }
    close(fd);
    int total = 0, overflow = 0, last_wd = 0;
    char buf[65536] __attribute__((aligned(8)));
    for (;;) {
        ssize_t n = read(in, buf, sizeof buf);
        if (n <= 0)
            break;
        for (char *p = buf; p < buf + n;) {
            struct inotify_event *e = (struct inotify_event *)p;
            total++;
            if (e->mask & IN_Q_OVERFLOW)
                overflow++, last_wd = e->wd;
            p += sizeof *e + e->len;
        }
    }
    printf("overflow: %d events, %d overflow (wd %d)\n", total, overflow, last_wd);
    close(in);
    unlink(f), unlink(g), rmdir(d);
}

// Deleting files the overlay's lower layer holds: one closed, one still open.
static void lower(void) {
    printf("== lower files\n");
    int in = inotify_init1(IN_NONBLOCK);
    int wa = inotify_add_watch(in, "ino-lower-a", IN_ALL_EVENTS);
    int wb = inotify_add_watch(in, "ino-lower-b", IN_ALL_EVENTS);
    printf("watches: %d %d\n", wa, wb);
    int keep = open("ino-lower-b", O_RDONLY);
    unlink("ino-lower-a");
    unlink("ino-lower-b");
    drain(in, "unlink both");
    close(keep);
    drain(in, "close the open one");
    close(in);
    close(open("ino-lower-a", O_CREAT | O_WRONLY, 0644));
    close(open("ino-lower-b", O_CREAT | O_WRONLY, 0644));
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    lower();
    suite("");
    suite("/dev/shm/");
    show("init1 bad flags", inotify_init1(1));
    int in = inotify_init();
    show("init", in >= 0);
    int wd = inotify_add_watch(in, "/proc/self", IN_ALL_EVENTS);
    show("watch /proc/self", wd > 0);
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/self/fdinfo/%d", in);
    FILE *fi = fopen(path, "r");
    while (fi && fgets(line, sizeof line, fi))
        if (!strncmp(line, "inotify wd:", 11))
            printf("fdinfo has a watch line: yes\n");
    if (fi)
        fclose(fi);
    snprintf(path, sizeof path, "/proc/self/fd/%d", in);
    ssize_t n = readlink(path, line, sizeof line - 1);
    printf("fd link: %.*s\n", (int)(n > 0 ? n : 0), line);
    // O_TMPFILE: its events reach the directory under the name "#<inode>", also
    // after linkat gives it a real name.
    char td[64], named[96];
    snprintf(td, sizeof td, "/dev/shm/ino-tmpfile-%d", (int)getpid());
    snprintf(named, sizeof named, "%s/named", td);
    mkdir(td, 0755);
    int tin = inotify_init1(IN_NONBLOCK);
    inotify_add_watch(tin, td, IN_ALL_EVENTS);
    int tf = open(td, O_TMPFILE | O_RDWR, 0600);
    write(tf, "x", 1);
    show("linkat", linkat(tf, "", AT_FDCWD, named, AT_EMPTY_PATH));
    close(tf);
    char tbuf[1024] __attribute__((aligned(8)));
    ssize_t tn = read(tin, tbuf, sizeof tbuf);
    for (char *q = tbuf; tn > 0 && q < tbuf + tn;) {
        struct inotify_event *e = (struct inotify_event *)q;
        printf("tmpfile event %#x %s\n", e->mask,
               e->len ? (e->name[0] == '#' ? "#<inode>" : e->name) : "");
        q += sizeof *e + e->len;
    }
    close(tin);
    unlink(named);
    rmdir(td);

    // A blocking read and epoll wake when another process makes the change.
    char dir[64];
    snprintf(dir, sizeof dir, "/dev/shm/ino-block-%d", (int)getpid());
    mkdir(dir, 0755);
    int b = inotify_init1(0);
    inotify_add_watch(b, dir, IN_CREATE);
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN}, got;
    epoll_ctl(ep, EPOLL_CTL_ADD, b, &ev);
    show("epoll before", epoll_wait(ep, &got, 1, 0));
    pid_t c = fork();
    if (c == 0) {
        usleep(100000);
        char f[96];
        snprintf(f, sizeof f, "%s/late", dir);
        close(open(f, O_CREAT | O_WRONLY, 0644));
        _exit(0);
    }
    show("epoll wakes", epoll_wait(ep, &got, 1, 5000));
    char ebuf[256] __attribute__((aligned(8)));
    ssize_t r = read(b, ebuf, sizeof ebuf);
    printf("blocking read: %zd %s\n", r, r > 0 ? ((struct inotify_event *)ebuf)->name : "");
    waitpid(c, NULL, 0);
    c = fork();
    if (c == 0) {
        usleep(100000);
        char f[96];
        snprintf(f, sizeof f, "%s/later", dir);
        close(open(f, O_CREAT | O_WRONLY, 0644));
        _exit(0);
    }
    r = read(b, ebuf, sizeof ebuf);
    printf("blocking read waits: %zd %s\n", r, r > 0 ? ((struct inotify_event *)ebuf)->name : "");
    waitpid(c, NULL, 0);
    char f2[96];
    snprintf(f2, sizeof f2, "%s/late", dir), unlink(f2);
    snprintf(f2, sizeof f2, "%s/later", dir), unlink(f2);
    rmdir(dir);

    FILE *m = fopen("/proc/sys/fs/inotify/max_queued_events", "r");
    int v = 0;
    if (m && fscanf(m, "%d", &v) == 1)
        printf("max_queued_events: %d\n", v);
    return 0;
}
