"""Golden fixtures for the two diffusion network families, computed by the OFFICIAL PyTorch code.

Purpose
  * Tiny random models (adm_a, adm_b, ddpm_a, ddpm_b) that together exercise every constructor option the
    engine supports. Every parameter is redrawn at random after construction (the official code zero-initialises
    the last conv of each residual block, the attention projections and the output conv, which would make the
    output trivially zero). For each model this writes
      <name>.pt              plain torch.save(model.state_dict()) (zip format; adm_b stored as float16)
      <name>.io.safetensors  float32 "x" (NHWC), "t" (float [N]), "y" (NHWC output), "labels" (adm_b only),
                             "x_rect"/"t_rect"/"y_rect" (adm_a only: a non-square 24x40 input); __metadata__ holds
                             "family" ("adm" or "ddpm") and "config" (JSON of the exact constructor arguments).
  * Full-size key lists (no weights) of the released checkpoints' architectures, built on the meta device:
      full-size-keys/<preset>.json = {"config": ..., "keys": [[name, [shape...]], ...], "parameter_count": N}

Usage (from the repository root, with a PyTorch venv that also has `safetensors`):
  python Tools/reference/make_network_fixtures.py --guided-diffusion DIR --ddnm DIR [--out DIR]

  --guided-diffusion  a checkout of https://github.com/openai/guided-diffusion
                      (fixtures made at commit 22e0df8183507e13a7813f8d38d51b072ca1e67c); the package
                      `guided_diffusion` (unet.py, nn.py, fp16_util.py, script_util.py, ...) is imported from it.
  --ddnm              a checkout of https://github.com/wyhuai/DDNM
                      (fixtures made at commit 00b58eac7843a4c99114fd8fa42da7aa2b6808af); only
                      guided_diffusion/models.py (the DDPM "simple" UNet `Model`) and configs/*.yml are read.
  --out               defaults to Tests/NetworksTests/Fixtures next to this script's repository.

No code from either repository lives in this repository; they are imported from the given paths at run time.
Not run by CI. CPU only, one thread.
"""
import argparse
import importlib.util
import json
import math
import os
import sys
import types
from collections import OrderedDict

import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(HERE, "..", "..", "Tests", "NetworksTests", "Fixtures")


# ---------------------------------------------------------------------------------------------------------------
# Loading the official code


def load_official(gd_dir, ddnm_dir):
    sys.path.insert(0, os.path.abspath(gd_dir))
    from guided_diffusion import script_util, unet  # noqa: E402  (openai/guided-diffusion)

    return unet, script_util, load_official_ddnm_models(ddnm_dir)


def ddnm_yaml_model(ddnm_dir, name):
    """The `model:` and `data:` sections of a DDNM config, without needing PyYAML (flat `key: value` lines)."""
    sections = {}
    current = None
    with open(os.path.join(ddnm_dir, "configs", name)) as f:
        for line in f:
            if not line.strip() or line.strip().startswith("#"):
                continue
            if not line.startswith(" "):
                current = line.split(":")[0].strip()
                sections[current] = {}
                continue
            key, _, value = line.strip().partition(":")
            sections[current][key.strip()] = parse_scalar(value.strip())
    return sections


def parse_scalar(v):
    if v.startswith("[") and v.endswith("]"):
        return [parse_scalar(x.strip()) for x in v[1:-1].split(",") if x.strip()]
    if v.lower() == "true":
        return True
    if v.lower() == "false":
        return False
    if len(v) >= 2 and v[0] == v[-1] and v[0] in "'\"":
        return v[1:-1]
    try:
        return int(v)
    except ValueError:
        pass
    try:
        return float(v)
    except ValueError:
        return v


def namespace(d):
    return types.SimpleNamespace(**{k: namespace(v) if isinstance(v, dict) else v for k, v in d.items()})


def ddpm_config(model, image_size, num_diffusion_timesteps=1000):
    """The nested config DDNM's models.Model(config) reads (config.model.*, config.data.image_size, ...)."""
    return {"model": model, "data": {"image_size": image_size},
            "diffusion": {"num_diffusion_timesteps": num_diffusion_timesteps}}


# ---------------------------------------------------------------------------------------------------------------
# Random parameters


