// ptrace between several processes of the test (never a host process): fork and
// exec following with PTRACE_SEIZE options (FORK, EXEC, EXIT events, the new child's
// PTRACE_EVENT_STOP, GETEVENTMSG), PTRACE_INTERRUPT, group stops of a seized tracee
// and PTRACE_LISTEN, the exit of a non-child tracee held for the tracer first, a
// tracer that dies mid-stop (the tracee is let go; with EXITKILL, killed), two
// tracers racing to attach, a tracee killed while stopped, and the EPERM of other
// uids and non-dumpable processes.
// e2e: timeout=60
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static void show(const char *w, long r) {
    if (r < 0)
        printf("%s: -1 %s\n", w, strerrorname_np(errno));
    else
        printf("%s: %ld\n", w, r);
}

static const char *status_str(int st) {
    static char bufs[2][80];
    static int which;
    char *b = bufs[which++ & 1];
    if (WIFEXITED(st))
        snprintf(b, 80, "exited %d", WEXITSTATUS(st));
    else if (WIFSIGNALED(st))
        snprintf(b, 80, "killed by %s", sigabbrev_np(WTERMSIG(st)));
    else if (WIFSTOPPED(st))
        snprintf(b, 80, "stopped %s%s event %d", sigabbrev_np(WSTOPSIG(st) & 0x7f),
                 (WSTOPSIG(st) & 0x80) ? "|0x80" : "", st >> 16);
    else
        snprintf(b, 80, "other 0x%x", st);
    return b;
}

static int wait_show(const char *w, pid_t pid, int flags) {
    int st = 0;
    pid_t r = waitpid(pid, &st, flags);
    if (r != pid) {
        printf("%s: waitpid %d %s\n", w, r, strerrorname_np(errno));
        return -1;
    }
    printf("%s: %s\n", w, status_str(st));
    return st;
}

/* A child blocked reading `fd` until a byte comes, then exiting with `code`. */
static pid_t blocked_child(int fd, int code) {
    pid_t c = fork();
    if (c == 0) {
        alarm(30);
        char b;
        while (read(fd, &b, 1) < 0 && errno == EINTR)
            ;
        _exit(code);
    }
    return c;
}

#define LOG 16
struct plog {
    pid_t pid;
    char lines[LOG][96];
    int n;
};

static void logf_(struct plog *l, const char *s) {
    if (l->n < LOG)
        snprintf(l->lines[l->n++], 96, "%s", s);
}

