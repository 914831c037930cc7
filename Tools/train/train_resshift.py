#!/usr/bin/env python3
"""Train the project's own ResShift ×4 super-resolution model (UNetModelSwin in pixel space, 4 steps).

What it trains
  A ResShift model (Yue et al., "ResShift: Efficient Diffusion Model for Image Super-resolution by Residual
  Shifting", NeurIPS 2023 / TPAMI 2024) for ×4 SR that runs without an autoencoder: the "first stage" is a
  lossless space-to-depth, so the diffusion state lives at LR resolution with 48 channels.

    x0 = pixel_unshuffle(HR, 4)                       48 × h × w   (HR in [-1, 1], h × w the LR size;
                                                                     torch order: channel c·16 + dy·4 + dx)
    y  = pixel_unshuffle(bicubic×4(LR), 4)            bicubic = F.interpolate(mode="bicubic",
                                                                     align_corners=False), no antialias
    network(x_t / (3κ√η_t + 1), t, lq = LR)  →  r,  x̂0 = y − r   (LR in [-1, 1] concatenated as 3 more input
                                                                     channels; --predict-type xstart: x̂0 = output)
    SR = pixel_shuffle(x̂ after 4 steps, 4)

  Markov chain (as the official GaussianDiffusion): exponential η schedule, T = 4, κ = 2, power p = 0.3,
  min_noise_level 0.2, etas_end 0.99: √η_t = s0·(0.99/s0)^((t/(T-1))^p) with s0 = min(0.2/κ, 0.2) = 0.1;
  q(x_t | x0, y) = N(x0 + η_t (y − x0), κ² η_t I); the network gets the integer index t ∈ {0..3}; input
  scaling of the official `_scale_input` with latent_flag False: x_t / (κ √η_t · 3 + 1); prediction: the
  official ModelMeanType RESIDUAL by default (x̂0 = y − output; the output conv starts at zero, so training starts
  at bicubic quality — a 297-step trial with START_X reached only 21.8 dB on the validation, the network first
  having to learn to reproduce y), START_X with --predict-type xstart; loss plain MSE on x̂0, t uniform. The journal ("v3") recipe adds an LPIPS term: skipped here
  (no VGG/AlexNet weights on this machine, and the loss is cheap to add later).
  Sampling: x_T = y + κ √η_T ε; for t = T−1 … 0: x̂0 = clamp(y − net(...), −1, 1), mean = (η_{t−1}/η_t) x_t +
  (α_t/η_t) x̂0 with α_t = η_t − η_{t−1}, variance κ² η_{t−1} α_t / η_t, no noise at t = 0 (so the last step
  returns x̂0); then pixel_shuffle.

Network
  Our own implementation of ResShift's `UNetModelSwin` (state-dict names identical to the official ones, so
  the official class loads our exports with strict=False, only its buffers missing; `--check-against-official`
  proves the outputs equal): ADM ResBlocks with scale-shift norm, GroupNorm(32), sinusoidal timestep
  embedding [cos, sin]; after the first ResBlock of every level whose construction-time size is in
  attention_resolutions, and in the middle block, a Swin layer: 1×1 conv C→E, `swin_depth` Swin blocks
  (window attention with a relative-position bias table, the second block shifted by window/2, GroupNorm
  instead of LayerNorm, MLP of two 1×1 convs with GELU), 1×1 conv E→C, no residual around the layer. A level
  whose construction size is ≤ window uses one window of that size and no shift. The shifted block's
  attention mask reproduces the official one bit for bit, including its quirk (see `shifted_window_mask`).

  Chosen size (flags change it): image_size 32 (= the LR training crop), in_channels 48 (+3 LR channels,
  lq_size 32 so the LR goes in unchanged), out_channels 48, model_channels 64, channel_mult [1, 2, 2],
  num_res_blocks [2, 2, 2], attention_resolutions [16, 8] (the two lowest levels), swin_depth 2,
  swin_embed_dim 64, num_head_channels 32 (2 heads), window_size 8, mlp_ratio 2, scale-shift norm, no
  resblock_updown, dropout 0: 7.03 M parameters, 14.1 MB in fp16.
  Why: the Swift engine must do ×4 of a 256² LR in ≤ 30 s on 2 cores for 4 steps, i.e. ≤ ~5 s per network
  call at 256² LR, and our engine runs about as fast as PyTorch on CPU, so PyTorch must stay ≤ 4 s. Measured
  here (`--bench`: one forward of 1×51×256×256, PyTorch 2.15 CPU, 2 threads, 2-core AMD EPYC shared with
  other work; best–median of 4–6 runs; FLOPs from torch.utils.flop_counter):
      ch 64,  mult 1,2,2, Swin 64 at 16,8 (chosen) ....  197 GFLOP   2.5–2.9 s    7.03 M params
      ch 64,  mult 1,2,4, Swin 64 at 16,8 .............  276 GFLOP   5.5–5.9 s   15.4 M
      ch 96,  mult 1,2,2, Swin 96 at 16,8 .............  436 GFLOP   8.8–9.3 s   15.7 M
      ch 128, mult 1,2,2, Swin 128 at 16,8 ............  770 GFLOP  ≈ 12.7 s     27.9 M
      ch 64,  mult 1,2,2,2, Swin 64 at 32,16,8 ........  199 GFLOP  ≈ 4 s (busy)  9.84 M  (needs 64² LR crops)
  Only the first stays under 4 s with room for the engine's tiling overlap and a busy machine. Half of its
  FLOPs are at the 256² level (64 channels, plus the 128-channel upsampling convolution into it); the Swin
  layers at 128² and 64² are 4.5 %. The 4-level variant costs the same FLOPs but needs 64²
  LR training crops for a window-8 lowest level, i.e. 4× the CPU per training sample. On this machine a
  training step of the chosen network at batch 16 (LR 32²) takes ≈ 2.1 s alone (forward 0.65 s, backward
  1.25 s, data 0.09 s, AdamW 0.05 s): 0.48 step/s, 0.3–0.42 step/s while the cores are shared. The official
  model (ch 160, mult 1,2,2,4, Swin 192 at every level, 118 M params) works on a 4× smaller latent and is
  out of reach on 2 cores.

Data (`../shared/data/train` minus Tools/train/holdout.txt; the photos are never copied)
  HR: a photo drawn uniformly, a random downscale s ~ U[--min-scale 0.5, --max-scale 1] (the box of side
  128/s is resized, antialiased bicubic, to 128²), a random horizontal flip (--hr-crop 128 → LR 32²).
  LR, our own lighter Real-ESRGAN-style pipeline (one order, not two), all on float RGB in [0, 1]:
    - 30 % (--clean-prob) "clean" samples: the project's `bicubic:4` operator (Keys' cubic a = −0.5,
      16 taps, normalised, symmetric reflect padding, exactly Sources/Operators' SeparableOperator.bicubic)
      with probability 2/3, else ×4 average pooling (`pool:4`); rounded to 8 bits, no JPEG.
    - the rest "realistic":
      1. blur, prob 0.8: Gaussian kernel of odd size 7–21 (uniform), isotropic (prob 0.5) σ ~ U[0.2, 3] or
         anisotropic σx, σy ~ U[0.2, 3] rotated by θ ~ U[0, π); reflect padding;
      2. resize: up (prob 0.2, ×U[1, 1.5]) / down (0.7, ×U[0.5, 1]) / keep (0.1), by area, bilinear or
         bicubic (antialiased when shrinking), uniformly;
      3. Gaussian noise, prob 0.5: σ ~ U[1, 25]/255, gray (one field for the three channels) with prob 0.4;
      4. JPEG, quality ~ U{30..95} (PIL, 4:2:0);
      5. final resize to exactly HR/4 (both sides): area or antialiased bicubic, uniformly;
      6. final JPEG, quality ~ U{40..95}.
  All randomness comes from one numpy generator that the checkpoint saves, so resumes are bit-exact.

Validation (every --val-every steps and at the end of each run, EMA weights)
  One fixed 256² crop (--val-crop, native scale, seeded position) per held-out photo (48), each degraded two
  fixed ways: "bicubic" (the `bicubic:4` operator, 8-bit) and "real" (isotropic blur σ 1.2 on a 13² kernel,
  colour noise σ 8/255 with a fixed seed, JPEG q 70, antialiased bicubic ×¼, JPEG q 85). The full 4-step
  sampler runs with fixed noise; reported: PSNR on RGB in [0, 255] (8-bit rounded output vs the HR crop, whole
  crop, mean over crops) against bicubic upsampling of the same LR (F.interpolate bicubic, the sampler's y),
  plus the same on the BT.601 Y channel (the official val_y_channel) in the checkpoint and the CSV.

Optimisation
  AdamW lr 2e-4 (constant after a 200-step linear warm-up; the official 5e-5 with cosine decay is for
  400 k steps at batch 96), betas (0.9, 0.999), no weight decay, gradient-norm clip 1, batch 16, EMA decay
  0.999 (the official ema_rate) with the warm-up min(0.999, (1+step)/(10+step)); the EMA is exported.

Running (see Tools/train/README.md for the conventions shared with train_prior.py)
  python Tools/train/train_resshift.py --minutes 60      # one time-boxed chunk; run again to continue
  python Tools/train/train_resshift.py --export-only     # Models/resshift-x4-own.* from the last checkpoint
  python Tools/train/train_resshift.py --bench           # PyTorch CPU time of one forward at 256² LR
  python Tools/train/train_resshift.py --check-against-official /tmp/resshift-train-src
      # equivalence with the official UNetModelSwin / GaussianDiffusion; make the tree with
      # mkdir -p /tmp/resshift-train-src && git -C <mirror of zsyOAOA/ResShift> archive HEAD | tar -x -C /tmp/resshift-train-src
"""

