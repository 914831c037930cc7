"""Golden fixtures for ResShift (Yue et al.), computed by the OFFICIAL PyTorch code on tiny random models.

Purpose
  The Swift ResShift port (Swin UNet, VQ-f4 first stage, the residual-shifting sampler) is compared against
  these. Every parameter, the relative_position_bias_table included, is redrawn at random after construction
  (the official code zero-initialises the last conv of each ResBlock, which would make tests pass trivially):
  conv/linear weights N(0, 1/fan_in), their biases N(0, 0.1^2), GroupNorm weight 1 + N(0, 0.1^2) and bias
  N(0, 0.1^2), relative_position_bias_table N(0, 0.5^2), VQ codebook N(0, 1). Buffers (relative_position_index,
  attn_mask) are left exactly as the official code computes them and are part of the saved state dicts.
  Weights: plain torch.save(model.state_dict()) (zip format; parameters float16, drawn float16-representable so the
  float32 official outputs are computed from exactly the stored values; relative_position_index is int64).
  Activations: float32 safetensors, images/feature maps NHWC, everything else as listed.

Usage (from the repository root; needs torch + numpy, plus Pillow because ldm/util.py imports it):
  python Tools/reference/make_resshift_fixtures.py --resshift DIR [--networks-out DIR] [--methods-out DIR]

  --resshift      a checkout of https://github.com/zsyOAOA/ResShift (fixtures made at commit
                  3ce1d81e8402fd50083809ae288a3977f6921bdd); models/unet.py (UNetModelSwin),
                  models/swin_transformer.py, models/script_util.py (create_gaussian_diffusion),
                  models/gaussian_diffusion.py and ldm/models/autoencoder.py (VQModelTorch) are imported from it.
                  `timm` is replaced by a stub (only DropPath/to_2tuple/trunc_normal_ are imported, none of
                  which affects the outputs here); `einops` is used if installed, else a stub that performs the
                  pure-permutation rearranges the VQ quantiser needs. xformers is switched off (vanilla AttnBlock).
  --networks-out  defaults to Tests/NetworksTests/Fixtures/resshift
  --methods-out   defaults to Tests/MethodsTests/Fixtures/resshift

No code from ResShift lives in this repository; it is imported from the given path at run time.
Not run by CI. CPU only, float32, one thread, fixed seeds: reruns are byte-identical.

Files and tensors (N = batch; t is a float vector of integer timesteps)
  networks-out/swin_a.pt, swin_a.io.safetensors      UNetModelSwin SWIN_A (lq_size == image_size: the lq
      is concatenated as is). "x" [2,16,16,3], "t" [2] = [0,3], "lq" [2,16,16,3], "y" [2,16,16,3]
      = model(x, t, lq=lq); non-square "x_rect" [1,16,32,3], "t_rect" [1] = [2], "lq_rect" [1,16,32,3],
      "y_rect"; larger "x_big" [1,32,32,3], "t_big" [1] = [1], "lq_big" [1,32,32,3], "y_big".
  networks-out/swin_b.pt, swin_b.io.safetensors      UNetModelSwin SWIN_B (cond_mask, lq 4x larger: a conv
      feature extractor; resblock_updown; 2 heads; window 4 at the 4x4 level). "x" [1,16,16,3], "t" [1] = [2],
      "lq" [1,64,64,3], "mask" [1,64,64,1] (values -1/+1, +1 = unknown), "y" = model(x, t, lq=lq, mask=mask).
  networks-out/vq_a.pt, vq_a.io.safetensors          VQModelTorch VQ_A. "image" [1,64,64,3] in [-1,1],
      "latent" [1,16,16,3] = encode(image) = quant_conv(encoder(image)) (not quantised), "indices" [1,16,16]
      (float) nearest codebook rows of latent, "quantized" [1,16,16,3] = the official z_q = latent + (e - latent)
      (codebook[indices] up to float32 rounding), "decoded" [1,64,64,3] = decode(latent) (quantise ->
      post_quant_conv -> decoder), "image_rect" [1,32,48,3], "latent_rect" [1,8,12,3]. Metadata "seed": the
      first seed at which no nearest-codebook choice is a near tie (see VQ_MIN_GAP).
  networks-out/full-size-keys/resshift-realsr-v3.json, vq-f4.json   state_dict keys and shapes (buffers
      included) of the released architectures (configs/realsr_swinunet_realesrgan256_journal.yaml).
  methods-out/run_latent.io.safetensors (+ copies of swin_a.pt, vq_a.pt)   one official p_sample_loop with
      swin_a as network, vq_a as first stage, the v3 diffusion (DIFFUSION_V3), exactly as sampler.py calls it
      (clip_denoised=False, model_kwargs={'lq': lr}), every Gaussian draw injected:
      "lr" [1,16,16,3]; "y_up" [1,64,64,3] = bicubic x4 of lr (what the first stage encodes); "z_y" [1,16,16,3];
      "noise_prior", "noise_step3", "noise_step2", "noise_step1", "noise_step0" [1,16,16,3] (the draws, see
      "noise_order" in the metadata); "z_T" = prior sample; "z_step{3,2,1,0}" = sample returned by p_sample at
      t; "x0_step{3,2,1,0}" = its pred_xstart; "output" [1,64,64,3] = decoded z_step0, NOT clamped;
      "final_indices" [1,16,16] codebook indices decode() picked for z_step0; "sqrt_etas" [4].
  methods-out/run_pixel.io.safetensors + swin_c.pt   the same loop in pixel space through a lossless first
      stage encode = pixel_unshuffle(x, 4), decode = pixel_shuffle(z, 4) (channel c*16 + i*4 + j holds pixel
      (4y+i, 4x+j) of colour c), diffusion latent_flag=False (input scaled by 1/(sqrt_eta*kappa*3+1)),
      clip_denoised=True (pred_xstart clamped to [-1,1]); network swin_c (48 in/out channels). Same names as
      run_latent with 48-channel latents ([1,16,16,48]) and no "final_indices"; plus "sqrt_etas_15" [15] (the
      v1/v2 schedule: 15 steps, min_noise_level 0.04).

Behaviour of the official code these fixtures pin down (commit above)
  * SwinTransformerBlock compares its input_resolution (a list) with x_size (a tuple): never equal, so the
    stored attn_mask buffer is never used; the mask is recomputed by calculate_mask for every input.
  * calculate_mask indexes a (1,1,H,W) tensor as if it were (1,H,W,1) and transposes tokens inside each
    window, so the mask is not Swin's: within window (wh, ww), token (r, c) (row-major, in the rolled frame)
    gets the label of global row wh*ws + c, rows split into [0, H-ws), [H-ws, H-shift), [H-shift, H). Only the
    bottom row of windows is masked (tokens with c < ws-shift vs c >= ws-shift; -100 added, not -inf); W plays
    no part. Unshifted blocks get an all-zero mask. Blocks whose input_resolution <= window_size get
    window = min(input_resolution) and shift 0 at construction (kept for larger inputs).
  * The Swin "norm1/norm2" are GroupNorm(32) over the whole NCHW map (not per-token LayerNorm); the MLP is two
    1x1 convs with exact GELU; BasicLayer = 1x1 patch_embed -> blocks -> 1x1 patch_unembed, no outer skip.
  * p_sample_loop scales only x_t (latent: / sqrt(eta*kappa^2 + 1); pixel: / (sqrt_eta*kappa*3 + 1)); lq goes
    to the network unscaled. At t = 0 the posterior mean is pred_xstart exactly (z_step0 == x0_step0).
  * encode/decode_first_stage read next(first_stage_model.parameters()) before testing for None, so the
    official loop cannot run with first_stage_model=None; the pixel run uses a pixel-unshuffle stage instead.
"""
import argparse
import importlib
import json
import math
import os
import shutil
import sys
import types

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from fixtures import nhwc, save  # noqa: E402

