// Waiting for signals ends when they come: a blocking signalfd read when another
// process or a timer sends the signal; sigtimedwait interrupted by a handled alarm
// (EINTR); sigwait for a blocked SIGALRM from alarm() (CPython's test_sigwait).
// e2e: case=signalfd
// e2e: arg=signalfd
// e2e: stdout=signalfd read from kill: 128 signo=10
// e2e: stdout=signalfd read from timer: 128 signo=14
// e2e: case=sigtimedwait
// e2e: arg=sigtimedwait
// e2e: stdout=sigtimedwait: -1 EINTR
// e2e: stdout=alarm handler ran: 1
// e2e: stdout=sigtimedwait empty set: -1 EINTR
// e2e: stdout=alarm handler ran: 2
// e2e: stdout=sigtimedwait timeout: -1 EAGAIN
// e2e: case=sigwait
// e2e: arg=sigwait
// e2e: stdout=sigwait: 0 sig=14
// e2e: stdout=sigwait thread: 0 sig=10
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void show(const char *what, long r) {
    if (r < 0)
        printf("%s: -1 %s\n", what, strerrorname_np(errno));
    else
        printf("%s: %ld\n", what, r);
}

static int signalfd_case(void) {
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGUSR1);
    sigaddset(&s, SIGALRM);
    sigprocmask(SIG_BLOCK, &s, NULL);
    int fd = signalfd(-1, &s, 0);
    pid_t me = getpid();
    pid_t c = fork();
    if (c == 0) {
        usleep(100000);
        kill(me, SIGUSR1);
        _exit(0);
    }
    struct signalfd_siginfo si;
    ssize_t n = read(fd, &si, sizeof si);
    printf("signalfd read from kill: %zd signo=%u\n", n, si.ssi_signo);
    waitpid(c, NULL, 0);
    struct itimerval it = {{0, 0}, {0, 100000}};
    setitimer(ITIMER_REAL, &it, NULL);
    n = read(fd, &si, sizeof si);
    printf("signalfd read from timer: %zd signo=%u\n", n, si.ssi_signo);
    return 0;
}

static volatile sig_atomic_t alarms;
static void on_alarm(int s) {
    (void)s;
    alarms++;
}

static int sigtimedwait_case(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sigaction(SIGALRM, &sa, NULL);
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGUSR1);
    sigprocmask(SIG_BLOCK, &s, NULL);
    struct itimerval it = {{0, 0}, {0, 100000}};
    setitimer(ITIMER_REAL, &it, NULL);
    struct timespec ts = {5, 0};
    show("sigtimedwait", sigtimedwait(&s, NULL, &ts));
    printf("alarm handler ran: %d\n", (int)alarms);
    sigset_t none;
    sigemptyset(&none);
    setitimer(ITIMER_REAL, &it, NULL);
    show("sigtimedwait empty set", sigtimedwait(&none, NULL, &ts));
    printf("alarm handler ran: %d\n", (int)alarms);
    struct timespec short_ts = {0, 50000000};
    show("sigtimedwait timeout", sigtimedwait(&s, NULL, &short_ts));
    return 0;
}

static pthread_t main_thread;
static void *send_usr1(void *arg) {
    (void)arg;
    usleep(100000);
    pthread_kill(main_thread, SIGUSR1);
    return NULL;
}

static int sigwait_case(void) {
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGALRM);
    sigprocmask(SIG_BLOCK, &s, NULL);
    alarm(1);
    int sig = 0;
    int r = sigwait(&s, &sig);
    printf("sigwait: %d sig=%d\n", r, sig);

    sigset_t u;
    sigemptyset(&u);
    sigaddset(&u, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &u, NULL);
    main_thread = pthread_self();
    pthread_t t;
    pthread_create(&t, NULL, send_usr1, NULL);
    r = sigwait(&u, &sig);
    printf("sigwait thread: %d sig=%d\n", r, sig);
    pthread_join(t, NULL);
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc < 2)
        return 2;
    if (!strcmp(argv[1], "signalfd"))
        return signalfd_case();
    if (!strcmp(argv[1], "sigtimedwait"))
        return sigtimedwait_case();
    if (!strcmp(argv[1], "sigwait"))
        return sigwait_case();
    return 2;
}
