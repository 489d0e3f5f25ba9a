// Ambient capabilities: raising needs the capability in permitted and inheritable;
// IS_SET/LOWER/CLEAR_ALL; capset lowering inheritable lowers ambient; a non-root
// process keeps exactly its ambient set across exec (permitted = effective =
// ambient), a root one gets bounding|inheritable; PR_SET_NO_NEW_PRIVS is one-way.
// e2e: case=ambient
// e2e: case=nonroot_exec
// e2e: arg=exec
// e2e: case=nnp_exec
// e2e: arg=nnp
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include "e2e.h"
#include "caps_common.h"

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc > 1 && strcmp(argv[1], "after") == 0) {
        caps_show("after exec");
        printf("no_new_privs: %d\n", prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0));
        return 0;
    }
    caps_start(BIT(CAP_KILL) | BIT(CAP_NET_BIND_SERVICE) | BIT(CAP_SETUID));
    TRY("raise chown (not inheritable)", prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_CHOWN, 0, 0));
    TRY("raise kill", prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_KILL, 0, 0));
    TRY("raise net_bind", prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_NET_BIND_SERVICE, 0, 0));
    TRY("raise setuid", prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_SETUID, 0, 0));
    TRY("is_set kill", prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, CAP_KILL, 0, 0));
    TRY("is_set 41", prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, 41, 0, 0));
    TRY("bad op", prctl(PR_CAP_AMBIENT, 9, CAP_KILL, 0, 0));
    TRY("clear_all with arg", prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 1, 0, 0));
    TRY("lower setuid", prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_LOWER, CAP_SETUID, 0, 0));
    caps_show("raised");
    /* Inheritable losing net_bind takes it from ambient. */
    caps_set(KEEP, KEEP, BIT(CAP_KILL) | BIT(CAP_SETUID));
    caps_show("inheritable lowered");
    if (argc > 1 && strcmp(argv[1], "exec") == 0) {
        prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0);
        TRY("setresuid 1000", setresuid(1000, 1000, 1000));
        caps_show("non-root");
        /* setresuid to non-root cleared ambient; raise again from the kept permitted. */
        TRY("raise kill again", prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_KILL, 0, 0));
        execl(argv[0], argv[0], "after", (char *)NULL);
        perror("execl");
        return 1;
    }
    if (argc > 1 && strcmp(argv[1], "nnp") == 0) {
        TRY("nnp bad arg", prctl(PR_SET_NO_NEW_PRIVS, 2, 0, 0, 0));
        TRY("nnp", prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0));
        TRY("get nnp with arg", prctl(PR_GET_NO_NEW_PRIVS, 1, 0, 0, 0));
        /* Permitted without CAP_CHOWN: root's exec may not add it back under nnp. */
        caps_set(BIT(CAP_KILL), KEEP & ~BIT(CAP_CHOWN), BIT(CAP_KILL));
        execl(argv[0], argv[0], "after", (char *)NULL);
        perror("execl");
        return 1;
    }
    TRY("clear_all", prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0));
    caps_show("cleared");
    return 0;
}