ROOT = os.path.join(HERE, "..", "..")
DEFAULT_NETWORKS_OUT = os.path.join(ROOT, "Tests", "NetworksTests", "Fixtures", "resshift")
DEFAULT_METHODS_OUT = os.path.join(ROOT, "Tests", "MethodsTests", "Fixtures", "resshift")
OFFICIAL_COMMIT = "3ce1d81e8402fd50083809ae288a3977f6921bdd"

# ---------------------------------------------------------------------------------------------------------------
# Configurations (exact constructor / factory keyword arguments)

SWIN_A = dict(
    image_size=16, in_channels=3, model_channels=32, out_channels=3, num_res_blocks=[2, 1],
    attention_resolutions=[16, 8], dropout=0, channel_mult=[1, 2], conv_resample=True, dims=2, use_fp16=False,
    num_head_channels=16, use_scale_shift_norm=True, resblock_updown=False, swin_depth=2, swin_embed_dim=32,
    window_size=8, mlp_ratio=4, cond_lq=True, lq_size=16)

SWIN_B = dict(
    image_size=16, in_channels=3, model_channels=32, out_channels=3, num_res_blocks=[1, 1, 1],
    attention_resolutions=[16, 8, 4], channel_mult=[1, 1, 2], num_heads=2, num_head_channels=-1,
    use_scale_shift_norm=False, resblock_updown=True, swin_depth=2, swin_embed_dim=32, window_size=8,
    mlp_ratio=2, cond_lq=True, cond_mask=True, lq_size=64)

SWIN_C = dict(
    image_size=16, in_channels=48, model_channels=32, out_channels=48, num_res_blocks=[1, 1],
    attention_resolutions=[16, 8], channel_mult=[1, 2], num_head_channels=16, use_scale_shift_norm=True,
    resblock_updown=False, swin_depth=2, swin_embed_dim=32, window_size=8, mlp_ratio=4, cond_lq=True, lq_size=16)

