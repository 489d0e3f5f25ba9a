// Debian's `ss` (iproute2, answered through NETLINK_SOCK_DIAG) and the counters
// `ss -s`, `netstat -s` and `nstat` read (/proc/net/snmp, snmp6, netstat), run
// from this program over its own sockets. The output is normalised: the sockets'
// ports and inode numbers become their names, pids become P, and runs of blanks one
// space (ss sizes its columns to what it prints). Natively in a fresh network
// namespace (net_common_ns.h), whose counters start at zero as the sandbox's do.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <stddef.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/un.h>
#include "net_common_ns.h"

static struct {
    char proto; /* t, u, x */
    char name[16];
    char port[16];
    char ino[24];
} known[32];
static int nknown;

static void add(const char *name, int fd)
{
    int type = 0;
    socklen_t tl = sizeof type;
    getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl);
    struct sockaddr_storage sa;
    socklen_t sl = sizeof sa;
    getsockname(fd, (struct sockaddr *)&sa, &sl);
    known[nknown].proto = sa.ss_family == AF_UNIX ? 'x' : type == SOCK_STREAM ? 't' : 'u';
    struct stat st;
    fstat(fd, &st);
    struct sockaddr_storage a;
    socklen_t l = sizeof a;
    snprintf(known[nknown].name, 16, "%s", name);
    snprintf(known[nknown].ino, 24, "%lu", (unsigned long)st.st_ino);
    known[nknown].port[0] = 0;
    if (getsockname(fd, (struct sockaddr *)&a, &l) == 0 && a.ss_family != AF_UNIX)
        snprintf(known[nknown].port, 16, "%u", ntohs(((struct sockaddr_in *)&a)->sin_port));
    nknown++;
}

/* The protocol of the sockets a command lists (0: all). */
static char listing;

/* Each token of a line: a known port after ':' or a known inode becomes a name
 * (ports of the listed protocol only: TCP and UDP ports may be the same). */
static char *normalise(char *line)
{
    char out[2048] = "";
    char *save, *tok = strtok_r(line, " \t\n", &save);
    while (tok) {
        char t[2048];
        snprintf(t, sizeof t, "%s", tok);
        char *colon = strrchr(t, ':');
        for (int i = 0; i < nknown; i++) {
            if (listing && known[i].proto != listing)
                continue;
            if (colon && known[i].port[0] && !strcmp(colon + 1, known[i].port))
                snprintf(colon + 1, sizeof t - (colon + 1 - t), "<%s>", known[i].name);
            else if (!strcmp(t, known[i].ino))
                snprintf(t, sizeof t, "<%s>", known[i].name);
        }
        for (char *p = strstr(t, "pid="); p; p = strstr(p + 4, "pid=")) {
            char *e = p + 4;
            while (isdigit((unsigned char)*e))
                e++;
            memmove(p + 5, e, strlen(e) + 1);
            p[4] = 'P';
        }
        strcat(out, out[0] ? " " : "");
        strcat(out, t);
        tok = strtok_r(NULL, " \t\n", &save);
    }
    return strdup(out);
}

/* Runs `cmd`, printing its first line and, sorted, those naming this program's
 * sockets (`mine`) or all of them. */
static void run_lines(const char *cmd, int mine, char proto)
{
    listing = proto;
    printf("$ %s\n", cmd);
    FILE *f = popen(cmd, "r");
    char line[2048];
    char *lines[128];
    int n = 0;
    while (f && n < 128 && fgets(line, sizeof line, f)) {
        int ours = 0;
        for (int k = 0; k < nknown; k++)
            if (!proto || known[k].proto == proto)
                ours |= strstr(line, known[k].ino) || (known[k].port[0] && strstr(line, known[k].port));
        if (n == 0 || !mine || ours)
            lines[n++] = normalise(line);
    }
    /* The first line as it comes, the others sorted (the kernel lists sockets in
     * hash order). */
    for (int i = 1; i < n; i++)
        for (int j = i + 1; j < n; j++)
            if (strcmp(lines[i], lines[j]) > 0) {
                char *t = lines[i];
                lines[i] = lines[j];
                lines[j] = t;
            }
    for (int i = 0; i < n; i++) {
        printf("  %s\n", lines[i]);
        free(lines[i]);
    }
    if (f)
        printf("  status %d\n", pclose(f));
}

