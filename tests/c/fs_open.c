// The open flag matrix on a fresh directory under /dev/shm (a tmpfs natively and in the sandbox).
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static void show(const char *what, long r)
{
    if (r < 0)
        printf("%s: %s\n", what, strerrorname_np(errno));
    else
        printf("%s: OK\n", what);
}
#define T(what, expr) do { errno = 0; long r_ = (long)(expr); show(what, r_); if (r_ > 2 && strncmp(what, "fd", 2) == 0) close((int)r_); } while (0)

static long o2(int dfd, const char *p, unsigned long long flags, unsigned long long mode,
               unsigned long long res)
{
    struct open_how h = {.flags = flags, .mode = mode, .resolve = res};
    return syscall(SYS_openat2, dfd, p, &h, sizeof h);
}

int main(void)
{
    char dir[] = "/dev/shm/fs_open_XXXXXX";
    if (!mkdtemp(dir) || chdir(dir) != 0) {
        perror("setup");
        return 1;
    }
    umask(022);
    T("fd create excl", open("f", O_CREAT | O_EXCL | O_WRONLY, 0777));
    struct stat st;
    stat("f", &st);
    printf("mode %o\n", st.st_mode);
    T("fd create excl again", open("f", O_CREAT | O_EXCL | O_WRONLY, 0644));
    T("fd create existing", open("f", O_CREAT | O_WRONLY, 0644));
    int fd = open("f", O_WRONLY);
    printf("write %zd\n", write(fd, "0123456789", 10));
    close(fd);
    fd = open("f", O_WRONLY | O_APPEND);
    lseek(fd, 0, SEEK_SET);
    printf("append %zd\n", write(fd, "ab", 2));
    close(fd);
    char buf[64] = {0};
    fd = open("f", O_RDONLY);
    printf("read %zd %.*s\n", read(fd, buf, sizeof buf), 12, buf);
    int n = -1;
    ioctl(fd, FIONREAD, &n);
    printf("fionread at end %d\n", n);
    lseek(fd, 4, SEEK_SET);
    ioctl(fd, FIONREAD, &n);
    printf("fionread at 4 %d\n", n);
    printf("seek data %ld hole %ld\n", (long)lseek(fd, 3, SEEK_DATA), (long)lseek(fd, 3, SEEK_HOLE));
    T("seek data past end", lseek(fd, 100, SEEK_DATA));
    T("write on rdonly", write(fd, "x", 1));
    close(fd);
    fd = open("f", O_RDWR | O_TRUNC);
    fstat(fd, &st);
    printf("after trunc size %ld\n", (long)st.st_size);
    close(fd);
    T("fd creat", creat("g", 0600));
    stat("g", &st);
    printf("creat mode %o\n", st.st_mode);
    mkdir("d", 0755);
    T("fd O_DIRECTORY on file", open("f", O_RDONLY | O_DIRECTORY));
    T("fd dir for write", open("d", O_WRONLY));
    T("fd O_CREAT dir", open("d", O_CREAT | O_RDONLY, 0644));
    T("fd O_CREAT trailing slash", open("new/", O_CREAT | O_RDONLY, 0644));
    T("fd O_CREAT|O_DIRECTORY", open("x", O_CREAT | O_DIRECTORY | O_RDONLY, 0644));
    T("fd dir rdonly", open("d", O_RDONLY | O_DIRECTORY));
    symlink("f", "l");
    symlink("nowhere", "dangling");
    T("fd O_NOFOLLOW symlink", open("l", O_RDONLY | O_NOFOLLOW));
    T("fd O_PATH|O_NOFOLLOW symlink", open("l", O_PATH | O_NOFOLLOW));
    T("fd through symlink", open("l", O_RDONLY));
    T("fd O_CREAT|O_EXCL on symlink", open("l", O_CREAT | O_EXCL | O_RDONLY, 0644));
    symlink("made_by_link", "dangle2");
    T("fd O_CREAT through dangling symlink", open("dangle2", O_CREAT | O_WRONLY, 0600));
    T("stat link target", stat("made_by_link", &st));
    T("fd O_CREAT|O_EXCL dangling", open("dangling", O_CREAT | O_EXCL | O_WRONLY, 0600));
    T("fd missing", open("nope", O_RDONLY));
    T("fd missing parent", open("nope/x", O_CREAT | O_RDONLY, 0644));
    T("fd file as dir", open("f/x", O_RDONLY));
    T("fd empty path", open("", O_RDONLY));
    T("fd bad pointer", open((const char *)8, O_RDONLY));
    char longname[300];
    memset(longname, 'a', 256);
    longname[256] = 0;
    T("fd name too long", open(longname, O_CREAT | O_RDONLY, 0644));
    static char longpath[5000];
    for (int i = 0; i < 4998; i += 2)
        memcpy(longpath + i, "./", 2);
    longpath[4998] = 'f';
    T("fd path too long", open(longpath, O_RDONLY));
    /* O_TMPFILE: unnamed until linked. */
    T("fd tmpfile rdonly", open(".", O_TMPFILE | O_RDONLY, 0600));
    fd = open(".", O_TMPFILE | O_RDWR, 0600);
    show("tmpfile", fd);
    printf("tmpfile write %zd\n", write(fd, "hidden", 6));
    fstat(fd, &st);
    printf("tmpfile nlink %ld size %ld\n", (long)st.st_nlink, (long)st.st_size);
    T("linkat tmpfile", linkat(fd, "", AT_FDCWD, "named", AT_EMPTY_PATH));
    close(fd);
    stat("named", &st);
    printf("named size %ld nlink %ld\n", (long)st.st_size, (long)st.st_nlink);
    /* openat2 resolution rules. */
    int dfd = open("d", O_RDONLY | O_DIRECTORY);
    close(open("d/in", O_CREAT | O_WRONLY, 0644));
    symlink("/in", "d/abs");
    symlink("../f", "d/up");
    T("fd openat2 plain", o2(dfd, "in", O_RDONLY, 0, 0));
    T("fd openat2 beneath ..", o2(dfd, "../f", O_RDONLY, 0, RESOLVE_BENEATH));
    T("fd openat2 beneath abs", o2(dfd, "/tmp", O_RDONLY, 0, RESOLVE_BENEATH));
    T("fd openat2 beneath symlink up", o2(dfd, "up", O_RDONLY, 0, RESOLVE_BENEATH));
    T("fd openat2 in_root abs symlink", o2(dfd, "abs", O_RDONLY, 0, RESOLVE_IN_ROOT));
    T("fd openat2 in_root ..", o2(dfd, "../../in", O_RDONLY, 0, RESOLVE_IN_ROOT));
    T("fd openat2 no_symlinks", o2(dfd, "up", O_RDONLY, 0, RESOLVE_NO_SYMLINKS));
    T("fd openat2 both", o2(dfd, "in", O_RDONLY, 0, RESOLVE_BENEATH | RESOLVE_IN_ROOT));
    T("fd openat2 mode without creat", o2(dfd, "in", O_RDONLY, 0644, 0));
    T("fd openat2 bad resolve", o2(dfd, "in", O_RDONLY, 0, 1ULL << 40));
    T("fd openat2 create", o2(dfd, "made", O_CREAT | O_WRONLY, 0640, RESOLVE_BENEATH));
    stat("d/made", &st);
    printf("made mode %o\n", st.st_mode);
    close(dfd);
    /* Clean up. */
    const char *names[] = {"f", "g", "l", "dangling", "named", "d/in", "d/abs", "d/up", "d/made", "dangle2", "made_by_link"};
    for (unsigned i = 0; i < sizeof names / sizeof *names; i++)
        if (unlink(names[i]) != 0)
            printf("unlink %s: %s\n", names[i], strerrorname_np(errno));
    T("rmdir d", rmdir("d"));
    chdir("/");
    T("rmdir top", rmdir(dir));
    return 0;
}
