// A system call fuzzer for the sandbox: random system calls with random and boundary
// arguments, from several processes (workers) with several threads each, seeded and
// reproducible from the seed (each worker generation's sequence is a function of the
// seed, the worker slot and the generation; with more than one thread per worker the
// interleaving of threads is not).
//
//   syscall_fuzz SEED CALLS WORKERS THREADS [STALL_MS]
//
// The first process is a supervisor: it ignores every catchable signal, forks WORKERS
// workers and replaces each one that dies (a random munmap of its own stack, a bad
// arch_prctl, a signal it sent itself are expected deaths), until CALLS calls were made
// in all. A worker whose call counter has not moved for STALL_MS (default 1500) is
// killed with SIGKILL (it blocked in a call, say a pause or a read of an empty pipe);
// if it is still there 10 s later the sandbox failed to kill it: the supervisor prints
// "fuzz: HANG" and exits 3. At the end it prints one summary line and exits 0.
//
// Calls that would end the experiment rather than test the kernel are left out or
// tamed: exit, exit_group, rt_sigreturn, execve and execveat, and the process-creating
// calls (a worker forks a child of its own now and then, which makes a few calls and
// exits); calls that name a process get only the worker itself, its own group or
// processes that do not exist, never the supervisor (pid 1) or every process (-1).
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_WORKERS 64
#define MAX_THREADS 16
#define SCRATCH_SIZE (64 * 1024)
#define MAX_NR 463

struct slot {
    volatile uint64_t calls;  // calls made by this slot's workers (all generations)
    volatile int32_t last_nr; // the call in progress (or last made); untrusted, see last_call
};

static struct slot *slots;
static uint64_t quota;       // calls per slot
static int nthreads;
static int my_slot;
static char *scratch;        // SCRATCH_SIZE read-write bytes, then a PROT_NONE page
static char *ro_page;        // a read-only page of path strings
static int fds[16];
static int nfds;
static pid_t self_pid;

