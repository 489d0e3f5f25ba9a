// The loopback interface of a network namespace made inside the sandbox, as
// Linux makes it: down, without addresses (127.0.0.1 unreachable, ::1 not an
// address), until a program adds 127.0.0.1/8 through netlink (RTM_NEWADDR, as
// bubblewrap does) and brings lo up (RTM_NEWLINK), which also adds ::1. Then
// loopback TCP works. SIOCSIFFLAGS brings it down (IPv6 address gone, IPv4
// kept) and up again; RTM_DELADDR removes the address. A netlink socket's port
// id is the process id in its own pid namespace (bubblewrap compares replies'
// nlmsg_pid with getpid() in a new pid namespace).
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *en(int r)
{
    return r == 0 ? "OK" : strerrorname_np(errno);
}

static int seq = 100;

/* Sends one request and returns the error of its acknowledgement (0, -errno),
 * checking the reply's sequence number and port id. */
static int nl_request(int fd, struct nlmsghdr *h)
{
    h->nlmsg_seq = ++seq;
    h->nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK;
    struct sockaddr_nl k = {.nl_family = AF_NETLINK};
    if (sendto(fd, h, h->nlmsg_len, 0, (struct sockaddr *)&k, sizeof k) < 0)
        return -1000 - errno;
    char buf[8192];
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n < (ssize_t)sizeof(struct nlmsghdr))
        return -2000;
    struct nlmsghdr *r = (struct nlmsghdr *)buf;
    if (r->nlmsg_seq != (unsigned)seq)
        return -3000;
    if (r->nlmsg_pid != (unsigned)getpid())
        return -4000;
    if (r->nlmsg_type != NLMSG_ERROR)
        return -5000;
    return ((struct nlmsgerr *)NLMSG_DATA(r))->error;
}

static void add_attr(struct nlmsghdr *h, int type, const void *data, int len)
{
    struct rtattr *a = (struct rtattr *)((char *)h + NLMSG_ALIGN(h->nlmsg_len));
    a->rta_type = type;
    a->rta_len = RTA_LENGTH(len);
    memcpy(RTA_DATA(a), data, len);
    h->nlmsg_len = NLMSG_ALIGN(h->nlmsg_len) + RTA_ALIGN(a->rta_len);
}

static int addr_req(int fd, int type, int flags, int index, const char *ip, int prefix)
{
    char buf[256] = {0};
    struct nlmsghdr *h = (struct nlmsghdr *)buf;
    h->nlmsg_len = NLMSG_LENGTH(sizeof(struct ifaddrmsg));
    h->nlmsg_type = type;
    h->nlmsg_flags = flags;
    struct ifaddrmsg *m = NLMSG_DATA(h);
    m->ifa_family = AF_INET;
    m->ifa_prefixlen = prefix;
    m->ifa_flags = IFA_F_PERMANENT;
    m->ifa_scope = RT_SCOPE_HOST;
    m->ifa_index = index;
    struct in_addr a;
    inet_pton(AF_INET, ip, &a);
    add_attr(h, IFA_LOCAL, &a, 4);
    add_attr(h, IFA_ADDRESS, &a, 4);
    return nl_request(fd, h);
}

static int link_req(int fd, int index, unsigned flags, unsigned change)
{
    char buf[256] = {0};
    struct nlmsghdr *h = (struct nlmsghdr *)buf;
    h->nlmsg_len = NLMSG_LENGTH(sizeof(struct ifinfomsg));
    h->nlmsg_type = RTM_NEWLINK;
    struct ifinfomsg *m = NLMSG_DATA(h);
    m->ifi_family = AF_UNSPEC;
    m->ifi_index = index;
    m->ifi_flags = flags;
    m->ifi_change = change;
    return nl_request(fd, h);
}