VQ_A = dict(
    ddconfig=dict(double_z=False, z_channels=3, resolution=64, in_channels=3, out_ch=3, ch=32, ch_mult=[1, 1, 2],
                  num_res_blocks=[1, 2, 1], attn_resolutions=[16], dropout=0.0, padding_mode="zeros"),
    n_embed=64, embed_dim=3)

DIFFUSION_V3 = dict(
    sf=4, schedule_name="exponential", schedule_kwargs={"power": 0.3}, etas_end=0.99, steps=4, min_noise_level=0.2,
    kappa=2.0, weighted_mse=False, predict_type="xstart", timestep_respacing=None, scale_factor=1.0,
    normalize_input=True, latent_flag=True)

DIFFUSION_PIXEL = dict(DIFFUSION_V3, latent_flag=False)

DIFFUSION_V1V2 = dict(DIFFUSION_V3, steps=15, min_noise_level=0.04)

# Released architectures, from configs/realsr_swinunet_realesrgan256_journal.yaml
FULL_UNET_V3 = dict(
    image_size=64, in_channels=3, model_channels=160, out_channels=3, attention_resolutions=[64, 32, 16, 8],
    dropout=0, channel_mult=[1, 2, 2, 4], num_res_blocks=[2, 2, 2, 2], conv_resample=True, dims=2, use_fp16=False,
    num_head_channels=32, use_scale_shift_norm=True, resblock_updown=False, swin_depth=2, swin_embed_dim=192,
    window_size=8, mlp_ratio=4, cond_lq=True, lq_size=64)

FULL_VQ_F4 = dict(
    ddconfig=dict(double_z=False, z_channels=3, resolution=256, in_channels=3, out_ch=3, ch=128, ch_mult=[1, 2, 4],
                  num_res_blocks=2, attn_resolutions=[], dropout=0.0, padding_mode="zeros"),
    n_embed=8192, embed_dim=3)

# Minimum relative gap (d2 - d1) / max(d2, |z|^2) between the best and second-best squared codebook distance
# at every position; seeds are redrawn until it holds (more margin for the sampling run, whose final latent
# carries the error of four network evaluations and an encoder).
VQ_MIN_GAP = 2e-3
RUN_MIN_GAP = 3e-3

NOISE_ORDER = ("5 calls of torch.randn_like inside models/gaussian_diffusion.py, in this order: "
               "1) p_sample_loop_progressive: noise = randn_like(z_y) (noise=None), passed to prior_sample "
               "(prior_sample itself draws nothing when given noise) -> noise_prior; "
               "2..5) p_sample at t = 3, 2, 1, 0, each after the model call: noise = randn_like(x_t) -> "
               "noise_step3, noise_step2, noise_step1, noise_step0 (the t=0 draw is multiplied by "
               "nonzero_mask = 0, so it does not enter the result)")


# ---------------------------------------------------------------------------------------------------------------
# Loading the official code


def install_stubs():
    """`timm` pulls in torchvision; the Swin file only imports three helpers from it. Provide those.
    `einops` is only needed for pure axis permutations in the VQ quantiser; use it if installed."""
    def to_2tuple(x):
        if isinstance(x, (list, tuple)):
            return tuple(x)
        return (x, x)

    class DropPath(nn.Module):  # only constructed for drop_path > 0, which no config here uses
        def __init__(self, drop_prob=0.0):
            super().__init__()
            assert drop_prob == 0.0, "DropPath stub supports only drop_prob = 0"

        def forward(self, x):
            return x

    def trunc_normal_(tensor, mean=0.0, std=1.0, a=-2.0, b=2.0):
        return nn.init.trunc_normal_(tensor, mean=mean, std=std, a=a, b=b)

    timm = types.ModuleType("timm")
    timm_models = types.ModuleType("timm.models")
    timm_layers = types.ModuleType("timm.models.layers")
    timm_layers.DropPath, timm_layers.to_2tuple, timm_layers.trunc_normal_ = DropPath, to_2tuple, trunc_normal_
    timm.models, timm_models.layers = timm_models, timm_layers
    sys.modules.update({"timm": timm, "timm.models": timm_models, "timm.models.layers": timm_layers})

    try:
        import einops  # noqa: F401
        return "einops " + getattr(einops, "__version__", "?")
    except ImportError:
        pass

    def rearrange(t, pattern, **axes):
        lhs, rhs = (side.split() for side in pattern.split("->"))
        assert "(" not in pattern and sorted(lhs) == sorted(rhs) and len(lhs) == t.dim(), \
            f"einops stub handles only permutations, not {pattern!r}"
        return t.permute(*[lhs.index(a) for a in rhs])

    def repeat(*args, **kwargs):
        raise NotImplementedError("einops stub: repeat is not needed by these fixtures")

    einops = types.ModuleType("einops")
    einops.rearrange, einops.repeat = rearrange, repeat
    sys.modules["einops"] = einops
    return "einops stub (permutations only)"


