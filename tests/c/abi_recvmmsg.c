// recvmmsg checks its timeout before anything else: an invalid one is EINVAL at
// once on an empty unix socket (it once blocked), a bad pointer EFAULT; with data
// queued a valid timeout receives it.
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static void show(const char *w, long r) {
    if (r < 0)
        printf("%s: -1 %s\n", w, strerrorname_np(errno));
    else
        printf("%s: %ld\n", w, r);
}

int main(void) {
    int sv[2];
    socketpair(AF_UNIX, SOCK_DGRAM, 0, sv);
    char buf[16];
    struct iovec iov = {buf, sizeof buf};
    struct mmsghdr m;
    memset(&m, 0, sizeof m);
    m.msg_hdr.msg_iov = &iov;
    m.msg_hdr.msg_iovlen = 1;
    struct timespec neg = {-1, 0}, bad_ns = {0, 1000000000}, ok = {1, 0};
    show("negative seconds", recvmmsg(sv[0], &m, 1, 0, &neg));
    show("nanoseconds past 1e9", recvmmsg(sv[0], &m, 1, 0, &bad_ns));
    show("bad fd, bad timeout", recvmmsg(-1, &m, 1, 0, &bad_ns));
    show("bad timeout pointer", recvmmsg(sv[0], &m, 1, 0, (struct timespec *)8));
    write(sv[1], "hello", 5);
    show("valid timeout with data", recvmmsg(sv[0], &m, 1, 0, &ok));
    printf("len: %u\n", m.msg_len);
    return 0;
}
