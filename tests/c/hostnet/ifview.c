// The interfaces a program sees, printed so a run under --network=host can be
// compared with a native run in the same network namespace (tests/tests/hostnet.rs):
// getifaddrs, if_nameindex, the SIOCGIF* ioctls and SIOCGIFCONF, /sys/class/net
// and the interface names of /proc/net/dev (not its counters, which move).
// With the argument "writes" it instead tries changes that must be refused inside
// (never run natively: as root they would succeed).
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <ifaddrs.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void addr_text(struct sockaddr *sa, char *out, size_t n) {
    out[0] = 0;
    if (!sa) {
        snprintf(out, n, "-");
        return;
    }
    if (sa->sa_family == AF_INET || sa->sa_family == AF_INET6) {
        socklen_t len = sa->sa_family == AF_INET ? sizeof(struct sockaddr_in)
                                                 : sizeof(struct sockaddr_in6);
        if (getnameinfo(sa, len, out, n, NULL, 0, NI_NUMERICHOST) != 0)
            snprintf(out, n, "?");
    } else {
        snprintf(out, n, "family%d", sa->sa_family);
    }
}

static int writes(void) {
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    strcpy(ifr.ifr_name, "lo");
    if (ioctl(s, SIOCGIFFLAGS, &ifr) != 0) {
        printf("SIOCGIFFLAGS lo: %s\n", strerror(errno));
        return 1;
    }
    ifr.ifr_flags &= ~IFF_UP;
    int r = ioctl(s, SIOCSIFFLAGS, &ifr);
    printf("SIOCSIFFLAGS lo down: %d %s\n", r, r ? strerror(errno) : "");
    ifr.ifr_mtu = 1280;
    r = ioctl(s, SIOCSIFMTU, &ifr);
    printf("SIOCSIFMTU lo: %d %s\n", r, r ? strerror(errno) : "");

    // RTM_NEWADDR 10.99.99.1/32 on lo, with an ACK asked.
    int nl = socket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE);
    struct {
        struct nlmsghdr h;
        struct ifaddrmsg a;
        struct rtattr ra;
        unsigned char ip[4];
    } req;
    memset(&req, 0, sizeof req);
    req.h.nlmsg_len = sizeof req;
    req.h.nlmsg_type = RTM_NEWADDR;
    req.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE;
    req.h.nlmsg_seq = 5;
    req.a.ifa_family = AF_INET;
    req.a.ifa_prefixlen = 32;
    req.a.ifa_index = if_nametoindex("lo");
    req.ra.rta_len = RTA_LENGTH(4);
    req.ra.rta_type = IFA_LOCAL;
    memcpy(req.ip, (unsigned char[]){10, 99, 99, 1}, 4);
    if (send(nl, &req, sizeof req, 0) < 0) {
        printf("netlink send: %s\n", strerror(errno));
    } else {
        char buf[4096];
        ssize_t n = recv(nl, buf, sizeof buf, 0);
        struct nlmsghdr *h = (struct nlmsghdr *)buf;
        if (n >= (ssize_t)sizeof *h && h->nlmsg_type == NLMSG_ERROR) {
            struct nlmsgerr *e = NLMSG_DATA(h);
            printf("RTM_NEWADDR: %s\n", e->error ? strerror(-e->error) : "ok");
        } else {
            printf("RTM_NEWADDR: no error message\n");
        }
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "writes") == 0)
        return writes();

    struct ifaddrs *ifa;
    if (getifaddrs(&ifa) != 0) {
        printf("getifaddrs: %s\n", strerror(errno));
        return 1;
    }
    for (struct ifaddrs *p = ifa; p; p = p->ifa_next) {
        char a[128], m[128];
        if (p->ifa_addr && p->ifa_addr->sa_family == AF_PACKET) {
            printf("ifaddr %s packet flags %#x\n", p->ifa_name, p->ifa_flags);
            continue;
        }
        addr_text(p->ifa_addr, a, sizeof a);
        addr_text(p->ifa_netmask, m, sizeof m);
        printf("ifaddr %s %s/%s flags %#x\n", p->ifa_name, a, m, p->ifa_flags);
    }
    freeifaddrs(ifa);

    struct if_nameindex *ni = if_nameindex();
    for (struct if_nameindex *p = ni; p && p->if_index; p++)
        printf("nameindex %u %s\n", p->if_index, p->if_name);

    int s = socket(AF_INET, SOCK_DGRAM, 0);
    for (struct if_nameindex *p = ni; p && p->if_index; p++) {
        struct ifreq ifr;
        memset(&ifr, 0, sizeof ifr);
        snprintf(ifr.ifr_name, IFNAMSIZ, "%s", p->if_name);
        int r = ioctl(s, SIOCGIFINDEX, &ifr);
        printf("%s index %d %d\n", p->if_name, r, ifr.ifr_ifindex);
        r = ioctl(s, SIOCGIFFLAGS, &ifr);
        printf("%s flags %d %#x\n", p->if_name, r, (unsigned short)ifr.ifr_flags);
        r = ioctl(s, SIOCGIFMTU, &ifr);
        printf("%s mtu %d %d\n", p->if_name, r, ifr.ifr_mtu);
        r = ioctl(s, SIOCGIFHWADDR, &ifr);
        unsigned char *h = (unsigned char *)ifr.ifr_hwaddr.sa_data;
        printf("%s hwaddr %d %d %02x:%02x:%02x:%02x:%02x:%02x\n", p->if_name, r,
               ifr.ifr_hwaddr.sa_family, h[0], h[1], h[2], h[3], h[4], h[5]);
        r = ioctl(s, SIOCGIFADDR, &ifr);
        char a[64] = "-";
        if (r == 0)
            inet_ntop(AF_INET, &((struct sockaddr_in *)&ifr.ifr_addr)->sin_addr, a, sizeof a);
        printf("%s addr %d %s %s\n", p->if_name, r, a, r ? strerror(errno) : "");
        memset(&ifr.ifr_ifru, 0, sizeof ifr.ifr_ifru);
        ifr.ifr_ifindex = p->if_index;
        r = ioctl(s, SIOCGIFNAME, &ifr);
        printf("%u name %d %s\n", p->if_index, r, ifr.ifr_name);
    }
    if_freenameindex(ni);

    struct ifconf ifc = {0};
    int r = ioctl(s, SIOCGIFCONF, &ifc);
    printf("ifconf size %d %d\n", r, ifc.ifc_len);
    char buf[8192];
    ifc.ifc_len = sizeof buf;
    ifc.ifc_buf = buf;
    r = ioctl(s, SIOCGIFCONF, &ifc);
    for (int i = 0; r == 0 && i < ifc.ifc_len / (int)sizeof(struct ifreq); i++) {
        struct ifreq *q = &ifc.ifc_req[i];
        char a[64];
        inet_ntop(AF_INET, &((struct sockaddr_in *)&q->ifr_addr)->sin_addr, a, sizeof a);
        printf("ifconf %s %s\n", q->ifr_name, a);
    }

    char *names[64];
    int n = 0;
    DIR *d = opendir("/sys/class/net");
    struct dirent *e;
    while (d && (e = readdir(d)) && n < 64)
        if (e->d_name[0] != '.')
            names[n++] = strdup(e->d_name);
    if (d)
        closedir(d);
    qsort(names, n, sizeof names[0], cmp_str);
    for (int i = 0; i < n; i++) {
        char path[300], v[64] = "";
        snprintf(path, sizeof path, "/sys/class/net/%s/ifindex", names[i]);
        FILE *f = fopen(path, "r");
        if (f && fgets(v, sizeof v, f))
            v[strcspn(v, "\n")] = 0;
        if (f)
            fclose(f);
        char mtu[64] = "";
        snprintf(path, sizeof path, "/sys/class/net/%s/mtu", names[i]);
        f = fopen(path, "r");
        if (f && fgets(mtu, sizeof mtu, f))
            mtu[strcspn(mtu, "\n")] = 0;
        if (f)
            fclose(f);
        printf("sysfs %s ifindex %s mtu %s\n", names[i], v, mtu);
    }

    FILE *f = fopen("/proc/net/dev", "r");
    char line[512];
    for (int i = 0; f && fgets(line, sizeof line, f); i++) {
        char *colon = strchr(line, ':');
        if (i < 2 || !colon)
            continue;
        *colon = 0;
        char *name = line;
        while (*name == ' ')
            name++;
        printf("proc_dev %s\n", name);
    }
    if (f)
        fclose(f);
    f = fopen("/proc/net/if_inet6", "r");
    while (f && fgets(line, sizeof line, f))
        printf("if_inet6 %s", line);
    if (f)
        fclose(f);
    f = fopen("/proc/net/route", "r");
    while (f && fgets(line, sizeof line, f))
        printf("route %s", line);
    if (f)
        fclose(f);
    return 0;
}
