// The FP/SSE state survives a signal handler that clobbers it (the frame saves it).
#include <signal.h>
#include <stdio.h>

static volatile double sink;
static void h(int s) {
    (void)s;
    volatile double a = 1e300, b = 3.14159;
    for (int i = 0; i < 100; i++) sink = a * b / (i + 1);
}
int main(void) {
    signal(SIGUSR1, h);
    double x = 1.5;
    for (int i = 0; i < 10; i++) {
        x = x * 1.25 + 0.5;
        raise(SIGUSR1);
    }
    printf("x=%.6f\n", x);
    return 0;
}
