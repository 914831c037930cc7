#!/usr/bin/env python3
"""Checkpoint loading speed: our reader (find the state dict, bind every tensor to Float32) against
torch.load(weights_only=True) on the same fp16 file, interleaved, warm page cache.

Usage: /work/venv/bin/python Tools/bench/load_bench.py [--size-mb 560] [--pairs 7] [--file /tmp/x.pt]
            [--bench .build/release/checkpoint-bench]
The file is made once (random fp16 weights in the shapes of an ADM-like UNet, saved by torch.save) in
/tmp unless --file names one. Each pair runs ours, then torch.load alone, then torch.load followed by
.float() on every tensor (what our side does), each in a fresh process, so peak RSS is per run.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

TORCH_SIDE = r'''
import json, resource, sys, time
import torch
torch.set_num_threads(2)
t0 = time.perf_counter()
sd = torch.load(sys.argv[1], weights_only=True, map_location="cpu")
t1 = time.perf_counter()
if sys.argv[2] == "float":
    sd = {k: v.float() for k, v in sd.items()}
t2 = time.perf_counter()
print(json.dumps({"seconds": t2 - t0, "load_seconds": t1 - t0,
                  "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
'''


def make_file(path, size_mb):
    import torch
    torch.manual_seed(0)
    sd, total, i = {}, 0, 0
    shapes = [(512, 512, 3, 3), (1024, 512, 3, 3), (1536, 512, 1, 1), (512,), (2048, 512)]
    while total < size_mb * (1 << 20):
        shape = shapes[i % len(shapes)]
        t = torch.randn(*shape).half()
        sd[f"blocks.{i}.weight"] = t
        total += t.numel() * 2
        i += 1
    torch.save(sd, path)
    return len(sd)


def run(cmd, env=None):
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        sys.exit(f"{cmd[0]} failed: {out.stderr.strip()}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mb", type=int, default=560)
    ap.add_argument("--pairs", type=int, default=7)
    ap.add_argument("--file", default=None)
    ap.add_argument("--bench", default=".build/release/checkpoint-bench")
    args = ap.parse_args()
    path = args.file or f"/tmp/diffusionrestore-load-bench-{args.size_mb}mb.pt"
    if not os.path.exists(path):
        print(f"making {path} ...", file=sys.stderr)
        make_file(path, args.size_mb)
    size = os.path.getsize(path)
    env = dict(os.environ, OMP_NUM_THREADS="2")
    ours, torch_load, torch_float = [], [], []
    run([args.bench, path], env)  # warm the page cache
    for _ in range(args.pairs):
        ours.append(run([args.bench, path], env))
        torch_load.append(run([sys.executable, "-c", TORCH_SIDE, path, "load"], env))
        torch_float.append(run([sys.executable, "-c", TORCH_SIDE, path, "float"], env))
    med = lambda rows, k: statistics.median(r[k] for r in rows)
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    f32 = ours[0]["float32_bytes"]
    print(f"CPU: {cpu}, {os.cpu_count()} cores; file {size / 2**20:.0f} MiB fp16, {ours[0]['tensors']} tensors, "
          f"{ours[0]['parameters']:,} parameters; median of {args.pairs} interleaved runs, warm page cache")
    print("| reader | seconds | peak RSS MiB | ratio ours / this |")
    print("|---|---|---|---|")
    o = med(ours, "seconds")
    print(f"| ours: map, find state dict, bind all to Float32 | {o:.3f} | {med(ours, 'peak_rss_bytes') / 2**20:.0f} | 1.00 |")
    t = med(torch_load, "seconds")
    print(f"| torch.load(weights_only=True) (fp16 tensors) | {t:.3f} | {med(torch_load, 'peak_rss_bytes') / 2**20:.0f} | {o / t:.2f} |")
    tf = med(torch_float, "seconds")
    print(f"| torch.load + .float() on every tensor | {tf:.3f} | {med(torch_float, 'peak_rss_bytes') / 2**20:.0f} | {o / tf:.2f} |")
    print(f"RSS bound for ours (file + Float32 tensors): {(size + f32) / 2**20:.0f} MiB; "
          f"measured {med(ours, 'peak_rss_bytes') / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
