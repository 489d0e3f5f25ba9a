// nanosleep(10ms) sleeps at least 10ms (and not absurdly long).
// e2e: stdout=nanosleep: 0
// e2e: stdout=slept >= 10ms: yes
// e2e: stdout=slept < 2s: yes
#include <stdio.h>
#include <time.h>

static long long ns(struct timespec t) { return t.tv_sec * 1000000000LL + t.tv_nsec; }

int main(void)
{
    struct timespec a, b, req = {0, 10 * 1000 * 1000};
    clock_gettime(CLOCK_MONOTONIC, &a);
    int r = nanosleep(&req, NULL);
    clock_gettime(CLOCK_MONOTONIC, &b);
    long long d = ns(b) - ns(a);
    printf("nanosleep: %d\n", r);
    printf("slept >= 10ms: %s\n", d >= 10000000LL ? "yes" : "no");
    printf("slept < 2s: %s\n", d < 2000000000LL ? "yes" : "no");
    return 0;
}
