// TCP stream over loopback inside the sandbox (--network=none): 64 KiB writes to a forked reader.
// bench: title=TCP stream lo (per 64 KiB)
// bench: order=300
// bench: iters=20000

#include "tcp_bench.h"

int main(int argc, char **argv)
{
    return tcp_loopback_main(argc, argv, 'S');
}
