/* Helpers shared by the end-to-end test programs. Header-only so each
 * program stays a single gcc invocation. */
#ifndef E2E_H
#define E2E_H

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* Symbolic errno name: output must not depend on libc message wording. */
static inline const char *e2e_errname(int e)
{
    switch (e) {
    case 0: return "OK";
    case EPERM: return "EPERM";
    case ENOENT: return "ENOENT";
    case ESRCH: return "ESRCH";
    case EINTR: return "EINTR";
    case EIO: return "EIO";
    case EBADF: return "EBADF";
    case EAGAIN: return "EAGAIN";
    case ENOMEM: return "ENOMEM";
    case EACCES: return "EACCES";
    case EFAULT: return "EFAULT";
    case EEXIST: return "EEXIST";
    case ENOTDIR: return "ENOTDIR";
    case EISDIR: return "EISDIR";
    case EINVAL: return "EINVAL";
    case EMFILE: return "EMFILE";
    case ENOSPC: return "ENOSPC";
    case EROFS: return "EROFS";
    case ERANGE: return "ERANGE";
    case ENOSYS: return "ENOSYS";
    case ENOEXEC: return "ENOEXEC";
    case ENAMETOOLONG: return "ENAMETOOLONG";
    case ENOTSUP: return "ENOTSUP";
    default: return "E?";
    }
}

/* Prints "label: ret errno-name" for a raw syscall-style result. */
static inline void e2e_result(const char *label, long ret, int err)
{
    printf("%s: %ld %s\n", label, ret, ret < 0 ? e2e_errname(err) : "OK");
}

/* FNV-1a over a buffer, chained through h. */
static inline unsigned long long e2e_fnv1a(unsigned long long h, const void *buf, size_t n)
{
    const unsigned char *p = buf;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 1099511628211ULL;
    }
    return h;
}
#define E2E_FNV_INIT 14695981039346656037ULL


/* Prints "what: N" for a call's result, or "what: ENAME" when it failed (errno
 * read right after the call). */
static inline void e2e_show(const char *what, long r)
{
    if (r < 0)
        printf("%s: %s\n", what, strerrorname_np(errno));
    else
        printf("%s: %ld\n", what, r);
}
#define E2E_T(what, expr) do { errno = 0; e2e_show(what, (long)(expr)); } while (0)

#endif
