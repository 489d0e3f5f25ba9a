// TCP stream sent over a veth (--network=sandbox): 64 KiB writes to a native reader in the peer namespace.
// bench: title=TCP send veth (per 64 KiB)
// bench: order=320
// bench: iters=20000
// bench: veth
// bench: arg={peer}
// bench: arg=7321
#include "tcp_bench.h"

int main(int argc, char **argv)
{
    return tcp_veth_main(argc, argv, 'S');
}
