// Futexes shared between processes: a named semaphore in /dev/shm (a MAP_SHARED
// tmpfs file) and a MAP_SHARED|MAP_ANONYMOUS word, each posted by a forked child
// and waited for by the parent.
#include <fcntl.h>
#include <linux/futex.h>
#include <semaphore.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

int main(void) {
    char name[64];
    snprintf(name, sizeof name, "/e2e-sem-%d", (int)getpid() + 17);
    sem_t *s = sem_open(name, O_CREAT | O_EXCL, 0600, 0);
    if (s == SEM_FAILED) { perror("sem_open"); return 1; }
    sem_unlink(name);
    pid_t c = fork();
    if (c == 0) { usleep(20000); sem_post(s); _exit(0); }
    sem_wait(s);
    waitpid(c, NULL, 0);
    printf("named semaphore: posted by child, seen by parent\n");

    int *w = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    c = fork();
    if (c == 0) {
        usleep(20000);
        __atomic_store_n(w, 1, __ATOMIC_SEQ_CST);
        syscall(SYS_futex, w, FUTEX_WAKE, 1, NULL, NULL, 0);
        _exit(0);
    }
    while (__atomic_load_n(w, __ATOMIC_SEQ_CST) == 0) syscall(SYS_futex, w, FUTEX_WAIT, 0, NULL, NULL, 0);
    waitpid(c, NULL, 0);
    printf("shared anonymous futex: woken, value %d\n", *w);
    return 0;
}
