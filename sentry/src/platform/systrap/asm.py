#!/usr/bin/env python3
"""Assembles stub.S with GNU as and prints the CODE array for stub.rs (one
instruction a line, with its text) and the offset of every label. Development
only: the build never runs it."""
import os, re, subprocess, sys, tempfile

here = os.path.dirname(os.path.abspath(__file__))
with tempfile.TemporaryDirectory() as d:
    obj = os.path.join(d, "stub.o")
    subprocess.run(["as", "--64", "-o", obj, os.path.join(here, "stub.S")], check=True)
    labels = {}
    for line in subprocess.run(["nm", obj], capture_output=True, text=True, check=True).stdout.splitlines():
        addr, kind, name = line.split()
        if kind.lower() == "t":
            labels.setdefault(int(addr, 16), []).append(name)
    dis = subprocess.run(["objdump", "-d", "-M", "intel", "--insn-width=16", obj],
                         capture_output=True, text=True, check=True).stdout
out = ["const CODE: &[u8] = &["]
for line in dis.splitlines():
    m = re.match(r"\s*([0-9a-f]+):\t((?:[0-9a-f]{2} )+)\s*\t?(.*)", line)
    if not m:
        continue
    addr = int(m.group(1), 16)
    for name in labels.get(addr, []):
        out.append(f"    // {name} (+{addr:#x}):")
    bs = ", ".join("0x" + b for b in m.group(2).split())
    text = re.sub(r"\s+", " ", m.group(3)).strip()
    text = re.sub(r" <[^>]*>", "", text)
    out.append(f"    {bs}, // {text}")
out.append("];")
print("\n".join(out))
for addr in sorted(labels):
    for name in labels[addr]:
        print(f"// label {name} = {addr:#x}", file=sys.stderr)
