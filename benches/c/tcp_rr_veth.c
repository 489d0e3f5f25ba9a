// TCP request/response over a veth (--network=sandbox): 1-byte ping-pong with a native peer.
// bench: title=TCP rr veth (per round trip)
// bench: order=340
// bench: iters=20000
// bench: veth
// bench: arg={peer}
// bench: arg=7321
#include "tcp_bench.h"

int main(int argc, char **argv)
{
    return tcp_veth_main(argc, argv, 'P');
}
