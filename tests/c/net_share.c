// Sharing internet sockets: SO_REUSEPORT groups (same user only via one process
// here), a listening TCP socket passed to a forked child with SCM_RIGHTS over a
// Unix socket, a connected socket inherited across fork, and SIGPIPE-free EOF once
// every copy is closed.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include "e2e.h"

static void send_fd(int via, int fd) {
    char c = 'F';
    struct iovec iov = {&c, 1};
    char ctl[CMSG_SPACE(sizeof(int))];
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof ctl};
    struct cmsghdr *h = CMSG_FIRSTHDR(&m);
    h->cmsg_level = SOL_SOCKET;
    h->cmsg_type = SCM_RIGHTS;
    h->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(h), &fd, sizeof fd);
    sendmsg(via, &m, 0);
}

static int recv_fd(int via) {
    char c;
    struct iovec iov = {&c, 1};
    char ctl[CMSG_SPACE(sizeof(int))];
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof ctl};
    if (recvmsg(via, &m, 0) <= 0) return -1;
    struct cmsghdr *h = CMSG_FIRSTHDR(&m);
    int fd = -1;
    if (h && h->cmsg_type == SCM_RIGHTS) memcpy(&fd, CMSG_DATA(h), sizeof fd);
    return fd;
}

static void reuseport(void) {
    int one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int l1 = socket(AF_INET, SOCK_STREAM, 0), l2 = socket(AF_INET, SOCK_STREAM, 0);
    int l3 = socket(AF_INET, SOCK_STREAM, 0);
    setsockopt(l1, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    setsockopt(l2, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    E2E_T("bind first", bind(l1, (struct sockaddr *)&a, sizeof a));
    socklen_t al = sizeof a;
    getsockname(l1, (struct sockaddr *)&a, &al);
    E2E_T("bind second with SO_REUSEPORT", bind(l2, (struct sockaddr *)&a, sizeof a));
    E2E_T("bind third without", bind(l3, (struct sockaddr *)&a, sizeof a));
    listen(l1, 64);
    listen(l2, 64);
    int clients[20];
    for (int i = 0; i < 20; i++) {
        clients[i] = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(clients[i], (struct sockaddr *)&a, sizeof a) != 0) perror("connect");
    }
    int accepted = 0;
    for (int round = 0; round < 100 && accepted < 20; round++) {
        struct pollfd p[2] = {{l1, POLLIN, 0}, {l2, POLLIN, 0}};
        if (poll(p, 2, 1000) <= 0) break;
        for (int k = 0; k < 2; k++) {
            if (p[k].revents & POLLIN) {
                int s = accept(p[k].fd, NULL, NULL);
                if (s >= 0) {
                    accepted++;
                    close(s);
                }
            }
        }
    }
    printf("accepted through the group: %d\n", accepted);
    for (int i = 0; i < 20; i++) close(clients[i]);
    close(l1);
    close(l2);
    close(l3);
}

static void pass_listener(void) {
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bind(l, (struct sockaddr *)&a, sizeof a);
    socklen_t al = sizeof a;
    getsockname(l, (struct sockaddr *)&a, &al);
    listen(l, 4);
    int sv[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    pid_t child = fork();
    if (child == 0) {
        close(sv[0]);
        int got = recv_fd(sv[1]);
        int s = accept(got, NULL, NULL);
        char buf[32] = {0};
        read(s, buf, sizeof buf - 1);
        char reply[64];
        snprintf(reply, sizeof reply, "child got '%s'", buf);
        write(s, reply, strlen(reply));
        close(s);
        _exit(0);
    }
    close(sv[1]);
    send_fd(sv[0], l);
    close(l);
    int c = socket(AF_INET, SOCK_STREAM, 0);
    E2E_T("connect to passed listener", connect(c, (struct sockaddr *)&a, sizeof a));
    write(c, "ping", 4);
    char buf[64] = {0};
    int n = 0, k;
    while ((k = read(c, buf + n, sizeof buf - 1 - n)) > 0) n += k;
    printf("reply: %s\n", buf);
    int st;
    waitpid(child, &st, 0);
    printf("child exit %d\n", WEXITSTATUS(st));
    close(c);
    close(sv[0]);
}

static void inherit_connection(void) {
    int l = socket(AF_INET6, SOCK_STREAM, 0);
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_addr = in6addr_loopback};
    bind(l, (struct sockaddr *)&a, sizeof a);
    socklen_t al = sizeof a;
    getsockname(l, (struct sockaddr *)&a, &al);
    listen(l, 4);
    int c = socket(AF_INET6, SOCK_STREAM, 0);
    connect(c, (struct sockaddr *)&a, sizeof a);
    int s = accept(l, NULL, NULL);
    pid_t child = fork();
    if (child == 0) {
        write(c, "from child", 10);
        close(c);
        _exit(0);
    }
    waitpid(child, NULL, 0);
    char buf[32] = {0};
    read(s, buf, sizeof buf - 1);
    printf("inherited: %s\n", buf);
    // The parent still holds the connection: no EOF yet.
    E2E_T("no EOF while a copy is open", recv(s, buf, sizeof buf, MSG_DONTWAIT));
    close(c);
    usleep(20000);
    E2E_T("EOF once all copies closed", recv(s, buf, sizeof buf, MSG_DONTWAIT));
    close(s);
    close(l);
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    reuseport();
    pass_listener();
    inherit_connection();
    return 0;
}