from __future__ import annotations

import argparse
import copy
import csv
import io
import json
import math
import os
import sys
import time
import types
from pathlib import Path

# Before torch loads OpenMP: waiting threads sleep instead of spinning (see train_prior.py).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError:  # pragma: no cover
    sys.exit("PyTorch is missing: python3 -m venv venv && venv/bin/pip install torch numpy pillow safetensors "
             "matplotlib   (see Tools/train/README.md)")

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_prior import (REPO, finish_session, cut_crop, ema_update, fmt_time, list_photos, load_holdout,  # noqa: E402
                         open_photos, pick_device, resume_from, rng_state, save_checkpoint, seeded_rngs,
                         segment_record, sha256_lines, stop_on_signals, wait_while_paused, StepRate)

VAL_SEED = 4242          # fixed validation crops, degradations and sampler noise
SF = 4                   # the scale factor (fixed: pixel_unshuffle(·, 4) is the first stage)


# ----------------------------------------------------------------------------------------------------
# network: our UNetModelSwin (official state-dict names)


def group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm over 32 groups, computed in float32 (the official normalisation layer)."""
    return _GroupNorm32(32, channels)


class _GroupNorm32(nn.GroupNorm):
    def forward(self, x):
        return F.group_norm(x.float(), self.num_groups, self.weight, self.bias, self.eps).to(x.dtype)


def timestep_features(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal features [cos(t·f_k), sin(t·f_k)], f_k = max_period^(−k/(dim/2)), k < dim/2."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    angles = t.float()[:, None] * freqs[None, :]
    out = torch.cat([torch.cos(angles), torch.sin(angles)], dim=1)
    return F.pad(out, (0, 1)) if dim % 2 else out


class ResBlock(nn.Module):
    """ADM residual block: GN-SiLU-conv, timestep FiLM (scale-shift) or bias, GN-SiLU-dropout-conv(zero)."""

    def __init__(self, cin: int, emb_dim: int, cout: int, scale_shift: bool, dropout: float):
        super().__init__()
        self.scale_shift = scale_shift
        self.in_layers = nn.Sequential(group_norm(cin), nn.SiLU(), nn.Conv2d(cin, cout, 3, padding=1))
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_dim, 2 * cout if scale_shift else cout))
        last = nn.Conv2d(cout, cout, 3, padding=1)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.out_layers = nn.Sequential(group_norm(cout), nn.SiLU(), nn.Dropout(dropout), last)
        self.skip_connection = nn.Identity() if cin == cout else nn.Conv2d(cin, cout, 1)

    def forward(self, x, emb):
        h = self.in_layers(x)
        e = self.emb_layers(emb).to(h.dtype)[:, :, None, None]
        if self.scale_shift:
            gamma, beta = e.chunk(2, dim=1)
            h = self.out_layers[0](h) * (1 + gamma) + beta
            for layer in self.out_layers[1:]:
                h = layer(h)
        else:
            h = self.out_layers(h + e)
        return self.skip_connection(x) + h


class Downsample(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.op = nn.Conv2d(ch, ch, 3, stride=2, padding=1)

    def forward(self, x):
        return self.op(x)


class Upsample(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class _Proj(nn.Module):
    """A 1×1 convolution under the attribute name `proj` (patch_embed / patch_unembed with patch size 1)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.proj = nn.Conv2d(cin, cout, 1)

    def forward(self, x):
        return self.proj(x)


def relative_index(w: int) -> torch.Tensor:
    """(w², w²) indices into the (2w−1)² bias table: for query (yq, xq) and key (yk, xk),
    (yq − yk + w − 1)·(2w − 1) + (xq − xk + w − 1)."""
    y, x = torch.meshgrid(torch.arange(w), torch.arange(w), indexing="ij")
    y, x = y.reshape(-1), x.reshape(-1)
    return (y[:, None] - y[None, :] + w - 1) * (2 * w - 1) + (x[:, None] - x[None, :] + w - 1)


def shifted_window_mask(h: int, w: int, window: int, shift: int) -> torch.Tensor:
    """The official shifted-window attention mask, (nW, window², window²) with 0 / −100.

    What the official construction actually computes: its label image has shape (1, 1, H, W) but is
    indexed [:, rows, cols, :], so the "row" slices hit the size-1 axis (only the last one, [−shift:],
    selects anything) and the "column" slices fall on the H axis. Every image row r therefore gets a band
    label, 0 for r < H − window, 1 for r < H − shift, 2 otherwise, and columns get none (the horizontal
    wrap-around of the cyclic shift is not masked). Its windows are then flattened after a permute that
    transposes each window, so the label of token k (row-major: k = i·window + j) in window row a is the
    band of image row a·window + j, its *column* offset. Two tokens are masked (−100) where labels differ.
    """
    band = (torch.arange(h) >= h - window).long() + (torch.arange(h) >= h - shift).long()
    nh, nw, n = h // window, w // window, window * window
    j = torch.arange(n) % window
    labels = band[torch.arange(nh)[:, None] * window + j[None, :]]          # (nh, n)
    labels = labels[:, None, :].expand(nh, nw, n).reshape(nh * nw, n)
    differ = labels[:, :, None] != labels[:, None, :]
    return torch.zeros(differ.shape).masked_fill(differ, -100.0)


