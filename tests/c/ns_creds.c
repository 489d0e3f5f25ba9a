// Process and user ids crossing namespaces, as Linux translates them:
// SCM_CREDENTIALS, SO_PEERCRED and F_GETOWN/F_GETOWN_EX between a process and
// its child in a new pid namespace (the sender names pids in its own namespace;
// the receiver sees them in its own, 0 when not visible), and uids and gids
// between a process and a child in a new user namespace (SCM_CREDENTIALS,
// SO_PEERCRED, the Uid/Gid lines of /proc/PID/status read from either side,
// the overflow id for an unmapped one).
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *en(int r)
{
    return r >= 0 ? "OK" : strerrorname_np(errno);
}

/* Sends one byte, with explicit credentials when `c` is given. */
static int send_creds(int fd, struct ucred *c)
{
    char byte = 'x';
    struct iovec iov = {&byte, 1};
    union {
        struct cmsghdr h;
        char b[CMSG_SPACE(sizeof(struct ucred))];
    } u;
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
    if (c) {
        memset(&u, 0, sizeof u);
        m.msg_control = u.b;
        m.msg_controllen = sizeof u.b;
        struct cmsghdr *h = CMSG_FIRSTHDR(&m);
        h->cmsg_level = SOL_SOCKET;
        h->cmsg_type = SCM_CREDENTIALS;
        h->cmsg_len = CMSG_LEN(sizeof *c);
        memcpy(CMSG_DATA(h), c, sizeof *c);
    }
    return sendmsg(fd, &m, 0);
}

/* Receives one byte and its credentials (pid -1 when none came). */
static struct ucred recv_creds(int fd)
{
    char byte;
    struct iovec iov = {&byte, 1};
    union {
        struct cmsghdr h;
        char b[CMSG_SPACE(sizeof(struct ucred))];
    } u;
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.b,
                       .msg_controllen = sizeof u.b};
    struct ucred c = {-1, 0, 0};
    if (recvmsg(fd, &m, 0) < 0)
        return c;
    for (struct cmsghdr *h = CMSG_FIRSTHDR(&m); h; h = CMSG_NXTHDR(&m, h))
        if (h->cmsg_level == SOL_SOCKET && h->cmsg_type == SCM_CREDENTIALS)
            memcpy(&c, CMSG_DATA(h), sizeof c);
    return c;
}

static void passcred(int fd)
{
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof one);
}

static struct ucred peer(int fd)
{
    struct ucred c = {0};
    socklen_t l = sizeof c;
    getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &c, &l);
    return c;
}

/* "Uid: a b c d" of /proc/PID/status, first field only, and Gid's. */
static void status_ids(const char *label, pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    unsigned u = 0, g = 0;
    while (f && fgets(line, sizeof line, f)) {
        sscanf(line, "Uid: %u", &u);
        sscanf(line, "Gid: %u", &g);
    }
    if (f)
        fclose(f);
    printf("%s: status uid %u gid %u\n", label, u, g);
}

/* The child's lines go through a pipe and are printed after the parent's, so
 * the output does not depend on scheduling. */
static int out[2];

static void child_output(void)
{
    fflush(stdout);
    dup2(out[1], 1);
    close(out[0]);
    close(out[1]);
}

static void print_child_output(void)
{
    close(out[1]);
    char buf[4096];
    ssize_t n;
    while ((n = read(out[0], buf, sizeof buf)) > 0)
        fwrite(buf, 1, n, stdout);
    close(out[0]);
}

static void write_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY);
    if (fd < 0 || write(fd, text, strlen(text)) < 0)
        printf("write %s: %s\n", path, strerrorname_np(errno));
    if (fd >= 0)
        close(fd);
}

