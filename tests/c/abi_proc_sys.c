// /proc files programs read at start-up and abort without: the user-namespace
// maps and setgroups of a process, /proc/sys values (fs, vm, net, kernel IPC
// limits), the boot id (stable) and random uuids (fresh each read).
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int slurp(const char *path, char *buf, size_t n) {
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t got = fread(buf, 1, n - 1, f);
    buf[got] = 0;
    fclose(f);
    return (int)got;
}

static void exact(const char *path) {
    char b[256];
    if (slurp(path, b, sizeof b) < 0) {
        printf("%s: missing\n", path);
        return;
    }
    printf("%s: %s", path, b);
}

/* A value that depends on the machine or the sandbox's own limits: only its form. */
static void positive(const char *path) {
    char b[256];
    if (slurp(path, b, sizeof b) < 0) {
        printf("%s: missing\n", path);
        return;
    }
    printf("%s: positive number: %s\n", path, strtoull(b, NULL, 10) > 0 && b[strlen(b) - 1] == '\n' ? "yes" : "no");
}

/* A boolean that belongs to the network namespace (the host's own may be a router): only
 * its form. */
static void boolean(const char *path) {
    char b[256];
    if (slurp(path, b, sizeof b) < 0) {
        printf("%s: missing\n", path);
        return;
    }
    printf("%s: 0 or 1: %s\n", path, !strcmp(b, "0\n") || !strcmp(b, "1\n") ? "yes" : "no");
}

static int is_uuid(const char *s) {
    for (int i = 0; i < 36; i++) {
        int dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !isxdigit((unsigned char)s[i]))
            return 0;
    }
    return s[36] == '\n' && s[37] == 0;
}

int main(void) {
    exact("/proc/self/uid_map");
    exact("/proc/self/gid_map");
    exact("/proc/self/setgroups");
    boolean("/proc/sys/net/ipv4/ip_forward");
    exact("/proc/sys/fs/nr_open");
    exact("/proc/sys/fs/pipe-max-size");
    positive("/proc/sys/fs/file-max");
    exact("/proc/sys/vm/max_map_count");
    positive("/proc/sys/vm/mmap_min_addr");
    positive("/proc/sys/kernel/shmmax");
    exact("/proc/sys/kernel/shmall");
    exact("/proc/sys/kernel/shmmni");
    exact("/proc/sys/kernel/msgmax");
    exact("/proc/sys/kernel/msgmnb");
    exact("/proc/sys/kernel/msgmni");
    exact("/proc/sys/kernel/sem");
    exact("/proc/sys/kernel/ngroups_max");
    char a[64], b[64];
    int ok = slurp("/proc/sys/kernel/random/boot_id", a, sizeof a) > 0 &&
             slurp("/proc/sys/kernel/random/boot_id", b, sizeof b) > 0;
    printf("boot_id: uuid %s, stable %s\n", ok && is_uuid(a) ? "yes" : "no", ok && !strcmp(a, b) ? "yes" : "no");
    ok = slurp("/proc/sys/kernel/random/uuid", a, sizeof a) > 0 &&
         slurp("/proc/sys/kernel/random/uuid", b, sizeof b) > 0;
    printf("uuid: uuid %s, fresh %s, version 4 %s\n", ok && is_uuid(a) ? "yes" : "no",
           ok && strcmp(a, b) ? "yes" : "no", ok && a[14] == '4' ? "yes" : "no");
    return 0;
}