// xorshift64*: small, fast, and the same on every libc.
static uint64_t next(uint64_t *s) {
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static uint64_t mix(uint64_t a, uint64_t b) {
    uint64_t s = a * 0x9E3779B97F4A7C15ULL ^ (b + 0x632BE59BD9B4E019ULL);
    for (int i = 0; i < 4; i++)
        next(&s);
    return s ? s : 1;
}

static const char *paths[] = {
    "/tmp/fz", "/tmp/fz/a", "/dev/null", "/dev/zero", "/dev/full", "/dev/urandom",
    "/dev/shm/fz", "/proc/self/maps", "/proc/self/mem", "/proc/self/status",
    "/proc/self/fd/3", "/proc/1/mem", "/etc/passwd", "/etc", ".", "..", "/", "",
    "fz_file", "fz_dir/x", "/sys/kernel", "/dev/ptmx", "/dev/tty", "/proc/self/exe",
    "/tmp/fz/../../../../etc/shadow", "/dev/pts/0", "/proc/sys/kernel/hostname",
};
#define NPATHS (sizeof(paths) / sizeof(paths[0]))

// Calls that end the process or replace its image: never made.
static int excluded(int nr) {
    switch (nr) {
    case SYS_exit: case SYS_exit_group: case SYS_rt_sigreturn:
    case SYS_execve: case SYS_execveat:
    case SYS_clone: case SYS_fork: case SYS_vfork: case 435 /* clone3 */:
    // uretprobe and uprobe: the host kernel runs them even under a seccomp filter
    // (they only act on the caller) and, outside the kernel's own trampoline, answer
    // with SIGILL, natively too: they would only kill workers.
    case 335: case 336:
        return 1;
    }
    return 0;
}

// Calls that usually block until a signal or an event: made forty times less often so
// most of the budget goes to calls that return.
static int slow(int nr) {
    switch (nr) {
    case SYS_pause: case SYS_rt_sigsuspend: case SYS_nanosleep: case SYS_clock_nanosleep:
    case SYS_select: case SYS_pselect6: case SYS_poll: case SYS_ppoll: case SYS_epoll_wait:
    case SYS_epoll_pwait: case 441 /* epoll_pwait2 */: case SYS_futex: case SYS_wait4:
    case SYS_waitid: case SYS_read: case SYS_readv: case SYS_recvfrom: case SYS_recvmsg:
    case SYS_recvmmsg: case SYS_accept: case SYS_accept4: case SYS_msgrcv: case SYS_msgsnd:
    case SYS_semop: case SYS_semtimedop: case SYS_rt_sigtimedwait: case SYS_flock:
    case SYS_io_getevents: case SYS_mq_timedreceive: case SYS_mq_timedsend:
    case SYS_connect: case SYS_sendto: case SYS_sendmsg: case SYS_write: case SYS_writev:
    case SYS_pread64: case SYS_preadv: case SYS_sendfile: case SYS_splice: case SYS_tee:
    case SYS_fcntl: case SYS_open: case SYS_openat:
        return 1;
    }
    return 0;
}

// Calls whose first argument names a process (or thread, or process group).
static int targets_pid(int nr) {
    switch (nr) {
    case SYS_kill: case SYS_tkill: case SYS_rt_sigqueueinfo: case SYS_prlimit64:
    case SYS_process_vm_readv: case SYS_process_vm_writev: case SYS_ptrace:
    case SYS_pidfd_open: case SYS_sched_setscheduler: case SYS_sched_setparam:
    case SYS_sched_setaffinity: case SYS_sched_setattr: case SYS_setpgid: case SYS_kcmp:
    case SYS_move_pages: case SYS_migrate_pages: case SYS_get_robust_list:
    case SYS_ioprio_set: case SYS_setpriority: case SYS_capset:
        return 1;
    }
    return 0;
}

static uint64_t pick_pid(uint64_t *s) {
    switch (next(s) % 6) {
    case 0: return 0;
    case 1: return (uint64_t)self_pid;
    case 2: return (uint64_t)syscall(SYS_gettid);
    case 3: return (uint64_t)(-(int64_t)self_pid);
    case 4: return 400000 + next(s) % 100000; // nobody
    default: return (uint64_t)(int64_t)(int32_t)(next(s) | 0x80000000u); // bogus negative
    }
}

static uint64_t pick_arg(uint64_t *s) {
    uint64_t r = next(s);
    switch (r % 16) {
    case 0: return 0;
    case 1: return (r >> 8) % 8;
    case 2: return (uint64_t)-1;
    case 3: {
        static const uint64_t edge[] = {
            0x7fffffff, 0x80000000, 0xffffffff, 0x100000000ULL, 0x7fffffffffffffffULL,
            0x8000000000000000ULL, 4095, 4096, 4097, 65536, 1 << 20, 0x40000000,
            0x7ffffe000000ULL /* the systrap stub's page */, 0x7ffffe010000ULL,
            0x7fffffffe000ULL, 0xffff800000000000ULL, 0xffffffffff600000ULL /* vsyscall */,
            1, 8, 64, 255, 256,
        };
        return edge[(r >> 8) % (sizeof(edge) / sizeof(edge[0]))];
    }
    case 4: case 5: // a pointer into the scratch buffer, sometimes right before its end
        if ((r >> 8) % 4 == 0)
            return (uint64_t)(scratch + SCRATCH_SIZE - ((r >> 16) % 64));
        return (uint64_t)(scratch + ((r >> 16) % SCRATCH_SIZE & ~7ULL));
    case 6: // a path
        return (uint64_t)(ro_page + 64 * ((r >> 8) % NPATHS));
    case 7: // an open descriptor
        return nfds ? (uint64_t)fds[(r >> 8) % nfds] : 0;
    case 8: return (r >> 8) % 1024;
    case 9: return (r >> 8) & ((1ULL << ((r >> 2) % 64)) - 1); // random width
    case 10: return 1ULL << ((r >> 8) % 64);
    case 11: return (uint64_t)ro_page;
    case 12: return (r >> 8) << 12; // page aligned, anywhere
    default: return r;
    }
}

// Files the calls can work on: a pipe, a socket pair, an eventfd, an epoll, a memfd, a
// file in /tmp; reopened in each worker.
static void open_fds(void) {
    int p[2];
    nfds = 0;
    if (pipe2(p, O_NONBLOCK) == 0) { fds[nfds++] = p[0]; fds[nfds++] = p[1]; }
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, p) == 0) {
        fds[nfds++] = p[0]; fds[nfds++] = p[1];
    }
    if (socketpair(AF_UNIX, SOCK_DGRAM, 0, p) == 0) { fds[nfds++] = p[0]; }
    int e = eventfd(0, EFD_NONBLOCK);
    if (e >= 0) fds[nfds++] = e;
    e = epoll_create1(0);
    if (e >= 0) fds[nfds++] = e;
    e = (int)syscall(SYS_memfd_create, "fz", 0);
    if (e >= 0) { if (ftruncate(e, 8192) == 0) {} fds[nfds++] = e; }
    mkdir("/tmp/fz", 0777);
    e = open("/tmp/fz/f", O_RDWR | O_CREAT, 0644);
    if (e >= 0) fds[nfds++] = e;
    e = open("/dev/null", O_RDWR);
    if (e >= 0) fds[nfds++] = e;
}

