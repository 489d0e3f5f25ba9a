// /proc/PID/auxv holds the auxiliary vector getauxval(3) reads (AT_NULL pair
// included; AT_HWCAP aside, which glibc rewrites), and /proc/PID/mem is the process's memory at offsets equal to
// addresses: pread/pwrite and lseek+read at an address, a forced write into a
// read-only page of the caller's own program (Linux's FOLL_FORCE, as debuggers
// plant breakpoints), EIO at an unmapped address, a child's memory read by its
// parent, nothing left to read once the child is gone, and EACCES for a
// process of another user without CAP_SYS_PTRACE.
// e2e: stdout=auxv: pairs match getauxval: yes, ends with AT_NULL: yes, AT_ENTRY set: yes
// e2e: stdout=pread at &var: 1234
// e2e: stdout=pwrite at &var: 5678
// e2e: stdout=lseek+read: 5678
// e2e: stdout=forced write to read-only page: 8, value now 0x55
// e2e: stdout=unmapped: -1 EIO
// e2e: stdout=child's memory: 4242
// e2e: stdout=after the child is gone: 0
// e2e: stdout=other user's mem: -1 EACCES
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile long var = 1234;
static const volatile long ro_var = 0x11;

static const char *err(int e) {
    return e == EIO ? "EIO" : e == EACCES ? "EACCES" : e == EPERM ? "EPERM" : strerror(e);
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);

    /* auxv */
    unsigned long words[512];
    int fd = open("/proc/self/auxv", O_RDONLY);
    ssize_t n = fd < 0 ? -1 : read(fd, words, sizeof words);
    close(fd);
    int match = n > 0 && n % 16 == 0, null_end = 0, entry = 0;
    for (ssize_t i = 0; match && i < n / 8; i += 2) {
        if (words[i] == AT_NULL) {
            null_end = i == n / 8 - 2;
            break;
        }
        if (words[i] == AT_ENTRY)
            entry = words[i + 1] != 0;
        /* glibc replaces AT_HWCAP's value by its own x86-64 feature word. */
        if (words[i] != AT_HWCAP && words[i] != AT_HWCAP2 && getauxval(words[i]) != words[i + 1])
            match = 0;
    }
    printf("auxv: pairs match getauxval: %s, ends with AT_NULL: %s, AT_ENTRY set: %s\n",
           match ? "yes" : "no", null_end ? "yes" : "no", entry ? "yes" : "no");

    /* mem of this process */
    fd = open("/proc/self/mem", O_RDWR);
    if (fd < 0) {
        printf("open /proc/self/mem: %s\n", err(errno));
        return 1;
    }
    long v = 0;
    n = pread(fd, &v, sizeof v, (off_t)(uintptr_t)&var);
    printf("pread at &var: %ld\n", n == sizeof v ? v : -1L);
    v = 5678;
    n = pwrite(fd, &v, sizeof v, (off_t)(uintptr_t)&var);
    printf("pwrite at &var: %ld\n", n == sizeof v ? var : -1L);
    v = 0;
    if (lseek(fd, (off_t)(uintptr_t)&var, SEEK_SET) != (off_t)(uintptr_t)&var)
        printf("lseek failed\n");
    n = read(fd, &v, sizeof v);
    printf("lseek+read: %ld\n", n == sizeof v ? v : -1L);
    v = 0x55;
    n = pwrite(fd, &v, sizeof v, (off_t)(uintptr_t)&ro_var);
    printf("forced write to read-only page: %zd, value now %#lx\n", n, (long)ro_var);
    /* The page below the first mapping is never mapped. */
    void *hole = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    munmap(hole, 4096);
    n = pread(fd, &v, sizeof v, (off_t)(uintptr_t)hole);
    printf("unmapped: %zd %s\n", n, n < 0 ? err(errno) : "");

    /* a child's memory */
    int go[2], ready[2];
    if (pipe(go) != 0 || pipe(ready) != 0)
        return 1;
    pid_t c = fork();
    if (c == 0) {
        char b;
        var = 4242;
        if (write(ready[1], "r", 1) != 1 || read(go[0], &b, 1) < 0)
            _exit(1);
        _exit(0);
    }
    char b;
    if (read(ready[0], &b, 1) != 1)
        return 1;
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/mem", c);
    int cfd = open(path, O_RDONLY);
    v = 0;
    n = cfd < 0 ? -1 : pread(cfd, &v, sizeof v, (off_t)(uintptr_t)&var);
    printf("child's memory: %ld\n", n == sizeof v ? v : -1L);
    if (write(go[1], "g", 1) != 1)
        return 1;
    siginfo_t si;
    waitid(P_PID, c, &si, WEXITED | WNOWAIT);
    n = cfd < 0 ? -1 : pread(cfd, &v, sizeof v, (off_t)(uintptr_t)&var);
    printf("after the child is gone: %zd\n", n);
    waitpid(c, NULL, 0);
    close(cfd);

    /* another user's process, without CAP_SYS_PTRACE */
    c = fork();
    if (c == 0) {
        if (setresgid(65534, 65534, 65534) != 0 || setresuid(65534, 65534, 65534) != 0)
            _exit(1);
        if (write(ready[1], "r", 1) != 1 || read(go[0], &b, 1) < 0)
            _exit(1);
        _exit(0);
    }
    if (read(ready[0], &b, 1) != 1)
        return 1;
    pid_t d = fork();
    if (d == 0) {
        /* A third process as uid 1 (neither root nor the target's user). */
        if (setresgid(1, 1, 1) != 0 || setresuid(1, 1, 1) != 0)
            _exit(1);
        snprintf(path, sizeof path, "/proc/%d/mem", c);
        int xfd = open(path, O_RDONLY);
        printf("other user's mem: %d %s\n", xfd, xfd < 0 ? err(errno) : "");
        _exit(0);
    }
    waitpid(d, NULL, 0);
    if (write(go[1], "g", 1) != 1)
        return 1;
    waitpid(c, NULL, 0);
    return 0;
}
