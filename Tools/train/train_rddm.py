#!/usr/bin/env python3
"""Train the project's own RDDM restoration model (one UNet, pred_res), resumable, on CPU or GPU.

What it trains (Liu et al., "Residual Denoising Diffusion Models", CVPR 2024; official code nachifur/RDDM,
`residual_denoising_diffusion_pytorch.py`: `gen_coefficients`, `ResidualDiffusion`, `Trainer`)
  A conditional residual diffusion for blind, same-size restoration: from a degraded photo I_in (one of the six
  degradations below, which kind is not given) it restores the clean I_0. All images are on [-1, 1].

    residual    I_res = I_in − I_0
    forward     x_t = I_0 + ᾱ_t·I_res + β̄_t·ε,   ε ~ N(0, I),  t uniform in {0 … T−1}
    network     f(cat(x_t, I_in), t) ≈ I_res      (objective "pred_res"; L1 loss, the official loss_type 'l1')
    schedule    T = 1000; α_i = (T − i)/S ("decreased"), β²_i = sum_scale·(i + 1)/S ("increased"), i = 0 … T−1,
                S = T(T+1)/2, computed in float64; ᾱ_t = clip(Σ_{i≤t} α_i, 0, 1), β̄²_t = clip(Σ_{i≤t} β²_i, 0, 1),
                β̄_t = √β̄²_t, all three stored as float32 (the official buffers alphas_cumsum, betas2_cumsum,
                betas_cumsum); sum_scale 0.01 (--sum-scale; the official default for conditional models).
    sampler     the official `ddim_sample` (η forced to 0 for conditional models, update "use_pred_noise"):
                times = reversed(torch.linspace(-1, T−1, K+1).int()) (K = --sample-steps, 5: 999, 799, 599, 399,
                199, −1); x = I_in + √sum_scale·z; for each pair (t, t'): res = clip(f(cat(x, I_in), t), −1, 1),
                x̂0 = clip(I_in − res, −1, 1), ε̂ = (x − I_in − (ᾱ_t − 1)·res)/β̄_t; if t' < 0: x = x̂0, else
                x = x − (ᾱ_t − ᾱ_t')·res − (β̄_t − √β̄²_t')·ε̂.

  Why pred_res and one network: the official restoration recipes use pred_res_noise with two UNets
  (share_encoder 0, one for I_res, one for ε); one UNet predicting I_res alone (share_encoder −1) halves the CPU of
  every sampling step, and with pred_res the estimate x̂0 = I_in − res is restoration-dominated: the network
  regresses the residual directly and ε only follows from it. sum_scale 0.01 keeps x_T = I_in + 0.1·z close to the
  input: the paper's setting for deterministic restoration tasks. Reasoned from the paper and the code, not
  ablated here.

Network
  RDDM's `UnetRes(dim, dim_mults, share_encoder=-1, condition=True)` is a holder of one lucidrains `Unet` named
  `unet0` whose module tree is exactly `denoising_diffusion_pytorch==0.31.1`'s `Unet(dim, dim_mults=…,
  channels=6, out_dim=3)` (checked: same state-dict names, shapes and order, bit-identical outputs with the same
  weights). So that package is the network here (a training dependency like torch): install it with
  `pip install --no-deps denoising-diffusion-pytorch==0.31.1` (it needs einops; its module also imports
  torchvision, ema-pytorch, accelerate and tqdm for its own Trainer: where they are missing, empty stand-ins take
  their place while it loads, as the Unet uses none of them). Our wrapper `RDDMNet` holds it as `unet0`, so the
  state dict is RDDM's `UnetRes` state dict unchanged: `unet0.<lucidrains key>`, no buffers.
  Default dim 24, dim_mults 1,2,4,8, GroupNorm groups 8: 5.35 M parameters, 10.7 MB in fp16 (dim 32: 9.33 M,
  18.7 MB; dim 24 takes 0.6× the CPU per step, so a CPU budget buys 1.6× the steps). `--bench` prints parameters and the CPU time of one forward at 256² (see Tools/train/README.md for
  the numbers measured here).
  On CUDA the step runs under bf16 autocast; the lucidrains weight standardisation and LayerNorm pick ε = 1e-5
  for a float32 input but 1e-3 for a bf16 one, so their inputs are cast to float32 by forward pre-hooks (not
  part of the state dict): training then uses the same ε as fp32 inference (and the Swift port).

Data: ../shared/data/train minus Tools/train/holdout.txt (never trained on)
  HR: a photo drawn uniformly, a random downscale s ~ U[--min-scale 0.5, --max-scale 1] (the box of side 96/s is
  resized, antialiased bicubic, to --crop 64²), a random horizontal flip (p 0.5); 8-bit RGB.
  I_in: the HR crop with ONE degradation, the kind drawn with the weights of --mix (default equal), the same kinds
  and formulas as Sources/Restoration/Degradations.swift (`restore … --simulate KIND:P…`). On x = HR/255 in
  [0, 1] (sRGB values, no linearisation), N(0, 1) independent per pixel and channel:
    noise      x + S/255·N(0, 1),                       S ~ U[5, 50]
    poisson    Poisson(P·x)/P per pixel and channel,    P ~ U[10, 100] photons per unit intensity
    defocus    x ⊛ disk(R), reflect borders,            R ~ U[1, 4] px; disk: size 2⌈R⌉+1, weight 1 on the pixels
               whose centre lies within R of the centre ((dx² + dy²) ≤ R²), 0 elsewhere, normalised to sum 1
    motion     x ⊛ line(L, A), reflect borders,         L ~ U[5, 15] px, A ~ U[0, 180) degrees; line: size 2⌈L/2⌉+1,
               points p_i = c + τ_i·(cos A, −sin A) (c the centre, y down) at τ_i = −L/2 + L·i/(n−1),
               i = 0 … n−1, n = ⌊8L⌋ + 1, each splatted bilinearly onto its 4 neighbouring pixels (weights
               outside the kernel dropped), normalised to sum 1
    jpeg       the 8-bit crop encoded by libjpeg (OpenCV) at quality Q, 4:2:0 chroma subsampling, decoded;
               Q ~ U{10, …, 50} (integers)
    lowlight   K·x^G + S/255·N(0, 1),                   K ~ U[0.25, 0.6], G ~ U[1.2, 1.8], S ~ U[2, 10]
  "⊛ … reflect borders" is the per-channel correlation Σ k(u, v)·x(i + v − r, j + u − r) with indices mirrored
  without repeating the edge pixel (… 2 1 | 0 1 2 …: cv2 BORDER_REFLECT_101, PyTorch 'reflect'); both kernels are
  point-symmetric, so correlation = convolution. Every degraded image is clipped to [0, 1] and rounded to 8 bits,
  ⌊255·x + 0.5⌋ (as a saved file would be). U[a, b] is uniform on the interval; all draws (photo, crop, flip,
  kind, parameters, noise) come from one numpy generator that the checkpoint saves, so resumes are exact.

Validation (every --val-every steps and at the end of each run; EMA weights)
  One fixed 128² crop (--val-crop, native scale, seeded position) of each of the 48 hold-out photos, degraded by
  every kind (parameters drawn once from the training ranges with a fixed seed per photo and kind, whatever
  --mix says), restored with the K-step sampler and fixed noise. Reported per kind: PSNR on 8-bit RGB (and BT.601
  Y) of the restored crop AND of the degraded input against the clean crop, means over the photos.
  --val-photos N uses the first N hold-out photos only (for quick tests; numbers then do not compare).

Optimisation
  Adam, betas (0.9, 0.99) and gradient-norm clip 1 as the official Trainer. The official lr is a constant 8e-5 at
  batch 1 with 2-step accumulation (effective batch 2); with our batch 8 (4× the samples per step) and runs of
  10⁴ rather than 10⁵ steps we use 3e-4 after a --warmup 200-step linear ramp, cosine-decayed to --lr-min 2e-5 at
  --steps (change --steps on a resume and the cosine stretches to the new target).
  EMA: the official ema-pytorch 0.0.10 EMA(beta 0.995, update_every 10) averages every 10th step with a decay
  that warms up as 1 − (1 + n)^(−2/3) (n = steps after the first 100) and reaches 0.995 after ≈ 2 900 steps: an
  averaging horizon of 1/(1 − 0.995) = 200 updates = 2 000 steps ≈ 4 000 samples. We update every step with
  decay 0.999 (horizon 1 000 steps = 8 000 samples at batch 8) and the usual warm-up min(0.999, (1+s)/(10+s)):
  a smoother average of comparable sample count that still follows a model improving fast over a short run.
  The EMA weights are what validation uses and what is exported.

Running (the conventions of Tools/train/README.md)
  python Tools/train/train_rddm.py --minutes 60     # one time-boxed chunk; run again to continue
  python Tools/train/train_rddm.py --export-only    # Models/rddm-own.* from the last checkpoint
  python Tools/train/train_rddm.py --bench          # parameters and CPU time of one forward at 256²
  touch .cache/train-rddm/PAUSE                     # pause at the next step (remove the file to go on);
                                                    # SIGSTOP / SIGCONT work too
  On a GPU machine the same command runs with bf16 autocast; --minutes bounds the run.
"""

