// NETLINK_SOCK_DIAG: the SOCK_DIAG_BY_FAMILY requests `ss` makes, for TCP and UDP
// over IPv4 and IPv6 (inet_diag_req_v2: states, ports, a bytecode filter, the
// INET_DIAG_INFO/MEMINFO/SKMEMINFO/CONG/TOS/TCLASS extensions, one socket by its
// 4-tuple) and AF_UNIX (unix_diag_req: UDIAG_SHOW_NAME/VFS/PEER/ICONS/RQLEN/
// MEMINFO/UID, one socket by inode), and the errors for what has no handler.
// Only this program's own sockets are printed (matched by inode), with ports and
// inodes replaced by the names of the sockets, sorted (the kernel lists them in
// hash order). Natively in a fresh network namespace (net_common_ns.h).
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/tcp.h>
#include <linux/unix_diag.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/un.h>
#include "net_common_ns.h"

#define MAXS 32
struct known {
    const char *name;
    int fd;
    unsigned long ino;
    int lport, rport;
};
static struct known socks[MAXS];
static int nsocks;

static void add(const char *name, int fd)
{
    struct stat st;
    fstat(fd, &st);
    struct known *k = &socks[nsocks++];
    k->name = name;
    k->fd = fd;
    k->ino = st.st_ino;
    struct sockaddr_storage a;
    socklen_t l = sizeof a;
    k->lport = k->rport = -1;
    if (getsockname(fd, (struct sockaddr *)&a, &l) == 0 && a.ss_family != AF_UNIX)
        k->lport = ntohs(((struct sockaddr_in *)&a)->sin_port);
    l = sizeof a;
    if (getpeername(fd, (struct sockaddr *)&a, &l) == 0 && a.ss_family != AF_UNIX)
        k->rport = ntohs(((struct sockaddr_in *)&a)->sin_port);
}

static const char *by_ino(unsigned long ino)
{
    for (int i = 0; i < nsocks; i++)
        if (socks[i].ino == ino)
            return socks[i].name;
    return NULL;
}

static char *lines[256];
static int nlines;

static void flush(const char *title)
{
    for (int i = 0; i < nlines; i++)
        for (int j = i + 1; j < nlines; j++)
            if (strcmp(lines[i], lines[j]) > 0) {
                char *t = lines[i];
                lines[i] = lines[j];
                lines[j] = t;
            }
    printf("== %s (%d)\n", title, nlines);
    for (int i = 0; i < nlines; i++) {
        printf("  %s\n", lines[i]);
        free(lines[i]);
    }
    nlines = 0;
}

/* Sends one request; returns the error of an NLMSG_ERROR answer (0 for none),
 * 1000 plus the error an NLMSG_DONE carries, and hands every other message to
 * `cb`. */
static int ask(int fd, int type, int flags, const void *req, int len,
               void (*cb)(struct nlmsghdr *))
{
    char buf[4096];
    struct nlmsghdr *h = (struct nlmsghdr *)buf;
    memset(buf, 0, sizeof buf);
    h->nlmsg_len = NLMSG_LENGTH(len);
    h->nlmsg_type = type;
    h->nlmsg_flags = NLM_F_REQUEST | flags;
    h->nlmsg_seq = 7;
    memcpy(NLMSG_DATA(h), req, len);
    struct sockaddr_nl k = {.nl_family = AF_NETLINK};
    if (sendto(fd, buf, h->nlmsg_len, 0, (struct sockaddr *)&k, sizeof k) < 0)
        return -errno;
    static char in[65536];
    for (;;) {
        int n = recv(fd, in, sizeof in, 0);
        if (n < 0)
            return -errno;
        for (struct nlmsghdr *m = (struct nlmsghdr *)in; NLMSG_OK(m, n); m = NLMSG_NEXT(m, n)) {
            if (m->nlmsg_seq != 7)
                continue;
            if (m->nlmsg_type == NLMSG_DONE)
                return m->nlmsg_len >= NLMSG_LENGTH(4) ? 1000 + *(int *)NLMSG_DATA(m) : 1000;
            if (m->nlmsg_type == NLMSG_ERROR)
                return ((struct nlmsgerr *)NLMSG_DATA(m))->error;
            cb(m);
            if (!(m->nlmsg_flags & NLM_F_MULTI))
                return 0;
        }
    }
}

static const char *proto_name = "";