def load_official(resshift_dir):
    einops_note = install_stubs()
    sys.path.insert(0, os.path.abspath(resshift_dir))
    ldm_model = importlib.import_module("ldm.modules.diffusionmodules.model")
    ldm_model.XFORMERS_IS_AVAILBLE = False  # make_attn must build the vanilla AttnBlock
    mods = types.SimpleNamespace(
        unet=importlib.import_module("models.unet"),
        swin=importlib.import_module("models.swin_transformer"),
        gd=importlib.import_module("models.gaussian_diffusion"),
        script_util=importlib.import_module("models.script_util"),
        autoencoder=importlib.import_module("ldm.models.autoencoder"),
        ldm_model=ldm_model)
    print(f"official code from {os.path.abspath(resshift_dir)}; {einops_note}; timm stubbed; xformers off")
    return mods


# ---------------------------------------------------------------------------------------------------------------
# Random parameters and inputs


def randomize(model, seed, swin):
    """Redraws every parameter (rules in the module docstring). Fails if any parameter is left untouched."""
    g = torch.Generator().manual_seed(seed)
    done = set()
    with torch.no_grad():
        for mname, m in model.named_modules():
            own = dict(m.named_parameters(recurse=False))
            if not own:
                continue
            if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)):
                w = m.weight
                w.copy_(torch.randn(w.shape, generator=g) / math.sqrt(w[0].numel()))
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
            elif isinstance(m, nn.GroupNorm):
                m.weight.copy_(1 + 0.1 * torch.randn(m.weight.shape, generator=g))
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=g))
            elif isinstance(m, nn.Embedding):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g))
            elif isinstance(m, swin.WindowAttention):
                assert list(own) == ["relative_position_bias_table"], list(own)
                table = m.relative_position_bias_table
                table.copy_(0.5 * torch.randn(table.shape, generator=g))
            else:
                raise TypeError(f"no init rule for {mname}: {type(m).__name__}")
            done.update(f"{mname}.{k}" if mname else k for k in own)
    missing = [n for n, _ in model.named_parameters() if n not in done]
    assert not missing, missing
    # Every parameter is made float16-representable, so the files can store float16 (half the size) while the
    # official outputs are computed in float32 from exactly the stored values.
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.half().float())


