// POSIX message queues: attributes, priorities (highest first, FIFO within one),
// EMSGSIZE, O_NONBLOCK and mq_setattr, absolute timeouts, poll and epoll readiness,
// SIGEV_SIGNAL notification (siginfo and one-shot), a blocked receive woken by a
// forked child's send and one interrupted by a signal (EINTR), permissions and the
// limits as an unprivileged user (setresuid in a child), unlink while open, names,
// the /proc/sys/fs/mqueue limits and the mqueue filesystem's files (mounted in a
// mount namespace of the test's own). Queue names carry the pid.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <mqueue.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "e2e.h"

#define show e2e_show
#define T E2E_T

static char name[64], name2[64];

static struct timespec in_ms(long ms)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    if (ms < 0) {
        t.tv_sec += ms / 1000;
        return t;
    }
    t.tv_nsec += ms * 1000000L;
    t.tv_sec += t.tv_nsec / 1000000000L;
    t.tv_nsec %= 1000000000L;
    return t;
}

static void recv_one(const char *what, mqd_t q, size_t len)
{
    char buf[128];
    unsigned prio = 999;
    errno = 0;
    ssize_t n = mq_receive(q, buf, len, &prio);
    if (n < 0)
        printf("%s: %s\n", what, strerrorname_np(errno));
    else
        printf("%s: %.*s prio=%u\n", what, (int)n, buf, prio);
}

static void attrs(const char *what, mqd_t q)
{
    struct mq_attr a;
    if (mq_getattr(q, &a) < 0) {
        printf("%s: %s\n", what, strerrorname_np(errno));
        return;
    }
    printf("%s: flags=%s maxmsg=%ld msgsize=%ld curmsgs=%ld\n", what,
           a.mq_flags & O_NONBLOCK ? "nonblock" : "0", a.mq_maxmsg, a.mq_msgsize, a.mq_curmsgs);
}

static volatile sig_atomic_t got_sig, got_code, got_pid_ok, got_val;

static void on_usr1(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    got_sig = sig;
    got_code = si->si_code;
    got_pid_ok = si->si_pid == getpid() && si->si_uid == getuid();
    got_val = si->si_value.sival_int;
}

static void on_alarm(int sig) { (void)sig; }

static void readiness(const char *what, mqd_t q)
{
    struct pollfd p = {.fd = q, .events = POLLIN | POLLOUT};
    int n = poll(&p, 1, 0);
    printf("%s: n=%d in=%d out=%d\n", what, n, !!(p.revents & POLLIN), !!(p.revents & POLLOUT));
}

/* Prints the queue file's line with the notifier's pid replaced by "me"/"none". */
static void qfile(const char *what, const char *dir, const char *qname)
{
    char path[256], buf[256];
    snprintf(path, sizeof path, "%s/%s", dir, qname);
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        printf("%s: open %s\n", what, strerrorname_np(errno));
        return;
    }
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n < 0) {
        printf("%s: read %s\n", what, strerrorname_np(errno));
        return;
    }
    buf[n] = 0;
    char *p = strstr(buf, "NOTIFY_PID:");
    int pid = p ? atoi(p + 11) : -1;
    if (p)
        *p = 0;
    printf("%s: len=%zd [%s] pid=%s\n", what, n, buf,
           pid == 0 ? "none" : pid == getpid() ? "me" : "other");
}

static void unprivileged(void)
{
    fflush(stdout);
    pid_t c = fork();
    if (c == 0) {
        if (setresgid(65534, 65534, 65534) || setresuid(65534, 65534, 65534)) {
            printf("setresuid failed\n");
            _exit(1);
        }
        errno = 0;
        T("user open 0640 queue rdonly", mq_open(name, O_RDONLY));
        T("user open 0640 queue wronly", mq_open(name, O_WRONLY));
        T("user unlink root's queue", mq_unlink(name));
        struct mq_attr big = {.mq_maxmsg = 11, .mq_msgsize = 16};
        T("user create maxmsg over msg_max", mq_open(name2, O_CREAT | O_RDWR, 0600, &big));
        struct mq_attr bigsz = {.mq_maxmsg = 2, .mq_msgsize = 8193};
        T("user create msgsize over msgsize_max", mq_open(name2, O_CREAT | O_RDWR, 0600, &bigsz));
        struct mq_attr ok = {.mq_maxmsg = 2, .mq_msgsize = 16};
        mqd_t q = mq_open(name2, O_CREAT | O_EXCL | O_RDWR, 0600, &ok);
        show("user create own", q < 0 ? -1 : 0);
        T("user send own", mq_send(q, "u", 1, 0));
        T("user unlink own", mq_unlink(name2));
        fflush(stdout);
        _exit(0);
    }
    int st;
    waitpid(c, &st, 0);
    printf("child status: %d\n", WEXITSTATUS(st));
}

