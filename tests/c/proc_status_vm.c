// /proc/self/status reports the address-space size (ps reads VSZ from it), and it
// grows with a new mapping; its Umask line follows umask(2).
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

static long vm(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, key, strlen(key)) == 0)
            sscanf(line + strlen(key), "%ld", &v);
    if (f)
        fclose(f);
    return v;
}

int main(void)
{
    long before = vm("VmSize:");
    printf("VmSize present: %s\n", before > 0 ? "yes" : "no");
    void *p = mmap(NULL, 64 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    long after = vm("VmSize:");
    printf("64 MiB mapping adds 64 MiB: %s\n", after - before == 64 * 1024 ? "yes" : "no");
    printf("VmData counts it: %s\n", vm("VmData:") >= 64 * 1024 ? "yes" : "no");
    munmap(p, 64 << 20);
    printf("unmapped: %s\n", vm("VmSize:") == before ? "yes" : "no");
    // Umask is printed in octal; read as decimal digits, 0022 is 22.
    printf("Umask: %ld\n", vm("Umask:"));
    umask(027);
    printf("Umask after umask(027): %ld\n", vm("Umask:"));
    return 0;
}
