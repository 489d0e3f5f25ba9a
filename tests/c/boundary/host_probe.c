// Run inside the sandbox by tests/tests/escape.rs (not by the differential harness).
// argv[1]: the pid of a host process outside the sandbox.
// Prints what the sandbox lets it see of the host, forks a child that waits (so the
// test sees more than one stub), prints "ready", then reads stdin: a line "panic"
// makes it call getppid (the test's hook panics the sentry there), end of input makes
// it end the child and exit 0.
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    pid_t host = (pid_t)atoi(argv[1]);
    int r = kill(host, 0);
    printf("kill host pid: %s\n", r == 0 ? "REACHED" : strerror(errno));
    r = kill(host, SIGKILL);
    printf("kill -9 host pid: %s\n", r == 0 ? "REACHED" : strerror(errno));
    // Every pid /proc lists must be one of ours: at this point only pid 1 (us).
    DIR *d = opendir("/proc");
    if (!d) {
        printf("proc: %s\n", strerror(errno));
    } else {
        struct dirent *e;
        printf("proc pids:");
        while ((e = readdir(d))) {
            if (e->d_name[0] >= '0' && e->d_name[0] <= '9') printf(" %s", e->d_name);
        }
        printf("\n");
        closedir(d);
    }
    pid_t child = fork();
    if (child == 0) {
        pause();
        _exit(0);
    }
    printf("ready\n");
    fflush(stdout);
    char line[64];
    while (fgets(line, sizeof line, stdin)) {
        if (strncmp(line, "panic", 5) == 0) {
            printf("getppid: %d\n", (int)getppid());
            fflush(stdout);
        }
    }
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    printf("done\n");
    return 0;
}