from __future__ import annotations

import argparse
import copy
import importlib.metadata
import importlib.util
import json
import math
import os
import sys
import time
import types
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError:  # pragma: no cover
    sys.exit("PyTorch is missing: python3 -m venv venv && venv/bin/pip install torch numpy pillow opencv-python-headless "
             "einops safetensors matplotlib && venv/bin/pip install --no-deps denoising-diffusion-pytorch==0.31.1")

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_prior import (REPO, finish_session, cut_crop, ema_update, fmt_time, list_photos, load_holdout, open_photos,  # noqa: E402
                         pick_device, resume_from, rng_state, save_checkpoint, seeded_rngs, segment_record,
                         sha256_lines, stop_on_signals, wait_while_paused, StepRate)
from train_resshift import psnr_u8, psnr_y, write_curve  # noqa: E402
from rddm_degradations import degrade  # noqa: E402

DDP_VERSION = "0.31.1"      # denoising-diffusion-pytorch: its Unet is RDDM's unet0 module for module
VAL_SEED = 5151             # fixed validation crops, degradation parameters and sampler noise
KINDS = ("noise", "poisson", "defocus", "motion", "jpeg", "lowlight")   # Swift's SimulatedDegradation.Kind


# ----------------------------------------------------------------------------------------------------
# network