def smooth_image(g, n, c, h, w, factor=4):
    """Random smooth-ish image in (-1, 1): coarse Gaussian noise, bicubic upsampled, squashed by tanh."""
    coarse = torch.randn(n, c, max(1, h // factor), max(1, w // factor), generator=g)
    return torch.tanh(1.2 * F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=False))


def check_sensitive(name, y, y_other, what):
    m = y.abs().max().item()
    d = (y - y_other).abs().max().item()
    assert m > 0.1, f"{name}: max|y| = {m}"
    assert d > 1e-2, f"{name}: output does not depend on {what} (max diff {d})"
    return d


def describe(name, t):
    return f"{name} {list(t.shape)} max|.| {t.abs().max().item():.4f}"


def state_dict_size(sd):
    return sum(v.numel() * v.element_size() for v in sd.values())


def save_pt(model, path):
    sd = model.state_dict()
    for k, v in sd.items():
        assert v.dtype in (torch.float32, torch.int64), (k, v.dtype)
    # Float parameters as float16 (exactly representable, see randomize); buffers as they are.
    params = {n for n, _ in model.named_parameters()}
    sd = {k: (v.half() if k in params else v) for k, v in sd.items()}
    torch.save(sd, path)
    os.chmod(path, 0o644)


def save_io(path, tensors, metadata):
    arrays = {}
    for k, v in tensors.items():
        if isinstance(v, torch.Tensor):
            v = nhwc(v) if v.dim() == 4 else v.detach().numpy()
        arrays[k] = v
    save(path, arrays, metadata)
    os.chmod(path, 0o644)


def build_swin(mods, config, seed):
    torch.manual_seed(seed)
    model = mods.unet.UNetModelSwin(**config)
    randomize(model, seed + 1, mods.swin)
    return model.eval()


# ---------------------------------------------------------------------------------------------------------------
# Network fixtures


def make_swin_a(mods, out):
    model = build_swin(mods, SWIN_A, 5001)
    g = torch.Generator().manual_seed(5003)
    x = torch.randn(2, 3, 16, 16, generator=g)
    t = torch.tensor([0.0, 3.0])
    lq = smooth_image(g, 2, 3, 16, 16)
    x_rect = torch.randn(1, 3, 16, 32, generator=g)
    t_rect = torch.tensor([2.0])
    lq_rect = smooth_image(g, 1, 3, 16, 32)
    x_big = torch.randn(1, 3, 32, 32, generator=g)
    t_big = torch.tensor([1.0])
    lq_big = smooth_image(g, 1, 3, 32, 32)
    with torch.no_grad():
        y = model(x, t, lq=lq)
        dt = check_sensitive("swin_a", y, model(x, t.flip(0), lq=lq), "t")
        dl = check_sensitive("swin_a", y, model(x, t, lq=lq.flip(0)), "lq")
        y_rect = model(x_rect, t_rect, lq=lq_rect)
        y_big = model(x_big, t_big, lq=lq_big)
    assert y.shape == (2, 3, 16, 16) and y_rect.shape == (1, 3, 16, 32) and y_big.shape == (1, 3, 32, 32)
    save_pt(model, os.path.join(out, "swin_a.pt"))
    save_io(os.path.join(out, "swin_a.io.safetensors"),
            dict(x=x, t=t, lq=lq, y=y, x_rect=x_rect, t_rect=t_rect, lq_rect=lq_rect, y_rect=y_rect,
                 x_big=x_big, t_big=t_big, lq_big=lq_big, y_big=y_big),
            {"family": "resshift-swin", "config": json.dumps(SWIN_A, sort_keys=True),
             "official_commit": OFFICIAL_COMMIT})
    print(f"swin_a: {describe('y', y)}, {describe('y_rect', y_rect)}, {describe('y_big', y_big)} "
          f"(t-sensitivity {dt:.3f}, lq-sensitivity {dl:.3f}; state dict {state_dict_size(model.state_dict())} B)")
    return model


def make_swin_b(mods, out):
    model = build_swin(mods, SWIN_B, 5101)
    g = torch.Generator().manual_seed(5103)
    x = torch.randn(1, 3, 16, 16, generator=g)
    t = torch.tensor([2.0])
    lq = smooth_image(g, 1, 3, 64, 64, factor=8)
    mask = -torch.ones(1, 1, 64, 64)
    mask[:, :, 20:44, 12:40] = 1.0  # the unknown region (+1), as in the official inpainting inputs
    with torch.no_grad():
        y = model(x, t, lq=lq, mask=mask)
        dt = check_sensitive("swin_b", y, model(x, torch.tensor([0.0]), lq=lq, mask=mask), "t")
        dm = check_sensitive("swin_b", y, model(x, t, lq=lq, mask=-mask), "mask")
    assert y.shape == (1, 3, 16, 16)
    save_pt(model, os.path.join(out, "swin_b.pt"))
    save_io(os.path.join(out, "swin_b.io.safetensors"), dict(x=x, t=t, lq=lq, mask=mask, y=y),
            {"family": "resshift-swin", "config": json.dumps(SWIN_B, sort_keys=True),
             "official_commit": OFFICIAL_COMMIT})
    print(f"swin_b: {describe('y', y)} (t-sensitivity {dt:.3f}, mask-sensitivity {dm:.3f}; "
          f"state dict {state_dict_size(model.state_dict())} B)")
    return model


def nearest_codes(z, codebook):
    """Float64 nearest codebook rows of an NCHW latent: (indices [N,H,W], relative gap best vs second best).
    The gap is (d2 - d1) / max(d2, |z|^2, 1e-6) per position, the returned value its minimum."""
    zf = z.detach().double().permute(0, 2, 3, 1).reshape(-1, z.shape[1])
    e = codebook.detach().double()
    d = ((zf[:, None, :] - e[None, :, :]) ** 2).sum(-1)
    two = torch.topk(d, 2, dim=1, largest=False).values
    scale = torch.maximum(torch.maximum(two[:, 1], (zf ** 2).sum(1)), torch.full_like(two[:, 1], 1e-6))
    gap = ((two[:, 1] - two[:, 0]) / scale).min().item()
    idx = d.argmin(1).reshape(z.shape[0], z.shape[2], z.shape[3])
    return idx, gap


def make_vq_a(mods, out):
    for seed in range(6001, 6401, 4):
        torch.manual_seed(seed)
        vq = mods.autoencoder.VQModelTorch(**VQ_A)
        randomize(vq, seed + 1, mods.swin)
        vq.eval()
        assert all(type(m).__name__ != "MemoryEfficientAttnBlock" for m in vq.modules())
        g = torch.Generator().manual_seed(seed + 2)
        image = smooth_image(g, 1, 3, 64, 64, factor=8)
        image_rect = smooth_image(g, 1, 3, 32, 48, factor=8)
        with torch.no_grad():
            latent = vq.encode(image)
        idx, gap = nearest_codes(latent, vq.quantize.embedding.weight)
        if gap > VQ_MIN_GAP:
            break
        print(f"vq_a: seed {seed} has a near tie (relative gap {gap:.2e}), redrawing")
    else:
        raise RuntimeError("no seed without near ties")
    with torch.no_grad():
        quantized, _, (_, _, official_idx) = vq.quantize(latent)
        decoded = vq.decode(latent)
        latent_rect = vq.encode(image_rect)
        dq = check_sensitive("vq_a", decoded, vq.decode(latent.flip(3)), "latent")
    official_idx = official_idx.reshape(idx.shape)
    assert torch.equal(official_idx, idx), "official argmin disagrees with the float64 nearest code"
    # the official z_q is z + (e - z).detach(): equal to the codebook row up to float32 rounding
    assert torch.allclose(quantized, vq.quantize.embedding.weight[idx].permute(0, 3, 1, 2), rtol=0, atol=1e-6)
    assert latent.shape == (1, 3, 16, 16) and decoded.shape == (1, 3, 64, 64) and latent_rect.shape == (1, 3, 8, 12)
    save_pt(vq, os.path.join(out, "vq_a.pt"))
    save_io(os.path.join(out, "vq_a.io.safetensors"),
            dict(image=image, latent=latent, indices=idx.float(), quantized=quantized, decoded=decoded,
                 image_rect=image_rect, latent_rect=latent_rect),
            {"family": "resshift-vq", "config": json.dumps(VQ_A, sort_keys=True), "seed": str(seed),
             "min_relative_codebook_gap": f"{gap:.6g}", "official_commit": OFFICIAL_COMMIT})
    print(f"vq_a: seed {seed}, {describe('latent', latent)}, {describe('decoded', decoded)}, "
          f"{describe('latent_rect', latent_rect)}, {len(idx.unique())} distinct codes, min relative gap {gap:.3g} "
          f"(latent-sensitivity {dq:.3f}; state dict {state_dict_size(vq.state_dict())} B)")
    return vq, seed


# ---------------------------------------------------------------------------------------------------------------
# Full-size key lists


def write_keys(path, config, model, extra):
    sd = model.state_dict()
    buffer_names = {n for n, _ in model.named_buffers()}
    parameter_count = sum(p.numel() for p in model.parameters())
    lines = ["{", '"config": ' + json.dumps(config, sort_keys=True) + ","]
    for k, v in extra.items():
        lines.append(json.dumps(k) + ": " + json.dumps(v, sort_keys=True) + ",")
    lines.append('"parameter_count": %d,' % parameter_count)
    lines.append('"buffer_count": %d,' % sum(v.numel() for k, v in sd.items() if k in buffer_names))
    lines.append('"keys": [')
    lines.append(",\n".join(json.dumps([k, list(v.shape)]) for k, v in sd.items()))
    lines.append("]")
    lines.append("}")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    kinds = sorted({k.rsplit(".", 1)[-1] for k in buffer_names if k in sd})
    print(f"{os.path.basename(path)}: {len(sd)} state_dict entries ({len(buffer_names & set(sd))} buffers: {kinds}),"
          f" {parameter_count} parameters")


def make_full_size(mods, out):
    keys_dir = os.path.join(out, "full-size-keys")
    os.makedirs(keys_dir, exist_ok=True)
    with torch.device("meta"):
        unet = mods.unet.UNetModelSwin(**FULL_UNET_V3)
    write_keys(os.path.join(keys_dir, "resshift-realsr-v3.json"), FULL_UNET_V3, unet, {
        "class": "models.unet.UNetModelSwin",
        "checkpoint": "resshift_realsrx4_s4_v3.pth (configs/realsr_swinunet_realesrgan256_journal.yaml, model)",
        "note": ("keys ending in relative_position_index (int64, derived from window_size) and attn_mask (float32, "
                 "only in shifted blocks; 0/-100 shifted-window mask for the construction resolution) are buffers, "
                 "not parameters; parameter_count excludes them, buffer_count counts their elements. The forward "
                 "pass never reads attn_mask (it recomputes the mask for every input size).")})
    with torch.device("meta"):
        vq = mods.autoencoder.VQModelTorch(**FULL_VQ_F4)
    write_keys(os.path.join(keys_dir, "vq-f4.json"), FULL_VQ_F4, vq, {
        "class": "ldm.models.autoencoder.VQModelTorch",
        "checkpoint": "autoencoder_vq_f4.pth (configs/realsr_swinunet_realesrgan256_journal.yaml, autoencoder)",
        "note": "no buffers; quantize.embedding.weight is the codebook [n_embed, embed_dim]"})


# ---------------------------------------------------------------------------------------------------------------
# Sampling runs


class NoiseInjector:
    """Stands in for `torch` inside models/gaussian_diffusion.py (its `th` and `torch` names): randn_like returns
    the pre-drawn tensors in order; everything else is torch itself."""

    def __init__(self, draws):
        self.draws = list(draws)
        self.calls = []

    def __getattr__(self, name):
        return getattr(torch, name)

    def randn_like(self, like, *args, **kwargs):
        assert not args and not kwargs, (args, kwargs)
        assert self.draws, "more Gaussian draws than prepared"
        noise = self.draws.pop(0)
        assert noise.shape == like.shape and like.dtype == torch.float32, (noise.shape, like.shape, like.dtype)
        self.calls.append(tuple(like.shape))
        return noise.clone()


class RecordingFirstStage(nn.Module):
    """Passes encode/decode through to the wrapped first stage and records what goes in and out."""

    def __init__(self, inner, log):
        super().__init__()
        self.inner = inner
        self.log = log

    def encode(self, x):
        self.log["y_up"] = x.clone()
        return self.inner.encode(x)

    def decode(self, z):
        self.log["decode_input"] = z.clone()
        return self.inner.decode(z)


class PixelUnshuffleStage(nn.Module):
    """A lossless 'first stage' for the pixel-space path: 4x pixel (un)shuffle. The dummy parameter exists only
    because the official encode/decode_first_stage read next(first_stage_model.parameters()).dtype."""

    def __init__(self, factor=4):
        super().__init__()
        self.factor = factor
        self.dummy = nn.Parameter(torch.zeros(1))

    def encode(self, x):
        return F.pixel_unshuffle(x, self.factor)

    def decode(self, z):
        return F.pixel_shuffle(z, self.factor)


def official_run(mods, diffusion, model, first_stage, lr, draws, clip_denoised):
    """sampler.py's p_sample_loop call, with injected noise and every intermediate recorded."""
    log, steps = {}, []
    injector = NoiseInjector(draws)
    cls = type(diffusion)

    def prior_sample(y, noise=None):
        z = cls.prior_sample(diffusion, y, noise)
        log["z_y"], log["z_T"] = y.clone(), z.clone()
        return z

    def p_sample(model_, x, y, t, **kwargs):
        out = cls.p_sample(diffusion, model_, x, y, t, **kwargs)
        steps.append((int(t[0]), out["sample"].clone(), out["pred_xstart"].clone()))
        return out

    diffusion.prior_sample, diffusion.p_sample = prior_sample, p_sample
    saved = mods.gd.th, mods.gd.torch
    mods.gd.th = mods.gd.torch = injector
    try:
        output = diffusion.p_sample_loop(
            y=lr, model=model, first_stage_model=RecordingFirstStage(first_stage, log), noise=None,
            noise_repeat=False, clip_denoised=clip_denoised, model_kwargs={"lq": lr})
    finally:
        mods.gd.th, mods.gd.torch = saved
        del diffusion.prior_sample, diffusion.p_sample
    assert not injector.draws and len(injector.calls) == 5, injector.calls
    assert [s[0] for s in steps] == [3, 2, 1, 0], [s[0] for s in steps]
    assert torch.equal(log["decode_input"], steps[-1][1])
    tensors = {"lr": lr, "y_up": log["y_up"], "z_y": log["z_y"], "z_T": log["z_T"], "output": output}
    for t, z, x0 in steps:
        tensors[f"z_step{t}"], tensors[f"x0_step{t}"] = z, x0
    for name, noise in zip(["noise_prior", "noise_step3", "noise_step2", "noise_step1", "noise_step0"], draws):
        tensors[name] = noise
    tensors["sqrt_etas"] = torch.from_numpy(np.asarray(diffusion.sqrt_etas, dtype=np.float32))
    return tensors


def draw_noises(seed, shape):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=g) for _ in range(5)]


