// PR_CAPBSET_READ/PR_CAPBSET_DROP: reading past CAP_LAST_CAP is EINVAL, dropping
// needs CAP_SETPCAP (EPERM before EINVAL), a dropped capability never comes back:
// not through capset and not through an exec as root, which otherwise fills
// permitted from the bounding set; and /proc/sys/kernel/cap_last_cap.
// e2e: case=main
// e2e: case=exec
// e2e: arg=exec
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include "e2e.h"
#include "caps_common.h"

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc > 1 && strcmp(argv[1], "after") == 0) {
        caps_show("after exec");
        return 0;
    }
    caps_start(0);
    char buf[16] = {0};
    FILE *f = fopen("/proc/sys/kernel/cap_last_cap", "r");
    if (f) {
        fgets(buf, sizeof buf, f);
        fclose(f);
    }
    printf("cap_last_cap: %s", buf);
    TRY("read 40", prctl(PR_CAPBSET_READ, 40, 0, 0, 0));
    TRY("read 41", prctl(PR_CAPBSET_READ, 41, 0, 0, 0));
    TRY("read chown", prctl(PR_CAPBSET_READ, CAP_CHOWN, 0, 0, 0));
    TRY("drop 41", prctl(PR_CAPBSET_DROP, 41, 0, 0, 0));
    TRY("drop chown", prctl(PR_CAPBSET_DROP, CAP_CHOWN, 0, 0, 0));
    TRY("read chown", prctl(PR_CAPBSET_READ, CAP_CHOWN, 0, 0, 0));
    caps_show("dropped");
    /* Still permitted: the bounding set limits what an exec can add. */
    TRY("inheritable chown", caps_set(KEEP, KEEP, BIT(CAP_CHOWN)));
    if (argc > 1 && strcmp(argv[1], "exec") == 0) {
        /* Permitted and effective lose CAP_KILL; root's exec refills from bounding. */
        caps_set(KEEP & ~BIT(CAP_KILL), KEEP & ~BIT(CAP_KILL), 0);
        caps_show("before exec");
        execl(argv[0], argv[0], "after", (char *)NULL);
        perror("execl");
        return 1;
    }
    TRY("drop setpcap from effective", caps_set(KEEP & ~BIT(CAP_SETPCAP), KEEP, 0));
    TRY("drop kill without SETPCAP", prctl(PR_CAPBSET_DROP, CAP_KILL, 0, 0, 0));
    TRY("drop 41 without SETPCAP", prctl(PR_CAPBSET_DROP, 41, 0, 0, 0));
    return 0;
}
