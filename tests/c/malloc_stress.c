// Many allocation sizes (including > 128 KiB ones glibc serves with mmap),
// realloc that must preserve contents, and frees; prints a content checksum.
// e2e: stdout=errors=0
// e2e: stdout=checksum=4cdd4caf5087937b
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "e2e.h"

#define SLOTS 64

static unsigned long long seed = 42;
static unsigned rnd(void)
{
    seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
    return (unsigned)(seed >> 33);
}

static size_t pick_size(void)
{
    switch (rnd() % 4) {
    case 0: return 1 + rnd() % 64;
    case 1: return 64 + rnd() % 4096;
    case 2: return 4096 + rnd() % (64 * 1024);
    default: return 128 * 1024 + rnd() % (1024 * 1024);
    }
}

int main(void)
{
    unsigned char *p[SLOTS] = {0};
    size_t len[SLOTS] = {0};
    unsigned char tag[SLOTS] = {0};
    unsigned long long h = E2E_FNV_INIT;
    int errors = 0;

    for (int iter = 0; iter < 4000; iter++) {
        int i = rnd() % SLOTS;
        if (p[i] && len[i] && p[i][len[i] - 1] != tag[i])
            errors++;
        if (p[i] && rnd() % 3 == 0) {
            size_t nl = pick_size();
            size_t keep = nl < len[i] ? nl : len[i];
            unsigned char *q = realloc(p[i], nl);
            if (!q) { errors++; continue; }
            for (size_t k = 0; k < keep; k += 4093)
                if (q[k] != tag[i]) { errors++; break; }
            p[i] = q;
            memset(p[i], tag[i], nl);
            len[i] = nl;
        } else {
            if (p[i]) {
                h = e2e_fnv1a(h, p[i], len[i] < 256 ? len[i] : 256);
                free(p[i]);
            }
            len[i] = pick_size();
            tag[i] = (unsigned char)rnd();
            p[i] = malloc(len[i]);
            if (!p[i]) { errors++; len[i] = 0; continue; }
            memset(p[i], tag[i], len[i]);
        }
        h = e2e_fnv1a(h, &len[i], sizeof len[i]);
    }
    for (int i = 0; i < SLOTS; i++)
        free(p[i]);
    void *big = calloc(1, 8 << 20);
    if (!big || ((unsigned char *)big)[(8 << 20) - 1] != 0)
        errors++;
    free(big);
    printf("errors=%d\n", errors);
    printf("checksum=%016llx\n", h);
    return errors != 0;
}