def randomize(model, seed):
    """Redraws every parameter: conv/linear weights N(0, 1/fan_in), their biases N(0, 0.1^2), norm weights
    1 + N(0, 0.1^2), norm biases N(0, 0.1^2), embeddings N(0, 1). Fails if any parameter is left untouched."""
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
            else:
                raise TypeError(f"no init rule for {mname}: {type(m).__name__}")
            done.update(f"{mname}.{k}" if mname else k for k in own)
    missing = [n for n, _ in model.named_parameters() if n not in done]
    assert not missing, missing


# ---------------------------------------------------------------------------------------------------------------
# Tiny fixtures

ADM_A = dict(
    image_size=32, in_channels=3, model_channels=32, out_channels=6, num_res_blocks=1,
    attention_resolutions=[2], dropout=0.0, channel_mult=[1, 2], conv_resample=True, dims=2,
    num_classes=None, use_checkpoint=False, use_fp16=False, num_heads=-1, num_head_channels=16,
    num_heads_upsample=-1, use_scale_shift_norm=True, resblock_updown=True, use_new_attention_order=False)

ADM_B = dict(
    image_size=32, in_channels=3, model_channels=32, out_channels=3, num_res_blocks=2,
    attention_resolutions=[1, 4], dropout=0.0, channel_mult=[1, 1, 2], conv_resample=True, dims=2,
    num_classes=10, use_checkpoint=False, use_fp16=False, num_heads=2, num_head_channels=-1,
    num_heads_upsample=1, use_scale_shift_norm=False, resblock_updown=False, use_new_attention_order=True)

DDPM_A = ddpm_config(dict(type="simple", in_channels=3, out_ch=3, ch=32, ch_mult=[1, 2], num_res_blocks=1,
                          attn_resolutions=[16], dropout=0.0, var_type="fixedsmall", resamp_with_conv=True), 32)

DDPM_B = ddpm_config(dict(type="simple", in_channels=3, out_ch=3, ch=32, ch_mult=[1, 1, 2], num_res_blocks=2,
                          attn_resolutions=[8], dropout=0.0, var_type="fixedsmall", resamp_with_conv=False), 32)


def adm_kwargs(cfg):
    kw = dict(cfg)
    for k in ("attention_resolutions", "channel_mult"):
        kw[k] = tuple(kw[k])
    return kw


def nhwc(t):
    return t.detach().permute(0, 2, 3, 1).contiguous().float()


def check_nontrivial(name, y, y_other_t, what="t"):
    m = y.abs().max().item()
    d = (y - y_other_t).abs().max().item()
    assert m > 0.1, f"{name}: max|y| = {m}"
    assert d > 1e-2, f"{name}: output does not depend on {what} (max diff {d})"
    return m, d


def save_fixture(out, name, family, config, state_dict, tensors):
    from safetensors.torch import save_file

    torch.save(state_dict, os.path.join(out, f"{name}.pt"))
    meta = {"family": family, "config": json.dumps(config, sort_keys=True)}
    io_path = os.path.join(out, f"{name}.io.safetensors")
    save_file({k: v.contiguous() for k, v in tensors.items()}, io_path, metadata=meta)
    canonicalize_safetensors_header(io_path)
    os.chmod(io_path, 0o644)  # safetensors creates its files owner-only


def canonicalize_safetensors_header(path):
    """safetensors keeps __metadata__ in a hash map, so its key order (and the file's bytes) vary from run to run.
    Rewrite the JSON header with sorted keys so reruns are byte-identical; data offsets are relative to the data
    section and stay valid."""
    with open(path, "rb") as f:
        raw = f.read()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(len(text).to_bytes(8, "little") + text + raw[8 + n:])


def summary(name, tensors, extra):
    y = tensors["y"]
    line = f"{name}: max|y| {y.abs().max().item():.4f}  range [{y.min().item():.4f}, {y.max().item():.4f}]"
    if "y_rect" in tensors:
        r = tensors["y_rect"]
        line += f"  rect max|y| {r.abs().max().item():.4f} range [{r.min().item():.4f}, {r.max().item():.4f}]"
    print(line + "  " + extra)


def round_to_half(model):
    """Makes the float32 reference use exactly the float16-representable weights that are stored
    (half-precision storage keeps the committed fixtures small; ddpm_a stays float32 to cover both)."""
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.half().float())


