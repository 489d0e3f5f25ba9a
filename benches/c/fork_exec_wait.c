// fork + execve of this (static) program, which exits at once + waitpid.
// bench: title=fork+exec+wait
// bench: order=80
// bench: syscall-bound
// bench: iters=2000
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "bench.h"

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--exit") == 0)
        return 7;
    long n = bench_iters(argc, argv);
    char *child_argv[] = {argv[0], "--exit", NULL};
    char *child_env[] = {NULL};
    double t0 = bench_now_ns();
    for (long i = 0; i < n; i++) {
        pid_t pid = fork();
        if (pid < 0) {
            perror("fork");
            return 1;
        }
        if (pid == 0) {
            execve(argv[0], child_argv, child_env);
            _exit(127);
        }
        int st;
        if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 7) {
            fprintf(stderr, "bad child status %#x\n", st);
            return 1;
        }
    }
    double t1 = bench_now_ns();
    bench_report(n, t0, t1);
    return 0;
}
