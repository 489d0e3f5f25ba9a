// kill(2) permission rules for an unprivileged caller: its own process, its own
// process group and SIGCONT within its session succeed; signal 0 probes; another
// user's process is EPERM. (The sandbox once deadlocked on the SIGCONT rule when the
// target was the caller itself.)
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void show(const char *what, int r) {
    printf("%s: %s\n", what, r == 0 ? "ok" : strerror(errno));
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    signal(SIGCONT, SIG_IGN);
    signal(SIGUSR1, SIG_IGN);
    pid_t root_child = fork();
    if (root_child == 0) {
        pause();
        _exit(0);
    }
    pid_t c = fork();
    if (c == 0) {
        if (setgid(1000) != 0 || setuid(1000) != 0) {
            perror("setuid");
            _exit(1);
        }
        show("kill self SIGCONT", kill(getpid(), SIGCONT));
        show("kill self 0", kill(getpid(), 0));
        show("kill group SIGCONT", kill(0, SIGCONT));
        show("kill self SIGUSR1", kill(getpid(), SIGUSR1));
        show("kill root child SIGUSR1", kill(root_child, SIGUSR1));
        show("kill root child 0", kill(root_child, 0));
        show("kill root child SIGCONT (same session)", kill(root_child, SIGCONT));
        _exit(0);
    }
    int st;
    waitpid(c, &st, 0);
    printf("child exit %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    kill(root_child, SIGKILL);
    waitpid(root_child, &st, 0);
    return 0;
}