static void inet_cb(struct nlmsghdr *m)
{
    struct inet_diag_msg *r = NLMSG_DATA(m);
    const char *name = by_ino(r->idiag_inode);
    if (!name)
        return;
    char attrs[128] = "", extra[256] = "";
    struct rtattr *a = (struct rtattr *)(r + 1);
    int len = m->nlmsg_len - NLMSG_LENGTH(sizeof *r);
    for (; RTA_OK(a, len); a = RTA_NEXT(a, len)) {
        int t = a->rta_type;
        /* The mark (CAP_NET_ADMIN only), cgroup ids and newer attributes differ by
         * kernel and privilege. */
        if (t == INET_DIAG_MARK || (t >= 21 && t != INET_DIAG_SOCKOPT))
            continue;
        sprintf(attrs + strlen(attrs), "%s%d", attrs[0] ? "," : "", t);
        unsigned char *d = RTA_DATA(a);
        if (t == INET_DIAG_SHUTDOWN || t == INET_DIAG_SKV6ONLY || t == INET_DIAG_TOS ||
            t == INET_DIAG_TCLASS)
            sprintf(extra + strlen(extra), " a%d=%u", t, d[0]);
        if (t == INET_DIAG_INFO)
            sprintf(extra + strlen(extra), " tcpi_state=%u", ((struct tcp_info *)d)->tcpi_state);
        /* INET_DIAG_CONG: the host's congestion control (bbr, cubic) may differ. */
        if (t == INET_DIAG_SOCKOPT)
            sprintf(extra + strlen(extra), " sockopt=%02x", d[0]);
        if (t == INET_DIAG_MEMINFO || t == INET_DIAG_SKMEMINFO)
            sprintf(extra + strlen(extra), " len%d=%d", t, (int)RTA_PAYLOAD(a));
    }
    struct known *k = NULL;
    for (int i = 0; i < nsocks; i++)
        if (!strcmp(socks[i].name, name))
            k = &socks[i];
    int ports_ok = ntohs(r->id.idiag_sport) == k->lport &&
                   (ntohs(r->id.idiag_dport) == k->rport ||
                    (k->rport == -1 && r->id.idiag_dport == 0));
    char *line;
    asprintf(&line, "%s%d %s st=%d rq=%u wq=%u uid=%u ports=%s timer=%d [%s]%s", proto_name,
             r->idiag_family == AF_INET ? 4 : 6, name, r->idiag_state, r->idiag_rqueue,
             r->idiag_wqueue, r->idiag_uid, ports_ok ? "ok" : "BAD", r->idiag_timer, attrs,
             extra);
    lines[nlines++] = line;
}

static void inet_dump(int fd, const char *title, int family, int proto, int ext, int states,
                      int sport, int dport, const void *bc, int bclen)
{
    char req[sizeof(struct inet_diag_req_v2) + 256];
    memset(req, 0, sizeof req);
    struct inet_diag_req_v2 *r = (struct inet_diag_req_v2 *)req;
    r->sdiag_family = family;
    r->sdiag_protocol = proto;
    r->idiag_ext = ext;
    r->idiag_states = states;
    r->id.idiag_sport = htons(sport);
    r->id.idiag_dport = htons(dport);
    int len = sizeof *r;
    if (bc) {
        struct rtattr *a = (struct rtattr *)(req + len);
        a->rta_type = INET_DIAG_REQ_BYTECODE;
        a->rta_len = RTA_LENGTH(bclen);
        memcpy(RTA_DATA(a), bc, bclen);
        len += RTA_ALIGN(a->rta_len);
    }
    proto_name = proto == IPPROTO_TCP ? "tcp" : "udp";
    int e = ask(fd, SOCK_DIAG_BY_FAMILY, NLM_F_DUMP, req, len, inet_cb);
    printf("%s: %d\n", title, e);
    flush(title);
}

