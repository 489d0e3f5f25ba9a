// capget(2)/capset(2): v1, v2 and v3 headers, the version probe (a bad version is
// written back; EINVAL, or 0 with NULL data), another pid, and capset's rules
// (permitted only shrinks, effective within permitted, inheritable within
// inheritable|permitted, v1 clears the high word, bits past CAP_LAST_CAP ignored).
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include "e2e.h"
#include "caps_common.h"

static void try_set(const char *what, uint64_t e, uint64_t p, uint64_t i)
{
    TRY(what, caps_set(e, p, i));
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    caps_start(BIT(CAP_KILL));
    caps_show("start");

    struct __user_cap_header_struct h = {0x12345678, 0};
    struct __user_cap_data_struct d[2] = {{0}};
    errno = 0;
    long r = syscall(SYS_capget, &h, d);
    printf("bad version: r=%ld %s version=%x\n", r, e2e_errname(errno), h.version);
    h.version = 0x12345678;
    errno = 0;
    r = syscall(SYS_capget, &h, NULL);
    printf("bad version, NULL data: r=%ld version=%x\n", r, h.version);
    h.version = _LINUX_CAPABILITY_VERSION_3;
    TRY("v3, NULL data", syscall(SYS_capget, &h, NULL));
    h.pid = -1;
    TRY("pid -1", syscall(SYS_capget, &h, d));
    h.pid = 999999;
    TRY("no such pid", syscall(SYS_capget, &h, d));

    h.version = _LINUX_CAPABILITY_VERSION_1;
    h.pid = 0;
    struct __user_cap_data_struct one = {0};
    syscall(SYS_capget, &h, &one);
    printf("v1: eff=%x prm=%x inh=%x\n", one.effective, one.permitted, one.inheritable);
    h.version = _LINUX_CAPABILITY_VERSION_2;
    syscall(SYS_capget, &h, d);
    printf("v2: eff=%x/%x\n", d[0].effective, d[1].effective);

    /* Another process's sets. */
    pid_t c = fork();
    if (c == 0) {
        caps_set(BIT(CAP_CHOWN), KEEP, 0);
        pause();
        _exit(0);
    }
    usleep(100000);
    h.version = _LINUX_CAPABILITY_VERSION_3;
    h.pid = c;
    syscall(SYS_capget, &h, d);
    printf("child: eff=%x prm=%x inh=%x\n", d[0].effective, d[0].permitted, d[0].inheritable);
    kill(c, SIGKILL);
    waitpid(c, NULL, 0);
    h.pid = c;
    TRY("capset other pid", syscall(SYS_capset, &h, d));

    try_set("effective beyond permitted", KEEP, KEEP & ~BIT(CAP_CHOWN), 0);
    try_set("permitted grows", KEEP, KEEP | BIT(CAP_SYS_ADMIN), 0);
    try_set("inheritable outside bounding", KEEP, KEEP, BIT(CAP_SYS_ADMIN));
    try_set("inheritable within permitted", KEEP, KEEP, BIT(CAP_CHOWN));
    try_set("bits past the last cap", KEEP | BIT(50), KEEP, 0);
    caps_show("after");
    try_set("drop chown", KEEP & ~BIT(CAP_CHOWN), KEEP & ~BIT(CAP_CHOWN), 0);
    try_set("regain chown", KEEP, KEEP, 0);
    /* Without CAP_SETPCAP, inheritable may not take what permitted lacks. */
    uint64_t k = KEEP & ~BIT(CAP_CHOWN) & ~BIT(CAP_SETPCAP);
    try_set("drop setpcap", k, KEEP & ~BIT(CAP_CHOWN), 0);
    try_set("inheritable outside permitted", k, KEEP & ~BIT(CAP_CHOWN), BIT(CAP_CHOWN));
    try_set("inheritable inside permitted", k, KEEP & ~BIT(CAP_CHOWN), BIT(CAP_KILL));

    /* A v1 capset keeps only the low word. */
    h.version = _LINUX_CAPABILITY_VERSION_1;
    h.pid = 0;
    one.effective = BIT(CAP_KILL);
    one.permitted = BIT(CAP_KILL) | BIT(CAP_SETUID);
    one.inheritable = 0;
    TRY("v1 capset", syscall(SYS_capset, &h, &one));
    caps_show("end");
    return 0;
}
