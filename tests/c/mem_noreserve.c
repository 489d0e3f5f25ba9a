// MAP_NORESERVE: a sparse reservation far larger than memory, as AddressSanitizer
// makes for its shadow (14 TiB read-write) and garbage collectors for their heaps.
// Linux skips the commit accounting for it, so it succeeds whatever the machine's
// memory; the same mapping without the flag is refused (ENOMEM) under the default
// heuristic overcommit. The sandbox once mapped every anonymous region without the
// flag on the host, so every ASan-built program died at start-up.
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "e2e.h"

#define TIB (1UL << 40)

static const char *res(void *p) { return p == MAP_FAILED ? e2e_errname(errno) : "OK"; }

int main(void) {
    // ASan's shadow: 14 TiB, fixed, read-write, private.
    void *want = (void *)0x2008fff7000UL;
    unsigned long len = 14 * TIB;
    char *p = mmap(want, len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0);
    printf("14 TiB rw noreserve fixed: %s at hint %d\n", res(p), p == want);
    if (p == MAP_FAILED)
        return 1;
    // Pages far apart are usable; DONTNEED gives zeros back and keeps the mapping.
    for (unsigned long off = 0; off < len; off += TIB)
        p[off] = (char)(off / TIB + 1);
    int sum = 0;
    for (unsigned long off = 0; off < len; off += TIB)
        sum += p[off];
    printf("touched: %d\n", sum);
    printf("dontneed: %d\n", madvise(p, 2 * TIB, MADV_DONTNEED));
    printf("after dontneed: %d %d\n", p[0], p[2 * TIB]);
    p[TIB / 2] = 7;
    printf("written again: %d\n", p[TIB / 2]);
    // PROT_NONE and back: a writable NORESERVE range is never charged.
    printf("mprotect none: %d\n", mprotect(p + TIB, 4 * TIB, PROT_NONE));
    printf("mprotect rw: %d\n", mprotect(p + TIB, 4 * TIB, PROT_READ | PROT_WRITE));
    p[3 * TIB] = 9;
    printf("after mprotect: %d\n", p[3 * TIB]);
    printf("munmap: %d\n", munmap(p, len));

    // A PROT_NONE reservation made writable piece by piece (a GC heap, ASan's
    // allocator region).
    char *r = mmap(NULL, 8 * TIB, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    printf("8 TiB none noreserve: %s\n", res(r));
    if (r != MAP_FAILED) {
        printf("rw piece: %d\n", mprotect(r + TIB, 2 * TIB, PROT_READ | PROT_WRITE));
        r[TIB] = 1;
        r[3 * TIB - 1] = 2;
        printf("piece: %d %d\n", r[TIB], r[3 * TIB - 1]);
        // Growing it in place by another 2 TiB (into the part given back) keeps the flag.
        printf("give back the rest: %d\n", munmap(r + 3 * TIB, 5 * TIB));
        char *g = mremap(r + TIB, 2 * TIB, 4 * TIB, 0);
        printf("mremap grow in place: %s %d\n", res(g), g == r + TIB);
        if (g != MAP_FAILED) {
            g[4 * TIB - 1] = 3;
            printf("grown: %d\n", g[4 * TIB - 1]);
        }
        munmap(r, 5 * TIB);
    }

    // Shared anonymous memory with the flag, shared with a child.
    char *s = mmap(NULL, TIB, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
    printf("1 TiB shared noreserve: %s\n", res(s));
    if (s != MAP_FAILED) {
        pid_t c = fork();
        if (c == 0) {
            s[TIB - 1] = 42;
            _exit(0);
        }
        int st;
        waitpid(c, &st, 0);
        printf("from child: %d\n", s[TIB - 1]);
        munmap(s, TIB);
    }

    // Without the flag the host's commit accounting applies, as natively: under
    // heuristic overcommit (the default) a private writable mapping larger than
    // memory and swap is refused; PROT_NONE is never charged.
    char *q = mmap(NULL, 14 * TIB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    printf("14 TiB rw without noreserve: %s\n", res(q));
    if (q != MAP_FAILED)
        munmap(q, 14 * TIB);
    q = mmap(NULL, 14 * TIB, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    printf("14 TiB none without noreserve: %s\n", res(q));
    if (q != MAP_FAILED) {
        printf("make 8 TiB of it rw: %s\n",
               mprotect(q, 8 * TIB, PROT_READ | PROT_WRITE) == 0 ? "OK" : e2e_errname(errno));
        munmap(q, 14 * TIB);
    }
    return 0;
}
