"""Golden fixtures for the engine's kernels, from PyTorch (CPU, float32).

Usage: venv/bin/python Tools/reference/make_engine_fixtures.py [name ...]   (no names: all of them)

Each generator returns ({tensor name: array}, {metadata key: value}); activations are stored NHWC (see
fixtures.nhwc), parameters in PyTorch's layout. `main` seeds torch with a per-fixture seed derived from the
fixture's name, so adding or reordering generators never changes the other fixtures. Output goes to
Tests/EngineTests/Fixtures/<name>.safetensors. Add generators for further ops (conv, attention) to
GENERATORS below.
"""
import math
import os
import sys
import zlib

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fixtures import nhwc, save  # noqa: E402

OUT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "Tests", "EngineTests", "Fixtures"))


# MARK: - Activations and softmax

def activations():
    # A spread of values that covers the polynomial ranges and the saturation of exp / erf.
    x = torch.randn(2, 20, 7, 13) * 3
    x.view(-1)[:41] = torch.linspace(-20, 20, 41)
    return {
        "x": nhwc(x),
        "silu": nhwc(F.silu(x)),
        "gelu": nhwc(F.gelu(x)),
        "sigmoid": nhwc(torch.sigmoid(x)),
        "tanh": nhwc(torch.tanh(x)),
        "leaky_relu": nhwc(F.leaky_relu(x, 0.2)),
    }, {"slope": 0.2}


def softmax():
    rows, cols = 9, 77
    scores = torch.randn(rows, cols) * 4
    scale = 0.125
    bias = torch.randn(cols)
    bias[[3, 40, 76]] = -math.inf  # an additive mask
    row_bias = torch.randn(rows, cols) * 2
    return {
        "scores": scores.numpy(),
        "bias": bias.numpy(),
        "row_bias": row_bias.numpy(),
        "softmax": torch.softmax(scores, dim=-1).numpy(),
        "softmax_scaled_masked": torch.softmax(scores * scale + bias, dim=-1).numpy(),
        "softmax_row_bias": torch.softmax(scores + row_bias, dim=-1).numpy(),
    }, {"scale": scale}


# MARK: - Normalisation

def group_norm():
    n, c, h, w, groups = 2, 96, 5, 7, 32
    x = torch.randn(n, c, h, w) * 2 + 3  # an offset mean: the statistics must not lose it
    gn = torch.nn.GroupNorm(groups, c, eps=1e-5)
    with torch.no_grad():
        gn.weight.copy_(torch.randn(c))
        gn.bias.copy_(torch.randn(c))
    scale, shift = torch.randn(n, c) * 0.5, torch.randn(n, c)
    with torch.no_grad():
        plain = gn(x)
        scale_shift = plain * (1 + scale[:, :, None, None]) + shift[:, :, None, None]
    # A second configuration: 36 channels in 6 groups (channel remainder of 4 after vectors of 8), eps 1e-6.
    c2, groups2 = 36, 6
    x2 = torch.randn(1, c2, 9, 11) - 1
    gn2 = torch.nn.GroupNorm(groups2, c2, eps=1e-6)
    with torch.no_grad():
        gn2.weight.copy_(torch.randn(c2))
        gn2.bias.copy_(torch.randn(c2))
        out2 = F.silu(gn2(x2))
    return {
        "x": nhwc(x), "weight": gn.weight.detach().numpy(), "bias": gn.bias.detach().numpy(),
        "scale": scale.numpy(), "shift": shift.numpy(),
        "gn": nhwc(plain), "gn_silu": nhwc(F.silu(plain)), "gn_scale_shift_silu": nhwc(F.silu(scale_shift)),
        "x2": nhwc(x2), "weight2": gn2.weight.detach().numpy(), "bias2": gn2.bias.detach().numpy(),
        "gn2_silu": nhwc(out2),
    }, {"groups": groups, "eps": "1e-5", "groups2": groups2, "eps2": "1e-6"}