/* RLIMIT_MSGQUEUE, as a user of the test's own (the charge is per user). */
static void rlimit_msgqueue(void)
{
    fflush(stdout);
    pid_t c = fork();
    if (c == 0) {
        uid_t u = 100000 + getpid();
        char n1[64], n2[64];
        snprintf(n1, sizeof n1, "/e2e_mqr1_%d", getpid());
        snprintf(n2, sizeof n2, "/e2e_mqr2_%d", getpid());
        struct rlimit rl = {1000, 1000};
        setrlimit(RLIMIT_MSGQUEUE, &rl);
        if (setresuid(u, u, u)) {
            printf("setresuid failed\n");
            _exit(1);
        }
        struct mq_attr a = {.mq_maxmsg = 4, .mq_msgsize = 64};
        mqd_t q = mq_open(n1, O_CREAT | O_EXCL | O_RDWR, 0600, &a);
        show("rlimit first queue (640 bytes)", q < 0 ? -1 : 0);
        T("rlimit second queue", mq_open(n2, O_CREAT | O_EXCL | O_RDWR, 0600, &a));
        mq_unlink(n1);
        T("rlimit second while first open", mq_open(n2, O_CREAT | O_EXCL | O_RDWR, 0600, &a));
        mq_close(q);
        mqd_t q2 = mq_open(n2, O_CREAT | O_EXCL | O_RDWR, 0600, &a);
        show("rlimit second after close", q2 < 0 ? -1 : 0);
        mq_unlink(n2);
        fflush(stdout);
        _exit(0);
    }
    waitpid(c, NULL, 0);
}

static void mqueue_fs(void)
{
    if (unshare(CLONE_NEWNS) < 0) {
        printf("unshare: %s\n", strerrorname_np(errno));
        return;
    }
    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL);
    char dir[] = "/tmp/mqfsXXXXXX";
    if (!mkdtemp(dir)) {
        printf("mkdtemp failed\n");
        return;
    }
    T("mount mqueue", mount("mqueue", dir, "mqueue", 0, NULL));
    struct stat st;
    stat(dir, &st);
    printf("root mode: %o\n", st.st_mode & 07777);
    mqd_t q = mq_open(name, O_CREAT | O_RDWR, 0640, NULL);
    show("open for fs", q < 0 ? -1 : 0);
    mq_send(q, "hello", 5, 3);
    mq_send(q, "abc", 3, 1);
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name + 1);
    T("stat queue file", stat(path, &st));
    printf("file mode: %o size=%ld\n", st.st_mode, (long)st.st_size);
    qfile("file before notify", dir, name + 1);
    struct sigevent ev = {.sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGUSR2};
    T("notify usr2", mq_notify(q, &ev));
    qfile("file with notify", dir, name + 1);
    /* That close was the owner's: the registration went with it. */
    qfile("file after owner's close", dir, name + 1);
    T("notify usr2 again", mq_notify(q, &ev));
    mqd_t other = mq_open(name, O_RDONLY);
    T("notify from second descriptor", mq_notify(other, &ev));
    mq_close(other);
    struct sigevent none = {.sigev_notify = SIGEV_NONE};
    T("notify none while registered", mq_notify(q, &none));
    T("notify remove", mq_notify(q, NULL));
    T("notify none", mq_notify(q, &none));
    qfile("file with none", dir, name + 1);
    T("notify remove", mq_notify(q, NULL));
    /* A file made through the filesystem is a queue with the default attributes. */
    char path2[256];
    snprintf(path2, sizeof path2, "%s/%s", dir, name2 + 1);
    int fd = open(path2, O_CREAT | O_RDWR, 0600);
    show("create through fs", fd < 0 ? -1 : 0);
    close(fd);
    mqd_t q2 = mq_open(name2, O_RDWR);
    show("mq_open of fs-made", q2 < 0 ? -1 : 0);
    attrs("fs-made attrs", q2);
    T("unlink through fs", unlink(path2));
    T("mq_open after fs unlink", mq_open(name2, O_RDWR));
    T("send to fs-unlinked", mq_send(q2, "z", 1, 0));
    mq_close(q2);
    mq_unlink(name);
    T("stat after mq_unlink", stat(path, &st));
    mq_close(q);
    umount(dir);
    rmdir(dir);
}

