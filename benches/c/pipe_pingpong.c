// Pipe ping-pong between two processes: one round trip of a byte through two pipes.
// bench: title=pipe ping-pong (procs)
// bench: order=60
// bench: syscall-bound
// bench: iters=200000
#include <sys/wait.h>
#include <unistd.h>
#include "bench.h"

int main(int argc, char **argv)
{
    long n = bench_iters(argc, argv);
    int to_child[2], to_parent[2];
    if (pipe(to_child) || pipe(to_parent)) {
        perror("pipe");
        return 1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return 1;
    }
    char c = 'x';
    if (pid == 0) {
        close(to_child[1]);
        close(to_parent[0]);
        while (read(to_child[0], &c, 1) == 1)
            if (write(to_parent[1], &c, 1) != 1)
                _exit(1);
        _exit(0);
    }
    close(to_child[0]);
    close(to_parent[1]);
    double t0 = bench_now_ns();
    for (long i = 0; i < n; i++) {
        if (write(to_child[1], &c, 1) != 1 || read(to_parent[0], &c, 1) != 1) {
            perror("ping-pong");
            return 1;
        }
    }
    double t1 = bench_now_ns();
    close(to_child[1]);
    int st;
    if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "child failed\n");
        return 1;
    }
    bench_report(n, t0, t1);
    return 0;
}
