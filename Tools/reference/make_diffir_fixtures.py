"""Golden fixtures for DiffIR stage 2 (Xia et al., ICCV 2023), computed by the OFFICIAL PyTorch code on tiny models.

Purpose
  The Swift DiffIR port (CPEN_S2, the denoise MLP, DIRformer, the 4-step IPR diffusion) is compared against these.
  Every parameter is redrawn at random after construction, the LayerNorm gains and biases and the per-head
  temperatures included: conv/linear weights N(0, 1/fan_in), biases N(0, 0.1^2), LayerNorm weight 1 + N(0, 0.1^2),
  LayerNorm bias N(0, 0.1^2), temperature 1 + U(-0.5, 0.5). Weights are drawn float16-representable and saved as
  float16 (the file stays small; the float32 official outputs are computed from exactly the stored values); the
  diffusion's schedule buffers stay float32 as the official code registers them.

Usage (needs torch, numpy and einops; from the repository root):
  python Tools/reference/make_diffir_fixtures.py --diffir DIR [--out DIR]

  --diffir  a checkout of https://github.com/Zj-BinXia/DiffIR (fixtures made at commit 293f86c); for each
            configuration the sub-project's DiffIR/archs/S2_arch.py, DiffIR/archs/common.py and ldm/ddpm.py,
            ldm/util2.py are imported from it (DiffIR-RealSR for the SR tasks, DiffIR-demotionblur for deblurring).
            basicsr's ARCH_REGISTRY and ldm.util / ldm.ddim (only `exists`, `default` and an unused sampler class
            are needed) are replaced by stubs, so basicsr need not be installed.
  --out     defaults to Tests/NetworksTests/Fixtures/diffir

No code from DiffIR lives in this repository; it is imported from the given path at run time.
Not run by CI. CPU only, float32, one thread, fixed seeds: reruns are byte-identical.

Files (one pair per configuration NAME in CONFIGS)
  NAME.pth              torch.save({'params': another draw of G, 'params_ema': the model's state_dict()}) as
                        BasicSR writes it ('params' only for sr4_biasfree, to test that params_ema is preferred;
                        it shares CPEN and the MLP with params_ema to keep the file small).
                        The state dict holds the official aliases diffusion.model.* / diffusion.condition.* and
                        the schedule buffers diffusion.betas, ….
  NAME.io.safetensors   float32, images NHWC:
      "lq" [1,H,W,3] in [0,1];
      "c" [1,256] = condition(lq)                              (CPEN_S2)
      "x" [2,256], "t" [2] (integer steps as floats), "cond" [2,256], "x0" [2,256] = denoise(x, t, cond)
      "ipr" [1,256], "g" = G(lq, ipr)                          (DIRformer with a given IPR)
      "ipr0" [1,256], "ipr_final" [1,256], "sr" = model(lq)    (the whole eval forward, torch.randn replaced so
                                                              that the IPR chain starts at ipr0)
  metadata: the DiffIRS2 keyword arguments as JSON ("config"), the sub-project, the commit.
"""
import argparse
import importlib
import json
import os
import subprocess
import sys
import types

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixtures  # noqa: E402

COMMIT = "293f86c"

# Small widths that still exercise every option: both LayerNorm types, every task, truncated hidden widths
# (int(C * 2.2), int(C * 2.66)), several heads per level, more than one ResBlock / denoise layer.
CONFIGS = {
    "sr4_biasfree": dict(project="DiffIR-RealSR", size=(16, 24), kwargs=dict(
        n_encoder_res=2, dim=8, scale=4, num_blocks=[1, 1, 1, 2], num_refinement_blocks=1, heads=[1, 2, 2, 4],
        ffn_expansion_factor=2.2, bias=False, LayerNorm_type="BiasFree", n_denoise_res=1, linear_start=0.1,
        linear_end=0.99, timesteps=4)),
    "sr2_withbias": dict(project="DiffIR-RealSR", size=(32, 16), kwargs=dict(
        n_encoder_res=1, dim=6, scale=2, num_blocks=[1, 1, 1, 1], num_refinement_blocks=2, heads=[1, 2, 3, 4],
        ffn_expansion_factor=2.66, bias=False, LayerNorm_type="WithBias", n_denoise_res=2, linear_start=0.1,
        linear_end=0.99, timesteps=4)),
    "sr1_biasfree": dict(project="DiffIR-RealSR", size=(32, 32), kwargs=dict(
        n_encoder_res=1, dim=8, scale=1, num_blocks=[2, 1, 1, 1], num_refinement_blocks=0, heads=[2, 2, 4, 8],
        ffn_expansion_factor=2.2, bias=False, LayerNorm_type="BiasFree", n_denoise_res=1, linear_start=0.1,
        linear_end=0.99, timesteps=4)),
    "deblur_withbias": dict(project="DiffIR-demotionblur", size=(16, 24), kwargs=dict(
        n_encoder_res=2, dim=8, num_blocks=[1, 1, 1, 1], num_refinement_blocks=1, heads=[1, 2, 4, 8],
        ffn_expansion_factor=2.0, bias=False, LayerNorm_type="WithBias", n_denoise_res=2, linear_start=0.1,
        linear_end=0.99, timesteps=4)),
}