def check_run(name, mods, diffusion, model, first_stage, lr, draws, clip, tensors):
    """Bicubic and the official computation agree; rerunning with another global seed changes nothing
    (every random draw is the injected one)."""
    y_up = F.interpolate(lr, scale_factor=4, mode="bicubic")
    assert torch.equal(tensors["y_up"], y_up), f"{name}: y_up is not F.interpolate(lr, x4, bicubic)"
    torch.manual_seed(12345)
    again = official_run(mods, diffusion, model, first_stage, lr, draws, clip)
    assert all(torch.equal(again[k], tensors[k]) for k in tensors), f"{name}: run depends on the global RNG"
    assert torch.equal(tensors["z_step0"], tensors["x0_step0"]), f"{name}: t=0 posterior mean != pred_xstart"


def print_run(name, tensors):
    keys = ["z_y", "z_T", "z_step3", "z_step2", "z_step1", "z_step0", "x0_step3", "x0_step0", "output"]
    print(f"{name}: " + ", ".join(f"max|{k}| {tensors[k].abs().max().item():.3f}" for k in keys))


def check_schedule(sqrt_etas, expected, name):
    got = np.asarray(sqrt_etas, dtype=np.float64)
    for i, e in expected.items():
        assert abs(got[i] - e) < 5e-5, f"{name}[{i}] = {got[i]} (expected about {e})"
    print(f"{name}: " + ", ".join(f"{v:.5f}" for v in got))