static void run(const char *cmd, char proto)
{
    run_lines(cmd, 0, proto);
}

/* The value of `field` in /proc/net/snmp's `group` lines. */
static long snmp(const char *group, const char *field)
{
    FILE *f = fopen("/proc/net/snmp", "r");
    char names[4096], vals[4096];
    long v = -1;
    while (f && fgets(names, sizeof names, f) && fgets(vals, sizeof vals, f)) {
        if (strncmp(names, group, strlen(group)) || names[strlen(group)] != ':')
            continue;
        char *s1, *s2;
        char *n = strtok_r(names, " \n", &s1), *x = strtok_r(vals, " \n", &s2);
        while (n && x) {
            if (!strcmp(n, field))
                v = atol(x);
            n = strtok_r(NULL, " \n", &s1);
            x = strtok_r(NULL, " \n", &s2);
        }
    }
    if (f)
        fclose(f);
    return v;
}

static long snmp6(const char *field)
{
    FILE *f = fopen("/proc/net/snmp6", "r");
    char name[128];
    long v, r = -1;
    while (f && fscanf(f, "%127s %ld", name, &v) == 2)
        if (!strcmp(name, field))
            r = v;
    if (f)
        fclose(f);
    return r;
}

static int tcp_listener(int family)
{
    int s = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    struct sockaddr_in a4 = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (family == AF_INET6)
        bind(s, (struct sockaddr *)&a6, sizeof a6);
    else
        bind(s, (struct sockaddr *)&a4, sizeof a4);
    listen(s, 8);
    return s;
}

