// Syscall patching (systrap): the `mov eax, N; syscall` sites below are rewritten
// into jumps to the stub's trampoline once hot (after a few traps). Whatever path a call
// takes, a program must see what Linux gives it: results, registers kept across the
// call, FP state, signals that arrive in patched code and handlers that make patched
// calls themselves, restarted and interrupted blocking calls, threads racing on a
// site while it is patched, and fork and exec of a patched process.
// e2e: timeout=120
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

// Each of these is one `mov eax, N; syscall` site (the pattern glibc's wrappers have).
static long raw_getpid(void)
{
    long r;
    __asm__ volatile("mov $39, %%eax\n\tsyscall" : "=a"(r) : : "rcx", "r11", "memory");
    return r;
}

static long raw_gettid(void)
{
    long r;
    __asm__ volatile("mov $186, %%eax\n\tsyscall" : "=a"(r) : : "rcx", "r11", "memory");
    return r;
}

static long raw_read(int fd, void *buf, unsigned long n)
{
    long r;
    __asm__ volatile("mov $0, %%eax\n\tsyscall"
                     : "=a"(r)
                     : "D"((long)fd), "S"(buf), "d"(n)
                     : "rcx", "r11", "memory");
    return r;
}

static long raw_write(int fd, const void *buf, unsigned long n)
{
    long r;
    __asm__ volatile("mov $1, %%eax\n\tsyscall"
                     : "=a"(r)
                     : "D"((long)fd), "S"(buf), "d"(n)
                     : "rcx", "r11", "memory");
    return r;
}

// Every register but rax, rcx and r11 keeps its value across a patched call.
static int registers_kept(void)
{
    unsigned long in[11] = {0x1111111111111111UL, 0x2222222222222222UL, 0x3333333333333333UL,
                            0x4444444444444444UL, 0x5555555555555555UL, 0x6666666666666666UL,
                            0x7777777777777777UL, 0x8888888888888888UL, 0x9999999999999999UL,
                            0xaaaaaaaaaaaaaaaaUL, 0xbbbbbbbbbbbbbbbbUL};
    unsigned long out[11];
    __asm__ volatile(
        "push %%rbx\n\tpush %%rbp\n\tpush %%r12\n\tpush %%r13\n\tpush %%r14\n\tpush %%r15\n\t"
        "push %%rsi\n\t"
        "mov 0(%%rdi), %%rbx\n\tmov 8(%%rdi), %%rbp\n\tmov 16(%%rdi), %%r12\n\t"
        "mov 24(%%rdi), %%r13\n\tmov 32(%%rdi), %%r14\n\tmov 40(%%rdi), %%r15\n\t"
        "mov 48(%%rdi), %%rdx\n\tmov 56(%%rdi), %%r8\n\tmov 64(%%rdi), %%r9\n\t"
        "mov 72(%%rdi), %%r10\n\tmov 80(%%rdi), %%rsi\n\t"
        "mov %%rdi, %%rcx\n\t"
        "mov $39, %%eax\n\tsyscall\n\t"
        "mov (%%rsp), %%rax\n\t"
        "mov %%rbx, 0(%%rax)\n\tmov %%rbp, 8(%%rax)\n\tmov %%r12, 16(%%rax)\n\t"
        "mov %%r13, 24(%%rax)\n\tmov %%r14, 32(%%rax)\n\tmov %%r15, 40(%%rax)\n\t"
        "mov %%rdx, 48(%%rax)\n\tmov %%r8, 56(%%rax)\n\tmov %%r9, 64(%%rax)\n\t"
        "mov %%r10, 72(%%rax)\n\tmov %%rsi, 80(%%rax)\n\t"
        "pop %%rsi\n\tpop %%r15\n\tpop %%r14\n\tpop %%r13\n\tpop %%r12\n\tpop %%rbp\n\tpop %%rbx"
        :
        : "D"(in), "S"(out)
        : "rax", "rcx", "rdx", "r8", "r9", "r10", "r11", "memory");
    return memcmp(in, out, sizeof in) == 0;
}

static volatile sig_atomic_t handled;
static volatile long handler_pid;

static void on_alarm(int sig)
{
    (void)sig;
    // A handler that makes patched calls itself.
    handler_pid = raw_getpid();
    handled++;
}

static int pipe_fds[2];

static void on_alarm_write(int sig)
{
    (void)sig;
    handled++;
    raw_write(pipe_fds[1], "x", 1);
}

static void *thread_loop(void *arg)
{
    long n = (long)arg, bad = 0;
    long tid = syscall(SYS_gettid);
    for (long i = 0; i < n; i++)
        if (raw_gettid() != tid || raw_getpid() != getpid())
            bad++;
    return (void *)bad;
}

