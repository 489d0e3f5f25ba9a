// PID namespaces: after unshare(CLONE_NEWPID) the caller's first child is pid 1
// of the new namespace (getppid 0), later ones count on from 2 and see their
// parent's id there; the outer process sees them by its own ids (fork's return,
// waitpid, SIGCHLD's si_pid); kill inside the namespace uses its ids and reaches
// no one outside; a procfs mounted in the namespace lists only its processes by
// their ids there, with NSpid lines (outer then inner id); /proc/PID/ns/pid and
// pid_for_children name the right namespaces; init is immune to SIGKILL from
// inside; when init dies every process in the namespace is SIGKILLed and a fork
// into it then fails with ENOMEM. clone(CLONE_NEWPID) makes pid 1 directly, and
// a second unshare(CLONE_NEWPID) before any child is EINVAL. A user namespace
// comes with each new pid namespace (for CAP_SYS_ADMIN over it, which the
// sandbox's default capabilities lack).
// e2e: timeout=60
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static void report(const char *what, int ok)
{
    printf("%s: %s\n", what, ok ? "yes" : "no");
    fflush(stdout);
}

// The outer process's lines, held until init has gone (so the two processes'
// lines do not interleave).
static char held[4096];

static void oreport(const char *what, int ok)
{
    size_t n = strlen(held);
    snprintf(held + n, sizeof held - n, "%s: %s\n", what, ok ? "yes" : "no");
}

static unsigned long ns_ino(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return 0;
    return st.st_ino;
}

// The NSpid line of /proc/self/status of the procfs at `proc`.
static void nspid(const char *proc, char *out, size_t n)
{
    char path[256], line[256];
    snprintf(path, sizeof path, "%s/self/status", proc);
    out[0] = 0;
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "NSpid:", 6) == 0) {
            snprintf(out, n, "%s", line + 6);
            break;
        }
    fclose(f);
}

// How many NSpid fields, and whether the last is `want`.
static int nspid_count(const char *s, int *last)
{
    int n = 0;
    char *copy = strdup(s), *save = NULL;
    for (char *t = strtok_r(copy, " \t\n", &save); t; t = strtok_r(NULL, " \t\n", &save)) {
        n++;
        *last = atoi(t);
    }
    free(copy);
    return n;
}

static int count_pids(const char *proc)
{
    DIR *d = opendir(proc);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] >= '1' && e->d_name[0] <= '9')
            n++;
    closedir(d);
    return n;
}

static volatile sig_atomic_t got_term;
static void on_term(int s) { (void)s; got_term = 1; }

