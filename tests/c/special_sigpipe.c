// splice into a pipe whose reader is gone raises SIGPIPE (default action: death).
// e2e: exit=141
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

int main(void)
{
    int a[2], b[2];
    pipe(a);
    pipe(b);
    write(a[1], "data", 4);
    close(b[0]);
    fflush(stdout);
    splice(a[0], NULL, b[1], NULL, 4, 0);
    printf("survived\n");
    return 0;
}
