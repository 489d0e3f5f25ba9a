// Plain hello world through both stdio and a raw write(2).
// e2e: stdout=hello, world
// e2e: stdout=hello via write
#include <stdio.h>
#include <unistd.h>

int main(void)
{
    printf("hello, world\n");
    fflush(stdout);
    static const char msg[] = "hello via write\n";
    if (write(1, msg, sizeof msg - 1) != sizeof msg - 1)
        return 1;
    return 0;
}
