// TIME_WAIT over loopback: the side that closes first holds its 4-tuple in
// TIME_WAIT (/proc/net/tcp state 06) after both FINs; while it does, a bind to its
// port without SO_REUSEADDR is EADDRINUSE and with SO_REUSEADDR (on both sockets)
// succeeds, and a listener may be made there again. The passive closer, and a
// close with SO_LINGER 0 (RST), leave nothing. Natively in a fresh network
// namespace (net_common_ns.h). The entries' end (60 s) is not waited for here:
// `timewait_ends` in sentry/src/net/tcp.rs.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include "net_common_ns.h"

static struct sockaddr_in lo(int port)
{
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    return a;
}

static int sock(int reuse)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (reuse)
        setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &reuse, sizeof reuse);
    return s;
}

/* The states /proc/net/tcp lists for local port `port` (sorted, e.g. "06 0A"). */
static void states(const char *label, int port)
{
    FILE *f = fopen("/proc/net/tcp", "r");
    char line[512];
    int counts[16] = {0};
    if (f) {
        fgets(line, sizeof line, f);
        while (fgets(line, sizeof line, f)) {
            unsigned a, lp, b, rp, st;
            if (sscanf(line, " %*d: %x:%x %x:%x %x", &a, &lp, &b, &rp, &st) == 5 &&
                (int)lp == port && st < 16)
                counts[st]++;
        }
        fclose(f);
    }
    printf("%s: port %d states:", label, port);
    for (int i = 0; i < 16; i++)
        for (int k = 0; k < counts[i]; k++)
            printf(" %02X", i);
    printf("\n");
}

static void try_bind(const char *label, int port, int reuse, int do_listen)
{
    int s = sock(reuse);
    struct sockaddr_in a = lo(port);
    errno = 0;
    int r = bind(s, (struct sockaddr *)&a, sizeof a);
    printf("%s: bind %s", label, r == 0 ? "0" : strerrorname_np(errno));
    if (r == 0 && do_listen) {
        r = listen(s, 4);
        printf(", listen %s", r == 0 ? "0" : strerrorname_np(errno));
    }
    printf("\n");
    close(s);
}

/* A connection from a client bound to `cport` (0: ephemeral) to a listener on
 * `sport`; returns the connected pair through c and s. */
static void pair(int lreuse, int creuse, int sport, int cport, int *l, int *c, int *s)
{
    *l = sock(lreuse);
    struct sockaddr_in a = lo(sport);
    if (bind(*l, (struct sockaddr *)&a, sizeof a) || listen(*l, 4))
        printf("listener on %d: %s\n", sport, strerrorname_np(errno));
    *c = sock(creuse);
    if (cport) {
        struct sockaddr_in b = lo(cport);
        if (bind(*c, (struct sockaddr *)&b, sizeof b))
            printf("client bind %d: %s\n", cport, strerrorname_np(errno));
    }
    if (connect(*c, (struct sockaddr *)&a, sizeof a))
        printf("connect: %s\n", strerrorname_np(errno));
    *s = accept(*l, NULL, NULL);
}

static void drain_eof(int fd)
{
    char b[16];
    while (read(fd, b, sizeof b) > 0)
        ;
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    fresh_netns();
    int l, c, s;

    // The server closes first: its accepted socket (local port 41001) waits.
    pair(0, 0, 41001, 0, &l, &c, &s);
    write(s, "bye", 3);
    close(s);
    drain_eof(c);
    close(c);
    usleep(50000);
    states("server closed first, listener open", 41001);
    close(l);
    states("listener closed", 41001);
    try_bind("no SO_REUSEADDR", 41001, 0, 0);
    try_bind("SO_REUSEADDR on the new socket only", 41001, 1, 1);

    // The same with SO_REUSEADDR on the listener (so on its accepted socket).
    pair(1, 0, 41002, 0, &l, &c, &s);
    close(s);
    drain_eof(c);
    close(c);
    close(l);
    usleep(50000);
    states("reuseaddr listener, server closed first", 41002);
    try_bind("no SO_REUSEADDR", 41002, 0, 0);
    try_bind("SO_REUSEADDR, then listen", 41002, 1, 1);

    // The client closes first from a bound port: its port waits.
    pair(1, 1, 41003, 41004, &l, &c, &s);
    close(c);
    drain_eof(s);
    close(s);
    usleep(50000);
    states("client closed first", 41004);
    states("its server", 41003);
    try_bind("client port, no SO_REUSEADDR", 41004, 0, 0);
    try_bind("client port, SO_REUSEADDR", 41004, 1, 0);
    close(l);

    // shutdown(SHUT_WR) first, socket still open: TIME_WAIT once the peer's FIN came.
    pair(1, 1, 41005, 41006, &l, &c, &s);
    shutdown(c, SHUT_WR);
    drain_eof(s);
    close(s);
    usleep(50000);
    states("client shut down first, still open", 41006);
    drain_eof(c);
    close(c);
    states("then closed", 41006);
    close(l);

    // Closing with SO_LINGER 0 resets: nothing waits.
    pair(1, 1, 41007, 41008, &l, &c, &s);
    struct linger lg = {1, 0};
    setsockopt(c, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(c);
    usleep(50000);
    close(s);
    close(l);
    states("client reset", 41008);
    states("its server", 41007);
    try_bind("after a reset", 41008, 0, 0);

    // Only one side closed, the peer did not: FIN_WAIT2 (orphaned) and CLOSE_WAIT.
    pair(1, 1, 41009, 41010, &l, &c, &s);
    close(c);
    usleep(50000);
    states("client closed, server not", 41010);
    states("server", 41009);
    close(s);
    close(l);
    states("server closed too", 41010);
    return 0;
}
