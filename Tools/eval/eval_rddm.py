#!/usr/bin/env python3
"""Quality of our RDDM restoration model (`restore rddm`) on photos nobody trained on (`make eval-rddm`).

Photos: the 12 seeded 128² crops of scikit-image's CC0 / public-domain photos that `make eval-diffir` uses
(eval_prior.crops; never trained on, never used to choose a setting). Degradations: `restore rddm --simulate SPEC`
(default noise:25, poisson:20, defocus:2, motion:9:45, jpeg:20, lowlight:0.4:1.5:5), seed 1, with
--save-observation: every method below restores exactly the 8-bit degraded file RDDM saw.

Methods on that file:
- RDDM (ours): the model's own steps unless --steps.
- Classical methods from PyPI:
  noise, Poisson: OpenCV non-local means (fastNlMeansDenoisingColored, template 7, search 21), h = hColor =
      NLM_C·σ, σ the noise level on the 0–255 scale (Poisson: the equivalent Gaussian σ at mid-grey, 255·√(0.5/P));
  defocus, motion: Wiener deconvolution with the KNOWN kernel (built as Sources/Restoration/Degradations.swift
      builds it), scikit-image `wiener` per channel with the identity regulariser (the textbook H*/(|H|² + balance)),
      one balance WIENER_BALANCE for both, on the image reflect-padded by 3 kernel sizes (the simulator's borders
      are reflected, Wiener's circular: unpadded it loses 5–6 dB);
  JPEG: total-variation denoising (scikit-image denoise_tv_chambolle, weight TV_WEIGHT 0.02, the best of --tune on the
      hold-out photos; eval_dreamclean's 0.08 lands below the degraded input on jpeg:20 at 128²; --tv-weight);
  low light: the inverse of the KNOWN tone curve, (y/K)^(1/G), then non-local means with h = NLM_C·σ, σ the noise
      S/255 carried through the inverse curve's slope at mid-grey (an oracle given the true K, G, S).
  NLM_C and WIENER_BALANCE were chosen with `--tune` on crops of the training hold-out photos
  (Tools/train/holdout.txt), NLM_C on noise:25 only and the balance on motion:9:45 only (defocus:2 alone would pick
  0.001, which drops motion below its degraded input); `--tune` prints the sweeps and writes nothing.
- DreamClean (ours, blind, on the bundled 64² prior; `restore dreamclean`): slow at 128² (9 tiled windows × 90
  evaluations, about 100 s an image on the 2-core box), so by default on the first 4 crops only (--dreamclean-crops).

Metrics: RGB PSNR (dB, [0, 1] scale) and SSIM (scikit-image, RGB) against the clean crop, as eval_diffir and
eval_dreamclean compute them; cross-checked against restore's own psnr_db / input_psnr_db.

Writes the section `eval_rddm` of Benchmarks/QUALITY.md, Benchmarks/quality-rddm.csv (one row per crop,
degradation and method) and Benchmarks/quality-rddm-grid.png (2 crops × each degradation: clean, degraded,
classical, DreamClean, RDDM), and prints the table.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from eval_dreamclean import run as dreamclean_run, write_grid  # noqa: E402
from eval_prior import cpu_description, crops, psnr, read, ssim, write, write_section  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))
from rddm_degradations import degrade, disk_kernel, line_kernel  # noqa: E402  (the trainer's formulas, torch-free)

REPO = Path(__file__).resolve().parents[2]
DEFAULT_MODEL = REPO / "Models" / "rddm-own.safetensors"
SPECS = "noise:25,poisson:20,defocus:2,motion:9:45,jpeg:20,lowlight:0.4:1.5:5"
NLM_C = 0.5            # h = NLM_C·σ, chosen on hold-out noise:25 (--tune; eval_dreamclean's fixed h 15 at σ 25 is 0.6)
WIENER_BALANCE = 0.015  # chosen on hold-out motion:9:45 (--tune: 0.01 → 26.67 dB, 0.015 → 26.69, 0.02 → 26.51)
TV_WEIGHT = 0.02       # the best of --tune on the hold-out (0.08, eval_dreamclean's, lands below the input at 128²)
SEED = 1               # restore rddm --seed (the degradation's noise and the sampler's)
DREAMCLEAN_CROPS = 4   # one 128² DreamClean image took 102 s here (> 60 s): only the first 4 crops by default
MISMATCH_DB = 0.05


# ----------------------------------------------------------------------------------------------------
# degradations (as Sources/Restoration/Degradations.swift)


def parse_spec(spec: str) -> tuple[str, list[float]]:
    kind, *values = spec.split(":")
    p = [float(v) for v in values]
    if kind == "lowlight" and len(p) == 2:
        p.append(5.0)                       # restore's default S
    if kind == "motion" and len(p) == 1:
        p.append(0.0)
    return kind, p


def describe(spec: str) -> str:
    kind, p = parse_spec(spec)
    g = "{:g}".format
    return {"noise": lambda: f"Gaussian noise σ {g(p[0])}/255",
            "poisson": lambda: f"Poisson noise, {g(p[0])} photons per unit",
            "defocus": lambda: f"defocus, disk r {g(p[0])} px",
            "motion": lambda: f"motion, line {g(p[0])} px at {g(p[1])}°",
            "jpeg": lambda: f"JPEG q{g(p[0])} (4:2:0)",
            "lowlight": lambda: f"low light {g(p[0])}·x^{g(p[1])} + σ {g(p[2])}/255"}[kind]()



def kernel(kind: str, p: list[float]) -> np.ndarray:
    return disk_kernel(p[0]) if kind == "defocus" else line_kernel(p[0], p[1])


def simulate(spec: str, rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The degradation in numpy (for --tune on the hold-out photos, and to check the blur kernels against the
    observation restore saves); noise from numpy, so not restore's draws."""
    kind, p = parse_spec(spec)
    return degrade(rgb, kind, p, rng)