def half_state_dict(model):
    return OrderedDict((k, v.half()) for k, v in model.state_dict().items())


def make_adm_a(unet, out):
    torch.manual_seed(1001)
    model = unet.UNetModel(**adm_kwargs(ADM_A))
    randomize(model, 1002)
    round_to_half(model)
    model.eval()
    g = torch.Generator().manual_seed(1003)
    x = torch.randn(2, 3, 32, 32, generator=g)
    t = torch.tensor([3.0, 417.5])
    x_rect = torch.randn(2, 3, 24, 40, generator=g)
    t_rect = torch.tensor([250.0, 999.0])
    with torch.no_grad():
        y = model(x, t)
        y2 = model(x, t + torch.tensor([100.0, -200.0]))
        y_rect = model(x_rect, t_rect)
        y_rect2 = model(x_rect, t_rect - 150.0)
    m, d = check_nontrivial("adm_a", y, y2)
    check_nontrivial("adm_a rect", y_rect, y_rect2)
    assert y.shape == (2, 6, 32, 32) and y_rect.shape == (2, 6, 24, 40)
    tensors = {"x": nhwc(x), "t": t, "y": nhwc(y), "x_rect": nhwc(x_rect), "t_rect": t_rect, "y_rect": nhwc(y_rect)}
    save_fixture(out, "adm_a", "adm", ADM_A, half_state_dict(model), tensors)
    summary("adm_a", tensors, f"(t-sensitivity {d:.3f})")


def make_adm_b(unet, out):
    torch.manual_seed(2001)
    model = unet.UNetModel(**adm_kwargs(ADM_B))
    randomize(model, 2002)
    with torch.no_grad():  # the reference uses exactly the float16-representable weights that are stored
        for p in model.parameters():
            p.copy_(p.half().float())
    model.eval()
    g = torch.Generator().manual_seed(2003)
    x = torch.randn(2, 3, 32, 32, generator=g)
    t = torch.tensor([917.0, 42.0])
    labels = torch.tensor([7, 2])
    with torch.no_grad():
        y = model(x, t, labels)
        y2 = model(x, torch.tensor([17.0, 642.0]), labels)
        y3 = model(x, t, torch.tensor([0, 9]))
    m, d = check_nontrivial("adm_b", y, y2)
    _, dl = check_nontrivial("adm_b", y, y3, "labels")
    sd = OrderedDict((k, v.half()) for k, v in model.state_dict().items())
    tensors = {"x": nhwc(x), "t": t, "labels": labels.float(), "y": nhwc(y)}
    save_fixture(out, "adm_b", "adm", ADM_B, sd, tensors)
    summary("adm_b", tensors, f"(t-sensitivity {d:.3f}, label-sensitivity {dl:.3f}; weights stored F16)")


def make_ddpm(ddnm_models, out, name, cfg, seed, t, t_other, half=False):
    torch.manual_seed(seed)
    model = ddnm_models.Model(namespace(cfg))
    randomize(model, seed + 1)
    if half:
        round_to_half(model)
    model.eval()
    g = torch.Generator().manual_seed(seed + 2)
    x = torch.randn(2, 3, 32, 32, generator=g)
    t = torch.tensor(t)
    with torch.no_grad():
        y = model(x, t)
        y2 = model(x, torch.tensor(t_other))
    m, d = check_nontrivial(name, y, y2)
    tensors = {"x": nhwc(x), "t": t, "y": nhwc(y)}
    save_fixture(out, name, "ddpm", cfg, half_state_dict(model) if half else model.state_dict(), tensors)
    summary(name, tensors, f"(t-sensitivity {d:.3f})")


# ---------------------------------------------------------------------------------------------------------------
# Full-size key lists


def write_keys(path, config, model, extra=None):
    sd = model.state_dict()
    count = sum(v.numel() for v in sd.values())
    lines = ["{", '"config": ' + json.dumps(config, sort_keys=True) + ","]
    if extra:
        for k, v in extra.items():
            lines.append(json.dumps(k) + ": " + json.dumps(v, sort_keys=True) + ",")
    lines.append('"parameter_count": %d,' % count)
    lines.append('"keys": [')
    items = [json.dumps([k, list(v.shape)]) for k, v in sd.items()]
    lines.append(",\n".join(items))
    lines.append("]")
    lines.append("}")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"{os.path.basename(path)}: {len(sd)} tensors, {count} parameters")