def make_run_latent(mods, out, swin_a, vq, networks_out):
    diffusion = mods.script_util.create_gaussian_diffusion(**DIFFUSION_V3)
    check_schedule(diffusion.sqrt_etas, {0: 0.1, 1: 0.5201, 2: 0.76138, 3: 0.99}, "sqrt_etas (T=4)")
    g = torch.Generator().manual_seed(7001)
    lr = smooth_image(g, 1, 3, 16, 16)
    for seed in range(7101, 7501, 8):
        draws = draw_noises(seed, (1, 3, 16, 16))
        tensors = official_run(mods, diffusion, swin_a, vq, lr, draws, clip_denoised=False)
        idx, gap = nearest_codes(tensors["z_step0"], vq.quantize.embedding.weight)
        if gap > RUN_MIN_GAP:
            break
        print(f"run_latent: noise seed {seed} has a near tie at decode (relative gap {gap:.2e}), redrawing")
    else:
        raise RuntimeError("no noise seed without near ties")
    check_run("run_latent", mods, diffusion, swin_a, vq, lr, draws, False, tensors)
    with torch.no_grad():
        _, _, (_, _, official_idx) = vq.quantize(tensors["z_step0"])
    assert torch.equal(official_idx.reshape(idx.shape), idx)
    tensors["final_indices"] = idx.float()
    save_io(os.path.join(out, "run_latent.io.safetensors"), tensors, {
        "diffusion": json.dumps(DIFFUSION_V3, sort_keys=True), "network": "swin_a.pt",
        "network_config": json.dumps(SWIN_A, sort_keys=True), "first_stage": "vq_a.pt",
        "first_stage_config": json.dumps(VQ_A, sort_keys=True), "clip_denoised": "False",
        "noise_seed": str(seed), "noise_order": NOISE_ORDER, "min_relative_codebook_gap": f"{gap:.6g}",
        "official_commit": OFFICIAL_COMMIT})
    # The weights are not copied: the Swift test reads swin_a.pt and vq_a.pt from the networks fixtures.
    print_run("run_latent", tensors)
    print(f"run_latent: noise seed {seed}, {len(idx.unique())} distinct codes at decode, min relative gap {gap:.3g}")


