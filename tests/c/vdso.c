// The vDSO: found through AT_SYSINFO_EHDR, its __vdso_* functions looked up by name and
// version (LINUX_2.6) as glibc, musl and Go do, and their answers checked against the
// system calls: each clock read by the syscall lies between two vDSO reads, getcpu and
// clock_getres agree, clocks the vDSO cannot serve still work (it makes the syscall),
// the data page cannot be made writable, and all of it holds in a forked child, after
// exec, and with signals arriving while the vDSO runs. glibc's own clock_gettime must
// be fast (it uses the vDSO).
// e2e: stdout=vdso present: yes
// e2e: stdout=all found: yes
// e2e: stdout=clock 0 between: yes
// e2e: stdout=clock 1 between: yes
// e2e: stdout=clock 7 between: yes
// e2e: stdout=clock 11 between: yes
// e2e: stdout=coarse clocks close: yes
// e2e: stdout=gettimeofday close: yes
// e2e: stdout=time close: yes
// e2e: stdout=getres agree: yes
// e2e: stdout=getcpu: yes
// e2e: stdout=cpu clock fallback: yes
// e2e: stdout=bad clock: EINVAL
// e2e: stdout=maps names: yes
// e2e: stdout=vvar mprotect write: EACCES
// e2e: stdout=child monotonic: yes
// e2e: stdout=signals in vdso: yes
// e2e: stdout=glibc fast: yes
// e2e: stdout=exec child: yes
#define _GNU_SOURCE
#include <elf.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "e2e.h"

typedef int (*gettime_fn)(clockid_t, struct timespec *);
typedef int (*gtod_fn)(struct timeval *, struct timezone *);
typedef time_t (*time_fn)(time_t *);
typedef long (*getcpu_fn)(unsigned *, unsigned *, void *);

static gettime_fn v_gettime, v_getres;
static gtod_fn v_gtod;
static time_fn v_time;
static getcpu_fn v_getcpu;

// Looks `name` up in the vDSO at `base` with version LINUX_2.6, through DT_HASH and
// the version tables, as Go's runtime does.
static void *vdso_sym(uintptr_t base, const char *name)
{
    Elf64_Ehdr *eh = (Elf64_Ehdr *)base;
    Elf64_Phdr *ph = (Elf64_Phdr *)(base + eh->e_phoff);
    uintptr_t load = 0;
    Elf64_Dyn *dyn = NULL;
    for (int i = 0; i < eh->e_phnum; i++) {
        if (ph[i].p_type == PT_LOAD && load == 0)
            load = base + ph[i].p_offset - ph[i].p_vaddr;
        if (ph[i].p_type == PT_DYNAMIC)
            dyn = (Elf64_Dyn *)(base + ph[i].p_offset);
    }
    if (!dyn)
        return NULL;
    Elf64_Sym *sym = NULL;
    const char *str = NULL;
    Elf64_Word *hash = NULL;
    Elf64_Versym *versym = NULL;
    Elf64_Verdef *verdef = NULL;
    for (; dyn->d_tag != DT_NULL; dyn++) {
        uintptr_t p = load + dyn->d_un.d_ptr;
        switch (dyn->d_tag) {
        case DT_SYMTAB: sym = (Elf64_Sym *)p; break;
        case DT_STRTAB: str = (const char *)p; break;
        case DT_HASH: hash = (Elf64_Word *)p; break;
        case DT_VERSYM: versym = (Elf64_Versym *)p; break;
        case DT_VERDEF: verdef = (Elf64_Verdef *)p; break;
        }
    }
    if (!sym || !str || !hash || !versym || !verdef)
        return NULL;
    int want = -1;
    for (Elf64_Verdef *d = verdef;; d = (Elf64_Verdef *)((char *)d + d->vd_next)) {
        Elf64_Verdaux *aux = (Elf64_Verdaux *)((char *)d + d->vd_aux);
        if (!(d->vd_flags & VER_FLG_BASE) && strcmp(str + aux->vda_name, "LINUX_2.6") == 0)
            want = d->vd_ndx;
        if (d->vd_next == 0)
            break;
    }
    for (Elf64_Word i = 0; i < hash[1]; i++) {
        if (ELF64_ST_TYPE(sym[i].st_info) != STT_FUNC || sym[i].st_shndx == SHN_UNDEF)
            continue;
        if (strcmp(str + sym[i].st_name, name) != 0)
            continue;
        if ((versym[i] & 0x7fff) != want)
            continue;
        return (void *)(load + sym[i].st_value);
    }
    return NULL;
}

static long long ns(struct timespec t) { return t.tv_sec * 1000000000LL + t.tv_nsec; }

