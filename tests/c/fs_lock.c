// Advisory locks within one process: OFD and flock locks conflict between two
// open file descriptions; POSIX locks go when any fd of the file is closed.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

static void show(const char *what, long r)
{
    if (r < 0)
        printf("%s: %s\n", what, strerrorname_np(errno));
    else
        printf("%s: OK\n", what);
}
#define T(what, expr) do { errno = 0; show(what, (long)(expr)); } while (0)

static int lk(int fd, int cmd, short type, off_t start, off_t len)
{
    struct flock f = {.l_type = type, .l_whence = SEEK_SET, .l_start = start, .l_len = len};
    return fcntl(fd, cmd, &f);
}

static void getlk(int fd, int cmd, short type, off_t start, off_t len)
{
    struct flock f = {.l_type = type, .l_whence = SEEK_SET, .l_start = start, .l_len = len};
    if (fcntl(fd, cmd, &f) != 0) {
        printf("getlk: %s\n", strerrorname_np(errno));
        return;
    }
    if (f.l_type == F_UNLCK) {
        printf("getlk: unlocked\n");
        return;
    }
    printf("getlk: %s %ld+%ld pid %s\n", f.l_type == F_WRLCK ? "write" : "read", (long)f.l_start,
           (long)f.l_len, f.l_pid == getpid() ? "self" : f.l_pid == -1 ? "-1" : "other");
}

int main(void)
{
    char dir[] = "/dev/shm/fs_lock_XXXXXX";
    if (!mkdtemp(dir) || chdir(dir) != 0) {
        perror("setup");
        return 1;
    }
    int a = open("f", O_CREAT | O_RDWR, 0644);
    int b = open("f", O_RDWR);
    int r = open("f", O_RDONLY);
    T("ofd write a 0-100", lk(a, F_OFD_SETLK, F_WRLCK, 0, 100));
    T("ofd write b 50-60", lk(b, F_OFD_SETLK, F_WRLCK, 50, 10));
    T("ofd read b 100-", lk(b, F_OFD_SETLK, F_RDLCK, 100, 0));
    getlk(b, F_OFD_GETLK, F_WRLCK, 10, 1);
    getlk(b, F_OFD_GETLK, F_RDLCK, 200, 1);
    getlk(a, F_OFD_GETLK, F_RDLCK, 200, 1);
    T("ofd unlock a 0-60", lk(a, F_OFD_SETLK, F_UNLCK, 0, 60));
    T("ofd write b 0-60", lk(b, F_OFD_SETLK, F_WRLCK, 0, 60));
    getlk(b, F_OFD_GETLK, F_WRLCK, 0, 0);
    T("ofd nonzero pid", ({ struct flock f = {.l_type = F_RDLCK, .l_pid = 1}; fcntl(a, F_OFD_SETLK, &f); }));
    T("write lock on rdonly fd", lk(r, F_OFD_SETLK, F_WRLCK, 500, 1));
    T("bad type", lk(a, F_OFD_SETLK, 7, 0, 1));
    T("negative start", lk(a, F_OFD_SETLK, F_RDLCK, -5, 1));
    close(b);
    T("ofd write a after close b", lk(a, F_OFD_SETLK, F_WRLCK, 0, 0));
    close(a);
    /* POSIX locks: owned by the process; another description sees them. */
    a = open("f", O_RDWR);
    b = open("f", O_RDWR);
    T("posix write a 10-20", lk(a, F_SETLK, F_WRLCK, 10, 10));
    T("posix write b same range (same process)", lk(b, F_SETLK, F_WRLCK, 10, 10));
    getlk(r, F_OFD_GETLK, F_RDLCK, 15, 1);
    getlk(a, F_GETLK, F_WRLCK, 15, 1);
    T("ofd on r blocked by posix", lk(r, F_OFD_SETLK, F_RDLCK, 15, 1));
    close(b); /* releases the process's POSIX locks on f */
    getlk(r, F_OFD_GETLK, F_WRLCK, 0, 0);
    /* flock. */
    b = open("f", O_RDWR);
    T("flock a ex", flock(a, LOCK_EX));
    T("flock b ex nb", flock(b, LOCK_EX | LOCK_NB));
    T("flock b sh nb", flock(b, LOCK_SH | LOCK_NB));
    T("flock a convert sh", flock(a, LOCK_SH));
    T("flock b sh nb", flock(b, LOCK_SH | LOCK_NB));
    T("flock a ex nb", flock(a, LOCK_EX | LOCK_NB));
    T("flock b un", flock(b, LOCK_UN));
    T("flock a ex nb", flock(a, LOCK_EX | LOCK_NB));
    T("flock bad op", flock(a, 0));
    int dup_a = dup(a);
    close(a);
    T("flock b ex nb while dup holds", flock(b, LOCK_EX | LOCK_NB));
    close(dup_a);
    T("flock b ex nb after last close", flock(b, LOCK_EX | LOCK_NB));
    T("flock bad fd", flock(99, LOCK_SH));
    close(b);
    close(r);
    unlink("f");
    chdir("/");
    T("rmdir", rmdir(dir));
    return 0;
}
