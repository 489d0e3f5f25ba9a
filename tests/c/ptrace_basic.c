// ptrace(2) between a test program and its own children (never a host process):
// TRACEME + exec (the exec SIGTRAP), syscall-enter/exit stops counted for a known
// sequence with PTRACE_GET_SYSCALL_INFO and PEEKUSER, PEEKDATA/POKEDATA, SETREGS
// changing a call's return value, its number, and skipping it (orig_rax = -1),
// GETREGSET/GETFPREGS, process_vm_readv, signal injection and suppression at signal-delivery stops,
// GETSIGINFO, a breakpoint poked into read-only text, PTRACE_SINGLESTEP, TracerPid in /proc/PID/status, and the errors of misuse.
// e2e: timeout=60
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>
#include <elf.h>
#include <linux/ptrace.h>

static void show(const char *w, long r) {
    if (r < 0)
        printf("%s: -1 %s\n", w, strerrorname_np(errno));
    else
        printf("%s: %ld\n", w, r);
}

static const char *status_str(int st) {
    static char b[64];
    if (WIFEXITED(st))
        snprintf(b, sizeof b, "exited %d", WEXITSTATUS(st));
    else if (WIFSIGNALED(st))
        snprintf(b, sizeof b, "killed by %s", sigabbrev_np(WTERMSIG(st)));
    else if (WIFSTOPPED(st))
        snprintf(b, sizeof b, "stopped %s%s event %d raw 0x%x", sigabbrev_np(WSTOPSIG(st) & 0x7f),
                 (WSTOPSIG(st) & 0x80) ? "|0x80" : "", st >> 16, st);
    else
        snprintf(b, sizeof b, "other 0x%x", st);
    return b;
}

static int wait_show(const char *w, pid_t pid) {
    int st = 0;
    pid_t r = waitpid(pid, &st, __WALL);
    if (r != pid) {
        printf("%s: waitpid %d %s\n", w, r, strerrorname_np(errno));
        return -1;
    }
    printf("%s: %s\n", w, status_str(st));
    return st;
}

/* A child that asks to be traced and stops itself. */
static pid_t traced_child(void) {
    pid_t c = fork();
    if (c == 0) {
        alarm(30);
        if (ptrace(PTRACE_TRACEME, 0, 0, 0) != 0)
            _exit(90);
        syscall(SYS_kill, getpid(), SIGSTOP);
    }
    return c;
}

static void exec_case(const char *self) {
    pid_t c = fork();
    if (c == 0) {
        ptrace(PTRACE_TRACEME, 0, 0, 0);
        execl(self, self, "exit7", (char *)0);
        _exit(99);
    }
    wait_show("exec stop", c);
    struct user_regs_struct r;
    show("getregs at exec stop", ptrace(PTRACE_GETREGS, c, 0, &r));
    printf("exec stop rax: %lld\n", r.rax);
    siginfo_t si;
    show("getsiginfo at exec stop", ptrace(PTRACE_GETSIGINFO, c, 0, &si));
    printf("exec siginfo: %s code %d\n", sigabbrev_np(si.si_signo), si.si_code);
    show("cont", ptrace(PTRACE_CONT, c, 0, 0));
    wait_show("after exec", c);
}

static void syscall_case(void) {
    pid_t c = traced_child();
    if (c == 0) {
        syscall(SYS_getppid);
        syscall(SYS_getpid);
        syscall(SYS_gettid);
        syscall(SYS_exit_group, 0);
    }
    wait_show("initial stop", c);
    show("setoptions", ptrace(PTRACE_SETOPTIONS, c, 0, PTRACE_O_TRACESYSGOOD | PTRACE_O_EXITKILL));
    int stops = 0;
    for (;;) {
        show("syscall", ptrace(PTRACE_SYSCALL, c, 0, 0));
        int st = wait_show("stop", c);
        if (st < 0 || !WIFSTOPPED(st))
            break;
        stops++;
        struct ptrace_syscall_info info;
        memset(&info, 0, sizeof info);
        long n = ptrace(PTRACE_GET_SYSCALL_INFO, c, sizeof info, &info);
        long orig = ptrace(PTRACE_PEEKUSER, c, offsetof(struct user_regs_struct, orig_rax), 0);
        if (info.op == PTRACE_SYSCALL_INFO_ENTRY)
            printf("  info size %ld: entry nr %llu arch 0x%x peekuser %ld rax %ld\n", n,
                   info.entry.nr, info.arch, orig,
                   ptrace(PTRACE_PEEKUSER, c, offsetof(struct user_regs_struct, rax), 0));
        else if (info.op == PTRACE_SYSCALL_INFO_EXIT)
            printf("  info size %ld: exit positive %d error %d peekuser %ld\n", n,
                   info.exit.rval > 0, info.exit.is_error, orig);
        else
            printf("  info size %ld: op %d\n", n, info.op);
    }
    printf("syscall stops: %d\n", stops);
}