static void unix_cb(struct nlmsghdr *m)
{
    struct unix_diag_msg *r = NLMSG_DATA(m);
    const char *name = by_ino(r->udiag_ino);
    if (!name)
        return;
    char extra[512] = "";
    struct rtattr *a = (struct rtattr *)(r + 1);
    int len = m->nlmsg_len - NLMSG_LENGTH(sizeof *r);
    for (; RTA_OK(a, len); a = RTA_NEXT(a, len)) {
        unsigned char *d = RTA_DATA(a);
        int n = RTA_PAYLOAD(a);
        switch (a->rta_type) {
        case UNIX_DIAG_NAME:
            sprintf(extra + strlen(extra), " name=%s%.*s", d[0] ? "" : "@", d[0] ? n : n - 1,
                    d[0] ? (char *)d : (char *)d + 1);
            break;
        case UNIX_DIAG_VFS: {
            struct unix_diag_vfs *v = (void *)d;
            /* The kernel's field holds 32 bits of the inode number. */
            struct stat st;
            stat("sd.sock", &st);
            sprintf(extra + strlen(extra), " vfs=%s", v->udiag_vfs_ino == (unsigned)st.st_ino ? "ok" : "BAD");
            break;
        }
        case UNIX_DIAG_PEER: {
            const char *p = by_ino(*(unsigned *)d);
            sprintf(extra + strlen(extra), " peer=%s", p ? p : "?");
            break;
        }
        case UNIX_DIAG_ICONS:
            sprintf(extra + strlen(extra), " icons=");
            for (int i = 0; i < n / 4; i++) {
                const char *p = by_ino(((unsigned *)d)[i]);
                sprintf(extra + strlen(extra), "%s%s", i ? "," : "", p ? p : "?");
            }
            break;
        case UNIX_DIAG_RQLEN: {
            struct unix_diag_rqlen *q = (void *)d;
            /* The send queue is buffer memory natively (not comparable) but for a
             * listener (the backlog). */
            if (r->udiag_state == 10)
                sprintf(extra + strlen(extra), " rq=%u wq=%u", q->udiag_rqueue, q->udiag_wqueue);
            else
                sprintf(extra + strlen(extra), " rq=%u", q->udiag_rqueue);
            break;
        }
        case UNIX_DIAG_MEMINFO:
            sprintf(extra + strlen(extra), " meminfo=%d", n);
            break;
        case UNIX_DIAG_SHUTDOWN:
            sprintf(extra + strlen(extra), " shut=%u", d[0]);
            break;
        case UNIX_DIAG_UID:
            sprintf(extra + strlen(extra), " uid=%u", *(unsigned *)d);
            break;
        default:
            sprintf(extra + strlen(extra), " a%d", a->rta_type);
        }
    }
    char *line;
    asprintf(&line, "%s type=%d st=%d%s", name, r->udiag_type, r->udiag_state, extra);
    lines[nlines++] = line;
}

static void unix_ask(int fd, const char *title, int flags, int states, unsigned ino, int show)
{
    struct unix_diag_req r;
    memset(&r, 0, sizeof r);
    r.sdiag_family = AF_UNIX;
    r.udiag_states = states;
    r.udiag_ino = ino;
    r.udiag_show = show;
    r.udiag_cookie[0] = r.udiag_cookie[1] = INET_DIAG_NOCOOKIE;
    int e = ask(fd, SOCK_DIAG_BY_FAMILY, flags, &r, sizeof r, unix_cb);
    printf("%s: %d\n", title, e);
    flush(title);
}

static int tcp_listener(int family, int v6only, int backlog)
{
    int s = socket(family, SOCK_STREAM, 0);
    struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    struct sockaddr_in a4 = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (family == AF_INET6) {
        setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only);
        bind(s, (struct sockaddr *)&a6, sizeof a6);
    } else {
        bind(s, (struct sockaddr *)&a4, sizeof a4);
    }
    listen(s, backlog);
    return s;
}

static int tcp_connect(int family, int to)
{
    struct sockaddr_storage a;
    socklen_t l = sizeof a;
    getsockname(to, (struct sockaddr *)&a, &l);
    int c = socket(family, SOCK_STREAM, 0);
    if (connect(c, (struct sockaddr *)&a, l) != 0)
        perror("connect");
    return c;
}

