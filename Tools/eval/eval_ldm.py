#!/usr/bin/env python3
"""Quality of our own latent-diffusion ×4 model against bicubic (`make eval-ldm`).

Photos: the 12 seeded 128² crops of scikit-image's CC0 photos that `make eval-resshift` and `make eval-diffir` use (never
trained on, never used to choose a setting). Two LR inputs of 32² per crop, every method getting the same 8-bit PNG:
- bicubic: the project's `bicubic:4` operator (`restore ldm --simulate --save-observation` writes it);
- real: eval_resshift's fixed realistic chain (blur σ 1.2, colour noise σ 8/255, JPEG 70, ×¼ area, JPEG 85).
`restore ldm` (the bundled Models/ldm-x4-own.safetensors unless --model, its own sampling defaults unless
--steps/--eta) against bicubic upsampling (OpenCV INTER_CUBIC): PSNR on RGB and on BT.601 Y ([0, 255], whole crop),
SSIM (RGB, scikit-image). The issue's bar: better than bicubic.

Writes the section `eval_ldm` of Benchmarks/QUALITY.md and Benchmarks/quality-ldm.csv, and prints the table.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from eval_prior import cpu_description, crops, psnr, read, ssim, write, write_section  # noqa: E402
from eval_resshift import real_degradation  # noqa: E402
from eval_diffir import run, y_psnr  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
CROP, SEED = 128, 20261129


def main():
    import cv2
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--binary", default=str(REPO / ".build" / "release" / "restore"))
    p.add_argument("--model", default="", help="LDM model (default: the bundled one)")
    p.add_argument("--steps", type=int, default=0, help="DDIM steps (0: the model's default)")
    p.add_argument("--eta", type=float, default=-1, help="DDIM η (negative: the model's default)")
    p.add_argument("--final-x0", action="store_true", help="restore ldm --final-x0 (the DDIM paper's last step)")
    p.add_argument("--limit", type=int, default=0)
    p.add_argument("--markdown", default=str(REPO / "Benchmarks" / "QUALITY.md"))
    p.add_argument("--csv", default=str(REPO / "Benchmarks" / "quality-ldm.csv"))
    p.add_argument("--keep", help="keep the images in this folder")
    args = p.parse_args()
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="eval-ldm-"))
    work.mkdir(parents=True, exist_ok=True)
    model = (["--model", args.model] if args.model else []) + (["--steps", args.steps] if args.steps else []) \
        + (["--eta", args.eta] if args.eta >= 0 else []) + (["--final-x0"] if args.final_x0 else [])
    rows, seconds = [], 0.0
    for i, (name, hr) in enumerate(crops(size=CROP)[: args.limit or None]):
        hr_file = work / f"{name}-hr.png"
        write(hr_file, hr)
        lr_path = work / f"{name}-bicubic-lr.png"
        run([args.binary, "ldm", "--simulate", "-i", hr_file, "-o", work / f"{name}-sim.png", "--save-observation", lr_path,
             "--quiet", "--overwrite"] + model)
        row = {"crop": name}
        for task, lr in [("bicubic", read(lr_path)), ("real", real_degradation(hr, SEED + i))]:
            lr_file = work / f"{name}-{task}-lr.png"
            write(lr_file, lr)
            out = work / f"{name}-{task}-ldm.png"
            t0 = time.time()
            run([args.binary, "ldm", "-i", lr_file, "-o", out, "--quiet", "--overwrite"] + model)
            seconds += time.time() - t0
            for method, img in [("ldm", read(out)), ("bicubic", cv2.resize(lr, (CROP, CROP), interpolation=cv2.INTER_CUBIC))]:
                row[f"{task}_{method}_psnr"] = psnr(img, hr)
                row[f"{task}_{method}_ypsnr"] = y_psnr(img, hr)
                row[f"{task}_{method}_ssim"] = ssim(img.astype(np.float64) / 255, hr.astype(np.float64) / 255)
        rows.append(row)
        print(f"{name}: " + "  ".join(f"{k} {v:.3f}" for k, v in row.items() if k.endswith("ypsnr")), flush=True)
    keys = [k for k in rows[0] if k != "crop"]
    mean = {k: float(np.mean([r[k] for r in rows])) for k in keys}
    with open(args.csv, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["crop"] + keys)
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in r.items()})
    wins = {t: sum(r[f"{t}_ldm_ypsnr"] > r[f"{t}_bicubic_ypsnr"] for r in rows) for t in ["bicubic", "real"]}

    def cell(task, method):
        k = f"{task}_{method}"
        return f"{mean[k + '_ypsnr']:.2f} / {mean[k + '_psnr']:.2f} / {mean[k + '_ssim']:.4f}"

    model_file = Path(args.model) if args.model else REPO / "Models" / "ldm-x4-own.safetensors"
    with open(model_file, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        meta = json.loads(f.read(n)).get("__metadata__", {})
    sampling = json.loads(meta.get("sampling", "{}"))
    lines = [
        "## LDM ×4: our own model vs bicubic (`make eval-ldm`)",
        "",
        "| degradation (LR 32² → 128²) | LDM (ours) | bicubic | LDM − bicubic, Y-PSNR | LDM > bicubic |",
        "|---|---|---|---|---|",
    ] + [f"| {label} | {cell(t, 'ldm')} | {cell(t, 'bicubic')} | {mean[f'{t}_ldm_ypsnr'] - mean[f'{t}_bicubic_ypsnr']:+.2f} dB | "
         f"{wins[t]}/{len(rows)} |" for t, label in [("bicubic", "bicubic:4"), ("real", "real (blur σ 1.2, noise σ 8, JPEG 70, ×¼ area, JPEG 85)")]] + [
        "",
        f"Y-PSNR / RGB-PSNR (dB) / SSIM, mean over {len(rows)} crops of 128² from scikit-image's CC0 photos (never trained on). "
        f"Model {model_file.resolve().relative_to(REPO) if model_file.resolve().is_relative_to(REPO) else model_file.name} "
        f"(step {meta.get('step', '?')}), DDIM {args.steps or sampling.get('steps', '?')} steps, "
        f"η {args.eta if args.eta >= 0 else sampling.get('eta', '?')}"
        f"{', last step x̂0 (--final-x0, the DDIM paper form)' if args.final_x0 else ', the official last step (ᾱ_prev = ᾱ_0)'}, seed 1234; {seconds:.0f} s in `restore` for {2 * len(rows)} "
        f"images (whole processes); {cpu_description()}, {os.cpu_count()} threads. Per crop: Benchmarks/quality-ldm.csv.",
        "",
    ]
    write_section(args.markdown, "eval_ldm", lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
