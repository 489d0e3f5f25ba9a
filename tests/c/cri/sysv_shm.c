// A SysV shared memory segment under a fixed key, for tests/tests/cri.rs: `sysv_shm put
// TEXT` creates it and writes TEXT, `sysv_shm get` prints what it holds. Run in two
// containers of one pod, it shows they share the pod's IPC namespace (the segment outlives
// the `put` process). Exits 1 with the failing call's errno when there is no segment.
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/shm.h>

#define KEY 0x52564953 /* "RVIS" */
#define SIZE 4096

int main(int argc, char **argv)
{
    int put = argc == 3 && strcmp(argv[1], "put") == 0;
    int get = argc == 2 && strcmp(argv[1], "get") == 0;
    if (!put && !get) {
        fprintf(stderr, "usage: sysv_shm put TEXT | sysv_shm get\n");
        return 2;
    }
    int id = shmget(KEY, SIZE, put ? IPC_CREAT | 0600 : 0);
    if (id < 0) {
        printf("shmget: %s\n", strerror(errno));
        return 1;
    }
    char *p = shmat(id, NULL, 0);
    if (p == (void *)-1) {
        printf("shmat: %s\n", strerror(errno));
        return 1;
    }
    if (put)
        snprintf(p, SIZE, "%s", argv[2]);
    else
        printf("%s\n", p);
    shmdt(p);
    return 0;
}
