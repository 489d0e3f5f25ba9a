// System V semaphores: SETVAL/GETALL, all-or-nothing semop, IPC_NOWAIT, wait for
// zero, semtimedop's timeout, a child blocked until the parent posts (GETNCNT seen
// meanwhile), SEM_UNDO at exit, EINTR from a signal, EIDRM when the set is removed
// under a waiter, IPC_STAT, keys and bad input. Keys are made from the pid (even) so
// parallel native runs never meet.
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/sem.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "e2e.h"

union semun {
    int val;
    struct semid_ds *buf;
    unsigned short *array;
};

#define show e2e_show
#define T E2E_T

static int op(int id, unsigned short num, short delta, short flags)
{
    struct sembuf b = {num, delta, flags};
    return semop(id, &b, 1);
}

static void vals(const char *what, int id)
{
    unsigned short v[3] = {0};
    union semun u = {.array = v};
    semctl(id, 0, GETALL, u);
    printf("%s: %u %u %u\n", what, v[0], v[1], v[2]);
}

/* Polls until `cnt` (GETNCNT/GETZCNT) of semaphore `num` is `want`, so the child
 * is surely blocked before the parent goes on. */
static int await_count(int id, int num, int cmd, int want)
{
    for (int i = 0; i < 5000; i++) {
        if (semctl(id, num, cmd) == want)
            return 1;
        usleep(1000);
    }
    return 0;
}

static void on_alarm(int s) { (void)s; }

int main(void)
{
    key_t key = 0x5e000000 | ((getpid() & 0x7fffff) << 1);
    int id = semget(key, 3, IPC_CREAT | IPC_EXCL | 0600);
    show("semget create", id < 0 ? -1 : 0);
    T("semget excl again", semget(key, 3, IPC_CREAT | IPC_EXCL | 0600));
    printf("semget same key same id: %d\n", semget(key, 2, 0600) == id);
    T("semget more sems than the set", semget(key, 4, 0600));
    T("semget missing key", semget(key + 1, 1, 0600));
    T("semget zero sems new", semget(IPC_PRIVATE, 0, 0600));
    T("semget negative sems", semget(IPC_PRIVATE, -1, 0600));

    union semun u = {.val = 2};
    T("SETVAL 0", semctl(id, 0, SETVAL, u));
    unsigned short all[3] = {2, 0, 5};
    u.array = all;
    T("SETALL", semctl(id, 0, SETALL, u));
    vals("after SETALL", id);
    T("GETVAL 2", semctl(id, 2, GETVAL));
    printf("GETPID is me: %d\n", semctl(id, 0, GETPID) == getpid());
    u.val = 40000;
    T("SETVAL too big", semctl(id, 0, SETVAL, u));
    u.val = -1;
    T("SETVAL negative", semctl(id, 0, SETVAL, u));
    T("GETVAL bad num", semctl(id, 3, GETVAL));

    struct sembuf two[2] = {{0, -1, 0}, {1, -1, IPC_NOWAIT}};
    T("semop all-or-nothing", semop(id, two, 2));
    vals("unchanged", id);
    T("semop take 2", op(id, 0, -2, 0));
    T("semop nowait empty", op(id, 0, -1, IPC_NOWAIT));
    T("wait for zero nowait", op(id, 2, 0, IPC_NOWAIT));
    T("wait for zero ready", op(id, 0, 0, 0));
    T("semop over SEMVMX", op(id, 2, 32767, 0));
    T("semop bad num", op(id, 3, 1, 0));
    T("semop zero ops", semop(id, two, 0));
    struct sembuf many[501] = {{0}};
    T("semop too many ops", semop(id, many, 501));
    T("semop bad id", op(id + 1000, 0, 1, 0));
    T("semop bad pointer", semop(id, (struct sembuf *)8, 1));

    struct timespec ts = {0, 50 * 1000 * 1000};
    struct sembuf take = {1, -1, 0};
    T("semtimedop timeout", semtimedop(id, &take, 1, &ts));
    ts.tv_nsec = 2000000000;
    T("semtimedop bad timeout", semtimedop(id, &take, 1, &ts));

    // A child blocks taking semaphore 1; the parent sees it counted, then posts.
    pid_t c = fork();
    if (c == 0)
        _exit(op(id, 1, -1, 0) == 0 ? 7 : 1);
    printf("child counted in GETNCNT: %d\n", await_count(id, 1, GETNCNT, 1));
    T("post", op(id, 1, 1, 0));
    int st;
    waitpid(c, &st, 0);
    printf("child took it: %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    T("GETNCNT after", semctl(id, 1, GETNCNT));

    // SEM_UNDO: the child's +3 is taken back when it exits.
    c = fork();
    if (c == 0)
        _exit(op(id, 1, 3, SEM_UNDO) == 0 ? 0 : 1);
    waitpid(c, &st, 0);
    T("value after undo", semctl(id, 1, GETVAL));

    // A zero-waiter counted in GETZCNT, then a signal: EINTR even with SA_RESTART.
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGALRM, &sa, NULL);
    c = fork();
    if (c == 0) {
        alarm(1);
        int r = op(id, 2, 0, 0);
        _exit(r < 0 && errno == EINTR ? 4 : 1);
    }
    printf("zero waiter counted: %d\n", await_count(id, 2, GETZCNT, 1));
    waitpid(c, &st, 0);
    printf("interrupted waiter: %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);

    struct semid_ds ds;
    u.buf = &ds;
    T("IPC_STAT", semctl(id, 0, IPC_STAT, u));
    printf("nsems=%lu mode=%o uid=%d key ok=%d\n", (unsigned long)ds.sem_nsems,
           ds.sem_perm.mode & 0777, ds.sem_perm.uid, ds.sem_perm.__key == key);
    ds.sem_perm.mode = 0640;
    T("IPC_SET", semctl(id, 0, IPC_SET, u));
    semctl(id, 0, IPC_STAT, u);
    printf("mode after IPC_SET=%o\n", ds.sem_perm.mode & 0777);

    // Removal under a waiter: it fails with EIDRM.
    c = fork();
    if (c == 0) {
        int r = op(id, 1, -1, 0);
        _exit(r < 0 && errno == EIDRM ? 5 : 1);
    }
    await_count(id, 1, GETNCNT, 1);
    T("IPC_RMID", semctl(id, 0, IPC_RMID));
    waitpid(c, &st, 0);
    printf("waiter saw removal: %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    T("GETVAL after removal", semctl(id, 0, GETVAL));
    T("IPC_RMID again", semctl(id, 0, IPC_RMID));
    T("semctl bad cmd", semctl(semget(IPC_PRIVATE, 1, 0600), 0, 9999));
    return 0;
}