static volatile long word = 0x1122334455667788;

static void peekpoke_case(void) {
    pid_t c = traced_child();
    if (c == 0)
        _exit(word == 0x0102030405060708 ? 0 : 1);
    wait_show("peek stop", c);
    errno = 0;
    long v = ptrace(PTRACE_PEEKDATA, c, &word, 0);
    printf("peekdata: %lx %s\n", v, strerrorname_np(errno));
    show("pokedata", ptrace(PTRACE_POKEDATA, c, &word, 0x0102030405060708));
    errno = 0;
    v = ptrace(PTRACE_PEEKTEXT, c, &word, 0);
    printf("peektext after poke: %lx\n", v);
    errno = 0;
    v = ptrace(PTRACE_PEEKDATA, c, (void *)8, 0);
    printf("peek unmapped: %ld %s\n", v, strerrorname_np(errno));
    show("poke unmapped", ptrace(PTRACE_POKEDATA, c, (void *)8, 1));
    long buf = 0;
    struct iovec lv = {&buf, sizeof buf}, rv = {(void *)&word, sizeof buf};
    show("process_vm_readv", process_vm_readv(c, &lv, 1, &rv, 1, 0));
    printf("process_vm_readv read: %lx\n", buf);
    show("process_vm_readv flags", process_vm_readv(c, &lv, 1, &rv, 1, 1));
    rv.iov_base = (void *)8;
    show("process_vm_readv unmapped", process_vm_readv(c, &lv, 1, &rv, 1, 0));
    show("process_vm_readv no such pid", process_vm_readv(999999, &lv, 1, &rv, 1, 0));
    show("peekuser unaligned", ptrace(PTRACE_PEEKUSER, c, 3, 0));
    show("peekuser past struct user", ptrace(PTRACE_PEEKUSER, c, 4096, 0));
    errno = 0;
    v = ptrace(PTRACE_PEEKUSER, c, offsetof(struct user, u_debugreg) + 7 * 8, 0);
    printf("peekuser dr7: %ld %s\n", v, strerrorname_np(errno));
    struct user_regs_struct r;
    show("getregs", ptrace(PTRACE_GETREGS, c, 0, &r));
    long rip = ptrace(PTRACE_PEEKUSER, c, offsetof(struct user_regs_struct, rip), 0);
    printf("peekuser rip matches getregs: %s\n", rip == (long)r.rip ? "yes" : "no");
    struct user_regs_struct r2;
    struct iovec iov = {&r2, sizeof r2};
    show("getregset prstatus", ptrace(PTRACE_GETREGSET, c, NT_PRSTATUS, &iov));
    printf("regset len %zu, same rsp: %s\n", iov.iov_len, r2.rsp == r.rsp ? "yes" : "no");
    struct user_fpregs_struct fp, fp2;
    show("getfpregs", ptrace(PTRACE_GETFPREGS, c, 0, &fp));
    iov.iov_base = &fp2;
    iov.iov_len = sizeof fp2;
    show("getregset prfpreg", ptrace(PTRACE_GETREGSET, c, NT_PRFPREG, &iov));
    printf("fpregset len %zu, same mxcsr: %s\n", iov.iov_len, fp.mxcsr == fp2.mxcsr ? "yes" : "no");
    iov.iov_len = sizeof fp2;
    show("getregset bad type", ptrace(PTRACE_GETREGSET, c, 0x999, &iov));
    show("cont", ptrace(PTRACE_CONT, c, 0, 0));
    wait_show("after poke", c);
}

