// TCP stream over loopback with --network=host: the sandbox's sockets are host sockets the
// sentry holds (compare with "TCP stream lo", the sentry's own loopback).
// bench: title=TCP stream lo, --network=host (per 64 KiB)
// bench: order=301
// bench: iters=20000
// bench: host-network

#include "tcp_bench.h"

int main(int argc, char **argv)
{
    return tcp_loopback_main(argc, argv, 'S');
}
