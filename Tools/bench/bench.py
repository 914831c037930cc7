#!/usr/bin/env python3
"""Interleaved benchmark: the engine (engine-bench) against PyTorch on CPU, same shapes, same threads.

Usage: python3 Tools/bench/bench.py [--pairs 11] [--reps 5] [--engine .build/release/engine-bench]
                                     [--markdown Benchmarks/RESULTS.md]
Each pair times one op in the engine and then in PyTorch (NCHW and channels_last, inference mode), each
side reporting the median of REPS runs after a warm-up; the ratio is ours / PyTorch's best, and the table
gives the median over PAIRS. When PyTorch is missing it says how to install it and prints our times only.
"""
import argparse
import datetime
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time

THREADS = int(os.environ.get("BENCH_THREADS", "2"))


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            info = {}
            for line in f:
                if ":" in line:
                    k, v = line.split(":", 1)
                    info.setdefault(k.strip(), v.strip())
            flags = info.get("flags", "")
            isa = "AVX-512" if "avx512f" in flags else "AVX2"
            return f"{info.get('model name', '?')} (family {info.get('cpu family', '?')}, model {info.get('model', '?')}, {isa})"
    except OSError:
        return platform.processor()


class Engine:
    def __init__(self, path):
        env = dict(os.environ, OMP_NUM_THREADS=str(THREADS))
        self.proc = subprocess.Popen([path], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)

    def ask(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        reply = json.loads(self.proc.stdout.readline())
        if "error" in reply:
            raise RuntimeError(reply["error"])
        return reply

    def close(self):
        self.proc.stdin.write("quit\n")
        self.proc.stdin.flush()
        self.proc.wait()


TORCH_SIDE = r'''
import json, sys, time
import torch
import torch.nn.functional as F
torch.set_num_threads(int(sys.argv[1]))
torch.manual_seed(0)

def conv(c, s, channels_last):
    m = torch.nn.Conv2d(c, c, 3, padding=1).eval()
    x = torch.randn(1, c, s, s)
    if channels_last:
        m = m.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    return lambda: m(x)

def gn_silu(c, s, channels_last):
    w, b = torch.randn(c), torch.randn(c)
    x = torch.randn(1, c, s, s)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return lambda: F.silu(F.group_norm(x, 32, w, b, 1e-5))

def resblock(c, s, channels_last):
    conv1, conv2 = torch.nn.Conv2d(c, c, 3, padding=1).eval(), torch.nn.Conv2d(c, c, 3, padding=1).eval()
    w, b = torch.randn(c), torch.randn(c)
    x = torch.randn(1, c, s, s)
    if channels_last:
        conv1, conv2 = conv1.to(memory_format=torch.channels_last), conv2.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    def run():
        h = conv1(F.silu(F.group_norm(x, 32, w, b, 1e-5)))
        return x + conv2(F.silu(F.group_norm(h, 32, w, b, 1e-5)))
    return run

def attention(t, layout):
    q, k, v = (torch.randn(1, 4, t, 64) for _ in range(3))
    if layout == "sdpa":
        return lambda: F.scaled_dot_product_attention(q, k, v)
    scale = 64 ** -0.5
    return lambda: torch.softmax(q @ k.transpose(-1, -2) * scale, dim=-1) @ v

UNETS = {
    # guided-diffusion UNetModel arguments; attention_resolutions are downsampling factors.
    "unet_adm64": dict(image_size=64, in_channels=3, model_channels=64, out_channels=6, num_res_blocks=2,
                       attention_resolutions=(4, 8), channel_mult=(1, 2, 2, 4), num_heads=4,
                       use_scale_shift_norm=True, resblock_updown=True),
    "unet_adm256": dict(image_size=256, in_channels=3, model_channels=256, out_channels=6, num_res_blocks=2,
                        attention_resolutions=(8, 16, 32), channel_mult=(1, 1, 2, 2, 4, 4), num_heads=4,
                        num_head_channels=64, use_scale_shift_norm=True, resblock_updown=True),
}
flops = {}

def unet(op, channels_last):
    from guided_diffusion.unet import UNetModel  # pip install guided-diffusion-sdk (the official code)
    kw = UNETS[op]
    m = UNetModel(**kw).eval()
    x = torch.randn(1, 3, kw["image_size"], kw["image_size"])
    t = torch.tensor([500.0])
    if channels_last:
        m = m.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    if op not in flops:
        from torch.utils.flop_counter import FlopCounterMode
        with FlopCounterMode(display=False) as counter:
            m(x, t)
        flops[op] = counter.get_total_flops() / 1e9
    return lambda: m(x, t)

RESSHIFT_V3 = dict(image_size=64, in_channels=3, model_channels=160, out_channels=3, num_res_blocks=[2, 2, 2, 2],
                   attention_resolutions=[64, 32, 16, 8], dropout=0, channel_mult=[1, 2, 2, 4], conv_resample=True, dims=2,
                   use_fp16=False, num_head_channels=32, use_scale_shift_norm=True, resblock_updown=False, swin_depth=2,
                   swin_embed_dim=192, window_size=8, mlp_ratio=4, cond_lq=True, lq_size=64)
VQ_F4 = dict(ddconfig=dict(double_z=False, z_channels=3, resolution=256, in_channels=3, out_ch=3, ch=128, ch_mult=[1, 2, 4],
                           num_res_blocks=2, attn_resolutions=[], dropout=0.0), n_embed=8192, embed_dim=3)

def resshift(op, channels_last):
    # The official modules, imported from a ResShift checkout outside the repository (--resshift DIR).
    import os
    sys.path.insert(0, os.path.join(os.environ["BENCH_REPO"], "Tools", "reference"))
    import contextlib
    with contextlib.redirect_stdout(sys.stderr):  # the official code prints; stdout carries the replies
        from make_resshift_fixtures import load_official
        mods = load_official(os.environ["RESSHIFT_DIR"])
        m = (mods.unet.UNetModelSwin(**RESSHIFT_V3) if op == "resshift_v3_64" else mods.autoencoder.VQModelTorch(**VQ_F4)).eval()
    if op == "resshift_v3_64":
        x, lq, t = torch.randn(1, 3, 64, 64), torch.randn(1, 3, 64, 64), torch.tensor([3])
        if channels_last:
            m = m.to(memory_format=torch.channels_last)
            x, lq = x.contiguous(memory_format=torch.channels_last), lq.contiguous(memory_format=torch.channels_last)
        return lambda: m(x, t, lq=lq)
    z = torch.randn(1, 3, 64, 64)
    if channels_last:
        m = m.to(memory_format=torch.channels_last)
        z = z.contiguous(memory_format=torch.channels_last)
    return lambda: m.decode(z)

DIFFIR = {
    # inference_diffir.py's DiffIRS2 (the RealSR x4 test YAML) and our bundled configuration (Tools/train/train_diffir.py).
    "diffir_x4_64": (64, dict(n_encoder_res=9, dim=64, scale=4, num_blocks=[13, 1, 1, 1], num_refinement_blocks=13,
                              heads=[1, 2, 4, 8], ffn_expansion_factor=2.2, LayerNorm_type="BiasFree")),
    "diffir_own_256": (256, dict(n_encoder_res=2, dim=24, scale=4, num_blocks=[2, 2, 2, 2], num_refinement_blocks=2,
                                 heads=[1, 2, 4, 8], ffn_expansion_factor=2.0, LayerNorm_type="BiasFree")),
}

def diffir(op, channels_last):
    # The official DiffIRS2, imported from a DiffIR checkout outside the repository (--diffir DIR); the whole eval
    # forward model(lq): CPEN, the 4-step IPR chain, DIRformer.
    import os, contextlib
    sys.path.insert(0, os.path.join(os.environ["BENCH_REPO"], "Tools", "reference"))
    with contextlib.redirect_stdout(sys.stderr):
        from make_diffir_fixtures import load_official
        size, kw = DIFFIR[op]
        m = load_official(os.environ["DIFFIR_DIR"], "DiffIR-RealSR").DiffIRS2(**kw).eval()
    x = torch.rand(1, 3, size, size)
    if channels_last:
        m = m.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    return lambda: m(x)

RDDM = {
    # train.py's restoration UnetRes (two UNets) and our bundled configuration (Tools/train/train_rddm.py: one UNet).
    "rddm_unetres_256": (256, dict(dim=64, dim_mults=(1, 2, 4, 8), share_encoder=0, condition=True)),
    "rddm_own_256": (256, dict(dim=24, dim_mults=(1, 2, 4, 8), share_encoder=-1, condition=True)),
}

def rddm(op, channels_last):
    # The official UnetRes, imported from an RDDM checkout outside the repository (--rddm DIR); one network call
    # (one sampling step) on cat(x_t, I_in) at t = 999.
    import os, contextlib
    sys.path.insert(0, os.path.join(os.environ["BENCH_REPO"], "Tools", "reference"))
    with contextlib.redirect_stdout(sys.stderr):
        from make_rddm_fixtures import load_official, official_path
        size, kw = RDDM[op]
        m = load_official(official_path(os.environ["RDDM_DIR"])).UnetRes(**kw).eval()
    x, t = torch.randn(1, 6, size, size), torch.tensor([999])
    if channels_last:
        m = m.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    return lambda: m(x, t)

LDM_SR_UNET = dict(image_size=64, in_channels=6, out_channels=3, model_channels=160, attention_resolutions=[16, 8],
                   num_res_blocks=2, channel_mult=[1, 2, 2, 4], num_head_channels=32)  # models/ldm/bsr_sr/config.yaml

def ldm(op, channels_last):
    # ldm_sr_unet_64: the official openaimodel UNetModel of bsr_sr (--ldm DIR, a CompVis/latent-diffusion checkout), one
    # sampling step on a 64² latent with its 64² LR. kl_f8_decode_512: diffusers' AutoencoderKL with LDM's kl-f8 shape
    # (128·[1, 2, 4, 4], 2 blocks, latent 4) decoding a 64² latent to a 512² image (needs diffusers).
    import os, contextlib
    with contextlib.redirect_stdout(sys.stderr):
        if op == "ldm_sr_unet_64":
            sys.path.insert(0, os.environ["LDM_DIR"])
            from ldm.modules.diffusionmodules.openaimodel import UNetModel
            m = UNetModel(**LDM_SR_UNET).eval()
            x, t = torch.randn(1, 6, 64, 64), torch.tensor([500])
            f = lambda m, x: m(x, t)
        else:
            from diffusers import AutoencoderKL
            m = AutoencoderKL(block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
                              up_block_types=("UpDecoderBlock2D",) * 4, layers_per_block=2, latent_channels=4).eval()
            x = torch.randn(1, 4, 64, 64)
            f = lambda m, x: m.decode(x).sample
    if channels_last:
        m = m.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    return lambda: f(m, x)

def variants(op):
    if op.startswith(("ldm_", "kl_f8_")):
        return {"nchw": ldm(op, False), "channels_last": ldm(op, True)}
    if op.startswith("rddm_"):
        return {"nchw": rddm(op, False), "channels_last": rddm(op, True)}
    if op.startswith("diffir_"):
        return {"nchw": diffir(op, False), "channels_last": diffir(op, True)}
    if op.startswith(("resshift_", "vq_f4_")):
        return {"nchw": resshift(op, False), "channels_last": resshift(op, True)}
    if op in UNETS:
        return {"nchw": unet(op, False), "channels_last": unet(op, True)}
    kind, *rest = op.split("_")
    if kind == "conv3x3":
        c, s = int(rest[0][1:]), int(rest[1])
        return {"nchw": conv(c, s, False), "channels_last": conv(c, s, True)}
    if kind == "gn" and rest[0] == "silu":
        c, s = int(rest[1][1:]), int(rest[2])
        return {"nchw": gn_silu(c, s, False), "channels_last": gn_silu(c, s, True)}
    if kind == "resblock":
        c, s = int(rest[0][1:]), int(rest[1])
        return {"nchw": resblock(c, s, False), "channels_last": resblock(c, s, True)}
    if kind == "attention":
        t = int(rest[0])
        return {"sdpa": attention(t, "sdpa"), "manual": attention(t, "manual")}
    raise KeyError(op)

cache = {}
print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads()}), flush=True)
for line in sys.stdin:
    op, reps = line.split()
    with torch.inference_mode():
        if op not in cache:
            try:
                cache[op] = variants(op)
            except ImportError as error:
                print(json.dumps({"ms": {}, "error": f"{error}: pip install guided-diffusion-sdk in the torch venv"}), flush=True)
                continue
            for f in cache[op].values():
                f(); f()
        out = {}
        for name, f in cache[op].items():
            ts = []
            for _ in range(int(reps)):
                t0 = time.perf_counter(); f(); ts.append((time.perf_counter() - t0) * 1000)
            out[name] = ts
    import resource
    reply = {"ms": out, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if op in flops:
        reply["gflop"] = flops[op]
    print(json.dumps(reply), flush=True)
'''


class Torch:
    def __init__(self, python):
        env = dict(os.environ, OMP_NUM_THREADS=str(THREADS))
        self.proc = subprocess.Popen([python, "-c", TORCH_SIDE, str(THREADS)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, env=env)
        self.info = json.loads(self.proc.stdout.readline())

    def time(self, op, reps):
        """Timings per layout, plus the side's peak RSS and (for whole networks) FlopCounterMode's GFLOP."""
        self.proc.stdin.write(f"{op} {reps}\n")
        self.proc.stdin.flush()
        reply = json.loads(self.proc.stdout.readline())
        self.last = reply
        return reply["ms"]

    def close(self):
        self.proc.stdin.close()
        self.proc.wait()


def find_torch_python(explicit):
    for candidate in [explicit, os.environ.get("TORCH_PYTHON"), "/work/venv/bin/python", "venv/bin/python", sys.executable]:
        if not candidate or not os.path.exists(candidate):
            continue
        ok = subprocess.run([candidate, "-c", "import torch"], capture_output=True).returncode == 0
        if ok:
            return candidate
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--engine", default=".build/release/engine-bench")
    ap.add_argument("--python", help="a Python with torch (default: $TORCH_PYTHON, /work/venv, ./venv, this one)")
    ap.add_argument("--pairs", type=int, default=11)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--ops", help="comma-separated subset")
    ap.add_argument("--resshift", help="a ResShift checkout (official code) for the resshift_* / vq_f4_* rows; without it they are skipped")
    ap.add_argument("--diffir", help="a DiffIR checkout (official code) for the diffir_* rows; without it they are skipped")
    ap.add_argument("--rddm", help="an RDDM checkout (official code; the repository or its restoration experiment folder) for the rddm_* rows; without it they are skipped")
    ap.add_argument("--ldm", help="a CompVis/latent-diffusion checkout (official code) for the ldm_* rows; without it they are skipped")
    ap.add_argument("--markdown", help="write the table to this file")
    ap.add_argument("--big-pairs", type=int, default=5, help="pairs for the full ADM-256 network (1 run per side each)")
    ap.add_argument("--pause", type=float, default=0.05, help="seconds between sides (lets spinning threads sleep)")
    args = ap.parse_args()

    engine = Engine(args.engine)
    info = engine.ask("info")
    ops = args.ops.split(",") if args.ops else engine.ask("list")["ops"]
    os.environ["BENCH_REPO"] = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
    # Rows that need an official checkout: (flag, environment variable the PyTorch side reads, row prefixes, what it is).
    checkouts = [("resshift", "RESSHIFT_DIR", ("resshift_", "vq_f4_"), "a ResShift checkout"),
                 ("diffir", "DIFFIR_DIR", ("diffir_",), "a DiffIR checkout"),
                 ("rddm", "RDDM_DIR", ("rddm_",), "an RDDM checkout"),
                 ("ldm", "LDM_DIR", ("ldm_",), "a CompVis/latent-diffusion checkout")]
    for flag, variable, prefixes, what in checkouts:
        if getattr(args, flag):
            os.environ[variable] = os.path.abspath(getattr(args, flag))
            continue
        skipped = [op for op in ops if op.startswith(prefixes)]
        if skipped:
            print(f"skipping {', '.join(skipped)}: pass --{flag} DIR ({what}) to time them", file=sys.stderr)
        ops = [op for op in ops if op not in skipped]
    python = find_torch_python(args.python)
    torch_side = Torch(python) if python else None
    if torch_side is None:
        print("PyTorch not found: install it in a virtual environment outside the repository, e.g.\n"
              "  python3 -m venv /work/venv && /work/venv/bin/pip install torch numpy\n"
              "then rerun (or pass --python PATH). Printing the engine's times only.", file=sys.stderr)

    cpu = cpu_model()
    print(f"CPU: {cpu}; {THREADS} threads; oneDNN {info['onednn']}"
          + (f"; PyTorch {torch_side.info['torch']}" if torch_side else ""), file=sys.stderr)
    peaks = [engine.ask("peak 1.0")["gflops"]]
    rows = []
    for op in ops:
        ours, theirs, ratios, best_variant = [], [], [], {}
        big = op.startswith(("unet_adm256", "resshift_", "vq_f4_", "diffir_", "rddm_", "ldm_", "kl_f8_"))
        pairs, reps = (min(args.pairs, args.big_pairs), 1) if big else (args.pairs, args.reps)
        rss = {}
        for pair in range(pairs):
            answer = engine.ask(f"time {op} {reps}")
            rss["ours"] = answer.get("peak_rss_mb")
            ms = statistics.median(answer["ms"])
            ours.append(ms)
            if torch_side:
                time.sleep(args.pause)
                t = {k: statistics.median(v) for k, v in torch_side.time(op, reps).items()}
                if not t:
                    print(f"{op}: PyTorch side skipped ({torch_side.last.get('error')})", file=sys.stderr)
                    break
                rss["torch"] = torch_side.last.get("peak_rss_mb")
                if torch_side.last.get("gflop"):
                    info["gflop"][op] = torch_side.last["gflop"]
                name = min(t, key=t.get)
                best_variant[name] = best_variant.get(name, 0) + 1
                theirs.append(t)
                ratios.append(ms / t[name])
                time.sleep(args.pause)
        row = {"op": op, "ms": statistics.median(ours), "gflop": info["gflop"][op], "kernel": info["kernels"][op],
               "pairs": pairs, "reps": reps, "rss": rss}
        if torch_side and theirs:
            for variant in theirs[0]:
                row["torch_" + variant] = statistics.median(t[variant] for t in theirs)
            row["ratio"] = statistics.median(ratios)
            row["torch_best"] = max(best_variant, key=best_variant.get)
        rows.append(row)
        print(format_row(row, peaks[0]), file=sys.stderr)
    peaks.append(engine.ask("peak 1.0")["gflops"])
    engine.close()
    if torch_side:
        torch_side.close()
    table = render(rows, peaks, cpu, info, torch_side.info if torch_side else None, args)
    print(table)
    if args.markdown:
        os.makedirs(os.path.dirname(args.markdown) or ".", exist_ok=True)
        with open(args.markdown, "w") as f:
            f.write(table)


def format_row(row, peak):
    gf = row["gflop"] / row["ms"] * 1000 if row["gflop"] else 0
    text = f"{row['op']:<20} ours {row['ms']:8.3f} ms {gf:7.1f} GFLOP/s ({100 * gf / peak:4.0f} % of peak)"
    if "ratio" in row:
        text += f"  ratio {row['ratio']:.3f} vs torch {row['torch_best']}"
    return text


def render(rows, peaks, cpu, info, torch_info, args):
    peak = max(peaks)
    lines = [
        f"Date: {datetime.date.today().isoformat()}. CPU: {cpu}. Threads: {THREADS}. oneDNN {info['onednn']}"
        + (f", PyTorch {torch_info['torch']} (CPU, inference mode)" if torch_info else " (PyTorch not installed)") + ".",
        f"FMA peak measured in the same run: {peaks[0]:.0f} GFLOP/s before, {peaks[1]:.0f} after (% of peak uses {peak:.0f}).",
        f"Each figure is the median over {args.pairs} interleaved pairs (each side the median of {args.reps} runs after a warm-up);",
        "ratio = ours / PyTorch's best layout, median of the per-pair ratios (< 1: we are faster).",
        "Whole networks (unet_*): GFLOP from PyTorch's FlopCounterMode; the full ADM-256 row uses fewer pairs of one run each;",
        "peak RSS is each process's high-water mark after the row (both processes run every row in order).",
        "",
        "| op | GFLOP | ours ms | ours GFLOP/s | % of peak | PyTorch NCHW / SDPA ms | PyTorch channels_last / manual ms | ratio | peak RSS MiB ours / torch | our kernel |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        gf = r["gflop"] / r["ms"] * 1000 if r["gflop"] else float("nan")
        a = r.get("torch_nchw", r.get("torch_sdpa"))
        b = r.get("torch_channels_last", r.get("torch_manual"))
        fmt = lambda v: "–" if v is None else f"{v:.3f}"
        gflop = f"{r['gflop']:.3f}" if r["gflop"] else "–"
        gfs = "–" if math.isnan(gf) else f"{gf:.0f}"
        pct = "–" if math.isnan(gf) else f"{100 * gf / peak:.0f} %"
        ratio = f"**{r['ratio']:.3f}**" if "ratio" in r else "–"
        rss = r.get("rss", {})
        mem = " / ".join("–" if rss.get(k) is None else f"{rss[k]:.0f}" for k in ("ours", "torch"))
        if r["op"].startswith("unet_"):
            ratio += f" ({r['pairs']}×{r['reps']})"
        lines.append(f"| {r['op']} | {gflop} | {r['ms']:.3f} | {gfs} | {pct} | {fmt(a)} | {fmt(b)} | {ratio} | {mem} | {r['kernel']} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
