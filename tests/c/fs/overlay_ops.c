/* Changes the root filesystem every way it can and prints what happened, then what
 * it sees afterwards. Used by tests/tests/overlay.rs: under --overlay=memory the
 * bundle's rootfs must be unchanged, under --overlay=none the changes must be in it.
 * Each line is "OP: OK" or "OP: <ERRNO>" so the harness knows which ops took effect. */
#include "../e2e.h"
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void result(const char *op, int r)
{
    printf("%s: %s\n", op, r < 0 ? e2e_errname(errno) : "OK");
}

static int write_file(const char *path, int flags, const char *data)
{
    int fd = open(path, flags, 0644);
    if (fd < 0)
        return -1;
    ssize_t n = write(fd, data, strlen(data));
    int e = errno;
    close(fd);
    errno = e;
    return n == (ssize_t)strlen(data) ? 0 : -1;
}

static void show(const char *path)
{
    char buf[256];
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        printf("content %s: %s\n", path, e2e_errname(errno));
        return;
    }
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    buf[n < 0 ? 0 : n] = 0;
    printf("content %s: %s\n", path, buf);
}

int main(void)
{
    result("edit", write_file("/data/edit.txt", O_RDWR, "EDITED"));
    result("trunc", write_file("/data/trunc.txt", O_WRONLY | O_TRUNC, "short"));
    result("create", write_file("/data/created.txt", O_WRONLY | O_CREAT | O_EXCL, "created"));
    result("unlink", unlink("/data/gone.txt"));
    result("rename", rename("/data/old.txt", "/data/new.txt"));
    result("mkdir", mkdir("/data/newdir", 0755));
    result("rmdir", rmdir("/data/emptydir"));
    result("chmod", chmod("/data/edit.txt", 0600));
    show("/data/edit.txt");
    show("/data/trunc.txt");
    show("/data/created.txt");
    show("/data/gone.txt");
    show("/data/new.txt");
    return 0;
}
