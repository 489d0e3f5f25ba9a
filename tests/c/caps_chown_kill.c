// chown(2) without CAP_CHOWN and kill(2) of another user's process without
// CAP_KILL are EPERM for uid 0; with the capability back in effective they work.
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include "e2e.h"
#include "caps_common.h"

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    caps_start(0);
    char path[] = "/tmp/caps_chown_XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) {
        perror("mkstemp");
        return 1;
    }
    caps_set(KEEP & ~BIT(CAP_CHOWN), KEEP, 0);
    TRY("chown without CAP_CHOWN", chown(path, 1000, 1000));
    TRY("fchown to own uid", fchown(fd, 0, -1));
    caps_set(KEEP, KEEP, 0);
    TRY("chown with CAP_CHOWN", chown(path, 1000, 1000));
    struct stat st;
    stat(path, &st);
    printf("owner: %u:%u\n", st.st_uid, st.st_gid);
    unlink(path);

    pid_t c = fork();
    if (c == 0) {
        if (setresuid(1000, 1000, 1000) != 0)
            _exit(1);
        pause();
        _exit(0);
    }
    usleep(100000);
    caps_set(KEEP & ~BIT(CAP_KILL), KEEP, 0);
    TRY("kill without CAP_KILL", kill(c, SIGTERM));
    TRY("signal 0 without CAP_KILL", kill(c, 0));
    caps_set(KEEP, KEEP, 0);
    TRY("kill with CAP_KILL", kill(c, SIGTERM));
    int s;
    waitpid(c, &s, 0);
    printf("child: signaled %d sig %d\n", WIFSIGNALED(s), WTERMSIG(s));
    return 0;
}