def import_unet():
    """`Unet` of denoising-diffusion-pytorch 0.31.1. Its module imports torchvision, ema-pytorch, accelerate and tqdm
    for its Trainer; where they are missing (a --no-deps install) empty stand-ins take their place while it loads."""
    try:
        version = importlib.metadata.version("denoising-diffusion-pytorch")
    except importlib.metadata.PackageNotFoundError:
        sys.exit(f"denoising-diffusion-pytorch is missing: pip install --no-deps denoising-diffusion-pytorch=={DDP_VERSION}")
    if version != DDP_VERSION:
        sys.exit(f"denoising-diffusion-pytorch {version} is installed; this trainer needs {DDP_VERSION} (its Unet is "
                 f"RDDM's unet0): pip install --no-deps denoising-diffusion-pytorch=={DDP_VERSION}")

    class _Unused:
        def __init__(self, *a, **k):
            raise RuntimeError("a stand-in for a package that only denoising-diffusion-pytorch's Trainer uses")

    def module(name, **attrs):
        m = types.ModuleType(name)
        m.__dict__.update(attrs)
        return m

    stand_ins = {"torchvision": [module("torchvision", transforms=module("torchvision.transforms"),
                                        utils=module("torchvision.utils"))],
                 "ema_pytorch": [module("ema_pytorch", EMA=_Unused)],
                 "accelerate": [module("accelerate", Accelerator=_Unused)],
                 "tqdm": [module("tqdm", tqdm=_Unused), module("tqdm.auto", tqdm=_Unused)]}
    added = []
    for top, modules in stand_ins.items():
        if top not in sys.modules and importlib.util.find_spec(top) is None:
            for m in modules:
                sys.modules[m.__name__] = m
                added.append(m.__name__)
    try:
        from denoising_diffusion_pytorch.denoising_diffusion_pytorch import Unet
    finally:
        for name in added:
            sys.modules.pop(name, None)
    return Unet


class RDDMNet(nn.Module):
    """RDDM's `UnetRes(share_encoder=-1, condition=True)`: one lucidrains Unet `unet0` on cat(x_t, I_in), 3 outputs."""

    def __init__(self, Unet, dim, dim_mults, groups=8):
        super().__init__()
        self.unet0 = Unet(dim, dim_mults=tuple(dim_mults), channels=6, out_dim=3, resnet_block_groups=groups)

    def forward(self, x_t, x_in, t):
        return self.unet0(torch.cat([x_t, x_in], 1), t)


def fp32_norm_inputs(net):
    """Forward pre-hooks casting the input of every weight-standardised conv and LayerNorm to float32, so that under
    bf16 autocast they pick the fp32 ε (1e-5) that inference uses rather than 1e-3 (see the docstring)."""
    def to_float(_module, args):
        return (args[0].float(),) + tuple(args[1:])
    n = 0
    for m in net.modules():
        if type(m).__name__ in ("WeightStandardizedConv2d", "LayerNorm") and type(m).__module__.startswith("denoising_diffusion"):
            m.register_forward_pre_hook(to_float)
            n += 1
    return n


def config_of(args) -> dict:
    """The exported "config" (Swift's RDDMConfiguration JSON keys)."""
    return {"dim": args.dim, "dim_mults": [int(v) for v in str(args.dim_mults).split(",")], "channels": 3,
            "condition_images": 1, "share_encoder": -1, "groups": args.groups}


def build_net(Unet, cfg):
    return RDDMNet(Unet, cfg["dim"], cfg["dim_mults"], cfg["groups"])


# ----------------------------------------------------------------------------------------------------
# diffusion


class ResidualDiffusion:
    """The official schedule (gen_coefficients, ResidualDiffusion.__init__), q_sample, the pred_res L1 loss and the
    DDIM-like sampler for pred_res (η 0)."""

    def __init__(self, timesteps, sum_scale, device):
        T = timesteps
        x = torch.linspace(1, T, T, dtype=torch.float64)
        scale = 0.5 * T * (T + 1)
        alphas = torch.flip(x, dims=[0]) / scale
        betas2 = x / scale * sum_scale
        a_cum = alphas.cumsum(0).clip(0, 1)
        b2_cum = betas2.cumsum(0).clip(0, 1)
        self.T, self.sum_scale = T, sum_scale
        self.alphas_cumsum = a_cum.float().to(device)
        self.betas2_cumsum = b2_cum.float().to(device)
        self.betas_cumsum = b2_cum.sqrt().float().to(device)

    def config(self, sampling_steps, degradations):
        return {"timesteps": self.T, "sum_scale": self.sum_scale, "objective": "pred_res",
                "sampling_timesteps": sampling_steps, "degradations": degradations}

    def q_sample(self, x0, res, t, noise):
        v = lambda a: a[t].view(-1, 1, 1, 1)  # noqa: E731
        return x0 + v(self.alphas_cumsum) * res + v(self.betas_cumsum) * noise

    def loss(self, net, x0, x_in, t, noise, amp):
        res = x_in - x0
        with amp():
            out = net(self.q_sample(x0, res, t, noise), x_in, t)
        return F.l1_loss(out.float(), res)

    @torch.no_grad()
    def sample(self, net, x_in, steps, gen, amp):
        times = list(reversed(torch.linspace(-1, self.T - 1, steps + 1).int().tolist()))
        z = torch.randn(x_in.shape, generator=gen).to(x_in.device)
        x = x_in + math.sqrt(self.sum_scale) * z
        ac, b2c, bc = self.alphas_cumsum, self.betas2_cumsum, self.betas_cumsum
        for t, t_next in zip(times[:-1], times[1:]):
            tt = torch.full((x.shape[0],), t, device=x.device, dtype=torch.long)
            with amp():
                res = net(x, x_in, tt).float().clamp(-1, 1)
            x0 = (x_in - res).clamp(-1, 1)
            if t_next < 0:
                x = x0
                continue
            eps = (x - x_in - (ac[t] - 1) * res) / bc[t]
            x = x - (ac[t] - ac[t_next]) * res - (bc[t] - b2c[t_next].sqrt()) * eps
        return x