# ----------------------------------------------------------------------------------------------------
# classical methods


def noise_sigma(kind: str, p: list[float]) -> float:
    """σ of the (equivalent) Gaussian noise on the 0–255 scale at mid-grey (clean x = 0.5)."""
    if kind == "noise":
        return p[0]
    if kind == "poisson":
        return 255 * math.sqrt(0.5 / p[0])
    if kind == "lowlight":                  # y = K·x^G + n: the inverse curve multiplies n by 1/(K·G·x^(G−1))
        return p[2] / (p[0] * p[1] * 0.5 ** (p[1] - 1))
    raise ValueError(kind)


def nl_means(u8: np.ndarray, h: float) -> np.ndarray:
    import cv2
    return cv2.fastNlMeansDenoisingColored(u8, None, h, h, 7, 21).astype(np.float64) / 255


def wiener(u8: np.ndarray, k: np.ndarray, balance: float) -> np.ndarray:
    from skimage.restoration import wiener as sk_wiener
    pad = 3 * k.shape[0]
    x = np.pad(u8.astype(np.float64) / 255, ((pad, pad), (pad, pad), (0, 0)), mode="reflect")
    out = np.stack([sk_wiener(x[..., c], k, balance, reg=np.ones((1, 1))) for c in range(3)], axis=2)
    return np.clip(out[pad:-pad, pad:-pad], 0, 1)


def classical(spec: str, u8: np.ndarray, nlm_c: float = NLM_C, balance: float = WIENER_BALANCE,
              tv_weight: float = TV_WEIGHT) -> tuple[np.ndarray, str]:
    """The classical restoration of the degraded 8-bit image and its label."""
    kind, p = parse_spec(spec)
    if kind in ("noise", "poisson"):
        h = nlm_c * noise_sigma(kind, p)
        return nl_means(u8, h), f"NL-means h {h:.1f}"
    if kind in ("defocus", "motion"):
        return wiener(u8, kernel(kind, p), balance), f"Wiener, true kernel, balance {balance:g}"
    if kind == "jpeg":
        from skimage.restoration import denoise_tv_chambolle
        return denoise_tv_chambolle(u8.astype(np.float64) / 255, weight=tv_weight, channel_axis=2), f"TV {tv_weight:g}"
    if kind == "lowlight":
        h = nlm_c * noise_sigma(kind, p)
        lifted = (np.clip(u8.astype(np.float64) / 255, 0, None) / p[0]) ** (1 / p[1])
        lifted = np.clip(np.round(lifted * 255), 0, 255).astype(np.uint8)
        return nl_means(lifted, h), f"true inverse curve + NL-means h {h:.1f}"
    raise ValueError(kind)


