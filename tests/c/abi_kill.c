// kill(2) as Linux answers it: signal 0 probes (a zombie is still there), process
// groups by 0 and -pgid, a group or pid that does not exist (ESRCH), INT_MIN, an
// invalid signal (EINVAL). The program first moves into a process group of its own,
// so signalling its group never reaches the test runner. (Never kill(-1) here: the
// native run is host root and would signal every process of the machine.)
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void show(const char *w, long r) {
    if (r < 0)
        printf("%s: -1 %s\n", w, strerrorname_np(errno));
    else
        printf("%s: %ld\n", w, r);
}

static volatile sig_atomic_t got;
static void on_usr1(int s) {
    (void)s;
    got++;
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    if (getpgrp() != getpid() && setpgid(0, 0) != 0)
        return 1;
    if (getpgrp() != getpid())
        return 1;
    signal(SIGUSR1, on_usr1);
    show("kill self 0", kill(getpid(), 0));
    show("kill bad signal", kill(getpid(), 65));
    show("kill bad signal, no such pid", kill(999999, 65));
    show("kill no such pid", kill(999999, 0));
    show("kill INT_MIN", kill(INT_MIN, 0));
    show("kill no such group", kill(-999999, 0));
    pid_t z = fork();
    if (z == 0)
        _exit(0);
    usleep(100000);
    show("kill zombie 0", kill(z, 0));
    show("kill zombie SIGUSR1", kill(z, SIGUSR1));
    waitpid(z, NULL, 0);
    show("kill reaped", kill(z, 0));

    /* A child in its own group, and the caller's group. */
    int pfd[2];
    pipe(pfd);
    pid_t c = fork();
    if (c == 0) {
        setpgid(0, 0);
        signal(SIGUSR1, on_usr1);
        write(pfd[1], "r", 1);
        while (!got)
            pause();
        _exit(got);
    }
    char x;
    read(pfd[0], &x, 1);
    show("kill child group", kill(-c, SIGUSR1));
    int st;
    waitpid(c, &st, 0);
    printf("child got: %d\n", WEXITSTATUS(st));
    got = 0;
    show("kill own group", kill(0, SIGUSR1));
    printf("self got: %d\n", (int)got);
    return 0;
}