static int tcp_connect(int to)
{
    struct sockaddr_storage a;
    socklen_t l = sizeof a;
    getsockname(to, (struct sockaddr *)&a, &l);
    int c = socket(a.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    connect(c, (struct sockaddr *)&a, l);
    return c;
}

int main(void)
{
    fresh_netns();
    setvbuf(stdout, NULL, _IONBF, 0);

    /* The counters' names, as Linux prints them. */
    FILE *f = fopen("/proc/net/snmp", "r");
    char line[4096];
    printf("snmp names:\n");
    for (int i = 0; f && fgets(line, sizeof line, f); i++)
        if (i % 2 == 0 && strncmp(line, "IcmpMsg", 7))
            printf("  %s", line);
    if (f)
        fclose(f);
    f = fopen("/proc/net/netstat", "r");
    printf("netstat names:\n");
    for (int i = 0; f && fgets(line, sizeof line, f); i++)
        if (i % 2 == 0)
            printf("  %s", line);
    if (f)
        fclose(f);
    f = fopen("/proc/net/snmp6", "r");
    int n6 = 0;
    while (f && fgets(line, sizeof line, f))
        if (!strstr(line, "Type"))
            n6++;
    if (f)
        fclose(f);
    printf("snmp6 lines: %d\n", n6);

    int l4 = tcp_listener(AF_INET);
    add("l4", l4);
    int a = tcp_connect(l4);
    int as = accept4(l4, NULL, NULL, SOCK_CLOEXEC);
    add("a", a);
    add("as", as);
    int b = tcp_connect(l4);
    add("b", b);
    int bs = accept4(l4, NULL, NULL, SOCK_CLOEXEC);
    add("bs", bs);
    shutdown(b, SHUT_WR);
    int l6 = tcp_listener(AF_INET6);
    add("l6", l6);
    /* A refused connect: nobody on l6's port over IPv4. */
    struct sockaddr_in r = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct sockaddr_in6 l6a;
    socklen_t l6l = sizeof l6a;
    getsockname(l6, (struct sockaddr *)&l6a, &l6l);
    r.sin_port = l6a.sin6_port;
    int refused = socket(AF_INET, SOCK_STREAM, 0);
    printf("refused: %d\n", connect(refused, (struct sockaddr *)&r, sizeof r) == 0 ? 0 : errno);
    close(refused);
    write(a, "ping", 4);
    char buf[16];
    read(as, buf, sizeof buf);

    int u = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in ua = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bind(u, (struct sockaddr *)&ua, sizeof ua);
    socklen_t ual = sizeof ua;
    getsockname(u, (struct sockaddr *)&ua, &ual);
    add("u", u);
    int uc = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    connect(uc, (struct sockaddr *)&ua, sizeof ua);
    add("uc", uc);
    send(uc, "one", 3, 0);
    send(uc, "two", 3, 0);
    recv(u, buf, sizeof buf, 0);
    recv(u, buf, sizeof buf, 0);
    /* To a port nobody holds: NoPorts, and lo's ICMP port unreachable. */
    int un = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in none = ua;
    none.sin_port = r.sin_port;
    sendto(un, "x", 1, 0, (struct sockaddr *)&none, sizeof none);
    close(un);
    int u6 = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in6 u6a = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    bind(u6, (struct sockaddr *)&u6a, sizeof u6a);
    socklen_t u6l = sizeof u6a;
    getsockname(u6, (struct sockaddr *)&u6a, &u6l);
    add("u6", u6);
    sendto(u6, "six", 3, 0, (struct sockaddr *)&u6a, sizeof u6a);
    recv(u6, buf, sizeof buf, 0);

    int sp[2];
    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp);
    add("x", sp[0]);
    add("y", sp[1]);
    int ul = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un un_a = {.sun_family = AF_UNIX};
    memcpy(un_a.sun_path, "\0rvisor-ss-test", 15);
    bind(ul, (struct sockaddr *)&un_a, offsetof(struct sockaddr_un, sun_path) + 15);
    listen(ul, 4);
    add("ul", ul);
    usleep(100000);

    printf("Tcp ActiveOpens %ld PassiveOpens %ld AttemptFails %ld CurrEstab %ld\n",
           snmp("Tcp", "ActiveOpens"), snmp("Tcp", "PassiveOpens"), snmp("Tcp", "AttemptFails"),
           snmp("Tcp", "CurrEstab"));
    long in = snmp("Tcp", "InSegs"), out = snmp("Tcp", "OutSegs");
    printf("Tcp segments: %s, in %s out\n", in > 0 ? "some" : "none", in == out ? "==" : "!=");
    printf("Tcp OutRsts %s\n", snmp("Tcp", "OutRsts") > 0 ? "some" : "none");
    printf("Udp InDatagrams %ld OutDatagrams %ld NoPorts %ld\n", snmp("Udp", "InDatagrams"),
           snmp("Udp", "OutDatagrams"), snmp("Udp", "NoPorts"));
    printf("Udp6 InDatagrams %ld OutDatagrams %ld\n", snmp6("Udp6InDatagrams"),
           snmp6("Udp6OutDatagrams"));
    printf("Icmp InDestUnreachs %ld OutDestUnreachs %ld\n", snmp("Icmp", "InDestUnreachs"),
           snmp("Icmp", "OutDestUnreachs"));
    long ipin = snmp("Ip", "InReceives"), ipout = snmp("Ip", "OutRequests");
    printf("Ip datagrams: %s, in %s out\n", ipin > 0 ? "some" : "none", ipin == ipout ? "==" : "!=");

    run("ss -tan", 't');
    run("ss -tanp", 't');
    run("ss -tl", 't');
    run("ss -uan", 'u');
    run_lines("ss -xa", 1, 'x');
    run("ss -s | grep -o 'estab [0-9]*'", 0);
    run("nstat -az TcpActiveOpens TcpPassiveOpens TcpAttemptFails UdpInDatagrams "
        "UdpOutDatagrams UdpNoPorts IcmpOutDestUnreachs Udp6InDatagrams | grep -v '^#'",
        0);
    run("netstat -s | grep -E 'active connection|passive connection|failed connection|"
        "connections established|packets received$|packets to unknown port|packets sent$'",
        0);
    return 0;
}
