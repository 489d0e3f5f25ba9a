// Capabilities across uid changes: all of real, effective and saved uid leaving 0
// empties permitted, effective and ambient (unless PR_SET_KEEPCAPS, which keeps
// permitted); the effective uid leaving 0 empties effective and returning restores
// it; setfsuid drops the filesystem capabilities; SECBIT_NO_SETUID_FIXUP stops all
// of it; securebits locks.
#include <errno.h>
#include <stdio.h>
#include <sys/fsuid.h>
#include <sys/wait.h>
#include "e2e.h"
#include "caps_common.h"

#define SECBIT_NO_SETUID_FIXUP_ (1 << 2)
#define SECBIT_NO_SETUID_FIXUP_LOCKED_ (1 << 3)
#define SECBIT_KEEP_CAPS_ (1 << 4)
#define SECBIT_KEEP_CAPS_LOCKED_ (1 << 5)

static void in_child(const char *name, void (*f)(void))
{
    pid_t c = fork();
    if (c == 0) {
        f();
        _exit(0);
    }
    int st;
    waitpid(c, &st, 0);
    printf("%s: status %d\n", name, WEXITSTATUS(st));
}

static void plain(void)
{
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_KILL, 0, 0);
    caps_show("plain before");
    TRY("setresuid 1000", setresuid(1000, 1000, 1000));
    caps_show("plain after");
    TRY("setuid 0 again", setuid(0));
}

static void keepcaps(void)
{
    TRY("PR_SET_KEEPCAPS", prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0));
    printf("PR_GET_KEEPCAPS: %d securebits=%x\n", prctl(PR_GET_KEEPCAPS, 0, 0, 0, 0),
           prctl(PR_GET_SECUREBITS, 0, 0, 0, 0));
    TRY("setresuid 1000", setresuid(1000, 1000, 1000));
    caps_show("keepcaps after");
    TRY("raise effective", caps_set(BIT(CAP_KILL), KEEP, 0));
    caps_show("keepcaps raised");
    TRY("PR_SET_KEEPCAPS 2", prctl(PR_SET_KEEPCAPS, 2, 0, 0, 0));
}

static void euid_only(void)
{
    TRY("seteuid 1000", seteuid(1000));
    caps_show("euid 1000");
    TRY("seteuid 0", seteuid(0));
    caps_show("euid 0");
    int old = setfsuid(1000);
    printf("setfsuid 1000: old %d\n", old);
    caps_show("fsuid 1000");
    setfsuid(0);
    caps_show("fsuid 0");
}

static void fixup_off(void)
{
    TRY("securebits NO_SETUID_FIXUP", prctl(PR_SET_SECUREBITS, SECBIT_NO_SETUID_FIXUP_ | SECBIT_NO_SETUID_FIXUP_LOCKED_,
                     0, 0, 0));
    printf("securebits=%x\n", prctl(PR_GET_SECUREBITS, 0, 0, 0, 0));
    TRY("unlock", prctl(PR_SET_SECUREBITS, 0, 0, 0, 0));
    TRY("unknown bit", prctl(PR_SET_SECUREBITS, (1 << 20) | 0xc, 0, 0, 0));
    TRY("setresuid 1000", setresuid(1000, 1000, 1000));
    caps_show("fixup off after");
    TRY("securebits again", prctl(PR_SET_SECUREBITS, 0xc, 0, 0, 0));
}

static void locked_keepcaps(void)
{
    TRY("lock keepcaps off", prctl(PR_SET_SECUREBITS, SECBIT_KEEP_CAPS_LOCKED_, 0, 0, 0));
    TRY("PR_SET_KEEPCAPS locked", prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0));
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    caps_start(BIT(CAP_KILL));
    in_child("plain", plain);
    in_child("keepcaps", keepcaps);
    in_child("euid_only", euid_only);
    in_child("fixup_off", fixup_off);
    in_child("locked_keepcaps", locked_keepcaps);
    return 0;
}
