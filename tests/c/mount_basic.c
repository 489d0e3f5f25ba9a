// mount(2) and umount2(2) in a mount namespace of the test's own: tmpfs with
// options, proc, bind and rbind, read-only bind remounts, remounts with flags,
// propagation flags, MS_MOVE, and Linux's errors; /proc/self/mountinfo and
// /proc/self/mounts after each step.
// e2e: arg={dir}
#define _GNU_SOURCE
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "mount_common.h"

static char D[512];

static const char *p(const char *rel)
{
    static char buf[4][1024];
    static int i;
    i = (i + 1) % 4;
    snprintf(buf[i], sizeof buf[i], "%s/%s", D, rel);
    return buf[i];
}

static void show_mounts(void)
{
    printf("-- mounts\n");
    FILE *f = fopen("/proc/self/mounts", "r");
    char line[4096];
    size_t blen = strlen(D);
    while (f && fgets(line, sizeof line, f)) {
        char src[1024], mp[1024], rest[2048];
        if (sscanf(line, "%1023s %1023s %2047[^\n]", src, mp, rest) != 3)
            continue;
        if (strncmp(mp, D, blen) != 0 || (mp[blen] && mp[blen] != '/'))
            continue;
        printf("%s %s %s\n", src, mp[blen] ? mp + blen : "/", rest);
    }
    if (f)
        fclose(f);
}

