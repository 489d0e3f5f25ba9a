// The scheduling calls with per-thread bookkeeping and Linux's rules: policies and
// real-time priorities (sched_setscheduler/getscheduler/setparam/getparam/
// rr_get_interval/setattr/getattr), SCHED_RESET_ON_FORK, affinity that reads back
// as set, nice values per thread, process group and user (get/setpriority), I/O
// priorities, getcpu; unprivileged callers get EPERM/EACCES where Linux gives them.
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct attr {
    uint32_t size, policy;
    uint64_t flags;
    int32_t nice;
    uint32_t priority;
    uint64_t runtime, deadline, period;
    uint32_t util_min, util_max;
};

static void show(const char *what, long r) {
    if (r < 0)
        printf("%s: -1 %s\n", what, strerrorname_np(errno));
    else
        printf("%s: %ld\n", what, r);
}

static void getattr_show(const char *what, pid_t pid) {
    struct attr a;
    memset(&a, 0xff, sizeof a);
    long r = syscall(SYS_sched_getattr, pid, &a, sizeof a, 0);
    if (r < 0)
        show(what, r);
    else
        printf("%s: size=%u policy=%u flags=%lu nice=%d prio=%u\n", what, a.size, a.policy,
               (unsigned long)a.flags, a.nice, a.priority);
}

