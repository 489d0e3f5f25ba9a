// exit(argv[1]) after printing, so buffered output must reach the pipe.
// e2e: case=0
// e2e: arg=0
// e2e: exit=0
// e2e: stdout=exiting with 0
// e2e: case=1
// e2e: arg=1
// e2e: exit=1
// e2e: stdout=exiting with 1
// e2e: case=42
// e2e: arg=42
// e2e: exit=42
// e2e: stdout=exiting with 42
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    int code = argc > 1 ? atoi(argv[1]) : 3;
    printf("exiting with %d\n", code);
    exit(code);
}