# ----------------------------------------------------------------------------------------------------
# degradations: the formulas are in Tools/train/rddm_degradations.py (and the docstring); here only their training ranges


def sample_degradation(rng: np.random.Generator, kind: str) -> list[float]:
    """The parameters of one degradation of `kind`, as Swift's `--simulate KIND:P…` takes them."""
    if kind == "noise":
        return [rng.uniform(5, 50)]
    if kind == "poisson":
        return [rng.uniform(10, 100)]
    if kind == "defocus":
        return [rng.uniform(1, 4)]
    if kind == "motion":
        return [rng.uniform(5, 15), rng.uniform(0, 180)]
    if kind == "jpeg":
        return [int(rng.integers(10, 51))]
    if kind == "lowlight":
        return [rng.uniform(0.25, 0.6), rng.uniform(1.2, 1.8), rng.uniform(2, 10)]
    raise ValueError(kind)


def spec(kind: str, p: list) -> str:
    return ":".join([kind] + [str(v) if isinstance(v, int) else f"{v:.3g}" for v in p])



def parse_mix(text: str) -> dict[str, float]:
    """"noise=1,jpeg=2" → weights of every kind (those not named get 0); "equal" → all 1."""
    if text.strip() == "equal":
        return {k: 1.0 for k in KINDS}
    w = {k: 0.0 for k in KINDS}
    for part in text.split(","):
        name, _, value = part.partition("=")
        if name.strip() not in w:
            sys.exit(f"--mix {text}: unknown kind {name.strip()!r} (kinds: {', '.join(KINDS)})")
        w[name.strip()] = float(value) if value else 1.0
    if sum(w.values()) <= 0 or min(w.values()) < 0:
        sys.exit(f"--mix {text}: weights must be ≥ 0 and not all 0")
    return w


def mix_text(w: dict) -> str:
    total = sum(w.values())
    return ", ".join(f"{k} {w[k] / total:.0%}" for k in KINDS if w[k] > 0)


def mix_description(w: dict) -> str:
    """The one-line description in the export's metadata."""
    ranges = {"noise": "noise σ U[5,50]/255", "poisson": "poisson peak U[10,100]", "defocus": "defocus disk r U[1,4] px",
              "motion": "motion line L U[5,15] px angle U[0,180) deg", "jpeg": "jpeg q U{10..50} 4:2:0",
              "lowlight": "lowlight U[0.25,0.6]·x^U[1.2,1.8] + σ U[2,10]/255"}
    total = sum(w.values())
    return ("one per image: " + "; ".join(f"{ranges[k]} (p {w[k] / total:.3g})" for k in KINDS if w[k] > 0)
            + "; clipped to [0,1], 8-bit (Sources/Restoration/Degradations.swift)")


class PairSource:
    """Random (HR, degraded) pairs: HR crops with a random downscale and horizontal flip, one degradation each."""

    def __init__(self, photos, crop, min_scale, max_scale, weights):
        self.photos, self.size, self.min_scale, self.max_scale = photos, crop, min_scale, max_scale
        self.set_mix(weights)

    def set_mix(self, weights):
        total = sum(weights.values())
        self.p = np.array([weights[k] / total for k in KINDS])

    def batch(self, rng: np.random.Generator, n: int):
        hr = np.empty((n, self.size, self.size, 3), np.uint8)
        lq = np.empty_like(hr)
        for j in range(n):
            img = self.photos[int(rng.integers(len(self.photos)))]
            c = cut_crop(img, rng, self.size, self.min_scale, self.max_scale)
            hr[j] = c[:, ::-1] if rng.random() < 0.5 else c
            kind = KINDS[int(rng.choice(len(KINDS), p=self.p))]
            lq[j] = degrade(hr[j], kind, sample_degradation(rng, kind), rng)
        return hr, lq


def to_signed(a_u8: np.ndarray, device) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a_u8)).to(device).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0).contiguous()


def to_u8(x: torch.Tensor) -> np.ndarray:
    return ((x.float() + 1) * 127.5).clamp(0, 255).round().byte().permute(0, 2, 3, 1).cpu().numpy()


# ----------------------------------------------------------------------------------------------------
# validation


