// Linux AIO through the raw system calls (as libaio makes them): the ring header
// io_setup maps at the context's address, preads and pwrites (plain and vectored)
// to a regular file and to /dev/shm, fsync, io_getevents with min_nr and
// timeouts, eventfd notification (IOCB_FLAG_RESFD), a poll on a pipe completed by
// a later write, cancel of a completed op, aio-nr accounting, the ring inherited
// by a forked child whose io_getevents says EINVAL, io_destroy, and errors.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/aio_abi.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "e2e.h"

#define show e2e_show
#define T E2E_T

struct ring {
    unsigned id, nr, head, tail, magic, compat, incompat, header;
    struct io_event ev[];
};

static long setup(unsigned n, aio_context_t *c) { return syscall(SYS_io_setup, n, c); }
static long destroy(aio_context_t c) { return syscall(SYS_io_destroy, c); }
static long submit(aio_context_t c, long n, struct iocb **v) { return syscall(SYS_io_submit, c, n, v); }
static long getev(aio_context_t c, long min, long n, struct io_event *e, struct timespec *t)
{
    return syscall(SYS_io_getevents, c, min, n, e, t);
}

static long aio_nr(void)
{
    FILE *f = fopen("/proc/sys/fs/aio-nr", "r");
    long v = -1;
    if (f) {
        if (fscanf(f, "%ld", &v) != 1)
            v = -1;
        fclose(f);
    }
    return v;
}

static void prep(struct iocb *cb, int op, int fd, void *buf, size_t n, long long off, uint64_t data)
{
    memset(cb, 0, sizeof *cb);
    cb->aio_lio_opcode = op;
    cb->aio_fildes = fd;
    cb->aio_buf = (uint64_t)(uintptr_t)buf;
    cb->aio_nbytes = n;
    cb->aio_offset = off;
    cb->aio_data = data;
}

static void events(const char *what, struct io_event *e, long n, struct iocb **cbs, int ncbs)
{
    printf("%s: %ld\n", what, n);
    for (long i = 0; i < n; i++) {
        int which = -1;
        for (int j = 0; j < ncbs; j++)
            if (e[i].obj == (uint64_t)(uintptr_t)cbs[j])
                which = j;
        printf("  data=%llu iocb=%d res=%lld res2=%lld\n", (unsigned long long)e[i].data, which,
               (long long)e[i].res, (long long)e[i].res2);
    }
}

static void run_file(const char *dir)
{
    char path[256];
    snprintf(path, sizeof path, "%s/e2e_aio_%d", dir, getpid());
    int fd = open(path, O_CREAT | O_TRUNC | O_RDWR, 0600);
    if (fd < 0) {
        printf("%s: open %s\n", dir, strerrorname_np(errno));
        return;
    }
    printf("-- %s\n", strncmp(dir, "/dev/shm", 8) ? "tmp" : "shm");
    aio_context_t ctx = 0;
    T("setup", setup(8, &ctx));
    struct iocb a, b, c, d, e, f;
    struct iocb *cbs[] = {&a, &b, &c, &d, &e, &f};
    char w1[] = "hello, ", w2[] = "aio world";
    prep(&a, IOCB_CMD_PWRITE, fd, w1, 7, 0, 1);
    prep(&b, IOCB_CMD_PWRITE, fd, w2, 9, 7, 2);
    T("submit two writes", submit(ctx, 2, cbs));
    struct io_event ev[8];
    events("getevents", ev, getev(ctx, 2, 8, ev, NULL), cbs, 6);
    char r1[8] = {0}, r2[16] = {0};
    struct iovec iov[2] = {{r1, 5}, {r2, 11}};
    prep(&c, IOCB_CMD_PREADV, fd, iov, 2, 0, 3);
    prep(&d, IOCB_CMD_PREAD, fd, r1 + 5, 2, 14, 4);
    prep(&f, IOCB_CMD_PREAD, fd, r2 + 12, 4, 100, 6);
    struct iocb *reads[] = {&c, &d, &f};
    T("submit three reads", submit(ctx, 3, reads));
    struct ring *ring = (struct ring *)ctx;
    printf("ring pending: %u\n", (ring->tail - ring->head + ring->nr) % ring->nr);
    long n = getev(ctx, 1, 2, ev, NULL);
    events("first two", ev, n, cbs, 6);
    struct timespec zero = {0, 0};
    events("rest", ev, getev(ctx, 0, 8, ev, &zero), cbs, 6);
    /* fsync may complete later (Linux runs it on a worker): wait for it. */
    prep(&e, IOCB_CMD_FSYNC, fd, NULL, 0, 0, 5);
    struct iocb *sync[] = {&e};
    T("submit fsync", submit(ctx, 1, sync));
    events("fsync", ev, getev(ctx, 1, 1, ev, NULL), cbs, 6);
    printf("read: [%s] [%s]\n", r1, r2);
    /* A bad buffer fails the transfer, not the submission. */
    prep(&a, IOCB_CMD_PWRITE, fd, (void *)8, 4, 0, 7);
    T("submit bad buffer", submit(ctx, 1, cbs));
    n = getev(ctx, 1, 1, ev, NULL);
    printf("bad buffer res: %s\n", n == 1 && ev[0].res == -EFAULT ? "EFAULT" : "other");
    T("destroy", destroy(ctx));
    close(fd);
    unlink(path);
}