static int write_file(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        return -1;
    int r = write(fd, "x", 1) == 1 ? 0 : -1;
    close(fd);
    return r;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    snprintf(D, sizeof D, "%s/mnt", argv[1]);
    setvbuf(stdout, NULL, _IONBF, 0);
    mc_private_ns();
    mkdir(D, 0755);

    // New tmpfs with options.
    CHECK("tmpfs", mount("tsrc", D, "tmpfs", 0, "size=1m,mode=755,uid=5,gid=7"));
    struct stat st;
    stat(D, &st);
    printf("root mode %o uid %d gid %d\n", st.st_mode & 07777, (int)st.st_uid, (int)st.st_gid);
    mc_show("tmpfs", D);
    CHECK("bad tmpfs option", mount("t", D, "tmpfs", 0, "nosuchoption=1"));
    CHECK("unknown type", mount("x", D, "nosuchfs", 0, NULL));
    CHECK("no type", mount("x", D, NULL, 0, NULL));
    CHECK("missing target", mount("t", p("nothere"), "tmpfs", 0, NULL));
    mkdir(p("a"), 0755);
    mkdir(p("b"), 0755);
    mkdir(p("c"), 0755);
    write_file(p("file"));
    CHECK("target below a file", mount("t", p("file/x"), "tmpfs", 0, NULL));
    CHECK("dir fs on a file", mount("t", p("file"), "tmpfs", 0, NULL));

    // Bind mounts and a read-only bind remount.
    CHECK("bind a on b", mount(p("a"), p("b"), NULL, MS_BIND, NULL));
    CHECK("bind without source", mount(NULL, p("b"), NULL, MS_BIND, NULL));
    CHECK("bind missing source", mount(p("nothere"), p("b"), NULL, MS_BIND, NULL));
    CHECK("write via a", write_file(p("a/f1")));
    CHECK("seen via b", stat(p("b/f1"), &st));
    CHECK("remount b ro", mount(NULL, p("b"), NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL));
    CHECK("write via ro b", write_file(p("b/f2")));
    CHECK("write via a still", write_file(p("a/f3")));
    CHECK("unlink via a", unlink(p("a/f1")));
    CHECK("gone via b", stat(p("b/f1"), &st));
    CHECK("remount non-mount", mount(NULL, p("a"), NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL));
    mc_show("bind", D);

    // proc, then a remount with flags.
    CHECK("proc", mount("proc", p("c"), "proc", 0, NULL));
    CHECK("proc self", stat(p("c/self/status"), &st));
    CHECK("remount proc nosuid,nodev,noexec",
          mount(NULL, p("c"), NULL, MS_REMOUNT | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL));
    CHECK("remount tmpfs ro", mount(NULL, D, NULL, MS_REMOUNT | MS_RDONLY, NULL));
    CHECK("write on ro tmpfs", write_file(p("f4")));
    CHECK("remount tmpfs rw", mount(NULL, D, NULL, MS_REMOUNT, NULL));
    CHECK("write on rw tmpfs", write_file(p("f4")));
    mc_show("proc and remounts", D);
    show_mounts();

    // Propagation.
    CHECK("make shared", mount(NULL, D, NULL, MS_SHARED, NULL));
    CHECK("make shared non-mount", mount(NULL, p("a"), NULL, MS_SHARED, NULL));
    CHECK("two kinds", mount(NULL, D, NULL, MS_SHARED | MS_PRIVATE, NULL));
    CHECK("kind with other flag", mount(NULL, D, NULL, MS_SHARED | MS_RDONLY, NULL));
    mc_show("shared", D);
    CHECK("make slave", mount(NULL, D, NULL, MS_SLAVE, NULL));
    mc_show("slave", D);
    CHECK("make rprivate", mount(NULL, D, NULL, MS_PRIVATE | MS_REC, NULL));
    CHECK("make b unbindable", mount(NULL, p("b"), NULL, MS_UNBINDABLE, NULL));
    CHECK("bind unbindable", mount(p("b"), p("c"), NULL, MS_BIND, NULL));
    mc_show("unbindable", D);
    CHECK("make b private", mount(NULL, p("b"), NULL, MS_PRIVATE, NULL));

    // MS_MOVE.
    mkdir(p("m1"), 0755);
    mkdir(p("m2"), 0755);
    CHECK("tmpfs m1", mount("mv", p("m1"), "tmpfs", 0, NULL));
    CHECK("file in m1", write_file(p("m1/x")));
    CHECK("move m1 to m2", mount(p("m1"), p("m2"), NULL, MS_MOVE, NULL));
    CHECK("x at m2", stat(p("m2/x"), &st));
    CHECK("x not at m1", stat(p("m1/x"), &st));
    CHECK("move non-mount", mount(p("a"), p("m1"), NULL, MS_MOVE, NULL));
    mkdir(p("m2/sub"), 0755);
    CHECK("move into itself", mount(p("m2"), p("m2/sub"), NULL, MS_MOVE, NULL));
    mc_show("move", D);

    // Recursive and plain binds of a tree with a mount inside.
    mkdir(p("r"), 0755);
    mkdir(p("r/inner"), 0755);
    mkdir(p("rb"), 0755);
    mkdir(p("nb"), 0755);
    CHECK("tmpfs r/inner", mount("in", p("r/inner"), "tmpfs", 0, NULL));
    write_file(p("r/inner/y"));
    CHECK("rbind", mount(p("r"), p("rb"), NULL, MS_BIND | MS_REC, NULL));
    CHECK("bind", mount(p("r"), p("nb"), NULL, MS_BIND, NULL));
    CHECK("y via rbind", stat(p("rb/inner/y"), &st));
    CHECK("y via bind", stat(p("nb/inner/y"), &st));
    mc_show("rbind", D);
    mkdir(p("r/self"), 0755);
    CHECK("rbind into itself", mount(p("r"), p("r/self"), NULL, MS_BIND | MS_REC, NULL));
    CHECK("y via self", stat(p("r/self/inner/y"), &st));
    CHECK("no second level", stat(p("r/self/self/inner/y"), &st));
    mc_show("rbind into itself", D);
    CHECK("detach self", umount2(p("r/self"), MNT_DETACH));

    // umount2.
    CHECK("umount non-mount", umount2(p("a"), 0));
    CHECK("umount bad flags", umount2(p("m2"), 0x100));
    CHECK("umount expire+detach", umount2(p("m2"), MNT_EXPIRE | MNT_DETACH));
    CHECK("umount missing", umount2(p("nothere"), 0));
    int fd = open(p("m2/x"), O_RDONLY);
    CHECK("umount busy", umount2(p("m2"), 0));
    close(fd);
    CHECK("umount no longer busy", umount2(p("m2"), 0));
    CHECK("x gone", stat(p("m2/x"), &st));
    fd = open(p("rb/inner/y"), O_RDONLY);
    CHECK("umount rbind with submount", umount2(p("rb"), 0));
    CHECK("detach rbind inner", umount2(p("rb/inner"), MNT_DETACH));
    char c;
    CHECK("read after detach", read(fd, &c, 1));
    close(fd);
    CHECK("umount rb", umount2(p("rb"), 0));
    symlink(p("c"), p("link"));
    CHECK("umount nofollow symlink", umount2(p("link"), UMOUNT_NOFOLLOW));
    CHECK("umount force via symlink", umount2(p("link"), MNT_FORCE));
    mc_show("after umount", D);

    // Without CAP_SYS_ADMIN.
    pid_t pid = fork();
    if (pid == 0) {
        if (setresuid(1000, 1000, 1000) != 0)
            _exit(3);
        CHECK("unprivileged mount", mount("t", p("c"), "tmpfs", 0, NULL));
        CHECK("unprivileged umount", umount2(p("b"), 0));
        CHECK("unprivileged umount missing", umount2(p("nothere"), 0));
        CHECK("unprivileged pivot_root", syscall(155, p("m1"), p("m1")));
        CHECK("unprivileged unshare", unshare(CLONE_NEWNS));
        _exit(0);
    }
    int status;
    waitpid(pid, &status, 0);
    printf("child status %d\n", WEXITSTATUS(status));
    CHECK("umount tmpfs busy with submounts", umount2(D, 0));
    CHECK("detach tmpfs", umount2(D, MNT_DETACH));
    mc_show("end", D);
    return 0;
}
