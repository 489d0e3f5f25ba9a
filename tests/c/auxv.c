// Walks the auxiliary vector the loader left after envp and checks each
// entry for sanity (not raw addresses, which legitimately differ).
#include <elf.h>
#include <link.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

extern void _start(void);

int main(int argc, char **argv, char **envp)
{
    (void)argc;
    char **e = envp;
    while (*e)
        e++;
    Elf64_auxv_t *auxv = (Elf64_auxv_t *)(e + 1);

    unsigned long v[64] = {0};
    int seen[64] = {0};
    int count = 0;
    for (Elf64_auxv_t *a = auxv; a->a_type != AT_NULL; a++) {
        count++;
        if (a->a_type < 64) {
            seen[a->a_type] = 1;
            v[a->a_type] = a->a_un.a_val;
        }
    }
    printf("auxv entries > 10: %s\n", count > 10 ? "yes" : "no");

#define HAVE(t) printf("%-10s present: %s\n", #t, seen[t] ? "yes" : "no")
    HAVE(AT_PHDR); HAVE(AT_PHENT); HAVE(AT_PHNUM); HAVE(AT_PAGESZ);
    HAVE(AT_ENTRY); HAVE(AT_RANDOM); HAVE(AT_HWCAP); HAVE(AT_CLKTCK);
    HAVE(AT_UID); HAVE(AT_EUID); HAVE(AT_GID); HAVE(AT_EGID);
    HAVE(AT_SECURE); HAVE(AT_EXECFN);

    printf("AT_PAGESZ=%lu\n", v[AT_PAGESZ]);
    printf("AT_PAGESZ==sysconf: %s\n", (long)v[AT_PAGESZ] == sysconf(_SC_PAGESIZE) ? "yes" : "no");
    printf("AT_PHENT=%lu\n", v[AT_PHENT]);
    printf("AT_PHNUM>0: %s\n", v[AT_PHNUM] > 0 ? "yes" : "no");
    int loads = 0;
    if (v[AT_PHDR] && v[AT_PHENT] == sizeof(Elf64_Phdr)) {
        const Elf64_Phdr *ph = (const Elf64_Phdr *)v[AT_PHDR];
        for (unsigned long i = 0; i < v[AT_PHNUM]; i++)
            loads += ph[i].p_type == PT_LOAD;
    }
    printf("AT_PHDR has PT_LOAD: %s\n", loads > 0 ? "yes" : "no");
    printf("AT_ENTRY==_start: %s\n", v[AT_ENTRY] == (unsigned long)&_start ? "yes" : "no");
    const unsigned char *rnd = (const unsigned char *)v[AT_RANDOM];
    int nonzero = 0;
    if (rnd)
        for (int i = 0; i < 16; i++)
            nonzero |= rnd[i];
    printf("AT_RANDOM non-null: %s, 16 bytes not all zero: %s\n", rnd ? "yes" : "no",
           nonzero ? "yes" : "no");
    printf("AT_CLKTCK=%lu\n", v[AT_CLKTCK]);
    printf("AT_UID==getuid: %s\n", v[AT_UID] == getuid() ? "yes" : "no");
    printf("AT_EUID==geteuid: %s\n", v[AT_EUID] == geteuid() ? "yes" : "no");
    printf("AT_GID==getgid: %s\n", v[AT_GID] == getgid() ? "yes" : "no");
    printf("AT_EGID==getegid: %s\n", v[AT_EGID] == getegid() ? "yes" : "no");
    printf("AT_SECURE=%lu\n", v[AT_SECURE]);
    const char *execfn = (const char *)v[AT_EXECFN];
    printf("AT_EXECFN==argv[0]: %s\n", execfn && strcmp(execfn, argv[0]) == 0 ? "yes" : "no");
    return 0;
}
