// Extended attributes and inotify on the rootfs the gofer serves (tests/overlay.rs
// runs it with --overlay=memory and --overlay=none and checks the host files):
// /data/pre.txt carries user.old and user.keep set on the host.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/xattr.h>
#include <unistd.h>

static void show(const char *w, long r) {
    if (r < 0)
        printf("%s: %s\n", w, strerrorname_np(errno));
    else
        printf("%s: %ld\n", w, r);
}

static void value(const char *label, const char *path, const char *name) {
    char buf[64];
    ssize_t n = getxattr(path, name, buf, sizeof buf);
    if (n < 0)
        printf("%s: %s\n", label, strerrorname_np(errno));
    else
        printf("%s: %.*s\n", label, (int)n, buf);
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    value("pre user.keep", "/data/pre.txt", "user.keep");
    value("pre user.old", "/data/pre.txt", "user.old");
    char list[256];
    show("pre list bytes", listxattr("/data/pre.txt", list, sizeof list));
    show("pre remove user.old", removexattr("/data/pre.txt", "user.old"));
    value("pre user.old after remove", "/data/pre.txt", "user.old");
    value("pre user.keep after remove", "/data/pre.txt", "user.keep");

    int in = inotify_init1(IN_NONBLOCK);
    int wd = inotify_add_watch(in, "/data", IN_CREATE | IN_CLOSE_WRITE | IN_ATTRIB);
    int fd = open("/data/x.txt", O_CREAT | O_WRONLY, 0644);
    close(fd);
    show("x set user.a", setxattr("/data/x.txt", "user.a", "va", 2, 0));
    show("x set user.a CREATE", setxattr("/data/x.txt", "user.a", "vb", 2, XATTR_CREATE));
    value("x user.a", "/data/x.txt", "user.a");
    show("dir set user.d", setxattr("/data", "user.d", "vd", 2, 0));
    value("dir user.d", "/data", "user.d");
    char buf[1024] __attribute__((aligned(8)));
    ssize_t n = read(in, buf, sizeof buf);
    for (char *p = buf; n > 0 && p < buf + n;) {
        struct inotify_event *e = (struct inotify_event *)p;
        printf("event wd=%d mask=%#x name=%s\n", e->wd - wd + 1, e->mask, e->len ? e->name : "");
        p += sizeof *e + e->len;
    }
    return 0;
}
