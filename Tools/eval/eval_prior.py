#!/usr/bin/env python3
"""Quality of DDNM on our own prior, on photos that were never trained on (`make eval`).

Photos: scikit-image's bundled CC0 / public-domain photos (astronaut, chelsea, coffee, rocket; licences in
their `skimage.data` docstrings). Each is downscaled by 1/2 (antialiased) and cut into 3 seeded 64² crops:
12 crops. None of them is in ../shared/data/train, and none was used to choose any setting.

Tasks, each restored by the Swift binary (`restore ddnm --simulate`, 100 steps, η 1.0 — chosen on the hold-out photos —, seed 1234):
- SR ×4 by average pooling: PSNR / SSIM of DDNM vs bicubic upsampling of y (OpenCV INTER_CUBIC) and vs A†y
  (each pixel repeated 4×4).
- Inpainting with a centre box (24² hole) and with random strokes (3 px polylines, about 15 % of the
  pixels): PSNR on the hole only, vs OpenCV's Telea inpainting (radius 3). For the box also the mean of 4
  DDNM samples (seeds 1234…1237): one sharp sample can lose to a smooth fill on PSNR, the posterior mean
  should not.

Writes Benchmarks/QUALITY.md (the table), Benchmarks/quality-prior.csv (per crop) and prints the table.
Python (numpy, OpenCV, scikit-image) is used here only, for the baselines and the metrics.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
PHOTOS = ["astronaut", "chelsea", "coffee", "rocket"]
CROP, CROPS_PER_PHOTO, SCALE, SEED = 64, 3, 0.5, 20261129
BOX = 24


def holdout_photos():
    """The validation photos of Tools/train/holdout.txt (for tuning; never for reported quality)."""
    import cv2
    folder = REPO.parent / "shared" / "data" / "train"
    names = [l.strip() for l in (REPO / "Tools" / "train" / "holdout.txt").read_text().splitlines()
             if l.strip() and not l.startswith("#")]
    for name in names[:6]:
        img = cv2.imread(str(folder / name), cv2.IMREAD_COLOR)
        if img is not None:
            yield Path(name).stem, cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def crops(holdout=False, size=CROP):
    """Seeded size² crops of the photos downscaled by SCALE, CROPS_PER_PHOTO per photo (eval_resshift uses 128²)."""
    import cv2
    from skimage import data
    rng = np.random.default_rng(SEED)
    out = []
    sources = holdout_photos() if holdout else ((name, getattr(data, name)()) for name in PHOTOS)
    for name, img in sources:
        h, w = img.shape[:2]
        small = cv2.resize(img, (round(w * SCALE), round(h * SCALE)), interpolation=cv2.INTER_AREA)
        for k in range(CROPS_PER_PHOTO):
            y = int(rng.integers(0, small.shape[0] - size + 1))
            x = int(rng.integers(0, small.shape[1] - size + 1))
            out.append((f"{name}-{k}", small[y:y + size, x:x + size].copy()))
    return out


def stroke_mask(rng) -> np.ndarray:
    """White (255) = hole: random 3 px polylines until about 15 % of the pixels are covered."""
    import cv2
    m = np.zeros((CROP, CROP), np.uint8)
    while (m > 0).mean() < 0.15:
        pts = [(int(rng.integers(0, CROP)), int(rng.integers(0, CROP)))]
        for _ in range(int(rng.integers(2, 5))):
            x, y = pts[-1]
            pts.append((int(np.clip(x + rng.integers(-20, 21), 0, CROP - 1)), int(np.clip(y + rng.integers(-20, 21), 0, CROP - 1))))
        for a, b in zip(pts, pts[1:]):
            cv2.line(m, a, b, 255, 3)
    return m


def box_mask() -> np.ndarray:
    m = np.zeros((CROP, CROP), np.uint8)
    o = (CROP - BOX) // 2
    m[o:o + BOX, o:o + BOX] = 255
    return m


def write_section(markdown, marker, lines):
    """Replaces (or appends) this evaluation's section of the shared table file, between HTML-comment
    markers, so every evaluation keeps its own section in Benchmarks/QUALITY.md."""
    start, end = f"<!-- {marker}:start -->", f"<!-- {marker}:end -->"
    section = start + "\n" + "\n".join(lines) + end
    path = Path(markdown)
    text = path.read_text() if path.exists() else "# Restoration quality\n\n"
    if start in text and end in text:
        text = text[:text.index(start)] + section + text[text.index(end) + len(end):]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text)


def psnr(a, b, mask=None):
    d = (a.astype(np.float64) - b.astype(np.float64)) / 255.0 if a.dtype == np.uint8 else a - b
    if mask is not None:
        d = d[mask]
    mse = float(np.mean(d ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(1.0 / mse)


def ssim(a, b):
    from skimage.metrics import structural_similarity
    return float(structural_similarity(a, b, channel_axis=2, data_range=1.0))


def read(path):
    import cv2
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def write(path, rgb):
    import cv2
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


def ddnm(binary, model, image, degradation, out, steps, samples=1, extra=()):  # noqa: PLR0913
    cmd = [str(binary), "ddnm", "--simulate", "-i", str(image), "-o", str(out), "--degradation", degradation,
           "--steps", str(steps), "--quiet", "--overwrite", "--json"]
    if model:
        cmd += ["--model", str(model)]
    if samples > 1:
        cmd += ["--samples", str(samples)]
    cmd += list(extra)
    t = time.time()
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"restore failed ({' '.join(cmd)}): {r.stderr.strip()}")
    reports = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    return reports, time.time() - t


def cpu_description():
    """The CPU as the benchmark sections name it: model name, family and model (from /proc/cpuinfo)."""
    cpu = platform.processor() or "unknown CPU"
    try:
        info = dict(l.split(":", 1) for l in open("/proc/cpuinfo").read().split("\n\n")[0].splitlines() if ":" in l)
        info = {k.strip(): v.strip() for k, v in info.items()}
        return f"{info.get('model name', cpu)} (family {info.get('cpu family', '?')} model {info.get('model', '?')})"
    except OSError:
        return cpu


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--binary", default=str(REPO / ".build" / "release" / "restore"))
    p.add_argument("--model", default="", help="default: the bundled prior (restore's own default)")
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--markdown", default=str(REPO / "Benchmarks" / "QUALITY.md"))
    p.add_argument("--csv", default=str(REPO / "Benchmarks" / "quality-prior.csv"))
    p.add_argument("--keep", default="", help="keep the images in this folder")
    p.add_argument("--limit", type=int, default=0, help="only the first N crops (smoke test)")
    p.add_argument("--eta", type=float, default=1.0,
                   help="DDNM η; 1.0 was chosen on the hold-out photos (--holdout --sr-only: η 0 → 8.69 dB, the deterministic "
                        "path diverges with this prior; 0.5 → 22.50; 1.0 → 24.66 vs bicubic 24.52); restore's own default is the official 0.85")
    p.add_argument("--holdout", action="store_true",
                   help="tune on the training hold-out photos (Tools/train/holdout.txt) instead; writes nothing to Benchmarks/")
    p.add_argument("--sr-only", action="store_true", help="with --holdout: only the ×4 SR task (quick η/step tuning)")
    p.add_argument("--clip-x0", action="store_true", help="pass --clip-x0 to restore (x0 clamped to [-1, 1] at every step)")
    args = p.parse_args()
    import cv2

    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="eval-prior-"))
    work.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED + 1)
    rows = []
    started = time.time()
    items = crops(args.holdout)[: args.limit or None]
    extra = ["--eta", str(args.eta)] + (["--clip-x0"] if args.clip_x0 else [])
    seconds = 0.0
    for i, (name, rgb) in enumerate(items):
        clean_path = work / f"{name}.png"
        write(clean_path, rgb)
        x = rgb.astype(np.float64) / 255.0
        row = {"crop": name}
        # SR ×4 (average pooling)
        y = x.reshape(CROP // 4, 4, CROP // 4, 4, 3).mean(axis=(1, 3))
        bicubic = np.clip(cv2.resize(y.astype(np.float32), (CROP, CROP), interpolation=cv2.INTER_CUBIC), 0, 1)
        nearest = np.repeat(np.repeat(y, 4, axis=0), 4, axis=1)
        rep, s = ddnm(args.binary, args.model, clean_path, "pool:4", work / f"{name}-sr.png", args.steps, extra=extra)
        seconds += s
        sr = read(work / f"{name}-sr.png").astype(np.float64) / 255.0
        row.update(sr_ddnm_psnr=psnr(sr, x), sr_ddnm_ssim=ssim(sr, x), sr_bicubic_psnr=psnr(bicubic, x),
                   sr_bicubic_ssim=ssim(bicubic, x), sr_pinv_psnr=psnr(nearest, x), sr_pinv_ssim=ssim(nearest, x),
                   sr_consistency=rep[0]["consistency_rms"])
        if args.sr_only and args.holdout:
            rows.append(row)
            print(f"[{i + 1}/{len(items)}] {name}: SR {row['sr_ddnm_psnr']:.2f} (bicubic {row['sr_bicubic_psnr']:.2f})", flush=True)
            continue
        # Inpainting: strokes, box
        for task, mask in (("strokes", stroke_mask(rng)), ("box", box_mask())):
            mask_path = work / f"{name}-{task}-mask.png"
            cv2.imwrite(str(mask_path), mask)
            hole = mask > 0
            telea = cv2.inpaint(rgb, mask, 3, cv2.INPAINT_TELEA)
            n = 4 if task == "box" else 1
            out = work / f"{name}-{task}.png"
            _, s = ddnm(args.binary, args.model, clean_path, f"mask:{mask_path}", out, args.steps, samples=n, extra=extra)
            seconds += s
            outs = [out] if n == 1 else [out.with_name(f"{out.stem}-{k}.png") for k in range(1, n + 1)]
            results = [read(o).astype(np.float64) / 255.0 for o in outs]
            row[f"{task}_hole_fraction"] = float(hole.mean())
            row[f"{task}_ddnm_psnr"] = float(np.mean([psnr(r, x, hole) for r in results]))
            if n > 1:
                mean = np.mean(results, axis=0)
                row[f"{task}_ddnm_mean{n}_psnr"] = psnr(mean, x, hole)
                write(work / f"{name}-{task}-mean.png", np.round(mean * 255).astype(np.uint8))
            row[f"{task}_telea_psnr"] = psnr(telea.astype(np.float64) / 255.0, x, hole)
        rows.append(row)
        done = i + 1
        eta = (time.time() - started) / done * (len(items) - done)
        print(f"[{done}/{len(items)}] {name}: SR {row['sr_ddnm_psnr']:.2f} (bicubic {row['sr_bicubic_psnr']:.2f}) | "
              f"strokes {row['strokes_ddnm_psnr']:.2f} (Telea {row['strokes_telea_psnr']:.2f}) | box mean4 "
              f"{row['box_ddnm_mean4_psnr']:.2f} single {row['box_ddnm_psnr']:.2f} (Telea {row['box_telea_psnr']:.2f})  ETA {eta:.0f} s",
              flush=True)

    keys = [k for k in rows[0] if k != "crop"]
    mean = {k: float(np.mean([r[k] for r in rows])) for k in keys}
    if args.holdout:
        print(json.dumps({"holdout": True, "eta": args.eta, "steps": args.steps, "crops": len(rows),
                          **{k: round(v, 4) for k, v in mean.items()}}))
        return
    wins = {
        "sr": sum(r["sr_ddnm_psnr"] > r["sr_bicubic_psnr"] for r in rows),
        "strokes": sum(r["strokes_ddnm_psnr"] > r["strokes_telea_psnr"] for r in rows),
        "box4": sum(r["box_ddnm_mean4_psnr"] > r["box_telea_psnr"] for r in rows),
        "box1": sum(r["box_ddnm_psnr"] > r["box_telea_psnr"] for r in rows),
    }
    with open(args.csv, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["crop"] + keys)
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in r.items()})
    model_meta = "bundled Models/adm64-prior.safetensors" if not args.model else args.model
    try:
        card = json.loads((REPO / "Models" / "adm64-prior.json").read_text())
        model_meta += f" (step {card['training']['steps']})" if not args.model else ""
    except Exception:
        pass
    cpu = cpu_description()
    n = len(rows)
    def b(value, other, fmt="{:.2f}"):
        """Bold when DDNM's figure is the better one."""
        text = fmt.format(value)
        return f"**{text}**" if value > other else text

    md = [
        "## DDNM on our own prior (`make eval`)",
        "",
        f"`make eval` (Tools/eval/eval_prior.py): {n} crops of 64² from scikit-image's CC0 / public-domain photos "
        f"({', '.join(PHOTOS)}; downscaled by 1/2, 3 seeded crops each), never trained on and never used to choose "
        f"a setting. Prior: {model_meta}. DDNM: {args.steps} steps, η {args.eta} (chosen on the training hold-out photos; restore's default is the official 0.85), seed 1234, SVD path. "
        f"PSNR in dB on the [0, 1] scale; inpainting PSNR on the hole only. Wall time {time.time() - started:.0f} s "
        f"({seconds:.0f} s in `restore`) on {cpu}, {os.cpu_count()} threads.",
        "",
        "| task | DDNM (ours) | baseline | other | DDNM wins |",
        "|---|---|---|---|---|",
        f"| SR ×4 (avg-pool), PSNR / SSIM | {b(mean['sr_ddnm_psnr'], mean['sr_bicubic_psnr'])} / "
        f"{b(mean['sr_ddnm_ssim'], mean['sr_bicubic_ssim'], '{:.4f}')} | bicubic "
        f"{mean['sr_bicubic_psnr']:.2f} / {mean['sr_bicubic_ssim']:.4f} | A†y {mean['sr_pinv_psnr']:.2f} / "
        f"{mean['sr_pinv_ssim']:.4f} | {wins['sr']}/{n} vs bicubic |",
        f"| inpainting, random strokes ({100 * mean['strokes_hole_fraction']:.0f} % hole), hole PSNR | "
        f"{b(mean['strokes_ddnm_psnr'], mean['strokes_telea_psnr'])} | Telea {mean['strokes_telea_psnr']:.2f} | | {wins['strokes']}/{n} |",
        f"| inpainting, centre box {BOX}² ({100 * mean['box_hole_fraction']:.0f} %), hole PSNR, mean of 4 samples | "
        f"{b(mean['box_ddnm_mean4_psnr'], mean['box_telea_psnr'])} | Telea {mean['box_telea_psnr']:.2f} | one sample (avg of 4) "
        f"{mean['box_ddnm_psnr']:.2f} | {wins['box4']}/{n} (one sample: {wins['box1']}/{n}) |",
        "",
        f"DDNM's SR output satisfies A x̂ = y: mean ‖A x̂ − y‖ RMS {mean['sr_consistency']:.4f} (8-bit output). "
        "Per-crop figures: `Benchmarks/quality-prior.csv`.",
        "",
    ]
    write_section(args.markdown, "eval_prior", md)
    print("\n".join(md))


if __name__ == "__main__":
    main()