int main(void)
{
    aio_context_t ctx = 0;
    T("setup 0 events", setup(0, &ctx));
    ctx = 1;
    T("setup nonzero ctx", setup(4, &ctx));
    ctx = 0;
    T("setup too many", setup(1 << 20, &ctx));
    T("setup bad pointer", setup(4, (aio_context_t *)8));
    T("setup", setup(4, &ctx));
    struct ring *ring = (struct ring *)ctx;
    printf("ring: id=%u nr=%u head=%u tail=%u magic=%x compat=%u incompat=%u header=%u\n",
           ring->id, ring->nr, ring->head, ring->tail, ring->magic, ring->compat, ring->incompat,
           ring->header);
    /* aio-nr is machine-wide natively (other tests' contexts come and go): only
     * that ours is counted is certain. */
    printf("aio-nr counts ours: %d\n", aio_nr() >= 4);

    struct io_event ev[8];
    struct timespec t = {0, 50 * 1000000};
    T("getevents empty with timeout", getev(ctx, 1, 1, ev, &t));
    T("getevents min>nr", getev(ctx, 2, 1, ev, NULL));
    T("getevents min<0", getev(ctx, -1, 1, ev, NULL));
    T("getevents bad ctx", getev(12345, 0, 1, ev, NULL));
    T("submit bad ctx", submit(12345, 0, NULL));
    T("submit nr<0", submit(ctx, -1, NULL));
    T("submit zero", submit(ctx, 0, NULL));

    /* Errors of one iocb. */
    char buf[16];
    struct iocb a, b;
    struct iocb *cbs[] = {&a, &b};
    prep(&a, IOCB_CMD_PREAD, 999, buf, 4, 0, 1);
    T("submit bad fd", submit(ctx, 1, cbs));
    prep(&a, 77, 0, buf, 4, 0, 1);
    T("submit bad opcode", submit(ctx, 1, cbs));
    prep(&a, IOCB_CMD_PREAD, 0, buf, 4, 0, 1);
    a.aio_reserved2 = 1;
    T("submit reserved2", submit(ctx, 1, cbs));
    int wr = open("/dev/null", O_WRONLY);
    prep(&a, IOCB_CMD_PREAD, wr, buf, 4, 0, 1);
    T("submit read on write-only", submit(ctx, 1, cbs));
    prep(&a, IOCB_CMD_PREAD, wr, buf, 4, -1, 1);
    prep(&a, IOCB_CMD_FSYNC, wr, buf, 4, 0, 1);
    T("submit fsync with buffer", submit(ctx, 1, cbs));
    prep(&a, IOCB_CMD_PWRITE, wr, buf, 4, 0, 1);
    a.aio_flags = IOCB_FLAG_RESFD;
    a.aio_resfd = wr;
    T("submit resfd not eventfd", submit(ctx, 1, cbs));
    T("submit bad iocb pointer", submit(ctx, 1, (struct iocb **)8));
    /* The second iocb is bad: one is submitted. */
    prep(&a, IOCB_CMD_PWRITE, wr, buf, 4, 0, 11);
    prep(&b, IOCB_CMD_PWRITE, 999, buf, 4, 0, 12);
    T("submit good then bad", submit(ctx, 2, cbs));
    T("getevents", getev(ctx, 1, 8, ev, NULL));
    printf("  res=%lld data=%llu\n", (long long)ev[0].res, (unsigned long long)ev[0].data);

    /* io_getevents believes the ring's tail, which the application can forge: it
     * only reads the ring's own (zeroed) slots. Completions still go where the
     * kernel's tail says. */
    aio_context_t c2 = 0;
    setup(4, &c2);
    struct ring *r2 = (struct ring *)c2;
    prep(&a, IOCB_CMD_PWRITE, wr, buf, 4, 0, 20);
    submit(c2, 1, cbs);
    r2->tail = 5;
    T("getevents after forged tail", getev(c2, 0, 8, ev, &(struct timespec){0, 0}));
    printf("  first data=%llu fifth data=%llu head=%u\n", (unsigned long long)ev[0].data,
           (unsigned long long)ev[4].data, r2->head);
    prep(&a, IOCB_CMD_PWRITE, wr, buf, 4, 0, 21);
    submit(c2, 1, cbs);
    printf("  next completion in slot 1: data=%llu tail=%u\n", (unsigned long long)r2->ev[1].data,
           r2->tail);
    destroy(c2);

    /* Cancel of a completed op. */
    prep(&a, IOCB_CMD_PWRITE, wr, buf, 4, 0, 13);
    submit(ctx, 1, cbs);
    struct io_event res;
    T("cancel completed", syscall(SYS_io_cancel, ctx, &a, &res));
    T("getevents after cancel", getev(ctx, 1, 8, ev, NULL));

    /* eventfd notification. */
    int efd = eventfd(0, EFD_NONBLOCK);
    prep(&a, IOCB_CMD_PWRITE, wr, buf, 4, 0, 14);
    a.aio_flags = IOCB_FLAG_RESFD;
    a.aio_resfd = efd;
    prep(&b, IOCB_CMD_PWRITE, wr, buf, 2, 0, 15);
    b.aio_flags = IOCB_FLAG_RESFD;
    b.aio_resfd = efd;
    T("submit with resfd", submit(ctx, 2, cbs));
    uint64_t cnt = 0;
    T("eventfd read", read(efd, &cnt, 8));
    printf("eventfd count: %llu\n", (unsigned long long)cnt);
    T("getevents", getev(ctx, 2, 8, ev, NULL));

    /* A poll on an empty pipe completes once something is written. */
    int p[2];
    pipe(p);
    prep(&a, IOCB_CMD_POLL, p[0], NULL, 0, 0, 16);
    a.aio_buf = POLLIN;
    a.aio_flags = IOCB_FLAG_RESFD;
    a.aio_resfd = efd;
    T("submit poll", submit(ctx, 1, cbs));
    T("getevents poll not ready", getev(ctx, 1, 1, ev, &(struct timespec){0, 20000000}));
    T("write pipe", write(p[1], "x", 1));
    T("getevents poll", getev(ctx, 1, 1, ev, NULL));
    printf("  poll res has POLLIN: %d data=%llu\n", !!(ev[0].res & POLLIN),
           (unsigned long long)ev[0].data);
    prep(&a, IOCB_CMD_POLL, p[0], NULL, 0, 0, 17);
    a.aio_buf = POLLIN;
    T("submit poll ready", submit(ctx, 1, cbs));
    T("getevents ready poll", getev(ctx, 1, 1, ev, NULL));

    /* The child inherits the ring's mapping, not the context. */
    fflush(stdout);
    pid_t c = fork();
    if (c == 0) {
        printf("child sees magic: %x\n", ring->magic);
        errno = 0;
        T("child getevents", getev(ctx, 0, 1, ev, NULL));
        aio_context_t cc = 0;
        T("child setup", setup(2, &cc));
        T("child destroy own", destroy(cc));
        T("child destroy parent's", destroy(ctx));
        fflush(stdout);
        _exit(0);
    }
    waitpid(c, NULL, 0);

    run_file("/tmp");
    run_file("/dev/shm");

    T("destroy", destroy(ctx));
    T("destroy again", destroy(ctx));
    return 0;
}