/* Prints lo's addresses from an RTM_GETADDR dump. */
static void show_addrs(int fd, const char *label)
{
    char buf[512] = {0};
    struct nlmsghdr *h = (struct nlmsghdr *)buf;
    h->nlmsg_len = NLMSG_LENGTH(sizeof(struct ifaddrmsg));
    h->nlmsg_type = RTM_GETADDR;
    h->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    h->nlmsg_seq = ++seq;
    send(fd, h, h->nlmsg_len, 0);
    printf("%s: addrs:", label);
    for (int done = 0; !done;) {
        static char rb[65536];
        ssize_t n = recv(fd, rb, sizeof rb, 0);
        if (n <= 0)
            break;
        for (struct nlmsghdr *r = (struct nlmsghdr *)rb; NLMSG_OK(r, n); r = NLMSG_NEXT(r, n)) {
            if (r->nlmsg_type == NLMSG_DONE || r->nlmsg_type == NLMSG_ERROR) {
                done = 1;
                break;
            }
            struct ifaddrmsg *m = NLMSG_DATA(r);
            int len = IFA_PAYLOAD(r);
            for (struct rtattr *a = IFA_RTA(m); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
                if (a->rta_type != IFA_ADDRESS)
                    continue;
                char s[64];
                inet_ntop(m->ifa_family, RTA_DATA(a), s, sizeof s);
                printf(" %s/%d@%d scope %d", s, m->ifa_prefixlen, m->ifa_index, m->ifa_scope);
            }
        }
    }
    printf("\n");
}

static void show_flags(const char *label)
{
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct ifreq ifr = {0};
    strcpy(ifr.ifr_name, "lo");
    int r = ioctl(s, SIOCGIFFLAGS, &ifr);
    printf("%s: flags %s: up=%d loopback=%d running=%d\n", label, en(r), !!(ifr.ifr_flags & IFF_UP),
           !!(ifr.ifr_flags & IFF_LOOPBACK), !!(ifr.ifr_flags & IFF_RUNNING));
    memset(&ifr.ifr_addr, 0, sizeof ifr.ifr_addr);
    r = ioctl(s, SIOCGIFADDR, &ifr);
    char a[32] = "-";
    if (r == 0)
        inet_ntop(AF_INET, &((struct sockaddr_in *)&ifr.ifr_addr)->sin_addr, a, sizeof a);
    printf("%s: SIOCGIFADDR %s %s\n", label, en(r), a);
    close(s);
}

static int set_up_ioctl(int up)
{
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct ifreq ifr = {0};
    strcpy(ifr.ifr_name, "lo");
    ioctl(s, SIOCGIFFLAGS, &ifr);
    if (up)
        ifr.ifr_flags |= IFF_UP;
    else
        ifr.ifr_flags &= ~IFF_UP;
    int r = ioctl(s, SIOCSIFFLAGS, &ifr);
    int e = errno;
    close(s);
    errno = e;
    return r;
}

static int tcp_connect(int family, const char *ip, int port)
{
    int s = socket(family, SOCK_STREAM, 0);
    int r;
    if (family == AF_INET) {
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
        inet_pton(AF_INET, ip, &a.sin_addr);
        r = connect(s, (struct sockaddr *)&a, sizeof a);
    } else {
        struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_port = htons(port)};
        inet_pton(AF_INET6, ip, &a.sin6_addr);
        r = connect(s, (struct sockaddr *)&a, sizeof a);
    }
    int e = errno;
    close(s);
    errno = e;
    return r;
}

static void loopback_tcp(const char *label)
{
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    int r = bind(l, (struct sockaddr *)&a, sizeof a);
    if (r == 0)
        r = listen(l, 4);
    if (r == 0)
        r = getsockname(l, (struct sockaddr *)&a, &len);
    printf("%s: listen on 127.0.0.1: %s\n", label, en(r));
    if (r == 0)
        printf("%s: connect to it: %s\n", label, en(tcp_connect(AF_INET, "127.0.0.1", ntohs(a.sin_port))));
    close(l);
}

