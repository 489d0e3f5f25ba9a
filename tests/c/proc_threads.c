// 64 threads hammering a mutex and a condition variable, pthread_join, thread ids,
// and pthread_cancel of a thread blocked in a condition wait.
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static long counter;
static int turn;

static void *worker(void *arg) {
    long id = (long)arg;
    for (int i = 0; i < 200; i++) {
        pthread_mutex_lock(&mu);
        counter++;
        pthread_mutex_unlock(&mu);
    }
    pthread_mutex_lock(&mu);
    while (turn != id) pthread_cond_wait(&cv, &mu);
    turn++;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    return (void *)(id * 2);
}

static void *sleeper(void *arg) {
    (void)arg;
    pthread_mutex_lock(&mu);
    for (;;) pthread_cond_wait(&cv, &mu);
    return NULL;
}

static void unlock(void *m) { pthread_mutex_unlock(m); }
static void *sleeper2(void *arg) {
    (void)arg;
    pthread_mutex_lock(&mu);
    pthread_cleanup_push(unlock, &mu);
    for (;;) pthread_cond_wait(&cv, &mu);
    pthread_cleanup_pop(1);
    return NULL;
}

int main(void) {
    pthread_t t[64];
    for (long i = 0; i < 64; i++) pthread_create(&t[i], NULL, worker, (void *)i);
    long sum = 0;
    for (int i = 0; i < 64; i++) { void *r; pthread_join(t[i], &r); sum += (long)r; }
    printf("counter=%ld turn=%d sum=%ld\n", counter, turn, sum);
    (void)sleeper;
    pthread_t s;
    pthread_create(&s, NULL, sleeper2, NULL);
    usleep(20000);
    pthread_cancel(s);
    void *r;
    pthread_join(s, &r);
    printf("cancelled: %s\n", r == PTHREAD_CANCELED ? "yes" : "no");
    return 0;
}