// Runs as pid 1 of the new namespace.
static int init_main(const char *dir)
{
    report("init: getpid is 1", getpid() == 1);
    report("init: getppid is 0", getppid() == 0);
    // A procfs of this namespace.
    char proc[256];
    snprintf(proc, sizeof proc, "%s/proc", dir);
    int mounted = 0;
    if (unshare(CLONE_NEWNS) == 0 && mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0 &&
        mount("proc", proc, "proc", 0, NULL) == 0)
        mounted = 1;
    report("init: proc mounted", mounted);
    char buf[300];
    snprintf(buf, sizeof buf, "%s/self", proc);
    char link[64] = "";
    ssize_t l = readlink(buf, link, sizeof link - 1);
    if (l > 0)
        link[l] = 0;
    report("init: /proc/self is 1", strcmp(link, "1") == 0);
    char ns[128];
    nspid(proc, ns, sizeof ns);
    int last = 0;
    report("init: NSpid has one id here, 1", nspid_count(ns, &last) == 1 && last == 1);
    // Outer procfs: two levels (outer id, then 1).
    nspid("/proc", ns, sizeof ns);
    report("init: outer /proc NSpid ends with 1", nspid_count(ns, &last) >= 2 && last == 1);
    // Children: 2 and 3, each seeing its parent as 1.
    int p[2];
    if (pipe(p) != 0)
        return 1;
    pid_t c1 = fork();
    if (c1 == 0) {
        char r = (getpid() == 2 && getppid() == 1) ? 'y' : 'n';
        if (write(p[1], &r, 1) != 1)
            _exit(2);
        pause();
        _exit(0);
    }
    char r = 0;
    if (read(p[0], &r, 1) != 1)
        r = 'n';
    report("init: first child is 2, parent 1", c1 == 2 && r == 'y');
    report("init: procfs lists 2 processes", count_pids(proc) == 2);
    snprintf(buf, sizeof buf, "%s/2/stat", proc);
    FILE *f = fopen(buf, "r");
    int spid = 0, sppid = -1;
    char comm[64], state;
    if (f) {
        if (fscanf(f, "%d %63s %c %d", &spid, comm, &state, &sppid) != 4)
            spid = 0;
        fclose(f);
    }
    report("init: /proc/2/stat pid 2 ppid 1", spid == 2 && sppid == 1);
    // init ignores SIGKILL from inside its namespace (no handler) ...
    report("init: kill(1, SIGKILL) from inside succeeds", kill(1, SIGKILL) == 0);
    usleep(100000);
    report("init: still alive after it", 1);
    // ... but a handled SIGTERM is delivered.
    signal(SIGTERM, on_term);
    kill(1, SIGTERM);
    for (int i = 0; i < 100 && !got_term; i++)
        usleep(10000);
    report("init: handled SIGTERM delivered", got_term);
    // kill reaches the namespace's ids: SIGKILL to 2, waitpid returns 2.
    kill(c1, SIGKILL);
    int st = 0;
    pid_t w = waitpid(-1, &st, 0);
    report("init: waitpid gives 2 killed", w == 2 && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    // A child that outlives init: it is SIGKILLed with it. It tells the outer
    // process its outer pid through the inherited pipe.
    pid_t c2 = fork();
    if (c2 == 0) {
        // A grandchild too.
        if (fork() == 0) {
            for (;;)
                pause();
        }
        for (;;)
            pause();
    }
    report("init: second child is 3", c2 == 3);
    usleep(50000);
    report("init: procfs lists 3 processes", count_pids(proc) == 3);
    if (mounted)
        umount(proc);
    return 7;
}

static int clone_child(void *arg)
{
    (void)arg;
    printf("clone: pid %d ppid %d\n", (int)getpid(), (int)getppid());
    fflush(stdout);
    return 3;
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : ".";
    char proc[256];
    snprintf(proc, sizeof proc, "%s/proc", dir);
    mkdir(proc, 0755);
    setvbuf(stdout, NULL, _IOLBF, 0);

    // clone(CLONE_NEWPID): the child is pid 1 with parent 0.
    static char stack[64 * 1024];
    int st = 0;
    pid_t c = clone(clone_child, stack + sizeof stack, CLONE_NEWUSER | CLONE_NEWPID | SIGCHLD, NULL);
    if (c < 0) {
        printf("clone: errno %d\n", errno);
    } else {
        waitpid(c, &st, 0);
        report("clone: exited 3", WIFEXITED(st) && WEXITSTATUS(st) == 3);
    }
    report("clone: CLONE_NEWPID|CLONE_THREAD EINVAL",
           syscall(SYS_clone, CLONE_NEWPID | CLONE_THREAD | CLONE_SIGHAND | CLONE_VM, 0, 0, 0, 0) < 0 &&
               errno == EINVAL);

    unsigned long mine = ns_ino("/proc/self/ns/pid");
    if (unshare(CLONE_NEWUSER | CLONE_NEWPID) != 0) {
        printf("unshare: errno %d\n", errno);
        return 1;
    }
    report("unshare: own pid ns unchanged", ns_ino("/proc/self/ns/pid") == mine);
    // Before a process enters it, the new namespace cannot be opened.
    report("unshare: pid_for_children not there before init",
           ns_ino("/proc/self/ns/pid_for_children") == 0);
    report("unshare: second unshare EINVAL", unshare(CLONE_NEWPID) != 0 && errno == EINVAL);
    report("unshare: getpid unchanged", getpid() == syscall(SYS_getpid));

    // SIGCHLD's si_pid and fork's return are outer ids.
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigprocmask(SIG_BLOCK, &set, NULL);
    pid_t init = fork();
    if (init == 0)
        _exit(init_main(dir));
    oreport("outer: init's outer pid is not 1", init > 1);
    usleep(50000);
    unsigned long kids = ns_ino("/proc/self/ns/pid_for_children");
    oreport("outer: pid_for_children is new", kids != 0 && kids != mine);
    char path[128];
    snprintf(path, sizeof path, "/proc/%d/ns/pid", init);
    oreport("outer: init is in pid_for_children", ns_ino(path) == kids);
    oreport("outer: a new clone(CLONE_NEWPID) is EINVAL",
           syscall(SYS_clone, CLONE_NEWPID | SIGCHLD, 0, 0, 0, 0) < 0 && errno == EINVAL);
    // Wait until init has its second child (3) running with a grandchild, then
    // find them by parent in the outer /proc, so we can check they die with init.
    siginfo_t si;
    struct timespec ts = {30, 0};
    int sig = sigtimedwait(&set, &si, &ts);
    oreport("outer: SIGCHLD si_pid is init's outer pid", sig == SIGCHLD && si.si_pid == init);
    pid_t w = waitpid(init, &st, 0);
    oreport("outer: init exited 7", w == init && WIFEXITED(st) && WEXITSTATUS(st) == 7);
    // Everything in the namespace is gone: no process in /proc has init as an
    // ancestor. Scan /proc for processes in the namespace by their ns link.
    int left = 0;
    DIR *d = opendir("/proc");
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] < '1' || e->d_name[0] > '9')
            continue;
        char p2[300];
        snprintf(p2, sizeof p2, "/proc/%s/ns/pid", e->d_name);
        if (ns_ino(p2) == kids) {
            snprintf(p2, sizeof p2, "/proc/%s/stat", e->d_name);
            FILE *f = fopen(p2, "r");
            char comm[64], state = '?';
            int pid;
            if (f) {
                if (fscanf(f, "%d %63s %c", &pid, comm, &state) != 3)
                    state = '?';
                fclose(f);
            }
            if (state != 'Z' && state != '?')
                left++;
        }
    }
    if (d)
        closedir(d);
    oreport("outer: nothing left running in the namespace", left == 0);
    pid_t again = fork();
    if (again == 0)
        _exit(0);
    oreport("outer: fork after init died is ENOMEM", again < 0 && errno == ENOMEM);
    fputs(held, stdout);
    return 0;
}