static int loop_and_check(long n)
{
    long pid = getpid(), bad = 0;
    for (long i = 0; i < n; i++)
        if (raw_getpid() != pid || syscall(SYS_getpid) != pid)
            bad++;
    return bad == 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "exec") == 0) {
        // A new image: its sites start unpatched and are patched again.
        printf("exec: loop %s\n", loop_and_check(2000) ? "ok" : "WRONG");
        return 7;
    }
    setvbuf(stdout, NULL, _IONBF, 0);

    printf("loop: %s\n", loop_and_check(20000) ? "ok" : "WRONG");
    int kept = 1;
    for (int i = 0; i < 1000; i++)
        kept &= registers_kept();
    printf("registers kept: %s\n", kept ? "yes" : "NO");

    // FP state survives patched calls.
    volatile double x = 1.0;
    double acc = 0;
    for (int i = 0; i < 1000; i++) {
        acc += x * 1.5;
        raw_getpid();
        acc *= 1.000001;
    }
    printf("fp: %.6f\n", acc);

    // Signals arriving while the loop runs patched calls; the handler calls too.
    struct sigaction sa = {0};
    sa.sa_handler = on_alarm;
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval it = {{0, 2000}, {0, 2000}};
    setitimer(ITIMER_REAL, &it, NULL);
    long pid = getpid(), bad = 0;
    // Bounded by time, not by a count of calls: natively 300,000 calls can end
    // before 20 ticks of 2 ms (a fast host), inside they take longer.
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long i = 0; handled < 20; i++) {
        if (raw_getpid() != pid)
            bad++;
        if (i % 1024 == 0) {
            clock_gettime(CLOCK_MONOTONIC, &t1);
            if (t1.tv_sec - t0.tv_sec > 10)
                break;
        }
    }
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, NULL);
    printf("signals in patched code: %s, handler saw pid: %s, results: %s\n",
           handled >= 20 ? "delivered" : "MISSING", handler_pid == pid ? "yes" : "NO",
           bad == 0 ? "ok" : "WRONG");

    // A blocking patched read interrupted by a signal: restarted with SA_RESTART
    // (it then reads what the handler wrote), EINTR without.
    if (pipe(pipe_fds) != 0)
        return 1;
    for (int restart = 1; restart >= 0; restart--) {
        sa.sa_handler = on_alarm_write;
        sa.sa_flags = restart ? SA_RESTART : 0;
        sigaction(SIGALRM, &sa, NULL);
        handled = 0;
        // The site is patched first (reads that do not block: a site is patched
        // once it is hot, after a few traps).
        char c = 0;
        for (int i = 0; i < 16; i++) {
            raw_write(pipe_fds[1], "a", 1);
            raw_read(pipe_fds[0], &c, 1);
        }
        alarm(1);
        long r = raw_read(pipe_fds[0], &c, 1);
        if (restart)
            printf("SA_RESTART read: %ld '%c' after %d signal\n", r, r == 1 ? c : '?', handled);
        else {
            printf("plain read: %s after %d signal\n", r == -EINTR ? "EINTR" : "WRONG", handled);
            raw_read(pipe_fds[0], &c, 1);
        }
    }

    // Threads on the same sites while they are patched.
    pthread_t th[4];
    for (long i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, thread_loop, (void *)20000);
    long tbad = 0;
    for (int i = 0; i < 4; i++) {
        void *r;
        pthread_join(th[i], &r);
        tbad += (long)r;
    }
    printf("threads: %s\n", tbad == 0 ? "ok" : "WRONG");

    // A fork runs the patched code it inherited.
    pid_t child = fork();
    if (child == 0)
        _exit(loop_and_check(5000) ? 3 : 4);
    int st;
    waitpid(child, &st, 0);
    printf("fork child: exit %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);

    // A process that unmaps or maps over low memory (where the sandbox keeps its
    // patch table), or sets a gs base of its own, goes on as natively.
    child = fork();
    if (child == 0) {
        int ok = munmap((void *)0x60000, 0x10000) == 0 && loop_and_check(2000);
        void *p = mmap((void *)0x60000, 0x4000, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
        ok &= p == (void *)0x60000 && loop_and_check(2000);
        static char gsbuf[64];
        ok &= syscall(SYS_arch_prctl, 0x1001 /* ARCH_SET_GS */, gsbuf) == 0;
        ok &= loop_and_check(2000) && registers_kept();
        _exit(ok ? 5 : 6);
    }
    waitpid(child, &st, 0);
    printf("low memory and gs: exit %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);

    // exec of a patched process.
    child = fork();
    if (child == 0) {
        execl("/proc/self/exe", argv[0], "exec", (char *)NULL);
        _exit(127);
    }
    waitpid(child, &st, 0);
    printf("exec child: exit %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    return 0;
}
