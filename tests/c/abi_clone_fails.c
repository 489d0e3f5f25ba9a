// A clone that fails leaves nothing behind: a thread clone refused for its TLS
// address (EPERM) and a clone3 whose pidfd address is bad (EFAULT) must not leave a
// half-made thread in the group, or the process could never end (it hung in the
// sandbox), nor a child to wait for. A bad CLONE_PARENT_SETTID address is ignored,
// as Linux stores it after the child exists.
#define _GNU_SOURCE
#include <errno.h>
#include <linux/sched.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static char stack[65536];

static void *worker(void *arg) { return arg; }

int main(void) {
    unsigned long thread = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD |
                           CLONE_SYSVSEM;
    for (int i = 0; i < 3; i++) {
        errno = 0;
        long r = syscall(SYS_clone, thread | CLONE_SETTLS, stack + sizeof stack, NULL, NULL,
                         0xffffffffffff0000UL);
        printf("thread clone with a kernel TLS address: %ld %s\n", r, strerror(errno));
    }
    struct clone_args a;
    memset(&a, 0, sizeof a);
    a.flags = CLONE_PIDFD;
    a.pidfd = 8;
    a.exit_signal = SIGCHLD;
    errno = 0;
    long r = syscall(SYS_clone3, &a, sizeof a);
    if (r == 0)
        _exit(0);
    printf("clone3 with a bad pidfd address: %ld %s\n", r, strerror(errno));
    errno = 0;
    r = waitpid(-1, NULL, WNOHANG);
    printf("children left to wait for: %ld %s\n", r, strerror(errno));
    // A bad parent-tid address does not stop the fork.
    r = syscall(SYS_clone, (unsigned long)(SIGCHLD | CLONE_PARENT_SETTID), NULL, (void *)8, NULL,
                0UL);
    if (r == 0)
        _exit(7);
    int status = 0;
    long w = waitpid((pid_t)r, &status, 0);
    printf("fork with a bad parent-tid address: child %s, exit %d\n",
           w == r && r > 0 ? "reaped" : "missing", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    // Threads still work, and the process ends.
    pthread_t t;
    void *out = NULL;
    if (pthread_create(&t, NULL, worker, (void *)42) == 0 && pthread_join(t, &out) == 0)
        printf("a thread after the failures: %ld\n", (long)out);
    fflush(stdout);
    return 0;
}
