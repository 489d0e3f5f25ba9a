// hello world run with the test directory as the sandbox root (--rootfs).
// e2e: rootfs=testdir
// e2e: stdout=hello from the rootfs
#include <stdio.h>

int main(void)
{
    printf("hello from the rootfs\n");
    return 0;
}