static void follow_case(const char *self) {
    int go[2];
    pipe(go);
    pid_t t = fork();
    if (t == 0) {
        alarm(30);
        char b;
        while (read(go[0], &b, 1) < 0 && errno == EINTR)
            ;
        pid_t g = fork();
        if (g == 0) {
            execl(self, self, "exit7", (char *)0);
            _exit(99);
        }
        int st = 0;
        pid_t r = waitpid(g, &st, 0);
        _exit(r == g && WIFEXITED(st) ? WEXITSTATUS(st) + 10 : 1);
    }
    usleep(100000);
    long opts = PTRACE_O_TRACEFORK | PTRACE_O_TRACEEXEC | PTRACE_O_TRACEEXIT;
    show("seize", ptrace(PTRACE_SEIZE, t, 0, opts));
    show("seize again", ptrace(PTRACE_SEIZE, t, 0, opts));
    show("getregs of running tracee", ptrace(PTRACE_GETREGS, t, 0, 0));
    show("interrupt", ptrace(PTRACE_INTERRUPT, t, 0, 0));
    wait_show("interrupt stop", t, __WALL);
    siginfo_t si;
    show("getsiginfo", ptrace(PTRACE_GETSIGINFO, t, 0, &si));
    printf("siginfo: %s code 0x%x\n", sigabbrev_np(si.si_signo), si.si_code);
    show("cont", ptrace(PTRACE_CONT, t, 0, 0));
    write(go[1], "g", 1);
    struct plog lt = {.pid = t}, lg = {.pid = 0};
    int done = 0;
    while (done < 2) {
        int st = 0;
        pid_t r = waitpid(-1, &st, __WALL);
        if (r < 0) {
            printf("waitpid: %s\n", strerrorname_np(errno));
            break;
        }
        struct plog *l = r == t ? &lt : &lg;
        if (r != t)
            lg.pid = r;
        char line[96];
        unsigned long msg = 0;
        int ev = st >> 16;
        if (WIFSTOPPED(st) && ev) {
            ptrace(PTRACE_GETEVENTMSG, r, 0, &msg);
            const char *what = ev == PTRACE_EVENT_FORK ? "fork"
                               : ev == PTRACE_EVENT_EXEC ? "exec"
                               : ev == PTRACE_EVENT_EXIT ? "exit"
                               : ev == PTRACE_EVENT_STOP ? "stop" : "?";
            if (ev == PTRACE_EVENT_FORK)
                snprintf(line, sizeof line, "%s: msg is the new child: %s", status_str(st),
                         (pid_t)msg == lg.pid || lg.pid == 0 ? "yes" : "no");
            else if (ev == PTRACE_EVENT_EXEC)
                snprintf(line, sizeof line, "%s (%s): msg is own pid: %s", status_str(st), what,
                         (pid_t)msg == r ? "yes" : "no");
            else if (ev == PTRACE_EVENT_EXIT)
                snprintf(line, sizeof line, "%s (%s): msg %s", status_str(st), what,
                         status_str((int)msg));
            else
                snprintf(line, sizeof line, "%s (%s)", status_str(st), what);
            if (ev == PTRACE_EVENT_FORK && lg.pid == 0)
                lg.pid = (pid_t)msg;
        } else {
            snprintf(line, sizeof line, "%s", status_str(st));
        }
        logf_(l, line);
        if (WIFEXITED(st) || WIFSIGNALED(st))
            done++;
        else
            ptrace(PTRACE_CONT, r, 0, 0);
    }
    printf("tracee:\n");
    for (int i = 0; i < lt.n; i++)
        printf("  %s\n", lt.lines[i]);
    printf("its child:\n");
    for (int i = 0; i < lg.n; i++)
        printf("  %s\n", lg.lines[i]);
}

static void group_stop_case(void) {
    int go[2];
    pipe(go);
    pid_t t = blocked_child(go[0], 4);
    usleep(100000);
    show("seize", ptrace(PTRACE_SEIZE, t, 0, 0));
    kill(t, SIGSTOP);
    wait_show("SIGSTOP delivery", t, __WALL);
    show("cont with SIGSTOP", ptrace(PTRACE_CONT, t, 0, SIGSTOP));
    wait_show("group stop", t, __WALL);
    siginfo_t si;
    show("getsiginfo", ptrace(PTRACE_GETSIGINFO, t, 0, &si));
    printf("siginfo: %s code 0x%x\n", sigabbrev_np(si.si_signo), si.si_code);
    show("listen", ptrace(PTRACE_LISTEN, t, 0, 0));
    kill(t, SIGCONT);
    wait_show("after SIGCONT", t, __WALL);
    show("cont", ptrace(PTRACE_CONT, t, 0, 0));
    wait_show("SIGCONT delivery", t, __WALL);
    show("cont", ptrace(PTRACE_CONT, t, 0, 0));
    write(go[1], "g", 1);
    wait_show("end", t, __WALL);
}

