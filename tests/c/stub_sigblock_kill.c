// Issue 10, attack 4c: a child blocks every host signal of its stub from the stub's
// own code (on systrap: it runs the signal handler's request path with a region of
// its own, asking for rt_sigprocmask(SIG_BLOCK, all), and the handler then sleeps
// on that region for good). SIGKILL from its parent must still end it.
// Sandbox-only: natively there is no stub. On ptrace the stub code is not there (the
// child just spins): the kill must work the same.
// e2e: mode=sandbox-only
// e2e: stdout=child killed by signal 9
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define STUB_BASE 0x7ffffe000000UL

// mov rax,[rbx+0x40]; mov rdi,[rbx+0x48]; mov rsi,[rbx+0x50]: the handler's request
// path, which runs the call in its region's slots.
static const unsigned char request[] = {0x48, 0x8b, 0x43, 0x40, 0x48, 0x8b,
                                        0x7b, 0x48, 0x48, 0x8b, 0x73, 0x50};

static unsigned char region[4096] __attribute__((aligned(4096)));
static unsigned long long all_signals = ~0ULL;

// The stub's code page, if the application can read it (copied through a pipe, so
// an unmapped page is an EFAULT and not a fault).
static unsigned long find_request(void)
{
    static unsigned char page[4096];
    int p[2];
    if (pipe(p) != 0)
        return 0;
    unsigned long found = 0;
    if (write(p[1], (void *)STUB_BASE, sizeof page) == (ssize_t)sizeof page &&
        read(p[0], page, sizeof page) == (ssize_t)sizeof page) {
        for (size_t i = 0; i + sizeof request <= sizeof page; i++)
            if (memcmp(page + i, request, sizeof request) == 0) {
                found = STUB_BASE + i;
                break;
            }
    }
    close(p[0]);
    close(p[1]);
    return found;
}

static void put(int off, unsigned long long v)
{
    memcpy(region + off, &v, sizeof v);
}

int main(void)
{
    unsigned long target = find_request();
    pid_t child = fork();
    if (child < 0) {
        perror("fork");
        return 1;
    }
    if (child == 0) {
        if (target) {
            put(64, 14);                               // rt_sigprocmask
            put(72, SIG_BLOCK);                        // how
            put(80, (unsigned long long)&all_signals); // set
            put(88, 0);                                // oldset
            put(96, 8);                                // sigsetsize
            __asm__ volatile("mov %0, %%rbx\n\tjmp *%1" ::"r"(region), "r"(target)
                             : "rbx", "memory");
        }
        for (;;)
            __asm__ volatile("" ::: "memory");
    }
    struct timespec t = {0, 200 * 1000 * 1000};
    nanosleep(&t, NULL);
    int status = 0;
    if (waitpid(child, &status, WNOHANG) != 0) {
        printf("child ended early: %#x\n", status);
        return 1;
    }
    kill(child, SIGKILL);
    if (waitpid(child, &status, 0) != child) {
        perror("waitpid");
        return 1;
    }
    if (WIFSIGNALED(status))
        printf("child killed by signal %d\n", WTERMSIG(status));
    else
        printf("child exited with %d\n", WEXITSTATUS(status));
    return 0;
}
