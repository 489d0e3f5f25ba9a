// A mapping of a tmpfs file reaches that file's pages and nothing else (issue 10,
// attack 2). An unprivileged uid maps its own /dev/shm file at offsets past any
// size the file can have (64 GiB steps: where the next file's data used to lie in
// the sentry's memory file), and grows a mapping with mremap past its end: every
// access must be SIGBUS (BUS_ADRERR), never a root-owned 0600 file's data, and a
// write must not reach root's later files or System V segments. Then the rules of
// pages past end of file (SIGBUS, valid again once the file grows, zero after a
// shrink and regrow; for tmpfs files and memfds), memory zero on reuse, and
// Linux's mmap argument errors.
#define _GNU_SOURCE
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "e2e.h"

#define PG 4096L
#define SLOT (1L << 36)

static sigjmp_buf jb;
static volatile int sig_code;

static void on_fault(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    sig_code = sig == SIGBUS ? si->si_code : -sig;
    siglongjmp(jb, 1);
}

static const char *code_name(int c)
{
    switch (c) {
    case BUS_ADRERR: return "SIGBUS BUS_ADRERR";
    case BUS_ADRALN: return "SIGBUS BUS_ADRALN";
    case BUS_OBJERR: return "SIGBUS BUS_OBJERR";
    case -SIGSEGV: return "SIGSEGV";
    default: return "SIGBUS other";
    }
}

/* Reads (or writes `c` at) *p; prints what happened under `what`. Returns the byte
 * read (or written), -1 on a fault. */
static int touch(const char *what, volatile char *p, int write, char c)
{
    if (sigsetjmp(jb, 1)) {
        printf("%s: %s\n", what, code_name(sig_code));
        return -1;
    }
    int v;
    if (write) {
        *p = c;
        v = c;
    } else {
        v = (unsigned char)*p;
    }
    printf("%s: ok %d\n", what, v);
    return v;
}

static void fill_file(const char *path, int mode, const char *text, long len)
{
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, mode);
    char *buf = malloc(len);
    for (long i = 0; i < len; i++)
        buf[i] = text[i % strlen(text)];
    if (pwrite(fd, buf, len, 0) != len)
        printf("fill %s failed\n", path);
    fchmod(fd, mode);
    free(buf);
    close(fd);
}

static int all_zero(const char *p, long n)
{
    for (long i = 0; i < n; i++)
        if (p[i])
            return 0;
    return 1;
}

