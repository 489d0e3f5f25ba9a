// Echoes argv (argv[0] by basename) and the E2E_* environment, sorted so
// that extra variables or a different order in the sandbox do not matter.
// e2e: arg=one
// e2e: arg=two words
// e2e: arg=
// e2e: arg=--flag=x
// e2e: env=E2E_ALPHA=1
// e2e: env=E2E_BETA=with space
// e2e: env=E2E_EMPTY=
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv, char **envp)
{
    const char *base = strrchr(argv[0], '/');
    printf("argc=%d\n", argc);
    printf("argv[0] basename=%s\n", base ? base + 1 : argv[0]);
    for (int i = 1; i < argc; i++)
        printf("argv[%d]=\"%s\"\n", i, argv[i]);
    printf("argv[argc]==NULL: %s\n", argv[argc] == NULL ? "yes" : "no");

    char *mine[256];
    int n = 0;
    for (char **e = envp; *e; e++)
        if (strncmp(*e, "E2E_", 4) == 0 && n < 256)
            mine[n++] = *e;
    qsort(mine, n, sizeof mine[0], cmp);
    for (int i = 0; i < n; i++)
        printf("env %s\n", mine[i]);
    const char *beta = getenv("E2E_BETA");
    printf("getenv(E2E_BETA)=%s\n", beta ? beta : "(null)");
    return 0;
}
