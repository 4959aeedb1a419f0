#!/usr/bin/env python3
"""scripts/layout/order.py: the symbol ordering file of the release build.

    order.py touched BINARY             print the file pages of BINARY in the page cache (mincore)
    order.py symbols BINARY PAGES PROFILE.txt   print the ordering file

`symbols` lists the functions of BINARY that the probe workload ran: first
those PROFILE (`llvm-profdata merge --text` of an instrumented build's run of
that workload: `scripts/pgo-train.sh --core`) counts as run, then, for code
without a profile (Rust's std, glibc, libseccomp), every function on a page
the workload read (PAGES, from `touched`); each part in address order. The linker places them first, side by side, so that the code a
start runs fills few pages: the kernel maps file pages 64 KiB around each
fault, so scattered code costs resident memory and faults (docs/benchmark.md,
"Code layout").
"""
import ctypes
import os
import re
import subprocess
import sys


def touched(binary):
    fd = os.open(binary, os.O_RDONLY)
    size = os.fstat(fd).st_size
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int,
                          ctypes.c_int, ctypes.c_int, ctypes.c_long]
    addr = libc.mmap(None, size, 1, 1, fd, 0)  # PROT_READ, MAP_SHARED
    if addr in (None, ctypes.c_void_p(-1).value):
        sys.exit(f"mmap {binary}: errno {ctypes.get_errno()}")
    n = (size + 4095) // 4096
    vec = (ctypes.c_ubyte * n)()
    if libc.mincore(ctypes.c_void_p(addr), ctypes.c_size_t(size), vec) != 0:
        sys.exit(f"mincore {binary}: errno {ctypes.get_errno()}")
    print(" ".join(str(i) for i in range(n) if vec[i] & 1))


def profile_counts(path):
    """name -> highest counter, from `llvm-profdata merge --text`."""
    lines = open(path).read().split("\n")
    counts, i = {}, 0
    while i < len(lines):
        if i + 1 < len(lines) and lines[i + 1].startswith("# Func Hash") and not lines[i].startswith("#"):
            n = int(lines[i + 4])
            vals = [int(v) for v in lines[i + 6:i + 6 + n]]
            name = lines[i].split(";")[-1]  # "file;name" for local functions
            counts[name] = max(counts.get(name, 0), max(vals, default=0))
            i += 6 + n
        else:
            i += 1
    return counts


def symbols(binary, pages_file, profile):
    pages = set(int(p) for p in open(pages_file).read().split())
    counts = profile_counts(profile)
    sections = subprocess.run(["readelf", "-SW", binary], capture_output=True, text=True, check=True).stdout
    delta = None
    for line in sections.splitlines():
        m = re.match(r"\s*\[\s*\d+\]\s+\.text\s+\S+\s+([0-9a-f]+)\s+([0-9a-f]+)", line)
        if m:
            delta = int(m.group(1), 16) - int(m.group(2), 16)
    if delta is None:
        sys.exit(f"{binary}: no .text section")
    nm = subprocess.run(["nm", "-S", "-n", binary], capture_output=True, text=True, check=True).stdout
    chosen, seen = [], set()
    for line in nm.splitlines():
        f = line.split()
        if len(f) != 4 or f[2] not in "tTwW" or f[3] in seen:
            continue
        addr, size, name = int(f[0], 16), int(f[1], 16), f[3]
        count = counts.get(name)
        if count is None:
            # No profile (std, C): on a page the probe read.
            first, last = (addr - delta) // 4096, (addr - delta + max(size, 1) - 1) // 4096
            if not any(p in pages for p in range(first, last + 1)):
                continue
        elif count == 0:
            continue
        seen.add(name)
        chosen.append((0 if count else 1, addr, name))
    chosen.sort()
    print("\n".join(name for _, _, name in chosen))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "touched":
        touched(sys.argv[2])
    elif len(sys.argv) == 5 and sys.argv[1] == "symbols":
        symbols(*sys.argv[2:5])
    else:
        sys.exit(__doc__)