int main(void)
{
    snprintf(name, sizeof name, "/e2e_mq_%d", getpid());
    snprintf(name2, sizeof name2, "/e2e_mq2_%d", getpid());
    const char *lim[] = {"msg_default", "msg_max", "msgsize_default", "msgsize_max", "queues_max"};
    for (int i = 0; i < 5; i++) {
        char p[128], b[64] = {0};
        snprintf(p, sizeof p, "/proc/sys/fs/mqueue/%s", lim[i]);
        int fd = open(p, O_RDONLY);
        ssize_t n = fd < 0 ? -1 : read(fd, b, sizeof b - 1);
        printf("%s: %s", lim[i], n > 0 ? b : "missing\n");
        if (fd >= 0)
            close(fd);
    }

    /* Names. */
    T("no slash", mq_open("e2e_noslash", O_RDONLY));
    T("just slash", mq_open("/", O_RDONLY));
    T("inner slash (raw)", syscall(SYS_mq_open, "a/b", O_RDONLY, 0, NULL));
    T("missing", mq_open(name, O_RDONLY));
    T("unlink missing", mq_unlink(name));

    umask(027);
    struct mq_attr a = {.mq_maxmsg = 4, .mq_msgsize = 64};
    mqd_t q = mq_open(name, O_CREAT | O_EXCL | O_RDWR, 0666, &a);
    show("create", q < 0 ? -1 : 0);
    umask(022);
    struct stat st;
    fstat(q, &st);
    printf("fstat mode: %o\n", st.st_mode & 07777);
    T("create excl again", mq_open(name, O_CREAT | O_EXCL | O_RDWR, 0600, &a));
    struct mq_attr bad = {.mq_maxmsg = 0, .mq_msgsize = 64};
    T("create maxmsg 0", mq_open(name2, O_CREAT | O_RDWR, 0600, &bad));
    T("bad access mode", mq_open(name, O_RDWR | O_WRONLY));
    attrs("attrs", q);
    readiness("empty", q);

    /* Priorities: highest first, FIFO within one. */
    mq_send(q, "a", 1, 1);
    mq_send(q, "b", 1, 5);
    mq_send(q, "c", 1, 1);
    mq_send(q, "d", 1, 5);
    attrs("four queued", q);
    readiness("full", q);
    mq_setattr(q, &(struct mq_attr){.mq_flags = O_NONBLOCK}, NULL);
    attrs("nonblock", q);
    T("send full nonblock", mq_send(q, "e", 1, 3));
    mq_setattr(q, &(struct mq_attr){.mq_flags = 0}, NULL);
    struct timespec t = in_ms(50);
    T("timedsend full", mq_timedsend(q, "e", 1, 3, &t));
    t.tv_nsec = 1000000000L;
    T("timedsend full bad timeout", mq_timedsend(q, "e", 1, 3, &t));
    T("setattr bad flags", mq_setattr(q, &(struct mq_attr){.mq_flags = O_APPEND}, NULL));
    for (int i = 0; i < 4; i++)
        recv_one("recv", q, 64);
    readiness("drained", q);

    /* Sizes and bad arguments. */
    char big[65] = {0};
    T("send too big", mq_send(q, big, 65, 0));
    T("send prio max", mq_send(q, "x", 1, 32768));
    recv_one("recv short buffer", q, 63);
    T("send on stdin", mq_send(0, "x", 1, 0));
    T("send on closed", mq_send(999, "x", 1, 0));
    mq_send(q, "", 0, 7);
    recv_one("recv empty message", q, 64);

    /* Timeouts and non-blocking receive. */
    t = in_ms(50);
    errno = 0;
    ssize_t n = mq_timedreceive(q, big, 64, NULL, &t);
    printf("timedreceive empty: %zd %s\n", n, strerrorname_np(errno));
    t = in_ms(-1000);
    T("timedreceive past deadline", mq_timedreceive(q, big, 64, NULL, &t));
    mqd_t qn = mq_open(name, O_RDONLY | O_NONBLOCK);
    attrs("second open nonblock", qn);
    recv_one("recv nonblock empty", qn, 64);
    T("send on rdonly", mq_send(qn, "x", 1, 0));
    mq_close(qn);

    /* epoll. */
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = 7};
    T("epoll add", epoll_ctl(ep, EPOLL_CTL_ADD, q, &ev));
    struct epoll_event out;
    T("epoll empty", epoll_wait(ep, &out, 1, 0));
    mq_send(q, "p", 1, 2);
    T("epoll ready", epoll_wait(ep, &out, 1, 1000));
    recv_one("recv after epoll", q, 64);
    close(ep);

    /* Notification by signal: once, with the sender's identity. */
    struct sigaction sa = {.sa_sigaction = on_usr1, .sa_flags = SA_SIGINFO};
    sigaction(SIGUSR1, &sa, NULL);
    struct sigevent se = {.sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGUSR1};
    se.sigev_value.sival_int = 4242;
    T("notify", mq_notify(q, &se));
    T("notify again", mq_notify(q, &se));
    struct sigevent badsig = {.sigev_notify = SIGEV_SIGNAL, .sigev_signo = 99};
    T("notify bad signal", mq_notify(q, &badsig));
    struct sigevent badkind = {.sigev_notify = 77};
    T("notify bad kind", mq_notify(q, &badkind));
    mq_send(q, "n", 1, 0);
    usleep(10000);
    printf("signal: %d code_mesgq=%d pid_ok=%d value=%d\n", got_sig, got_code == SI_MESGQ,
           got_pid_ok, got_val);
    got_sig = 0;
    mq_send(q, "m", 1, 0);
    usleep(10000);
    printf("second message signals: %d\n", got_sig);
    recv_one("recv", q, 64);
    recv_one("recv", q, 64);
    T("notify after firing", mq_notify(q, &se));
    T("notify remove", mq_notify(q, NULL));

    /* A blocked receive, woken by a child's send through the inherited descriptor. */
    fflush(stdout);
    pid_t c = fork();
    if (c == 0) {
        usleep(50000);
        mq_send(q, "from child", 10, 9);
        _exit(0);
    }
    recv_one("blocked recv", q, 64);
    waitpid(c, NULL, 0);

    /* A blocked receive interrupted by a signal without SA_RESTART. */
    struct sigaction al = {.sa_handler = on_alarm};
    sigaction(SIGALRM, &al, NULL);
    ualarm(50000, 0);
    recv_one("recv interrupted", q, 64);
    /* A blocked send too. */
    for (int i = 0; i < 4; i++)
        mq_send(q, "f", 1, 0);
    ualarm(50000, 0);
    T("send interrupted", mq_send(q, "g", 1, 0));

    /* dup and close. */
    int d = dup(q);
    attrs("dup", d);
    close(d);
    attrs("closed dup", d);

    fchmod(q, 0640);
    unprivileged();
    rlimit_msgqueue();

    /* Unlink while open. */
    T("unlink", mq_unlink(name));
    T("open after unlink", mq_open(name, O_RDWR));
    attrs("still open", q);
    recv_one("recv after unlink", q, 64);
    T("send after unlink", mq_send(q, "h", 1, 0));
    T("unlink again", mq_unlink(name));
    mqd_t q3 = mq_open(name, O_CREAT | O_EXCL | O_RDWR, 0600, NULL);
    attrs("recreated default", q3);
    mq_close(q3);
    mq_unlink(name);
    mq_close(q);

    fflush(stdout);
    c = fork();
    if (c == 0) {
        mqueue_fs();
        fflush(stdout);
        _exit(0);
    }
    waitpid(c, NULL, 0);
    mq_unlink(name);
    mq_unlink(name2);
    return 0;
}
