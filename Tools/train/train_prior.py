#!/usr/bin/env python3
"""Train the project's unconditional ε-prediction diffusion prior (ADM / guided-diffusion UNet).

What it trains
  An unconditional DDPM prior for natural-photo patches: ε-prediction, MSE loss, t uniform in [0, 999],
  linear β float64 linspace(1e-4, 0.02, 1000), fixed variance (learn_sigma False, so out_channels 3),
  AdamW lr 4e-4 with a 200-step linear warm-up and gradient-norm clipping at 1, EMA of the weights (decay 0.9999 with the warm-up
  min(decay, (1+step)/(10+step))). Data: random crops of ../shared/data/train after a random downscale
  (factor uniform in [0.25, 1]), random horizontal flips, scaled to [-1, 1]. A fixed 10 % of the photos
  (Tools/train/holdout.txt) is never trained on and gives the validation ε-MSE.

  The network is guided-diffusion's own `UNetModel` (PyPI `guided-diffusion-sdk`, the official code), so
  the state-dict names are the official ones and the Swift `ADMUNet` runs the exported weights unchanged:
  `Models/<name>.safetensors` (EMA weights, fp16 by default) plus `Models/<name>.json` (the UNetModel
  constructor arguments under their official names; attention_resolutions as downsample factors).

Default architecture (flags change it) and why
  image_size 64, model_channels 32, channel_mult (1, 2, 2, 4), num_res_blocks 2, attention at 16 and 8 px
  (attention_resolutions = downsample factors (4, 8)), num_heads 4, use_scale_shift_norm, resblock_updown,
  dropout 0, learn_sigma False; 5.28 M parameters (10.6 MB in fp16).
  - 64² is the smallest size at which the ADM layout keeps its two attention levels (16 and 8 px) and
    four resolution levels; restoration runs the prior on overlapping 64² windows (USDR), and 64² training
    is what 2 CPU cores afford.
  - model_channels 32 rather than 64, from measured speed: on this project's 2-core AMD EPYC (Zen 3, AVX2)
    one training step at batch 16 took 3.0 s with ch 32 against 9.8 s with ch 64 (0.33 vs 0.10 step/s;
    ../shared/research/training-budget.md has 1.38 vs 2.26 s on Zen 5 at batches 32 / 16). With the CPU
    hours a session has, the smaller network sees 3× more batches, which matters more for quality than
    width while the loss is still falling; it is also 3× cheaper at every sampling step of every window.
    Wider runs (e.g. --model-channels 64 on a GPU machine) use the same script.
  - lr 4e-4 with a short warm-up and clipping: the official 1e-4…2e-4 suits 10⁵–10⁶-step runs; for a
    few thousand steps the larger rate converges faster, and the clip keeps the early steps stable.
  - the third level at 2× rather than 3× trims parameters where 16² attention already adds cost.
  - 4 heads at 16 px (128 channels → 32 per head) and 8 px (256 channels → 64 per head), as in ADM.
  - scale-shift norm (FiLM timestep conditioning) and residual up/down-sampling are the ADM choices that
    gave the largest gains in "Diffusion Models Beat GANs" at no extra inference cost worth mentioning.
  - learn_sigma False: the project's samplers (DDIM/DDNM-style) use ε only with fixed variances.
  - dropout 0 (flag --dropout): with random rescaled crops the data are far from exhausted in the step
    counts a CPU affords; raise it for long GPU runs on a small pack.

Running
  python Tools/train/train_prior.py                     # full recipe on CPU, resumes from .cache/train-prior
  python Tools/train/train_prior.py --minutes 60        # one time-boxed chunk; run again to continue
  python Tools/train/train_prior.py --pack              # write .cache/train-crops (crops, ≤ 64 MiB) and exit
  python Tools/train/train_prior.py --device cuda --minutes 20   # on a GPU machine, data from the pack
  python Tools/train/train_prior.py --export-only       # EMA weights + loss curve from last.pt to Models/
See Tools/train/README.md.
"""

from __future__ import annotations

import argparse
import copy
import csv
import datetime as _dt
import hashlib
import json
import math
import os
import platform
import random
import shutil
import signal
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
HOLDOUT_FILE = HERE / "holdout.txt"
HOLDOUT_FRACTION = 0.10
HOLDOUT_SEED = 20261125          # fixed: the hold-out list is generated once and committed
VAL_SEED = 777                    # fixed crops / noise / timesteps of the validation set
IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png"}
PACK_FILES = ("train.npy", "val.npy", "pack.json")

# Waiting OpenMP threads sleep instead of spinning: on a CPU shared with other work, spinning threads made
# a 2-thread training step 20× slower than 1 thread (measured here); costs little on an idle machine.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

try:
    import torch
    import torch.nn.functional as F
except ImportError:  # pragma: no cover - message for people without PyTorch
    sys.exit("PyTorch is missing: python3 -m venv venv && venv/bin/pip install torch numpy pillow safetensors "
             "guided-diffusion-sdk matplotlib   (see Tools/train/README.md)")


