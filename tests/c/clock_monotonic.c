// CLOCK_MONOTONIC never goes backwards; CLOCK_REALTIME is a plausible date.
// e2e: stdout=monotonic non-decreasing: yes
// e2e: stdout=monotonic advanced: yes
// e2e: stdout=realtime after 2020: yes
// e2e: stdout=clock_getres monotonic <= 1ms: yes
#include <stdio.h>
#include <time.h>

static long long ns(struct timespec t) { return t.tv_sec * 1000000000LL + t.tv_nsec; }

int main(void)
{
    struct timespec prev, cur;
    clock_gettime(CLOCK_MONOTONIC, &prev);
    long long first = ns(prev);
    int ok = 1;
    for (int i = 0; i < 2000; i++) {
        if (clock_gettime(CLOCK_MONOTONIC, &cur) != 0 || ns(cur) < ns(prev))
            ok = 0;
        prev = cur;
    }
    for (volatile long spin = 0; spin < 5000000; spin++)
        ;
    clock_gettime(CLOCK_MONOTONIC, &cur);
    printf("monotonic non-decreasing: %s\n", ok ? "yes" : "no");
    printf("monotonic advanced: %s\n", ns(cur) > first ? "yes" : "no");
    struct timespec rt;
    clock_gettime(CLOCK_REALTIME, &rt);
    printf("realtime after 2020: %s\n", rt.tv_sec > 1577836800 ? "yes" : "no");
    struct timespec res;
    int r = clock_getres(CLOCK_MONOTONIC, &res);
    printf("clock_getres monotonic <= 1ms: %s\n", r == 0 && ns(res) > 0 && ns(res) <= 1000000 ? "yes" : "no");
    return 0;
}
