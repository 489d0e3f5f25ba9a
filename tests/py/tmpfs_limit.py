# tmpfs size= charging and noexec mappings, run natively (in a private mount
# namespace with the same mounts) and in a container by tests/tests/oci.rs, outputs
# compared. argv: a tmpfs mounted with size=256k, a tmpfs mounted noexec.
# Pages written through a shared mapping count, write(2) into holes is short at the
# limit and then ENOSPC, pages already held still take writes, fallocate of a range
# whose missing pages fit succeeds (pages it already allocated cost nothing again),
# truncate and unlink give pages back; on noexec, PROT_EXEC is EPERM at mmap and
# EACCES at mprotect.
import errno, mmap, os, sys
d = sys.argv[1]
def fs():
    s = os.statvfs(d)
    return "blocks=%d free=%d" % (s.f_blocks, s.f_bfree)
def blocks(fd):
    return "st_blocks=%d size=%d" % (os.fstat(fd).st_blocks, os.fstat(fd).st_size)
def t(what, fn):
    try:
        r = fn()
        print(what, "ok" if r is None else r)
    except OSError as e:
        print(what, errno.errorcode[e.errno])
f = os.open(d + "/f", os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
print("empty", fs(), blocks(f))
os.ftruncate(f, 1 << 20)
print("sparse 1 MiB", fs(), blocks(f))
m = mmap.mmap(f, 1 << 20)
for i in range(16):
    m[i * 4096] = 1
print("16 pages through a mapping", fs(), blocks(f))
t("write 256 KiB into holes", lambda: os.pwrite(f, b"w" * (256 << 10), 512 << 10))
print("full", fs(), blocks(f))
t("one byte into a hole", lambda: os.pwrite(f, b"w", 900 << 10))
t("ten bytes into a held page", lambda: os.pwrite(f, b"w" * 10, 5 * 4096 + 1))
g = os.open(d + "/g", os.O_RDWR | os.O_CREAT, 0o644)
t("a new file's first byte", lambda: os.write(g, b"x"))
os.ftruncate(f, 64 << 10)
print("truncated to 64 KiB", fs(), blocks(f))
t("fallocate 256 KiB", lambda: os.posix_fallocate(f, 0, 256 << 10))
t("fallocate 64 KiB more", lambda: os.posix_fallocate(f, 64 << 10, 64 << 10))
print("fallocated", fs(), blocks(f))
m.close()
os.close(f)
os.close(g)
os.unlink(d + "/f")
os.unlink(d + "/g")
print("unlinked", fs())
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
x = os.open(sys.argv[2] + "/x", os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o755)
os.write(x, b"\xc3" * 4096)
def cerr(r):
    return "ok" if r not in (-1, ctypes.c_void_p(-1).value) else errno.errorcode[ctypes.get_errno()]
print("noexec: map exec", cerr(libc.mmap(None, 4096, mmap.PROT_READ | mmap.PROT_EXEC, mmap.MAP_PRIVATE, x, 0)))
p = libc.mmap(None, 4096, mmap.PROT_READ, mmap.MAP_PRIVATE, x, 0)
print("noexec: map read", cerr(p))
print("noexec: mprotect exec", cerr(libc.mprotect(p, 4096, mmap.PROT_READ | mmap.PROT_EXEC)))
print("noexec: mprotect write", cerr(libc.mprotect(p, 4096, mmap.PROT_READ | mmap.PROT_WRITE)))
os.close(x)
os.unlink(sys.argv[2] + "/x")