def install_stubs():
    registry = types.ModuleType("basicsr.utils.registry")

    class Registry:
        def register(self, obj=None):
            return obj if obj is not None else (lambda o: o)

    registry.ARCH_REGISTRY = Registry()
    for name in ["basicsr", "basicsr.utils"]:
        sys.modules[name] = types.ModuleType(name)
    sys.modules["basicsr.utils.registry"] = registry
    util = types.ModuleType("ldm.util")
    util.exists = lambda x: x is not None
    util.default = lambda val, d: val if val is not None else (d() if callable(d) else d)
    for name in ["log_txt_as_img", "ismap", "isimage", "mean_flat", "count_params", "instantiate_from_config"]:
        setattr(util, name, lambda *a, **k: None)
    sys.modules["ldm.util"] = util
    ddim = types.ModuleType("ldm.ddim")
    ddim.DDIMSampler = object
    sys.modules["ldm.ddim"] = ddim


def load_official(root, project):
    """Imports S2_arch from `root/project` (a fresh import per project: both define the same module names)."""
    for name in list(sys.modules):
        if name == "DiffIR" or name.startswith("DiffIR.") or name == "ldm" or name in ("ldm.ddpm", "ldm.util2"):
            del sys.modules[name]
    install_stubs()
    base = os.path.join(root, project)
    # Namespace stubs for the packages, so that their __init__ files (which import basicsr's data and training
    # code) are not executed; the submodules load from the checkout.
    for package, folder in [("DiffIR", "DiffIR"), ("DiffIR.archs", "DiffIR/archs"), ("ldm", "ldm")]:
        module = types.ModuleType(package)
        module.__path__ = [os.path.join(base, folder)]
        sys.modules[package] = module
    sys.path.insert(0, base)
    try:
        return importlib.import_module("DiffIR.archs.S2_arch")
    finally:
        sys.path.remove(base)


def f16(t):
    return t.half().float()


def redraw(model, generator):
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("temperature"):
                p.copy_(f16(1 + torch.rand(p.shape, generator=generator) - 0.5))
            elif ".norm" in name and name.endswith("body.weight"):
                p.copy_(f16(1 + 0.1 * torch.randn(p.shape, generator=generator)))
            elif p.dim() == 1:
                p.copy_(f16(0.1 * torch.randn(p.shape, generator=generator)))
            else:
                fan_in = p[0].numel()
                p.copy_(f16(torch.randn(p.shape, generator=generator) / fan_in ** 0.5))


def state_for_file(model, shared=None):
    """The state dict as BasicSR saves it, parameters float16 (buffers float32). Aliased entries keep sharing one
    tensor, so torch.save stores them once, as it does for the official files; `shared` maps names to tensors
    to reuse (the 'params' draw shares CPEN and the MLP with 'params_ema' and differs in G only)."""
    params = {n for n, _ in model.named_parameters()}
    converted = {}
    out = {}
    for name, value in model.state_dict().items():
        if shared is not None and not name.startswith("G."):
            out[name] = shared[name]
            continue
        is_param = name in params or name.startswith("diffusion.model.") or name.startswith("diffusion.condition.")
        key = value.data_ptr()
        if key not in converted:
            converted[key] = value.detach().clone().half() if is_param else value.detach().clone()
        out[name] = converted[key]
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--diffir", required=True)
    parser.add_argument("--out", default="Tests/NetworksTests/Fixtures/diffir")
    args = parser.parse_args()
    torch.set_num_threads(1)
    os.makedirs(args.out, exist_ok=True)
    try:
        commit = subprocess.run(["git", "-C", args.diffir, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    except OSError:
        commit = ""
    for index, (name, spec) in enumerate(CONFIGS.items()):
        s2 = load_official(args.diffir, spec["project"])
        torch.manual_seed(1000 + index)
        model = s2.DiffIRS2(**spec["kwargs"]).eval()
        g = torch.Generator().manual_seed(2000 + index)
        redraw(model, g)
        ema = state_for_file(model)
        payload = {"params_ema": ema}
        if name == "sr4_biasfree":
            other = s2.DiffIRS2(**spec["kwargs"])
            redraw(other, torch.Generator().manual_seed(9000))
            payload["params"] = state_for_file(other, shared=ema)
        torch.save(payload, os.path.join(args.out, name + ".pth"))

        h, w = spec["size"]
        lq = torch.rand(1, 3, h, w, generator=g)
        x = torch.randn(2, 256, generator=g)
        t = torch.tensor([3, 1])
        cond = torch.randn(2, 256, generator=g)
        ipr = torch.randn(1, 256, generator=g)
        ipr0 = torch.randn(1, 256, generator=g)
        with torch.no_grad():
            c = model.condition(lq)
            x0 = model.denoise(x, t, cond)
            gen = model.G(lq, ipr)
            original = torch.randn
            captured = {}

            def injected(*shape, **kwargs):
                size = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list, torch.Size)) else tuple(shape)
                assert size == (1, 256), size
                return ipr0.clone()

            torch.randn = injected
            try:
                ipr_final = model.diffusion(lq)
                captured["sr"] = model.G(lq, ipr_final)
                sr = model(lq)
            finally:
                torch.randn = original
            assert torch.equal(sr, captured["sr"])
        fixtures.save(os.path.join(args.out, name + ".io.safetensors"), {
            "lq": fixtures.nhwc(lq), "c": c.numpy(), "x": x.numpy(), "t": t.float().numpy(), "cond": cond.numpy(),
            "x0": x0.numpy(), "ipr": ipr.numpy(), "g": fixtures.nhwc(gen), "ipr0": ipr0.numpy(),
            "ipr_final": ipr_final.numpy(), "sr": fixtures.nhwc(sr),
        }, metadata={"config": json.dumps(spec["kwargs"]), "project": spec["project"], "commit": commit or COMMIT})
        print(name, "sr", tuple(sr.shape), "max|sr|", float(sr.abs().max()), "max|g|", float(gen.abs().max()))


if __name__ == "__main__":
    main()