static void tracer_dies_case(int exitkill) {
    int go[2], sync[2];
    pipe(go);
    pipe(sync);
    pid_t t = blocked_child(go[0], 5);
    usleep(100000);
    pid_t c = fork();
    if (c == 0) {
        alarm(30);
        if (exitkill) {
            if (ptrace(PTRACE_SEIZE, t, 0, PTRACE_O_EXITKILL) != 0)
                _exit(1);
        } else {
            if (ptrace(PTRACE_ATTACH, t, 0, 0) != 0)
                _exit(1);
            int st = 0;
            if (waitpid(t, &st, __WALL) != t || !WIFSTOPPED(st))
                _exit(2);
        }
        _exit(0); /* mid-stop, without detaching */
    }
    wait_show("tracer", c, 0);
    /* Let go (the stop it was in is dropped) or killed. */
    write(go[1], "g", 1);
    wait_show("tracee end", t, 0);
}

static void race_case(void) {
    int go[2], start[2], res[2], end[2];
    pipe(go);
    pipe(start);
    pipe(res);
    pipe(end);
    pid_t t = blocked_child(go[0], 6);
    pid_t cs[2];
    for (int i = 0; i < 2; i++) {
        cs[i] = fork();
        if (cs[i] == 0) {
            alarm(30);
            char b;
            read(start[0], &b, 1);
            char r = ptrace(PTRACE_SEIZE, t, 0, 0) == 0 ? 'y' : errno == EPERM ? 'n' : '?';
            write(res[1], &r, 1);
            read(end[0], &b, 1);
            _exit(0);
        }
    }
    write(start[1], "ss", 2);
    int yes = 0, no = 0;
    for (int i = 0; i < 2; i++) {
        char r;
        read(res[0], &r, 1);
        yes += r == 'y';
        no += r == 'n';
    }
    printf("racing seizes: %d won, %d EPERM\n", yes, no);
    write(end[1], "ee", 2);
    wait_show("racer", cs[0], 0);
    wait_show("racer", cs[1], 0);
    write(go[1], "g", 1);
    wait_show("raced tracee", t, 0);
}

static void killed_while_stopped(void) {
    pid_t t = fork();
    if (t == 0) {
        alarm(30);
        ptrace(PTRACE_TRACEME, 0, 0, 0);
        syscall(SYS_kill, getpid(), SIGSTOP);
        _exit(0);
    }
    wait_show("stopped tracee", t, 0);
    kill(t, SIGKILL);
    wait_show("killed tracee", t, 0);
}

static void perm_case(void) {
    int go[2];
    pipe(go);
    pid_t t = blocked_child(go[0], 8);
    usleep(50000);
    pid_t c = fork();
    if (c == 0) {
        alarm(30);
        setresgid(65534, 65534, 65534);
        setresuid(65534, 65534, 65534);
        show("other uid: attach root's process", ptrace(PTRACE_ATTACH, t, 0, 0));
        show("other uid: seize root's process", ptrace(PTRACE_SEIZE, t, 0, 0));
        printf("dumpable after setuid: %d\n", prctl(PR_GET_DUMPABLE));
        for (int d = 0; d < 2; d++) {
            int p[2];
            pipe(p);
            pid_t g = fork();
            if (g == 0) {
                prctl(PR_SET_DUMPABLE, d);
                write(p[1], "r", 1);
                pause();
                _exit(0);
            }
            char b;
            read(p[0], &b, 1);
            printf("dumpable %d: ", d);
            show("attach own uid's child", ptrace(PTRACE_SEIZE, g, 0, 0));
            kill(g, SIGKILL);
            waitpid(g, NULL, __WALL);
        }
        _exit(0);
    }
    wait_show("unprivileged tracer", c, 0);
    write(go[1], "g", 1);
    wait_show("root's process", t, 0);
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    alarm(55);
    if (argc > 1 && !strcmp(argv[1], "exit7"))
        return 7;
    printf("== follow\n");
    follow_case("/proc/self/exe");
    printf("== group stop\n");
    group_stop_case();
    printf("== tracer dies\n");
    tracer_dies_case(0);
    printf("== tracer dies, EXITKILL\n");
    tracer_dies_case(1);
    printf("== race\n");
    race_case();
    printf("== killed while stopped\n");
    killed_while_stopped();
    printf("== permissions\n");
    perm_case();
    return 0;
}
