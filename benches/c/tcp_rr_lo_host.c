// TCP request/response over loopback with --network=host: 1-byte ping-pong with a forked
// child through host sockets the sentry holds.
// bench: title=TCP rr lo, --network=host (per round trip)
// bench: order=311
// bench: iters=50000
// bench: host-network

#include "tcp_bench.h"

int main(int argc, char **argv)
{
    return tcp_loopback_main(argc, argv, 'P');
}