def adm_ctor_args(model_kwargs_from_create_model):
    return {k: list(v) if isinstance(v, tuple) else v for k, v in model_kwargs_from_create_model.items()}


def make_full_size(unet, script_util, ddnm_dir, out):
    keys_dir = os.path.join(out, "full-size-keys")
    os.makedirs(keys_dir, exist_ok=True)

    # Capture the exact UNetModel constructor arguments create_model derives from the flags.
    captured = {}
    real = script_util.UNetModel

    def capture(**kw):
        captured.clear()
        captured.update(kw)
        return real(**kw)

    script_util.UNetModel = capture
    try:
        base = dict(image_size=256, num_channels=256, num_res_blocks=2, channel_mult="", learn_sigma=True,
                    class_cond=False, use_checkpoint=False, attention_resolutions="32,16,8", num_heads=4,
                    num_head_channels=64, num_heads_upsample=-1, use_scale_shift_norm=True, dropout=0.0,
                    resblock_updown=True, use_fp16=False, use_new_attention_order=False)
        presets = [
            ("adm-imagenet256-uncond", dict(base), "256x256_diffusion_uncond.pt (DDNM configs/imagenet_256.yml)"),
            ("adm-imagenet256-cond", dict(base, class_cond=True),
             "256x256_diffusion.pt (DDNM configs/imagenet_256_cc.yml)"),
            ("adm-imagenet512-cond", dict(base, image_size=512, class_cond=True),
             "512x512_diffusion.pt (guided-diffusion README flags)"),
        ]
        for preset, flags, source in presets:
            with torch.device("meta"):
                model = script_util.create_model(**flags)
            write_keys(os.path.join(keys_dir, preset + ".json"), adm_ctor_args(captured), model,
                       {"create_model_args": flags, "checkpoint": source,
                        "note": "use_fp16 only casts at run time; the released checkpoints hold float32 tensors"})
    finally:
        script_util.UNetModel = real

    ddnm_models = load_official_ddnm_models(ddnm_dir)
    seen = {}
    for preset, yml in [("ddpm-celebahq256", "celeba_hq.yml"), ("ddpm-lsun-bedroom", "bedroom.yml"),
                        ("ddpm-lsun-church", "church.yml")]:
        if not os.path.exists(os.path.join(ddnm_dir, "configs", yml)):
            continue
        sections = ddnm_yaml_model(ddnm_dir, yml)
        model_cfg = {k: sections["model"][k] for k in ("type", "in_channels", "out_ch", "ch", "ch_mult",
                                                          "num_res_blocks", "attn_resolutions", "dropout",
                                                          "var_type", "resamp_with_conv")}
        cfg = ddpm_config(model_cfg, sections["data"]["image_size"],
                          sections["diffusion"]["num_diffusion_timesteps"])
        with torch.device("meta"):
            model = ddnm_models.Model(namespace(cfg))
        write_keys(os.path.join(keys_dir, preset + ".json"), cfg, model, {"source": f"DDNM configs/{yml}"})
        same = [p for p, c in seen.items() if c == cfg]
        if same:
            print(f"  ({preset} has the same model config as {same[0]})")
        seen[preset] = cfg


def load_official_ddnm_models(ddnm_dir):
    spec = importlib.util.spec_from_file_location(
        "ddnm_models", os.path.join(os.path.abspath(ddnm_dir), "guided_diffusion", "models.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--guided-diffusion", required=True, help="checkout of openai/guided-diffusion")
    ap.add_argument("--ddnm", required=True, help="checkout of wyhuai/DDNM")
    ap.add_argument("--out", default=DEFAULT_OUT)
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)

    unet, script_util, ddnm_models = load_official(args.guided_diffusion, args.ddnm)
    make_adm_a(unet, out)
    make_adm_b(unet, out)
    make_ddpm(ddnm_models, out, "ddpm_a", DDPM_A, 3001, [3.0, 917.0], [503.0, 80.0])
    make_ddpm(ddnm_models, out, "ddpm_b", DDPM_B, 4001, [500.0, 12.0], [999.0, 250.0], half=True)
    make_full_size(unet, script_util, args.ddnm, out)


if __name__ == "__main__":
    main()
