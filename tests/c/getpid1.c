// The first process of a sandbox is init of its own pid namespace.
// Sandbox-only: natively the harness's child is never pid 1.
// e2e: mode=sandbox-only
// e2e: stdout=getpid()==1: yes
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(void)
{
    printf("getpid()==1: %s\n", syscall(SYS_getpid) == 1 ? "yes" : "no");
    return 0;
}
