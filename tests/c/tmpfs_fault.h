/* The SIGBUS-catching page loop of the tmpfs size tests (mm_tmpfs_sigbus,
 * mm_tmpfs_mounted, mm_tmpfs_limit): each touches the pages of a shared mapping
 * of a file on a full tmpfs one by one and reports where the first SIGBUS came,
 * with its code and whether it hit the page right after the last that worked. */
#ifndef TMPFS_FAULT_H
#define TMPFS_FAULT_H

#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#define PG 4096L
/* Where in each page tf_touch writes, and what: a pread there reads it back. */
#define TF_OFFSET 7
#define TF_BYTE 'm'

static sigjmp_buf tf_back;
static volatile int tf_code;
static char *volatile tf_addr;

static void tf_on_bus(int sig, siginfo_t *si, void *uc)
{
    (void)sig;
    (void)uc;
    tf_code = si->si_code;
    tf_addr = si->si_addr;
    siglongjmp(tf_back, 1);
}

/* Unbuffered stdout (a run that dies midway still shows how far it got) and
 * SIGBUS caught by tf_touch. */
static void tf_setup(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = tf_on_bus;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGBUS, &sa, NULL);
}

static const char *tf_code_name(int c)
{
    switch (c) {
    case BUS_ADRERR: return "BUS_ADRERR";
    case BUS_ADRALN: return "BUS_ADRALN";
    case BUS_OBJERR: return "BUS_OBJERR";
    default: return "other";
    }
}

/* Writes TF_BYTE (or, with !write, reads a byte) in each page of p[from..to) in
 * order until a SIGBUS; prints how many pages succeeded and the signal's code and
 * page. Returns the index of the first page that failed, or `to`. */
static long tf_touch(const char *what, char *p, long from, long to, int write)
{
    volatile long i = from;
    tf_code = 0;
    if (sigsetjmp(tf_back, 1) == 0) {
        for (; i < to; i++) {
            if (write)
                p[i * PG + TF_OFFSET] = TF_BYTE;
            else
                (void)*(volatile char *)(p + i * PG);
        }
        printf("%s: %ld pages, no SIGBUS\n", what, i - from);
    } else {
        printf("%s: %ld pages, then SIGBUS %s at page %ld (the next one: %s)\n", what, i - from,
               tf_code_name(tf_code), (long)((tf_addr - p) / PG),
               (tf_addr - p) / PG == i ? "yes" : "no");
    }
    return i;
}

#endif
