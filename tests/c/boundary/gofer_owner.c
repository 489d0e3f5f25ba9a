// Run by tests/tests/escape.rs natively and inside the sandbox (--overlay=none, so the
// file is a host file behind the gofer): the owner fstat reports on an open file
// follows a fchown made through it. The sentry runs in a user namespace of its own,
// where a host fstat shows an unmapped owner as 65534; the owner must still be the
// one Linux reports.
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

static void show(const char *what, int fd) {
    struct stat st;
    if (fstat(fd, &st) < 0) {
        perror(what);
        return;
    }
    printf("%s: %u %u\n", what, (unsigned)st.st_uid, (unsigned)st.st_gid);
}

int main(int argc, char **argv) {
    if (argc != 2 || chdir(argv[1]) < 0) {
        perror("chdir");
        return 2;
    }
    int fd = open("owned", O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        perror("open");
        return 1;
    }
    show("new", fd);
    if (fchown(fd, 123, 456) < 0)
        perror("fchown");
    show("after fchown", fd);
    int ro = open("owned", O_RDONLY);
    show("opened again", ro);
    if (fchown(fd, 65533, 65534) < 0)
        perror("fchown");
    show("as the sentry's host id", fd);
    show("again, other fd", ro);
    unlink("owned");
    return 0;
}
