// Seccomp filters belong to threads: a filter applies to the thread that installed
// it (and threads it creates later); SECCOMP_FILTER_FLAG_TSYNC gives it to every
// thread of the process, with no_new_privs, unless one of them has a filter that is
// not an ancestor of the caller's (then the call returns that thread's id, or ESRCH
// with SECCOMP_FILTER_FLAG_TSYNC_ESRCH).
#include "seccomp.h"

#include <pthread.h>
#include <stdlib.h>
#include <sys/wait.h>

static int go[2], done[2];

static void *waiter(void *arg)
{
    (void)arg;
    char c;
    read(go[0], &c, 1);
    SC_T("thread: PR_GET_SECCOMP", prctl(PR_GET_SECCOMP));
    SC_OK("thread: getppid", syscall(SYS_getppid));
    SC_T("thread: PR_GET_NO_NEW_PRIVS", prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0));
    write(done[1], "x", 1);
    read(go[0], &c, 1);
    SC_T("thread after TSYNC: PR_GET_SECCOMP", prctl(PR_GET_SECCOMP));
    SC_T("thread after TSYNC: getppid", syscall(SYS_getppid));
    SC_T("thread after TSYNC: PR_GET_NO_NEW_PRIVS", prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0));
    write(done[1], "x", 1);
    return NULL;
}

static volatile pid_t other_tid;
static int go2[2];

static void *own_filter(void *arg)
{
    (void)arg;
    sc_one(0, SYS_getgid, SECCOMP_RET_ERRNO | EPERM);
    other_tid = gettid();
    write(done[1], "x", 1);
    char c;
    read(go2[0], &c, 1);
    return NULL;
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    pipe(go);
    pipe(done);
    pipe(go2);
    pthread_t t;
    pthread_create(&t, NULL, waiter, NULL);
    char c;
    /* A filter without TSYNC stays with the caller. */
    SC_T("main: set no_new_privs", prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0));
    SC_T("main: filter getppid", sc_one(0, SYS_getppid, SECCOMP_RET_ERRNO | EPERM));
    SC_T("main: getppid", syscall(SYS_getppid));
    write(go[1], "x", 1);
    read(done[0], &c, 1);
    /* TSYNC gives the thread the caller's filters and no_new_privs. */
    SC_T("main: TSYNC filter getuid", sc_one(SECCOMP_FILTER_FLAG_TSYNC, SYS_getuid, SECCOMP_RET_ERRNO | EACCES));
    write(go[1], "x", 1);
    read(done[0], &c, 1);
    pthread_join(t, NULL);

    /* A thread with its own newer filter cannot be synchronised. */
    pthread_t t2;
    pthread_create(&t2, NULL, own_filter, NULL);
    read(done[0], &c, 1);
    long r = sc_one(SECCOMP_FILTER_FLAG_TSYNC, SYS_getegid, SECCOMP_RET_ERRNO | EPERM);
    printf("TSYNC over a diverged thread returns its tid: %s\n", r == other_tid ? "yes" : "no");
    SC_T("TSYNC_ESRCH over a diverged thread",
         sc_one(SECCOMP_FILTER_FLAG_TSYNC | SECCOMP_FILTER_FLAG_TSYNC_ESRCH, SYS_getegid, SECCOMP_RET_ERRNO | EPERM));
    SC_OK("main: getegid (failed TSYNC attached nothing)", syscall(SYS_getegid));
    sc_status("main");
    write(go2[1], "x", 1);
    pthread_join(t2, NULL);
    return 0;
}
