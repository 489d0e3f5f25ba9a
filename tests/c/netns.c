// Network namespaces: a process that unshares CLONE_NEWNET has a network of its
// own with only a loopback interface: a port bound outside is free again inside,
// a listener outside is not reachable from inside (ECONNREFUSED once lo is up),
// and setns with the saved /proc/self/ns/net file goes back to the first network,
// where the listener answers. /proc/self/net follows the process's namespace.
// e2e: stdout=inside: bind same port: OK
// e2e: stdout=inside: connect to outer listener: ECONNREFUSED
// e2e: stdout=inside: interfaces: lo
// e2e: stdout=inside: /proc/self/net/dev lists: lo
// e2e: stdout=inside: new namespace inode: yes
// e2e: stdout=back: setns: OK
// e2e: stdout=back: same namespace inode as before: yes
// e2e: stdout=back: connect to outer listener: OK
// e2e: stdout=child exit: 0
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *en(int r)
{
    if (r == 0)
        return "OK";
    switch (errno) {
    case ECONNREFUSED: return "ECONNREFUSED";
    case ENETUNREACH: return "ENETUNREACH";
    case EADDRINUSE: return "EADDRINUSE";
    case EPERM: return "EPERM";
    case EINVAL: return "EINVAL";
    default: return "E?";
    }
}

static int try_connect(int port)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int r = connect(s, (struct sockaddr *)&a, sizeof a);
    int e = errno;
    close(s);
    errno = e;
    return r;
}

static unsigned long net_ino(void)
{
    struct stat st;
    return stat("/proc/self/ns/net", &st) == 0 ? st.st_ino : 0;
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (bind(l, (struct sockaddr *)&a, sizeof a) || listen(l, 8) ||
        getsockname(l, (struct sockaddr *)&a, &len)) {
        perror("listener");
        return 1;
    }
    int port = ntohs(a.sin_port);
    pid_t pid = fork();
    if (pid == 0) {
        int outer = open("/proc/self/ns/net", O_RDONLY);
        unsigned long before = net_ino();
        if (unshare(CLONE_NEWNET) != 0) {
            printf("unshare: %s\n", en(-1));
            _exit(1);
        }
        // `ip link set lo up` (a new namespace's loopback starts down on Linux).
        int s = socket(AF_INET, SOCK_DGRAM, 0);
        struct ifreq ifr = {0};
        strcpy(ifr.ifr_name, "lo");
        if (ioctl(s, SIOCGIFFLAGS, &ifr) == 0) {
            ifr.ifr_flags |= IFF_UP;
            ioctl(s, SIOCSIFFLAGS, &ifr);
        }
        close(s);
        int b = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in any = {.sin_family = AF_INET, .sin_port = htons(port)};
        any.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        printf("inside: bind same port: %s\n", en(bind(b, (struct sockaddr *)&any, sizeof any)));
        close(b);
        printf("inside: connect to outer listener: %s\n", en(try_connect(port)));
        struct if_nameindex *ifs = if_nameindex();
        printf("inside: interfaces:");
        for (struct if_nameindex *i = ifs; i && i->if_index; i++)
            printf(" %s", i->if_name);
        printf("\n");
        FILE *f = fopen("/proc/self/net/dev", "r");
        char line[256];
        printf("inside: /proc/self/net/dev lists:");
        while (f && fgets(line, sizeof line, f)) {
            char name[32];
            if (strchr(line, '|') == NULL && sscanf(line, " %31[^:]:", name) == 1)
                printf(" %s", name);
        }
        printf("\n");
        printf("inside: new namespace inode: %s\n", net_ino() != before ? "yes" : "no");
        printf("back: setns: %s\n", en(setns(outer, CLONE_NEWNET)));
        printf("back: same namespace inode as before: %s\n", net_ino() == before ? "yes" : "no");
        printf("back: connect to outer listener: %s\n", en(try_connect(port)));
        _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    printf("child exit: %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    return 0;
}
