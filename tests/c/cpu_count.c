// The CPUs a process may run on agree with the CPUs the system says are online
// (the sentry's own threads are pinned; the application must not see that).
#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <unistd.h>

int main(void)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) != 0) {
        perror("sched_getaffinity");
        return 1;
    }
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    printf("affinity count equals online cpus: %s\n", CPU_COUNT(&set) == online ? "yes" : "no");
    printf("at least one: %s\n", CPU_COUNT(&set) >= 1 ? "yes" : "no");
    return 0;
}