class WindowAttention(nn.Module):
    def __init__(self, dim: int, window: int, heads: int):
        super().__init__()
        self.heads, self.window = heads, window
        self.scale = (dim // heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.register_buffer("rel_index", relative_index(window), persistent=False)

    def forward(self, x, mask=None):
        """x: (B·nW, N, C) tokens of each window; mask: (nW, N, N) or None."""
        bw, n, c = x.shape
        q, k, v = self.qkv(x).view(bw, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        logits = (q * self.scale) @ k.transpose(-2, -1)                       # (B·nW, heads, N, N)
        bias = self.relative_position_bias_table[self.rel_index].permute(2, 0, 1)
        logits = logits + bias.unsqueeze(0).to(logits.dtype)
        if mask is not None:
            nw = mask.shape[0]
            logits = (logits.view(bw // nw, nw, self.heads, n, n) + mask[None, :, None]).view(bw, self.heads, n, n)
        out = logits.softmax(dim=-1) @ v                                      # (B·nW, heads, N, hd)
        return self.proj(out.transpose(1, 2).reshape(bw, n, c))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int, dropout: float):
        super().__init__()
        self.fc1 = nn.Conv2d(dim, hidden, 1)
        self.act = nn.GELU()
        self.fc2 = nn.Conv2d(hidden, dim, 1)
        self.drop = nn.Dropout(dropout)

    def forward(self, x):
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class SwinBlock(nn.Module):
    def __init__(self, dim: int, resolution: int, heads: int, window: int, shift: int, mlp_ratio: float,
                 dropout: float):
        super().__init__()
        if resolution <= window:          # the whole construction-size map is one window, unshifted
            window, shift = resolution, 0
        self.window, self.shift = window, shift
        self.norm1 = group_norm(dim)
        self.attn = WindowAttention(dim, window, heads)
        self.norm2 = group_norm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), dropout)
        self._masks: dict = {}

    def mask(self, h, w, device, dtype):
        key = (h, w, device, dtype)
        if key not in self._masks:
            self._masks[key] = shifted_window_mask(h, w, self.window, self.shift).to(device, dtype)
        return self._masks[key]

    def forward(self, x):
        b, c, h, w = x.shape
        ws, s = self.window, self.shift
        if h % ws or w % ws:
            raise ValueError(f"Swin block: {h}×{w} is not a multiple of the window {ws}")
        y = self.norm1(x)
        if s:
            y = torch.roll(y, shifts=(-s, -s), dims=(2, 3))
        tokens = y.view(b, c, h // ws, ws, w // ws, ws).permute(0, 2, 4, 3, 5, 1).reshape(-1, ws * ws, c)
        out = self.attn(tokens, self.mask(h, w, x.device, tokens.dtype) if s else None)
        y = out.view(b, h // ws, w // ws, ws, ws, c).permute(0, 5, 1, 3, 2, 4).reshape(b, c, h, w)
        if s:
            y = torch.roll(y, shifts=(s, s), dims=(2, 3))
        x = x + y
        return x + self.mlp(self.norm2(x))


class SwinLayer(nn.Module):
    """1×1 conv C→E, `depth` Swin blocks (shift 0, window/2, 0, …), 1×1 conv E→C; no outer residual."""

    def __init__(self, channels, embed_dim, heads, window, depth, resolution, mlp_ratio, dropout):
        super().__init__()
        self.patch_embed = _Proj(channels, embed_dim)
        self.blocks = nn.ModuleList([SwinBlock(embed_dim, resolution, heads, window, 0 if i % 2 == 0 else window // 2,
                                               mlp_ratio, dropout) for i in range(depth)])
        self.patch_unembed = _Proj(embed_dim, channels)

    def forward(self, x):
        x = self.patch_embed(x)
        for blk in self.blocks:
            x = blk(x)
        return self.patch_unembed(x)


class EmbSequential(nn.Sequential):
    """Children in order; residual blocks also get the timestep embedding."""

    def forward(self, x, emb):
        for layer in self:
            x = layer(x, emb) if isinstance(layer, ResBlock) else layer(x)
        return x


class UNetSwin(nn.Module):
    """ResShift's UNetModelSwin (our code; constructor arguments under the official names). Supported:
    dims 2, conv_resample, no resblock_updown, no patch_norm, cond_lq with lq_size == image_size (the LR
    enters unchanged), no cond_mask, fp32 (use autocast for mixed precision)."""

    def __init__(self, image_size, in_channels, model_channels, out_channels, num_res_blocks, attention_resolutions,
                 dropout=0.0, channel_mult=(1, 2, 4, 8), conv_resample=True, dims=2, use_fp16=False, num_heads=1,
                 num_head_channels=-1, use_scale_shift_norm=False, resblock_updown=False, swin_depth=2,
                 swin_embed_dim=96, window_size=8, mlp_ratio=2.0, patch_norm=False, cond_lq=True, cond_mask=False,
                 lq_size=256):
        super().__init__()
        unsupported = {"dims": dims != 2, "conv_resample": not conv_resample, "use_fp16": use_fp16,
                       "resblock_updown": resblock_updown, "patch_norm": patch_norm, "cond_mask": cond_mask,
                       "cond_lq": not cond_lq, "lq_size != image_size": lq_size != image_size}
        if any(unsupported.values()):
            raise NotImplementedError(f"UNetSwin: unsupported options {[k for k, v in unsupported.items() if v]}")
        nrb = [num_res_blocks] * len(channel_mult) if isinstance(num_res_blocks, int) else list(num_res_blocks)
        assert len(nrb) == len(channel_mult)
        self.model_channels = model_channels
        heads = num_heads if num_head_channels == -1 else swin_embed_dim // num_head_channels
        emb_dim = 4 * model_channels
        ss = use_scale_shift_norm

        def swin(ch, res):
            return SwinLayer(ch, swin_embed_dim, heads, window_size, swin_depth, res, mlp_ratio, dropout)

        self.time_embed = nn.Sequential(nn.Linear(model_channels, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.feature_extractor = nn.Identity()
        ch = first = int(channel_mult[0] * model_channels)
        self.input_blocks = nn.ModuleList([EmbSequential(nn.Conv2d(in_channels + 3, ch, 3, padding=1))])
        skips, ds = [ch], image_size
        for level, mult in enumerate(channel_mult):
            for j in range(nrb[level]):
                cout = int(mult * model_channels)
                layers = [ResBlock(ch, emb_dim, cout, ss, dropout)]
                ch = cout
                if j == 0 and ds in attention_resolutions:
                    layers.append(swin(ch, ds))
                self.input_blocks.append(EmbSequential(*layers))
                skips.append(ch)
            if level < len(channel_mult) - 1:
                self.input_blocks.append(EmbSequential(Downsample(ch)))
                skips.append(ch)
                ds //= 2
        self.middle_block = EmbSequential(ResBlock(ch, emb_dim, ch, ss, dropout), swin(ch, ds),
                                          ResBlock(ch, emb_dim, ch, ss, dropout))
        self.output_blocks = nn.ModuleList()
        for level in reversed(range(len(channel_mult))):
            for i in range(nrb[level] + 1):
                cout = int(channel_mult[level] * model_channels)
                layers = [ResBlock(ch + skips.pop(), emb_dim, cout, ss, dropout)]
                ch = cout
                if i == 0 and ds in attention_resolutions:
                    layers.append(swin(ch, ds))
                if level > 0 and i == nrb[level]:
                    layers.append(Upsample(ch))
                    ds *= 2
                self.output_blocks.append(EmbSequential(*layers))
        self.out = nn.Sequential(group_norm(ch), nn.SiLU(), nn.Conv2d(first, out_channels, 3, padding=1))

    def forward(self, x, timesteps, lq):
        emb = self.time_embed(timestep_features(timesteps, self.model_channels))
        h = torch.cat([x, self.feature_extractor(lq).to(x.dtype)], dim=1)
        hs = []
        for block in self.input_blocks:
            h = block(h, emb)
            hs.append(h)
        h = self.middle_block(h, emb)
        for block in self.output_blocks:
            h = block(torch.cat([h, hs.pop()], dim=1), emb)
        return self.out(h)


def unet_kwargs(args) -> dict:
    """UNetModelSwin constructor arguments (official names) for these flags."""
    lr_size = args.hr_crop // SF
    mult = [int(m) for m in args.channel_mult.split(",")]
    nrb = [int(n) for n in args.num_res_blocks.split(",")]
    if len(nrb) == 1:
        nrb = nrb * len(mult)
    att = sorted((int(a) for a in args.attention_resolutions.split(",") if a), reverse=True)
    widths = [args.model_channels * m for m in mult] + [args.swin_embed_dim]
    if any(w % 32 for w in widths):
        sys.exit(f"every width must be a multiple of 32 (GroupNorm32): {widths}")
    if args.swin_embed_dim % args.num_head_channels:
        sys.exit("--swin-embed-dim must be a multiple of --num-head-channels")
    if args.hr_crop % (SF * 2 ** (len(mult) - 1) * args.window_size):
        print(f"note: LR crop {lr_size} is not a multiple of 2^{len(mult) - 1}·window: some levels are single "
              "windows in training", file=sys.stderr)
    sizes = [lr_size // 2 ** i for i in range(len(mult))]
    for a in att:
        if a not in sizes:
            sys.exit(f"--attention-resolutions {a} is not one of the level sizes {sizes} (LR crop {lr_size})")
    return {"image_size": lr_size, "in_channels": 3 * SF * SF, "model_channels": args.model_channels,
            "out_channels": 3 * SF * SF, "num_res_blocks": nrb, "attention_resolutions": att, "dropout": args.dropout,
            "channel_mult": mult, "conv_resample": True, "dims": 2, "use_fp16": False, "num_heads": -1,
            "num_head_channels": args.num_head_channels, "use_scale_shift_norm": True, "resblock_updown": False,
            "swin_depth": args.swin_depth, "swin_embed_dim": args.swin_embed_dim, "window_size": args.window_size,
            "mlp_ratio": args.mlp_ratio, "patch_norm": False, "cond_lq": True, "cond_mask": False,
            "lq_size": lr_size}


# ----------------------------------------------------------------------------------------------------
# ResShift Markov chain


class ResShift:
    def __init__(self, steps=4, kappa=2.0, power=0.3, min_noise_level=0.2, etas_end=0.99, device="cpu",
                 predict_type="residual"):
        assert predict_type in ("xstart", "residual")
        self.T, self.kappa, self.predict_type = steps, kappa, predict_type
        self.config = {"steps": steps, "kappa": kappa, "power": power, "min_noise_level": min_noise_level,
                       "etas_end": etas_end, "schedule": "exponential", "predict_type": predict_type,
                       "normalize_input": True, "latent_flag": False, "clip_x0": True, "sf": SF}
        s0 = min(min_noise_level / kappa, min_noise_level)
        sqrt_eta = s0 * (etas_end / s0) ** (np.linspace(0.0, 1.0, steps) ** power)    # float64
        eta = sqrt_eta ** 2
        eta_prev = np.append(0.0, eta[:-1])
        alpha = eta - eta_prev
        self.np = {"sqrt_eta": sqrt_eta, "eta": eta}

        def f32(a):
            return torch.tensor(a, dtype=torch.float64).float().to(device)

        self.eta, self.noise_std = f32(eta), f32(kappa * sqrt_eta)
        self.in_scale = f32(kappa * sqrt_eta * 3 + 1)
        self.coef_xt, self.coef_x0 = f32(eta_prev / eta), f32(alpha / eta)
        self.post_std = f32(np.sqrt(kappa ** 2 * eta_prev / eta * alpha))

    @staticmethod
    def _b(v, t):
        return v[t].view(-1, 1, 1, 1)

    def q_sample(self, x0, y, t, noise):
        return x0 + self._b(self.eta, t) * (y - x0) + self._b(self.noise_std, t) * noise

    def scale_input(self, x, t):
        return x / self._b(self.in_scale, t)

    @staticmethod
    def first_stage(lr, hr=None):
        """(y, x0): y = unshuffle(bicubic×4(LR)), x0 = unshuffle(HR) (None without HR); images in [-1, 1]."""
        up = F.interpolate(lr, scale_factor=SF, mode="bicubic", align_corners=False)
        return F.pixel_unshuffle(up, SF), (None if hr is None else F.pixel_unshuffle(hr, SF))

    def x0_from_output(self, out, y):
        """The official ModelMeanType: START_X (the output is x0) or RESIDUAL (x0 = y − output)."""
        return out if self.predict_type == "xstart" else y - out

    def loss(self, net, lr, hr, t, noise):
        y, x0 = self.first_stage(lr, hr)
        xt = self.q_sample(x0, y, t, noise)
        pred = net(self.scale_input(xt, t), t, lr)
        # MSE on x0; for RESIDUAL this equals the official MSE(output, y − x0).
        return F.mse_loss(self.x0_from_output(pred.float(), y), x0)

    @torch.no_grad()
    def sample(self, net, lr, gen=None, amp=None):
        """4-step sampler; draws T+1 normal fields in the official order (prior, then one per step)."""
        y, _ = self.first_stage(lr)

        def randn():
            return torch.randn(y.shape, generator=gen, device=y.device, dtype=y.dtype)

        x = y + self.noise_std[self.T - 1] * randn()
        for i in reversed(range(self.T)):
            t = torch.full((y.shape[0],), i, dtype=torch.long, device=y.device)
            with (amp() if amp else torch.autocast(y.device.type, enabled=False)):
                x0 = net(self.scale_input(x, t), t, lr)
            x0 = self.x0_from_output(x0.float(), y).clamp(-1, 1)
            noise = randn()
            x = self.coef_xt[i] * x + self.coef_x0[i] * x0
            if i > 0:
                x = x + self.post_std[i] * noise
        return F.pixel_shuffle(x, SF)


# ----------------------------------------------------------------------------------------------------
# degradations (numpy / torch / PIL; all randomness from one numpy generator)


def keys_cubic(x, a=-0.5):
    t = np.abs(x)
    return np.where(t <= 1, (a + 2) * t ** 3 - (a + 3) * t ** 2 + 1,
                    np.where(t < 2, a * t ** 3 - 5 * a * t ** 2 + 8 * a * t - 4 * a, 0.0))


_BICUBIC_MATS: dict = {}


def bicubic_down_matrix(n: int, s: int = SF) -> np.ndarray:
    """(n/s × n) matrix of the project's `bicubic:s` axis: output i centred at i·s + s/2, 4s taps of Keys'
    cubic (a = −0.5) at (d − 2s + 0.5)/s, normalised, symmetric reflect padding (…, 1, 0 | 0, 1, …)."""
    if (n, s) not in _BICUBIC_MATS:
        k = keys_cubic((np.arange(4 * s) - 2 * s + 0.5) / s)
        k = k / k.sum()
        m = np.zeros((n // s, n))
        for i in range(n // s):
            c = i * s + s // 2
            for d, j in enumerate(range(c - 2 * s, c + 2 * s)):
                while j < 0 or j >= n:
                    j = -j - 1 if j < 0 else 2 * n - 1 - j
                m[i, j] += k[d]
        _BICUBIC_MATS[(n, s)] = torch.from_numpy(m).float()
    return _BICUBIC_MATS[(n, s)]


def to_u8(x: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) float in [0, 1] → H×W×3 uint8 (rounded)."""
    return (x[0].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()


def from_u8(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None].float() / 255


def jpeg(x: torch.Tensor, quality: int) -> torch.Tensor:
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(to_u8(x)).save(buf, format="JPEG", quality=int(quality))
    buf.seek(0)
    with Image.open(buf) as im:
        return from_u8(np.array(im.convert("RGB")))


def gaussian_kernel(size: int, sx: float, sy: float, theta: float) -> torch.Tensor:
    r = np.arange(size) - size // 2
    xx, yy = np.meshgrid(r, r)
    c, s = math.cos(theta), math.sin(theta)
    u, v = c * xx + s * yy, -s * xx + c * yy
    k = np.exp(-0.5 * (u ** 2 / sx ** 2 + v ** 2 / sy ** 2))
    return torch.from_numpy(k / k.sum()).float()


def blur(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    p = k.shape[0] // 2
    xp = F.pad(x, (p, p, p, p), mode="reflect")
    return F.conv2d(xp, k[None, None].expand(3, 1, -1, -1), groups=3)


def resize(x: torch.Tensor, h: int, w: int, mode: str) -> torch.Tensor:
    if mode == "area":
        return F.interpolate(x, size=(h, w), mode="area")
    return F.interpolate(x, size=(h, w), mode=mode, align_corners=False, antialias=h < x.shape[2] or w < x.shape[3])


def bicubic4(x: torch.Tensor) -> torch.Tensor:
    """The project's `bicubic:4` operator on (1, 3, H, W)."""
    mv, mh = bicubic_down_matrix(x.shape[2]), bicubic_down_matrix(x.shape[3])
    return torch.einsum("ih,chw,jw->cij", mv, x[0], mh)[None]


def sample_degradation(rng: np.random.Generator, clean_prob: float) -> dict:
    """Parameters of one random degradation (see the docstring)."""
    if rng.random() < clean_prob:
        return {"kind": "clean", "op": "bicubic" if rng.random() < 2 / 3 else "pool"}
    p: dict = {"kind": "real"}
    if rng.random() < 0.8:
        size = int(rng.choice(np.arange(7, 22, 2)))
        if rng.random() < 0.5:
            s = rng.uniform(0.2, 3.0)
            p["blur"] = (size, s, s, 0.0)
        else:
            p["blur"] = (size, rng.uniform(0.2, 3.0), rng.uniform(0.2, 3.0), rng.uniform(0, math.pi))
    r = rng.random()
    p["resize"] = (rng.uniform(1.0, 1.5) if r < 0.2 else rng.uniform(0.5, 1.0) if r < 0.9 else 1.0,
                   str(rng.choice(["area", "bilinear", "bicubic"])))
    if rng.random() < 0.5:
        p["noise"] = (rng.uniform(1, 25) / 255, bool(rng.random() < 0.4))
    p["jpeg"] = int(rng.integers(30, 96))
    p["final"] = str(rng.choice(["area", "bicubic"]))
    p["jpeg2"] = int(rng.integers(40, 96))
    return p


def degrade(hr_u8: np.ndarray, p: dict, rng: np.random.Generator) -> np.ndarray:
    """HR uint8 H×W×3 → LR uint8 (H/4)×(W/4)×3 with degradation `p`; rng draws the noise field."""
    x = from_u8(hr_u8)
    h, w = x.shape[2] // SF, x.shape[3] // SF
    if p["kind"] == "clean":
        return to_u8(bicubic4(x) if p["op"] == "bicubic" else F.avg_pool2d(x, SF))
    if "blur" in p:
        x = blur(x, gaussian_kernel(*p["blur"]))
    scale, mode = p["resize"]
    if scale != 1.0:
        x = resize(x, max(h, round(x.shape[2] * scale)), max(w, round(x.shape[3] * scale)), mode)
    if "noise" in p:
        sigma, gray = p["noise"]
        n = rng.standard_normal((1, 1 if gray else 3, x.shape[2], x.shape[3])).astype(np.float32)
        x = x + sigma * torch.from_numpy(n)
    x = jpeg(x.clamp(0, 1), p["jpeg"])
    x = resize(x, h, w, p["final"])
    return to_u8(jpeg(x.clamp(0, 1), p["jpeg2"]))


VAL_REAL = {"kind": "real", "blur": (13, 1.2, 1.2, 0.0), "resize": (1.0, "bicubic"), "noise": (8 / 255, False),
            "jpeg": 70, "final": "bicubic", "jpeg2": 85}
VAL_BICUBIC = {"kind": "clean", "op": "bicubic"}


class PairSource:
    """Random (HR, LR) pairs: HR crops with a random downscale and flip, LR by `sample_degradation`."""

    def __init__(self, photos, hr_crop, min_scale, max_scale, clean_prob):
        self.photos, self.size = photos, hr_crop
        self.min_scale, self.max_scale, self.clean_prob = min_scale, max_scale, clean_prob

    def batch(self, rng: np.random.Generator, n: int):
        hr = np.empty((n, self.size, self.size, 3), np.uint8)
        lr = np.empty((n, self.size // SF, self.size // SF, 3), np.uint8)
        for j in range(n):
            img = self.photos[int(rng.integers(len(self.photos)))]
            c = cut_crop(img, rng, self.size, self.min_scale, self.max_scale)
            hr[j] = c[:, ::-1] if rng.random() < 0.5 else c
            lr[j] = degrade(hr[j], sample_degradation(rng, self.clean_prob), rng)
        return hr, lr


def u8_to_signed(a: np.ndarray, device) -> torch.Tensor:
    return torch.from_numpy(a).to(device).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0).contiguous()


# ----------------------------------------------------------------------------------------------------
# validation


def psnr_u8(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * math.log10(255.0 ** 2 / max(mse, 1e-10))


def y_channel(a: np.ndarray) -> np.ndarray:
    """BT.601 luma on [0, 255] (16 … 235), as float."""
    f = a.astype(np.float64) / 255
    return 16 + 65.481 * f[..., 0] + 128.553 * f[..., 1] + 24.966 * f[..., 2]


def psnr_y(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((y_channel(a) - y_channel(b)) ** 2)
    return 10 * math.log10(255.0 ** 2 / max(mse, 1e-10))


class Validator:
    """Full 4-step sampling PSNR on fixed crops of the held-out photos, two fixed degradations."""

    def __init__(self, photos, crop: int, diffusion: ResShift, device, amp):
        hr = []
        for i, img in enumerate(photos):
            rng = np.random.default_rng([VAL_SEED, i])
            hr.append(cut_crop(img, rng, crop, 1.0, 1.0, scale=1.0))
        self.hr = np.stack(hr)
        self.lr = {}
        for name, p in (("bicubic", VAL_BICUBIC), ("real", VAL_REAL)):
            self.lr[name] = np.stack([degrade(h, p, np.random.default_rng([VAL_SEED, 1, i]))
                                      for i, h in enumerate(self.hr)])
        self.diffusion, self.device, self.amp = diffusion, device, amp
        self.baseline = {name: self._scores(self._bicubic_up(lr)) for name, lr in self.lr.items()}

    def _bicubic_up(self, lr_u8):
        x = u8_to_signed(lr_u8, "cpu")
        up = F.interpolate(x, scale_factor=SF, mode="bicubic", align_corners=False)
        return ((up + 1) * 127.5).clamp(0, 255).round().byte().permute(0, 2, 3, 1).numpy()

    def _scores(self, sr_u8):
        return {"rgb": float(np.mean([psnr_u8(s, h) for s, h in zip(sr_u8, self.hr)])),
                "y": float(np.mean([psnr_y(s, h) for s, h in zip(sr_u8, self.hr)]))}

    @torch.no_grad()
    def __call__(self, model, batch=16) -> dict:
        was = model.training
        model.eval()
        out = {}
        for name, lr_u8 in self.lr.items():
            gen = torch.Generator(device=self.device).manual_seed(VAL_SEED)
            srs = []
            for i in range(0, len(lr_u8), batch):
                lr = u8_to_signed(lr_u8[i:i + batch], self.device)
                sr = self.diffusion.sample(model, lr, gen, self.amp)
                srs.append(((sr + 1) * 127.5).clamp(0, 255).round().byte().permute(0, 2, 3, 1).cpu().numpy())
            s = self._scores(np.concatenate(srs))
            out[name] = {**s, "bicubic_rgb": self.baseline[name]["rgb"], "bicubic_y": self.baseline[name]["y"]}
        model.train(was)
        return out


def val_line(v: dict) -> str:
    return "  ".join(f"{n}: {r['rgb']:.2f} dB (bicubic {r['bicubic_rgb']:.2f})" for n, r in v.items())


# ----------------------------------------------------------------------------------------------------
# export


def write_curve(stem: str, losses, val, every, title, loss_name="train_x0_mse", loss_label="train x0-MSE",
                loss_axis="x0-MSE ([-1, 1] scale)", val_axis="validation PSNR (dB, EMA, 4 steps)",
                baseline=("bicubic_rgb", "bicubic_upsampling_psnr_rgb", "bicubic upsampling, '{}' LR"),
                val_label="val PSNR-RGB, '{}' LR") -> list[str]:
    """`-curve.csv` (and `-curve.png` with matplotlib): the train loss averaged over `every` steps, and per validation
    set n the PSNR-RGB and -Y (val[step][n]["rgb"], ["y"]) with a baseline PSNR: baseline = (its key in val[step][n],
    its CSV column suffix, its plot label with {} for n); val_label the plot label of the PSNR, {} for n."""
    base_key, base_column, base_label = baseline
    steps = sorted(set(range(every, len(losses) + 1, every)) | set(val) | ({len(losses)} if losses else set()))
    names = sorted({n for v in val.values() for n in v})
    rows = []
    for s in steps:
        win = losses[max(0, s - every):s]
        row = [s, f"{sum(win) / len(win):.6f}" if win else ""]
        for n in names:
            r = val.get(s, {}).get(n)
            row += [f"{r['rgb']:.3f}", f"{r['y']:.3f}", f"{r[base_key]:.3f}"] if r else ["", "", ""]
        rows.append(row)
    with open(f"{stem}-curve.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["step", f"{loss_name}_mean{every}"] +
                   [f"val_{n}_{k}" for n in names for k in ("psnr_rgb", "psnr_y", base_column)])
        w.writerows(rows)
    files = [f"{stem}-curve.csv"]
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: wrote the curve as CSV only (pip install matplotlib)")
        return files
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    tr = [(r[0], float(r[1])) for r in rows if r[1]]
    if tr:
        ax.plot(*zip(*tr), lw=1, color="C0", label=f"{loss_label} (mean of {every} steps)")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel(loss_axis)
    ax.grid(True, which="both", alpha=0.3)
    ax2 = ax.twinx()
    for k, n in enumerate(names):
        pts = [(s, v[n]["rgb"]) for s, v in sorted(val.items()) if n in v]
        if pts:
            ax2.plot(*zip(*pts), "o-", ms=3, lw=1.2, color=f"C{k + 1}", label=val_label.format(n))
            ax2.axhline(val[pts[-1][0]][n][base_key], ls=":", lw=1,
                        color=f"C{k + 1}", label=base_label.format(n))
    ax2.set_ylabel(val_axis)
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, fontsize=7, loc="upper right")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(f"{stem}-curve.png")
    plt.close(fig)
    return files + [f"{stem}-curve.png"]


def model_card(ckpt: dict, args, nparams: int, files: list[str]) -> str:
    kw, val, hist, a = ckpt["unet"], ckpt["val"], ckpt.get("history", []), ckpt["args"]
    last = val[max(val)] if val else {}
    vtxt = "\n".join(f"  - {n}: PSNR-RGB {r['rgb']:.2f} dB (bicubic {r['bicubic_rgb']:.2f}), PSNR-Y {r['y']:.2f} dB "
                     f"(bicubic {r['bicubic_y']:.2f})" for n, r in last.items()) or "  - (no validation yet)"
    sess = "\n".join(f"  - {h['started']}: steps {h['start_step']}→{h['end_step']}, {fmt_time(h['seconds'])}, "
                     f"{h['device']}" for h in hist)
    curve = ", ".join(f"Models/{Path(f).name}" for f in files if "-curve" in f)
    d = ckpt["diffusion"]
    heads = kw["swin_embed_dim"] // kw["num_head_channels"]
    lines = [
        f"# {args.name} (`Models/{args.name}.safetensors`) — DRAFT written by Tools/train/train_resshift.py",
        "",
        "- What: the project's own ResShift ×4 SR model (UNetModelSwin; our PyTorch implementation with the official "
        "state-dict names) in pixel space: first stage = pixel_unshuffle(·, 4) (torch channel order c·16 + dy·4 + dx), "
        "conditioning = the LR image in [-1, 1] (3 channels concatenated to the 48), "
        + ("residual prediction (x̂0 = y − output, the official ModelMeanType.RESIDUAL)" if d.get("predict_type") == "residual" else "x0-prediction")
        + ", 4 steps. "
        f"{nparams / 1e6:.2f} M parameters, EMA weights (decay {a['ema_decay']}), fp16; constructor arguments and "
        "diffusion settings in the file's `__metadata__` (family `resshift-swin`).",
        f"- Network: model_channels {kw['model_channels']}, channel_mult {kw['channel_mult']}, num_res_blocks "
        f"{kw['num_res_blocks']}, Swin layers at level sizes {kw['attention_resolutions']} (construction size "
        f"{kw['image_size']}) and in the middle block: swin_embed_dim {kw['swin_embed_dim']}, {heads} heads, window "
        f"{kw['window_size']}, mlp_ratio {kw['mlp_ratio']}, depth {kw['swin_depth']}.",
        f"- Diffusion: exponential η schedule, T {d['steps']}, κ {d['kappa']}, power {d['power']}, min_noise_level "
        f"{d['min_noise_level']}, etas_end {d['etas_end']}; network input x_t / (3κ√η_t + 1); x̂0 clamped to [-1, 1].",
        f"- Data: ../shared/data/train minus Tools/train/holdout.txt ({ckpt.get('train_photos', '?')} photos: BSDS500 "
        "train+test, Sun–Hays 80). **Licence note: research-only photographs; whether the weights may be used "
        f"beyond research is not settled.** HR crops {a['hr_crop']}² (downscale U[{a['min_scale']}, {a['max_scale']}], "
        f"horizontal flips); LR by our one-order Real-ESRGAN-style pipeline ({a['clean_prob']:.0%} clean bicubic:4 / "
        "pool:4; otherwise blur, resize, noise, JPEG, final ×¼, JPEG; see the script's docstring).",
        f"- Recipe: MSE on x0 (no LPIPS term, unlike the official v3 recipe), AdamW lr {a['lr']}, warm-up "
        f"{a['warmup']}, gradient clip {a['grad_clip']}, batch {a['batch']}, seed {a['seed']}.",
        f"- Steps: {ckpt['step']}; wall time {fmt_time(sum(h['seconds'] for h in hist))} in all; sessions:",
        sess or "  - (none)",
        f"- Curve: {curve}",
        f"- Validation (EMA weights, full 4-step sampling with fixed noise, step {max(val) if val else '—'}): one "
        f"{a['val_crop']}² HR crop of each of the 48 hold-out photos; PSNR on 8-bit RGB and on BT.601 Y over the whole crop, "
        "against bicubic upsampling of the same LR:",
        vtxt,
        f"- Known limits: trained on {a['hr_crop']}² HR crops only, for few CPU hours; MSE only (expect soft textures).",
    ]
    return "\n".join(lines) + "\n"


def export(ckpt: dict, args):
    from safetensors.torch import save_file
    out = Path(args.export_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = str(out / args.name)
    model = UNetSwin(**ckpt["unet"])
    names = {n for n, _ in model.named_parameters()}
    tensors = {k: v.detach().to("cpu", torch.float16).contiguous() for k, v in ckpt["ema"].items() if k in names}
    assert set(tensors) == names, set(names) ^ set(tensors)
    meta = {"format": "pt", "family": "resshift-swin", "weights": "ema", "step": str(ckpt["step"]),
            "config": json.dumps(ckpt["unet"], separators=(",", ":")),
            "diffusion": json.dumps(ckpt["diffusion"], separators=(",", ":")),
            "first_stage": "pixel-unshuffle-4", "lq": "lr"}
    save_file(tensors, f"{stem}.safetensors", metadata=meta)
    files = [f"{stem}.safetensors"]
    files += write_curve(stem, ckpt["losses"], ckpt["val"], ckpt["args"]["csv_every"],
                         f"{args.name}: UNetModelSwin ch{ckpt['unet']['model_channels']}, step {ckpt['step']}")
    nparams = sum(t.numel() for t in tensors.values())
    Path(f"{stem}.md").write_text(model_card(ckpt, args, nparams, files))
    files.append(f"{stem}.md")
    for f in files:
        size = os.path.getsize(f)
        print(f"exported {f}  {size / 1e6:.2f} MB{'  (OVER 50 MB)' if size > 50e6 else ''}")


# ----------------------------------------------------------------------------------------------------
# equivalence with the official code, speed


def import_official(src: Path):
    """models.unet.UNetModelSwin and models.script_util from an exported tree of zsyOAOA/ResShift; timm and
    the autoencoder module are stubbed when missing (only DropPath/to_2tuple/trunc_normal_ are used)."""
    sys.path.insert(0, str(src))
    try:
        import timm.models.layers  # noqa: F401
    except ImportError:
        timm = types.ModuleType("timm")
        models = types.ModuleType("timm.models")
        layers = types.ModuleType("timm.models.layers")

        class DropPath(nn.Module):
            def __init__(self, p=0.0):
                super().__init__()

            def forward(self, x):
                return x

        layers.DropPath = DropPath
        layers.to_2tuple = lambda v: tuple(v) if isinstance(v, (tuple, list)) else (v, v)
        layers.trunc_normal_ = nn.init.trunc_normal_
        timm.models, models.layers = models, layers
        sys.modules.update({"timm": timm, "timm.models": models, "timm.models.layers": layers})
    try:
        import ldm.models.autoencoder  # noqa: F401
    except Exception:
        for name in ("ldm", "ldm.models", "ldm.models.autoencoder"):
            sys.modules[name] = types.ModuleType(name)
        sys.modules["ldm.models.autoencoder"].AutoencoderKLTorch = object
    from models.unet import UNetModelSwin
    from models import script_util
    from models.swin_transformer import SwinTransformerBlock
    return UNetModelSwin, script_util, SwinTransformerBlock


def check_against_official(args) -> bool:
    torch.manual_seed(0)
    UNetModelSwin, script_util, SwinTransformerBlock = import_official(Path(args.check_against_official))
    ok = True

    def report(what, ours, ref):
        nonlocal ok
        d = (ours - ref).abs().max().item()
        m = ref.abs().max().item()
        good = d <= 1e-5 * max(m, 1e-12)
        ok &= good
        print(f"  {'ok  ' if good else 'FAIL'} {what}: max|Δ| {d:.3g}, max|ref| {m:.3g}")

    print("attention masks (ours vs SwinTransformerBlock.calculate_mask):")
    for (h, w, win, shift) in ((16, 16, 8, 4), (32, 64, 8, 4), (64, 32, 8, 4), (24, 40, 8, 4), (16, 16, 4, 2)):
        blk = SwinTransformerBlock(32, (h, w), 1, window_size=win, shift_size=shift)
        report(f"mask {h}×{w} window {win} shift {shift}", shifted_window_mask(h, w, win, shift),
               blk.calculate_mask((h, w)))

    configs = [("chosen config", unet_kwargs(args)),
               ("variant: num_heads 4, no scale-shift, Swin at every level, depth 3, 2 res blocks, mult 1,2",
                {**unet_kwargs(args), "num_heads": 4, "num_head_channels": -1, "use_scale_shift_norm": False,
                 "channel_mult": [1, 2], "num_res_blocks": [2, 1], "swin_depth": 3, "image_size": 16, "lq_size": 16,
                 "attention_resolutions": [16, 8], "model_channels": 32, "swin_embed_dim": 32, "mlp_ratio": 4.0})]
    for label, kw in configs:
        print(f"network, {label}:")
        ours = UNetSwin(**kw).eval()
        ref_kw = {**kw, "attention_resolutions": tuple(kw["attention_resolutions"]),
                  "channel_mult": tuple(kw["channel_mult"])}
        ref = UNetModelSwin(**ref_kw).eval()
        g = torch.Generator().manual_seed(1)
        sd = {k: torch.randn(v.shape, generator=g) * 0.2 for k, v in ours.state_dict().items()}
        ours.load_state_dict(sd)
        res = ref.load_state_dict(sd, strict=False)
        extra_ok = not res.unexpected_keys and all(k.endswith(("relative_position_index", "attn_mask"))
                                                   for k in res.missing_keys)
        ok &= extra_ok
        print(f"  {'ok  ' if extra_ok else 'FAIL'} key names: {len(sd)} tensors load into the official class; "
              f"missing there only its buffers ({len(res.missing_keys)}), unexpected {res.unexpected_keys}")
        s = kw["image_size"]
        for (h, w) in ((s, s), (2 * s, 2 * s), (s, 3 * s), (2 * s, s)):
            x = torch.randn(2, kw["in_channels"], h, w, generator=g)
            lq = torch.randn(2, 3, h, w, generator=g)
            t = torch.tensor([0, 3])
            with torch.no_grad():
                report(f"forward {h}×{w}", ours(x, t, lq), ref(x, t, lq=lq))

    print("diffusion (ours vs the official create_gaussian_diffusion, first stage = pixel (un)shuffle):")
    ours_d = ResShift(predict_type="xstart")
    ref_d = script_util.create_gaussian_diffusion(normalize_input=True, schedule_name="exponential", sf=SF,
                                                  min_noise_level=0.2, steps=4, kappa=2.0, etas_end=0.99,
                                                  schedule_kwargs={"power": 0.3}, weighted_mse=False,
                                                  predict_type="xstart", timestep_respacing=None,
                                                  scale_factor=1.0, latent_flag=False)
    report("sqrt_etas", torch.from_numpy(ours_d.np["sqrt_eta"]), torch.from_numpy(ref_d.sqrt_etas))

    class Unshuffle(nn.Module):
        def __init__(self):
            super().__init__()
            self.dummy = nn.Parameter(torch.zeros(1))

        def encode(self, x):
            return F.pixel_unshuffle(x, SF)

        def decode(self, z):
            return F.pixel_shuffle(z, SF)

    kw = unet_kwargs(args)
    net = UNetSwin(**kw).eval()
    g = torch.Generator().manual_seed(2)
    net.load_state_dict({k: torch.randn(v.shape, generator=g) * 0.1 for k, v in net.state_dict().items()})
    s = kw["image_size"]
    lr = torch.rand(2, 3, s, 2 * s, generator=g) * 2 - 1
    hr = torch.rand(2, 3, SF * s, 2 * SF * s, generator=g) * 2 - 1
    noise = torch.randn(2, 48, s, 2 * s, generator=g)
    with torch.no_grad():
        for ti in range(4):
            t = torch.tensor([ti, ti])
            mse_ref = ref_d.training_losses(net, hr, lr, t, first_stage_model=Unshuffle(), model_kwargs={"lq": lr},
                                            noise=noise)[0]["mse"].mean()
            report(f"training loss t={ti}", ours_d.loss(net, lr, hr, t, noise), mse_ref)
        torch.manual_seed(7)
        sr_ref = ref_d.p_sample_loop(lr, net, first_stage_model=Unshuffle(), model_kwargs={"lq": lr})
        sr_ours = ours_d.sample(net, lr, torch.Generator().manual_seed(7))
        report("4-step sampling (same noise)", sr_ours, sr_ref)
    print("equivalence check " + ("PASSED" if ok else "FAILED"))
    return ok


def bench(args):
    kw = unet_kwargs(args)
    net = UNetSwin(**kw).eval()
    n = args.bench_size
    x, lq, t = torch.randn(1, kw["in_channels"], n, n), torch.randn(1, 3, n, n), torch.tensor([2])
    times = []
    with torch.no_grad():
        for _ in range(args.bench_runs + 1):
            t0 = time.perf_counter()
            net(x, t, lq)
            times.append(time.perf_counter() - t0)
    nparams = sum(p.numel() for p in net.parameters())
    print(f"forward 1×{kw['in_channels'] + 3}×{n}×{n} (LR {n}², SR {SF * n}²), ch {kw['model_channels']} mult "
          f"{kw['channel_mult']} Swin {kw['swin_embed_dim']} at {kw['attention_resolutions']}: "
          f"{nparams / 1e6:.2f} M params, {torch.get_num_threads()} threads: median {sorted(times[1:])[len(times[1:]) // 2]:.2f} s, best {min(times[1:]):.2f} s "
          f"(runs {', '.join(f'{v:.2f}' for v in times)}; first is warm-up)")


# ----------------------------------------------------------------------------------------------------
# configuration, training


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    g = p.add_argument_group("data")
    g.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data" / "train"),
                   help="folder of training photos (never copied into the repository)")
    g.add_argument("--hr-crop", type=int, default=128, help="HR training crop (the LR crop and image_size are /4)")
    g.add_argument("--min-scale", type=float, default=0.5, help="smallest random downscale of a photo before cropping")
    g.add_argument("--max-scale", type=float, default=1.0)
    g.add_argument("--clean-prob", type=float, default=0.3, help="fraction of clean bicubic:4 / pool:4 LR samples")
    g.add_argument("--val-crop", type=int, default=256, help="HR size of the fixed validation crops")

    g = p.add_argument_group("network (UNetModelSwin)")
    g.add_argument("--model-channels", type=int, default=64)
    g.add_argument("--channel-mult", default="1,2,2")
    g.add_argument("--num-res-blocks", default="2,2,2")
    g.add_argument("--attention-resolutions", default="16,8",
                   help="level sizes at construction (LR crop, halved per level) that get a Swin layer")
    g.add_argument("--swin-depth", type=int, default=2)
    g.add_argument("--swin-embed-dim", type=int, default=64)
    g.add_argument("--num-head-channels", type=int, default=32)
    g.add_argument("--window-size", type=int, default=8)
    g.add_argument("--mlp-ratio", type=float, default=2.0)
    g.add_argument("--dropout", type=float, default=0.0)

    g = p.add_argument_group("optimisation")
    g.add_argument("--batch", type=int, default=16)
    g.add_argument("--lr", type=float, default=2e-4)
    g.add_argument("--warmup", type=int, default=200)
    g.add_argument("--weight-decay", type=float, default=0.0)
    g.add_argument("--grad-clip", type=float, default=1.0, help="global gradient-norm clip (0: none)")
    g.add_argument("--ema-decay", type=float, default=0.999)
    g.add_argument("--seed", type=int, default=0)

    g = p.add_argument_group("budget, checkpoints, logging")
    g.add_argument("--steps", type=int, default=100_000, help="total step count to reach (across resumes)")
    g.add_argument("--minutes", type=float, default=0.0, help="wall-clock budget of this run (0: none)")
    g.add_argument("--out-dir", default=str(REPO / ".cache" / "train-resshift"))
    g.add_argument("--fresh", action="store_true", help="ignore (and overwrite) an existing last.pt")
    g.add_argument("--predict-type", choices=["residual", "xstart"], default="residual",
                   help="what the network outputs (the official ModelMeanType): residual y − x0 (default: starts at "
                        "bicubic quality, with the output conv zero-initialised) or x0 (the released models)")
    g.add_argument("--init-from", default="", help="start a fresh run from exported weights (.safetensors)")
    g.add_argument("--save-minutes", type=float, default=15.0, help="checkpoint interval")
    g.add_argument("--log-every", type=int, default=10)
    g.add_argument("--val-every", type=int, default=1000)
    g.add_argument("--no-val", action="store_true", help="skip validation (tests)")
    g.add_argument("--csv-every", type=int, default=100, help="train-loss smoothing window / CSV row spacing")

    g = p.add_argument_group("device")
    g.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    g.add_argument("--threads", type=int, default=0, help="CPU threads (0: PyTorch's default)")

    g = p.add_argument_group("export, checks")
    g.add_argument("--name", default="resshift-x4-own", help="Models/<name>.safetensors, .md, -curve.csv/.png")
    g.add_argument("--export-dir", default=str(REPO / "Models"))
    g.add_argument("--export-only", action="store_true", help="export last.pt's EMA weights and exit")
    g.add_argument("--no-export", action="store_true", help="do not export at the end of the run")
    g.add_argument("--check-against-official", metavar="DIR", default="",
                   help="compare network, mask and diffusion with the official code in DIR and exit")
    g.add_argument("--bench", action="store_true", help="time one forward pass at --bench-size² LR and exit")
    g.add_argument("--bench-size", type=int, default=256)
    g.add_argument("--bench-runs", type=int, default=3)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.check_against_official:
        sys.exit(0 if check_against_official(args) else 1)
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

    device = pick_device(args.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    def amp():
        if device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return torch.autocast("cpu", enabled=False)

    # ---- resume or start
    ckpt = None
    kw = unet_kwargs(args)
    if last.exists() and not args.fresh:
        ckpt = torch.load(last, map_location="cpu", weights_only=False)
        if ckpt["unet"] != kw:
            diff = {k: (ckpt["unet"].get(k), v) for k, v in kw.items() if ckpt["unet"].get(k) != v}
            sys.exit(f"{last} holds another network (checkpoint vs flags: {diff}); use the same flags, another "
                     "--out-dir, or --fresh")
        for k in ("ema_decay", "min_scale", "max_scale", "clean_prob", "csv_every", "val_crop", "predict_type"):
            stored = ckpt["args"].get(k, "xstart" if k == "predict_type" else getattr(args, k))
            if stored != getattr(args, k):
                print(f"note: --{k.replace('_', '-')} {getattr(args, k)} differs from the checkpoint's "
                      f"{stored}; using the checkpoint's", file=sys.stderr)
                setattr(args, k, stored)

    # ---- data
    data_dir = Path(args.data_dir)
    if not data_dir.is_dir():
        sys.exit(f"no photos at {data_dir}")
    held = load_holdout(data_dir)
    held_set = set(held)
    train_names = [n for n in list_photos(data_dir) if n not in held_set]
    assert not held_set & set(train_names)
    t0 = time.time()
    source = PairSource(open_photos(data_dir, train_names), args.hr_crop, args.min_scale, args.max_scale,
                        args.clean_prob)
    diffusion = ResShift(device=device, predict_type=args.predict_type)
    validator = None if args.no_val else Validator(open_photos(data_dir, held), args.val_crop, diffusion, device, amp)
    print(f"data: {len(train_names)} training photos from {data_dir} ({len(held)} held out), HR {args.hr_crop}² → "
          f"LR {args.hr_crop // SF}²; loaded in {time.time() - t0:.1f} s")

    # ---- model, EMA, optimiser, RNGs
    np_rng, gen = seeded_rngs(args.seed, device)
    model = UNetSwin(**kw).to(device)
    ema = copy.deepcopy(model).requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.999), weight_decay=args.weight_decay)
    losses: list[float] = []
    val: dict[int, dict] = {}
    history: list[dict] = []
    step = 0
    if ckpt is not None:
        step, losses, val, history = resume_from(ckpt, model, ema, opt, np_rng, gen, device, args.seed, last)
        ckpt = None
        resumed = True
    else:
        resumed = False
        # Zero output conv: a residual model starts exactly at y (bicubic upsampling), as ADM zero-inits its out conv.
        nn.init.zeros_(model.out[2].weight)
        nn.init.zeros_(model.out[2].bias)
        ema.load_state_dict(model.state_dict())
    if not resumed and args.init_from:
        from safetensors.torch import load_file
        model.load_state_dict({k: v.float() for k, v in load_file(args.init_from).items()})
        ema.load_state_dict(model.state_dict())
        print(f"initialised model and EMA from {args.init_from} (fresh optimiser, step 0)")
    model.train()
    ema.eval()
    nparams = sum(p.numel() for p in model.parameters())
    print(f"network: UNetModelSwin ch {kw['model_channels']} mult {kw['channel_mult']} Swin {kw['swin_embed_dim']} at "
          f"{kw['attention_resolutions']}, {nparams / 1e6:.2f} M parameters; device {device}"
          f"{' (' + torch.cuda.get_device_name(device) + ')' if device.type == 'cuda' else ''}, "
          f"{torch.get_num_threads()} threads; batch {args.batch}; target step {args.steps}"
          f"{f', budget {args.minutes:g} min' if args.minutes else ''}", flush=True)

    stop = stop_on_signals()
    start_step, t_start = step, time.time()
    seg = segment_record(step, args.batch, device)

    def state():
        seg_now = dict(seg, end_step=step, seconds=round(time.time() - t_start, 1))
        return {"step": step, "unet": kw, "diffusion": diffusion.config, "args": vars(args),
                "model": model.state_dict(), "ema": ema.state_dict(), "opt": opt.state_dict(),
                "rng": rng_state(np_rng, gen), "losses": losses, "val": val, "history": history + [seg_now],
                "holdout_sha": sha256_lines(held), "train_photos": len(train_names)}

    def run_val():
        if validator is None:
            return
        t_val = time.time()
        val[step] = validator(ema)
        print(f"  val @ {step} (EMA, 4 steps, PSNR-RGB): {val_line(val[step])}  [{time.time() - t_val:.0f} s]",
              flush=True)

    def flush_pending():
        if pending:
            losses.extend(torch.stack(pending).float().cpu().tolist())
            pending.clear()

    deadline = t_start + args.minutes * 60 if args.minutes else float("inf")
    last_save = time.time()
    pending: list = []
    speed = StepRate(step)
    out_dir.mkdir(parents=True, exist_ok=True)
    while step < args.steps and time.time() < deadline and stop["signal"] is None:
        deadline += wait_while_paused(out_dir, stop)
        lr_now = args.lr * min(1.0, (step + 1) / args.warmup) if args.warmup else args.lr
        for group in opt.param_groups:
            group["lr"] = lr_now
        hr_u8, lr_u8 = source.batch(np_rng, args.batch)
        hr, lq = u8_to_signed(hr_u8, device), u8_to_signed(lr_u8, device)
        t = torch.randint(0, diffusion.T, (args.batch,), generator=gen, device=device)
        noise = torch.randn((args.batch, 3 * SF * SF, lq.shape[2], lq.shape[3]), generator=gen, device=device)
        with amp():
            loss = diffusion.loss(model, lq, hr, t, noise)
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
            flush_pending()
            if not all(math.isfinite(v) for v in vals):
                sys.exit(f"non-finite loss at step {step}: not saving (resume from the last checkpoint)")
            rate, eta = speed.update(step, args.steps, deadline)
            recent = losses[-args.csv_every:]
            print(f"step {step}/{args.steps}  loss {vals[-1]:.5f}  mean{len(recent)} {sum(recent) / len(recent):.5f}"
                  f"  {rate:.3f} step/s  lr {lr_now:.2e}  ETA {fmt_time(eta)}", flush=True)
        if step % args.val_every == 0:
            flush_pending()
            run_val()
        if time.time() - last_save > args.save_minutes * 60:
            flush_pending()
            save_checkpoint(last, state())
            last_save = time.time()
    flush_pending()
    assert len(losses) == step, (len(losses), step)
    if step > start_step and step not in val and stop["signal"] is None:
        run_val()
    final = state()
    finish_session(last, final, start_step, t_start, stop, target=args.steps,
                   log_line=f"batch {final['history'][-1]['batch']}{'  val ' + val_line(val[step]) if step in val else ''}")
    if stop["signal"] is None and not args.no_export:
        export(final, args)


if __name__ == "__main__":
    main()