static void *thread_nice(void *arg) {
    (void)arg;
    /* Nice is per thread: this thread's change leaves the main thread's alone. */
    show("thread setpriority 7", setpriority(PRIO_PROCESS, 0, 7));
    show("thread getpriority", getpriority(PRIO_PROCESS, 0));
    return NULL;
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    /* Start from nice 0 whatever the caller (a niced test run) left. */
    if (setpriority(PRIO_PROCESS, 0, 0) != 0)
        return 1;
    struct sched_param p = {0};
    show("getscheduler", sched_getscheduler(0));
    show("getparam", sched_getparam(0, &p));
    printf("priority: %d\n", p.sched_priority);
    show("getscheduler -1", sched_getscheduler(-1));
    show("getscheduler 999999", sched_getscheduler(999999));
    p.sched_priority = 5;
    show("setscheduler OTHER prio 5", sched_setscheduler(0, SCHED_OTHER, &p));
    show("setscheduler bad policy", sched_setscheduler(0, 4, &p));
    p.sched_priority = 100;
    show("setscheduler FIFO 100", sched_setscheduler(0, SCHED_FIFO, &p));
    show("setscheduler NULL param", syscall(SYS_sched_setscheduler, 0, SCHED_OTHER, NULL));
    p.sched_priority = 0;
    show("setscheduler BATCH", sched_setscheduler(0, SCHED_BATCH, &p));
    show("getscheduler", sched_getscheduler(0));
    p.sched_priority = 3;
    show("setscheduler RR 3 (root)", sched_setscheduler(0, SCHED_RR, &p));
    show("getscheduler", sched_getscheduler(0));
    struct timespec ts;
    show("rr_get_interval", sched_rr_get_interval(0, &ts));
    printf("rr interval: %ld.%09ld\n", (long)ts.tv_sec, ts.tv_nsec);
    p.sched_priority = 7;
    show("setparam 7", sched_setparam(0, &p));
    show("getparam", sched_getparam(0, &p));
    printf("priority: %d\n", p.sched_priority);
    getattr_show("getattr RR", 0);
    p.sched_priority = 0;
    show("setscheduler OTHER|RESET_ON_FORK", sched_setscheduler(0, SCHED_OTHER | SCHED_RESET_ON_FORK, &p));
    show("getscheduler", sched_getscheduler(0));
    getattr_show("getattr", 0);

    struct attr a;
    memset(&a, 0, sizeof a);
    a.size = sizeof a;
    a.policy = SCHED_OTHER;
    a.nice = 3;
    show("setattr OTHER nice 3", syscall(SYS_sched_setattr, 0, &a, 0));
    show("getpriority", getpriority(PRIO_PROCESS, 0));
    getattr_show("getattr", 0);
    a.size = 8;
    show("setattr size 8", syscall(SYS_sched_setattr, 0, &a, 0));
    printf("size written back: %u\n", a.size);
    a.size = sizeof a;
    show("setattr flags 1", syscall(SYS_sched_setattr, 0, &a, 1));
    show("getattr small size", syscall(SYS_sched_getattr, 0, &a, 16, 0));
    a.size = sizeof a;
    a.policy = SCHED_DEADLINE;
    a.runtime = 10;
    a.deadline = 5;
    show("setattr DEADLINE bad params", syscall(SYS_sched_setattr, 0, &a, 0));

    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(0, &set);
    show("setaffinity {0}", sched_setaffinity(0, sizeof set, &set));
    CPU_ZERO(&set);
    sched_getaffinity(0, sizeof set, &set);
    printf("affinity count: %d, cpu0: %d\n", CPU_COUNT(&set), CPU_ISSET(0, &set));
    /* A set far larger than the machine's; only the kernel's mask size is read. */
    size_t big = CPU_ALLOC_SIZE(1 << 16);
    cpu_set_t *bs = CPU_ALLOC(1 << 16);
    CPU_ZERO_S(big, bs);
    for (int i = 0; i < (1 << 16); i++)
        CPU_SET_S(i, big, bs);
    show("setaffinity huge set", sched_setaffinity(0, big, bs));
    CPU_ZERO_S(big, bs);
    CPU_SET_S((1 << 16) - 1, big, bs);
    show("setaffinity only cpu 65535", sched_setaffinity(0, big, bs));
    show("setaffinity pid -1", sched_setaffinity(-1, big, bs));
    CPU_ZERO(&set);
    show("setaffinity empty", sched_setaffinity(0, sizeof set, &set));
    show("getaffinity 4 bytes", syscall(SYS_sched_getaffinity, 0, 4, &set));

    pid_t c = fork();
    if (c == 0) {
        /* RESET_ON_FORK was set while OTHER: the child keeps OTHER, flag cleared. */
        show("child getscheduler", sched_getscheduler(0));
        show("child getpriority", getpriority(PRIO_PROCESS, 0));
        show("child setpriority 10", setpriority(PRIO_PROCESS, 0, 10));
        if (setgid(1000) != 0 || setuid(1000) != 0)
            _exit(1);
        show("unpriv setpriority 5 (lower nice)", setpriority(PRIO_PROCESS, 0, 5));
        show("unpriv setpriority 12", setpriority(PRIO_PROCESS, 0, 12));
        show("unpriv getpriority", getpriority(PRIO_PROCESS, 0));
        show("unpriv setpriority parent", setpriority(PRIO_PROCESS, getppid(), 12));
        struct sched_param q = {1};
        show("unpriv setscheduler FIFO", sched_setscheduler(0, SCHED_FIFO, &q));
        q.sched_priority = 0;
        show("unpriv setscheduler IDLE", sched_setscheduler(0, SCHED_IDLE, &q));
        show("unpriv setscheduler back to OTHER", sched_setscheduler(0, SCHED_OTHER, &q));
        show("unpriv ioprio_set RT", syscall(SYS_ioprio_set, 1, 0, (1 << 13) | 4));
        show("unpriv ioprio_set BE 7", syscall(SYS_ioprio_set, 1, 0, (2 << 13) | 7));
        show("unpriv ioprio_get", syscall(SYS_ioprio_get, 1, 0));
        show("unpriv setaffinity parent", sched_setaffinity(getppid(), sizeof set, &set));
        _exit(0);
    }
    waitpid(c, NULL, 0);

    pthread_t t;
    pthread_create(&t, NULL, thread_nice, NULL);
    pthread_join(t, NULL);
    show("main getpriority", getpriority(PRIO_PROCESS, 0));
    show("setpriority pgrp -2", setpriority(PRIO_PGRP, 0, -2));
    printf("getpriority pgrp: %d\n", getpriority(PRIO_PGRP, 0));
    show("getpriority bad which", getpriority(7, 0));
    show("getpriority no such pid", getpriority(PRIO_PROCESS, 999999));
    show("setpriority 30 (clamped)", setpriority(PRIO_PROCESS, 0, 30));
    show("getpriority", getpriority(PRIO_PROCESS, 0));
    setpriority(PRIO_PROCESS, 0, 0);

    show("ioprio_get", syscall(SYS_ioprio_get, 1, 0));
    show("ioprio_set BE 2", syscall(SYS_ioprio_set, 1, 0, (2 << 13) | 2));
    show("ioprio_get", syscall(SYS_ioprio_get, 1, 0));
    show("ioprio_set NONE 1", syscall(SYS_ioprio_set, 1, 0, 1));
    show("ioprio_set class 5", syscall(SYS_ioprio_set, 1, 0, 5 << 13));
    show("ioprio_get bad which", syscall(SYS_ioprio_get, 9, 0));

    unsigned cpu = 99, node = 99;
    show("getcpu", syscall(SYS_getcpu, &cpu, &node, NULL));
    printf("cpu valid: %s, node: %u\n", cpu < (unsigned)sysconf(_SC_NPROCESSORS_ONLN) ? "yes" : "no", node);
    return 0;
}