static int nl_socket(void)
{
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    struct sockaddr_nl k = {.nl_family = AF_NETLINK};
    bind(fd, (struct sockaddr *)&k, sizeof k);
    return fd;
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    if (unshare(CLONE_NEWNET) != 0) {
        printf("unshare: %s\n", en(-1));
        return 1;
    }
    int fd = nl_socket();
    struct sockaddr_nl me;
    socklen_t ml = sizeof me;
    getsockname(fd, (struct sockaddr *)&me, &ml);
    printf("port id is pid: %s\n", me.nl_pid == (unsigned)getpid() ? "yes" : "no");

    show_flags("fresh");
    show_addrs(fd, "fresh");
    printf("fresh: connect 127.0.0.1: %s\n", en(tcp_connect(AF_INET, "127.0.0.1", 9)));
    printf("fresh: connect ::1: %s\n", en(tcp_connect(AF_INET6, "::1", 9)));
    {
        int s = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET};
        inet_pton(AF_INET, "10.0.0.1", &a.sin_addr);
        printf("fresh: bind 10.0.0.1: %s\n", en(bind(s, (struct sockaddr *)&a, sizeof a)));
        close(s);
    }

    int flags = NLM_F_CREATE | NLM_F_EXCL;
    printf("RTM_NEWADDR 127.0.0.1/8: %d\n", addr_req(fd, RTM_NEWADDR, flags, 1, "127.0.0.1", 8));
    printf("RTM_NEWADDR again: %d\n", addr_req(fd, RTM_NEWADDR, flags, 1, "127.0.0.1", 8));
    printf("RTM_NEWADDR no such link: %d\n", addr_req(fd, RTM_NEWADDR, flags, 77, "127.0.0.2", 8));
    show_flags("addressed");
    show_addrs(fd, "addressed");
    printf("RTM_NEWLINK up: %d\n", link_req(fd, 1, IFF_UP, IFF_UP));
    printf("RTM_NEWLINK no such link: %d\n", link_req(fd, 77, IFF_UP, IFF_UP));
    show_flags("up");
    show_addrs(fd, "up");
    loopback_tcp("up");
    printf("up: connect ::1: %s\n", en(tcp_connect(AF_INET6, "::1", 9)));

    printf("SIOCSIFFLAGS down: %s\n", en(set_up_ioctl(0)));
    show_flags("down");
    show_addrs(fd, "down");
    printf("SIOCSIFFLAGS up: %s\n", en(set_up_ioctl(1)));
    show_flags("up again");
    show_addrs(fd, "up again");
    loopback_tcp("up again");

    printf("RTM_DELADDR 127.0.0.1/8: %d\n", addr_req(fd, RTM_DELADDR, 0, 1, "127.0.0.1", 8));
    printf("RTM_DELADDR again: %d\n", addr_req(fd, RTM_DELADDR, 0, 1, "127.0.0.1", 8));
    show_addrs(fd, "deleted");
    printf("deleted: connect 127.0.0.1: %s\n", en(tcp_connect(AF_INET, "127.0.0.1", 9)));
    close(fd);

    // In a new pid namespace the port id (and the replies' nlmsg_pid) is the
    // pid there, 1.
    if (unshare(CLONE_NEWPID | CLONE_NEWNET) != 0) {
        printf("unshare pid: %s\n", en(-1));
        return 1;
    }
    pid_t pid = fork();
    if (pid == 0) {
        int f = nl_socket();
        printf("child: pid %d\n", getpid());
        printf("child: RTM_NEWADDR: %d\n", addr_req(f, RTM_NEWADDR, flags, 1, "127.0.0.1", 8));
        printf("child: RTM_NEWLINK up: %d\n", link_req(f, 1, IFF_UP, IFF_UP));
        loopback_tcp("child");
        _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    printf("child exit: %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    return 0;
}
