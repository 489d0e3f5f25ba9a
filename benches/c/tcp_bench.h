/* Shared by the TCP rows: the measured client (ITERS operations, timed) and its peer,
 * either a forked child over loopback (--network=none rows) or the same program run
 * natively as `PROG --peer PORT` in the network namespace at the other end of a veth
 * (--network=sandbox rows; the runner starts it).
 *
 * One connection per run. The client's first byte says what it wants:
 *   'S' the client sends ITERS chunks of 64 KiB, then shuts down writing; the peer
 *       reads to EOF and answers one byte, so the time covers delivery;
 *   'R' the peer sends ITERS chunks (8-byte count after the mode byte), then closes;
 *   'P' ping-pong: ITERS one-byte requests, each answered by one byte (TCP_NODELAY). */
#ifndef TCP_BENCH_H
#define TCP_BENCH_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include "bench.h"

#define TCP_CHUNK 65536

static char tcp_buf[TCP_CHUNK];

static int tcp_write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Reads exactly n bytes (into a scratch buffer when p is NULL); -1 on error or EOF. */
static int tcp_read_n(int fd, char *p, size_t n)
{
    while (n > 0) {
        size_t want = n < TCP_CHUNK ? n : TCP_CHUNK;
        ssize_t r = read(fd, p ? p : tcp_buf, want);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        if (p)
            p += r;
        n -= (size_t)r;
    }
    return 0;
}

static void tcp_nodelay(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* Serves one connection; 0 when the client's request was served. */
static int tcp_peer_conn(int c)
{
    char mode;
    if (tcp_read_n(c, &mode, 1))
        return -1;
    if (mode == 'S') {
        ssize_t r;
        while ((r = read(c, tcp_buf, sizeof tcp_buf)) > 0 || (r < 0 && errno == EINTR))
            ;
        return r == 0 && tcp_write_all(c, "k", 1) == 0 ? 0 : -1;
    }
    if (mode == 'R') {
        uint64_t n;
        if (tcp_read_n(c, (char *)&n, sizeof n))
            return -1;
        for (uint64_t i = 0; i < n; i++)
            if (tcp_write_all(c, tcp_buf, sizeof tcp_buf))
                return -1;
        return 0;
    }
    if (mode == 'P') {
        tcp_nodelay(c);
        char b;
        ssize_t r;
        while ((r = read(c, &b, 1)) == 1)
            if (tcp_write_all(c, &b, 1))
                return -1;
        return r == 0 ? 0 : -1;
    }
    return -1;
}

static int tcp_listener(const char *ip, int port)
{
    int l = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, ip, &a.sin_addr);
    if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof a) || listen(l, 16)) {
        perror("listen");
        exit(1);
    }
    return l;
}

/* The veth rows' peer: serves connections until killed. */
static int tcp_peer_main(int port)
{
    signal(SIGPIPE, SIG_IGN);
    int l = tcp_listener("0.0.0.0", port);
    printf("ready\n");
    fflush(stdout);
    for (;;) {
        int c = accept(l, NULL, NULL);
        if (c < 0) {
            if (errno == EINTR)
                continue;
            perror("accept");
            return 1;
        }
        tcp_peer_conn(c);
        close(c);
    }
}

/* Connects, retrying while the peer is not listening yet (up to 10 s). */
static int tcp_connect(const char *ip, int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, ip, &a.sin_addr);
    for (int tries = 0; tries < 200; tries++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0) {
            perror("socket");
            exit(1);
        }
        if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0)
            return fd;
        int e = errno;
        close(fd);
        if (e != ECONNREFUSED && e != ENETUNREACH && e != EHOSTUNREACH && e != ETIMEDOUT) {
            errno = e;
            perror("connect");
            exit(1);
        }
        usleep(50000);
    }
    fprintf(stderr, "connect: peer not listening\n");
    exit(1);
}

/* The measured side: `mode` ITERS times; prints ns per operation (per 64 KiB chunk
 * for the streams, per round trip for ping-pong). */
static int tcp_client(int fd, char mode, long n)
{
    double t0, t1;
    if (tcp_write_all(fd, &mode, 1))
        goto fail;
    if (mode == 'S') {
        t0 = bench_now_ns();
        for (long i = 0; i < n; i++)
            if (tcp_write_all(fd, tcp_buf, sizeof tcp_buf))
                goto fail;
        char k;
        if (shutdown(fd, SHUT_WR) || tcp_read_n(fd, &k, 1))
            goto fail;
        t1 = bench_now_ns();
    } else if (mode == 'R') {
        uint64_t count = (uint64_t)n;
        t0 = bench_now_ns();
        if (tcp_write_all(fd, (char *)&count, sizeof count) ||
            tcp_read_n(fd, NULL, (size_t)n * TCP_CHUNK))
            goto fail;
        t1 = bench_now_ns();
    } else {
        tcp_nodelay(fd);
        char b = 'x';
        t0 = bench_now_ns();
        for (long i = 0; i < n; i++)
            if (tcp_write_all(fd, &b, 1) || tcp_read_n(fd, &b, 1))
                goto fail;
        t1 = bench_now_ns();
    }
    close(fd);
    bench_report(n, t0, t1);
    return 0;
fail:
    perror("tcp client");
    return 1;
}

/* A loopback row: a forked child serves one connection on 127.0.0.1. */
static inline int tcp_loopback_main(int argc, char **argv, char mode)
{
    long n = bench_iters(argc, argv);
    signal(SIGPIPE, SIG_IGN);
    int l = tcp_listener("127.0.0.1", 0);
    struct sockaddr_in a;
    socklen_t alen = sizeof a;
    getsockname(l, (struct sockaddr *)&a, &alen);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return 1;
    }
    if (pid == 0) {
        int c = accept(l, NULL, NULL);
        _exit(c >= 0 && tcp_peer_conn(c) == 0 ? 0 : 1);
    }
    close(l);
    int rc = tcp_client(tcp_connect("127.0.0.1", ntohs(a.sin_port)), mode, n);
    int st;
    if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "peer failed\n");
        return 1;
    }
    return rc;
}

/* A veth row: `PROG ITERS PEER_IP PORT` measures, `PROG --peer PORT` serves. */
static inline int tcp_veth_main(int argc, char **argv, char mode)
{
    if (argc == 3 && strcmp(argv[1], "--peer") == 0)
        return tcp_peer_main(atoi(argv[2]));
    long n = bench_iters(argc, argv);
    if (argc != 4) {
        fprintf(stderr, "usage: %s ITERS PEER_IP PORT | --peer PORT\n", argv[0]);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    return tcp_client(tcp_connect(argv[2], atoi(argv[3])), mode, n);
}

#endif
