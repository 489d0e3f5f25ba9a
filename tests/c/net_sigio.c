// Signal-driven I/O: FIOASYNC and F_SETOWN on a socketpair (what nginx does before
// forking workers), O_ASYNC with F_SETSIG on a TCP socket (si_fd, si_code, si_band),
// SIGIO on a pipe, and the owner calls' values and errors.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include "e2e.h"

static volatile int sigios, rts, rt_fd, rt_code;
static volatile long rt_band;

static void on_io(int s) { (void)s; sigios++; }

static void on_rt(int s, siginfo_t *si, void *ctx) {
    (void)s;
    (void)ctx;
    rts++;
    rt_fd = si->si_fd;
    rt_code = si->si_code;
    rt_band = si->si_band;
}

static void wait_for(volatile int *counter) {
    for (int i = 0; i < 100 && *counter == 0; i++) usleep(10000);
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    signal(SIGIO, on_io);
    struct sigaction sa = {.sa_sigaction = on_rt, .sa_flags = SA_SIGINFO};
    sigaction(SIGRTMIN + 1, &sa, NULL);

    int sv[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    int on = 1;
    E2E_T("FIOASYNC", ioctl(sv[0], FIOASYNC, &on));
    E2E_T("F_SETOWN", fcntl(sv[0], F_SETOWN, getpid()));
    printf("F_GETOWN is me: %d\n", fcntl(sv[0], F_GETOWN) == getpid());
    printf("O_ASYNC set: %d\n", (fcntl(sv[0], F_GETFL) & O_ASYNC) != 0);
    write(sv[1], "x", 1);
    wait_for(&sigios);
    printf("SIGIO on unix socket: %d\n", sigios > 0);
    char b[16];
    read(sv[0], b, sizeof b);

    // TCP with F_SETSIG: the handler learns the fd and why.
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bind(l, (struct sockaddr *)&a, sizeof a);
    socklen_t al = sizeof a;
    getsockname(l, (struct sockaddr *)&a, &al);
    listen(l, 4);
    int c = socket(AF_INET, SOCK_STREAM, 0);
    connect(c, (struct sockaddr *)&a, sizeof a);
    int s = accept(l, NULL, NULL);
    E2E_T("F_SETSIG", fcntl(s, F_SETSIG, SIGRTMIN + 1));
    printf("F_GETSIG: %d\n", fcntl(s, F_GETSIG) == SIGRTMIN + 1);
    struct f_owner_ex ox = {F_OWNER_PID, getpid()}, got;
    E2E_T("F_SETOWN_EX", fcntl(s, F_SETOWN_EX, &ox));
    E2E_T("F_GETOWN_EX", fcntl(s, F_GETOWN_EX, &got));
    printf("owner ex: type %d me %d\n", got.type, got.pid == getpid());
    E2E_T("O_ASYNC", fcntl(s, F_SETFL, fcntl(s, F_GETFL) | O_ASYNC));
    write(c, "data", 4);
    wait_for(&rts);
    printf("rt signal: %d fd matches %d code %d band has POLLIN %d\n", rts > 0, rt_fd == s, rt_code,
           (rt_band & POLLIN) != 0);

    // A pipe's read end.
    int p[2];
    pipe(p);
    sigios = 0;
    fcntl(p[0], F_SETOWN, getpid());
    fcntl(p[0], F_SETFL, O_ASYNC);
    write(p[1], "y", 1);
    wait_for(&sigios);
    printf("SIGIO on pipe: %d\n", sigios > 0);

    // Turning it off stops the signals.
    read(p[0], b, sizeof b);
    fcntl(p[0], F_SETFL, 0);
    sigios = 0;
    write(p[1], "z", 1);
    usleep(50000);
    printf("after clearing O_ASYNC: %d\n", sigios);

    // Values and errors.
    ox.type = 7;
    E2E_T("F_SETOWN_EX bad type", fcntl(s, F_SETOWN_EX, &ox));
    E2E_T("F_SETSIG 200", fcntl(s, F_SETSIG, 200));
    E2E_T("F_SETOWN no such process", fcntl(s, F_SETOWN, 999999));
    E2E_T("F_SETOWN 0", fcntl(s, F_SETOWN, 0));
    E2E_T("F_GETOWN", fcntl(s, F_GETOWN));
    int pg = -1;
    E2E_T("SIOCSPGRP", ioctl(sv[0], SIOCSPGRP, &(int){getpid()}));
    E2E_T("SIOCGPGRP", ioctl(sv[0], SIOCGPGRP, &pg));
    printf("pgrp owner is me: %d\n", pg == getpid());
    return 0;
}
