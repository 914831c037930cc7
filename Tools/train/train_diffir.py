#!/usr/bin/env python3
"""Train the project's own DiffIR ×4 super-resolution model (both official stages), resumable, on CPU or GPU.

What it trains (Xia et al., "DiffIR: Efficient Diffusion Model for Image Restoration", ICCV 2023)
  Stage 1 (`DiffIRS1`): CPEN_S1 sees the LR image and pixel_unshuffle(HR, 4) (3 + 48 channels) and compresses
  them into a 256-d IR prior representation (IPR); DIRformer restores the LR image under that IPR. Loss: L1(SR, HR).
  Stage 2 (`DiffIRS2`): CPEN_S2 sees the LR image only; a 4-step x0-parameterised diffusion on the 256-d IPR
  (denoise MLP, posterior mean only, β linear in √β from 0.1 to 0.99) must reproduce stage 1's IPR, which the
  frozen stage-1 CPEN computes as the target. As the official DiffIR_S2_model.py: during the first
  --encoder-steps of stage 2 only CPEN_S2 and the MLP learn, with L1(IPR_S2, IPR_S1) ("l_abs"); then DIRformer
  (initialised from stage 1) is fine-tuned jointly with L1(SR, HR) + l_abs. In training the chain starts at
  q_sample(IPR_S1, T − 1) as the official DDPM.forward does; at inference from N(0, I).
  No perceptual or GAN terms (the official GAN variant adds them): we aim at fidelity (PSNR), no VGG weights here.

Network (our own PyTorch statement of the official modules; state-dict names identical to the official
DiffIRS2, so `DiffIRS2(**config).load_state_dict(ours, strict=False)` misses only the diffusion.* aliases and
buffers; Tests/NetworksTests/DiffIRTests prove our Swift port equals the official code)
  Chosen size for CPU speed (×4 of a 256² LR in ≤ 3 s on 2 cores in the Swift engine): dim 24, blocks
  [2, 2, 2, 2], refinement 2, heads [1, 2, 4, 8], FFN expansion 2.0, BiasFree LayerNorm (as the official SR
  models), CPEN with 2 ResBlocks (the official 9 cost as much as the whole DIRformer here), 1 denoise layer.

Data: as train_resshift.py (../shared/data/train minus Tools/train/holdout.txt; HR crops with a random downscale
  and flip; LR: --clean-prob clean bicubic:4 / pool:4, else our one-order Real-ESRGAN-style pipeline).
Validation: the 48 hold-out photos, one 256² HR crop each, "bicubic" and "real" LR as train_resshift.py;
  the stage-2 model (EMA) with IPR₀ from a fixed seed, PSNR-RGB and PSNR-Y against bicubic upsampling.

Running (the conventions of Tools/train/README.md)
  python Tools/train/train_diffir.py --minutes 60     # one time-boxed chunk; run again to continue
  python Tools/train/train_diffir.py --export-only    # Models/diffir-x4-own.* from the last checkpoint
  touch .cache/train-diffir/PAUSE                     # pause at the next step (remove the file to go on);
                                                      # SIGSTOP / SIGCONT work too
  On a GPU machine the same command runs with bf16 autocast; --minutes bounds the run.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError:  # pragma: no cover
    sys.exit("PyTorch is missing: python3 -m venv venv && venv/bin/pip install torch numpy pillow safetensors matplotlib")

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_prior import (REPO, finish_session, fmt_time, list_photos, load_holdout, open_photos, pick_device,  # noqa: E402
                         resume_from, rng_state, save_checkpoint, seeded_rngs, segment_record, sha256_lines,
                         stop_on_signals, cut_crop, wait_while_paused, StepRate)
from train_resshift import (SF, VAL_BICUBIC, VAL_REAL, VAL_SEED, PairSource, degrade, psnr_u8, psnr_y,  # noqa: E402
                            write_curve)


# ----------------------------------------------------------------------------------------------------
# network (official module tree and names)


class LayerNorm(nn.Module):
    """Over channels per pixel, ε 1e-5, biased variance; BiasFree divides x (not x − μ) by σ."""

    def __init__(self, c, with_bias):
        super().__init__()
        self.body = nn.Module()
        self.body.weight = nn.Parameter(torch.ones(c))
        if with_bias:
            self.body.bias = nn.Parameter(torch.zeros(c))
        self.with_bias = with_bias

    def forward(self, x):
        var = x.var(1, keepdim=True, unbiased=False)
        w = self.body.weight[None, :, None, None]
        if self.with_bias:
            return (x - x.mean(1, keepdim=True)) / torch.sqrt(var + 1e-5) * w + self.body.bias[None, :, None, None]
        return x / torch.sqrt(var + 1e-5) * w


def modulate(x, kernel, ipr):
    k = kernel(ipr)[:, :, None, None]
    k1, k2 = k.chunk(2, dim=1)
    return x * k1 + k2


class Attention(nn.Module):
    def __init__(self, c, heads):
        super().__init__()
        self.heads = heads
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.kernel = nn.Sequential(nn.Linear(256, 2 * c, bias=False))
        self.qkv = nn.Conv2d(c, 3 * c, 1, bias=False)
        self.qkv_dwconv = nn.Conv2d(3 * c, 3 * c, 3, padding=1, groups=3 * c, bias=False)
        self.project_out = nn.Conv2d(c, c, 1, bias=False)

    def forward(self, x, ipr):
        b, c, h, w = x.shape
        q, k, v = self.qkv_dwconv(self.qkv(modulate(x, self.kernel, ipr))).chunk(3, dim=1)
        q, k, v = (t.reshape(b, self.heads, c // self.heads, h * w) for t in (q, k, v))
        q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
        attn = ((q @ k.transpose(-2, -1)) * self.temperature).softmax(dim=-1)
        return self.project_out((attn @ v).reshape(b, c, h, w))


class FeedForward(nn.Module):
    def __init__(self, c, factor):
        super().__init__()
        hidden = int(c * factor)
        self.project_in = nn.Conv2d(c, 2 * hidden, 1, bias=False)
        self.dwconv = nn.Conv2d(2 * hidden, 2 * hidden, 3, padding=1, groups=2 * hidden, bias=False)
        self.project_out = nn.Conv2d(hidden, c, 1, bias=False)
        self.kernel = nn.Sequential(nn.Linear(256, 2 * c, bias=False))

    def forward(self, x, ipr):
        a, g = self.dwconv(self.project_in(modulate(x, self.kernel, ipr))).chunk(2, dim=1)
        return self.project_out(F.gelu(a) * g)


class Block(nn.Module):
    def __init__(self, c, heads, factor, with_bias):
        super().__init__()
        self.norm1, self.attn = LayerNorm(c, with_bias), Attention(c, heads)
        self.norm2, self.ffn = LayerNorm(c, with_bias), FeedForward(c, factor)

    def forward(self, x, ipr):
        x = x + self.attn(self.norm1(x), ipr)
        return x + self.ffn(self.norm2(x), ipr)


class Blocks(nn.ModuleList):
    def forward(self, x, ipr):
        for block in self:
            x = block(x, ipr)
        return x


class Resample(nn.Module):
    """Downsample / Upsample: `body` = conv 3×3 then pixel (un)shuffle ×2."""

    def __init__(self, conv, shuffle):
        super().__init__()
        self.body = nn.Sequential(conv, shuffle)

    def forward(self, x):
        return self.body(x)


resample = Resample


class DIRformer(nn.Module):
    """×4 DIRformer (scale 4: no unshuffle in front; tail conv+shuffle twice, conv, plus nearest ×4 of the input)."""

    def __init__(self, dim, num_blocks, refinement, heads, factor, layer_norm):
        super().__init__()
        wb = layer_norm == "WithBias"

        def blocks(n, c, h):
            return Blocks([Block(c, h, factor, wb) for _ in range(n)])

        conv = lambda ci, co, k=3, bias=False: nn.Conv2d(ci, co, k, padding=k // 2, bias=bias)  # noqa: E731
        d = dim
        self.patch_embed = nn.Module()
        self.patch_embed.proj = conv(3, d)
        self.encoder_level1 = blocks(num_blocks[0], d, heads[0])
        self.down1_2 = resample(conv(d, d // 2), nn.PixelUnshuffle(2))
        self.encoder_level2 = blocks(num_blocks[1], 2 * d, heads[1])
        self.down2_3 = resample(conv(2 * d, d), nn.PixelUnshuffle(2))
        self.encoder_level3 = blocks(num_blocks[2], 4 * d, heads[2])
        self.down3_4 = resample(conv(4 * d, 2 * d), nn.PixelUnshuffle(2))
        self.latent = blocks(num_blocks[3], 8 * d, heads[3])
        self.up4_3 = resample(conv(8 * d, 16 * d), nn.PixelShuffle(2))
        self.reduce_chan_level3 = conv(8 * d, 4 * d, 1)
        self.decoder_level3 = blocks(num_blocks[2], 4 * d, heads[2])
        self.up3_2 = resample(conv(4 * d, 8 * d), nn.PixelShuffle(2))
        self.reduce_chan_level2 = conv(4 * d, 2 * d, 1)
        self.decoder_level2 = blocks(num_blocks[1], 2 * d, heads[1])
        self.up2_1 = resample(conv(2 * d, 4 * d), nn.PixelShuffle(2))
        self.decoder_level1 = blocks(num_blocks[0], 2 * d, heads[0])
        self.refinement = blocks(refinement, 2 * d, heads[0])
        up = nn.Sequential(conv(2 * d, 8 * d, bias=True), nn.PixelShuffle(2), conv(2 * d, 8 * d, bias=True), nn.PixelShuffle(2))
        self.tail = nn.Sequential(up, conv(2 * d, 3, bias=True))

    def forward(self, lq, ipr):
        e1 = self.encoder_level1(self.patch_embed.proj(lq), ipr)
        e2 = self.encoder_level2(self.down1_2(e1), ipr)
        e3 = self.encoder_level3(self.down2_3(e2), ipr)
        lat = self.latent(self.down3_4(e3), ipr)
        d3 = self.decoder_level3(self.reduce_chan_level3(torch.cat([self.up4_3(lat), e3], 1)), ipr)
        d2 = self.decoder_level2(self.reduce_chan_level2(torch.cat([self.up3_2(d3), e2], 1)), ipr)
        d1 = self.refinement(self.decoder_level1(torch.cat([self.up2_1(d2), e1], 1), ipr), ipr)
        return self.tail(d1) + F.interpolate(lq, scale_factor=SF, mode="nearest")


class ResBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.LeakyReLU(0.1, True), nn.Conv2d(c, c, 3, padding=1))

    def forward(self, x):
        return self.body(x) + x


class CPEN(nn.Module):
    """CPEN_S2 (in_channels 3) or CPEN_S1 (3 + 48: the LR and pixel_unshuffle(HR, 4))."""

    def __init__(self, in_channels, res_blocks):
        super().__init__()
        act = lambda: nn.LeakyReLU(0.1, True)  # noqa: E731
        layers = [nn.Conv2d(in_channels, 64, 3, padding=1), act()] + [ResBlock(64) for _ in range(res_blocks)]
        layers += [nn.Conv2d(64, 128, 3, padding=1), act(), nn.Conv2d(128, 128, 3, padding=1), act(),
                   nn.Conv2d(128, 256, 3, padding=1), act(), nn.AdaptiveAvgPool2d(1)]
        self.E = nn.Sequential(*layers)
        self.mlp = nn.Sequential(nn.Linear(256, 256), act(), nn.Linear(256, 256), act())

    def forward(self, x):
        return self.mlp(self.E(x).flatten(1))


class Denoise(nn.Module):
    def __init__(self, layers, timesteps):
        super().__init__()
        self.max_period = timesteps * 10
        mods = [nn.Linear(513, 256), nn.LeakyReLU(0.1, True)]
        for _ in range(layers):
            m = nn.Module()
            m.resmlp = nn.Sequential(nn.Linear(256, 256), nn.LeakyReLU(0.1, True))
            mods.append(m)
        self.resmlp = nn.Sequential(*mods)

    def forward(self, x, t, c):
        h = torch.cat([c, (t.float() / self.max_period).view(-1, 1), x], 1)
        for m in self.resmlp:
            h = m.resmlp(h) if hasattr(m, "resmlp") else m(h)
        return h


class IPRDiffusion:
    def __init__(self, timesteps=4, start=0.1, end=0.99):
        betas = np.linspace(start ** 0.5, end ** 0.5, timesteps, dtype=np.float64) ** 2
        ab = np.cumprod(1 - betas)
        prev = np.append(1.0, ab[:-1])
        f = lambda a: torch.tensor(a, dtype=torch.float32)  # noqa: E731
        self.T = timesteps
        self.sqrt_ab, self.sqrt_1mab = f(np.sqrt(ab)), f(np.sqrt(1 - ab))
        self.c1 = f(betas * np.sqrt(prev) / (1 - ab))
        self.c2 = f((1 - prev) * np.sqrt(1 - betas) / (1 - ab))

    def chain(self, denoise, c, start):
        ipr = start
        for i in reversed(range(self.T)):
            t = torch.full((ipr.shape[0],), i, dtype=torch.long, device=ipr.device)
            ipr = self.c1[i].to(ipr.device) * denoise(ipr, t, c) + self.c2[i].to(ipr.device) * ipr
        return ipr

    def train_start(self, target, noise):
        """q_sample(target, T − 1): the official training chain's start."""
        i = self.T - 1
        return self.sqrt_ab[i].to(target.device) * target + self.sqrt_1mab[i].to(target.device) * noise


