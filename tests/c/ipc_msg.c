// System V message queues: types and selection (first, by type, MSG_EXCEPT, lowest
// type up to N), E2BIG and MSG_NOERROR, ENOMSG, a full queue (IPC_SET of msg_qbytes),
// a child blocked in msgrcv until the parent sends, EIDRM when the queue is removed
// under a receiver, IPC_STAT counts, keys and bad input. Keys are made from the pid.
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/wait.h>
#include <unistd.h>
#include "e2e.h"

struct m {
    long type;
    char text[64];
};

#define show e2e_show
#define T E2E_T

static int snd(int id, long type, const char *text, int flags)
{
    struct m b = {type, {0}};
    strncpy(b.text, text, sizeof b.text - 1);
    return msgsnd(id, &b, strlen(text), flags);
}

static void rcv(const char *what, int id, size_t max, long type, int flags)
{
    struct m b;
    memset(&b, 0, sizeof b);
    errno = 0;
    long n = msgrcv(id, &b, max, type, flags);
    if (n < 0)
        printf("%s: %s\n", what, strerrorname_np(errno));
    else
        printf("%s: %ld type=%ld text=%.*s\n", what, n, b.type, (int)n, b.text);
}

static void stat_q(const char *what, int id)
{
    struct msqid_ds ds;
    if (msgctl(id, IPC_STAT, &ds) < 0) {
        printf("%s: %s\n", what, strerrorname_np(errno));
        return;
    }
    printf("%s: qnum=%lu cbytes=%lu qbytes=%lu lspid me=%d mode=%o\n", what,
           (unsigned long)ds.msg_qnum, (unsigned long)ds.__msg_cbytes,
           (unsigned long)ds.msg_qbytes, ds.msg_lspid == getpid(), ds.msg_perm.mode & 0777);
}

int main(void)
{
    key_t key = 0x6d000000 | ((getpid() & 0x7fffff) << 1);
    int id = msgget(key, IPC_CREAT | IPC_EXCL | 0600);
    show("msgget create", id < 0 ? -1 : 0);
    T("msgget excl again", msgget(key, IPC_CREAT | IPC_EXCL | 0600));
    printf("msgget same key same id: %d\n", msgget(key, 0600) == id);
    T("msgget missing key", msgget(key + 1, 0600));

    T("send type 3", snd(id, 3, "three", 0));
    T("send type 1", snd(id, 1, "one", 0));
    T("send type 2", snd(id, 2, "two-two", 0));
    T("send type 0", snd(id, 0, "bad", 0));
    T("send negative size", msgsnd(id, &(struct m){1, "x"}, (size_t)-1, 0));
    T("send too big", msgsnd(id, &(struct m){1, "x"}, 8193, 0));
    T("send bad pointer", msgsnd(id, (void *)8, 4, 0));
    T("send bad id", snd(id + 1000, 1, "x", 0));
    stat_q("after sends", id);

    rcv("lowest type up to 2", id, 64, -2, 0);
    rcv("too small", id, 3, 2, 0);
    rcv("truncated", id, 3, 2, MSG_NOERROR);
    rcv("except 3", id, 64, 3, MSG_EXCEPT | IPC_NOWAIT);
    rcv("first", id, 64, 0, 0);
    rcv("empty nowait", id, 64, 0, IPC_NOWAIT);
    rcv("negative size", id, (size_t)-1, 0, IPC_NOWAIT);
    stat_q("drained", id);

    // A smaller limit: the second message does not fit.
    struct msqid_ds ds;
    msgctl(id, IPC_STAT, &ds);
    ds.msg_qbytes = 8;
    ds.msg_perm.mode = 0640;
    T("IPC_SET", msgctl(id, IPC_SET, &ds));
    T("send fits", snd(id, 5, "abcdef", 0));
    T("send full nowait", snd(id, 5, "ghi", IPC_NOWAIT));
    stat_q("full", id);
    rcv("make room", id, 64, 5, 0);

    // A child waits for type 9; the parent sends it.
    pid_t c = fork();
    if (c == 0) {
        struct m b;
        long n = msgrcv(id, &b, sizeof b.text, 9, 0);
        _exit(n == 4 && b.type == 9 && memcmp(b.text, "nine", 4) == 0 ? 6 : 1);
    }
    usleep(100 * 1000);
    T("send type 9", snd(id, 9, "nine", 0));
    int st;
    waitpid(c, &st, 0);
    printf("child received: %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);

    // Removal under a waiting receiver.
    c = fork();
    if (c == 0) {
        struct m b;
        long n = msgrcv(id, &b, sizeof b.text, 0, 0);
        _exit(n < 0 && errno == EIDRM ? 5 : 1);
    }
    usleep(100 * 1000);
    T("IPC_RMID", msgctl(id, IPC_RMID, NULL));
    waitpid(c, &st, 0);
    printf("receiver saw removal: %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    T("send after removal", snd(id, 1, "x", 0));
    T("IPC_RMID again", msgctl(id, IPC_RMID, NULL));
    T("msgctl bad cmd", msgctl(msgget(IPC_PRIVATE, 0600), 9999, NULL));
    return 0;
}
