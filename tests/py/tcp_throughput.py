"""TCP throughput probe for docs/networking.md (sandbox vs native over a veth).

    tcp_throughput.py recv PORT          listen on PORT, read to EOF, print MB/s
    tcp_throughput.py send HOST PORT MIB  write MIB MiB in 256 KiB sendall()s, print MB/s
"""
import socket
import sys
import time

mode = sys.argv[1]
if mode == "recv":
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", int(sys.argv[2])))
    s.listen(1)
    c, _ = s.accept()
    n, t = 0, time.time()
    while True:
        b = c.recv(1 << 18)
        if not b:
            break
        n += len(b)
    dt = time.time() - t
    print("recv %.1f MB in %.2fs: %.1f MB/s" % (n / 1e6, dt, n / 1e6 / dt), flush=True)
else:
    host, port, mib = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    c = socket.create_connection((host, port))
    buf, t = b"x" * (1 << 18), time.time()
    for _ in range(mib * 4):
        c.sendall(buf)
    c.close()
    dt = time.time() - t
    print("send %.1f MB in %.2fs: %.1f MB/s" % (mib * 1.048576, dt, mib * 1.048576 / dt), flush=True)