class DiffIRPair(nn.Module):
    """Everything that trains: DIRformer `G`, CPEN_S2 `condition`, the MLP `denoise` (the exported DiffIRS2), and the
    stage-1 encoder `E1` (CPEN_S1, the teacher of stage 2; not exported)."""

    def __init__(self, kw):
        super().__init__()
        self.G = DIRformer(kw["dim"], kw["num_blocks"], kw["num_refinement_blocks"], kw["heads"],
                           kw["ffn_expansion_factor"], kw["LayerNorm_type"])
        self.condition = CPEN(3, kw["n_encoder_res"])
        self.denoise = Denoise(kw["n_denoise_res"], kw["timesteps"])
        self.E1 = CPEN(3 + 3 * SF * SF, kw["n_encoder_res"])


def config_of(args) -> dict:
    return dict(n_encoder_res=args.encoder_res, dim=args.dim, scale=4, num_blocks=[int(v) for v in args.blocks.split(",")],
                num_refinement_blocks=args.refinement, heads=[int(v) for v in args.heads.split(",")],
                ffn_expansion_factor=args.ffn, bias=False, LayerNorm_type=args.layer_norm, n_denoise_res=args.denoise_res,
                linear_start=0.1, linear_end=0.99, timesteps=4)


def swift_config(kw: dict) -> dict:
    """The same as Sources/Networks/DiffIR.swift's DiffIRConfiguration (JSON keys)."""
    return {"task": "sr4", "dim": kw["dim"], "numBlocks": kw["num_blocks"], "refinementBlocks": kw["num_refinement_blocks"],
            "heads": kw["heads"], "ffnExpansion": kw["ffn_expansion_factor"], "layerNorm": kw["LayerNorm_type"],
            "encoderResBlocks": kw["n_encoder_res"], "denoiseResBlocks": kw["n_denoise_res"], "timesteps": kw["timesteps"],
            "linearStart": kw["linear_start"], "linearEnd": kw["linear_end"]}


