// The sandbox's interfaces as programs see them: getifaddrs (netlink route dumps),
// if_nametoindex/if_indextoname/if_nameindex, the SIOCGIF* ioctls, /proc/net files
// and /sys/class/net/lo. Natively the program first moves into a new network
// namespace and brings its loopback up, so both runs see only `lo`.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include "e2e.h"

static void cat(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) {
        printf("%s: %s\n", path, strerrorname_np(errno));
        return;
    }
    char line[512];
    printf("== %s\n", path);
    while (fgets(line, sizeof line, f)) fputs(line, stdout);
    fclose(f);
}

static const char *addr(struct sockaddr *sa, char *buf, size_t n) {
    if (!sa) return "-";
    if (sa->sa_family == AF_INET) return inet_ntop(AF_INET, &((struct sockaddr_in *)sa)->sin_addr, buf, n);
    if (sa->sa_family == AF_INET6) return inet_ntop(AF_INET6, &((struct sockaddr_in6 *)sa)->sin6_addr, buf, n);
    return "link";
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    int ctl = socket(AF_INET, SOCK_DGRAM, 0);
    if (unshare(CLONE_NEWNET) == 0) {
        // Native run: a fresh namespace whose loopback is down until raised.
        struct ifreq r = {0};
        strcpy(r.ifr_name, "lo");
        int s = socket(AF_INET, SOCK_DGRAM, 0);
        ioctl(s, SIOCGIFFLAGS, &r);
        r.ifr_flags |= IFF_UP;
        ioctl(s, SIOCSIFFLAGS, &r);
        close(s);
        close(ctl);
        ctl = socket(AF_INET, SOCK_DGRAM, 0);
    }
    struct ifaddrs *ifa, *i;
    if (getifaddrs(&ifa) != 0) {
        printf("getifaddrs: %s\n", strerrorname_np(errno));
        return 1;
    }
    for (i = ifa; i; i = i->ifa_next) {
        char a[64], m[64];
        printf("%s family %d addr %s mask %s flags %#x\n", i->ifa_name,
               i->ifa_addr ? i->ifa_addr->sa_family : -1, addr(i->ifa_addr, a, sizeof a),
               addr(i->ifa_netmask, m, sizeof m), i->ifa_flags & (IFF_UP | IFF_LOOPBACK | IFF_RUNNING));
    }
    freeifaddrs(ifa);
    printf("if_nametoindex(lo) %u, (eth0) %u\n", if_nametoindex("lo"), if_nametoindex("eth0"));
    char name[IF_NAMESIZE];
    printf("if_indextoname(1) %s\n", if_indextoname(1, name) ? name : "-");
    struct if_nameindex *ni = if_nameindex();
    for (struct if_nameindex *p = ni; p && p->if_index; p++) printf("nameindex %u %s\n", p->if_index, p->if_name);
    if_freenameindex(ni);

    struct ifreq r = {0};
    strcpy(r.ifr_name, "lo");
    E2E_T("SIOCGIFFLAGS", ioctl(ctl, SIOCGIFFLAGS, &r));
    printf("flags %#x\n", r.ifr_flags & (IFF_UP | IFF_LOOPBACK | IFF_RUNNING));
    E2E_T("SIOCGIFMTU", ioctl(ctl, SIOCGIFMTU, &r));
    printf("mtu %d\n", r.ifr_mtu);
    E2E_T("SIOCGIFADDR", ioctl(ctl, SIOCGIFADDR, &r));
    printf("addr %s\n", inet_ntoa(((struct sockaddr_in *)&r.ifr_addr)->sin_addr));
    strcpy(r.ifr_name, "nope0");
    E2E_T("SIOCGIFINDEX unknown", ioctl(ctl, SIOCGIFINDEX, &r));

    cat("/proc/net/if_inet6");
    cat("/proc/net/route");
    cat("/sys/class/net/lo/mtu");
    cat("/sys/class/net/lo/type");
    cat("/sys/class/net/lo/ifindex");
    cat("/proc/sys/net/ipv4/ip_local_port_range");

    // A listener shows in /proc/net/tcp as state 0A on 127.0.0.1.
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bind(l, (struct sockaddr *)&a, sizeof a);
    socklen_t al = sizeof a;
    getsockname(l, (struct sockaddr *)&a, &al);
    listen(l, 1);
    FILE *f = fopen("/proc/net/tcp", "r");
    char line[512];
    int found = 0;
    char want[32];
    snprintf(want, sizeof want, "0100007F:%04X 00000000:0000 0A", ntohs(a.sin_port));
    while (f && fgets(line, sizeof line, f))
        if (strstr(line, want)) found++;
    if (f) fclose(f);
    printf("listener in /proc/net/tcp: %d\n", found);

    // A listening abstract Unix socket in /proc/net/unix: flags, type, state, name.
    int u = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un ua = {.sun_family = AF_UNIX};
    memcpy(ua.sun_path, "\0rvisor-net-test", 16);
    bind(u, (struct sockaddr *)&ua, offsetof(struct sockaddr_un, sun_path) + 16);
    listen(u, 1);
    f = fopen("/proc/net/unix", "r");
    while (f && fgets(line, sizeof line, f)) {
        if (!strstr(line, "@rvisor-net-test")) continue;
        char num[32], path[64];
        unsigned ref, proto, flags, type, st;
        unsigned long ino;
        if (sscanf(line, "%31s %x %x %x %x %x %lu %63s", num, &ref, &proto, &flags, &type, &st, &ino, path) == 8)
            printf("unix: flags %05x type %04x st %02x path %s\n", flags, type, st, path);
    }
    if (f) fclose(f);
    return 0;
}