static void setregs_case(void) {
    pid_t c = traced_child();
    if (c == 0) {
        long a = syscall(SYS_getpid);
        long b = syscall(SYS_getppid);
        long d = syscall(SYS_getuid);
        long me = syscall(SYS_gettid);
        printf("child: getpid returned %ld\n", a);
        printf("child: skipped getppid returned %ld\n", b);
        printf("child: getuid turned into gettid returns own pid: %s\n", d == me ? "yes" : "no");
        _exit(0);
    }
    wait_show("setregs stop", c);
    int n = 0, done_ret = 0, done_skip = 0, done_nr = 0;
    for (;;) {
        ptrace(PTRACE_SYSCALL, c, 0, 0);
        int st = 0;
        waitpid(c, &st, __WALL);
        if (!WIFSTOPPED(st))
            break;
        struct user_regs_struct r;
        ptrace(PTRACE_GETREGS, c, 0, &r);
        n++;
        if (r.orig_rax == SYS_getpid && n % 2 == 0 && !done_ret++) {
            r.rax = 4242;
            ptrace(PTRACE_SETREGS, c, 0, &r);
        } else if (r.orig_rax == SYS_getppid && n % 2 == 1 && !done_skip++) {
            r.orig_rax = -1;
            r.rax = 777;
            ptrace(PTRACE_SETREGS, c, 0, &r);
        } else if (r.orig_rax == SYS_getuid && n % 2 == 1 && !done_nr++) {
            ptrace(PTRACE_POKEUSER, c, offsetof(struct user_regs_struct, orig_rax), SYS_gettid);
        }
    }
    printf("setregs stops: %d\n", n);
}

static volatile int usr1, usr2;
static void on_usr1(int s) { (void)s; usr1++; }
static void on_usr2(int s) { (void)s; usr2++; }

static void signal_case(void) {
    pid_t c = fork();
    if (c == 0) {
        alarm(30);
        signal(SIGUSR1, on_usr1);
        signal(SIGUSR2, on_usr2);
        ptrace(PTRACE_TRACEME, 0, 0, 0);
        syscall(SYS_kill, getpid(), SIGSTOP);
        /* The tracer injected SIGUSR1 when it resumed the stop. */
        syscall(SYS_kill, getpid(), SIGUSR2); /* suppressed by the tracer */
        syscall(SYS_kill, getpid(), SIGTERM); /* turned into SIGUSR1 */
        signal(SIGWINCH, SIG_IGN);
        syscall(SYS_kill, getpid(), SIGWINCH); /* ignored, yet the tracer sees it */
        _exit(usr1 * 10 + usr2);
    }
    wait_show("signal stop", c);
    show("cont with SIGUSR1", ptrace(PTRACE_CONT, c, 0, SIGUSR1));
    wait_show("next stop", c);
    siginfo_t si;
    show("getsiginfo", ptrace(PTRACE_GETSIGINFO, c, 0, &si));
    printf("siginfo: %s code %d pid is child: %s\n", sigabbrev_np(si.si_signo), si.si_code,
           si.si_pid == c ? "yes" : "no");
    show("cont suppressing", ptrace(PTRACE_CONT, c, 0, 0));
    wait_show("next stop", c);
    show("cont bad signal", ptrace(PTRACE_CONT, c, 0, 65));
    show("cont changing to SIGUSR1", ptrace(PTRACE_CONT, c, 0, SIGUSR1));
    wait_show("next stop", c);
    show("cont", ptrace(PTRACE_CONT, c, 0, 0));
    wait_show("end", c);
}

__attribute__((noinline)) static int answer(void) { return 42; }

/* A software breakpoint: int3 poked into the child's (read-only) text. */
static void breakpoint_case(void) {
    pid_t c = traced_child();
    if (c == 0)
        _exit(answer() == 42 ? 0 : 1);
    wait_show("bp stop", c);
    errno = 0;
    long orig = ptrace(PTRACE_PEEKTEXT, c, (void *)answer, 0);
    printf("peektext of code: %s\n", strerrorname_np(errno));
    show("poketext int3", ptrace(PTRACE_POKETEXT, c, (void *)answer, (orig & ~0xffL) | 0xcc));
    show("cont", ptrace(PTRACE_CONT, c, 0, 0));
    wait_show("breakpoint hit", c);
    struct user_regs_struct r;
    ptrace(PTRACE_GETREGS, c, 0, &r);
    printf("rip is the function + 1: %s\n", r.rip == (unsigned long)answer + 1 ? "yes" : "no");
    siginfo_t si;
    ptrace(PTRACE_GETSIGINFO, c, 0, &si);
    printf("breakpoint siginfo: %s code 0x%x\n", sigabbrev_np(si.si_signo), si.si_code);
    show("poketext back", ptrace(PTRACE_POKETEXT, c, (void *)answer, orig));
    r.rip -= 1;
    show("setregs", ptrace(PTRACE_SETREGS, c, 0, &r));
    show("cont", ptrace(PTRACE_CONT, c, 0, 0));
    wait_show("after breakpoint", c);
    printf("own text untouched: %s\n", *(volatile unsigned char *)answer != 0xcc ? "yes" : "no");
}

