"""Golden fixtures for the oneDNN-backed ops: conv2d variants, linear, multi-head attention.

Run from the repository root with a PyTorch venv:  python Tools/reference/make_conv_attention_fixtures.py
Writes Tests/EngineTests/Fixtures/{conv_*,linear_*,attention_*}.safetensors. Not run by CI.
Every parameter (weights and biases) is drawn at random, so no test can pass on an identity or a zero.
"""
import math
import os

import torch
import torch.nn.functional as F

from fixtures import nhwc, save

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "Tests", "EngineTests", "Fixtures")


def conv_case(name, seed, n, cin, cout, h, w, k, stride=1, padding=0, groups=1, pad_mode="zeros",
              pre_pad=None, post=None, residual=False, bias=True):
    torch.manual_seed(seed)
    x = torch.randn(n, cin, h, w)
    weight = torch.randn(cout, cin // groups, k, k) / math.sqrt(cin // groups * k * k)
    b = torch.randn(cout) if bias else None
    inp = x
    if pre_pad is not None:  # asymmetric zero padding as F.pad (left, right, top, bottom)
        inp = F.pad(x, pre_pad)
    if pad_mode == "reflect":
        inp = F.pad(inp, (padding,) * 4, mode="reflect")
        y = F.conv2d(inp, weight, b, stride=stride, padding=0, groups=groups)
    else:
        y = F.conv2d(inp, weight, b, stride=stride, padding=padding, groups=groups)
    tensors = {"x": nhwc(x), "weight": weight.numpy()}
    if b is not None:
        tensors["bias"] = b.numpy()
    if residual:
        r = torch.randn_like(y)
        tensors["residual"] = nhwc(r)
        y = y + r
    if post == "silu":
        y = F.silu(y)
    elif post == "gelu":
        y = F.gelu(y)
    tensors["y"] = nhwc(y)
    meta = {"stride": stride, "padding": padding, "groups": groups, "pad_mode": pad_mode,
            "post": post or "none", "residual": int(residual)}
    if pre_pad is not None:
        meta["pad_ltrb"] = ",".join(str(p) for p in (pre_pad[0], pre_pad[2], pre_pad[1], pre_pad[3]))
    save(os.path.join(OUT, f"conv_{name}.safetensors"), tensors, meta)


def linear_case(name, seed, rows, cin, cout, post=None):
    torch.manual_seed(seed)
    x = torch.randn(rows, cin)
    weight = torch.randn(cout, cin) / math.sqrt(cin)
    b = torch.randn(cout)
    y = F.linear(x, weight, b)
    if post == "gelu":
        y = F.gelu(y)
    save(os.path.join(OUT, f"linear_{name}.safetensors"),
         {"x": x.numpy(), "weight": weight.numpy(), "bias": b.numpy(), "y": y.numpy()}, {"post": post or "none"})


def legacy_qkv_attention(qkv, heads):
    """guided-diffusion QKVAttentionLegacy on a [B, 3·H·C, T] tensor, written out from its equations."""
    bs, width, length = qkv.shape
    ch = width // (3 * heads)
    q, k, v = qkv.reshape(bs * heads, ch * 3, length).split(ch, dim=1)
    scale = 1 / math.sqrt(math.sqrt(ch))
    weight = torch.einsum("bct,bcs->bts", q * scale, k * scale)
    weight = torch.softmax(weight.float(), dim=-1)
    a = torch.einsum("bts,bcs->bct", weight, v)
    return a.reshape(bs, -1, length)


def new_qkv_attention(qkv, heads):
    """guided-diffusion QKVAttention (use_new_attention_order) on [B, 3·H·C, T]."""
    bs, width, length = qkv.shape
    ch = width // (3 * heads)
    q, k, v = qkv.chunk(3, dim=1)
    scale = 1 / math.sqrt(math.sqrt(ch))
    weight = torch.einsum("bct,bcs->bts", (q * scale).reshape(bs * heads, ch, length),
                          (k * scale).reshape(bs * heads, ch, length))
    weight = torch.softmax(weight.float(), dim=-1)
    a = torch.einsum("bts,bcs->bct", weight, v.reshape(bs * heads, ch, length))
    return a.reshape(bs, -1, length)


def attention_cases():
    torch.manual_seed(100)
    b, heads, ch, t = 2, 3, 16, 37
    qkv = torch.randn(b, 3 * heads * ch, t)
    for name, fn in (("legacy", legacy_qkv_attention), ("split", new_qkv_attention)):
        y = fn(qkv, heads)  # [B, H·C, T]
        save(os.path.join(OUT, f"attention_{name}.safetensors"),
             {"qkv": qkv.transpose(1, 2).contiguous().numpy(), "y": y.transpose(1, 2).contiguous().numpy()},
             {"heads": heads, "head_dim": ch})
    # Separate q, k, v with an additive bias shared by every other batch entry (Swin windows), and Tk != Tq.
    torch.manual_seed(101)
    b, heads, d, tq, tk = 4, 2, 8, 20, 29
    q, k, v = torch.randn(b, heads, tq, d), torch.randn(b, heads, tk, d), torch.randn(b, heads, tk, d)
    bias = torch.randn(2, heads, tq, tk)
    full_bias = bias.repeat(b // 2, 1, 1, 1)
    y = F.scaled_dot_product_attention(q, k, v, attn_mask=full_bias)
    to_tokens = lambda z: z.permute(0, 2, 1, 3).reshape(z.shape[0], z.shape[2], -1).contiguous().numpy()
    save(os.path.join(OUT, "attention_bias.safetensors"),
         {"q": to_tokens(q), "k": to_tokens(k), "v": to_tokens(v), "bias": bias.numpy(), "y": to_tokens(y)},
         {"heads": heads, "head_dim": d})


def main():
    os.makedirs(OUT, exist_ok=True)
    conv_case("3x3", 1, 2, 13, 20, 9, 11, 3, padding=1)
    conv_case("3x3_stride2", 2, 1, 16, 24, 10, 9, 3, stride=2, padding=1)
    conv_case("3x3_stride2_asym", 3, 1, 8, 12, 10, 10, 3, stride=2, padding=0, pre_pad=(0, 1, 0, 1))
    conv_case("3x3_reflect", 4, 1, 6, 10, 9, 8, 3, padding=1, pad_mode="reflect")
    conv_case("3x3_groups4", 5, 1, 16, 24, 7, 6, 3, padding=1, groups=4)
    conv_case("depthwise7", 6, 1, 12, 12, 9, 10, 7, padding=3, groups=12)
    conv_case("1x1", 7, 2, 32, 48, 5, 7, 1)
    conv_case("3x3_silu", 8, 1, 24, 16, 8, 8, 3, padding=1, post="silu")
    conv_case("3x3_residual", 9, 1, 24, 16, 8, 8, 3, padding=1, residual=True)
    conv_case("4x4_stride2", 10, 1, 8, 16, 8, 8, 4, stride=2, padding=1)
    conv_case("3x3_nobias", 11, 1, 5, 7, 6, 6, 3, padding=1, bias=False)
    linear_case("plain", 20, 5, 37, 29)
    linear_case("gelu", 21, 9, 16, 40, post="gelu")
    attention_cases()


if __name__ == "__main__":
    main()
