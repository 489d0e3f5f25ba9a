/* Helpers of the mount and namespace tests. Each test first moves into a mount
 * namespace of its own with every mount private, so the native run never
 * touches the host's mounts. */
#ifndef MOUNT_COMMON_H
#define MOUNT_COMMON_H

#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>

static const char *mc_err(int e)
{
    switch (e) {
    case 0: return "OK";
    case EPERM: return "EPERM";
    case ENOENT: return "ENOENT";
    case EBADF: return "EBADF";
    case EAGAIN: return "EAGAIN";
    case EACCES: return "EACCES";
    case EBUSY: return "EBUSY";
    case EEXIST: return "EEXIST";
    case ENODEV: return "ENODEV";
    case ENOTDIR: return "ENOTDIR";
    case EISDIR: return "EISDIR";
    case EINVAL: return "EINVAL";
    case EROFS: return "EROFS";
    case ELOOP: return "ELOOP";
    case ENOSYS: return "ENOSYS";
    default: return "E?";
    }
}

/* "label: OK" or "label: ENAME". */
#define CHECK(label, expr) do { \
    errno = 0; \
    long r_ = (long)(expr); \
    printf("%s: %s\n", label, r_ < 0 ? mc_err(errno) : "OK"); \
    fflush(stdout); \
} while (0)

/* A private mount namespace for this process, or exit. */
static void mc_private_ns(void)
{
    if (unshare(CLONE_NEWNS) != 0) {
        printf("unshare(CLONE_NEWNS): %s\n", mc_err(errno));
        exit(1);
    }
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) {
        printf("make / rprivate: %s\n", mc_err(errno));
        exit(1);
    }
}

/* The mountinfo lines of mounts at or below `base`, without ids and device
 * numbers, paths relative to `base`, peer group numbers dropped. */
static void mc_show(const char *title, const char *base)
{
    printf("-- %s\n", title);
    FILE *f = fopen("/proc/self/mountinfo", "r");
    if (!f) {
        printf("mountinfo: %s\n", mc_err(errno));
        return;
    }
    size_t blen = strlen(base);
    char line[4096];
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        char *tok[64];
        int n = 0;
        char *save = NULL;
        for (char *t = strtok_r(line, " ", &save); t && n < 64; t = strtok_r(NULL, " ", &save))
            tok[n++] = t;
        if (n < 10)
            continue;
        const char *mp = tok[4];
        if (strncmp(mp, base, blen) != 0 || (mp[blen] && mp[blen] != '/'))
            continue;
        printf("%s %s %s", tok[3], mp[blen] ? mp + blen : "/", tok[5]);
        int i = 6;
        for (; i < n && strcmp(tok[i], "-") != 0; i++) {
            char *colon = strchr(tok[i], ':');
            if (colon)
                *colon = 0;
            printf(" %s", tok[i]);
        }
        for (; i < n; i++)
            printf(" %s", tok[i]);
        printf("\n");
    }
    fclose(f);
    fflush(stdout);
}

#endif
