// Buffers in the top of the address space, where the systrap platform keeps its stub
// (code at 0x7ffffe000000, hand-off regions from 0x7ffffe010000): nothing is mapped
// there natively, so a system call given such a buffer fails with EFAULT, and the
// sandbox must answer the same instead of copying into (or out of) the stub's pages.
// (A read() into a region once overwrote a stub's hand-off words and hung a sandbox.)
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <sys/syscall.h>
#include <unistd.h>

static void show(const char *what, long r) {
    printf("%s: %s\n", what, r >= 0 ? "ok" : strerror(errno));
}

int main(void) {
    static const unsigned long addrs[] = {
        0x7ffffe000000UL, 0x7ffffe010000UL, 0x7ffffe020000UL, 0x7fffffffe000UL,
    };
    for (unsigned i = 0; i < sizeof(addrs) / sizeof(addrs[0]); i++) {
        void *p = (void *)addrs[i];
        int fds[2];
        if (pipe(fds) != 0)
            return 1;
        char msg[64];
        memset(msg, 'x', sizeof(msg));
        if (write(fds[1], msg, sizeof(msg)) != (ssize_t)sizeof(msg))
            return 1;
        printf("%#lx\n", addrs[i]);
        show("  read into", read(fds[0], p, 64));
        show("  write from", write(fds[1], p, 64));
        show("  clock_gettime into", syscall(SYS_clock_gettime, CLOCK_MONOTONIC, p));
        show("  getcwd into", getcwd(p, 64) ? 0 : -1);
        close(fds[0]);
        close(fds[1]);
    }
    return 0;
}
