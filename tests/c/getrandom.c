// getrandom fills the whole buffer with bytes that are not all zero and
// differ between two calls.
// e2e: stdout=getrandom(64): 64
// e2e: stdout=not all zero: yes
// e2e: stdout=two calls differ: yes
// e2e: stdout=GRND_NONBLOCK(16): 16
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

int main(void)
{
    unsigned char a[64] = {0}, b[64] = {0};
    ssize_t n = getrandom(a, sizeof a, 0);
    printf("getrandom(64): %zd\n", n);
    int nz = 0;
    for (size_t i = 0; i < sizeof a; i++)
        nz |= a[i];
    printf("not all zero: %s\n", nz ? "yes" : "no");
    getrandom(b, sizeof b, 0);
    printf("two calls differ: %s\n", memcmp(a, b, sizeof a) ? "yes" : "no");
    printf("GRND_NONBLOCK(16): %zd\n", getrandom(b, 16, GRND_NONBLOCK));
    return 0;
}
