// A shared mapping of a file not open for writing can never be made writable
// (issue 10, attack 3; Linux's VM_MAYWRITE): as uid 1000, a PROT_READ MAP_SHARED
// mapping of an O_RDONLY descriptor of a root-owned file is mprotect'ed to
// PROT_WRITE (EACCES), also after mremap moves or grows it, for a tmpfs file, a
// root-owned file of the test directory (in the sandbox an overlay file, copied up
// by root first), a memfd sealed with F_SEAL_WRITE, and a SHM_RDONLY attach.
// The files are unchanged afterwards.
// Private mappings stay copy-on-write writable.
// e2e: file=victim.txt:8192
#define _GNU_SOURCE
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
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

static sigjmp_buf jb;

static void on_fault(int sig)
{
    (void)sig;
    siglongjmp(jb, 1);
}

/* Writes through p if it can; says whether the write faulted. */
static void try_write(const char *what, volatile char *p)
{
    if (sigsetjmp(jb, 1)) {
        printf("%s: write faults\n", what);
        return;
    }
    *p = 'X';
    printf("%s: write went through\n", what);
}

/* The attacks on one read-only shared mapping of `fd`. */
static void attack(const char *name, int fd)
{
    char what[128];
    char *p = mmap(NULL, 2 * PG, PROT_READ, MAP_SHARED, fd, 0);
    printf("%s: map read-only: %s\n", name, p == MAP_FAILED ? strerrorname_np(errno) : "ok");
    if (p == MAP_FAILED)
        return;
    snprintf(what, sizeof what, "%s: mprotect write", name);
    E2E_T(what, mprotect(p, PG, PROT_READ | PROT_WRITE));
    snprintf(what, sizeof what, "%s: mprotect write|exec", name);
    E2E_T(what, mprotect(p, 2 * PG, PROT_READ | PROT_WRITE | PROT_EXEC));
    snprintf(what, sizeof what, "%s: mprotect exec", name);
    E2E_T(what, mprotect(p + PG, PG, PROT_READ | PROT_EXEC));
    snprintf(what, sizeof what, "%s: after mprotect", name);
    try_write(what, p);
    munmap(p, 2 * PG);
    /* Move one (a new VMA for the same pages) and grow one in place. */
    p = mmap(NULL, 2 * PG, PROT_READ, MAP_SHARED, fd, 0);
    char *to = mmap(NULL, 2 * PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    char *q = mremap(p, 2 * PG, 2 * PG, MREMAP_MAYMOVE | MREMAP_FIXED, to);
    printf("%s: mremap move: %s\n", name, q == MAP_FAILED ? strerrorname_np(errno) : "ok");
    if (q != MAP_FAILED) {
        snprintf(what, sizeof what, "%s: mprotect write after move", name);
        E2E_T(what, mprotect(q, 2 * PG, PROT_READ | PROT_WRITE));
        snprintf(what, sizeof what, "%s: after move", name);
        try_write(what, q);
        munmap(q, 2 * PG);
    }
    /* Room after it, so the grow happens in place. */
    p = mmap(NULL, 3 * PG, PROT_READ, MAP_SHARED, fd, 0);
    munmap(p + PG, 2 * PG);
    q = mremap(p, PG, 2 * PG, 0);
    printf("%s: mremap grow: %s\n", name, q == MAP_FAILED ? strerrorname_np(errno) : "ok");
    if (q != MAP_FAILED) {
        snprintf(what, sizeof what, "%s: mprotect write after grow", name);
        E2E_T(what, mprotect(q, 2 * PG, PROT_READ | PROT_WRITE));
        munmap(q, 2 * PG);
    }
    snprintf(what, sizeof what, "%s: map shared writable", name);
    E2E_T(what, (long)mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
    /* A private mapping is the caller's copy: writable, the file unchanged. */
    p = mmap(NULL, PG, PROT_READ, MAP_PRIVATE, fd, 0);
    snprintf(what, sizeof what, "%s: private mprotect write", name);
    E2E_T(what, mprotect(p, PG, PROT_READ | PROT_WRITE));
    snprintf(what, sizeof what, "%s: private", name);
    try_write(what, p);
    munmap(p, PG);
}

static unsigned long long file_hash(int fd)
{
    char buf[2 * PG];
    long n = pread(fd, buf, sizeof buf, 0);
    return e2e_fnv1a(E2E_FNV_INIT, buf, n > 0 ? n : 0) ^ (unsigned long long)n;
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    signal(SIGSEGV, on_fault);
    signal(SIGBUS, on_fault);

    char shmpath[64];
    snprintf(shmpath, sizeof shmpath, "/dev/shm/e2e-ro-%d", getpid());
    int t = open(shmpath, O_RDWR | O_CREAT | O_TRUNC, 0644);
    char data[2 * PG];
    memset(data, 'o', sizeof data);
    pwrite(t, data, sizeof data, 0);
    /* Root's file of the test directory, rewritten by root (an overlay copy-up in
     * the sandbox). */
    int v = open("victim.txt", O_RDWR);
    pwrite(v, "root", 4, 0);
    fchown(v, 0, 0);
    fchmod(v, 0644);
    int sealed = memfd_create("e2e-sealed", MFD_ALLOW_SEALING);
    pwrite(sealed, data, sizeof data, 0);
    E2E_T("seal write", fcntl(sealed, F_ADD_SEALS, F_SEAL_WRITE));
    int seg = shmget(IPC_PRIVATE, 2 * PG, IPC_CREAT | 0644);
    unsigned long long before[3] = {file_hash(t), file_hash(v), file_hash(sealed)};

    pid_t pid = fork();
    if (pid == 0) {
        if (setuid(1000) != 0) {
            printf("setuid failed\n");
            _exit(1);
        }
        int fd = open(shmpath, O_RDONLY);
        attack("tmpfs", fd);
        close(fd);
        fd = open("victim.txt", O_RDONLY);
        attack("test dir", fd);
        close(fd);
        E2E_T("test dir: open for writing", open("victim.txt", O_RDWR));
        attack("sealed memfd", sealed);
        char *s = shmat(seg, NULL, SHM_RDONLY);
        printf("shm: attach read-only: %s\n", s == (void *)-1 ? strerrorname_np(errno) : "ok");
        E2E_T("shm: mprotect write", mprotect(s, 2 * PG, PROT_READ | PROT_WRITE));
        try_write("shm", s);
        _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    printf("child exit: %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    unsigned long long after[3] = {file_hash(t), file_hash(v), file_hash(sealed)};
    printf("tmpfs file unchanged: %s\n", before[0] == after[0] ? "yes" : "no");
    printf("test dir file unchanged: %s\n", before[1] == after[1] ? "yes" : "no");
    printf("memfd unchanged: %s\n", before[2] == after[2] ? "yes" : "no");
    char *s = shmat(seg, NULL, SHM_RDONLY);
    int clean = 1;
    for (long i = 0; i < 2 * PG; i++)
        clean &= s[i] == 0;
    printf("segment unchanged: %s\n", clean ? "yes" : "no");
    shmctl(seg, IPC_RMID, NULL);
    unlink(shmpath);
    return 0;
}
