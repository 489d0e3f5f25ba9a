// Kernel module syscalls are refused with EPERM inside the sandbox.
// Sandbox-only: natively as root the result depends on the host
// (CAP_SYS_MODULE, module signing) and a success would load into the host.
// e2e: mode=sandbox-only
// e2e: stdout=init_module: -1 EPERM
// e2e: stdout=finit_module: -1 EPERM
// e2e: stdout=delete_module: -1 EPERM
#include <errno.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "e2e.h"

int main(void)
{
    static const char image[64] = "\177ELF";
    errno = 0;
    long r = syscall(SYS_init_module, image, sizeof image, "");
    e2e_result("init_module", r, errno);
    errno = 0;
    r = syscall(SYS_finit_module, 0, "", 0);
    e2e_result("finit_module", r, errno);
    errno = 0;
    r = syscall(SYS_delete_module, "e2e_no_such_module", 0);
    e2e_result("delete_module", r, errno);
    return 0;
}
