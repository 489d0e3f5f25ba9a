// A read blocked on an empty pipe, interrupted by a signal: EINTR without
// SA_RESTART, transparently restarted with it (the read then completes when a child
// writes).
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile int hits;
static void h(int s) { (void)s; hits++; }

static void arm(int restart) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = h;
    sa.sa_flags = restart ? SA_RESTART : 0;
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval it = {.it_value = {0, 50000}};
    setitimer(ITIMER_REAL, &it, NULL);
}

int main(void) {
    int p[2];
    char c;
    pipe(p);
    arm(0);
    errno = 0;
    ssize_t r = read(p[0], &c, 1);
    printf("no SA_RESTART: r=%zd errno=%s hits=%d\n", r, errno == EINTR ? "EINTR" : strerror(errno), hits);
    pid_t k = fork();
    if (k == 0) { usleep(200000); write(p[1], "x", 1); _exit(0); }
    arm(1);
    r = read(p[0], &c, 1);
    printf("SA_RESTART: r=%zd c=%c hits=%d\n", r, c, hits);
    waitpid(k, NULL, 0);
    return 0;
}