def tune(args):
    """Sweeps NLM_C (chosen on noise:25) and the Wiener balance (chosen on motion:9:45) on crops of the training
    hold-out photos, and, for information, what the other degradations would have preferred. Prints; writes nothing."""
    items = crops(holdout=True, size=args.size)
    print(f"{len(items)} hold-out crops of {args.size}²", flush=True)
    rng = np.random.default_rng(20261207)
    sweeps = {"noise:25": [0.3, 0.4, 0.45, 0.5, 0.55, 0.6, 0.7, 0.8, 1.0], "poisson:20": [0.2, 0.3, 0.4, 0.5, 0.6, 0.8],
              "lowlight:0.4:1.5:5": [0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1.0],
              "motion:9:45": [0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03],
              "defocus:2": [0.0003, 0.001, 0.002, 0.003, 0.005, 0.01, 0.02], "jpeg:20": [0.01, 0.02, 0.03, 0.05, 0.08]}
    for spec, values in sweeps.items():
        pairs = [(rgb, simulate(spec, rgb, rng)) for _, rgb in items]
        kind, _ = parse_spec(spec)
        scores = []
        for v in values:
            kw = {"balance": v} if kind in ("defocus", "motion") else {"tv_weight": v} if kind == "jpeg" else {"nlm_c": v}
            scores.append(np.mean([psnr(classical(spec, deg, **kw)[0], clean.astype(np.float64) / 255) for clean, deg in pairs]))
        best = values[int(np.argmax(scores))]
        name = "balance" if kind in ("defocus", "motion") else "TV weight" if kind == "jpeg" else "c (h = c·σ)"
        print(f"{spec}: input {np.mean([psnr(d, c) for c, d in pairs]):.2f} dB; {name}: "
              + ", ".join(f"{v:g} → {s:.2f}" for v, s in zip(values, scores)) + f"; best {best:g}", flush=True)


# ----------------------------------------------------------------------------------------------------
# evaluation


def restore_json(cmd):
    """Runs restore and returns (its JSON report, wall seconds of the whole process)."""
    cmd = [str(c) for c in cmd]
    t = time.time()
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"restore failed ({' '.join(cmd)}): {r.stderr.strip()}")
    reports = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    return reports[0], time.time() - t


def model_label(path: Path, report: dict) -> str:
    sha = report.get("model_sha256") or hashlib.sha256(path.read_bytes()).hexdigest()
    label = f"{path.name} (SHA-256 {sha[:12]}"
    if path.suffix == ".safetensors":
        try:
            with open(path, "rb") as f:
                n = int.from_bytes(f.read(8), "little")
                meta = json.loads(f.read(n)).get("__metadata__", {})
            if "step" in meta:
                label += f", step {meta['step']}"
        except (OSError, ValueError):
            pass
    return label + ")"


def shown(path) -> str:
    p = Path(path).resolve()
    try:
        return str(p.relative_to(REPO))
    except ValueError:
        return str(p)


