#!/usr/bin/env python3
"""Quality of our own ResShift ×4 model against bicubic and against DDNM ×4 on our prior (`make eval-resshift`).

Photos: scikit-image's bundled CC0 / public-domain photos (astronaut, chelsea, coffee, rocket), downscaled by 1/2
(antialiased) and cut into 3 seeded 128² crops each: 12 crops, none in ../shared/data/train, none used to choose
any setting (training validation uses Tools/train/holdout.txt).

Degradations (LR 32², every method gets the same 8-bit LR PNG):
- bicubic: the project's `bicubic:4` operator (written by `restore ddnm --simulate --save-observation`), the
  operator DDNM assumes, so DDNM ×4 (100 steps, η 1.0 as `make eval`, seed 1234, our bundled 64² prior with USDR
  tiling) runs on exactly its model; ResShift (`restore resshift`, 4 steps, seed 12345) and bicubic upsampling
  (OpenCV INTER_CUBIC) of the same LR.
- ResShift is also run with `--samples 4` (the mean of 4 samples, seeds 12345…12348: an estimate of the posterior
  mean, which PSNR rewards).
- real: a fixed realistic chain (Gaussian blur σ 1.2 on 13², colour noise σ 8/255 seeded, JPEG q 70, ×¼ by area,
  JPEG q 85): ResShift against bicubic (DDNM would be mis-specified here).

PSNR on RGB [0, 255] over the whole crop, SSIM as scikit-image (channel_axis, data_range 1). Writes the section
`eval_resshift` of Benchmarks/QUALITY.md, Benchmarks/quality-resshift.csv, and prints the table.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from eval_prior import cpu_description, crops, psnr, read, ssim, write, write_section  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
CROP, SEED = 128, 20261129  # the crops: eval_prior.crops (same photos, scale 1/2, 3 per photo, same seed)


def real_degradation(hr, seed):
    """The fixed realistic chain: blur, colour noise, JPEG, ×¼ area, JPEG."""
    import cv2
    rng = np.random.default_rng(seed)
    x = cv2.GaussianBlur(hr.astype(np.float32) / 255, (13, 13), 1.2, borderType=cv2.BORDER_REFLECT)
    x = np.clip(x + rng.normal(0, 8 / 255, x.shape).astype(np.float32), 0, 1)

    def jpeg(img, q):
        ok, enc = cv2.imencode(".jpg", cv2.cvtColor((img * 255).round().astype(np.uint8), cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, q])
        return cv2.cvtColor(cv2.imdecode(enc, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB).astype(np.float32) / 255

    x = jpeg(x, 70)
    x = cv2.resize(x, (hr.shape[1] // 4, hr.shape[0] // 4), interpolation=cv2.INTER_AREA)
    return (jpeg(x, 85) * 255).round().astype(np.uint8)


def run(cmd):
    t = time.time()
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"restore failed ({' '.join(map(str, cmd))}): {r.stderr.strip()}")
    return time.time() - t


def main():
    import cv2
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--binary", default=str(REPO / ".build" / "release" / "restore"))
    p.add_argument("--model", default="", help="ResShift model (default: the bundled one)")
    p.add_argument("--ddnm-steps", type=int, default=100)
    p.add_argument("--no-ddnm", action="store_true", help="skip DDNM (about 1 min per crop)")
    p.add_argument("--limit", type=int, default=0)
    p.add_argument("--markdown", default=str(REPO / "Benchmarks" / "QUALITY.md"))
    p.add_argument("--csv", default=str(REPO / "Benchmarks" / "quality-resshift.csv"))
    p.add_argument("--keep", help="keep the images in this folder")
    args = p.parse_args()

    items = crops(size=CROP)[: args.limit or None]
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="eval-resshift-"))
    work.mkdir(parents=True, exist_ok=True)
    model = ["--model", args.model] if args.model else []
    rows, seconds = [], {"resshift": 0.0, "ddnm": 0.0}
    for i, (name, hr) in enumerate(items):
        write(work / f"{name}-hr.png", hr)
        row = {"crop": name}
        # bicubic:4 — the LR comes from the project's operator (saved by DDNM's --simulate run).
        lr_path = work / f"{name}-bicubic-lr.png"
        ddnm_out = work / f"{name}-bicubic-ddnm.png"
        ddnm_cmd = [args.binary, "ddnm", "--simulate", "-i", work / f"{name}-hr.png", "-o", ddnm_out, "--degradation", "bicubic:4",
                    "--eta", "1.0", "--steps", args.ddnm_steps, "--save-observation", lr_path, "--quiet", "--overwrite"]
        if args.no_ddnm:
            ddnm_cmd[ddnm_cmd.index("--steps") + 1] = 1
        seconds["ddnm"] += run(ddnm_cmd)
        for task, lr in [("bicubic", read(lr_path)), ("real", real_degradation(hr, SEED + i))]:
            lr_file = work / f"{name}-{task}-lr.png"
            write(lr_file, lr)
            sr_file = work / f"{name}-{task}-resshift.png"
            seconds["resshift"] += run([args.binary, "resshift", "-i", lr_file, "-o", sr_file, "--quiet", "--overwrite"] + model)
            mean_file = work / f"{name}-{task}-resshift-mean4.png"
            run([args.binary, "resshift", "-i", lr_file, "-o", mean_file, "--samples", "4", "--quiet", "--overwrite"] + model)
            sr = read(sr_file)
            bic = cv2.resize(lr, (CROP, CROP), interpolation=cv2.INTER_CUBIC)
            methods = [("resshift", sr), ("resshift4", read(mean_file)), ("bicubic", bic)]
            for method, out in methods + ([("ddnm", read(ddnm_out))] if task == "bicubic" and not args.no_ddnm else []):
                row[f"{task}_{method}_psnr"] = psnr(out, hr)
                row[f"{task}_{method}_ssim"] = ssim(out.astype(np.float64) / 255, hr.astype(np.float64) / 255)
        rows.append(row)
        print(f"{name}: " + "  ".join(f"{k} {v:.3f}" for k, v in row.items() if k != "crop"), flush=True)

    keys = [k for k in rows[0] if k != "crop"]
    mean = {k: float(np.mean([r[k] for r in rows])) for k in keys}
    wins = {task: sum(r[f"{task}_resshift_psnr"] > r[f"{task}_bicubic_psnr"] for r in rows) for task in ["bicubic", "real"]}
    with open(args.csv, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["crop"] + keys)
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in r.items()})

    def cell(task, method):
        k = f"{task}_{method}"
        return f"{mean[k + '_psnr']:.2f} / {mean[k + '_ssim']:.4f}" if k + "_psnr" in mean else "–"

    import json
    model_file = Path(args.model) if args.model else REPO / "Models" / "resshift-x4-own.safetensors"
    with open(model_file, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        meta = json.loads(f.read(n)).get("__metadata__", {})
    lines = [
        "## ResShift ×4: our own model vs bicubic and DDNM ×4 (`make eval-resshift`)",
        "",
        "| degradation (LR 32² → 128²) | ResShift (ours, 4 steps) | ResShift, mean of 4 | bicubic | DDNM ×4, our prior | ResShift > bicubic |",
        "|---|---|---|---|---|---|",
        f"| bicubic:4 (DDNM's operator) | {cell('bicubic', 'resshift')} | {cell('bicubic', 'resshift4')} | {cell('bicubic', 'bicubic')} | {cell('bicubic', 'ddnm')} | {wins['bicubic']}/{len(rows)} |",
        f"| real (blur σ 1.2, noise σ 8, JPEG 70, ×¼ area, JPEG 85) | {cell('real', 'resshift')} | {cell('real', 'resshift4')} | {cell('real', 'bicubic')} | – | {wins['real']}/{len(rows)} |",
        "",
        f"PSNR (dB, RGB) / SSIM, mean over {len(rows)} crops of 128² from scikit-image's CC0 photos (never trained on). "
        f"Model {model_file.name} (step {meta.get('step', '?')}). DDNM: {args.ddnm_steps} steps, η 1.0, bundled 64² prior tiled (USDR). "
        f"Time in `restore`: ResShift {seconds['resshift']:.0f} s for {2 * len(rows)} images, DDNM {seconds['ddnm']:.0f} s for {len(rows)}; "
        f"{cpu_description()}, {os.cpu_count()} threads. Per crop: Benchmarks/quality-resshift.csv.",
        "",
    ]
    write_section(args.markdown, "eval_resshift", lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
