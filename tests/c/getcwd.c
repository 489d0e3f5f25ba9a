// getcwd: the harness runs both sides with the test directory as cwd, so
// the sandbox must start the app in the caller's working directory.
// e2e: stdout={dir}
// e2e: stdout=small buffer: ERANGE
#include <errno.h>
#include <stdio.h>
#include <unistd.h>
#include "e2e.h"

int main(void)
{
    char buf[4096];
    if (!getcwd(buf, sizeof buf)) {
        printf("getcwd: %s\n", e2e_errname(errno));
        return 1;
    }
    printf("%s\n", buf);
    char tiny[2];
    errno = 0;
    char *r = getcwd(tiny, sizeof tiny);
    printf("small buffer: %s\n", r ? "OK" : e2e_errname(errno));
    return 0;
}
