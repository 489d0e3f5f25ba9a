// Directories, links, rename and unlink semantics, attributes and bad input, on a
// fresh directory under /dev/shm (a tmpfs natively and in the sandbox).
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <unistd.h>

static void show(const char *what, long r)
{
    if (r < 0)
        printf("%s: %s\n", what, strerrorname_np(errno));
    else
        printf("%s: OK\n", what);
}
#define T(what, expr) do { errno = 0; show(what, (long)(expr)); } while (0)

static int cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void list(const char *d)
{
    DIR *dp = opendir(d);
    if (!dp) {
        printf("opendir %s: %s\n", d, strerrorname_np(errno));
        return;
    }
    char *names[64];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(dp)) && n < 64)
        names[n++] = strdup(e->d_name);
    closedir(dp);
    qsort(names, n, sizeof *names, cmp);
    printf("%s:", d);
    for (int i = 0; i < n; i++) {
        printf(" %s", names[i]);
        free(names[i]);
    }
    printf("\n");
}

static long nlink(const char *p)
{
    struct stat st;
    if (lstat(p, &st) != 0)
        return -1;
    return (long)st.st_nlink;
}

int main(void)
{
    char dir[] = "/dev/shm/fs_dir_XXXXXX";
    if (!mkdtemp(dir) || chdir(dir) != 0) {
        perror("setup");
        return 1;
    }
    umask(022);
    T("mkdir a", mkdir("a", 0755));
    T("mkdir a again", mkdir("a", 0755));
    T("mkdir a/b", mkdir("a/b", 0700));
    T("mkdir missing/x", mkdir("missing/x", 0755));
    printf("nlink . %ld a %ld\n", nlink("."), nlink("a"));
    close(open("a/f", O_CREAT | O_WRONLY, 0644));
    close(open("a/g", O_CREAT | O_WRONLY, 0644));
    T("mkfifo", mkfifo("a/p", 0600));
    struct stat st;
    lstat("a/p", &st);
    printf("fifo is fifo %d\n", S_ISFIFO(st.st_mode));
    T("mknod socket", mknod("a/s", S_IFSOCK | 0600, 0));
    T("mknod dir", mknod("a/x", S_IFDIR | 0600, 0));
    T("mknod bad type", mknod("a/x", 0170000 | 0600, 0));
    T("symlink", symlink("f", "a/l"));
    T("symlink exists", symlink("f", "a/l"));
    T("symlink empty target", symlink("", "a/e"));
    T("link", link("a/f", "a/h"));
    printf("nlink f %ld\n", nlink("a/f"));
    T("link dir", link("a/b", "a/bb"));
    T("link exists", link("a/f", "a/g"));
    list("a");
    /* Symlink loops. */
    symlink("loop1", "loop2");
    symlink("loop2", "loop1");
    T("open loop", open("loop1", O_RDONLY));
    T("stat loop", stat("loop1", &st));
    T("lstat loop", lstat("loop1", &st));
    symlink("self/x", "self");
    T("stat self/x", stat("self", &st));
    char buf[256];
    ssize_t n = readlink("a/l", buf, sizeof buf);
    printf("readlink %.*s\n", (int)n, buf);
    T("readlink file", readlink("a/f", buf, sizeof buf));
    /* Unlink and rmdir. */
    T("rmdir nonempty", rmdir("a"));
    T("rmdir file", rmdir("a/f"));
    T("unlink dir", unlink("a/b"));
    T("rmdir dot", rmdir("a/b/."));
    T("rmdir dotdot", rmdir("a/b/.."));
    T("unlink trailing slash", unlink("a/f/"));
    T("unlinkat bad flag", unlinkat(AT_FDCWD, "a/f", 0x1));
    int fd = open("a/h", O_RDWR);
    write(fd, "data", 4);
    T("unlink h", unlink("a/h"));
    T("unlink f", unlink("a/f"));
    fstat(fd, &st);
    printf("open after unlink nlink %ld size %ld\n", (long)st.st_nlink, (long)st.st_size);
    char d4[5] = {0};
    pread(fd, d4, 4, 0);
    printf("still reads %s\n", d4);
    close(fd);
    T("unlink gone", unlink("a/f"));
    T("rmdir b", rmdir("a/b"));
    printf("nlink a %ld\n", nlink("a"));
    /* Rename. */
    mkdir("r", 0755);
    mkdir("r/d1", 0755);
    mkdir("r/d1/sub", 0755);
    mkdir("r/full", 0755);
    close(open("r/full/x", O_CREAT | O_WRONLY, 0644));
    mkdir("r/empty", 0755);
    close(open("r/f1", O_CREAT | O_WRONLY, 0644));
    close(open("r/f2", O_CREAT | O_WRONLY, 0644));
    T("rename into own subdir", rename("r/d1", "r/d1/sub/x"));
    T("rename over nonempty", rename("r/d1", "r/full"));
    T("rename dir over file", rename("r/d1", "r/f1"));
    T("rename file over dir", rename("r/f1", "r/empty"));
    T("rename missing", rename("r/nope", "r/x"));
    T("rename dot", rename("r/.", "r/x"));
    T("rename file trailing slash", rename("r/f1", "r/f9/"));
    T("noreplace", renameat2(AT_FDCWD, "r/f1", AT_FDCWD, "r/f2", RENAME_NOREPLACE));
    T("exchange missing", renameat2(AT_FDCWD, "r/f1", AT_FDCWD, "r/f9", RENAME_EXCHANGE));
    T("exchange+noreplace", renameat2(AT_FDCWD, "r/f1", AT_FDCWD, "r/f2", RENAME_EXCHANGE | RENAME_NOREPLACE));
    T("exchange dir and file", renameat2(AT_FDCWD, "r/d1", AT_FDCWD, "r/f2", RENAME_EXCHANGE));
    lstat("r/d1", &st);
    printf("d1 now dir %d\n", S_ISDIR(st.st_mode));
    T("exchange back", renameat2(AT_FDCWD, "r/d1", AT_FDCWD, "r/f2", RENAME_EXCHANGE));
    fd = open("r/d1", O_RDONLY | O_DIRECTORY);
    T("rename dir over empty dir", rename("r/d1", "r/empty"));
    T("rename file over file", rename("r/f1", "r/f2"));
    T("rename same", rename("r/f2", "r/f2"));
    T("fstatat via moved fd", fstatat(fd, "sub", &st, 0));
    close(fd);
    T("rename across dirs", rename("r/f2", "r/empty/moved"));
    T("chdir moved", chdir("r/empty/sub"));
    char cwd[512];
    getcwd(cwd, sizeof cwd);
    printf("cwd tail %s\n", cwd + strlen(dir));
    T("rename cwd dotdot", rename("..", "../../renamed"));
    T("rename cwd parent", rename("../../empty", "../../renamed"));
    getcwd(cwd, sizeof cwd);
    printf("cwd tail %s\n", cwd + strlen(dir));
    chdir(dir);
    list("r");
    list("r/renamed");
    printf("nlink r %ld renamed %ld\n", nlink("r"), nlink("r/renamed"));
    /* Attributes. */
    close(open("t", O_CREAT | O_WRONLY, 0644));
    T("chmod", chmod("t", 04755));
    stat("t", &st);
    printf("mode %o\n", st.st_mode);
    T("chown", chown("t", 1000, 1000));
    stat("t", &st);
    printf("owner %d:%d mode %o (set-id cleared)\n", st.st_uid, st.st_gid, st.st_mode);
    T("lchown symlink", lchown("a/l", 7, 7));
    lstat("a/l", &st);
    printf("symlink owner %d:%d\n", st.st_uid, st.st_gid);
    T("fchmodat nofollow", syscall(SYS_fchmodat, AT_FDCWD, "t", 0644, AT_SYMLINK_NOFOLLOW));
    struct timespec ts[2] = {{1000000000, 5}, {1200000000, 7}};
    T("utimensat", utimensat(AT_FDCWD, "t", ts, 0));
    stat("t", &st);
    printf("times %ld.%ld %ld.%ld\n", (long)st.st_atim.tv_sec, st.st_atim.tv_nsec,
           (long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
    struct timespec bad[2] = {{0, 1000000000}, {0, 0}};
    T("utimensat bad nsec", utimensat(AT_FDCWD, "t", bad, 0));
    struct timespec omit[2] = {{0, UTIME_OMIT}, {0, UTIME_NOW}};
    T("utimensat omit/now", utimensat(AT_FDCWD, "t", omit, 0));
    stat("t", &st);
    printf("atime kept %d mtime moved %d\n", st.st_atim.tv_sec == 1000000000, st.st_mtim.tv_sec > 1200000000);
    T("utimensat bad flag", utimensat(AT_FDCWD, "t", NULL, 0x4));
    /* Truncate and allocate. */
    T("truncate", truncate("t", 5000));
    stat("t", &st);
    printf("size %ld\n", (long)st.st_size);
    T("truncate negative", truncate("t", -1));
    T("truncate dir", truncate("a", 0));
    fd = open("t", O_RDONLY);
    T("ftruncate rdonly", ftruncate(fd, 0));
    close(fd);
    fd = open("t", O_RDWR);
    T("ftruncate shrink", ftruncate(fd, 3));
    T("fallocate grow", fallocate(fd, 0, 0, 8192));
    fstat(fd, &st);
    printf("size %ld\n", (long)st.st_size);
    T("fallocate keep size", fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, 20000));
    fstat(fd, &st);
    printf("size %ld\n", (long)st.st_size);
    T("fallocate punch without keep", fallocate(fd, FALLOC_FL_PUNCH_HOLE, 0, 10));
    T("fallocate zero len", fallocate(fd, 0, 0, 0));
    T("fallocate negative", fallocate(fd, 0, -1, 10));
    T("fsync", fsync(fd));
    T("fdatasync", fdatasync(fd));
    T("syncfs", syncfs(fd));
    /* statx. */
    struct statx sx;
    T("statx", statx(AT_FDCWD, "t", 0, STATX_BASIC_STATS, &sx));
    printf("statx size %llu nlink %u mode %o\n", (unsigned long long)sx.stx_size, sx.stx_nlink, sx.stx_mode);
    T("statx reserved mask", statx(AT_FDCWD, "t", 0, 0x80000000u, &sx));
    T("statx bad flags", statx(AT_FDCWD, "t", 0x6000, STATX_BASIC_STATS, &sx));
    /* preadv2/pwritev2, copy_file_range and sendfile. */
    struct iovec iov = {.iov_base = "XY", .iov_len = 2};
    T("pwritev2", pwritev2(fd, &iov, 1, 0, 0));
    T("pwritev2 bad flag", pwritev2(fd, &iov, 1, 0, 1 << 30));
    T("pwritev2 append", pwritev2(fd, &iov, 1, 0, RWF_APPEND));
    fstat(fd, &st);
    printf("size %ld\n", (long)st.st_size);
    /* RWF_APPEND at the file position (-1) writes at the end and moves the position. */
    lseek(fd, 1, SEEK_SET);
    T("pwritev2 append at -1", pwritev2(fd, &iov, 1, -1, RWF_APPEND));
    printf("position after %ld\n", (long)lseek(fd, 0, SEEK_CUR));
    T("pwritev2 at -1", pwritev2(fd, &iov, 1, -1, 0));
    printf("position after %ld\n", (long)lseek(fd, 0, SEEK_CUR));
    fstat(fd, &st);
    printf("size %ld\n", (long)st.st_size);
    char rb[4] = {0};
    struct iovec riov = {.iov_base = rb, .iov_len = 2};
    T("preadv2", preadv2(fd, &riov, 1, 0, RWF_HIPRI));
    printf("preadv2 got %s\n", rb);
    int out = open("copy", O_CREAT | O_RDWR, 0644);
    loff_t in_off = 0;
    printf("copy_file_range %zd\n", copy_file_range(fd, &in_off, out, NULL, 100, 0));
    printf("in_off %ld\n", (long)in_off);
    T("copy_file_range flags", copy_file_range(fd, NULL, out, NULL, 10, 1));
    off_t so = 1;
    printf("sendfile %zd off %ld\n", sendfile(out, fd, &so, 4), (long)so);
    fstat(out, &st);
    printf("copy size %ld\n", (long)st.st_size);
    close(out);
    close(fd);
    /* close_range. */
    int a1 = open("t", O_RDONLY), a2 = open("t", O_RDONLY), a3 = open("t", O_RDONLY);
    T("close_range cloexec", syscall(SYS_close_range, a2, a3, 4));
    printf("cloexec %d\n", fcntl(a3, F_GETFD));
    T("close_range", syscall(SYS_close_range, a1, a3, 0));
    T("closed", fcntl(a2, F_GETFD));
    T("close_range bad", syscall(SYS_close_range, 5, 4, 0));
    /* The fd limit. */
    struct rlimit rl = {16, 16};
    setrlimit(RLIMIT_NOFILE, &rl);
    int opened = 0, last = 0;
    for (int i = 0; i < 32; i++) {
        int f = open("t", O_RDONLY);
        if (f < 0) {
            last = errno;
            break;
        }
        opened = f;
    }
    printf("highest fd %d then %s\n", opened, strerrorname_np(last));
    for (int i = 3; i <= opened; i++)
        close(i);
    /* Bad input. */
    T("mkdir bad pointer", mkdir((const char *)16, 0755));
    T("rename bad pointer", rename("t", (const char *)16));
    T("getdents bad fd", syscall(SYS_getdents64, 999, buf, sizeof buf));
    fd = open(".", O_RDONLY | O_DIRECTORY);
    T("getdents tiny buffer", syscall(SYS_getdents64, fd, buf, 4));
    T("getdents bad buffer", syscall(SYS_getdents64, fd, (void *)16, 4096));
    close(fd);
    /* Clean up everything. */
    const char *files[] = {"t", "copy", "a/g", "a/p", "a/s", "a/l", "loop1", "loop2", "self",
                           "r/renamed/moved", "r/full/x"};
    for (unsigned i = 0; i < sizeof files / sizeof *files; i++)
        if (unlink(files[i]) != 0)
            printf("unlink %s: %s\n", files[i], strerrorname_np(errno));
    const char *dirs[] = {"a", "r/renamed/sub", "r/renamed", "r/full", "r"};
    for (unsigned i = 0; i < sizeof dirs / sizeof *dirs; i++)
        if (rmdir(dirs[i]) != 0)
            printf("rmdir %s: %s\n", dirs[i], strerrorname_np(errno));
    list(".");
    chdir("/");
    T("rmdir top", rmdir(dir));
    return 0;
}