def ema_update(ema, model, decay, late=None):
    """EMA of every parameter at `decay`, except those whose names start with one of late[0], at late[1]."""
    prefixes, late_decay = late if late else ((), decay)
    with torch.no_grad():
        for (name, e), m in zip(ema.named_parameters(), model.parameters()):
            e.lerp_(m.detach(), 1.0 - (late_decay if name.startswith(prefixes) else decay))
        for eb, mb in zip(ema.buffers(), model.buffers()):
            eb.copy_(mb)


# ----------------------------------------------------------------------------------------------------
# validation


def to01(a_u8, device):
    return torch.from_numpy(np.ascontiguousarray(a_u8)).to(device).permute(0, 3, 1, 2).float().div_(255).contiguous()


def to_u8(x):
    return (x.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).cpu().numpy()


class Validator:
    def __init__(self, photos, crop, device):
        self.hr = np.stack([cut_crop(img, np.random.default_rng([VAL_SEED, i]), crop, 1.0, 1.0, scale=1.0)
                            for i, img in enumerate(photos)])
        self.lr = {name: np.stack([degrade(h, p, np.random.default_rng([VAL_SEED, 1, i])) for i, h in enumerate(self.hr)])
                   for name, p in (("bicubic", VAL_BICUBIC), ("real", VAL_REAL))}
        self.device = device
        self.baseline = {n: self.scores(to_u8(F.interpolate(to01(lr, "cpu"), scale_factor=SF, mode="bicubic",
                                                            align_corners=False))) for n, lr in self.lr.items()}

    def scores(self, sr):
        return {"rgb": float(np.mean([psnr_u8(s, h) for s, h in zip(sr, self.hr)])),
                "y": float(np.mean([psnr_y(s, h) for s, h in zip(sr, self.hr)]))}

    @torch.no_grad()
    def __call__(self, net, diffusion, stage, amp, batch=8):
        out = {}
        for name, lr_u8 in self.lr.items():
            gen = torch.Generator(device="cpu").manual_seed(VAL_SEED)
            srs = []
            for i in range(0, len(lr_u8), batch):
                lq = to01(lr_u8[i:i + batch], self.device)
                hr = to01(self.hr[i:i + batch], self.device)
                with amp():
                    if stage == 1:
                        ipr = net.E1(torch.cat([lq, F.pixel_unshuffle(hr, SF)], 1))
                    else:
                        z = torch.randn((lq.shape[0], 256), generator=gen).to(self.device)
                        ipr = diffusion.chain(net.denoise, net.condition(lq), z)
                    srs.append(to_u8(net.G(lq, ipr).float()))
            s = self.scores(np.concatenate(srs))
            out[name] = {**s, "bicubic_rgb": self.baseline[name]["rgb"], "bicubic_y": self.baseline[name]["y"], "stage": stage}
        return out