def make_run_pixel(mods, out):
    swin_c = build_swin(mods, SWIN_C, 5201)
    diffusion = mods.script_util.create_gaussian_diffusion(**DIFFUSION_PIXEL)
    g = torch.Generator().manual_seed(7601)
    lr = smooth_image(g, 1, 3, 16, 16)
    draws = draw_noises(7602, (1, 48, 16, 16))
    stage = PixelUnshuffleStage()
    tensors = official_run(mods, diffusion, swin_c, stage, lr, draws, clip_denoised=True)
    check_run("run_pixel", mods, diffusion, swin_c, stage, lr, draws, True, tensors)
    assert torch.equal(tensors["z_y"], F.pixel_unshuffle(tensors["y_up"], 4))
    clipped = [(k, (tensors[k].abs() == 1).float().mean().item()) for k in ("x0_step3", "x0_step0")]
    v1v2 = mods.script_util.create_gaussian_diffusion(**DIFFUSION_V1V2)
    check_schedule(v1v2.sqrt_etas, {0: 0.02, 1: 0.11717, 14: 0.99}, "sqrt_etas (T=15)")
    tensors["sqrt_etas_15"] = torch.from_numpy(np.asarray(v1v2.sqrt_etas, dtype=np.float32))
    save_pt(swin_c, os.path.join(out, "swin_c.pt"))
    save_io(os.path.join(out, "run_pixel.io.safetensors"), tensors, {
        "diffusion": json.dumps(DIFFUSION_PIXEL, sort_keys=True),
        "diffusion_15": json.dumps(DIFFUSION_V1V2, sort_keys=True), "network": "swin_c.pt",
        "network_config": json.dumps(SWIN_C, sort_keys=True),
        "first_stage": "encode = F.pixel_unshuffle(x, 4), decode = F.pixel_shuffle(z, 4)", "clip_denoised": "True",
        "noise_seed": "7602", "noise_order": NOISE_ORDER, "official_commit": OFFICIAL_COMMIT})
    print_run("run_pixel", tensors)
    print("run_pixel: fraction of pred_xstart clamped: " + ", ".join(f"{k} {v:.3f}" for k, v in clipped)
          + f"; swin_c state dict {state_dict_size(swin_c.state_dict())} B")


# ---------------------------------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--resshift", required=True, help="checkout of zsyOAOA/ResShift")
    ap.add_argument("--networks-out", default=DEFAULT_NETWORKS_OUT)
    ap.add_argument("--methods-out", default=DEFAULT_METHODS_OUT)
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    networks_out, methods_out = os.path.abspath(args.networks_out), os.path.abspath(args.methods_out)
    os.makedirs(networks_out, exist_ok=True)
    os.makedirs(methods_out, exist_ok=True)

    mods = load_official(args.resshift)
    swin_a = make_swin_a(mods, networks_out)
    make_swin_b(mods, networks_out)
    vq, _ = make_vq_a(mods, networks_out)
    make_full_size(mods, networks_out)
    make_run_latent(mods, methods_out, swin_a, vq, networks_out)
    make_run_pixel(mods, methods_out)


if __name__ == "__main__":
    main()
