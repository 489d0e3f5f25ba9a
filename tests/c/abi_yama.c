// Yama's ptrace_scope as Linux honours it. The "relations" case runs natively and
// inside: it reads /proc/sys/kernel/yama/ptrace_scope (absent: a kernel without
// Yama, which behaves as scope 0) and checks, as an unprivileged user, that each
// attempt ends as that scope says: attaching to a sibling (denied at 1), to a
// child (allowed), after the sibling named the tracer or anyone with
// PR_SET_PTRACER (allowed; EINVAL without Yama), opening the sibling's
// /proc/PID/mem (EACCES at 1), PTRACE_TRACEME (allowed below 2). Each line says
// "as scope" or what differed, so both sides print the same.
// The "sysctl" case runs only inside (the host's setting is the host's): the
// default is 1, only CAP_SYS_PTRACE writes it (others: EACCES at open, as the
// file is root's 0644, or EPERM at write), 0..3 only, 2 needs the capability
// to attach even to a child, and 3 forbids attaching and cannot be lowered.
// e2e: timeout=60
// e2e: case=relations
// e2e: arg=relations
// e2e: case=sysctl
// e2e: arg=sysctl
// e2e: mode=sandbox-only
// e2e: stdout=default scope: 1
// e2e: stdout=scope 1, unprivileged attach to sibling: EPERM
// e2e: stdout=scope 1, unprivileged attach to child: ok
// e2e: stdout=unprivileged write: EACCES
// e2e: stdout=root without CAP_SYS_PTRACE write: EPERM
// e2e: stdout=write 4: EINVAL
// e2e: stdout=write -1: EINVAL
// e2e: stdout=write 2: ok
// e2e: stdout=scope 2, unprivileged attach to child: EPERM
// e2e: stdout=scope 2, unprivileged traceme: EPERM
// e2e: stdout=scope 2, root attach to child: ok
// e2e: stdout=write 0: ok
// e2e: stdout=scope 0, unprivileged attach to sibling: ok
// e2e: stdout=write 3: ok
// e2e: stdout=write 1 after 3: EINVAL
// e2e: stdout=scope 3, root attach to child: EPERM
// e2e: stdout=scope 3, traceme: EPERM
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef PR_SET_PTRACER
#define PR_SET_PTRACER 0x59616d61
#endif
#define PTRACER_ANY ((unsigned long)-1)

static const char *SCOPE = "/proc/sys/kernel/yama/ptrace_scope";

static int read_scope(void) {
    FILE *f = fopen(SCOPE, "r");
    if (!f)
        return -1;
    int v = -1;
    if (fscanf(f, "%d", &v) != 1)
        v = -2;
    fclose(f);
    return v;
}

static const char *err(int e) { return e ? strerrorname_np(e) : "ok"; }

static int write_scope(const char *v) {
    int fd = open(SCOPE, O_WRONLY);
    if (fd < 0)
        return errno;
    int r = write(fd, v, strlen(v)) < 0 ? errno : 0;
    close(fd);
    return r;
}

static void drop(void) {
    if (setresgid(65534, 65534, 65534) || setresuid(65534, 65534, 65534)) {
        printf("setresuid failed\n");
        exit(1);
    }
    prctl(PR_SET_DUMPABLE, 1);
}

// A child that optionally calls PR_SET_PTRACER(arg), reports the result on a pipe
// and waits to be killed.
static pid_t target(int use_ptracer, unsigned long arg, int *prctl_err) {
    int p[2];
    if (pipe(p))
        exit(1);
    pid_t t = fork();
    if (t == 0) {
        close(p[0]);
        int e = 0;
        if (use_ptracer && prctl(PR_SET_PTRACER, arg, 0, 0, 0) < 0)
            e = errno;
        if (write(p[1], &e, sizeof e) < 0)
            _exit(1);
        for (;;)
            pause();
    }
    close(p[1]);
    if (read(p[0], prctl_err, sizeof *prctl_err) != sizeof *prctl_err)
        *prctl_err = -1;
    close(p[0]);
    return t;
}

// Attaches to pid and detaches; 0 or the errno.
static int attach(pid_t pid) {
    if (ptrace(PTRACE_ATTACH, pid, 0, 0) < 0)
        return errno;
    int st;
    waitpid(pid, &st, __WALL);
    ptrace(PTRACE_DETACH, pid, 0, 0);
    return 0;
}

