// Seccomp actions that end tasks: KILL_PROCESS and an unknown action end the whole
// process with SIGSYS; KILL_THREAD ends only the calling thread (the process goes
// on) unless it is the last one; strict mode allows read, write, exit and
// rt_sigreturn and ends the thread with SIGKILL on anything else.
#include "seccomp.h"

#include <pthread.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>

static void *victim(void *arg)
{
    (void)arg;
    syscall(SYS_getppid);
    printf("thread survived\n");
    return NULL;
}

static int run(int which)
{
    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    switch (which) {
    case 0:
        sc_one(0, SYS_getppid, SECCOMP_RET_KILL_PROCESS);
        syscall(SYS_getppid);
        return 0;
    case 1:
        sc_one(0, SYS_getppid, SECCOMP_RET_KILL_THREAD);
        syscall(SYS_getppid);
        return 0;
    case 2: {
        sc_one(0, SYS_getppid, SECCOMP_RET_KILL_THREAD);
        pthread_t t;
        pthread_create(&t, NULL, victim, NULL);
        pthread_join(t, NULL);
        printf("main thread goes on\n");
        return 7;
    }
    case 3:
        sc_one(0, SYS_getppid, 0x00010000); /* no such action */
        syscall(SYS_getppid);
        return 0;
    case 4: {
        /* KILL_PROCESS from a second thread ends the whole process. */
        sc_one(0, SYS_getppid, SECCOMP_RET_KILL_PROCESS);
        pthread_t t;
        pthread_create(&t, NULL, victim, NULL);
        pthread_join(t, NULL);
        printf("main thread goes on\n");
        return 7;
    }
    case 5: {
        if (syscall(SYS_seccomp, SECCOMP_SET_MODE_STRICT, 0, NULL) != 0)
            return 3;
        static const char msg[] = "strict: write works\n";
        syscall(SYS_write, 1, msg, sizeof msg - 1);
        syscall(SYS_getppid);
        syscall(SYS_write, 1, "not reached\n", 12);
        return 0;
    }
    case 6:
        if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_STRICT, 0, 0, 0) != 0)
            return 3;
        syscall(SYS_exit, 5);
        return 0;
    }
    return 1;
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    /* No core files from the killed children. */
    struct rlimit rl = { 0, 0 };
    setrlimit(RLIMIT_CORE, &rl);
    const char *names[] = { "KILL_PROCESS", "KILL_THREAD (only thread)",
                            "KILL_THREAD (second thread)", "unknown action",
                            "KILL_PROCESS (second thread)", "strict mode", "strict exit" };
    for (int i = 0; i < 7; i++) {
        pid_t c = fork();
        if (c == 0)
            _exit(run(i));
        int st;
        waitpid(c, &st, 0);
        if (WIFSIGNALED(st))
            printf("%s: killed by signal %d\n", names[i], WTERMSIG(st));
        else
            printf("%s: exit %d\n", names[i], WEXITSTATUS(st));
    }
    return 0;
}