static int sys_gettime(clockid_t c, struct timespec *ts)
{
    return (int)syscall(SYS_clock_gettime, c, ts);
}

// vDSO read <= syscall read <= vDSO read, many times over.
static int between(clockid_t c)
{
    for (int i = 0; i < 2000; i++) {
        struct timespec a, s, b;
        if (v_gettime(c, &a) != 0 || sys_gettime(c, &s) != 0 || v_gettime(c, &b) != 0)
            return 0;
        if (ns(a) > ns(s) || ns(s) > ns(b))
            return 0;
    }
    return 1;
}

static volatile sig_atomic_t signals, sig_bad;
static long long sig_last;

static void on_alarm(int sig)
{
    (void)sig;
    struct timespec t;
    if (v_gettime(CLOCK_MONOTONIC, &t) != 0)
        sig_bad = 1;
    signals++;
}

static int close_ns(long long a, long long b, long long tol) { return llabs(a - b) <= tol; }

int main(int argc, char **argv)
{
    int is_exec = argc > 1 && strcmp(argv[1], "exec") == 0;
    uintptr_t base = getauxval(AT_SYSINFO_EHDR);
    if (!base)
        return 1;
    if (!is_exec)
        printf("vdso present: yes\n");
    v_gettime = (gettime_fn)vdso_sym(base, "__vdso_clock_gettime");
    v_getres = (gettime_fn)vdso_sym(base, "__vdso_clock_getres");
    v_gtod = (gtod_fn)vdso_sym(base, "__vdso_gettimeofday");
    v_time = (time_fn)vdso_sym(base, "__vdso_time");
    v_getcpu = (getcpu_fn)vdso_sym(base, "__vdso_getcpu");
    int all = v_gettime && v_getres && v_gtod && v_time && v_getcpu;
    if (is_exec) {
        // After exec, the new image has its own, working vDSO.
        return all && between(CLOCK_MONOTONIC) && between(CLOCK_REALTIME) ? 0 : 1;
    }
    printf("all found: %s\n", all ? "yes" : "no");
    if (!all)
        return 1;

    clockid_t clocks[] = {CLOCK_REALTIME, CLOCK_MONOTONIC, CLOCK_BOOTTIME, CLOCK_TAI};
    for (unsigned i = 0; i < sizeof clocks / sizeof *clocks; i++)
        printf("clock %d between: %s\n", clocks[i], between(clocks[i]) ? "yes" : "no");

    // The coarse clocks are the fine ones as of the last tick: never ahead of them, and
    // behind by a few ticks at most (a tickless or virtual host updates them late: 6 ms
    // behind with a 4 ms resolution was seen natively here).
    int coarse_ok = 1;
    clockid_t coarse[][2] = {{CLOCK_REALTIME_COARSE, CLOCK_REALTIME},
                             {CLOCK_MONOTONIC_COARSE, CLOCK_MONOTONIC}};
    for (int i = 0; i < 2; i++) {
        struct timespec c, f, res;
        if (v_gettime(coarse[i][0], &c) || v_gettime(coarse[i][1], &f) ||
            sys_gettime(coarse[i][0], &res))
            coarse_ok = 0;
        syscall(SYS_clock_getres, coarse[i][0], &res);
        long long behind = ns(f) - ns(c);
        if (behind < -1000000 || behind > 4 * ns(res) + 1000000)
            coarse_ok = 0;
    }
    printf("coarse clocks close: %s\n", coarse_ok ? "yes" : "no");

    struct timeval tv1, tv2;
    struct timezone tz = {1, 1};
    int g1 = v_gtod(&tv1, &tz);
    syscall(SYS_gettimeofday, &tv2, NULL);
    printf("gettimeofday close: %s\n",
           g1 == 0 && tz.tz_minuteswest == 0 && tz.tz_dsttime == 0 &&
                   close_ns(tv1.tv_sec * 1000000LL + tv1.tv_usec, tv2.tv_sec * 1000000LL + tv2.tv_usec, 100000)
               ? "yes"
               : "no");

    time_t t1 = 0, t2 = v_time(&t1);
    time_t t3 = syscall(SYS_time, NULL);
    printf("time close: %s\n", t1 == t2 && t3 - t2 >= 0 && t3 - t2 <= 1 ? "yes" : "no");

    int res_ok = 1;
    clockid_t all_clocks[] = {CLOCK_REALTIME, CLOCK_MONOTONIC, CLOCK_BOOTTIME, CLOCK_TAI,
                              CLOCK_REALTIME_COARSE, CLOCK_MONOTONIC_COARSE,
                              CLOCK_MONOTONIC_RAW, CLOCK_PROCESS_CPUTIME_ID};
    for (unsigned i = 0; i < sizeof all_clocks / sizeof *all_clocks; i++) {
        struct timespec a = {0}, b = {0};
        if (v_getres(all_clocks[i], &a) != 0 ||
            syscall(SYS_clock_getres, all_clocks[i], &b) != 0 || ns(a) != ns(b))
            res_ok = 0;
    }
    if (v_getres(CLOCK_MONOTONIC, NULL) != 0)
        res_ok = 0;
    printf("getres agree: %s\n", res_ok ? "yes" : "no");

    unsigned cpu = 99999, node = 99999;
    long gc = v_getcpu(&cpu, &node, NULL);
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    printf("getcpu: %s\n", gc == 0 && cpu < (unsigned)ncpu && node == 0 ? "yes" : "no");

    // Clocks the vDSO does not serve: it makes the syscall.
    struct timespec c1, c2;
    int r1 = v_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
    int r2 = sys_gettime(CLOCK_PROCESS_CPUTIME_ID, &c2);
    printf("cpu clock fallback: %s\n", r1 == 0 && r2 == 0 && ns(c1) > 0 && ns(c1) <= ns(c2) ? "yes" : "no");
    int bad = v_gettime(12345, &c1);
    printf("bad clock: %s\n", bad < 0 ? e2e_errname(-bad) : "ok");

    // /proc/self/maps names the two mappings; the data page is the one below.
    FILE *m = fopen("/proc/self/maps", "r");
    char line[512];
    int has_vdso = 0, has_vvar = 0;
    unsigned long vvar_start = 0;
    while (m && fgets(line, sizeof line, m)) {
        unsigned long s, e;
        if (sscanf(line, "%lx-%lx", &s, &e) != 2)
            continue;
        if (strstr(line, "[vdso]") && s == base)
            has_vdso = 1;
        if (strstr(line, "[vvar]")) {
            has_vvar = 1;
            vvar_start = s;
        }
    }
    if (m)
        fclose(m);
    printf("maps names: %s\n", has_vdso && has_vvar ? "yes" : "no");
    if (vvar_start) {
        int r = mprotect((void *)vvar_start, 4096, PROT_READ | PROT_WRITE);
        printf("vvar mprotect write: %s\n", r == 0 ? "ok" : e2e_errname(errno));
    }

    // A forked child reads on from where its parent was.
    struct timespec before;
    v_gettime(CLOCK_MONOTONIC, &before);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        struct timespec now;
        int ok = v_gettime(CLOCK_MONOTONIC, &now) == 0 && ns(now) >= ns(before) && between(CLOCK_MONOTONIC);
        _exit(ok ? 0 : 1);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    printf("child monotonic: %s\n", WIFEXITED(st) && WEXITSTATUS(st) == 0 ? "yes" : "no");

    // Signals arriving while the vDSO runs: the readings stay monotonic and the
    // handler's own readings work.
    struct sigaction sa = {0};
    sa.sa_handler = on_alarm;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval it = {{0, 200}, {0, 200}};
    setitimer(ITIMER_REAL, &it, NULL);
    int mono = 1;
    struct timespec start;
    v_gettime(CLOCK_MONOTONIC, &start);
    sig_last = ns(start);
    while (signals < 20 && mono) {
        struct timespec t;
        if (v_gettime(CLOCK_MONOTONIC, &t) != 0 || ns(t) < sig_last)
            mono = 0;
        sig_last = ns(t);
        if (sig_last - ns(start) > 10000000000LL)
            break;
    }
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, NULL);
    printf("signals in vdso: %s\n", mono && !sig_bad && signals >= 20 ? "yes" : "no");

    // glibc's clock_gettime goes through the vDSO: far cheaper than a trap.
    long long best = -1;
    for (int round = 0; round < 5; round++) {
        struct timespec a, b, t;
        clock_gettime(CLOCK_MONOTONIC, &a);
        for (int i = 0; i < 20000; i++)
            clock_gettime(CLOCK_MONOTONIC, &t);
        clock_gettime(CLOCK_MONOTONIC, &b);
        long long per = (ns(b) - ns(a)) / 20000;
        if (best < 0 || per < best)
            best = per;
    }
    printf("glibc fast: %s\n", best < 400 ? "yes" : "no");
    fflush(stdout);
    pid = fork();
    if (pid == 0) {
        execl("/proc/self/exe", "vdso", "exec", (char *)NULL);
        _exit(127);
    }
    waitpid(pid, &st, 0);
    printf("exec child: %s\n", WIFEXITED(st) && WEXITSTATUS(st) == 0 ? "yes" : "no");
    if (best >= 400)
        fprintf(stderr, "glibc clock_gettime: %lld ns per call\n", best);
    return 0;
}
