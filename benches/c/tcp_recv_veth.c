// TCP stream received over a veth (--network=sandbox): 64 KiB chunks from a native writer in the peer namespace.
// bench: title=TCP recv veth (per 64 KiB)
// bench: order=330
// bench: iters=20000
// bench: veth
// bench: arg={peer}
// bench: arg=7321
#include "tcp_bench.h"

int main(int argc, char **argv)
{
    return tcp_veth_main(argc, argv, 'R');
}