def group_norm_low_variance():
    """Groups whose variance (~1e-6) is of the order of epsilon, where epsilon decides the result: 1e-5 vs 1e-6
    (ADM vs DDPM/LDM) and epsilon inside vs outside the square root all differ by a factor of 1.5 or more.
    Computed in float64 (the reference is exact) and stored as float32."""
    out, meta = {}, {}
    for tag, (c, groups) in {"a": (96, 32), "b": (36, 6)}.items():
        x = (torch.randn(2, c, 5, 7, dtype=torch.float64) * 1e-3 + 0.01).float()
        weight, bias = torch.randn(c), torch.randn(c)
        scale, shift = torch.randn(2, c) * 0.5, torch.randn(2, c)
        out[f"x_{tag}"], out[f"weight_{tag}"], out[f"bias_{tag}"] = nhwc(x), weight.numpy(), bias.numpy()
        out[f"scale_{tag}"], out[f"shift_{tag}"] = scale.numpy(), shift.numpy()
        meta[f"groups_{tag}"] = groups
        for eps_name, eps in (("1e-5", 1e-5), ("1e-6", 1e-6)):
            plain = F.group_norm(x.double(), groups, weight.double(), bias.double(), eps)
            ss = F.silu(plain * (1 + scale.double()[:, :, None, None]) + shift.double()[:, :, None, None])
            out[f"gn_{tag}_{eps_name}"] = nhwc(plain.float())
            out[f"gn_scale_shift_silu_{tag}_{eps_name}"] = nhwc(ss.float())
    return out, meta


def layer_norm():
    c = 20
    x = torch.randn(2, c, 3, 5) * 1.5 + 0.7  # NCHW; normalised over channels per pixel
    weight, bias = torch.randn(c), torch.randn(c)
    rows = x.permute(0, 2, 3, 1)  # NHWC view: the last dimension is C
    standard = F.layer_norm(rows, (c,), weight, bias, eps=1e-5)
    # Restormer / DiffIR BiasFree_LayerNorm.
    sigma = rows.var(-1, keepdim=True, unbiased=False)
    bias_free = rows / torch.sqrt(sigma + 1e-5) * weight
    # RDDM / denoising-diffusion-pytorch LayerNorm on NCHW: over dim 1, gain only, eps 1e-5.
    g = weight.view(1, c, 1, 1)
    var = torch.var(x, dim=1, unbiased=False, keepdim=True)
    mean = torch.mean(x, dim=1, keepdim=True)
    channel = (x - mean) * (var + 1e-5).rsqrt() * g
    # A wider row (37: vectors of 16 and 8, then 5 left over), eps 1e-6.
    c2 = 37
    x2 = torch.randn(4, 3, c2) * 3
    weight2, bias2 = torch.randn(c2), torch.randn(c2)
    return {
        "x": nhwc(x), "weight": weight.numpy(), "bias": bias.numpy(),
        "layer_norm": standard.contiguous().numpy(), "bias_free": bias_free.contiguous().numpy(),
        "channel_gain_only": nhwc(channel),
        "x2": x2.numpy(), "weight2": weight2.numpy(), "bias2": bias2.numpy(),
        "layer_norm2": F.layer_norm(x2, (c2,), weight2, bias2, eps=1e-6).numpy(),
    }, {"eps": "1e-5", "eps2": "1e-6"}


# MARK: - Embeddings

