// signalfd contents: blocked signals are read from the fd with their siginfo
// (sender pid via kill, the sigqueue value), and the fd polls readable.
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <sys/signalfd.h>
#include <unistd.h>

int main(void) {
    sigset_t m;
    sigemptyset(&m);
    sigaddset(&m, SIGUSR1);
    sigaddset(&m, SIGRTMIN);
    sigprocmask(SIG_BLOCK, &m, NULL);
    int fd = signalfd(-1, &m, SFD_CLOEXEC);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    printf("idle readable=%d\n", poll(&p, 1, 0));
    kill(getpid(), SIGUSR1);
    union sigval v = {.sival_int = 42};
    sigqueue(getpid(), SIGRTMIN, v);
    printf("readable=%d\n", poll(&p, 1, 0));
    struct signalfd_siginfo si;
    for (int i = 0; i < 2; i++) {
        if (read(fd, &si, sizeof si) != sizeof si) { perror("read"); return 1; }
        printf("got %s pid_ok=%d int=%d\n", si.ssi_signo == SIGUSR1 ? "SIGUSR1" : si.ssi_signo == (unsigned)SIGRTMIN ? "SIGRTMIN" : "?",
               si.ssi_pid == (unsigned)getpid(), si.ssi_signo == (unsigned)SIGRTMIN ? si.ssi_int : 0);
    }
    printf("drained readable=%d\n", poll(&p, 1, 0));
    return 0;
}
