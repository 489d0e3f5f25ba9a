// fstat on stdout, which the harness connects to a pipe on both sides.
// e2e: stdout=fstat(1): 0
// e2e: stdout=type=fifo
// e2e: stdout=fstat(999): EBADF
#include <errno.h>
#include <stdio.h>
#include <sys/stat.h>
#include "e2e.h"

static const char *kind(mode_t m)
{
    if (S_ISFIFO(m)) return "fifo";
    if (S_ISCHR(m)) return "chr";
    if (S_ISREG(m)) return "reg";
    if (S_ISSOCK(m)) return "sock";
    return "other";
}

int main(void)
{
    struct stat st;
    int r = fstat(1, &st);
    printf("fstat(1): %d\n", r);
    printf("type=%s\n", r == 0 ? kind(st.st_mode) : "?");
    errno = 0;
    r = fstat(999, &st);
    printf("fstat(999): %s\n", r == 0 ? "OK" : e2e_errname(errno));
    return 0;
}
