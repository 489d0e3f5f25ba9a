// /proc/self/exe names the executable the harness started (by absolute path).
// e2e: stdout=readlink == argv[0]: yes
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "e2e.h"

int main(int argc, char **argv)
{
    (void)argc;
    char buf[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n < 0) {
        printf("readlink: %s\n", e2e_errname(errno));
        return 1;
    }
    buf[n] = 0;
    printf("readlink == argv[0]: %s\n", strcmp(buf, argv[0]) == 0 ? "yes" : "no");
    return 0;
}
