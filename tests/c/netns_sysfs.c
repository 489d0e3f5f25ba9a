// sysfs shows the interfaces of the network namespace it was mounted in, as
// Linux tags a sysfs mount with its mounter's namespace: a process in a new
// network namespace that mounts sysfs sees only that namespace's `lo` in
// /sys/class/net (whatever the sandbox's own namespace has: a pod interface,
// or the host's under --network=host), with lo's attributes.
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include "mount_common.h"

static void cat(const char *path)
{
    char buf[256];
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        printf("%s: %s\n", path, mc_err(errno));
        return;
    }
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    buf[n < 0 ? 0 : n] = 0;
    printf("%s: %s", path, buf);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    mc_private_ns();
    if (unshare(CLONE_NEWNET) != 0) {
        printf("unshare(CLONE_NEWNET): %s\n", mc_err(errno));
        return 1;
    }
    const char *dir = "/tmp/netns_sysfs.d";
    CHECK("mount tmpfs", mount("none", "/tmp", "tmpfs", 0, NULL));
    mkdir(dir, 0700);
    CHECK("mount sysfs", mount("sysfs", dir, "sysfs", 0, NULL));
    DIR *d = opendir("/tmp/netns_sysfs.d/class/net");
    if (!d) {
        printf("opendir: %s\n", mc_err(errno));
        return 1;
    }
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            printf("class/net: %s\n", e->d_name);
    closedir(d);
    cat("/tmp/netns_sysfs.d/class/net/lo/ifindex");
    cat("/tmp/netns_sysfs.d/class/net/lo/mtu");
    cat("/tmp/netns_sysfs.d/class/net/lo/address");
    return 0;
}
