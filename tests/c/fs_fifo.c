// FIFOs: open rules (ENXIO, EOF with no writer, blocking opens that meet), data
// between processes, poll readiness.
#define _GNU_SOURCE
#include <stdlib.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
int main(void)
{
    char dir[] = "/dev/shm/fifo_XXXXXX";
    mkdtemp(dir);
    chdir(dir);
    mkfifo("f", 0600);
    int w = open("f", O_WRONLY | O_NONBLOCK);
    printf("nonblock writer without reader: %s\n", w < 0 ? strerrorname_np(errno) : "OK");
    int r = open("f", O_RDONLY | O_NONBLOCK);
    printf("nonblock reader: %s\n", r < 0 ? strerrorname_np(errno) : "OK");
    char b[64];
    printf("read no writer: %zd\n", read(r, b, sizeof b));
    fflush(stdout);
    pid_t p = fork();
    if (p == 0) {
        int fd = open("f", O_WRONLY);
        write(fd, "from child", 10);
        close(fd);
        _exit(0);
    }
    struct pollfd pf = {r, POLLIN, 0};
    poll(&pf, 1, 5000);
    ssize_t n = read(r, b, sizeof b);
    printf("read %zd %.*s\n", n, (int)n, b);
    waitpid(p, NULL, 0);
    close(r);
    /* Blocking opens meet each other. */
    fflush(stdout);
    p = fork();
    if (p == 0) {
        int fd = open("f", O_RDONLY);
        n = read(fd, b, sizeof b);
        printf("child read %zd %.*s\n", n, (int)n, b);
        fflush(stdout);
        _exit(0);
    }
    w = open("f", O_WRONLY);
    write(w, "hello", 5);
    close(w);
    waitpid(p, NULL, 0);
    unlink("f");
    chdir("/");
    rmdir(dir);
    printf("done\n");
    return 0;
}