static void pid_namespace(void)
{
    int sv[2];
    socketpair(AF_UNIX, SOCK_DGRAM, 0, sv);
    passcred(sv[0]);
    passcred(sv[1]);
    int go[2];
    pipe(go);
    if (unshare(CLONE_NEWPID) != 0) {
        printf("unshare pid: %s\n", strerrorname_np(errno));
        exit(1);
    }
    pid_t me = getpid();
    pipe(out);
    pid_t child = fork();
    if (child == 0) {
        child_output();
        close(go[1]);
        struct ucred c = {getpid(), getuid(), getgid()};
        printf("child: pid %d\n", getpid());
        printf("child: send own creds: %s\n", en(send_creds(sv[1], &c)));
        c.pid = 7;
        printf("child: send pid 7 (none here): %s\n", en(send_creds(sv[1], &c)));
        struct ucred p = peer(sv[1]);
        printf("child: SO_PEERCRED pid %d\n", p.pid);
        char b;
        read(go[0], &b, 1);
        struct ucred r = recv_creds(sv[1]);
        printf("child: creds from parent: pid %d\n", r.pid);
        printf("child: F_SETOWN self: %s\n", en(fcntl(sv[0], F_SETOWN, getpid())));
        printf("child: F_GETOWN: %d\n", fcntl(sv[0], F_GETOWN));
        printf("child: F_SETOWN 7: %s\n", en(fcntl(sv[0], F_SETOWN, 7)));
        write(sv[1], "y", 1);
        read(go[0], &b, 1);
        printf("child: F_GETOWN after the parent took it: %d\n", fcntl(sv[0], F_GETOWN));
        struct f_owner_ex ox = {0};
        fcntl(sv[0], F_GETOWN_EX, &ox);
        printf("child: F_GETOWN_EX type %d pid %d\n", ox.type, ox.pid);
        _exit(0);
    }
    close(go[0]);
    struct ucred r = recv_creds(sv[0]);
    printf("parent: child's creds: pid is the child's: %s\n", r.pid == child ? "yes" : "no");
    printf("parent: SO_PEERCRED is self: %s\n", peer(sv[0]).pid == me ? "yes" : "no");
    printf("parent: send: %s\n", en(send_creds(sv[0], NULL)));
    write(go[1], "g", 1);
    char b;
    read(sv[0], &b, 1);
    printf("parent: F_GETOWN is the child: %s\n", fcntl(sv[0], F_GETOWN) == child ? "yes" : "no");
    fcntl(sv[0], F_SETOWN, me);
    printf("parent: F_GETOWN self: %s\n", fcntl(sv[0], F_GETOWN) == me ? "yes" : "no");
    write(go[1], "g", 1);
    int st;
    waitpid(child, &st, 0);
    printf("pid child exit: %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    print_child_output();
    close(sv[0]);
    close(sv[1]);
}

static void user_namespace(void)
{
    int sv[2];
    socketpair(AF_UNIX, SOCK_DGRAM, 0, sv);
    passcred(sv[0]);
    passcred(sv[1]);
    int go[2], ready[2];
    pipe(go);
    pipe(ready);
    pid_t parent = getpid();
    pipe(out);
    pid_t child = fork();
    if (child == 0) {
        child_output();
        char b;
        unshare(CLONE_NEWUSER);
        write(ready[1], "r", 1);
        read(go[0], &b, 1);
        printf("child: uid %d gid %d\n", getuid(), getgid());
        struct ucred c = {getpid(), getuid(), getgid()};
        printf("child: send own creds: %s\n", en(send_creds(sv[1], &c)));
        c.uid = 0;
        printf("child: send unmapped uid 0: %s\n", en(send_creds(sv[1], &c)));
        struct ucred p = peer(sv[1]);
        printf("child: SO_PEERCRED uid %u gid %u\n", p.uid, p.gid);
        struct ucred r = recv_creds(sv[1]);
        printf("child: creds from parent: uid %u gid %u\n", r.uid, r.gid);
        status_ids("child: parent's", parent);
        status_ids("child: own", getpid());
        _exit(0);
    }
    char b, path[64];
    read(ready[0], &b, 1);
    snprintf(path, sizeof path, "/proc/%d/uid_map", child);
    write_file(path, "1000 0 1\n");
    snprintf(path, sizeof path, "/proc/%d/setgroups", child);
    write_file(path, "deny\n");
    snprintf(path, sizeof path, "/proc/%d/gid_map", child);
    write_file(path, "2000 0 1\n");
    send_creds(sv[0], NULL);
    write(go[1], "g", 1);
    struct ucred r = recv_creds(sv[0]);
    printf("parent: child's creds: uid %u gid %u\n", r.uid, r.gid);
    status_ids("parent: child's", child);
    int st;
    waitpid(child, &st, 0);
    printf("user child exit: %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    print_child_output();
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    // The user namespace part first: the pid part leaves this process's children
    // in a new pid namespace.
    user_namespace();
    pid_namespace();
    return 0;
}