static void singlestep_case(void) {
    pid_t c = traced_child();
    if (c == 0)
        _exit(0);
    wait_show("step stop", c);
    unsigned long long last = 0;
    int advanced = 0;
    for (int i = 0; i < 5; i++) {
        ptrace(PTRACE_SINGLESTEP, c, 0, 0);
        int st = 0;
        waitpid(c, &st, __WALL);
        if (i == 0)
            printf("first step: %s\n", status_str(st));
        if (!WIFSTOPPED(st))
            break;
        struct user_regs_struct r;
        ptrace(PTRACE_GETREGS, c, 0, &r);
        advanced += r.rip != last;
        last = r.rip;
        if (i == 0) {
            siginfo_t si;
            ptrace(PTRACE_GETSIGINFO, c, 0, &si);
            printf("step siginfo: %s code %d, trap flag visible: %s\n", sigabbrev_np(si.si_signo),
                   si.si_code, (r.eflags & 0x100) ? "yes" : "no");
        }
    }
    printf("steps that moved rip: %d\n", advanced);
    ptrace(PTRACE_CONT, c, 0, 0);
    wait_show("after steps", c);
}

static void misuse_case(void) {
    show("attach self", ptrace(PTRACE_ATTACH, getpid(), 0, 0));
    show("attach no such pid", ptrace(PTRACE_ATTACH, 999999, 0, 0));
    show("cont no such pid", ptrace(PTRACE_CONT, 999999, 0, 0));
    pid_t c = fork();
    if (c == 0) {
        alarm(30);
        show("child: traceme", ptrace(PTRACE_TRACEME, 0, 0, 0));
        show("child: traceme again", ptrace(PTRACE_TRACEME, 0, 0, 0));
        fflush(stdout);
        syscall(SYS_kill, getpid(), SIGSTOP);
        pause();
        _exit(0);
    }
    wait_show("misuse stop", c);
    show("attach to own tracee", ptrace(PTRACE_ATTACH, c, 0, 0));
    show("seize own tracee", ptrace(PTRACE_SEIZE, c, 0, 0));
    show("interrupt not seized", ptrace(PTRACE_INTERRUPT, c, 0, 0));
    show("listen not seized", ptrace(PTRACE_LISTEN, c, 0, 0));
    show("setoptions bad", ptrace(PTRACE_SETOPTIONS, c, 0, 0x80000000));
    show("unknown request", ptrace((enum __ptrace_request)0x7777, c, 0, 0));
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", c);
    FILE *f = fopen(path, "r");
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "TracerPid:", 10))
            printf("TracerPid is me: %s\n", atoi(line + 10) == getpid() ? "yes" : "no");
    if (f)
        fclose(f);
    show("cont", ptrace(PTRACE_CONT, c, 0, 0));
    usleep(100000);
    struct user_regs_struct r;
    show("getregs while running", ptrace(PTRACE_GETREGS, c, 0, &r));
    show("detach while running", ptrace(PTRACE_DETACH, c, 0, 0));
    show("kill", ptrace(PTRACE_KILL, c, 0, 0));
    wait_show("after PTRACE_KILL", c);
    show("cont after reap", ptrace(PTRACE_CONT, c, 0, 0));

    /* Not a tracee. */
    pid_t d = fork();
    if (d == 0) {
        alarm(30);
        pause();
        _exit(0);
    }
    show("cont untraced child", ptrace(PTRACE_CONT, d, 0, 0));
    show("getregs untraced child", ptrace(PTRACE_GETREGS, d, 0, 0));
    kill(d, SIGKILL);
    wait_show("untraced end", d);
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    alarm(50);
    if (argc > 1 && !strcmp(argv[1], "exit7"))
        return 7;
    printf("== exec\n");
    exec_case("/proc/self/exe");
    printf("== syscall stops\n");
    syscall_case();
    printf("== peek/poke\n");
    peekpoke_case();
    printf("== setregs\n");
    setregs_case();
    printf("== signals\n");
    signal_case();
    printf("== breakpoint\n");
    breakpoint_case();
    printf("== singlestep\n");
    singlestep_case();
    printf("== misuse\n");
    misuse_case();
    return 0;
}