static void one_call(uint64_t *s) {
    int nr;
    for (;;) {
        nr = (int)(next(s) % MAX_NR);
        if (excluded(nr))
            continue;
        if (slow(nr) && next(s) % 40 != 0)
            continue;
        break;
    }
    uint64_t a[6];
    for (int i = 0; i < 6; i++)
        a[i] = pick_arg(s);
    if (targets_pid(nr))
        a[0] = pick_pid(s);
    if (nr == SYS_tgkill || nr == SYS_rt_tgsigqueueinfo) {
        a[0] = pick_pid(s);
        a[1] = pick_pid(s);
    }
    if (nr == SYS_pidfd_send_signal && a[0] < 16)
        a[0] = 1000; // a descriptor number nothing holds: never a pidfd of pid 1
    if (nr == SYS_reboot)
        a[0] = 0; // never the magic numbers
    // A memfd or a file in memory takes the host's RAM for a long fallocate, as Linux's
    // shmem would: only the host's memory would be measured (a kill in the middle of a
    // long one is c/abi_kill_long_transfer's case).
    if (nr == SYS_fallocate)
        a[3] %= 64 << 20;
    slots[my_slot].last_nr = nr;
    syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
    __atomic_add_fetch(&slots[my_slot].calls, 1, __ATOMIC_RELAXED);
}

// Now and then a worker forks: the child makes a few calls and exits, the parent
// reaps it (exercises fork, exit and wait with whatever state the calls left).
static void fork_child(uint64_t *s) {
    pid_t c = fork();
    if (c == 0) {
        self_pid = getpid();
        for (int i = 0; i < 20; i++)
            one_call(s);
        _exit(0);
    }
    if (c > 0) {
        int st;
        // Bounded: the child may block; the stall detector then kills the worker.
        waitpid(c, &st, 0);
    }
}

struct thread_arg { uint64_t seed; };

static void *fuzz_thread(void *p) {
    uint64_t s = ((struct thread_arg *)p)->seed;
    while (slots[my_slot].calls < quota) {
        for (int i = 0; i < 64; i++) {
            // Keep struct arguments random: refill a random stretch of scratch.
            uint64_t off = next(&s) % (SCRATCH_SIZE - 256);
            for (int j = 0; j < 32; j++)
                ((uint64_t *)(scratch + (off & ~7ULL)))[j] = next(&s);
            one_call(&s);
        }
        if (next(&s) % 512 == 0)
            fork_child(&s);
    }
    return NULL;
}

static void on_alarm(int sig) { (void)sig; }

