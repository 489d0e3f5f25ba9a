// /proc/PID/comm and /proc/PID/task/TID/comm are writable by the threads of the
// process itself, as on Linux: a write keeps its first 15 bytes (a newline
// included), prctl(PR_GET_NAME) of the thread named sees it, /proc/PID/status
// and stat show the first thread's. Another process (even root) gets EINVAL.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static void show(const char *label, const char *path)
{
    char b[64] = {0};
    int fd = open(path, O_RDONLY);
    int n = fd >= 0 ? read(fd, b, sizeof b - 1) : -1;
    if (fd >= 0)
        close(fd);
    printf("%s: [", label);
    for (int i = 0; i < n; i++)
        printf(b[i] == '\n' ? "\\n" : "%c", b[i]);
    printf("]\n");
}

static const char *put(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY);
    if (fd < 0)
        return strerrorname_np(errno);
    ssize_t n = write(fd, text, strlen(text));
    int e = errno;
    close(fd);
    static char r[32];
    if (n < 0)
        return strerrorname_np(e);
    snprintf(r, sizeof r, "wrote %zd", n);
    return r;
}

static void status_name(const char *label, const char *path)
{
    char line[256];
    FILE *f = fopen(path, "r");
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "Name:", 5) == 0)
            printf("%s: %s", label, line);
    if (f)
        fclose(f);
}

static pid_t worker_tid;
static pthread_barrier_t bar;

static void *worker(void *arg)
{
    (void)arg;
    worker_tid = syscall(SYS_gettid);
    prctl(PR_SET_NAME, "worker");
    pthread_barrier_wait(&bar);
    pthread_barrier_wait(&bar); // the main thread renames us meanwhile
    char n[16] = {0};
    prctl(PR_GET_NAME, n);
    printf("worker: PR_GET_NAME after rename: [%s]\n", n);
    pthread_barrier_wait(&bar);
    return NULL;
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    char path[64];
    prctl(PR_SET_NAME, "start");
    show("initial", "/proc/self/comm");
    printf("write newline name: %s\n", put("/proc/self/comm", "renamed\n"));
    show("after", "/proc/self/comm");
    char n[16] = {0};
    prctl(PR_GET_NAME, n);
    printf("PR_GET_NAME: [%s]\n", strcmp(n, "renamed\n") == 0 ? "renamed\\n" : n);
    status_name("status", "/proc/self/status");
    printf("long name: %s\n", put("/proc/self/comm", "0123456789abcdefghij"));
    show("long", "/proc/self/comm");
    snprintf(path, sizeof path, "/proc/self/task/%d/comm", getpid());
    printf("task dir of main: %s\n", put(path, "main-thread"));
    show("main comm", "/proc/self/comm");

    pthread_barrier_init(&bar, NULL, 2);
    pthread_t t;
    pthread_create(&t, NULL, worker, NULL);
    pthread_barrier_wait(&bar);
    snprintf(path, sizeof path, "/proc/self/task/%d/comm", worker_tid);
    show("worker comm", path);
    printf("rename worker from main: %s\n", put(path, "w2"));
    show("worker comm after", path);
    show("process comm unchanged", "/proc/self/comm");
    pthread_barrier_wait(&bar);
    pthread_barrier_wait(&bar);
    pthread_join(t, NULL);

    pid_t parent = getpid();
    pid_t c = fork();
    if (c == 0) {
        snprintf(path, sizeof path, "/proc/%d/comm", parent);
        printf("child writes parent's comm: %s\n", put(path, "nope"));
        _exit(0);
    }
    waitpid(c, NULL, 0);
    show("parent's comm", "/proc/self/comm");
    return 0;
}
