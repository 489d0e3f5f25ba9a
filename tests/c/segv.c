// Death by SIGSEGV: the runner must report status 128+11.
// e2e: exit=139
// e2e: stdout=about to fault
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

int main(void)
{
    /* No core file in the test directory; failure here is irrelevant. */
    struct rlimit rl = {0, 0};
    setrlimit(RLIMIT_CORE, &rl);
    static const char msg[] = "about to fault\n";
    if (write(1, msg, strlen(msg)) < 0)
        return 1;
    *(volatile int *)8 = 1;
    return 0;
}
