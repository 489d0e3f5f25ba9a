#!/usr/bin/env python3
"""Assembles sentry/src/platform/systrap/stub.S with GNU as and rewrites, in stub.rs,
the CODE byte table (one instruction a line, labels as comments) and the CODE_*
label offsets. Development only: the build never runs an assembler.

    python3 sentry/tools/gen_stub.py          # rewrite stub.rs in place
    python3 sentry/tools/gen_stub.py --check  # exit 1 if stub.rs is out of date
"""
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
DIR = os.path.join(HERE, "..", "src", "platform", "systrap")
SRC = os.path.join(DIR, "stub.S")
RS = os.path.join(DIR, "stub.rs")
# stub.rs constant -> (label, extra offset)
LABELS = {
    "CODE_READY": ("ready", 0),
    "CODE_HANDLER": ("handler", 0),
    "CODE_SPIN_IMM": ("hwait", 1),  # the imm32 of `mov ecx, imm32`
    "CODE_RESTORER": ("restorer", 0),
    "CODE_CLONE_RET": ("clone_ret", 0),
    "CODE_PRCTL_RET": ("prctl_ret", 0),
    "CODE_REQUEST": ("request", 0),
}


def assemble(tmp):
    obj = os.path.join(tmp, "stub.o")
    subprocess.run(["as", "--64", "-o", obj, SRC], check=True)
    syms = {}
    for line in subprocess.run(["nm", "-n", obj], check=True, capture_output=True, text=True).stdout.splitlines():
        addr, kind, name = line.split()
        if kind in "tT":
            syms[int(addr, 16)] = name
    raw = subprocess.run(["objdump", "-d", "-M", "intel", obj], check=True,
                         capture_output=True, text=True).stdout
    insns = []  # (offset, bytes, text)
    for line in raw.splitlines():
        m = re.match(r"^\s*([0-9a-f]+):\t((?:[0-9a-f]{2} )+)\s*\t?(.*)$", line)
        if not m:
            continue
        off = int(m.group(1), 16)
        b = [int(x, 16) for x in m.group(2).split()]
        text = re.sub(r"\s+", " ", m.group(3)).strip()
        text = re.sub(r"\s*<[^>]*>", "", text)
        if not text and insns:
            # objdump's continuation line of a long instruction
            insns[-1] = (insns[-1][0], insns[-1][1] + b, insns[-1][2])
        else:
            insns.append((off, b, text))
    return insns, {v: k for k, v in syms.items()}, syms


def render(insns, syms):
    out = ["const CODE: &[u8] = &["]
    for off, b, text in insns:
        if off in syms:
            out.append(f"    // {syms[off]} (+{off:#x}):")
        out.append("    " + ", ".join(f"0x{x:02x}" for x in b) + f", // {text}")
    out.append("];")
    return "\n".join(out)


def main():
    with tempfile.TemporaryDirectory() as tmp:
        insns, by_name, syms = assemble(tmp)
    s = open(RS).read()
    start = s.index("const CODE: &[u8] = &[")
    end = s.index("];", start) + 2
    new = s[:start] + render(insns, syms) + s[end:]
    for const, (label, extra) in LABELS.items():
        val = by_name[label] + extra
        new, n = re.subn(rf"(const {const}: (?:u64|usize) = )0x[0-9a-f]+;", rf"\g<1>{val:#x};", new)
        if n != 1:
            sys.exit(f"gen_stub: constant {const} not found once in stub.rs")
    if "--check" in sys.argv:
        if new != s:
            sys.exit("gen_stub: stub.rs does not match stub.S; run sentry/tools/gen_stub.py")
        return
    open(RS, "w").write(new)


if __name__ == "__main__":
    main()
