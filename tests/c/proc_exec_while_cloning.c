// exec while sibling threads keep making threads: exec ends every other thread and
// waits until it is the only one, so a thread a sibling creates in that moment must
// die too (Linux refuses it), or the exec waits forever. Twenty execs in a chain,
// each made while two threads spawn (up to 300 each) sleeping threads as fast as they
// can.
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define ROUNDS 20

// The new threads live until the exec ends them: one the exec missed would keep it
// waiting.
static void *leaf(void *arg) {
    for (;;)
        pause();
    return arg;
}

static void *spawner(void *arg) {
    (void)arg;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    for (int i = 0; i < 300; i++) {
        pthread_t t;
        pthread_create(&t, &attr, leaf, NULL);
    }
    for (;;)
        pause();
    return NULL;
}

int main(int argc, char **argv) {
    int round = argc > 1 ? atoi(argv[1]) : 0;
    if (round >= ROUNDS) {
        printf("%d execs made while threads were being created\n", round);
        return 0;
    }
    for (int i = 0; i < 2; i++) {
        pthread_t t;
        if (pthread_create(&t, NULL, spawner, NULL) != 0) {
            perror("pthread_create");
            return 1;
        }
    }
    struct timespec ts = {0, 5 * 1000 * 1000};
    nanosleep(&ts, NULL);
    char next[16];
    snprintf(next, sizeof next, "%d", round + 1);
    char *args[] = {argv[0], next, NULL};
    execv("/proc/self/exe", args);
    perror("execv");
    return 1;
}
