// Fork trees and the wait status matrix: exit codes, death by signal (with and
// without core), WNOHANG, waitpid for a specific child, ECHILD, getppid in children,
// and a grandchild reparented to init.
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static void report(const char *what, int st) {
    if (WIFEXITED(st)) printf("%s: exited %d\n", what, WEXITSTATUS(st));
    else if (WIFSIGNALED(st)) printf("%s: signaled %d core=%d\n", what, WTERMSIG(st), WCOREDUMP(st) ? 1 : 0);
    else printf("%s: other %#x\n", what, st);
}

int main(void) {
    int st;
    pid_t me = getpid();
    for (int code = 0; code < 3; code++) {
        pid_t c = fork();
        if (c == 0) { _exit(code * 21); }
        waitpid(c, &st, 0);
        report("exit", st);
    }
    pid_t c = fork();
    if (c == 0) { raise(SIGTERM); _exit(1); }
    waitpid(c, &st, 0);
    report("sigterm", st);
    c = fork();
    if (c == 0) { *(volatile int *)0 = 1; _exit(1); }
    waitpid(c, &st, 0);
    report("segv", st);
    c = fork();
    if (c == 0) { pause(); _exit(1); }
    printf("wnohang while running: %d\n", waitpid(c, &st, WNOHANG));
    kill(c, SIGKILL);
    waitpid(c, &st, 0);
    report("sigkill", st);
    c = fork();
    if (c == 0) { printf("child sees parent: %s\n", getppid() == me ? "yes" : "no"); fflush(stdout); _exit(0); }
    waitpid(c, &st, 0);
    // A tree of 8 children, reaped in any order.
    for (int i = 0; i < 8; i++) if (fork() == 0) _exit(i);
    int sum = 0;
    for (int i = 0; i < 8; i++) { wait(&st); sum += WEXITSTATUS(st); }
    printf("tree of 8: sum=%d\n", sum);
    errno = 0;
    printf("no children: %d errno=%s\n", wait(&st), errno == ECHILD ? "ECHILD" : "?");
    return 0;
}
