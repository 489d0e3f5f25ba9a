// The TCP close race over loopback, under stress: clients in several threads
// connect (blocking; non-blocking then a blocking send; non-blocking with poll) to
// a listener with a backlog of 1, so connects often wait for room in its accept
// queue, send a 4-byte request, and read until the end. Server threads read the
// request, answer 3000 bytes and close (at once, after shutdown(SHUT_WR), or after
// two writes). Every client must get all the data and then EOF (read 0): never
// ENOTCONN, ECONNREFUSED or EPIPE, which Linux does not give here. Natively in a
// fresh network namespace (net_common_ns.h).
// e2e: timeout=120
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include "net_common_ns.h"

#define CLIENTS 4
#define SERVERS 2
#define ITERS 150
#define ANSWER 3000

static struct sockaddr_in addr;
static int listener;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static int good, total;
/* Unexpected outcomes: "what errno" -> count (few kinds). */
static char odd[32][64];
static int oddn[32];

static void note(const char *what, int e)
{
    char k[64];
    snprintf(k, sizeof k, "%s %s", what, e ? strerrorname_np(e) : "0");
    pthread_mutex_lock(&mu);
    for (int i = 0; i < 32; i++) {
        if (!odd[i][0])
            strcpy(odd[i], k);
        if (!strcmp(odd[i], k)) {
            oddn[i]++;
            break;
        }
    }
    pthread_mutex_unlock(&mu);
}

static void *server(void *arg)
{
    (void)arg;
    char buf[ANSWER];
    memset(buf, 'x', sizeof buf);
    for (;;) {
        int s = accept(listener, NULL, NULL);
        if (s < 0)
            return NULL;
        char req[4];
        int got = 0;
        while (got < 4) {
            ssize_t n = read(s, req + got, 4 - got);
            if (n <= 0)
                break;
            got += n;
        }
        if (got == 4 && req[0] == 'Q') {
            close(s);
            return NULL;
        }
        switch (got == 4 ? req[0] : 'A') {
        case 'B':
            write(s, buf, ANSWER);
            shutdown(s, SHUT_WR);
            break;
        case 'C':
            write(s, buf, ANSWER / 2);
            sched_yield();
            write(s, buf + ANSWER / 2, ANSWER - ANSWER / 2);
            break;
        default:
            write(s, buf, ANSWER);
        }
        close(s);
    }
}

static int wait_for(int fd, short ev)
{
    struct pollfd p = {fd, ev, 0};
    return poll(&p, 1, 10000);
}

static void one(int i, int t)
{
    int mode = (i + t) % 3;
    int c = socket(AF_INET, SOCK_STREAM | (mode ? SOCK_NONBLOCK : 0), 0);
    int r = connect(c, (struct sockaddr *)&addr, sizeof addr);
    if (r < 0 && !(mode && errno == EINPROGRESS)) {
        note("connect", errno);
        close(c);
        return;
    }
    if (mode == 1) {
        // Blocking from here on: the send waits for the connection.
        fcntl(c, F_SETFL, 0);
    } else if (mode == 2) {
        wait_for(c, POLLOUT);
        int err = 0;
        socklen_t l = sizeof err;
        getsockopt(c, SOL_SOCKET, SO_ERROR, &err, &l);
        if (err) {
            note("SO_ERROR", err);
            close(c);
            return;
        }
    }
    char req[4] = {"ABC"[i % 3], 'e', 'q', '\n'};
    if (send(c, req, 4, MSG_NOSIGNAL) != 4) {
        note("send", errno);
        close(c);
        return;
    }
    char buf[4096];
    int have = 0;
    for (;;) {
        if (mode == 2 && wait_for(c, POLLIN) <= 0) {
            note("poll timeout", 0);
            break;
        }
        ssize_t n = read(c, buf, sizeof buf);
        if (n > 0) {
            have += n;
            continue;
        }
        if (n < 0 && errno == EAGAIN && mode == 2)
            continue;
        if (n == 0 && have == ANSWER) {
            pthread_mutex_lock(&mu);
            good++;
            pthread_mutex_unlock(&mu);
        } else if (n == 0) {
            note("EOF after too few bytes", 0);
        } else {
            note(have == ANSWER ? "read after all data" : "read before all data", errno);
        }
        break;
    }
    close(c);
}

static void *client(void *arg)
{
    int t = (int)(long)arg;
    for (int i = 0; i < ITERS; i++) {
        one(i, t);
        pthread_mutex_lock(&mu);
        total++;
        pthread_mutex_unlock(&mu);
    }
    return NULL;
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    fresh_netns();
    listener = socket(AF_INET, SOCK_STREAM, 0);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(listener, (struct sockaddr *)&addr, sizeof addr);
    socklen_t al = sizeof addr;
    getsockname(listener, (struct sockaddr *)&addr, &al);
    listen(listener, 1);
    pthread_t sv[SERVERS], cl[CLIENTS];
    for (int i = 0; i < SERVERS; i++)
        pthread_create(&sv[i], NULL, server, NULL);
    for (long i = 0; i < CLIENTS; i++)
        pthread_create(&cl[i], NULL, client, (void *)i);
    for (int i = 0; i < CLIENTS; i++)
        pthread_join(cl[i], NULL);
    // Stop the servers: one "Q" request each.
    for (int i = 0; i < SERVERS; i++) {
        int c = socket(AF_INET, SOCK_STREAM, 0);
        connect(c, (struct sockaddr *)&addr, sizeof addr);
        write(c, "Quit", 4);
        char b;
        read(c, &b, 1);
        close(c);
    }
    for (int i = 0; i < SERVERS; i++)
        pthread_join(sv[i], NULL);
    printf("connections: %d, all data then EOF: %d\n", total, good);
    for (int i = 0; i < 32 && odd[i][0]; i++)
        printf("unexpected: %s x%d\n", odd[i], oddn[i]);
    return 0;
}
