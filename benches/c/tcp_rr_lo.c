// TCP request/response over loopback inside the sandbox: 1-byte ping-pong with a forked child.
// bench: title=TCP rr lo (per round trip)
// bench: order=310
// bench: iters=50000

#include "tcp_bench.h"

int main(int argc, char **argv)
{
    return tcp_loopback_main(argc, argv, 'P');
}
