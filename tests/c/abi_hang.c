// Blocking calls that Linux ends at once (each once hung the sandbox): FUTEX_WAKE
// with a count of 0 wakes one waiter; a pipe write cut short by the reader's close
// returns its partial count and raises SIGPIPE; waitid without WEXITED does not wait
// for a child that can only exit; waitid on a non-blocking pidfd gives EAGAIN.
// e2e: case=futex0
// e2e: arg=futex0
// e2e: stdout=wake 0, no waiter: 0
// e2e: stdout=private wake 0 woke: 1
// e2e: stdout=shared wake 0 woke: 1
// e2e: stdout=shared waiter: 0
// e2e: case=pipe_partial
// e2e: arg=pipe_partial
// e2e: stdout=write returned part: yes
// e2e: stdout=SIGPIPE raised: 1
// e2e: stdout=next write: -1 EPIPE
// e2e: case=waitid
// e2e: arg=waitid
// e2e: stdout=waitid no event flag: -1 EINVAL
// e2e: stdout=waitid WNOHANG only: -1 EINVAL
// e2e: stdout=waitid WSTOPPED, zombie child: -1 ECHILD
// e2e: stdout=waitid WEXITED: 0 code=1 status=7
// e2e: case=pidfd
// e2e: arg=pidfd
// e2e: stdout=nonblocking pidfd, running: -1 EAGAIN
// e2e: stdout=nonblocking pidfd WNOHANG, running: 0 pid=0
// e2e: stdout=blocking pidfd WNOHANG, running: 0 pid=0
// e2e: stdout=nonblocking pidfd, exited: 0 status=3
#define _GNU_SOURCE
#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void show(const char *what, long r) {
    if (r < 0)
        printf("%s: -1 %s\n", what, strerrorname_np(errno));
    else
        printf("%s: %ld\n", what, r);
}

static long futex(unsigned *addr, int op, unsigned val) {
    return syscall(SYS_futex, addr, op, val, NULL, NULL, 0);
}

static unsigned pword;

static void *private_waiter(void *arg) {
    (void)arg;
    while (__atomic_load_n(&pword, __ATOMIC_SEQ_CST) == 0)
        futex(&pword, FUTEX_WAIT_PRIVATE, 0);
    return NULL;
}

/* Wakes with a count of 0 until one waiter is woken (at most 3 s). */
static long wake0_until_woken(unsigned *word, int op) {
    for (int i = 0; i < 3000; i++) {
        long n = futex(word, op, 0);
        if (n != 0)
            return n;
        usleep(1000);
    }
    return 0;
}

static int futex0(void) {
    unsigned lone = 0;
    show("wake 0, no waiter", futex(&lone, FUTEX_WAKE_PRIVATE, 0));

    pthread_t t;
    pthread_create(&t, NULL, private_waiter, NULL);
    long n = wake0_until_woken(&pword, FUTEX_WAKE_PRIVATE);
    printf("private wake 0 woke: %ld\n", n);
    __atomic_store_n(&pword, 1, __ATOMIC_SEQ_CST);
    futex(&pword, FUTEX_WAKE_PRIVATE, 1);
    pthread_join(t, NULL);

    unsigned *sw = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    *sw = 0;
    pid_t c = fork();
    if (c == 0) {
        long r = futex(sw, FUTEX_WAIT, 0);
        _exit(r == 0 ? 0 : 1);
    }
    n = wake0_until_woken(sw, FUTEX_WAKE);
    printf("shared wake 0 woke: %ld\n", n);
    if (n == 0)
        kill(c, SIGKILL);
    int st;
    waitpid(c, &st, 0);
    printf("shared waiter: %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
    return 0;
}

static volatile sig_atomic_t sigpipes;
static void on_sigpipe(int s) {
    (void)s;
    sigpipes++;
}

static int pipe_partial(void) {
    signal(SIGPIPE, on_sigpipe);
    int p[2];
    if (pipe(p) != 0)
        return 1;
    pid_t c = fork();
    if (c == 0) {
        close(p[1]);
        char b[4096];
        usleep(200000);
        if (read(p[0], b, sizeof b) <= 0)
            _exit(1);
        usleep(100000);
        _exit(0);
    }
    close(p[0]);
    size_t total = 1 << 20;
    char *buf = calloc(1, total);
    ssize_t n = write(p[1], buf, total);
    printf("write returned part: %s\n", n > 0 && (size_t)n < total ? "yes" : "no");
    printf("SIGPIPE raised: %d\n", (int)sigpipes);
    show("next write", write(p[1], buf, 1));
    waitpid(c, NULL, 0);
    return 0;
}

static int waitid_cases(void) {
    siginfo_t si;
    pid_t c = fork();
    if (c == 0)
        _exit(7);
    show("waitid no event flag", waitid(P_ALL, 0, &si, 0));
    show("waitid WNOHANG only", waitid(P_ALL, 0, &si, WNOHANG));
    /* Let the child become a zombie first. */
    usleep(100000);
    show("waitid WSTOPPED, zombie child", waitid(P_ALL, 0, &si, WSTOPPED));
    memset(&si, 0, sizeof si);
    long r = waitid(P_ALL, 0, &si, WEXITED);
    printf("waitid WEXITED: %ld code=%d status=%d\n", r, si.si_code, si.si_status);
    return 0;
}

#ifndef P_PIDFD
#define P_PIDFD 3
#endif
#ifndef PIDFD_NONBLOCK
#define PIDFD_NONBLOCK O_NONBLOCK
#endif

static int pidfd_cases(void) {
    int gate[2];
    if (pipe(gate) != 0)
        return 1;
    pid_t c = fork();
    if (c == 0) {
        char x;
        close(gate[1]);
        read(gate[0], &x, 1);
        _exit(3);
    }
    close(gate[0]);
    int nb = syscall(SYS_pidfd_open, c, 04000 /* PIDFD_NONBLOCK */);
    int bl = syscall(SYS_pidfd_open, c, 0);
    if (nb < 0 || bl < 0) {
        perror("pidfd_open");
        return 1;
    }
    siginfo_t si;
    show("nonblocking pidfd, running", waitid(P_PIDFD, nb, &si, WEXITED));
    memset(&si, 0xff, sizeof si);
    long r = waitid(P_PIDFD, nb, &si, WEXITED | WNOHANG);
    printf("nonblocking pidfd WNOHANG, running: %ld pid=%d\n", r, si.si_pid);
    memset(&si, 0xff, sizeof si);
    r = waitid(P_PIDFD, bl, &si, WEXITED | WNOHANG);
    printf("blocking pidfd WNOHANG, running: %ld pid=%d\n", r, si.si_pid);
    close(gate[1]);
    /* A non-blocking pidfd still reports an exit that has happened. */
    for (int i = 0; i < 3000; i++) {
        memset(&si, 0, sizeof si);
        r = waitid(P_PIDFD, nb, &si, WEXITED);
        if (!(r < 0 && errno == EAGAIN))
            break;
        usleep(1000);
    }
    printf("nonblocking pidfd, exited: %ld status=%d\n", r, si.si_status);
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc < 2)
        return 2;
    if (!strcmp(argv[1], "futex0"))
        return futex0();
    if (!strcmp(argv[1], "pipe_partial"))
        return pipe_partial();
    if (!strcmp(argv[1], "waitid"))
        return waitid_cases();
    if (!strcmp(argv[1], "pidfd"))
        return pidfd_cases();
    return 2;
}
