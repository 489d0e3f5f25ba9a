// SIGKILL ends a process in the middle of one long transfer, as Linux's copy loops
// check for a fatal signal between pages. A child repeats one 2 GiB transfer (cut to
// Linux's MAX_RW_COUNT): a pwrite64 of an untouched read-only mapping to a memfd, the
// same as a pwritev of two 1 GiB halves, a preadv from /dev/zero into 2 MiB of memory
// named 1024 times, a sendfile from /dev/zero to a memfd, or a copy_file_range between
// memfds; the parent kills it 150 ms in and times how long the child takes to be
// reaped. (Found by the fuzzer: a 2 GiB pwrite64 kept a killed worker alive for 20 s.)
// The same for one fallocate of a quarter of the machine's memory (at most 8 GiB) to a
// memfd and to a file in /tmp, which one host call would fill page by page for
// seconds (found by the fuzzer's 10^7-call run: a killed worker lived on in fallocate).
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MIB (1024 * 1024)
#define SEGMENTS 1024
#define GIB (1024L * MIB)

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int memfd(void) {
    return (int)syscall(SYS_memfd_create, "long", 0);
}

static void child(const char *what) {
    static struct iovec iov[SEGMENTS];
    char *buf = malloc(2 * MIB);
    if (!buf)
        _exit(2);
    memset(buf, 'x', 2 * MIB);
    for (int i = 0; i < SEGMENTS; i++) {
        iov[i].iov_base = buf;
        iov[i].iov_len = 2 * MIB;
    }
    int out = memfd();
    int zero = open("/dev/zero", O_RDONLY);
    if (out < 0 || zero < 0)
        _exit(2);
    char *big = mmap(NULL, 2 * GIB, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (big == MAP_FAILED)
        _exit(2);
    struct iovec halves[2] = {{big, GIB}, {big + GIB, GIB}};
    if (!strcmp(what, "pwrite64")) {
        for (;;)
            if (pwrite(out, big, 2 * GIB, 0) < 0)
                _exit(3);
    } else if (!strcmp(what, "pwritev")) {
        for (;;)
            if (pwritev(out, halves, 2, 0) < 0)
                _exit(3);
    } else if (!strcmp(what, "preadv")) {
        for (;;)
            if (preadv(zero, iov, SEGMENTS, 0) < 0)
                _exit(3);
    } else if (!strcmp(what, "sendfile")) {
        for (;;) {
            off_t off = 0;
            if (lseek(out, 0, SEEK_SET) < 0 || sendfile(out, zero, &off, 2 * GIB) < 0)
                _exit(3);
        }
    } else if (!strncmp(what, "fallocate", 9)) {
        long pages = sysconf(_SC_PHYS_PAGES), size = 8 * GIB;
        if (pages > 0 && pages / 4 * 4096 < size)
            size = pages / 4 * 4096;
        int f = what[9] ? open("/tmp/kill_long_fallocate", O_RDWR | O_CREAT | O_TRUNC, 0600)
                        : memfd();
        if (f < 0)
            _exit(2);
        unlink("/tmp/kill_long_fallocate");
        for (;;)
            if (fallocate(f, 0, 0, size) < 0 || ftruncate(f, 0) < 0)
                _exit(3);
    } else {
        int in = memfd();
        if (in < 0 || ftruncate(in, 2 * GIB) < 0)
            _exit(2);
        for (;;) {
            loff_t a = 0, b = 0;
            if (copy_file_range(in, &a, out, &b, 2 * GIB, 0) < 0)
                _exit(3);
        }
    }
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    const char *whats[] = {"pwrite64", "pwritev", "preadv", "sendfile", "copy_file_range",
                           "fallocate", "fallocate-tmp"};
    for (int i = 0; i < 7; i++) {
        pid_t p = fork();
        if (p < 0)
            return 1;
        if (p == 0)
            child(whats[i]);
        usleep(150 * 1000);
        double t0 = now();
        kill(p, SIGKILL);
        int st;
        if (waitpid(p, &st, 0) != p)
            return 1;
        double took = now() - t0;
        printf("%s: %s, reaped %s\n", whats[i],
               WIFSIGNALED(st) ? "killed" : "exited",
               took < 1.5 ? "within 1.5 s" : "late");
        if (took >= 1.5)
            fprintf(stderr, "%s: reaped after %.2f s\n", whats[i], took);
    }
    return 0;
}
