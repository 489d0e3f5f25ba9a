// Allocates and touches MIB mebibytes, one at a time, printing progress; used by
// tests/tests/resources.rs to run past a sandbox's memory limit (only inside a
// sandbox: never run natively). Exits 0 if everything was allocated, 2 if malloc
// failed, and is expected to die of SIGKILL (the OOM killer) in between. With
// `hold`, it keeps what it allocated and waits for a signal instead of exiting
// (tests/tests/cri.rs: a container whose memory is known).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc != 2 && !(argc == 3 && strcmp(argv[2], "hold") == 0)) {
        fprintf(stderr, "usage: mem_hog MIB [hold]\n");
        return 1;
    }
    long mib = atol(argv[1]);
    for (long i = 0; i < mib; i++) {
        char *p = malloc(1 << 20);
        if (p == NULL) {
            printf("malloc failed after %ld MiB\n", i);
            return 2;
        }
        memset(p, 0x5a, 1 << 20);
        if (i % 32 == 0) {
            printf("hog: %ld MiB\n", i);
            fflush(stdout);
        }
    }
    printf("hog: survived %ld MiB\n", mib);
    fflush(stdout);
    if (argc == 3) {
        for (;;)
            pause();
    }
    return 0;
}
