#!/usr/bin/env python3
"""USDR tiling memory benchmark (`make bench-usdr`): peak RSS of `restore ddnm` with a zero-cost stand-in
ε-network (`--stand-in-network 64`) over the real windows, known regions, canvas, reports and PNG writer,
for ×4 average-pooling SR to 256², 4096² and 8192² outputs, measured with /usr/bin/time -v. Reports
RSS − Float32 size of the input and output images, which must not grow with the image (USDR issue).
Standard library only (the input PNGs are synthetic, written here)."""
import argparse
import os
import re
import struct
import subprocess
import tempfile
import zlib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def write_png(path, side):
    """A smooth synthetic RGB image (8-bit), rows generated on the fly."""
    raw = bytearray()
    for y in range(side):
        raw.append(0)
        for x in range(side):
            raw += bytes(((x * 255 // side), (y * 255 // side), ((x + y) * 127 // side)))
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(bytes(raw), 6)) + chunk(b"IEND", b"")
    Path(path).write_bytes(png)


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--binary", default=str(REPO / ".build" / "release" / "restore"))
    p.add_argument("--inputs", default="64,1024,2048", help="input sides (outputs are 4× larger)")
    p.add_argument("--steps", type=int, default=1)
    args = p.parse_args()
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    print(f"CPU: {cpu}, {os.cpu_count()} threads; steps {args.steps}")
    print("| output | peak RSS MiB | Float32 images MiB | RSS − images MiB | wall |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as work:
        for side in [int(s) for s in args.inputs.split(",")]:
            src, out = Path(work) / f"in{side}.png", Path(work) / f"out{side}.png"
            write_png(src, side)
            r = subprocess.run(["/usr/bin/time", "-v", args.binary, "ddnm", "-i", str(src), "-o", str(out), "--degradation", "pool:4",
                                "--stand-in-network", "64", "--steps", str(args.steps), "--quiet", "--overwrite"],
                               capture_output=True, text=True)
            if r.returncode != 0:
                raise SystemExit(r.stderr)
            rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", r.stderr).group(1)) / 1024
            wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", r.stderr).group(1)
            images = (side * side * 3 * 4 + (4 * side) ** 2 * 3 * 4) / 2 ** 20
            print(f"| {4 * side}² | {rss:.1f} | {images:.1f} | {rss - images:.1f} | {wall} |", flush=True)
            out.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