class Validator:
    def __init__(self, photos, crop, device, amp, steps):
        self.hr = np.stack([cut_crop(img, np.random.default_rng([VAL_SEED, i]), crop, 1.0, 1.0, scale=1.0)
                            for i, img in enumerate(photos)])
        self.lq, self.specs = {}, {}
        for j, kind in enumerate(KINDS):
            outs, specs = [], []
            for i, h in enumerate(self.hr):
                rng = np.random.default_rng([VAL_SEED, 1 + j, i])
                p = sample_degradation(rng, kind)
                outs.append(degrade(h, kind, p, rng))
                specs.append(spec(kind, p))
            self.lq[kind], self.specs[kind] = np.stack(outs), specs
        self.input_scores = {k: self.scores(v) for k, v in self.lq.items()}
        self.device, self.amp, self.steps = device, amp, steps

    def scores(self, out_u8):
        return {"rgb": float(np.mean([psnr_u8(o, h) for o, h in zip(out_u8, self.hr)])),
                "y": float(np.mean([psnr_y(o, h) for o, h in zip(out_u8, self.hr)]))}

    @torch.no_grad()
    def __call__(self, net, diffusion, batch=16):
        was = net.training
        net.eval()
        out = {}
        for kind, lq in self.lq.items():
            gen = torch.Generator(device="cpu").manual_seed(VAL_SEED)
            restored = []
            for i in range(0, len(lq), batch):
                x_in = to_signed(lq[i:i + batch], self.device)
                restored.append(to_u8(diffusion.sample(net, x_in, self.steps, gen, self.amp)))
            s = self.scores(np.concatenate(restored))
            out[kind] = {**s, "input_rgb": self.input_scores[kind]["rgb"], "input_y": self.input_scores[kind]["y"]}
        net.train(was)
        return out


def val_line(v: dict) -> str:
    mean = np.mean([r["rgb"] for r in v.values()])
    mean_in = np.mean([r["input_rgb"] for r in v.values()])
    return (f"mean {mean:.2f} dB (input {mean_in:.2f});  "
            + "  ".join(f"{k} {r['rgb']:.2f} ({r['input_rgb']:.2f})" for k, r in v.items()))


# ----------------------------------------------------------------------------------------------------
# export