def import_unet(pack_dir: Path | None):
    """guided-diffusion's UNetModel; falls back to the copy that --pack puts next to the crops."""
    import warnings
    warnings.filterwarnings("ignore", message=r"`torch\.cuda\.amp\.custom_(fwd|bwd)", category=FutureWarning)
    try:
        from guided_diffusion.unet import UNetModel  # noqa: WPS433
        return UNetModel
    except ImportError:
        if pack_dir is not None and (pack_dir / "pylib" / "guided_diffusion").is_dir():
            sys.path.insert(0, str(pack_dir / "pylib"))
            from guided_diffusion.unet import UNetModel  # noqa: WPS433
            return UNetModel
        sys.exit("guided-diffusion-sdk is missing: pip install guided-diffusion-sdk  (or run --pack on a machine "
                 "that has it: the pack carries a copy of the package)")


# ----------------------------------------------------------------------------------------------------
# configuration


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    g = p.add_argument_group("data")
    g.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data" / "train"),
                   help="folder of training photos (never copied into the repository)")
    g.add_argument("--data", choices=["auto", "photos", "pack"], default="auto",
                   help="auto: the photos if --data-dir exists, else the pack in --pack-dir")
    g.add_argument("--pack", action="store_true", help="write the crop pack to --pack-dir and exit")
    g.add_argument("--pack-dir", default=str(REPO / ".cache" / "train-crops"))
    g.add_argument("--pack-mib", type=float, default=40.0,
                   help="size of the training crops in the pack (the working tree that travels to a GPU "
                        "machine is limited to 64 MiB in all)")
    g.add_argument("--pack-margin", type=int, default=16,
                   help="pack crops are image_size+margin wide; training takes a random image_size window")
    g.add_argument("--pack-seed", type=int, default=1)
    g.add_argument("--min-scale", type=float, default=0.25, help="smallest random downscale of a photo")
    g.add_argument("--max-scale", type=float, default=1.0)
    g.add_argument("--val-per-photo", type=int, default=4, help="fixed validation crops per held-out photo")

    g = p.add_argument_group("network (guided-diffusion UNetModel)")
    g.add_argument("--image-size", type=int, default=64)
    g.add_argument("--model-channels", type=int, default=32)
    g.add_argument("--channel-mult", default="1,2,2,4")
    g.add_argument("--num-res-blocks", type=int, default=2)
    g.add_argument("--attention-resolutions", default="16,8", help="in pixels (converted to downsample factors)")
    g.add_argument("--num-heads", type=int, default=4)
    g.add_argument("--num-head-channels", type=int, default=-1)
    g.add_argument("--dropout", type=float, default=0.0)
    g.add_argument("--no-scale-shift-norm", action="store_true")
    g.add_argument("--no-resblock-updown", action="store_true")

    g = p.add_argument_group("optimisation")
    g.add_argument("--batch", type=int, default=16)
    g.add_argument("--lr", type=float, default=4e-4)
    g.add_argument("--warmup", type=int, default=200)
    g.add_argument("--weight-decay", type=float, default=0.0)
    g.add_argument("--grad-clip", type=float, default=1.0, help="global gradient-norm clip (0: none, as the official code)")
    g.add_argument("--ema-decay", type=float, default=0.9999)
    g.add_argument("--seed", type=int, default=0)

    g = p.add_argument_group("budget, checkpoints, logging")
    g.add_argument("--steps", type=int, default=100_000, help="total step count to reach (across resumes)")
    g.add_argument("--minutes", type=float, default=0.0, help="wall-clock budget of this run (0: none)")
    g.add_argument("--out-dir", default=str(REPO / ".cache" / "train-prior"))
    g.add_argument("--fresh", action="store_true", help="ignore (and overwrite) an existing last.pt")
    g.add_argument("--init-from", default="",
                   help="start a fresh run from exported weights (.safetensors): model and EMA, new optimiser")
    g.add_argument("--save-minutes", type=float, default=15.0, help="checkpoint interval")
    g.add_argument("--log-every", type=int, default=25)
    g.add_argument("--val-every", type=int, default=500)
    g.add_argument("--csv-every", type=int, default=100, help="train-loss smoothing window / CSV row spacing")

    g = p.add_argument_group("device")
    g.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    g.add_argument("--threads", type=int, default=0, help="CPU threads (0: PyTorch's default)")
    g.add_argument("--channels-last", choices=["auto", "yes", "no"], default="auto",
                   help="channels-last tensors (auto: on CUDA only; no gain measured on CPU)")
    g.add_argument("--compile", action="store_true", help="torch.compile the training model (GPU)")

    g = p.add_argument_group("export")
    g.add_argument("--name", default="adm64-prior", help="Models/<name>.safetensors, .json, -loss.csv, -loss.png")
    g.add_argument("--export-dir", default=str(REPO / "Models"))
    g.add_argument("--export-dtype", choices=["fp16", "fp32"], default="fp16")
    g.add_argument("--export-only", action="store_true", help="export last.pt's EMA weights and exit")
    g.add_argument("--no-export", action="store_true", help="do not export at the end of the run")
    return p.parse_args(argv)


