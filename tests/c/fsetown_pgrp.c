// F_SETOWN and F_SETOWN_EX accept any id that names something alive, as
// Linux's find_vpid: a process group with no members (the number of a process
// that is not a group leader, or of a thread), a session; ESRCH only for a
// number nothing uses. F_GETOWN gives back what was set.
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include "e2e.h"

static int fd;

static void try_own(const char *what, int who)
{
    int r = fcntl(fd, F_SETOWN, who);
    const char *e = r == 0 ? "OK" : e2e_errname(errno);
    int back = fcntl(fd, F_GETOWN);
    printf("F_SETOWN %s: %s, F_GETOWN %s\n", what, e,
           back == who ? "same" : back == 0 ? "0" : "other");
    fcntl(fd, F_SETOWN, 0);
}

static void try_ex(const char *what, int type, int who)
{
    struct f_owner_ex o = {.type = type, .pid = who};
    int r = fcntl(fd, F_SETOWN_EX, &o);
    const char *e = r == 0 ? "OK" : e2e_errname(errno);
    struct f_owner_ex b = {0};
    fcntl(fd, F_GETOWN_EX, &b);
    printf("F_SETOWN_EX %s: %s, back type %s pid %s\n", what, e,
           b.type == type ? "same" : b.type == F_OWNER_PID ? "PID" : "other",
           b.pid == who ? "same" : b.pid == 0 ? "0" : "other");
    fcntl(fd, F_SETOWN, 0);
}

static int tid;
static int go[2], done[2];

static void *thread(void *a)
{
    (void)a;
    tid = (int)syscall(SYS_gettid);
    char c = 1;
    if (write(go[1], &c, 1) != 1)
        return NULL;
    if (read(done[0], &c, 1) != 1)
        return NULL;
    return NULL;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    int p[2];
    if (pipe(p) || pipe(go) || pipe(done))
        return 1;
    fd = p[0];
    // A session and group of our own: we lead both.
    pid_t leader = fork();
    if (leader == 0) {
        setsid();
        int me = getpid();
        try_own("own pid", me);
        try_own("own group", -me);
        // A child in our group: its number names a process but no group.
        int cp[2];
        if (pipe(cp))
            _exit(1);
        pid_t c = fork();
        if (c == 0) {
            char x;
            close(cp[1]);
            if (read(cp[0], &x, 1) < 0)
                _exit(1);
            _exit(0);
        }
        close(cp[0]);
        try_own("child pid", c);
        try_own("empty group (child's number)", -c);
        try_ex("empty group (child's number)", F_OWNER_PGRP, c);
        try_ex("child as thread", F_OWNER_TID, c);
        try_ex("own group as process", F_OWNER_PID, me);
        // A thread's id: a thread, not a process nor a group, still a pid.
        pthread_t th;
        pthread_create(&th, NULL, thread, NULL);
        char x;
        if (read(go[0], &x, 1) != 1)
            _exit(1);
        try_own("thread id as process", tid);
        try_own("thread id as group", -tid);
        try_ex("thread", F_OWNER_TID, tid);
        try_ex("thread id as group", F_OWNER_PGRP, tid);
        if (write(done[1], &x, 1) != 1)
            _exit(1);
        pthread_join(th, NULL);
        // A zombie still holds its number.
        close(cp[1]);
        siginfo_t si;
        waitid(P_PID, c, &si, WEXITED | WNOWAIT);
        try_own("zombie", c);
        try_own("zombie's number as group", -c);
        waitpid(c, NULL, 0);
        // Reaped: nothing uses the number any more.
        try_own("reaped", c);
        try_own("reaped as group", -c);
        try_ex("reaped as group", F_OWNER_PGRP, c);
        try_own("unused number", 4000000);
        try_own("unused group", -4000000);
        int r = fcntl(fd, F_SETOWN, -2147483647 - 1);
        printf("F_SETOWN INT_MIN: %s\n", r == 0 ? "OK" : e2e_errname(errno));
        _exit(0);
    }
    waitpid(leader, NULL, 0);
    return 0;
}
