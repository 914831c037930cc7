#!/usr/bin/env python3
"""USDR ablation (`make eval-usdr`): HiR on and off, and naive tiles, for colorization and inpainting at
128² (2×2 … 3×3 windows of the bundled 64² prior), on scikit-image's CC0 photos (not trained on).
Reports PSNR / SSIM (whole image for colorization, hole PSNR for inpainting), ‖A x̂ − y‖, the seam ratio
(mean |∇| across the rows and columns where a window's kept part ends, over the mean elsewhere) and seconds per
window. Python is used only to make the crops and masks and to read the reports."""
import argparse
import json
import os
import sys
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from eval_prior import cpu_description, write_section  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
PHOTOS = ["astronaut", "chelsea", "coffee", "rocket"]
SIDE, SEED = 128, 20261130


def seam_ratio(img, borders):
    """Mean |∇| across the given rows and columns (between index b − 1 and b) over the mean |∇| elsewhere."""
    dx = np.abs(np.diff(img, axis=1))  # dx[:, c - 1] is the step into column c
    dy = np.abs(np.diff(img, axis=0))
    at_x = np.zeros(dx.shape[1], bool)
    at_y = np.zeros(dy.shape[0], bool)
    for b in borders:
        at_x[b - 1] = True
        at_y[b - 1] = True
    at = np.concatenate([dx[:, at_x].ravel(), dy[at_y].ravel()])
    away = np.concatenate([dx[:, ~at_x].ravel(), dy[~at_y].ravel()])
    return at.mean() / away.mean()


def main():
    import cv2
    from skimage import data
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--binary", default=str(REPO / ".build" / "release" / "restore"))
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--markdown", default=str(REPO / "Benchmarks" / "QUALITY.md"))
    args = p.parse_args()
    rng = np.random.default_rng(SEED)
    work = Path(tempfile.mkdtemp(prefix="usdr-ablation-"))
    rows = {}
    seconds, evaluations = 0.0, 0
    for name in PHOTOS:
        img = getattr(data, name)()
        h, w = img.shape[:2]
        small = cv2.resize(img, (round(w * 0.5), round(h * 0.5)), interpolation=cv2.INTER_AREA)
        y0, x0 = int(rng.integers(0, small.shape[0] - SIDE + 1)), int(rng.integers(0, small.shape[1] - SIDE + 1))
        crop = small[y0:y0 + SIDE, x0:x0 + SIDE]
        src = work / f"{name}.png"
        cv2.imwrite(str(src), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))
        mask = np.zeros((SIDE, SIDE), np.uint8)
        for _ in range(6):  # thick strokes and a box: holes that span windows
            cv2.line(mask, tuple(int(v) for v in rng.integers(0, SIDE, 2)), tuple(int(v) for v in rng.integers(0, SIDE, 2)), 255, 5)
        mask[40:72, 52:84] = 255
        mpath = work / f"{name}-mask.png"
        cv2.imwrite(str(mpath), mask)
        hole = mask > 0
        for task, spec in (("colorization", "gray"), ("inpainting", f"mask:{mpath}")):
            for mode, extra in (("MSR + HiR", []), ("MSR + HiR, hard overlap (hq_demo)", ["--margin", "0", "--feather", "0"]),
                                ("MSR, no HiR", ["--no-hir"]), ("naive tiles", ["--tiling", "naive"])):
                out = work / f"{name}-{task}-{mode.replace(' ', '_').replace(',', '').replace('+', 'p')}.png"
                t = time.time()
                r = subprocess.run([args.binary, "ddnm", "--simulate", "-i", str(src), "-o", str(out), "--degradation", spec,
                                    "--steps", str(args.steps), "--json", "--quiet", "--overwrite"] + extra, capture_output=True, text=True)
                if r.returncode != 0:
                    raise SystemExit(r.stderr)
                seconds += time.time() - t
                rep = json.loads(r.stdout)
                evaluations += rep["network_evaluations"]
                res = cv2.cvtColor(cv2.imread(str(out)), cv2.COLOR_BGR2RGB).astype(np.float64) / 255
                ref = crop.astype(np.float64) / 255
                if task == "inpainting":
                    psnr = 10 * np.log10(1 / np.mean((res[hole] - ref[hole]) ** 2))
                else:
                    psnr = rep["psnr_db"]
                # Where a seam could be: the end of each window's kept part (windows at 0, 32, 64 of 64 px, less
                # the margin), or where a naive tile starts (64).
                borders = [64] if mode == "naive tiles" else [64 - rep["seam_margin"], 96 - rep["seam_margin"]]
                seam = seam_ratio(res, borders)
                rows.setdefault((task, mode), []).append((psnr, rep.get("ssim", float("nan")), rep["consistency_rms"], seam, rep["windows"], rep["hir"]))
        print(name, {k: round(v[-1][0], 2) for k, v in rows.items()}, flush=True)
    cpu = cpu_description()
    md = ["## USDR ablation: HiR and mask-shift at 128² (`make eval-usdr`)", "",
          f"Tools/eval/usdr_ablation.py: {len(PHOTOS)} crops of 128² ({', '.join(PHOTOS)}, scikit-image, downscaled by 1/2), "
          f"bundled 64² prior, DDNM {args.steps} steps, seed 1234; inpainting with thick strokes and a 32² box. "
          f"{evaluations} network evaluations in {seconds:.0f} s ({seconds / evaluations:.3f} s each, "
          f"{seconds / evaluations * (1 + 9) * args.steps / (SIDE * SIDE / 1e6):.0f} s per output megapixel at {args.steps} steps incl. the HiR pass) on {cpu}, {os.cpu_count()} threads.",
          "", "| task | tiling | PSNR (colorization: image; inpainting: hole) | SSIM | ‖A x̂ − y‖ RMS | seam ratio | windows | HiR |",
          "|---|---|---|---|---|---|---|---|"]
    for (task, mode), v in rows.items():
        a = np.array([r[:4] for r in v], dtype=float)
        md.append(f"| {task} | {mode} | {a[:, 0].mean():.2f} | {np.nanmean(a[:, 1]):.4f} | {a[:, 2].mean():.4f} | {a[:, 3].mean():.3f} | {v[0][4]} | {v[0][5]} |")
    md.append("")
    write_section(args.markdown, "usdr_ablation", md)
    print("\n".join(md))


if __name__ == "__main__":
    main()
