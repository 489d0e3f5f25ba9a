// Threads share the working directory and umask (CLONE_FS): a change made by one
// thread is seen by the others.
#include <pthread.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

static void *t(void *a) {
    (void)a;
    chdir("/usr");
    umask(077);
    return NULL;
}

int main(void) {
    chdir("/");
    umask(022);
    pthread_t th;
    pthread_create(&th, NULL, t, NULL);
    pthread_join(th, NULL);
    char buf[256];
    printf("cwd after thread chdir: %s\n", getcwd(buf, sizeof buf));
    mode_t old = umask(0);
    printf("umask after thread umask: %03o\n", old);
    return 0;
}
