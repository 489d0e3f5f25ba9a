// splice from a pipe into a file, and sendfile, honour RLIMIT_FSIZE as write does:
// a transfer crossing the limit is cut short, one at the limit raises SIGXFSZ and
// fails with EFBIG. A cut-short splice raises SIGXFSZ too: Linux's loop writes on
// and meets the limit.
// e2e: stdout=splice across limit: 4096
// e2e: stdout=splice at limit: -1 EFBIG
// e2e: stdout=SIGXFSZ: 2
// e2e: stdout=file size: 4096
// e2e: stdout=sendfile across limit: 4096
// e2e: stdout=sendfile at limit: -1 EFBIG
// e2e: stdout=SIGXFSZ: 4
// e2e: stdout=file size: 4096
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

static volatile sig_atomic_t xfsz;
static void on_xfsz(int s) {
    (void)s;
    xfsz++;
}

static void show(const char *what, long r) {
    if (r < 0)
        printf("%s: -1 %s\n", what, strerrorname_np(errno));
    else
        printf("%s: %ld\n", what, r);
}

static long size_of(int fd) {
    struct stat st;
    fstat(fd, &st);
    return st.st_size;
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    signal(SIGXFSZ, on_xfsz);
    static char buf[16384];
    memset(buf, 'a', sizeof buf);
    int src = open("splice-src", O_RDWR | O_CREAT | O_TRUNC, 0644);
    write(src, buf, sizeof buf);
    struct rlimit rl = {4096, RLIM_INFINITY};
    if (setrlimit(RLIMIT_FSIZE, &rl) != 0)
        return 1;

    int p[2];
    pipe(p);
    write(p[1], buf, 8192);
    int out = open("splice-out", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    show("splice across limit", splice(p[0], NULL, out, NULL, 8192, 0));
    show("splice at limit", splice(p[0], NULL, out, NULL, 4096, 0));
    printf("SIGXFSZ: %d\n", (int)xfsz);
    printf("file size: %ld\n", size_of(out));
    close(out);

    out = open("sendfile-out", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    off_t off = 0;
    show("sendfile across limit", sendfile(out, src, &off, 8192));
    show("sendfile at limit", sendfile(out, src, &off, 4096));
    printf("SIGXFSZ: %d\n", (int)xfsz);
    printf("file size: %ld\n", size_of(out));
    unlink("splice-src");
    unlink("splice-out");
    unlink("sendfile-out");
    return 0;
}
