// Small calls as Linux answers them: personality (query, set, inherited by fork),
// lseek on the memory devices (always 0), ftruncate on a sealed memfd (EPERM),
// msync on anonymous and file mappings (and its EINVAL/ENOMEM cases), membarrier
// (the rseq commands are left out of the comparison: rseq is not offered).
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static void show(const char *w, long r) {
    if (r < 0)
        printf("%s: -1 %s\n", w, strerrorname_np(errno));
    else
        printf("%s: %ld\n", w, r);
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    show("personality query", personality(0xffffffff));
    show("personality ADDR_NO_RANDOMIZE", personality(PER_LINUX | ADDR_NO_RANDOMIZE));
    show("personality query", personality(0xffffffff));
    pid_t c = fork();
    if (c == 0) {
        show("child personality query", personality(0xffffffff));
        _exit(0);
    }
    waitpid(c, NULL, 0);
    show("personality PER_LINUX", personality(PER_LINUX));
    show("personality query", personality(0xffffffff));

    const char *devs[] = {"/dev/null", "/dev/zero", "/dev/full", "/dev/urandom"};
    for (int i = 0; i < 4; i++) {
        int f = open(devs[i], O_RDWR);
        printf("%s lseek: set %ld, cur %ld, end %ld\n", devs[i], (long)lseek(f, 100, SEEK_SET),
               (long)lseek(f, 5, SEEK_CUR), (long)lseek(f, 0, SEEK_END));
        show("  bad whence", lseek(f, 0, 99));
        close(f);
    }

    int m = memfd_create("sealed", MFD_ALLOW_SEALING);
    ftruncate(m, 4096);
    show("seal shrink+grow", fcntl(m, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW));
    show("ftruncate shrink", ftruncate(m, 100));
    show("ftruncate grow", ftruncate(m, 8192));
    show("ftruncate same size", ftruncate(m, 4096));

    char *p = mmap(0, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    show("msync anon", msync(p, 8192, MS_SYNC));
    show("msync async", msync(p, 4096, MS_ASYNC));
    show("msync unaligned", msync(p + 1, 4096, MS_SYNC));
    show("msync sync|async", msync(p, 4096, MS_SYNC | MS_ASYNC));
    show("msync unmapped", msync((char *)0x100000000000, 4096, MS_SYNC));
    int tf = open("abi-msync", O_RDWR | O_CREAT | O_TRUNC, 0600);
    ftruncate(tf, 8192);
    char *q = mmap(0, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, tf, 0);
    q[0] = 'x';
    show("msync file", msync(q, 8192, MS_SYNC | MS_INVALIDATE));
    char b = 0;
    pread(tf, &b, 1, 0);
    printf("file sees write: %c\n", b);
    unlink("abi-msync");

    long q0 = syscall(SYS_membarrier, 0, 0, 0);
    printf("membarrier query (without rseq bits): %ld\n", q0 < 0 ? q0 : (q0 & ~0x180L));
    show("membarrier global", syscall(SYS_membarrier, 1, 0, 0));
    show("membarrier global expedited", syscall(SYS_membarrier, 2, 0, 0));
    show("membarrier private unregistered", syscall(SYS_membarrier, 8, 0, 0));
    show("membarrier register private", syscall(SYS_membarrier, 16, 0, 0));
    show("membarrier private", syscall(SYS_membarrier, 8, 0, 0));
    show("membarrier sync-core unregistered", syscall(SYS_membarrier, 32, 0, 0));
    show("membarrier get registrations", syscall(SYS_membarrier, 512, 0, 0));
    show("membarrier flags", syscall(SYS_membarrier, 1, 2, 0));
    show("membarrier two commands", syscall(SYS_membarrier, 3, 0, 0));
    c = fork();
    if (c == 0) {
        show("child private (registration inherited)", syscall(SYS_membarrier, 8, 0, 0));
        _exit(0);
    }
    waitpid(c, NULL, 0);
    return 0;
}