def export(ckpt, args):
    from safetensors.torch import save_file
    out = Path(args.export_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = str(out / args.name)
    cfg, a = ckpt["config"], ckpt["args"]
    names = {n: tuple(p.shape) for n, p in build_net(import_unet(), cfg).named_parameters()}
    tensors = {k: v.detach().to("cpu", torch.float16).contiguous() for k, v in ckpt["ema"].items()}
    assert {k: tuple(v.shape) for k, v in tensors.items()} == names, "the EMA state dict is not RDDM's UnetRes"
    hist = ckpt.get("history", [])
    hours = sum(h["seconds"] for h in hist) / 3600
    meta = {"format": "pt", "family": "rddm-own", "weights": "ema", "step": str(ckpt["step"]),
            "config": json.dumps(cfg, separators=(",", ":")),
            "diffusion": json.dumps(ckpt["diffusion"], separators=(",", ":")),
            "network": f"denoising-diffusion-pytorch {DDP_VERSION} Unet(dim, dim_mults, channels=6, out_dim=3) as UnetRes.unet0",
            "ema_decay": str(a["ema_decay"]), "hours": f"{hours:.2f}", "train_photos": str(ckpt.get("train_photos", "")),
            "holdout_sha": str(ckpt.get("holdout_sha", "")), "trainer": "Tools/train/train_rddm.py"}
    save_file(tensors, f"{stem}.safetensors", metadata=meta)
    files = [f"{stem}.safetensors"]
    files += write_curve(stem, ckpt["losses"], ckpt["val"], a["csv_every"],
                         f"{args.name}: RDDM pred_res, dim {cfg['dim']} {cfg['dim_mults']}, step {ckpt['step']}",
                         loss_name="train_l1_res", loss_label="train L1(res)", loss_axis="L1 on I_res ([-1, 1] scale)",
                         val_axis=f"validation PSNR-RGB (dB, EMA, {ckpt['diffusion']['sampling_timesteps']} steps)",
                         baseline=("input_rgb", "input_psnr_rgb", "degraded input, {}"), val_label="restored, {}")
    nparams = sum(t.numel() for t in tensors.values())
    Path(f"{stem}.md").write_text(model_card(ckpt, args, nparams, files))
    files.append(f"{stem}.md")
    for f in files:
        size = os.path.getsize(f)
        print(f"exported {f}  {size / 1e6:.2f} MB{'  (OVER 25 MB)' if size > 25e6 else ''}")


def model_card(ckpt, args, nparams, files):
    cfg, a, val, hist, d = ckpt["config"], ckpt["args"], ckpt["val"], ckpt.get("history", []), ckpt["diffusion"]
    last = val[max(val)] if val else {}
    rows = "\n".join(f"  | {k} | {r['input_rgb']:.2f} | {r['rgb']:.2f} | {r['rgb'] - r['input_rgb']:+.2f} | "
                     f"{r['input_y']:.2f} | {r['y']:.2f} |" for k, r in last.items())
    if last:
        rows += (f"\n  | **mean** | {np.mean([r['input_rgb'] for r in last.values()]):.2f} | "
                 f"{np.mean([r['rgb'] for r in last.values()]):.2f} | "
                 f"{np.mean([r['rgb'] - r['input_rgb'] for r in last.values()]):+.2f} | "
                 f"{np.mean([r['input_y'] for r in last.values()]):.2f} | {np.mean([r['y'] for r in last.values()]):.2f} |")
    vtxt = ("  | kind | input PSNR-RGB | restored PSNR-RGB | gain | input PSNR-Y | restored PSNR-Y |\n"
            "  |---|---|---|---|---|---|\n" + rows) if last else "  - (no validation yet)"
    sess = "\n".join(f"  - {h['started']}: steps {h['start_step']}→{h['end_step']}, {fmt_time(h['seconds'])}, "
                     f"{h['device']}, batch {h['batch']}, mix {h.get('mix', mix_text(parse_mix(a['mix'])))}" for h in hist)
    hours = sum(h["seconds"] for h in hist) / 3600
    return "\n".join([
        f"# {a['name']} (`Models/{a['name']}.safetensors`) — written by Tools/train/train_rddm.py",
        "",
        "- What: the project's own RDDM model (Liu et al., CVPR 2024) for blind same-size restoration of photos with "
        "noise, Poisson noise, defocus or motion blur, JPEG artefacts or low light; EMA weights, fp16, "
        f"{nparams / 1e6:.2f} M parameters; keys exactly RDDM's `UnetRes(share_encoder=-1, condition=True)` state dict "
        "(`unet0.*`, no buffers); configuration and diffusion settings in the file's `__metadata__` (family `rddm-own`).",
        f"- Network: one lucidrains UNet (denoising-diffusion-pytorch {DDP_VERSION} `Unet`, = RDDM's `unet0`), dim "
        f"{cfg['dim']}, dim_mults {cfg['dim_mults']}, GroupNorm {cfg['groups']}, input cat(x_t, I_in) (6 channels), "
        "output I_res (3 channels).",
        f"- Recipe: objective pred_res (the network predicts I_res = I_in − I_0; L1 loss as the official "
        f"loss_type 'l1'), T {d['timesteps']}, sum_scale {d['sum_scale']}, sampler the official DDIM-like update with "
        f"η 0 in {d['sampling_timesteps']} steps from I_in + √sum_scale·z. Why: one UNet costs half the CPU of the official "
        "two (pred_res_noise, share_encoder 0); with pred_res, x̂0 = I_in − res is restoration-dominated, and sum_scale "
        "0.01 keeps x_T close to the input — the paper's setting for deterministic restoration tasks. Reasoned, not "
        f"ablated. Adam (0.9, 0.99), lr {a['lr']} after a {a['warmup']}-step warm-up, cosine to {a['lr_min']} at step "
        f"{a['steps']}, gradient clip {a['grad_clip']}, batch {a['batch']}, EMA {a['ema_decay']} per step, seed {a['seed']}.",
        f"- Data: ../shared/data/train minus Tools/train/holdout.txt ({ckpt.get('train_photos', '?')} photos: BSDS500 "
        "train+test, Sun–Hays 80). **Licence note: research-only photographs; whether the weights may be used beyond "
        f"research is not settled.** HR crops {a['crop']}² (downscale U[{a['min_scale']}, {a['max_scale']}], horizontal "
        f"flips), each degraded once, the kind drawn by weight — {d['degradations']} (formulas in the script's docstring).",
        f"- Steps: {ckpt['step']}, {hours:.2f} h in all; sessions:",
        sess or "  - (none)",
        f"- Curve: {', '.join('Models/' + Path(f).name for f in files if '-curve' in f)}",
        f"- Validation at step {max(val) if val else '—'} (EMA weights, {d['sampling_timesteps']}-step sampler, fixed "
        f"noise): one {a['val_crop']}² crop of each of {ckpt.get('val_photos', '?')} hold-out photos, degraded by each "
        "kind (parameters drawn once from the training ranges, fixed seed); PSNR (dB, 8-bit) against the clean crop, "
        "mean over the photos:",
        "",
        vtxt,
        "",
        ("- Where it helps and where not yet: " + "; ".join(
            f"{'better' if r['rgb'] > r['input_rgb'] else 'WORSE'} than the degraded input on {k} ({r['rgb'] - r['input_rgb']:+.2f} dB)"
            for k, r in last.items()) + (". Kinds where it is worse need more training (resume with make train-rddm); until then "
            "restore those with another method." if any(r['rgb'] <= r['input_rgb'] for r in last.values()) else ".")) if last else "",
        "- Evaluation: make eval-rddm (Benchmarks/QUALITY.md, photos never trained on).",
    ]) + "\n"


# ----------------------------------------------------------------------------------------------------
# speed


def bench(args):
    """Parameters, fp16 size, FLOPs and the CPU time of one forward at --bench-size² for each --bench-dims and
    --bench-threads."""
    from torch.utils.flop_counter import FlopCounterMode
    Unet = import_unet()
    s = args.bench_size
    for dim in [int(v) for v in args.bench_dims.split(",")]:
        cfg = dict(config_of(args), dim=dim)
        torch.manual_seed(0)
        net = build_net(Unet, cfg).eval()
        n = sum(p.numel() for p in net.parameters())
        x, t = torch.randn(1, 3, s, s), torch.tensor([500])
        with torch.no_grad(), FlopCounterMode(display=False) as fc:
            net(x, x, t)
        line = f"dim {dim} mults {cfg['dim_mults']}: {n / 1e6:.2f} M parameters, {2 * n / 1e6:.1f} MB fp16, " \
               f"{fc.get_total_flops() / 1e9:.0f} GFLOP per forward at {s}²"
        for threads in [int(v) for v in args.bench_threads.split(",")]:
            torch.set_num_threads(threads)
            times = []
            with torch.no_grad():
                for _ in range(args.bench_repeats + 1):
                    t0 = time.perf_counter()
                    net(x, x, t)
                    times.append(time.perf_counter() - t0)
            times = sorted(times[1:])
            line += f"; {threads} thread{'s' if threads > 1 else ''}: best {times[0]:.2f} s, median {times[len(times) // 2]:.2f} s"
        print(line, flush=True)


# ----------------------------------------------------------------------------------------------------


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    g = p.add_argument_group("data")
    g.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data" / "train"))
    g.add_argument("--crop", type=int, default=64, help="HR training crop (a multiple of 8 for dim_mults of 4 levels)")
    g.add_argument("--min-scale", type=float, default=0.5)
    g.add_argument("--max-scale", type=float, default=1.0)
    g.add_argument("--mix", default="equal", help="degradation weights, e.g. 'noise=2,jpeg=1,defocus=1' (unnamed "
                   f"kinds get 0) or 'equal'; kinds: {', '.join(KINDS)}")
    g.add_argument("--val-crop", type=int, default=128)
    g.add_argument("--val-photos", type=int, default=12, help="validate on the first N hold-out photos only (0: all)")
    g = p.add_argument_group("network and diffusion")
    g.add_argument("--dim", type=int, default=24)
    g.add_argument("--dim-mults", default="1,2,4,8")
    g.add_argument("--groups", type=int, default=8, help="GroupNorm groups (resnet_block_groups)")
    g.add_argument("--timesteps", type=int, default=1000)
    g.add_argument("--sum-scale", type=float, default=0.01)
    g.add_argument("--sample-steps", type=int, default=5, help="sampling steps of validation (and the exported default)")
    g = p.add_argument_group("optimisation")
    g.add_argument("--batch", type=int, default=8)
    g.add_argument("--lr", type=float, default=3e-4)
    g.add_argument("--lr-min", type=float, default=2e-5, help="cosine floor, reached at --steps")
    g.add_argument("--warmup", type=int, default=200)
    g.add_argument("--ema-decay", type=float, default=0.999)
    g.add_argument("--grad-clip", type=float, default=1.0)
    g.add_argument("--seed", type=int, default=0)
    g = p.add_argument_group("budget, checkpoints")
    g.add_argument("--steps", type=int, default=20_000, help="total steps to reach (across resumes)")
    g.add_argument("--minutes", type=float, default=0.0)
    g.add_argument("--out-dir", default=str(REPO / ".cache" / "train-rddm"))
    g.add_argument("--fresh", action="store_true")
    g.add_argument("--save-minutes", type=float, default=10.0)
    g.add_argument("--log-every", type=int, default=10)
    g.add_argument("--val-every", type=int, default=1000, help="steps between validations (one restores 48 photos × 6 kinds "
                   "with 5 steps at 128²: ≈ 8 min on 1 CPU thread)")
    g.add_argument("--no-val", action="store_true")
    g.add_argument("--csv-every", type=int, default=50)
    g.add_argument("--device", default="auto")
    g.add_argument("--threads", type=int, default=0)
    g.add_argument("--name", default="rddm-own")
    g.add_argument("--export-dir", default=str(REPO / "Models"))
    g.add_argument("--export-only", action="store_true")
    g.add_argument("--no-export", action="store_true")
    g = p.add_argument_group("speed (--bench)")
    g.add_argument("--bench", action="store_true")
    g.add_argument("--bench-size", type=int, default=256)
    g.add_argument("--bench-dims", default="24,32")
    g.add_argument("--bench-threads", default="1,2")
    g.add_argument("--bench-repeats", type=int, default=3)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        import cv2
        cv2.setNumThreads(1)   # the data are small images: no thread pool competing with torch
    except ImportError:
        sys.exit("OpenCV is missing: pip install opencv-python-headless")
    if args.bench:
        bench(args)
        return
    out_dir = Path(args.out_dir)
    last = out_dir / "last.pt"
    if args.export_only:
        if not last.exists():
            sys.exit(f"no checkpoint at {last}")
        export(torch.load(last, map_location="cpu", weights_only=False), args)
        return
    Unet = import_unet()
    device = pick_device(args.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    def amp():
        return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)

    cfg = config_of(args)
    ckpt = None
    if last.exists() and not args.fresh:
        ckpt = torch.load(last, map_location="cpu", weights_only=False)
        if ckpt["config"] != cfg:
            sys.exit(f"{last} holds another network ({ckpt['config']}); use the same flags, another --out-dir, or --fresh")
        for k in ("timesteps", "sum_scale", "crop", "csv_every", "val_crop", "val_photos", "sample_steps"):
            if ckpt["args"][k] != getattr(args, k):
                print(f"note: --{k.replace('_', '-')} {getattr(args, k)} differs from the checkpoint's {ckpt['args'][k]}; "
                      "using the checkpoint's", file=sys.stderr)
                setattr(args, k, ckpt["args"][k])
        if ckpt["args"]["mix"] != args.mix:
            print(f"note: --mix {args.mix} replaces the checkpoint's {ckpt['args']['mix']} from step {ckpt['step']} "
                  "(each session records its mix)", file=sys.stderr)
    weights = parse_mix(args.mix)
    data_dir = Path(args.data_dir)
    if not data_dir.is_dir():
        sys.exit(f"no photos at {data_dir}")
    held = load_holdout(data_dir)
    held_set = set(held)
    train_names = [n for n in list_photos(data_dir) if n not in held_set]
    assert not held_set & set(train_names)
    t0 = time.time()
    source = PairSource(open_photos(data_dir, train_names), args.crop, args.min_scale, args.max_scale, weights)
    val_names = held[:args.val_photos] if args.val_photos else held
    validator = None if args.no_val else Validator(open_photos(data_dir, val_names), args.val_crop, device, amp, args.sample_steps)
    diffusion = ResidualDiffusion(args.timesteps, args.sum_scale, device)
    print(f"data: {len(train_names)} training photos ({len(held)} held out, {len(val_names)} validated), crops "
          f"{args.crop}², mix {mix_text(weights)}; loaded in {time.time() - t0:.1f} s", flush=True)

    np_rng, gen = seeded_rngs(args.seed, device)
    net = build_net(Unet, cfg).to(device)
    ema = copy.deepcopy(net).requires_grad_(False)
    if device.type == "cuda":
        fp32_norm_inputs(net)
        fp32_norm_inputs(ema)
    opt = torch.optim.Adam(net.parameters(), lr=args.lr, betas=(0.9, 0.99))
    losses, val, history, step = [], {}, [], 0
    if ckpt is not None:
        step, losses, val, history = resume_from(ckpt, net, ema, opt, np_rng, gen, device, args.seed, last)
        ckpt = None
    net.train()
    ema.eval()
    nparams = sum(p.numel() for p in net.parameters())
    print(f"network: RDDM UnetRes(share_encoder=-1) = one lucidrains Unet dim {cfg['dim']} mults {cfg['dim_mults']}, "
          f"{nparams / 1e6:.2f} M parameters; pred_res, T {args.timesteps}, sum_scale {args.sum_scale}; device {device}"
          f"{' (' + torch.cuda.get_device_name(device) + ', bf16 autocast)' if device.type == 'cuda' else ''}, "
          f"{torch.get_num_threads()} threads; batch {args.batch}; target step {args.steps}"
          f"{f', budget {args.minutes:g} min' if args.minutes else ''}", flush=True)

    stop = stop_on_signals()
    start_step, t_start = step, time.time()
    seg = dict(segment_record(step, args.batch, device), mix=mix_text(weights))

    def state():
        return {"step": step, "config": cfg, "diffusion": diffusion.config(args.sample_steps, mix_description(weights)),
                "args": vars(args), "model": net.state_dict(), "ema": ema.state_dict(), "opt": opt.state_dict(),
                "rng": rng_state(np_rng, gen), "losses": losses, "val": val,
                "history": history + [dict(seg, end_step=step, seconds=round(time.time() - t_start, 1))],
                "holdout_sha": sha256_lines(held), "train_photos": len(train_names), "val_photos": len(val_names)}

    def lr_at(s):
        if args.warmup and s < args.warmup:
            return args.lr * (s + 1) / args.warmup
        f = min(1.0, max(0.0, (s - args.warmup) / max(1, args.steps - args.warmup)))
        return args.lr_min + 0.5 * (args.lr - args.lr_min) * (1 + math.cos(math.pi * f))

    def run_val():
        if validator is not None:
            tv = time.time()
            val[step] = validator(ema, diffusion)
            print(f"  val @ {step} (EMA, {args.sample_steps} steps, PSNR-RGB restored (input)): {val_line(val[step])}  "
                  f"[{time.time() - tv:.0f} s]", flush=True)

    deadline = t_start + args.minutes * 60 if args.minutes else float("inf")
    last_save, speed = time.time(), StepRate(step)
    out_dir.mkdir(parents=True, exist_ok=True)
    while step < args.steps and time.time() < deadline and stop["signal"] is None:
        deadline += wait_while_paused(out_dir, stop)
        for group in opt.param_groups:
            group["lr"] = lr_at(step)
        hr_u8, lq_u8 = source.batch(np_rng, args.batch)
        x0, x_in = to_signed(hr_u8, device), to_signed(lq_u8, device)
        t = torch.randint(0, diffusion.T, (args.batch,), generator=gen, device=device)
        noise = torch.randn(x0.shape, generator=gen, device=device)
        loss = diffusion.loss(net, x0, x_in, t, noise, amp)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if args.grad_clip:
            torch.nn.utils.clip_grad_norm_(net.parameters(), args.grad_clip)
        opt.step()
        ema_update(ema, net, min(args.ema_decay, (1 + step) / (10 + step)))
        step += 1
        losses.append(float(loss.detach()))
        if not math.isfinite(losses[-1]):
            sys.exit(f"non-finite loss at step {step}: not saving (resume from the last checkpoint)")
        if step % args.log_every == 0 or step == args.steps:
            rate, eta = speed.update(step, args.steps, deadline)
            recent = losses[-args.csv_every:]
            print(f"step {step}/{args.steps}  loss {losses[-1]:.5f}  mean{len(recent)} {sum(recent) / len(recent):.5f}  "
                  f"lr {lr_at(step - 1):.2e}  {rate:.3f} step/s  ETA {fmt_time(eta)}", flush=True)
        if step % args.val_every == 0:
            run_val()
        if time.time() - last_save > args.save_minutes * 60:
            save_checkpoint(last, state())
            last_save = time.time()
    if step > start_step and step not in val and stop["signal"] is None:
        run_val()
    final = state()
    h = final["history"][-1]
    finish_session(last, final, start_step, t_start, stop, target=args.steps,
                   log_line=f"batch {h['batch']}  mix {h['mix']}{'  val ' + val_line(val[step]) if step in val else ''}")
    if stop["signal"] is None and not args.no_export:
        export(final, args)


if __name__ == "__main__":
    main()