def adm_timestep_embedding(timesteps, dim, max_period=10000):
    """guided-diffusion nn.timestep_embedding, verbatim."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(start=0, end=half, dtype=torch.float32) / half)
    args = timesteps[:, None].float() * freqs[None]
    embedding = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        embedding = torch.cat([embedding, torch.zeros_like(embedding[:, :1])], dim=-1)
    return embedding


def ddpm_timestep_embedding(timesteps, embedding_dim):
    """DDPM get_timestep_embedding (pytorch_diffusion / LDM's DDPM UNet), verbatim."""
    half_dim = embedding_dim // 2
    emb = math.log(10000) / (half_dim - 1)
    emb = torch.exp(torch.arange(half_dim, dtype=torch.float32) * -emb)
    emb = timesteps.float()[:, None] * emb[None, :]
    emb = torch.cat([torch.sin(emb), torch.cos(emb)], dim=1)
    if embedding_dim % 2 == 1:
        emb = F.pad(emb, (0, 1, 0, 0))
    return emb


def embedding():
    t = torch.tensor([0.0, 1.0, 37.5, 500.0, 998.25, 999.0])
    return {
        "timesteps": t.numpy(),
        "adm128": adm_timestep_embedding(t, 128).numpy(),
        "adm129": adm_timestep_embedding(t, 129).numpy(),
        "ddpm128": ddpm_timestep_embedding(t, 128).numpy(),
        "ddpm33": ddpm_timestep_embedding(t, 33).numpy(),
    }, {}


def vector_quantizer():
    d, k = 12, 37
    codebook = torch.randn(k, d)
    z = torch.randn(1, d, 5, 7)
    # taming-transformers VectorQuantizer.forward, on the NHWC-flattened latents.
    z_flat = z.permute(0, 2, 3, 1).reshape(-1, d)
    distances = (torch.sum(z_flat ** 2, dim=1, keepdim=True) + torch.sum(codebook ** 2, dim=1)
                 - 2 * torch.matmul(z_flat, codebook.t()))
    indices = torch.argmin(distances, dim=1)
    quantized = codebook[indices].view(1, 5, 7, d)
    return {"z": nhwc(z), "codebook": codebook.numpy(), "quantized": quantized.numpy(),
            "indices": indices.float().numpy()}, {}


# MARK: - Resampling

def bicubic():
    x = torch.randn(1, 3, 11, 13)
    x10 = torch.randn(2, 10, 6, 5)
    out = {"x": nhwc(x), "x10": nhwc(x10)}
    for name, size in {"up3": (33, 39), "up4": (44, 52), "odd": (17, 29), "down": (5, 6), "down_odd": (4, 9)}.items():
        out[name] = nhwc(F.interpolate(x, size=size, mode="bicubic", align_corners=False))
    out["x10_up2"] = nhwc(F.interpolate(x10, scale_factor=2, mode="bicubic", align_corners=False))
    out["x10_mixed"] = nhwc(F.interpolate(x10, size=(4, 9), mode="bicubic", align_corners=False))
    return out, {}


def resampling():
    x = torch.randn(2, 12, 7, 9)
    small = torch.randn(1, 5, 6, 8)
    return {
        "x": nhwc(x), "small": nhwc(small),
        "avg_pool2": nhwc(F.avg_pool2d(x, 2)),
        "avg_pool3": nhwc(F.avg_pool2d(x, 3)),
        "nearest2": nhwc(F.interpolate(x, scale_factor=2, mode="nearest")),
        "pixel_shuffle2": nhwc(F.pixel_shuffle(x, 2)),
        "pixel_unshuffle2": nhwc(F.pixel_unshuffle(small, 2)),
        "reflect_1_2_2_1": nhwc(F.pad(x, (1, 2, 2, 1), mode="reflect")),
        "zero_0_1_0_1": nhwc(F.pad(x, (0, 1, 0, 1))),
        "replicate_2_1_0_3": nhwc(F.pad(x, (2, 1, 0, 3), mode="replicate")),
    }, {}


GENERATORS = {
    "activations": activations,
    "softmax": softmax,
    "group_norm": group_norm,
    "group_norm_low_variance": group_norm_low_variance,
    "layer_norm": layer_norm,
    "embedding": embedding,
    "vector_quantizer": vector_quantizer,
    "bicubic": bicubic,
    "resampling": resampling,
}


def main(names):
    os.makedirs(OUT, exist_ok=True)
    torch.set_num_threads(1)
    for name in names or GENERATORS:
        torch.manual_seed(zlib.crc32(name.encode()))
        tensors, metadata = GENERATORS[name]()
        path = os.path.join(OUT, f"{name}.safetensors")
        save(path, tensors, metadata)
        print(f"{path}: {', '.join(sorted(tensors))} ({os.path.getsize(path)} bytes)")


if __name__ == "__main__":
    main(sys.argv[1:])