static void worker(int slot, uint64_t seed) {
    my_slot = slot;
    self_pid = getpid();
    setsid(); // kill(0, ..) hits this worker's group only
    int null = open("/dev/null", O_RDWR);
    if (null >= 0) { dup2(null, 0); dup2(null, 1); dup2(null, 2); if (null > 2) close(null); }
    scratch = mmap(NULL, SCRATCH_SIZE + 4096, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ro_page = mmap(NULL, 64 * NPATHS + 4096, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (scratch == MAP_FAILED || ro_page == MAP_FAILED)
        _exit(90);
    mprotect(scratch + SCRATCH_SIZE, 4096, PROT_NONE);
    for (size_t i = 0; i < NPATHS; i++)
        strcpy(ro_page + 64 * i, paths[i]);
    mprotect(ro_page, 64 * NPATHS + 4096, PROT_READ);
    open_fds();
    // Calls that block until a signal come back within 10 ms (unless a random call
    // changed SIGALRM or the timer, in which case the supervisor's stall kill ends it).
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_alarm;
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval it = {{0, 10000}, {0, 10000}};
    setitimer(ITIMER_REAL, &it, NULL);

    pthread_t th[MAX_THREADS];
    struct thread_arg ta[MAX_THREADS];
    int started = 0;
    for (int t = 1; t < nthreads; t++) {
        ta[t].seed = mix(seed, (uint64_t)t);
        if (pthread_create(&th[started], NULL, fuzz_thread, &ta[t]) == 0)
            started++;
    }
    ta[0].seed = seed;
    fuzz_thread(&ta[0]);
    _exit(0);
}

static uint64_t now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

// Counts overwritten in the shared slots (see take_count).
static uint64_t corrupt_counts;

// Takes worker w's count from its slot if it is believable, and says whether it moved.
// The workers' random calls reach the shared slots like any memory of theirs (a 10^7-call
// run left one reading 4.5e18): a count that went down, or grew faster than a million
// calls a second since it was last taken, is taken for overwritten; the last believable
// one stays and is written back, so the workers go on counting from it.
static int take_count(int w, uint64_t *last, uint64_t *taken_at, uint64_t t) {
    uint64_t c = slots[w].calls;
    int moved = 0;
    if (c != *last) {
        if (c < *last || c - *last > (t - *taken_at + 10) * 1000) {
            corrupt_counts++;
            slots[w].calls = *last;
        } else {
            *last = c;
            moved = 1;
        }
    }
    *taken_at = t;
    return moved;
}

// The call a worker's slot says it is in, for a report. Only a hint: the slot is
// shared memory the workers' own random calls can overwrite (as they overwrote the
// counts and the pids before), so the value is printed as the slot's word, and one
// that is no system call number is not printed as one.
static const char *last_call(int w, char *buf, size_t len) {
    int32_t nr = slots[w].last_nr;
    if (nr >= 0 && nr < MAX_NR)
        snprintf(buf, len, "syscall %d by its slot, which the workers can overwrite", nr);
    else
        snprintf(buf, len, "unknown syscall: its slot holds %d, not a syscall number", nr);
    return buf;
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: %s SEED CALLS WORKERS THREADS [STALL_MS]\n", argv[0]);
        return 2;
    }
    uint64_t seed = strtoull(argv[1], NULL, 0);
    uint64_t calls = strtoull(argv[2], NULL, 0);
    int workers = atoi(argv[3]);
    nthreads = atoi(argv[4]);
    uint64_t stall_ms = argc > 5 ? strtoull(argv[5], NULL, 0) : 1500;
    if (workers < 1 || workers > MAX_WORKERS || nthreads < 1 || nthreads > MAX_THREADS)
        return 2;
    quota = (calls + (uint64_t)workers - 1) / (uint64_t)workers;
    slots = mmap(NULL, sizeof(struct slot) * MAX_WORKERS, PROT_READ | PROT_WRITE,
                 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (slots == MAP_FAILED)
        return 2;
    for (int sig = 1; sig < 65; sig++)
        if (sig != SIGKILL && sig != SIGSTOP && sig != SIGCHLD)
            signal(sig, SIG_IGN);

    int generation[MAX_WORKERS] = {0};
    uint64_t last_calls[MAX_WORKERS] = {0};
    uint64_t last_move[MAX_WORKERS] = {0};
    uint64_t taken_at[MAX_WORKERS] = {0};
    // Each worker's pid, in the parent's own memory: the shared slots are within reach of
    // the workers' random calls (a 10^7-call run overwrote one, and the parent then
    // "killed" a pid that did not exist and reported the live worker as a hang).
    pid_t pids[MAX_WORKERS] = {0};
    uint64_t killed_at[MAX_WORKERS] = {0};
    uint64_t started = 0, died_signal = 0, died_status = 0, stalls = 0;
    uint64_t by_signal[65] = {0};
    uint64_t t0 = now_ms();
    for (;;) {
        int done = 1;
        for (int w = 0; w < workers; w++) {
            if (pids[w] == 0)
                take_count(w, &last_calls[w], &taken_at[w], now_ms());
            if (last_calls[w] >= quota && pids[w] == 0)
                continue;
            done = 0;
            if (pids[w] == 0) {
                uint64_t ws = mix(mix(seed, (uint64_t)w), (uint64_t)generation[w]++);
                pid_t p = fork();
                if (p == 0)
                    worker(w, ws);
                if (p < 0) {
                    printf("fuzz: fork failed: %s\n", strerror(errno));
                    return 4;
                }
                pids[w] = p;
                last_move[w] = now_ms();
                killed_at[w] = 0;
                started++;
            }
        }
        if (done)
            break;
        int st;
        pid_t p;
        while ((p = waitpid(-1, &st, WNOHANG)) > 0) {
            for (int w = 0; w < workers; w++) {
                if (pids[w] != p)
                    continue;
                pids[w] = 0;
                if (WIFSIGNALED(st)) {
                    died_signal++;
                    by_signal[WTERMSIG(st) & 63]++;
                    if (getenv("FUZZ_VERBOSE")) {
                        char why[96];
                        printf("fuzz: worker %d generation %d died by signal %d (%s)\n", w,
                               generation[w] - 1, WTERMSIG(st), last_call(w, why, sizeof why));
                    }
                }
                else if (WEXITSTATUS(st) != 0)
                    died_status++;
            }
        }
        uint64_t t = now_ms();
        for (int w = 0; w < workers; w++) {
            if (pids[w] == 0)
                continue;
            if (take_count(w, &last_calls[w], &taken_at[w], t)) {
                last_move[w] = t;
            } else if (killed_at[w] == 0 && t - last_move[w] > stall_ms) {
                kill(pids[w], SIGKILL);
                killed_at[w] = t;
                stalls++;
            } else if (killed_at[w] && t - killed_at[w] > 10000) {
                char why[96];
                printf("fuzz: HANG: worker %d (pid %d, generation %d) survived SIGKILL for 10 s "
                       "(%s); seed %llu\n",
                       w, pids[w], generation[w] - 1, last_call(w, why, sizeof why),
                       (unsigned long long)seed);
                fflush(stdout);
                if (getenv("FUZZ_HOLD")) // keep the sandbox up for a look from the host
                    sleep(600);
                return 3;
            }
        }
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    uint64_t total = 0;
    for (int w = 0; w < workers; w++)
        total += last_calls[w];
    printf("fuzz: done seed=%llu calls=%llu workers_started=%llu died_by_signal=%llu "
           "died_with_status=%llu stalled=%llu corrupt_counts=%llu ms=%llu\n",
           (unsigned long long)seed, (unsigned long long)total, (unsigned long long)started,
           (unsigned long long)died_signal, (unsigned long long)died_status,
           (unsigned long long)stalls, (unsigned long long)corrupt_counts,
           (unsigned long long)(now_ms() - t0));
    if (getenv("FUZZ_VERBOSE")) {
        for (int i = 1; i < 65; i++)
            if (by_signal[i])
                printf("fuzz: died by signal %d: %llu\n", i, (unsigned long long)by_signal[i]);
    }
    return 0;
}