def main():  # noqa: PLR0915
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--binary", default=str(REPO / ".build" / "release" / "restore"))
    p.add_argument("--model", default=str(DEFAULT_MODEL), help="the RDDM model (default: Models/rddm-own.safetensors)")
    p.add_argument("--steps", type=int, default=0, help="sampling steps (default: the model's)")
    p.add_argument("--crops", type=int, default=12, help="the first N of the 12 crops")
    p.add_argument("--size", type=int, default=128, help="crop side (eval_diffir: 128; eval_prior/eval_dreamclean: 64)")
    p.add_argument("--specs", default=SPECS, help="comma-separated `restore rddm --simulate` specs")
    p.add_argument("--no-dreamclean", action="store_true", help="skip DreamClean")
    p.add_argument("--dreamclean-crops", type=int, default=DREAMCLEAN_CROPS,
                   help="DreamClean on the first N crops only (0: all); it takes about 100 s per 128² image here")
    p.add_argument("--tv-weight", type=float, default=TV_WEIGHT,
                   help="TV weight for JPEG (default 0.08 as eval_dreamclean; --tune: the hold-out photos prefer about 0.02 at 128²)")
    p.add_argument("--threads", type=int, default=0, help="restore -j and OpenCV threads (default: restore's, every core)")
    p.add_argument("--grid-crops", default="0,3", help="crop indices in the picture grid (default: astronaut-0, chelsea-0)")
    p.add_argument("--markdown", default=str(REPO / "Benchmarks" / "QUALITY.md"))
    p.add_argument("--csv", default=str(REPO / "Benchmarks" / "quality-rddm.csv"))
    p.add_argument("--grid", default=str(REPO / "Benchmarks" / "quality-rddm-grid.png"), help="picture grid; '' for none")
    p.add_argument("--work", default="", help="keep the images in this folder (default: a temporary one)")
    p.add_argument("--tune", action="store_true", help="choose NLM_C and the Wiener balance on the hold-out photos; writes nothing")
    args = p.parse_args()
    import cv2
    if args.threads:
        cv2.setNumThreads(args.threads)
    if args.tune:
        tune(args)
        return
    model = Path(args.model)
    if not model.is_file():
        sys.exit(f"no RDDM model at {model}: train one (Tools/train/train_rddm.py) or pass --model FILE")
    specs = [s.strip() for s in args.specs.split(",") if s.strip()]
    for s in specs:
        parse_spec(s)
    items = crops(size=args.size)[: args.crops]
    n = len(items)
    dc_n = 0 if args.no_dreamclean else (min(n, args.dreamclean_crops) if args.dreamclean_crops else n)
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="eval-rddm-"))
    work.mkdir(parents=True, exist_ok=True)
    common = ["--json", "--quiet", "--overwrite"] + (["-j", args.threads] if args.threads else [])
    rddm_extra = ["--model", model, "--seed", SEED] + (["--steps", args.steps] if args.steps else [])
    wanted = [int(i) for i in args.grid_crops.split(",") if i.strip() and int(i) < n]
    wanted += [i for i in range(n) if i not in wanted][: max(0, 2 - len(wanted))]

    rows, res, panels = [], {s: [] for s in specs}, {}
    seconds = {"rddm": [], "rddm_report": [], "dreamclean": []}
    checks = {"psnr": 0.0, "input_psnr": 0.0, "kernel": 0}
    first_report = None
    started = time.time()
    for i, (name, rgb) in enumerate(items):
        clean_file = work / f"{name}.png"
        write(clean_file, rgb)
        x = rgb.astype(np.float64) / 255
        for spec in specs:
            tag = f"{name}-{spec.replace(':', '_')}"
            deg_file, out_file, dc_file = work / f"{tag}-degraded.png", work / f"{tag}-rddm.png", work / f"{tag}-dreamclean.png"
            rep, s = restore_json([args.binary, "rddm", "--simulate", spec, "-i", clean_file, "-o", out_file,
                                   "--save-observation", deg_file] + common + rddm_extra)
            first_report = first_report or rep
            seconds["rddm"].append(s)
            seconds["rddm_report"].append(rep.get("elapsed_s", float("nan")))
            deg_u8, out_u8 = read(deg_file), read(out_file)
            deg, out = deg_u8.astype(np.float64) / 255, out_u8.astype(np.float64) / 255
            base, label = classical(spec, deg_u8, tv_weight=args.tv_weight)
            r = {"input": (psnr(deg, x), ssim(deg, x)), "baseline": (psnr(base, x), ssim(base, x)),
                 "rddm": (psnr(out, x), ssim(out, x)), "label": label}
            d_out, d_in = abs(r["rddm"][0] - rep["psnr_db"]), abs(r["input"][0] - rep["input_psnr_db"])
            if max(d_out, d_in) > MISMATCH_DB and max(checks["psnr"], checks["input_psnr"]) <= MISMATCH_DB:
                print(f"warning: {tag}: our PSNR {r['rddm'][0]:.3f} / input {r['input'][0]:.3f} dB, restore's report "
                      f"{rep['psnr_db']:.3f} / {rep['input_psnr_db']:.3f} dB (more than {MISMATCH_DB} dB apart)", file=sys.stderr)
            checks["psnr"], checks["input_psnr"] = max(checks["psnr"], d_out), max(checks["input_psnr"], d_in)
            kind, _ = parse_spec(spec)
            if kind in ("defocus", "motion"):   # our kernel (the one Wiener gets) against the blur restore applied
                diff = int(np.abs(simulate(spec, rgb, None).astype(int) - deg_u8.astype(int)).max())
                if diff > 1 and checks["kernel"] <= 1:
                    print(f"warning: {tag}: our {kind} kernel differs from restore's blur (max |Δ| {diff}/255)", file=sys.stderr)
                checks["kernel"] = max(checks["kernel"], diff)
            dc = None
            if i < dc_n:
                t = time.time()
                dreamclean_run(args.binary, deg_file, dc_file, [str(c) for c in common[3:]])
                seconds["dreamclean"].append(time.time() - t)
                dc = read(dc_file).astype(np.float64) / 255
                r["dreamclean"] = (psnr(dc, x), ssim(dc, x))
            res[spec].append(r)
            for method in ("input", "baseline", "dreamclean", "rddm"):
                if method in r:
                    rows.append({"crop": name, "degradation": spec, "method": method, "psnr_db": r[method][0], "ssim": r[method][1],
                                 "seconds": {"rddm": s, "dreamclean": seconds["dreamclean"][-1] if dc is not None else None}.get(method),
                                 "setting": label if method == "baseline" else ""})
            if i in wanted:
                blank = np.ones_like(x)
                panels[(i, spec)] = [x, deg, base] + ([dc if dc is not None else blank] if dc_n else []) + [out]
            done = i * len(specs) + specs.index(spec) + 1
            eta = (time.time() - started) / done * (n * len(specs) - done)
            print(f"[{done}/{n * len(specs)}] {name} {spec}: input {r['input'][0]:.2f}  {label} {r['baseline'][0]:.2f}  "
                  + (f"DreamClean {r['dreamclean'][0]:.2f}  " if "dreamclean" in r else "")
                  + f"RDDM {r['rddm'][0]:.2f} dB ({s:.1f} s)  ETA {eta:.0f} s", flush=True)

    with open(args.csv, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["crop", "degradation", "method", "psnr_db", "ssim", "seconds", "setting"])
        w.writeheader()
        for row in rows:
            w.writerow({k: (f"{v:.4f}" if isinstance(v, float) else ("" if v is None else v)) for k, v in row.items()})

    def mean(spec, method, first=None):
        v = [r[method] for r in res[spec][:first] if method in r]
        return np.mean([a for a, _ in v]), np.mean([b for _, b in v])

    def cell(ps):
        return f"{ps[0]:.2f} / {ps[1]:.4f}"

    dc_head = ("DreamClean (not run)" if dc_n == 0
               else f"DreamClean (blind, our 64² prior{'' if dc_n == n else f'; first {dc_n} of {n} crops'})")
    lines = [
        "## RDDM (ours): same-size restoration vs classical methods and DreamClean (`make eval-rddm`)",
        "",
        f"| degradation (`--simulate`) | degraded input | classical (same file) | {dc_head} | RDDM (ours) | RDDM − input | RDDM − classical | RDDM > classical |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for spec in specs:
        m_in, m_base, m_rddm = mean(spec, "input"), mean(spec, "baseline"), mean(spec, "rddm")
        wins = sum(r["rddm"][0] > r["baseline"][0] for r in res[spec])
        if dc_n == 0:
            dc_cell = "–"
        elif dc_n == n:
            dc_cell = cell(mean(spec, "dreamclean"))
        else:
            dc_cell = f"{cell(mean(spec, 'dreamclean'))} (RDDM on these {dc_n}: {cell(mean(spec, 'rddm', dc_n))})"
        lines.append(f"| {describe(spec)} (`{spec}`) | {cell(m_in)} | {res[spec][0]['label']}: {cell(m_base)} | {dc_cell} | "
                     f"{'**' + cell(m_rddm) + '**' if m_rddm[0] > m_base[0] else cell(m_rddm)} | {m_rddm[0] - m_in[0]:+.2f} dB | {m_rddm[0] - m_base[0]:+.2f} dB | {wins} of {n} crops |")
    steps = first_report.get("steps", args.steps or "?")
    nlm = ", ".join(f"`{s}` σ {noise_sigma(*parse_spec(s)):.1f}" for s in specs if parse_spec(s)[0] in ("noise", "poisson", "lowlight"))
    dc_time = (f"DreamClean {np.mean(seconds['dreamclean']):.1f} s per image ({len(seconds['dreamclean'])} images, blind: τ 50, "
               f"γ 0.1, 90 evaluations per 64² window)" if seconds["dreamclean"] else "DreamClean not run")
    lines += [
        "",
        f"PSNR (dB, RGB, [0, 1] scale) / SSIM (RGB, scikit-image) against the clean crop, mean over {n} crops of {args.size}² "
        f"from scikit-image's CC0 photos (as `make eval-diffir`; never trained on, never used to choose a setting). Each "
        f"degraded image is the one `restore rddm --simulate SPEC --seed {SEED} --save-observation` made, and every method "
        f"restores that same 8-bit file. Model {model_label(model, first_report)}, {steps} steps, seed {SEED}. "
        f"Time per {args.size}² image (whole `restore` process, model loading included): RDDM {np.mean(seconds['rddm']):.1f} s "
        f"({np.nanmean(seconds['rddm_report']):.1f} s in the report's elapsed_s); {dc_time}. {cpu_description()}, "
        f"threads {args.threads or os.cpu_count()}, {time.strftime('%Y-%m-%d')}. RDDM in bold where its mean PSNR beats the classical method's.",
        "",
        f"Classical methods (PyPI: OpenCV {cv2.__version__}, scikit-image): non-local means (fastNlMeansDenoisingColored, "
        f"template 7, search 21) with h = hColor = {NLM_C:g}·σ, σ on the 0–255 scale ({nlm + '; ' if nlm else ''}Poisson: the equivalent Gaussian σ "
        f"255·√(0.5/P) at mid-grey); Wiener deconvolution (skimage `wiener` per channel, identity regulariser, "
        f"balance {WIENER_BALANCE:g}, reflect-padded by 3 kernel sizes) given the TRUE kernel, built as restore's simulator builds it; "
        f"total-variation denoising (weight {args.tv_weight:g}{', chosen with --tune on the hold-out' if args.tv_weight == TV_WEIGHT else ''}) for JPEG; for low light the inverse of the TRUE tone curve "
        f"(y/K)^(1/G) and then non-local means with σ = S/255 through the inverse curve's slope at mid-grey (given the true K, "
        f"G, S; RDDM is blind). NL-means' {NLM_C:g} was chosen on crops of the training hold-out photos (`eval_rddm.py --tune`) "
        f"on noise:25 only, the balance {WIENER_BALANCE:g} on motion:9:45 only (defocus alone prefers about 0.001, which "
        f"would put motion below its degraded input).",
        "",
        f"Checks: our PSNR matches restore's report within {max(checks['psnr'], checks['input_psnr']):.3f} dB (output and input)"
        + (f"; our blur kernels reproduce restore's degraded files within {checks['kernel']}/255" if any(
            parse_spec(s)[0] in ("defocus", "motion") for s in specs) else "")
        + f". Per crop and method: `{shown(args.csv)}`.",
        "",
    ]
    if args.grid and panels:
        order = [(i, s) for i in wanted for s in specs]
        write_grid(args.grid, [panels[k] for k in order], zoom=1)
        cols = "clean, degraded, classical" + (", DreamClean" if dc_n else "") + ", RDDM"
        lines += [f"Picture grid `{shown(args.grid)}`: crops {', '.join(items[i][0] for i in wanted)}, one row per degradation "
                  f"(table order); columns {cols}" + (" (white: DreamClean not run on that crop)" if 0 < dc_n < n and any(i >= dc_n for i in wanted) else "")
                  + ".", ""]
    write_section(args.markdown, "eval_rddm", lines)
    print("\n".join(lines))
    print(f"work folder: {work}", file=sys.stderr)


if __name__ == "__main__":
    main()