int main(void)
{
    fresh_netns();
    setvbuf(stdout, NULL, _IONBF, 0);

    int d = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
    printf("socket: %s\n", d >= 0 ? "ok" : strerror(errno));
    if (d < 0)
        return 0;
    int v = 0;
    socklen_t vl = sizeof v;
    getsockopt(d, SOL_SOCKET, SO_PROTOCOL, &v, &vl);
    printf("SO_PROTOCOL: %d\n", v);

    /* TCP over IPv4: a listener with one connection accepted, one waiting in its
     * queue, one half-closed; five unread bytes on one side. */
    int l4 = tcp_listener(AF_INET, 0, 5);
    add("l4", l4);
    int a = tcp_connect(AF_INET, l4);
    int as = accept(l4, NULL, NULL);
    int b = tcp_connect(AF_INET, l4);
    usleep(50000);
    int c = tcp_connect(AF_INET, l4);
    int cs = accept(l4, NULL, NULL);
    /* The second accept took `b`'s connection; `c`'s waits in the queue. */
    add("a", a);
    add("as", as);
    add("b", b);
    add("bs", cs);
    add("c", c);
    write(a, "hello", 5);
    shutdown(b, SHUT_WR);
    setsockopt(a, IPPROTO_IP, IP_TOS, &(int){0x10}, sizeof(int));
    usleep(100000);

    /* TCP over IPv6: a v6-only listener on ::1 and a connection. */
    int l6 = tcp_listener(AF_INET6, 1, 3);
    add("l6", l6);
    int e6 = tcp_connect(AF_INET6, l6);
    int e6s = accept(l6, NULL, NULL);
    add("e6", e6);
    add("e6s", e6s);

    /* UDP: bound, and connected to it; an IPv6 one on :: (dual stack). */
    int u = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in ua = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bind(u, (struct sockaddr *)&ua, sizeof ua);
    socklen_t ual = sizeof ua;
    getsockname(u, (struct sockaddr *)&ua, &ual);
    int uc = socket(AF_INET, SOCK_DGRAM, 0);
    connect(uc, (struct sockaddr *)&ua, sizeof ua);
    shutdown(uc, SHUT_RD);
    int u6 = socket(AF_INET6, SOCK_DGRAM, 0);
    struct sockaddr_in6 u6a = {.sin6_family = AF_INET6};
    bind(u6, (struct sockaddr *)&u6a, sizeof u6a);
    add("u", u);
    add("uc", uc);
    add("u6", u6);
    usleep(50000);

    int all = 0xfff;
    int ext4 = 1 << (INET_DIAG_INFO - 1) | 1 << (INET_DIAG_MEMINFO - 1) |
               1 << (INET_DIAG_SKMEMINFO - 1) | 1 << (INET_DIAG_CONG - 1) |
               1 << (INET_DIAG_TOS - 1);
    inet_dump(d, "tcp4 all", AF_INET, IPPROTO_TCP, 0, all, 0, 0, NULL, 0);
    inet_dump(d, "tcp4 ext", AF_INET, IPPROTO_TCP, ext4, all, 0, 0, NULL, 0);
    inet_dump(d, "tcp4 listen", AF_INET, IPPROTO_TCP, 0, 1 << 10, 0, 0, NULL, 0);
    inet_dump(d, "tcp4 established+finwait2", AF_INET, IPPROTO_TCP, 0, 1 << 1 | 1 << 5, 0, 0,
              NULL, 0);
    inet_dump(d, "tcp4 sport", AF_INET, IPPROTO_TCP, 0, all, socks[0].lport, 0, NULL, 0);
    inet_dump(d, "tcp4 dport", AF_INET, IPPROTO_TCP, 0, all, 0, socks[0].lport, NULL, 0);
    inet_dump(d, "tcp6 all", AF_INET6, IPPROTO_TCP,
              1 << (INET_DIAG_TCLASS - 1) | 1 << (INET_DIAG_INFO - 1), all, 0, 0, NULL, 0);
    inet_dump(d, "tcp any family", AF_UNSPEC, IPPROTO_TCP, 0, 1 << 10, 0, 0, NULL, 0);
    inet_dump(d, "udp4", AF_INET, IPPROTO_UDP, ext4, all, 0, 0, NULL, 0);
    inet_dump(d, "udp6", AF_INET6, IPPROTO_UDP, 1 << (INET_DIAG_TCLASS - 1), all, 0, 0, NULL, 0);

    /* Bytecode: the destination port is the listener's (D_EQ), or not (JMP). */
    unsigned char bc[8] = {INET_DIAG_BC_D_EQ, 8, 12, 0, 0, 0, 0, 0};
    unsigned short lp = socks[0].lport;
    memcpy(bc + 6, &lp, 2);
    inet_dump(d, "tcp4 bytecode dport", AF_INET, IPPROTO_TCP, 0, all, 0, 0, bc, 8);
    unsigned char cond[16] = {INET_DIAG_BC_S_COND, 16, 20, 0, AF_INET, 8, 0, 0};
    *(int *)(cond + 8) = -1;
    cond[12] = 127;
    inet_dump(d, "tcp4 bytecode src 127/8", AF_INET, IPPROTO_TCP, 0, all, 0, 0, cond, 16);
    unsigned char bad[8] = {INET_DIAG_BC_S_EQ, 6, 12, 0, 0, 0, 0, 0};
    inet_dump(d, "bytecode bad jump", AF_INET, IPPROTO_TCP, 0, all, 0, 0, bad, 8);
    unsigned char badop[4] = {99, 4, 8, 0};
    inet_dump(d, "bytecode bad op", AF_INET, IPPROTO_TCP, 0, all, 0, 0, badop, 4);

    /* One socket by its 4-tuple. */
    {
        struct inet_diag_req_v2 r;
        memset(&r, 0, sizeof r);
        r.sdiag_family = AF_INET;
        r.sdiag_protocol = IPPROTO_TCP;
        r.idiag_states = all;
        r.id.idiag_sport = htons(socks[1].lport); /* a */
        r.id.idiag_dport = htons(socks[1].rport);
        r.id.idiag_src[0] = r.id.idiag_dst[0] = htonl(INADDR_LOOPBACK);
        r.id.idiag_cookie[0] = r.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
        proto_name = "tcp";
        printf("exact: %d\n", ask(d, SOCK_DIAG_BY_FAMILY, 0, &r, sizeof r, inet_cb));
        flush("exact");
        r.id.idiag_dport = htons(1);
        printf("exact missing: %d\n", ask(d, SOCK_DIAG_BY_FAMILY, 0, &r, sizeof r, inet_cb));
        flush("exact missing");
    }

    /* What has no handler, and malformed requests. */
    {
        struct inet_diag_req_v2 r;
        memset(&r, 0, sizeof r);
        r.idiag_states = all;
        r.sdiag_family = 47;
        printf("family past AF_MAX: %d\n",
               ask(d, SOCK_DIAG_BY_FAMILY, NLM_F_DUMP, &r, sizeof r, inet_cb));
        r.sdiag_family = AF_INET;
        r.sdiag_protocol = IPPROTO_ICMP;
        printf("inet icmp: %d\n", ask(d, SOCK_DIAG_BY_FAMILY, NLM_F_DUMP, &r, sizeof r, inet_cb));
        r.sdiag_protocol = IPPROTO_TCP;
        printf("short request: %d\n", ask(d, SOCK_DIAG_BY_FAMILY, NLM_F_DUMP, &r, 20, inet_cb));
        printf("unknown type: %d\n", ask(d, 99, NLM_F_DUMP, &r, sizeof r, inet_cb));
        flush("errors");
    }

    /* AF_UNIX: a pair with unread bytes and one side shut, a listener on an
     * abstract name with a connection waiting, a datagram socket on a path. */
    int sp[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, sp);
    add("x", sp[0]);
    add("y", sp[1]);
    write(sp[0], "abc", 3);
    shutdown(sp[1], SHUT_WR);
    int ul = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    memcpy(un.sun_path, "\0rvisor-sockdiag", 16);
    bind(ul, (struct sockaddr *)&un, offsetof(struct sockaddr_un, sun_path) + 16);
    listen(ul, 4);
    add("ul", ul);
    int ucn = socket(AF_UNIX, SOCK_STREAM, 0);
    connect(ucn, (struct sockaddr *)&un, offsetof(struct sockaddr_un, sun_path) + 16);
    add("ucn", ucn);
    unlink("sd.sock");
    int ud = socket(AF_UNIX, SOCK_DGRAM, 0);
    struct sockaddr_un pa = {.sun_family = AF_UNIX, .sun_path = "sd.sock"};
    bind(ud, (struct sockaddr *)&pa, sizeof pa);
    add("ud", ud);
    int show = UDIAG_SHOW_NAME | UDIAG_SHOW_VFS | UDIAG_SHOW_PEER | UDIAG_SHOW_ICONS |
               UDIAG_SHOW_RQLEN | UDIAG_SHOW_MEMINFO | UDIAG_SHOW_UID;
    unix_ask(d, "unix all", NLM_F_DUMP, 0xfff, 0, show);
    unix_ask(d, "unix ss -xa", NLM_F_DUMP, 0xfff, 0,
             UDIAG_SHOW_NAME | UDIAG_SHOW_PEER | UDIAG_SHOW_RQLEN);
    unix_ask(d, "unix listening", NLM_F_DUMP, 1 << 10, 0, UDIAG_SHOW_NAME);
    unix_ask(d, "unix none shown", NLM_F_DUMP, 1 << 7, 0, 0);
    unix_ask(d, "unix exact", 0, 0, (unsigned)socks[nsocks - 1].ino, show);
    unix_ask(d, "unix exact missing", 0, 0, 0x7ffffff0, show);
    unlink("sd.sock");
    return 0;
}