def unet_kwargs(args) -> dict:
    """guided-diffusion UNetModel constructor arguments (official names) for these flags."""
    size = args.image_size
    mult = [int(m) if float(m).is_integer() else float(m) for m in args.channel_mult.split(",")]
    ds = []
    for res in (int(r) for r in args.attention_resolutions.split(",") if r):
        if size % res:
            sys.exit(f"--attention-resolutions: {res} px does not divide image_size {size}")
        ds.append(size // res)
    if size % (2 ** (len(mult) - 1)):
        sys.exit(f"image_size {size} is not divisible by 2^{len(mult) - 1}")
    return {
        "image_size": size, "in_channels": 3, "model_channels": args.model_channels, "out_channels": 3,
        "num_res_blocks": args.num_res_blocks, "attention_resolutions": sorted(ds), "dropout": args.dropout,
        "channel_mult": mult, "conv_resample": True, "dims": 2, "num_classes": None, "use_checkpoint": False,
        "use_fp16": False, "num_heads": args.num_heads, "num_head_channels": args.num_head_channels,
        "num_heads_upsample": -1, "use_scale_shift_norm": not args.no_scale_shift_norm,
        "resblock_updown": not args.no_resblock_updown, "use_new_attention_order": False,
    }


def build_unet(UNetModel, kw: dict):
    kw = dict(kw)
    kw["attention_resolutions"] = tuple(kw["attention_resolutions"])
    kw["channel_mult"] = tuple(kw["channel_mult"])
    return UNetModel(**kw)


# ----------------------------------------------------------------------------------------------------
# photos, hold-out, crops


def list_photos(data_dir: Path) -> list[str]:
    return sorted(f.name for f in data_dir.iterdir() if f.suffix.lower() in IMAGE_EXTENSIONS and f.is_file())


def load_holdout(data_dir: Path | None) -> list[str]:
    """The committed hold-out list; generated once (sorted names, seeded 10 % sample) when missing."""
    if HOLDOUT_FILE.exists():
        names = [l.strip() for l in HOLDOUT_FILE.read_text().splitlines() if l.strip() and not l.startswith("#")]
        if data_dir is not None and data_dir.is_dir():
            missing = set(names) - set(list_photos(data_dir))
            if missing:
                print(f"warning: {len(missing)} held-out names are not in {data_dir}", file=sys.stderr)
        return names
    if data_dir is None or not data_dir.is_dir():
        sys.exit(f"{HOLDOUT_FILE} is missing and no photo folder to generate it from")
    names = list_photos(data_dir)
    k = round(HOLDOUT_FRACTION * len(names))
    held = sorted(random.Random(HOLDOUT_SEED).sample(names, k))
    HOLDOUT_FILE.write_text(
        "# Validation hold-out of ../shared/data/train: never trained on. Generated once by train_prior.py:\n"
        f"# the {len(names)} file names sorted, random.Random({HOLDOUT_SEED}).sample(names, {k}), sorted.\n"
        + "\n".join(held) + "\n")
    print(f"wrote {HOLDOUT_FILE.relative_to(REPO)} ({k} of {len(names)} photos)")
    return held


def open_photos(data_dir: Path, names: list[str]):
    from PIL import Image
    photos = []
    for n in names:
        with Image.open(data_dir / n) as im:
            photos.append(im.convert("RGB"))
    return photos


def cut_crop(img, rng: np.random.Generator, size: int, min_scale: float, max_scale: float, scale=None):
    """A size×size crop of img after a downscale by `scale` (drawn uniformly when None): the box of
    side size/scale in the photo is resized (antialiased bicubic) to size×size. uint8 HWC."""
    from PIL import Image
    w, h = img.size
    s = rng.uniform(min_scale, max_scale) if scale is None else scale
    side = min(size / s, w, h)
    x0 = int(rng.integers(0, int(w - side) + 1))
    y0 = int(rng.integers(0, int(h - side) + 1))
    out = img.resize((size, size), Image.Resampling.BICUBIC, box=(x0, y0, x0 + side, y0 + side))
    return np.asarray(out, dtype=np.uint8)


def make_val_crops(photos, size: int, per_photo: int, min_scale: float, max_scale: float) -> np.ndarray:
    """Fixed validation crops: per held-out photo, `per_photo` crops at stratified scales."""
    crops = []
    for i, img in enumerate(photos):
        rng = np.random.default_rng([VAL_SEED, i])
        for k in range(per_photo):
            s = min_scale + (max_scale - min_scale) * (k + 0.5) / per_photo
            crops.append(cut_crop(img, rng, size, min_scale, max_scale, scale=s))
    return np.stack(crops)


class PhotoSource:
    def __init__(self, photos, size, min_scale, max_scale):
        self.photos, self.size, self.min_scale, self.max_scale = photos, size, min_scale, max_scale

    def batch(self, rng: np.random.Generator, n: int) -> np.ndarray:
        out = np.empty((n, self.size, self.size, 3), np.uint8)
        for j in range(n):
            img = self.photos[int(rng.integers(len(self.photos)))]
            c = cut_crop(img, rng, self.size, self.min_scale, self.max_scale)
            out[j] = c[:, ::-1] if rng.random() < 0.5 else c
        return out


class PackSource:
    def __init__(self, crops: np.ndarray, size: int):
        self.crops, self.size = crops, size
        self.margin = crops.shape[1] - size
        if self.margin < 0:
            sys.exit(f"the pack's crops ({crops.shape[1]} px) are smaller than image_size {size}")

    def batch(self, rng: np.random.Generator, n: int) -> np.ndarray:
        out = np.empty((n, self.size, self.size, 3), np.uint8)
        for j in range(n):
            c = self.crops[int(rng.integers(len(self.crops)))]
            ox, oy = (int(v) for v in rng.integers(0, self.margin + 1, 2))
            c = c[oy:oy + self.size, ox:ox + self.size]
            out[j] = c[:, ::-1] if rng.random() < 0.5 else c
        return out


def sha256_lines(names) -> str:
    return hashlib.sha256("\n".join(names).encode()).hexdigest()[:16]


def write_pack(args):
    data_dir = Path(args.data_dir)
    if not data_dir.is_dir():
        sys.exit(f"no photos at {data_dir}")
    held = load_holdout(data_dir)
    train_names = [n for n in list_photos(data_dir) if n not in set(held)]
    size = args.image_size
    csize = size + args.pack_margin
    if csize / args.min_scale > 321:
        print(f"note: {csize} px crops at scale {args.min_scale} need {csize / args.min_scale:.0f} px of photo; "
              "smaller photos clamp the scale", file=sys.stderr)
    n = int(args.pack_mib * 2**20 // (csize * csize * 3))
    rng = np.random.default_rng(args.pack_seed)
    print(f"packing {n} crops of {csize}² from {len(train_names)} training photos ...", flush=True)
    photos = open_photos(data_dir, train_names)
    order = np.concatenate([rng.permutation(len(photos)) for _ in range(n // len(photos) + 1)])[:n]
    train = np.empty((n, csize, csize, 3), np.uint8)
    for j, i in enumerate(order):
        train[j] = cut_crop(photos[int(i)], rng, csize, args.min_scale, args.max_scale)
    val = make_val_crops(open_photos(data_dir, held), size, args.val_per_photo, args.min_scale, args.max_scale)
    out = Path(args.pack_dir)
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "train.npy", train)
    np.save(out / "val.npy", val)
    meta = {"image_size": size, "crop_size": csize, "train_crops": n, "val_crops": len(val),
            "train_photos": len(train_names), "holdout_photos": len(held), "holdout_sha": sha256_lines(held),
            "pack_seed": args.pack_seed, "min_scale": args.min_scale, "max_scale": args.max_scale,
            "val_per_photo": args.val_per_photo, "source": str(data_dir),
            "note": "crops of research-only photos: never commit (see ../shared/data/README.md)"}
    (out / "pack.json").write_text(json.dumps(meta, indent=1) + "\n")
    # A copy of guided_diffusion (pure Python, MIT) so a machine without the package runs unchanged.
    try:
        import guided_diffusion
        src = Path(guided_diffusion.__file__).parent
        dst = out / "pylib" / "guided_diffusion"
        if dst.exists():
            shutil.rmtree(dst)
        shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
    except ImportError:
        pass
    total = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"wrote {out}: train {train.shape} ({train.nbytes / 2**20:.1f} MiB), val {val.shape}; "
          f"{total / 2**20:.1f} MiB in all")


# ----------------------------------------------------------------------------------------------------
# diffusion, EMA, validation


class Diffusion:
    def __init__(self, device, T=1000, beta_start=1e-4, beta_end=0.02):
        betas = np.linspace(beta_start, beta_end, T, dtype=np.float64)
        ac = np.cumprod(1.0 - betas)
        self.T = T
        self.sqrt_ac = torch.tensor(np.sqrt(ac), dtype=torch.float32, device=device)
        self.sqrt_1m_ac = torch.tensor(np.sqrt(1.0 - ac), dtype=torch.float32, device=device)

    def q_sample(self, x0, t, noise):
        return self.sqrt_ac[t].view(-1, 1, 1, 1) * x0 + self.sqrt_1m_ac[t].view(-1, 1, 1, 1) * noise


@torch.no_grad()
def ema_update(ema, model, decay):
    ep = [p for p in ema.parameters()]
    mp = [p.detach() for p in model.parameters()]
    torch._foreach_lerp_(ep, mp, 1.0 - decay)
    for eb, mb in zip(ema.buffers(), model.buffers()):
        eb.copy_(mb)


class Validator:
    """ε-MSE on fixed crops of the held-out photos, fixed noise and stratified timesteps."""

    def __init__(self, crops_u8: np.ndarray, diffusion: Diffusion, device, channels_last, amp):
        g = torch.Generator().manual_seed(VAL_SEED)
        n = len(crops_u8)
        self.x0 = to_float(torch.from_numpy(crops_u8), device, channels_last)
        self.noise = torch.randn(self.x0.shape, generator=g).to(device)
        self.t = torch.tensor([int((i + 0.5) * diffusion.T / n) for i in range(n)], device=device)
        self.t = self.t[torch.randperm(n, generator=g).to(device)]
        self.diffusion, self.amp = diffusion, amp

    @torch.no_grad()
    def __call__(self, model, batch=64) -> float:
        was_training = model.training
        model.eval()
        total, n = 0.0, len(self.t)
        for i in range(0, n, batch):
            x0, eps, t = self.x0[i:i + batch], self.noise[i:i + batch], self.t[i:i + batch]
            with self.amp():
                pred = model(self.diffusion.q_sample(x0, t, eps), t)
            total += F.mse_loss(pred.float(), eps, reduction="sum").item() / eps[0].numel()
        model.train(was_training)
        return total / n


def to_float(u8_nhwc, device, channels_last):
    x = u8_nhwc.to(device, non_blocking=True).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x.contiguous()


# ----------------------------------------------------------------------------------------------------
# checkpoint, export


def rng_state(np_rng, gen):
    st = {"python": random.getstate(), "numpy": np_rng.bit_generator.state, "torch_cpu": torch.get_rng_state(),
          "gen": gen.get_state(), "gen_device": str(gen.device)}
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def save_checkpoint(path: Path, state: dict):
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def finish_session(last: Path, final: dict, start_step: int, t_start: float, stop: dict, *, log_line: str | None = None,
                   target: int | None = None) -> None:
    """The end of every trainer's session: saves `final` (a state with "step" and "history") at `last`, prints the
    session's steps and rate, appends `log_line` (the session, its batch, its last validation) to sessions.log beside
    it when given, and says whether `target` steps are reached."""
    save_checkpoint(last, final)
    step, took = final["step"], time.time() - t_start
    print(f"saved {last} at step {step}: {step - start_step} steps in {fmt_time(took)}"
          f" ({(step - start_step) / max(took, 1e-9):.3f} step/s incl. data, validation and saving)")
    if log_line is not None:
        h = final["history"][-1]
        with open(last.parent / "sessions.log", "a") as f:
            f.write(f"{h['started']}  steps {h['start_step']}→{h['end_step']}  {h['seconds']:.0f} s  {h['device']}"
                    f"{'  ' + log_line if log_line else ''}{'  (interrupted)' if stop['signal'] else ''}\n")
    if target is not None:
        print(f"reached the target of {target} steps" if step >= target
              else f"stopped before the target ({step}/{target}); run the same command again to continue")


def loss_rows(losses: list[float], val: dict, every: int):
    """CSV rows: train loss averaged over the last `every` steps at multiples of `every` (and at the last
    step), validation losses where measured."""
    steps = set(range(every, len(losses) + 1, every)) | set(val)
    if losses:
        steps.add(len(losses))
    rows = []
    for s in sorted(steps):
        window = losses[max(0, s - every):s]
        tr = sum(window) / len(window) if window else float("nan")
        v = val.get(s, {})
        rows.append((s, tr, v.get("ema", float("nan")), v.get("model", float("nan"))))
    return rows


def write_loss_files(stem: Path, losses, val, every, title):
    rows = loss_rows(losses, val, every)
    with open(f"{stem}-loss.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["step", f"train_loss_mean{every}", "val_loss_ema", "val_loss_model"])
        for s, tr, ve, vm in rows:
            w.writerow([s] + ["" if math.isnan(x) else f"{x:.6f}" for x in (tr, ve, vm)])
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: skipped the loss plot (pip install matplotlib)")
        return [f"{stem}-loss.csv"]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    tr = [(s, x) for s, x, _, _ in rows if not math.isnan(x)]
    ve = [(s, x) for s, _, x, _ in rows if not math.isnan(x)]
    vm = [(s, x) for s, _, _, x in rows if not math.isnan(x)]
    if tr:
        ax.plot(*zip(*tr), lw=1, label=f"train ε-MSE (mean of {every} steps)")
    if vm:
        ax.plot(*zip(*vm), "o-", ms=3, lw=1, label="validation, raw weights")
    if ve:
        ax.plot(*zip(*ve), "s-", ms=3, lw=1.5, label="validation, EMA weights")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("ε-MSE")
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(f"{stem}-loss.png")
    plt.close(fig)
    return [f"{stem}-loss.csv", f"{stem}-loss.png"]


def export(ckpt: dict, args):
    from safetensors.torch import save_file
    out = Path(args.export_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / args.name
    dtype = torch.float16 if args.export_dtype == "fp16" else torch.float32
    tensors = {k: v.detach().to("cpu", dtype).contiguous() for k, v in ckpt["ema"].items()}
    step = ckpt["step"]
    kw = ckpt["unet"]
    meta = {"format": "pt", "family": "adm", "weights": "ema", "step": str(step),
            "unet": json.dumps(kw, separators=(",", ":")), "prediction": "eps",
            "betas": "linear 1e-4 0.02 1000"}
    save_file(tensors, f"{stem}.safetensors", metadata=meta)
    val = ckpt["val"]
    last_val = val[max(val)] if val else {}
    hist = ckpt.get("history", [])
    config = {"family": "adm", **kw,
              "diffusion": {"prediction": "eps", "learn_sigma": False, "beta_schedule": "linear",
                            "beta_start": 1e-4, "beta_end": 0.02, "num_timesteps": 1000, "data_range": [-1, 1]},
              "weights": {"file": f"{args.name}.safetensors", "kind": "ema", "ema_decay": ckpt["args"]["ema_decay"],
                          "dtype": "float16" if dtype == torch.float16 else "float32",
                          "parameters": sum(t.numel() for t in tensors.values())},
              "training": {"steps": step, "recipe": {k: ckpt["args"][k] for k in (
                  "batch", "lr", "warmup", "weight_decay", "grad_clip", "seed", "min_scale", "max_scale")},
                  "data": "../shared/data/train minus Tools/train/holdout.txt (research-only photos, not shipped)",
                  "holdout_sha": ckpt.get("holdout_sha"),
                  "val_eps_mse_ema": last_val.get("ema"), "val_eps_mse_model": last_val.get("model"),
                  "val_step": max(val) if val else None,
                  "wall_seconds": round(sum(h["seconds"] for h in hist), 1),
                  "sessions": hist,
                  "trainer": "Tools/train/train_prior.py"},
              # What restore uses where the user gives nothing (DDNMOptions.eta nil): η 1.0 was chosen for this
              # prior on the hold-out photos (Tools/eval/eval_prior.py --holdout); the official 0.85 is for ImageNet priors.
              "defaults": {"eta": 1.0}}
    Path(f"{stem}.json").write_text(json.dumps(config, indent=1) + "\n")
    files = [f"{stem}.safetensors", f"{stem}.json"]
    files += write_loss_files(stem, ckpt["losses"], val, ckpt["args"]["csv_every"],
                              f"{args.name}: ADM ch{kw['model_channels']} {kw['image_size']}², step {step}")
    for f in files:
        size = os.path.getsize(f)
        flag = "  (OVER 50 MB)" if size > 50e6 else ""
        print(f"exported {f}  {size / 1e6:.2f} MB{flag}")


# ----------------------------------------------------------------------------------------------------
# training


def fmt_time(s: float) -> str:
    s = int(max(0, s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def pick_device(name: str):
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda but no CUDA device is visible")
    return dev


def seeded_rngs(seed: int, device):
    """Seeds Python's, numpy's and torch's generators; returns the numpy generator and the noise generator."""
    random.seed(seed)
    np_rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    return np_rng, torch.Generator(device=device).manual_seed(seed)


def resume_from(ckpt: dict, model, ema, opt, np_rng, gen, device, seed: int, path):
    """Loads model, EMA, optimiser and every RNG state from a checkpoint (bit-exact on the device that saved
    it; the noise stream is reseeded on another device type). Returns (step, losses, val, history)."""
    model.load_state_dict(ckpt["model"])
    ema.load_state_dict(ckpt["ema"])
    opt.load_state_dict(ckpt["opt"])
    step, losses, val, history = ckpt["step"], ckpt["losses"], ckpt["val"], ckpt.get("history", [])
    rs = ckpt["rng"]
    random.setstate(rs["python"])
    np_rng.bit_generator.state = rs["numpy"]
    torch.set_rng_state(rs["torch_cpu"])
    if rs["gen_device"].split(":")[0] == device.type:
        gen.set_state(rs["gen"])
    else:
        gen.manual_seed(seed * 1_000_003 + step)
        print(f"note: checkpoint made on {rs['gen_device']}: noise stream reseeded (not bit-exact)")
    if device.type == "cuda" and "cuda" in rs and len(rs["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(rs["cuda"])
    print(f"resumed {path} at step {step}")
    return step, losses, val, history


def stop_on_signals() -> dict:
    """SIGINT/SIGTERM set stop["signal"]; the training loop saves at the end of the current step."""
    stop = {"signal": None}

    def on_signal(signum, _frame):
        stop["signal"] = signum
        print(f"\nsignal {signum}: saving at the end of this step ...", flush=True)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    return stop


class StepRate:
    """Steps per second, smoothed (0.7 old + 0.3 new) between log lines, and the time left to `target` steps or
    to the deadline, whichever comes first: what every trainer's log line prints."""

    def __init__(self, step: int):
        self.rate, self.mark, self.step = None, time.time(), step

    def update(self, step: int, target: int, deadline: float) -> tuple[float, float]:
        now = time.time()
        r = (step - self.step) / max(now - self.mark, 1e-9)
        self.rate = r if self.rate is None else 0.7 * self.rate + 0.3 * r
        self.mark, self.step = now, step
        return self.rate, min((target - step) / max(self.rate, 1e-9), deadline - now)


def wait_while_paused(out_dir: Path, stop: dict) -> float:
    """Sleeps while `out_dir`/PAUSE exists (touch it to pause a run at its next step, e.g. while benchmarks or the
    test suite run; remove it to go on) and returns the seconds paused, which the caller adds to its deadline.
    SIGSTOP / SIGCONT pause the process too, without the checkpoint-friendly step boundary."""
    flag, began, told = out_dir / "PAUSE", time.time(), False
    while flag.exists() and stop["signal"] is None:
        if not told:
            print(f"paused: {flag} exists (remove it to go on)", flush=True)
            told = True
        time.sleep(2)
    if told:
        print(f"resumed after {fmt_time(time.time() - began)} paused", flush=True)
    return time.time() - began if told else 0.0


def segment_record(step: int, batch: int, device) -> dict:
    """What a training run (one uninterrupted segment) records about itself in the checkpoint's history."""
    return {"start_step": step, "device": torch.cuda.get_device_name(device) if device.type == "cuda"
            else f"CPU {cpu_name()}, {os.cpu_count()} cores, {torch.get_num_threads()} threads",
            "torch": torch.__version__, "batch": batch,
            "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}


def main(argv=None):
    args = parse_args(argv)
    out_dir = Path(args.out_dir)
    last = out_dir / "last.pt"

    if args.pack:
        write_pack(args)
        return
    if args.export_only:
        if not last.exists():
            sys.exit(f"no checkpoint at {last}")
        export(torch.load(last, map_location="cpu", weights_only=False), args)
        return

    pack_dir = Path(args.pack_dir)
    UNetModel = import_unet(pack_dir)
    device = pick_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    channels_last = args.channels_last == "yes" or (args.channels_last == "auto" and device.type == "cuda")

    def amp():
        if device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return torch.autocast("cpu", enabled=False)

    # ---- resume or start
    ckpt = None
    if last.exists() and not args.fresh:
        ckpt = torch.load(last, map_location="cpu", weights_only=False)
        kw = ckpt["unet"]
        if kw != unet_kwargs(args):
            diff = {k: (kw.get(k), v) for k, v in unet_kwargs(args).items() if kw.get(k) != v}
            sys.exit(f"{last} holds another network (checkpoint vs flags: {diff}); use the same flags, another "
                     "--out-dir, or --fresh")
        for k in ("ema_decay", "min_scale", "max_scale", "csv_every"):
            if ckpt["args"][k] != getattr(args, k):
                print(f"note: --{k.replace('_', '-')} {getattr(args, k)} differs from the checkpoint's "
                      f"{ckpt['args'][k]}; using the checkpoint's", file=sys.stderr)
                setattr(args, k, ckpt["args"][k])
        if ckpt["args"]["batch"] != args.batch:
            print(f"note: batch {args.batch} (checkpoint used {ckpt['args']['batch']})", file=sys.stderr)
    else:
        kw = unet_kwargs(args)

    # ---- data
    data_dir = Path(args.data_dir)
    mode = args.data
    if mode == "auto":
        mode = "photos" if data_dir.is_dir() else "pack"
    if mode == "photos":
        held = load_holdout(data_dir)
        held_set = set(held)
        train_names = [n for n in list_photos(data_dir) if n not in held_set]
        assert not held_set & set(train_names)
        t0 = time.time()
        source = PhotoSource(open_photos(data_dir, train_names), kw["image_size"], args.min_scale, args.max_scale)
        val_u8 = make_val_crops(open_photos(data_dir, held), kw["image_size"], args.val_per_photo,
                                args.min_scale, args.max_scale)
        print(f"data: {len(train_names)} training photos from {data_dir} ({len(held)} held out; "
              f"{len(val_u8)} validation crops), loaded in {time.time() - t0:.1f} s")
    else:
        if not all((pack_dir / f).exists() for f in PACK_FILES):
            sys.exit(f"no photos at {data_dir} and no pack at {pack_dir} (make one with --pack where the photos are)")
        meta = json.loads((pack_dir / "pack.json").read_text())
        held = load_holdout(None)
        if meta["holdout_sha"] != sha256_lines(held) or meta["image_size"] != kw["image_size"]:
            sys.exit(f"the pack at {pack_dir} was made for another hold-out list or image size: re-pack")
        source = PackSource(np.load(pack_dir / "train.npy"), kw["image_size"])
        val_u8 = np.load(pack_dir / "val.npy")
        print(f"data: pack {pack_dir}: {len(source.crops)} crops of {source.crops.shape[1]}² "
              f"({meta['train_photos']} photos), {len(val_u8)} validation crops")

    # ---- model, EMA, optimiser, RNGs
    np_rng, gen = seeded_rngs(args.seed, device)
    model = build_unet(UNetModel, kw).to(device)
    ema = copy.deepcopy(model).requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.999), weight_decay=args.weight_decay)
    losses: list[float] = []
    val: dict[int, dict] = {}
    history: list[dict] = []
    step = 0
    if ckpt is not None:
        step, losses, val, history = resume_from(ckpt, model, ema, opt, np_rng, gen, device, args.seed, last)
        del ckpt
    elif args.init_from:
        from safetensors.torch import load_file
        sd = load_file(args.init_from)
        model.load_state_dict({k: v.float() for k, v in sd.items()})
        ema.load_state_dict(model.state_dict())
        print(f"initialised model and EMA from {args.init_from} (fresh optimiser, step 0)")
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        ema = ema.to(memory_format=torch.channels_last)
    model.train()
    ema.eval()
    train_model = torch.compile(model) if args.compile else model
    diffusion = Diffusion(device)
    validator = Validator(val_u8, diffusion, device, channels_last, amp)
    nparams = sum(p.numel() for p in model.parameters())
    print(f"network: ADM ch {kw['model_channels']} mult {kw['channel_mult']} {kw['image_size']}², "
          f"{nparams / 1e6:.2f} M parameters; device {device}"
          f"{' (' + torch.cuda.get_device_name(device) + ')' if device.type == 'cuda' else ''}, "
          f"{torch.get_num_threads()} threads; batch {args.batch}; target step {args.steps}"
          f"{f', budget {args.minutes:g} min' if args.minutes else ''}")

    stop = stop_on_signals()
    start_step, t_start = step, time.time()
    seg = segment_record(step, args.batch, device)
    holdout_sha = sha256_lines(held)

    def state():
        seg_now = dict(seg, end_step=step, seconds=round(time.time() - t_start, 1))
        return {"step": step, "unet": kw, "args": vars(args), "model": model.state_dict(), "ema": ema.state_dict(),
                "opt": opt.state_dict(), "rng": rng_state(np_rng, gen), "losses": losses, "val": val,
                "history": history + [seg_now], "holdout_sha": holdout_sha}

    def run_val():
        val[step] = {"ema": validator(ema), "model": validator(model)}
        print(f"  val @ {step}: ε-MSE EMA {val[step]['ema']:.5f}  raw {val[step]['model']:.5f}", flush=True)

    deadline = t_start + args.minutes * 60 if args.minutes else float("inf")
    last_save = time.time()
    pending: list = []
    speed = StepRate(step)
    out_dir.mkdir(parents=True, exist_ok=True)
    while step < args.steps and time.time() < deadline and stop["signal"] is None:
        deadline += wait_while_paused(out_dir, stop)
        lr = args.lr * min(1.0, (step + 1) / args.warmup) if args.warmup else args.lr
        for group in opt.param_groups:
            group["lr"] = lr
        x0 = to_float(torch.from_numpy(source.batch(np_rng, args.batch)), device, channels_last)
        t = torch.randint(0, diffusion.T, (args.batch,), generator=gen, device=device)
        noise = torch.randn(x0.shape, generator=gen, device=device)
        xt = diffusion.q_sample(x0, t, noise)
        with amp():
            pred = train_model(xt, t)
        loss = F.mse_loss(pred.float(), noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if args.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip)
        opt.step()
        ema_update(ema, model, min(args.ema_decay, (1 + step) / (10 + step)))
        step += 1
        pending.append(loss.detach())
        if step % args.log_every == 0 or step == args.steps:
            vals = torch.stack(pending).float().cpu().tolist()
            pending.clear()
            if not all(math.isfinite(v) for v in vals):
                sys.exit(f"non-finite loss at step {step}: not saving (resume from the last checkpoint)")
            losses.extend(vals)
            rate, eta = speed.update(step, args.steps, deadline)
            recent = losses[-args.csv_every:]
            print(f"step {step}/{args.steps}  loss {vals[-1]:.5f}  mean{len(recent)} {sum(recent) / len(recent):.5f}"
                  f"  {rate:.3f} step/s  lr {lr:.2e}  ETA {fmt_time(eta)}", flush=True)
        if step % args.val_every == 0:
            if pending:
                losses.extend(torch.stack(pending).float().cpu().tolist())
                pending.clear()
            run_val()
        if time.time() - last_save > args.save_minutes * 60:
            if pending:
                losses.extend(torch.stack(pending).float().cpu().tolist())
                pending.clear()
            save_checkpoint(last, state())
            last_save = time.time()
    if pending:
        losses.extend(torch.stack(pending).float().cpu().tolist())
        pending.clear()
    assert len(losses) == step, (len(losses), step)
    if step > start_step and step not in val and stop["signal"] is None:
        run_val()
    final = state()
    finish_session(last, final, start_step, t_start, stop, target=args.steps)
    with open(out_dir / "progress.txt", "w") as f:  # the curve so far, readable while training continues
        for s, tr, ve, vm in loss_rows(losses, val, args.csv_every):
            f.write(f"{s}\t{tr:.6f}\t{ve:.6f}\t{vm:.6f}\n")
    if stop["signal"] is None and not args.no_export:
        export(final, args)


if __name__ == "__main__":
    main()
