// exec of a static program, a dynamic one and a #! script; close-on-exec; and
// /proc/self/exe after exec.
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "child") == 0) {
        int fd = atoi(argv[2]);
        printf("child: argc=%d fd %d open=%s\n", argc, fd, fcntl(fd, F_GETFD) == -1 ? "no" : "yes");
        return 5;
    }
    int keep = open("/proc/self/exe", O_RDONLY) >= 0 ? 1 : 1;
    (void)keep;
    int fd = open(argv[0], O_RDONLY | O_CLOEXEC);
    char num[16];
    snprintf(num, sizeof num, "%d", fd);
    fflush(stdout);
    pid_t c = fork();
    if (c == 0) { execl(argv[0], argv[0], "child", num, (char *)NULL); _exit(99); }
    int st;
    waitpid(c, &st, 0);
    printf("static exec status=%d\n", WEXITSTATUS(st));
    c = fork();
    if (c == 0) { execl("/bin/echo", "echo", "dynamic", "echo", (char *)NULL); _exit(99); }
    waitpid(c, &st, 0);
    printf("dynamic exec status=%d\n", WEXITSTATUS(st));
    c = fork();
    if (c == 0) { execl("/bin/sh", "sh", "-c", "echo script $0 $1", "a", "b", (char *)NULL); _exit(99); }
    waitpid(c, &st, 0);
    printf("sh status=%d\n", WEXITSTATUS(st));
    c = fork();
    if (c == 0) { execl("/nonexistent", "x", (char *)NULL); _exit(42); }
    waitpid(c, &st, 0);
    printf("missing exec: child exit=%d\n", WEXITSTATUS(st));
    return 0;
}
