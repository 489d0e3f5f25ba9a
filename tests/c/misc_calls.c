// chroot (and `..` stopping at the new root), sethostname/setdomainname with uname,
// msync argument rules, readahead and sync_file_range checks.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>
#include "e2e.h"

#define show e2e_show
#define T E2E_T

int main(void)
{
    char dir[] = "/dev/shm/misc_XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    char sub[128], file[128];
    snprintf(sub, sizeof sub, "%s/jail", dir);
    snprintf(file, sizeof file, "%s/jail/inside", dir);
    mkdir(sub, 0755);
    int fd = open(file, O_CREAT | O_RDWR, 0644);
    write(fd, "in the jail\n", 12);
    T("chroot missing", chroot("/nonexistent/dir"));
    T("chroot a file", chroot(file));
    fflush(stdout);
    pid_t p = fork();
    if (p == 0) {
        T("chroot", chroot(sub));
        T("stat /inside", access("/inside", F_OK));
        T("chdir /", chdir("/"));
        T("stat ../../inside", access("../../inside", F_OK));
        T("stat /dev/shm gone", access("/dev/shm", F_OK));
        int in = open("/inside", O_RDONLY);
        char b[32] = {0};
        read(in, b, sizeof b - 1);
        printf("read: %s", b);
        if (setresuid(1000, 1000, 1000) == 0)
            T("chroot as uid 1000", chroot("/"));
        fflush(stdout);
        _exit(0);
    }
    waitpid(p, NULL, 0);

    /* UTS names. The test first moves into a UTS namespace of its own so the host's
     * names are never touched natively (nor the sandbox's first namespace's inside);
     * its result is not printed. */
    unshare(CLONE_NEWUTS);
    struct utsname u0, u1;
    uname(&u0);
    T("sethostname too long", sethostname("x", 65));
    T("sethostname", sethostname("rvisor-test-host", 16));
    T("setdomainname", setdomainname("example.test", 12));
    uname(&u1);
    printf("uname: %s %s\n", u1.nodename, u1.domainname);
    char hn[70];
    gethostname(hn, sizeof hn);
    printf("gethostname: %s\n", hn);
    sethostname(u0.nodename, strlen(u0.nodename));
    setdomainname(u0.domainname, strlen(u0.domainname));

    /* msync. */
    ftruncate(fd, 8192);
    char *m = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    T("msync sync", msync(m, 8192, MS_SYNC));
    T("msync async invalidate", msync(m, 4096, MS_ASYNC | MS_INVALIDATE));
    T("msync both", msync(m, 4096, MS_ASYNC | MS_SYNC));
    T("msync unaligned", msync(m + 1, 4096, MS_SYNC));
    T("msync bad flag", msync(m, 4096, 0x100));
    munmap(m + 4096, 4096);
    T("msync past the mapping", msync(m, 8192, MS_SYNC));
    T("msync zero length", msync(m, 0, MS_SYNC));
    munmap(m, 4096);

    /* readahead and sync_file_range. */
    T("readahead", readahead(fd, 0, 4096));
    T("readahead negative", readahead(fd, -1, 4096));
    int pp[2];
    pipe(pp);
    T("readahead pipe", readahead(pp[0], 0, 10));
    T("sync_file_range", sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE));
    T("sync_file_range bad flags", sync_file_range(fd, 0, 0, 8));
    T("sync_file_range negative", sync_file_range(fd, -1, 0, 0));
    T("sync_file_range pipe", sync_file_range(pp[1], 0, 0, 0));
    close(fd);
    unlink(file);
    rmdir(sub);
    rmdir(dir);
    return 0;
}