def val_line(v):
    return "  ".join(f"{n}: {r['rgb']:.2f} dB, Y {r['y']:.2f} (bicubic {r['bicubic_rgb']:.2f}, Y {r['bicubic_y']:.2f})"
                     for n, r in v.items())


# ----------------------------------------------------------------------------------------------------
# export


def export(ckpt, args):
    from safetensors.torch import save_file
    out = Path(args.export_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = str(out / args.name)
    kw = ckpt["config"]
    tensors = {k: v.detach().to("cpu", torch.float16).contiguous() for k, v in ckpt["ema"].items()
               if not k.startswith("E1.")}
    meta = {"format": "pt", "family": "diffir-own", "weights": "ema", "step": str(ckpt["step"]),
            "config": json.dumps(swift_config(kw), separators=(",", ":")),
            "official_kwargs": json.dumps(kw, separators=(",", ":"))}
    save_file(tensors, f"{stem}.safetensors", metadata=meta)
    files = [f"{stem}.safetensors"]
    s1 = ckpt["args"]["stage1_steps"]
    files += write_curve(stem, ckpt["losses"], ckpt["val"], ckpt["args"]["csv_every"],
                         f"{args.name}: DIRformer dim {kw['dim']}, step {ckpt['step']} (stage 2 from step {s1})",
                         loss_name="train_l1", loss_label="train loss: L1(SR) (stage 1), L1(IPR) then + L1(SR) (stage 2)",
                         loss_axis="L1 ([0, 1] scale)", val_axis="validation PSNR (dB, EMA; stage 2: IPR from the LR only)")
    nparams = sum(t.numel() for t in tensors.values())
    Path(f"{stem}.md").write_text(model_card(ckpt, nparams, files))
    files.append(f"{stem}.md")
    for f in files:
        print(f"exported {f}  {os.path.getsize(f) / 1e6:.2f} MB")


def model_card(ckpt, nparams, files):
    kw, a, val, hist = ckpt["config"], ckpt["args"], ckpt["val"], ckpt.get("history", [])
    last = val[max(val)] if val else {}
    vtxt = "\n".join(f"  - {n}: PSNR-RGB {r['rgb']:.2f} dB (bicubic {r['bicubic_rgb']:.2f}), PSNR-Y {r['y']:.2f} dB "
                     f"(bicubic {r['bicubic_y']:.2f})" for n, r in last.items()) or "  - (no validation yet)"
    sess = "\n".join(f"  - {h['started']}: steps {h['start_step']}→{h['end_step']}, {fmt_time(h['seconds'])}, {h['device']}, "
                     f"{h.get('clean_prob', a['clean_prob']):.0%} clean pairs" for h in hist)
    mixes = sorted({h.get("clean_prob", a["clean_prob"]) for h in hist} or {a["clean_prob"]}, reverse=True)
    mix = " then ".join(f"{m:.0%}" for m in mixes)
    hours = sum(h["seconds"] for h in hist) / 3600
    return "\n".join([
        f"# {a['name']} (`Models/{a['name']}.safetensors`) — written by Tools/train/train_diffir.py",
        "",
        "- What: the project's own DiffIR ×4 SR model, stage 2 (`DiffIRS2`: DIRformer `G.*`, CPEN_S2 `condition.*`, the "
        "denoise MLP `denoise.*`; official state-dict names, no diffusion.* aliases or buffers), EMA weights, fp16, "
        f"{nparams / 1e6:.2f} M parameters; the configuration is in the file's `__metadata__` (family `diffir-own`).",
        f"- Network: dim {kw['dim']}, blocks {kw['num_blocks']}, refinement {kw['num_refinement_blocks']}, heads {kw['heads']}, "
        f"FFN ×{kw['ffn_expansion_factor']}, {kw['LayerNorm_type']} LayerNorm, CPEN with {kw['n_encoder_res']} ResBlocks, "
        f"{kw['n_denoise_res']} denoise layer(s); IPR diffusion T 4, β 0.1 → 0.99 (linear in √β).",
        f"- Recipe: stage 1 (CPEN_S1 on LR + unshuffled HR, DIRformer) for {a['stage1_steps']} steps, L1; stage 2 "
        f"{a['encoder_steps']} steps CPEN_S2 + MLP alone (L1 to the stage-1 IPR), then jointly with DIRformer (L1(SR, HR) + "
        f"L1 on the IPR). Adam (betas 0.9, 0.99), lr cosine {a['lr']} → {a.get('lr_min', a['lr'])} in stage 1, {a['lr']} for the encoder phase, "
        f"{a['lr'] / 2} → {a.get('lr_min', a['lr'])} jointly, batch {a['batch']}, HR crops {a['hr_crop']}², EMA {a['ema_decay']}, "
        f"{mix} clean bicubic:4 / pool:4 pairs (per session below), the rest our Real-ESRGAN-style pipeline; no perceptual/GAN loss (fidelity).",
        f"- Data: ../shared/data/train minus Tools/train/holdout.txt ({ckpt.get('train_photos', '?')} photos). "
        "**Licence note: research-only photographs.**",
        f"- Steps: {ckpt['step']}, {hours:.2f} h in all; sessions:",
        sess or "  - (none)",
        f"- Curve: {', '.join('Models/' + Path(f).name for f in files if '-curve' in f)}",
        f"- Validation at step {max(val) if val else '—'} (EMA, stage {last and next(iter(last.values())).get('stage')}, IPR₀ "
        "seeded): one 256² HR crop of each of the 48 hold-out photos, ×4 from the 'bicubic' and 'real' LR:",
        vtxt,
        "- Evaluation on the CC0 crops: `make eval-diffir` (Benchmarks/QUALITY.md).",
    ]) + "\n"


# ----------------------------------------------------------------------------------------------------


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    g = p.add_argument_group("data")
    g.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data" / "train"))
    g.add_argument("--hr-crop", type=int, default=128)
    g.add_argument("--min-scale", type=float, default=0.5)
    g.add_argument("--max-scale", type=float, default=1.0)
    g.add_argument("--clean-prob", type=float, default=0.5)
    g.add_argument("--val-crop", type=int, default=256)
    g = p.add_argument_group("network")
    g.add_argument("--dim", type=int, default=24)
    g.add_argument("--blocks", default="2,2,2,2")
    g.add_argument("--refinement", type=int, default=2)
    g.add_argument("--heads", default="1,2,4,8")
    g.add_argument("--ffn", type=float, default=2.0)
    g.add_argument("--layer-norm", default="BiasFree", choices=["BiasFree", "WithBias"])
    g.add_argument("--encoder-res", type=int, default=2)
    g.add_argument("--denoise-res", type=int, default=1)
    g = p.add_argument_group("optimisation")
    g.add_argument("--batch", type=int, default=8)
    g.add_argument("--lr", type=float, default=2e-4, help="peak learning rate (the official 2e-4)")
    g.add_argument("--lr-min", type=float, default=2e-5, help="cosine decay floor: stage 1 decays from --lr to it, the joint "
                   "phase of stage 2 from --lr / 2 to it (the official MultiStepLR halves at 500 k / 700 k of 1 M steps: "
                   "for runs this short a decay per stage buys more); the stage-2 encoder phase runs at --lr")
    g.add_argument("--ema-decay", type=float, default=0.999)
    g.add_argument("--grad-clip", type=float, default=1.0)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--stage1-steps", type=int, default=2000, help="steps of stage 1 before stage 2 starts")
    g.add_argument("--encoder-steps", type=int, default=300, help="stage-2 steps with CPEN_S2 + MLP alone")
    g = p.add_argument_group("budget, checkpoints")
    g.add_argument("--steps", type=int, default=100_000, help="total steps to reach (both stages, across resumes)")
    g.add_argument("--minutes", type=float, default=0.0)
    g.add_argument("--out-dir", default=str(REPO / ".cache" / "train-diffir"))
    g.add_argument("--fresh", action="store_true")
    g.add_argument("--save-minutes", type=float, default=10.0)
    g.add_argument("--log-every", type=int, default=10)
    g.add_argument("--val-every", type=int, default=500)
    g.add_argument("--no-val", action="store_true")
    g.add_argument("--csv-every", type=int, default=50)
    g.add_argument("--device", default="auto")
    g.add_argument("--threads", type=int, default=0)
    g.add_argument("--name", default="diffir-x4-own")
    g.add_argument("--export-dir", default=str(REPO / "Models"))
    g.add_argument("--export-only", action="store_true")
    g.add_argument("--no-export", action="store_true")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    out_dir = Path(args.out_dir)
    last = out_dir / "last.pt"
    if args.export_only:
        if not last.exists():
            sys.exit(f"no checkpoint at {last}")
        export(torch.load(last, map_location="cpu", weights_only=False), args)
        return
    device = pick_device(args.device)

    def amp():
        return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)

    kw = config_of(args)
    ckpt = None
    if last.exists() and not args.fresh:
        ckpt = torch.load(last, map_location="cpu", weights_only=False)
        if ckpt["config"] != kw:
            sys.exit(f"{last} holds another network ({ckpt['config']}); use the same flags, another --out-dir, or --fresh")
        for k in ("stage1_steps", "encoder_steps"):
            # The stage schedule may move while the run has not reached the boundary yet (a shorter or longer stage 1).
            if ckpt["args"][k] != getattr(args, k):
                boundary = min(ckpt["args"]["stage1_steps"], args.stage1_steps)
                if ckpt["step"] > boundary:
                    print(f"note: --{k.replace('_', '-')} {getattr(args, k)}: the run is past step {boundary}; keeping the checkpoint's "
                          f"{ckpt['args'][k]}", file=sys.stderr)
                    setattr(args, k, ckpt["args"][k])
                else:
                    print(f"note: --{k.replace('_', '-')} {getattr(args, k)} replaces the checkpoint's {ckpt['args'][k]}", file=sys.stderr)
        for h in ckpt.get("history", []):
            h.setdefault("clean_prob", ckpt["args"]["clean_prob"])   # segments from before the mix was recorded
        if ckpt["args"]["clean_prob"] != args.clean_prob:
            # The data mix may change between segments (a curriculum: more realistic pairs late); each segment records
            # its own share in the history and the card lists it.
            print(f"note: --clean-prob {args.clean_prob} replaces the checkpoint's {ckpt['args']['clean_prob']} from step "
                  f"{ckpt['step']}", file=sys.stderr)
        for k in ("hr_crop", "csv_every"):
            if ckpt["args"][k] != getattr(args, k):
                print(f"note: --{k.replace('_', '-')} {getattr(args, k)} differs from the checkpoint's {ckpt['args'][k]}; "
                      "using the checkpoint's", file=sys.stderr)
                setattr(args, k, ckpt["args"][k])
    data_dir = Path(args.data_dir)
    if not data_dir.is_dir():
        sys.exit(f"no photos at {data_dir}")
    held = load_holdout(data_dir)
    train_names = [n for n in list_photos(data_dir) if n not in set(held)]
    source = PairSource(open_photos(data_dir, train_names), args.hr_crop, args.min_scale, args.max_scale, args.clean_prob)
    validator = None if args.no_val else Validator(open_photos(data_dir, held), args.val_crop, device)
    diffusion = IPRDiffusion()

    np_rng, gen = seeded_rngs(args.seed, device)
    net = DiffIRPair(kw).to(device)
    ema = copy.deepcopy(net).requires_grad_(False)
    opt = torch.optim.Adam(net.parameters(), lr=args.lr, betas=(0.9, 0.99))
    losses, val, history, step = [], {}, [], 0
    if ckpt is not None:
        step, losses, val, history = resume_from(ckpt, net, ema, opt, np_rng, gen, device, args.seed, last)
        ckpt = None
    nparams = sum(p.numel() for n, p in net.named_parameters() if not n.startswith("E1."))
    print(f"network: DIRformer dim {kw['dim']} blocks {kw['num_blocks']} + CPEN + MLP, {nparams / 1e6:.2f} M parameters "
          f"exported; device {device}, {torch.get_num_threads()} threads; batch {args.batch}; stage 1 until step "
          f"{args.stage1_steps}; target {args.steps}{f', budget {args.minutes:g} min' if args.minutes else ''}", flush=True)

    stop = stop_on_signals()
    start_step, t_start = step, time.time()
    seg = dict(segment_record(step, args.batch, device), clean_prob=args.clean_prob)

    def state():
        return {"step": step, "config": kw, "args": vars(args), "model": net.state_dict(), "ema": ema.state_dict(),
                "opt": opt.state_dict(), "rng": rng_state(np_rng, gen), "losses": losses, "val": val,
                "history": history + [dict(seg, end_step=step, seconds=round(time.time() - t_start, 1))],
                "holdout_sha": sha256_lines(held), "train_photos": len(train_names)}

    def stage_of(s):
        return 1 if s < args.stage1_steps else 2

    def lr_at(s):
        def cosine(peak, begin, end):
            f = min(1.0, max(0.0, (s - begin) / max(1, end - begin)))
            return args.lr_min + 0.5 * (peak - args.lr_min) * (1 + math.cos(math.pi * f))
        if s < args.stage1_steps:
            return cosine(args.lr, 0, args.stage1_steps)
        joint = args.stage1_steps + args.encoder_steps
        return args.lr if s < joint else cosine(args.lr / 2, joint, args.steps)

    def run_val():
        if validator is not None:
            t0 = time.time()
            ema.eval()
            val[step] = validator(ema, diffusion, stage_of(step - 1), amp)
            print(f"  val @ {step} (EMA, stage {stage_of(step - 1)}): {val_line(val[step])}  [{time.time() - t0:.0f} s]", flush=True)

    deadline = t_start + args.minutes * 60 if args.minutes else float("inf")
    last_save, speed = time.time(), StepRate(step)
    out_dir.mkdir(parents=True, exist_ok=True)
    net.train()
    while step < args.steps and time.time() < deadline and stop["signal"] is None:
        deadline += wait_while_paused(out_dir, stop)
        stage = stage_of(step)
        for group in opt.param_groups:
            group["lr"] = lr_at(step)
        encoder_only = stage == 2 and step < args.stage1_steps + args.encoder_steps
        hr_u8, lr_u8 = source.batch(np_rng, args.batch)
        hr, lq = to01(hr_u8, device), to01(lr_u8, device)
        with amp():
            if stage == 1:
                ipr = net.E1(torch.cat([lq, F.pixel_unshuffle(hr, SF)], 1))
                loss = F.l1_loss(net.G(lq, ipr).float(), hr)
            else:
                with torch.no_grad():
                    target = ema.E1(torch.cat([lq, F.pixel_unshuffle(hr, SF)], 1)).float()
                noise = torch.randn(target.shape, generator=gen, device=device)
                ipr = diffusion.chain(net.denoise, net.condition(lq), diffusion.train_start(target, noise))
                loss = F.l1_loss(ipr.float(), target)
                if not encoder_only:
                    loss = loss + F.l1_loss(net.G(lq, ipr).float(), hr)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if stage == 2:
            for p in net.E1.parameters():
                p.grad = None
            if encoder_only:
                for p in net.G.parameters():
                    p.grad = None
        if args.grad_clip:
            torch.nn.utils.clip_grad_norm_([p for p in net.parameters() if p.grad is not None], args.grad_clip)
        opt.step()
        if step + 1 == args.stage1_steps:
            print("stage 1 done: stage 2 starts (CPEN_S2 + MLP learn the stage-1 IPR)", flush=True)
        # The EMA warm-up min(decay, (1 + s)/(10 + s)) counts from the step a module starts learning: from 0 for
        # DIRformer and CPEN_S1, from the start of stage 2 for CPEN_S2 and the MLP (else their EMA would still hold
        # a tenth of their random initialisation 2 300 steps into stage 2).
        ema_update(ema, net, min(args.ema_decay, (1 + step) / (10 + step)),
                   late=(("condition.", "denoise."), min(args.ema_decay, (1 + step - args.stage1_steps) / (10 + step - args.stage1_steps)))
                   if stage == 2 else None)
        step += 1
        losses.append(float(loss.detach()))
        if not math.isfinite(losses[-1]):
            sys.exit(f"non-finite loss at step {step}: not saving")
        if step % args.log_every == 0:
            rate, eta = speed.update(step, args.steps, deadline)
            recent = losses[-args.csv_every:]
            print(f"step {step}/{args.steps} stage {stage}{' (encoder)' if encoder_only else ''}  loss {losses[-1]:.5f}  "
                  f"mean{len(recent)} {sum(recent) / len(recent):.5f}  lr {lr_at(step - 1):.2e}  {rate:.3f} step/s  ETA {fmt_time(eta)}", flush=True)
        if step % args.val_every == 0 or step == args.stage1_steps:
            run_val()
        if time.time() - last_save > args.save_minutes * 60:
            save_checkpoint(last, state())
            last_save = time.time()
    if step > start_step and step not in val and stop["signal"] is None:
        run_val()
    final = state()
    finish_session(last, final, start_step, t_start, stop, log_line=f"{'val ' + val_line(val[step]) if step in val else ''}")
    if stop["signal"] is None and not args.no_export and step >= args.stage1_steps + args.encoder_steps:
        export(final, args)


if __name__ == "__main__":
    main()
