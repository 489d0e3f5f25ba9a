// Syscall numbers no kernel implements must fail with ENOSYS, not crash.
// e2e: stdout=syscall(1000): -1 ENOSYS
// e2e: stdout=syscall(100000): -1 ENOSYS
// e2e: stdout=still alive
#include <errno.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "e2e.h"

int main(void)
{
    errno = 0;
    long r = syscall(1000);
    e2e_result("syscall(1000)", r, errno);
    errno = 0;
    r = syscall(100000);
    e2e_result("syscall(100000)", r, errno);
    printf("still alive\n");
    return 0;
}
