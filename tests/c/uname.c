// uname(2): the sandbox must look like Linux on the same architecture.
// e2e: stdout=sysname=Linux
// e2e: stdout=machine=x86_64
// e2e: stdout=release non-empty: yes
#include <stdio.h>
#include <sys/utsname.h>
#include "e2e.h"

int main(void)
{
    struct utsname u;
    if (uname(&u) != 0) {
        printf("uname: %s\n", e2e_errname(errno));
        return 1;
    }
    printf("sysname=%s\n", u.sysname);
    printf("machine=%s\n", u.machine);
    printf("release non-empty: %s\n", u.release[0] ? "yes" : "no");
    return 0;
}
