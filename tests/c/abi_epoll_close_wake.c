// An epoll waiter never keeps the files it watches open. A thread blocks in
// epoll_wait while a pipe's write end is in the interest set; another thread
// removes that write end (EPOLL_CTL_DEL) and closes it: the read end's hang-up
// must wake the waiter at once. Go's os/exec does exactly this with a child's
// output pipe, and `go build` stalled for 120 s when the blocked epoll_wait held
// the write end open itself (its hang-up then never came). The same with poll(2)
// on the epoll fd, and with the write end closed by an exiting child process.
// e2e: stdout=epoll_wait: woke EPOLLIN=0 EPOLLHUP=1
// e2e: stdout=poll on epoll: woke POLLIN=1
// e2e: stdout=child exit: woke EPOLLHUP=1
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int epfd;
static volatile int phase;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Waits for the write end's one EPOLLOUT edge, then blocks again with both ends
 * watched; returns what that second wait reports within 3 s (0: nothing). */
static void *epoll_waiter(void *arg) {
    struct epoll_event ev;
    (void)arg;
    if (epoll_wait(epfd, &ev, 1, 3000) != 1 || !(ev.events & EPOLLOUT))
        return (void *)(long)-1;
    phase = 1;
    int n = epoll_wait(epfd, &ev, 1, 3000);
    return (void *)(long)(n == 1 ? (long)ev.events : 0);
}

static void *poll_waiter(void *arg) {
    struct pollfd p = {.fd = epfd, .events = POLLIN};
    (void)arg;
    phase = 1;
    int n = poll(&p, 1, 3000);
    return (void *)(long)(n == 1 ? p.revents : 0);
}

/* The waiter thread is (almost certainly) asleep: give it time to get there. */
static void settle(void) {
    while (!phase)
        usleep(1000);
    usleep(100 * 1000);
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    int p[2];
    struct epoll_event ev = {0};
    pthread_t t;
    void *res;

    /* 1. Edge-triggered, as Go registers its pipes. */
    if (pipe(p) != 0 || (epfd = epoll_create1(0)) < 0)
        return 1;
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    ev.data.fd = p[0];
    epoll_ctl(epfd, EPOLL_CTL_ADD, p[0], &ev);
    ev.data.fd = p[1];
    epoll_ctl(epfd, EPOLL_CTL_ADD, p[1], &ev);
    phase = 0;
    pthread_create(&t, NULL, epoll_waiter, NULL);
    settle();
    double t0 = now();
    epoll_ctl(epfd, EPOLL_CTL_DEL, p[1], NULL);
    close(p[1]);
    pthread_join(t, &res);
    long e = (long)res;
    printf("epoll_wait: %s EPOLLIN=%d EPOLLHUP=%d\n", e > 0 && now() - t0 < 2 ? "woke" : "timed out",
           e > 0 && (e & EPOLLIN) != 0, e > 0 && (e & EPOLLHUP) != 0);
    close(p[0]);
    close(epfd);

    /* 2. poll(2) on an epoll fd whose pipe write end goes. */
    if (pipe(p) != 0 || (epfd = epoll_create1(0)) < 0)
        return 1;
    ev.events = EPOLLIN;
    ev.data.fd = p[0];
    epoll_ctl(epfd, EPOLL_CTL_ADD, p[0], &ev);
    ev.events = EPOLLOUT | EPOLLET;
    ev.data.fd = p[1];
    epoll_ctl(epfd, EPOLL_CTL_ADD, p[1], &ev);
    struct epoll_event drain[4];
    epoll_wait(epfd, drain, 4, 0); /* consumes the write end's edge */
    phase = 0;
    pthread_create(&t, NULL, poll_waiter, NULL);
    settle();
    t0 = now();
    epoll_ctl(epfd, EPOLL_CTL_DEL, p[1], NULL);
    close(p[1]);
    pthread_join(t, &res);
    e = (long)res;
    printf("poll on epoll: %s POLLIN=%d\n", e > 0 && now() - t0 < 2 ? "woke" : "timed out",
           e > 0 && (e & POLLIN) != 0);
    close(p[0]);
    close(epfd);

    /* 3. The write end's last holder is a child that exits, as with os/exec. */
    if (pipe(p) != 0 || (epfd = epoll_create1(0)) < 0)
        return 1;
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    ev.data.fd = p[0];
    epoll_ctl(epfd, EPOLL_CTL_ADD, p[0], &ev);
    ev.data.fd = p[1];
    epoll_ctl(epfd, EPOLL_CTL_ADD, p[1], &ev);
    int go[2];
    if (pipe(go) != 0)
        return 1;
    pid_t c = fork();
    if (c == 0) {
        char b;
        close(p[0]);
        close(go[1]);
        if (read(go[0], &b, 1) != 1)
            _exit(1);
        _exit(0);
    }
    close(go[0]);
    phase = 0;
    pthread_create(&t, NULL, epoll_waiter, NULL);
    settle();
    epoll_ctl(epfd, EPOLL_CTL_DEL, p[1], NULL);
    close(p[1]);
    t0 = now();
    if (write(go[1], "x", 1) != 1)
        return 1;
    pthread_join(t, &res);
    e = (long)res;
    printf("child exit: %s EPOLLHUP=%d\n", e > 0 && now() - t0 < 2 ? "woke" : "timed out",
           e > 0 && (e & EPOLLHUP) != 0);
    waitpid(c, NULL, 0);
    return 0;
}
