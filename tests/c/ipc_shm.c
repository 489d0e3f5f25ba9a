// System V shared memory: a segment shared by parent and child, IPC_STAT counts,
// keys and IPC_EXCL, read-only attaches, IPC_RMID with attaches left, bad input.
// Keys are made from the pid, always even, so runs in parallel never meet each other's
// segments and key + 1 is never anyone's.
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/shm.h>
#include <sys/wait.h>
#include <unistd.h>

static void show(const char *what, long r)
{
    if (r < 0)
        printf("%s: %s\n", what, strerrorname_np(errno));
    else
        printf("%s: ok\n", what);
}
#define T(what, expr) do { errno = 0; show(what, (long)(expr)); } while (0)

static void segv(int s)
{
    (void)s;
    printf("write to read-only attach: SIGSEGV\n");
    fflush(stdout);
    _exit(0);
}

int main(void)
{
    key_t key = 0x52000000 | ((getpid() & 0x7fffff) << 1);
    int id = shmget(key, 10000, IPC_CREAT | IPC_EXCL | 0600);
    show("shmget create", id);
    T("shmget excl again", shmget(key, 10000, IPC_CREAT | IPC_EXCL | 0600));
    printf("shmget same key same id: %d\n", shmget(key, 100, 0600) == id);
    T("shmget bigger than the segment", shmget(key, 20000, 0600));
    T("shmget missing key", shmget(key + 1, 100, 0600));
    T("shmget size 0", shmget(IPC_PRIVATE, 0, 0600));
    char *p = shmat(id, NULL, 0);
    show("shmat", p == (void *)-1 ? -1 : 0);
    struct shmid_ds ds;
    shmctl(id, IPC_STAT, &ds);
    printf("size %zu nattch %lu mode %o\n", ds.shm_segsz, (unsigned long)ds.shm_nattch,
           ds.shm_perm.mode & 0777);
    printf("zeroed: %d\n", p[0] == 0 && p[9999] == 0);
    strcpy(p, "from parent");
    fflush(stdout);
    pid_t c = fork();
    if (c == 0) {
        char *q = shmat(id, NULL, 0);
        printf("child sees: %s\n", q);
        strcpy(q + 100, "from child");
        shmdt(q);
        fflush(stdout);
        _exit(0);
    }
    waitpid(c, NULL, 0);
    printf("parent sees: %s\n", p + 100);
    shmctl(id, IPC_STAT, &ds);
    printf("nattch after child: %lu\n", (unsigned long)ds.shm_nattch);
    /* A second attach at a chosen address, and SHM_RND. */
    char *fixed = (char *)0x7e0000000000;
    char *r = shmat(id, fixed + 123, SHM_RND);
    printf("SHM_RND rounds down: %d\n", r == fixed);
    printf("same bytes: %d\n", strcmp(r, "from parent") == 0);
    T("shmat unaligned without SHM_RND", (long)shmat(id, fixed + 123, 0));
    T("shmat over a mapping without SHM_REMAP", (long)shmat(id, fixed, 0));
    T("shmdt", shmdt(r));
    T("shmdt again", shmdt(r));
    T("shmdt not a segment", shmdt(&ds));
    /* Read-only attach. */
    char *ro = shmat(id, NULL, SHM_RDONLY);
    printf("read-only sees: %s\n", ro);
    /* IPC_SET and permissions. */
    ds.shm_perm.mode = 0640;
    T("IPC_SET", shmctl(id, IPC_SET, &ds));
    shmctl(id, IPC_STAT, &ds);
    printf("mode now %o\n", ds.shm_perm.mode & 0777);
    /* Removal while attached: the id is gone, the memory stays for the attaches. */
    T("IPC_RMID", shmctl(id, IPC_RMID, NULL));
    T("IPC_STAT after RMID", shmctl(id, IPC_STAT, &ds));
    printf("still readable: %s\n", p);
    T("shmdt after RMID", shmdt(p));
    T("shmctl bad id", shmctl(123456789, IPC_STAT, &ds));
    T("shmctl bad cmd", shmctl(id, 9999, &ds));
    fflush(stdout);
    signal(SIGSEGV, segv);
    ro[0] = 'x';
    printf("write to read-only attach: allowed?\n");
    return 1;
}
