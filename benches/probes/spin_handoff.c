// The cross-process half of a systrap system call: two processes pinned to two CPUs
// pass a turn back and forth through a word of shared memory, each spinning until it
// is its turn (as the stub and the sentry do while both spin). Prints ns per round
// trip (one request and one answer).
// bench: title=cross-process spin round trip (2 CPUs)
// bench: iters=1000000
#define _GNU_SOURCE
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void pin(int cpu)
{
    cpu_set_t s;
    CPU_ZERO(&s);
    CPU_SET(cpu, &s);
    sched_setaffinity(0, sizeof s, &s);
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 200000;
    _Atomic long *turn = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (turn == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    pid_t pid = fork();
    if (pid == 0) {
        pin(1);
        for (long i = 0; i < n; i++) {
            while (atomic_load_explicit(turn, memory_order_acquire) != 2 * i + 1)
                __builtin_ia32_pause();
            atomic_store_explicit(turn, 2 * i + 2, memory_order_release);
        }
        _exit(0);
    }
    pin(0);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long i = 0; i < n; i++) {
        atomic_store_explicit(turn, 2 * i + 1, memory_order_release);
        while (atomic_load_explicit(turn, memory_order_acquire) != 2 * i + 2)
            __builtin_ia32_pause();
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    waitpid(pid, NULL, 0);
    double ns = (t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec);
    printf("ns_per_op=%.1f\n", ns / n);
    return 0;
}