/* As uid 1000: map the own file past anything it can hold. */
static void attacker(const char *mine)
{
    if (setuid(1000) != 0) {
        printf("setuid failed\n");
        _exit(1);
    }
    int fd = open(mine, O_RDWR);
    printf("attacker opens own file: %s\n", fd >= 0 ? "yes" : "no");
    for (long k = 1; k <= 4; k++) {
        char what[64];
        char *p = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, k * SLOT);
        snprintf(what, sizeof what, "map at %ld x 64 GiB", k);
        if (p == MAP_FAILED) {
            printf("%s: %s\n", what, strerrorname_np(errno));
            continue;
        }
        strcat(what, " read");
        touch(what, p, 0, 0);
        what[strlen(what) - 4] = 0;
        strcat(what, "write");
        touch(what, p, 1, 'P');
        munmap(p, PG);
    }
    /* The last page an offset in the first 64 GiB can name, grown by mremap. */
    char *p = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, SLOT - PG);
    if (p == MAP_FAILED) {
        printf("map last page: %s\n", strerrorname_np(errno));
    } else {
        char *q = mremap(p, PG, 3 * PG, MREMAP_MAYMOVE);
        printf("mremap grow: %s\n", q == MAP_FAILED ? strerrorname_np(errno) : "ok");
        if (q != MAP_FAILED) {
            touch("grown page 1 read", q + PG, 0, 0);
            touch("grown page 1 write", q + PG, 1, 'P');
            touch("grown page 2 write", q + 2 * PG, 1, 'P');
            munmap(q, 3 * PG);
        }
    }
    close(fd);
    _exit(0);
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    struct sigaction sa = {0};
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigaction(SIGBUS, &sa, NULL);
    sigaction(SIGSEGV, &sa, NULL);

    char mine[64], secret[64], later[64];
    snprintf(mine, sizeof mine, "/dev/shm/e2e-mine-%d", getpid());
    snprintf(secret, sizeof secret, "/dev/shm/e2e-secret-%d", getpid());
    snprintf(later, sizeof later, "/dev/shm/e2e-later-%d", getpid());

    /* The attacker's file first, root's secret right after it. */
    fill_file(mine, 0644, "mine", PG);
    chown(mine, 1000, 1000);
    fill_file(secret, 0600, "TOPSECRET", 4 * PG);

    pid_t pid = fork();
    if (pid == 0)
        attacker(mine);
    int st;
    waitpid(pid, &st, 0);
    printf("attacker exit: %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);

    /* Root's secret is untouched; root's new file and segment hold only zeros. */
    char buf[4 * PG];
    int fd = open(secret, O_RDONLY);
    long n = pread(fd, buf, sizeof buf, 0);
    close(fd);
    int intact = n == 4 * PG;
    for (long i = 0; intact && i < n; i++)
        intact = buf[i] == "TOPSECRET"[i % 9];
    printf("secret intact: %s\n", intact ? "yes" : "no");
    for (int i = 0; i < 3; i++) {
        fd = open(later, O_RDWR | O_CREAT | O_TRUNC, 0600);
        ftruncate(fd, 4 * PG);
        char *p = mmap(NULL, 4 * PG, PROT_READ, MAP_SHARED, fd, 0);
        printf("new file %d zero: %s\n", i, p != MAP_FAILED && all_zero(p, 4 * PG) ? "yes" : "no");
        munmap(p, 4 * PG);
        close(fd);
        unlink(later);
        int id = shmget(IPC_PRIVATE, 4 * PG, IPC_CREAT | 0600);
        char *s = shmat(id, NULL, 0);
        printf("new segment %d zero: %s\n", i, s != (void *)-1 && all_zero(s, 4 * PG) ? "yes" : "no");
        /* Plant data in it for the next round to look for. */
        memset(s, 'S', 4 * PG);
        shmdt(s);
        shmctl(id, IPC_RMID, NULL);
    }

    /* Pages past end of file. */
    fd = open(later, O_RDWR | O_CREAT | O_TRUNC, 0600);
    pwrite(fd, "abc", 3, PG);
    char *p = mmap(NULL, 3 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    printf("map past eof: %s\n", p == MAP_FAILED ? strerrorname_np(errno) : "ok");
    touch("page 1 byte 1", p + PG + 1, 0, 0);
    touch("page 1 past eof in page", p + PG + 100, 0, 0);
    touch("page 2 read (past eof)", p + 2 * PG, 0, 0);
    touch("page 2 write (past eof)", p + 2 * PG + 5, 1, 'w');
    ftruncate(fd, 3 * PG);
    touch("page 2 after grow read", p + 2 * PG + 5, 0, 0);
    touch("page 2 after grow write", p + 2 * PG + 5, 1, 'w');
    char c = 0;
    pread(fd, &c, 1, 2 * PG + 5);
    printf("pread sees mapping write: %c\n", c);
    ftruncate(fd, PG);
    touch("page 1 after shrink write", p + PG, 1, 'x');
    touch("page 2 after shrink write", p + 2 * PG + 5, 1, 'y');
    ftruncate(fd, 3 * PG);
    printf("after shrink and regrow zero: %s\n", all_zero(p + PG, 2 * PG) ? "yes" : "no");
    munmap(p, 3 * PG);
    p = mmap(NULL, PG, PROT_READ, MAP_SHARED, fd, 1L << 40);
    printf("map 1 TiB past: %s\n", p == MAP_FAILED ? strerrorname_np(errno) : "ok");
    if (p != MAP_FAILED) {
        touch("1 TiB past read", p, 0, 0);
        munmap(p, PG);
    }

    /* The same rules for a memfd. */
    int mfd = memfd_create("e2e", 0);
    pwrite(mfd, "abc", 3, 2 * PG);
    p = mmap(NULL, 3 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
    touch("memfd page 2", p + 2 * PG, 0, 0);
    E2E_T("memfd shrink", ftruncate(mfd, PG));
    touch("memfd page 2 after shrink", p + 2 * PG, 0, 0);
    E2E_T("memfd regrow", ftruncate(mfd, 3 * PG));
    printf("memfd after shrink and regrow zero: %s\n", all_zero(p + PG, 2 * PG) ? "yes" : "no");
    munmap(p, 3 * PG);
    close(mfd);

    /* Linux's argument errors. */
    E2E_T("len 0", (long)mmap(NULL, 0, PROT_READ, MAP_SHARED, fd, 0));
    E2E_T("unaligned offset", (long)mmap(NULL, PG, PROT_READ, MAP_SHARED, fd, 100));
    E2E_T("end past MAX_LFS_FILESIZE",
          (long)mmap(NULL, 2 * PG, PROT_READ, MAP_SHARED, fd, 0x7ffffffffffff000L));
    E2E_T("offset 2^63", (long)mmap(NULL, PG, PROT_READ, MAP_SHARED, fd, (off_t)(1UL << 63)));
    close(fd);
    unlink(later);
    fd = open("/dev/shm", O_RDONLY | O_DIRECTORY);
    E2E_T("directory", (long)mmap(NULL, PG, PROT_READ, MAP_SHARED, fd, 0));
    close(fd);
    int pfd[2];
    pipe(pfd);
    E2E_T("pipe", (long)mmap(NULL, PG, PROT_READ, MAP_SHARED, pfd[0], 0));
    fd = open(secret, O_WRONLY);
    E2E_T("write-only fd", (long)mmap(NULL, PG, PROT_READ, MAP_SHARED, fd, 0));
    close(fd);
    unlink(mine);
    unlink(secret);
    return 0;
}
