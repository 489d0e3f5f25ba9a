// A blocking FIFO open and the read after it never lose their wake-up, whichever
// end comes first: `mkfifo ff; echo x > ff & cat ff` looped 200 times. (The reader
// that opened after the writer waited forever for end of file on systrap: poll's
// view of such a FIFO never shows the hang-up, yet read returns 0.)
// e2e: stdout=rounds: 200, bytes: 400, timeouts: 0
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    /* A round that hangs ends with SIGALRM and counts as a timeout. */
    signal(SIGALRM, SIG_DFL);
    int rounds = 0, bytes = 0, timeouts = 0;
    for (int i = 0; i < 200; i++) {
        unlink("ff");
        if (mkfifo("ff", 0666) != 0) {
            perror("mkfifo");
            return 1;
        }
        pid_t w = fork();
        if (w == 0) {
            int fd = open("ff", O_WRONLY);
            if (fd < 0 || write(fd, "x\n", 2) != 2)
                _exit(1);
            _exit(0);
        }
        pid_t r = fork();
        if (r == 0) {
            alarm(5);
            int fd = open("ff", O_RDONLY);
            if (fd < 0)
                _exit(100);
            char b[64];
            int got = 0;
            ssize_t n;
            while ((n = read(fd, b, sizeof b)) > 0)
                got += n;
            _exit(got);
        }
        int st;
        waitpid(r, &st, 0);
        if (WIFSIGNALED(st)) {
            timeouts++;
            kill(w, SIGKILL);
        } else {
            bytes += WEXITSTATUS(st);
        }
        waitpid(w, &st, 0);
        rounds++;
        if (timeouts > 2)
            break;
    }
    unlink("ff");
    printf("rounds: %d, bytes: %d, timeouts: %d\n", rounds, bytes, timeouts);
    return 0;
}