// A sibling process runs f(pid) and its result comes back as the exit status.
static int from_sibling(int (*f)(pid_t), pid_t pid) {
    pid_t s = fork();
    if (s == 0)
        _exit(f(pid));
    int st;
    waitpid(s, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int open_mem(pid_t pid) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/mem", pid);
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return errno;
    close(fd);
    return 0;
}

static void reap(pid_t t) {
    kill(t, SIGKILL);
    waitpid(t, NULL, 0);
}

static void verdict(const char *what, int got, int want) {
    if (got == want)
        printf("%s: as scope\n", what);
    else
        printf("%s: got %s, scope says %s\n", what, err(got), err(want));
}

static void relations(void) {
    int scope = read_scope();
    int yama = scope >= 0;
    if (!yama)
        scope = 0;
    printf("scope file: %s\n", scope >= 0 ? "readable or absent" : "unreadable");
    drop();
    int e;
    pid_t t = target(0, 0, &e);
    verdict("sibling attach", from_sibling(attach, t), scope >= 1 ? EPERM : 0);
    verdict("sibling /proc/PID/mem", from_sibling(open_mem, t), scope >= 1 ? EACCES : 0);
    verdict("child attach", attach(t), scope >= 2 ? EPERM : 0);
    reap(t);

    t = target(1, (unsigned long)getpid(), &e);
    verdict("PR_SET_PTRACER(parent)", e, yama ? 0 : EINVAL);
    verdict("sibling attach after PR_SET_PTRACER(parent)", from_sibling(attach, t),
            scope >= 2 ? EPERM : 0);
    reap(t);

    t = target(1, PTRACER_ANY, &e);
    verdict("PR_SET_PTRACER(ANY)", e, yama ? 0 : EINVAL);
    verdict("sibling attach after PR_SET_PTRACER(ANY)", from_sibling(attach, t),
            scope >= 2 ? EPERM : 0);
    reap(t);

    t = target(1, 0, &e);
    verdict("PR_SET_PTRACER(0)", e, yama ? 0 : EINVAL);
    verdict("sibling attach after PR_SET_PTRACER(0)", from_sibling(attach, t),
            scope >= 1 ? EPERM : 0);
    reap(t);

    t = target(1, 0x3fffffff, &e);
    verdict("PR_SET_PTRACER(no such pid)", e, EINVAL);
    reap(t);

    fflush(stdout);
    pid_t c = fork();
    if (c == 0) {
        int r = ptrace(PTRACE_TRACEME, 0, 0, 0) < 0 ? errno : 0;
        _exit(r);
    }
    int st;
    waitpid(c, &st, 0);
    verdict("traceme", WEXITSTATUS(st), scope >= 2 ? EPERM : 0);
}

// Runs f() in a child that first drops privilege (or not); its exit status.
static int in_child(int unprivileged, int (*f)(void)) {
    fflush(stdout);
    pid_t c = fork();
    if (c == 0) {
        if (unprivileged)
            drop();
        _exit(f());
    }
    int st;
    waitpid(c, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int attach_child(void) {
    int e;
    pid_t t = target(0, 0, &e);
    int r = attach(t);
    reap(t);
    return r;
}

static int attach_sibling(void) {
    int e;
    pid_t t = target(0, 0, &e);
    int r = from_sibling(attach, t);
    reap(t);
    return r;
}

static int traceme(void) {
    pid_t c = fork();
    if (c == 0)
        _exit(ptrace(PTRACE_TRACEME, 0, 0, 0) < 0 ? errno : 0);
    int st;
    waitpid(c, &st, 0);
    return WEXITSTATUS(st);
}

static int unprivileged_write(void) { return write_scope("0"); }

// As root, without CAP_SYS_PTRACE in the effective set.
static int no_cap_write(void) {
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct d[2];
    if (syscall(SYS_capget, &h, d))
        return 100;
    d[0].effective &= ~(1u << CAP_SYS_PTRACE);
    if (syscall(SYS_capset, &h, d))
        return 101;
    return write_scope("0");
}

static void sysctl(void) {
    printf("default scope: %d\n", read_scope());
    printf("scope 1, unprivileged attach to sibling: %s\n", err(in_child(1, attach_sibling)));
    printf("scope 1, unprivileged attach to child: %s\n", err(in_child(1, attach_child)));
    printf("unprivileged write: %s\n", err(in_child(1, unprivileged_write)));
    printf("root without CAP_SYS_PTRACE write: %s\n", err(in_child(0, no_cap_write)));
    printf("write 4: %s\n", err(write_scope("4")));
    printf("write -1: %s\n", err(write_scope("-1")));
    printf("write 2: %s\n", err(write_scope("2")));
    printf("scope 2, unprivileged attach to child: %s\n", err(in_child(1, attach_child)));
    printf("scope 2, unprivileged traceme: %s\n", err(in_child(1, traceme)));
    printf("scope 2, root attach to child: %s\n", err(in_child(0, attach_child)));
    printf("write 0: %s\n", err(write_scope("0")));
    printf("scope 0, unprivileged attach to sibling: %s\n", err(in_child(1, attach_sibling)));
    printf("write 3: %s\n", err(write_scope("3")));
    printf("write 1 after 3: %s\n", err(write_scope("1")));
    printf("scope 3, root attach to child: %s\n", err(in_child(0, attach_child)));
    printf("scope 3, traceme: %s\n", err(in_child(0, traceme)));
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc > 1 && strcmp(argv[1], "sysctl") == 0)
        sysctl();
    else
        relations();
    return 0;
}
