// Run by tests/tests/escape.rs natively and inside the sandbox, with stdin a pipe
// the test holds open and writes to only after "ready": waits on the host's stdin
// must be waits of the sandbox. A poll with nothing to read times out; a reader
// blocked on stdin dies of SIGKILL; a signal without SA_RESTART interrupts a read
// (EINTR); then the line the test sends is read.
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

static void on_alarm(int s) { (void)s; }

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    struct pollfd p = {.fd = 0, .events = POLLIN};
    int r = poll(&p, 1, 200);
    printf("poll with nothing to read: %d\n", r);

    pid_t c = fork();
    if (c == 0) {
        char b[16];
        read(0, b, sizeof b);
        _exit(3);
    }
    usleep(200000);
    kill(c, SIGKILL);
    int st = 0;
    waitpid(c, &st, 0);
    if (WIFSIGNALED(st))
        printf("blocked reader: killed by %d\n", WTERMSIG(st));
    else
        printf("blocked reader: exited %d\n", WEXITSTATUS(st));

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval it = {.it_value = {.tv_usec = 100000}};
    setitimer(ITIMER_REAL, &it, NULL);
    char b[64];
    ssize_t n = read(0, b, sizeof b);
    printf("read interrupted: %zd %s\n", n, n < 0 ? strerror(errno) : "");

    printf("ready\n");
    r = poll(&p, 1, 10000);
    printf("poll after the line: %d %s\n", r, (p.revents & POLLIN) ? "POLLIN" : "");
    n = read(0, b, sizeof b - 1);
    b[n > 0 ? n : 0] = 0;
    printf("read: %zd %s", n, b);
    return 0;
}
