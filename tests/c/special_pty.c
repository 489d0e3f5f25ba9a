// A pseudo-terminal pair in one process: ptmx, unlock, canonical mode with echo,
// output processing, raw mode, window size, hang-up.
#define _GNU_SOURCE
#include "e2e.h"
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <termios.h>
#include <unistd.h>

#define R(label, expr)                                                                   \
    do {                                                                                 \
        long r_ = (long)(expr);                                                          \
        int e_ = errno;                                                                  \
        printf("%s: %ld %s(%d)\n", label, r_, r_ < 0 ? e2e_errname(e_) : "OK", r_ < 0 ? e_ : 0); \
    } while (0)

/* Reads until `want` bytes arrived or nothing more comes within 500ms. */
static void expect(const char *label, int fd, int want)
{
    char buf[256];
    int got = 0;
    while (got < want) {
        struct pollfd pf = {fd, POLLIN, 0};
        if (poll(&pf, 1, 500) <= 0 || !(pf.revents & POLLIN))
            break;
        long n = read(fd, buf + got, sizeof buf - got);
        if (n <= 0)
            break;
        got += n;
    }
    printf("%s: %d \"", label, got);
    for (int i = 0; i < got; i++) {
        unsigned char c = buf[i];
        if (c == '\r') printf("\\r");
        else if (c == '\n') printf("\\n");
        else if (c == '\b') printf("\\b");
        else if (c < 32) printf("^%c", c + 64);
        else putchar(c);
    }
    printf("\"\n");
}

static void nothing(const char *label, int fd)
{
    struct pollfd pf = {fd, POLLIN, 0};
    int n = poll(&pf, 1, 100);
    printf("%s: %s\n", label, n == 0 ? "nothing" : "something");
}

int main(void)
{
    int m = posix_openpt(O_RDWR | O_NOCTTY);
    printf("master: %s\n", m >= 0 ? "yes" : "no");
    const char *name = ptsname(m);
    printf("name in /dev/pts: %s\n", name && strncmp(name, "/dev/pts/", 9) == 0 ? "yes" : "no");
    int lock = -1;
    ioctl(m, TIOCGPTLCK, &lock);
    printf("locked: %d\n", lock);
    R("open locked slave", open(name, O_RDWR | O_NOCTTY));
    R("grantpt", grantpt(m));
    R("unlockpt", unlockpt(m));
    int s = open(name, O_RDWR | O_NOCTTY);
    printf("slave: %s isatty: %d %d\n", s >= 0 ? "yes" : "no", isatty(s), isatty(m));
    struct stat st;
    fstat(s, &st);
    printf("slave chr: %d major: %u\n", S_ISCHR(st.st_mode), major(st.st_rdev));
    struct termios t;
    tcgetattr(s, &t);
    printf("icanon: %d echo: %d isig: %d onlcr: %d icrnl: %d\n", !!(t.c_lflag & ICANON),
           !!(t.c_lflag & ECHO), !!(t.c_lflag & ISIG), !!(t.c_oflag & ONLCR), !!(t.c_iflag & ICRNL));

    write(m, "helo", 4);
    nothing("slave before newline", s);
    write(m, "\177lo\r", 4);
    expect("slave reads", s, 6);
    expect("master echo", m, 11);
    write(s, "out\n", 4);
    expect("master reads", m, 5);

    struct termios raw = t;
    cfmakeraw(&raw);
    raw.c_cc[VMIN] = 1;
    raw.c_cc[VTIME] = 0;
    tcsetattr(s, TCSANOW, &raw);
    write(m, "ab\r", 3);
    expect("raw slave reads", s, 3);
    nothing("raw no echo", m);
    write(s, "x\n", 2);
    expect("raw output", m, 2);
    tcsetattr(s, TCSANOW, &t);

    struct winsize ws = {24, 80, 0, 0}, got = {0};
    ioctl(s, TIOCSWINSZ, &ws);
    ioctl(m, TIOCGWINSZ, &got);
    printf("winsize: %dx%d\n", got.ws_row, got.ws_col);
    int avail = -1;
    write(m, "z\n", 2);
    poll(&(struct pollfd){s, POLLIN, 0}, 1, 500);
    ioctl(s, FIONREAD, &avail);
    printf("FIONREAD: %d\n", avail);
    expect("drain slave", s, 2);
    expect("drain echo", m, 3);
    close(s);
    struct pollfd pf = {m, POLLIN, 0};
    poll(&pf, 1, 500);
    printf("master hup: %d\n", !!(pf.revents & POLLHUP));
    char c;
    R("master read after slave close", read(m, &c, 1));
    return 0;
}
