// seccomp(2) and prctl(PR_SET_SECCOMP) with SECCOMP_RET_ERRNO filters: program checks
// (EINVAL, EFAULT, EACCES without no_new_privs or CAP_SYS_ADMIN), the action queries,
// argument and instruction-pointer loads, errno capping, stacked filters (the newest
// filter's data wins among equal actions; TRACE and USER_NOTIF with nobody to serve
// them are ENOSYS), /proc/self/status, and inheritance across fork and exec.
#include "seccomp.h"

#include <stdlib.h>
#include <sys/utsname.h>
#include <sys/wait.h>

static void after_exec(void)
{
    SC_T("exec: PR_GET_SECCOMP", prctl(PR_GET_SECCOMP));
    SC_T("exec: getpid", syscall(SYS_getpid));
    sc_status("exec");
}

static void bad_programs(void)
{
    struct sock_filter ok[] = { BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW) };
    struct sock_filter unaligned[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 2),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_filter outside[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 64),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_filter byte_load[] = {
        BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_filter jump_out[] = {
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_filter no_ret[] = { BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 0) };
    struct sock_filter mem_unset[] = {
        BPF_STMT(BPF_LD | BPF_MEM, 3),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_filter div0[] = {
        BPF_STMT(BPF_ALU | BPF_DIV | BPF_K, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    static struct sock_filter big[4097];
    for (int i = 0; i < 4097; i++)
        big[i] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    SC_T("empty program", sc_install(0, ok, 0));
    SC_T("unaligned load", sc_install(0, unaligned, 2));
    SC_T("load past seccomp_data", sc_install(0, outside, 2));
    SC_T("byte load", sc_install(0, byte_load, 2));
    SC_T("jump out", sc_install(0, jump_out, 2));
    SC_T("no return", sc_install(0, no_ret, 1));
    SC_T("scratch read before write", sc_install(0, mem_unset, 2));
    SC_T("division by constant zero", sc_install(0, div0, 2));
    SC_T("4097 instructions", sc_install(0, big, 4097));
    SC_T("unknown flag", sc_install(1u << 10, ok, 1));
    SC_T("TSYNC with NEW_LISTENER", sc_install(SECCOMP_FILTER_FLAG_TSYNC | SECCOMP_FILTER_FLAG_NEW_LISTENER, ok, 1));
    SC_T("bad fprog pointer", syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, (void *)8));
    struct sock_fprog badf = { .len = 1, .filter = (void *)8 };
    SC_T("bad filter pointer", syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &badf));
    SC_T("unknown op", syscall(SYS_seccomp, 99, 0, NULL));
    SC_T("strict with args", syscall(SYS_seccomp, SECCOMP_SET_MODE_STRICT, 0, ok));
    SC_T("prctl bad mode", prctl(PR_SET_SECCOMP, 7, 0, 0, 0));
}

static void queries(void)
{
    unsigned acts[] = { SECCOMP_RET_KILL_PROCESS, SECCOMP_RET_KILL_THREAD, SECCOMP_RET_TRAP,
                        SECCOMP_RET_ERRNO, SECCOMP_RET_TRACE, SECCOMP_RET_LOG,
                        SECCOMP_RET_ALLOW, 0x12340000 };
    for (unsigned i = 0; i < sizeof acts / sizeof acts[0]; i++) {
        char what[64];
        snprintf(what, sizeof what, "action %#x available", acts[i]);
        SC_T(what, syscall(SYS_seccomp, SECCOMP_GET_ACTION_AVAIL, 0, &acts[i]));
    }
    SC_T("action query with flags", syscall(SYS_seccomp, SECCOMP_GET_ACTION_AVAIL, 1, &acts[0]));
    SC_T("action query bad pointer", syscall(SYS_seccomp, SECCOMP_GET_ACTION_AVAIL, 0, (void *)8));
    struct seccomp_notif_sizes sz = { 0 };
    SC_T("notif sizes", syscall(SYS_seccomp, SECCOMP_GET_NOTIF_SIZES, 0, &sz));
    printf("sizes: notif=%u resp=%u data=%u\n", sz.seccomp_notif, sz.seccomp_notif_resp,
           sz.seccomp_data);
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc > 1 && strcmp(argv[1], "after-exec") == 0) {
        after_exec();
        return 0;
    }
    SC_T("PR_GET_SECCOMP", prctl(PR_GET_SECCOMP));
    sc_status("start");
    queries();
    bad_programs();

    /* Without no_new_privs and without CAP_SYS_ADMIN: EACCES. */
    pid_t c = fork();
    if (c == 0) {
        if (setgid(1000) || setuid(1000))
            _exit(9);
        SC_T("unprivileged, no no_new_privs", sc_one(0, SYS_getppid, SECCOMP_RET_ERRNO | EPERM));
        SC_T("prctl: unprivileged, no no_new_privs", prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, NULL));
        SC_T("PR_SET_NO_NEW_PRIVS", prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0));
        SC_T("unprivileged, no_new_privs", sc_one(0, SYS_getppid, SECCOMP_RET_ERRNO | EPERM));
        SC_OK("child getppid", syscall(SYS_getppid));
        _exit(0);
    }
    int st;
    waitpid(c, &st, 0);
    printf("unprivileged child: exit %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);

    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        return 1;
    /* One filter: getpid EPERM, getuid "succeeds" with 0, uname capped at 4095,
     * dup with the high word of fd == 1 E2BIG, getppid tells whether the
     * instruction pointer is non-zero. */
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARCH_OFF),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, NR_OFF),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_getpid, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_getuid, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_uname, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | 5000),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_dup, 0, 4),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARG_HI(0)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 1, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | E2BIG),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_getppid, 0, 5),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, instruction_pointer)),
        BPF_STMT(BPF_ST, 0),
        BPF_STMT(BPF_LDX | BPF_MEM, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOENT),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    SC_T("install", sc_install(0, f, sizeof f / sizeof f[0]));
    SC_T("PR_GET_SECCOMP", prctl(PR_GET_SECCOMP));
    SC_T("getpid", syscall(SYS_getpid));
    SC_T("getuid", syscall(SYS_getuid));
    struct utsname u;
    SC_T("uname", syscall(SYS_uname, &u));
    printf("uname errno value: %d\n", errno);
    SC_OK("dup(1 << 32 | 1)", syscall(SYS_dup, (1UL << 32) | 1));
    SC_OK("dup(1)", syscall(SYS_dup, 1));
    SC_OK("getppid (ip non-zero)", syscall(SYS_getppid));
    SC_T("strict after filter", syscall(SYS_seccomp, SECCOMP_SET_MODE_STRICT, 0, NULL));
    sc_status("one filter");

    /* Stacked: ERRNO among ERRNO takes the newest data; TRACE and USER_NOTIF with no
     * tracer or listener give ENOSYS; LOG allows. */
    SC_T("second filter", sc_one(0, SYS_getpid, SECCOMP_RET_ERRNO | EACCES));
    SC_T("getpid", syscall(SYS_getpid));
    SC_T("trace filter", sc_one(0, SYS_getgid, SECCOMP_RET_TRACE | 5));
    SC_T("getgid (TRACE, no tracer)", syscall(SYS_getgid));
    SC_T("notif filter", sc_one(0, SYS_getegid, SECCOMP_RET_USER_NOTIF));
    SC_T("getegid (USER_NOTIF, no listener)", syscall(SYS_getegid));
    SC_T("log filter", sc_one(SECCOMP_FILTER_FLAG_LOG, SYS_geteuid, SECCOMP_RET_LOG));
    SC_OK("geteuid (LOG)", syscall(SYS_geteuid));
    SC_T("trace over errno", sc_one(0, SYS_getuid, SECCOMP_RET_TRACE));
    SC_T("getuid (ERRNO 0 ranks before TRACE)", syscall(SYS_getuid));
    SC_T("prctl filter", prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &(struct sock_fprog){ 1, (struct sock_filter[]){ BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW) } }));
    sc_status("stacked");

    c = fork();
    if (c == 0) {
        SC_T("fork child: getpid", syscall(SYS_getpid));
        sc_status("fork child");
        execl("/proc/self/exe", argv[0], "after-exec", (char *)NULL);
        printf("exec failed: %s\n", strerror(errno));
        _exit(1);
    }
    waitpid(c, &st, 0);
    printf("exec child: exit %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    return 0;
}
