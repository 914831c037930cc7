"""Golden fixtures for RDDM (Liu et al., CVPR 2024, "Residual Denoising Diffusion Models"), computed by the OFFICIAL
PyTorch code on tiny random models.

Purpose
  The Swift RDDM port (UnetRes in its three share_encoder variants, the residual/noise objectives, the DDIM-like
  sampler and the ancestral p_sample_loop, the Trainer checkpoint layout with its EMA copy) is compared against
  these. Every parameter is redrawn at random after construction, zero-initialised ones included: Conv2d/Linear
  weights N(0, 1/fan_in) (fan_in = in_channels * kh * kw), their biases N(0, 0.1^2), GroupNorm weight
  1 + N(0, 0.1^2) and bias N(0, 0.1^2), the custom LayerNorm gain g 1 + N(0, 0.1^2). Values are drawn
  float16-representable and saved as float16 (the files stay small; the float32 official outputs are computed from
  exactly the stored values). The diffusion's schedule buffers stay float32 as the official code registers them.
  Two draws per configuration: the EMA draw (the one every output below is computed with, as users' checkpoints
  are sampled with EMA weights) and the "online" draw. To keep the folder under 3 MB the online draw redraws every
  parameter independently EXCEPT the Conv2d weights (WeightStandardizedConv2d included) other than the input
  convolutions (init_conv), which it shares with the EMA draw (one tensor, stored once by torch.save): every bias,
  norm gain/shift, Linear weight and init_conv weight differs, so a loader that takes the online set instead of
  ema.ema_model.* gets different outputs everywhere. For the same reason the schedule buffers of ema_model.* are
  the very tensors of model.* (equal values; a real checkpoint holds two copies).

Usage (needs torch, numpy, einops, opencv (cv2), Pillow, tqdm and ema-pytorch==0.0.10, the version RDDM pins in
install.yaml: pip install ema-pytorch==0.0.10 --no-deps; from the repository root):
  python Tools/reference/make_rddm_fixtures.py --rddm DIR [--out DIR]

  --rddm  either the experiment folder experiments/2_Image_Restoration_deraing_raindrop_noise1 of a checkout of
          https://github.com/nachifur/RDDM (fixtures made at commit e597481), i.e. the folder that contains
          src/residual_denoising_diffusion_pytorch.py, or the root of such a checkout (the experiment folder
          is then found under it). Only src/residual_denoising_diffusion_pytorch.py is imported from it.
          Its top-level imports that are neither installed here nor needed (accelerate, Augmentor, torchvision,
          datasets.get_dataset) are replaced by stub modules; cv2, PIL, tqdm, einops are the real packages and
          ema_pytorch's EMA is the real class (0.0.10), so the 'ema' entry is exactly what EMA.state_dict() gives.
  --out   defaults to Tests/NetworksTests/Fixtures/rddm

No code from RDDM lives in this repository; it is imported from the given path at run time.
Not run by CI. CPU only, float32, one thread, fixed seeds: reruns are byte-identical.

Configurations (NAME: UnetRes kwargs; ResidualDiffusion kwargs; image H x W; Cin = network input channels)
  se0_cond     UnetRes(dim=8, dim_mults=(1,2,2), share_encoder=0, condition=True); ResidualDiffusion(timesteps=1000,
               sampling_timesteps=10, objective='pred_res_noise', condition=True, sum_scale=1.0): the deraining
               experiment's setting (share_encoder 0: two Unets unet0/unet1, pred_res_noise, sum_scale 1) with
               three levels (two Downsamples, the second one widening 8 -> 16 channels); 16 x 24; Cin 6. Small for
               the 3 MB budget: dim=16, dim_mults=(1,2,4) has 1.46 M parameters (2.9 MB per float16 draw),
               dim=8 with (1,2,4) 0.43 M, with (1,2,2) 0.26 M. The (1,2) configurations below cover a last level
               whose plain 3x3 conv changes the width.
  se1_cond3    UnetRes(dim=8, dim_mults=(1,2), share_encoder=1, condition=True, input_condition=True);
               ResidualDiffusion(timesteps=1000, sampling_timesteps=5, objective='pred_res_add_noise',
               condition=True, input_condition=True) (sum_scale left to its default, 0.01 when conditional);
               8 x 12; Cin 9 (x_t, input, condition image). The shared encoder with ups / ups_no_skip decoders.
  sem1_cond    UnetRes(dim=8, dim_mults=(1,2), share_encoder=-1, condition=True); ResidualDiffusion(timesteps=1000,
               sampling_timesteps=10, objective='pred_noise', condition=True, sum_scale=0.01); 8 x 12; Cin 6.
               One Unet (unet0), one output.
  se0_cond_t8  UnetRes(dim=8, dim_mults=(1,2), share_encoder=0, condition=True); ResidualDiffusion(timesteps=8,
               sampling_timesteps=8, objective='pred_res_noise', condition=True, sum_scale=1.0): sampling_timesteps
               == timesteps, so the ancestral p_sample_loop runs; 8 x 12; Cin 6.
  se0_gen      UnetRes(dim=8, dim_mults=(1,2), share_encoder=0, condition=False); ResidualDiffusion(timesteps=1000,
               sampling_timesteps=10, objective='pred_res_noise', condition=False) (sum_scale default, 1 for
               generation); 8 x 12; Cin 3.
  image_size is H; it is only used by ResidualDiffusion.sample for unconditional (square) shapes, so for se0_gen
  the sampler is called directly, ema_model.ddim_sample([0], (1, 3, H, W), last=True), with x_input = [0] as the
  official Trainer passes it for generation. The conditional configurations call ema_model.sample(x_input,
  batch_size=1, last=True) with x_input = [input] ([input, input_cond] for se1_cond3), images in [0, 1].

Files (one pair per configuration NAME)
  NAME.pt  the official Trainer.save layout:
             torch.save({'step': 3,
                         'model': <online ResidualDiffusion>.state_dict(),
                         'opt': torch.optim.Adam(online.parameters(), lr=8e-5, betas=(0.9, 0.99)).state_dict()
                                (no step taken: 'state' is empty, 'param_groups' lists the parameter indices),
                         'ema': EMA(online, beta=0.995, update_every=10).state_dict(),
                         'scaler': None}, path)
           'model' keys (state_dict order): first the 12 float32 schedule buffers, each [timesteps]: alphas,
           alphas_cumsum, one_minus_alphas_cumsum, betas2, betas, betas2_cumsum, betas_cumsum,
           posterior_mean_coef1, posterior_mean_coef2, posterior_mean_coef3, posterior_variance,
           posterior_log_variance_clipped; then model.<UnetRes parameter name> (float16) for every parameter.
           'ema' keys (ema_pytorch 0.0.10 order): initted (float [1], 0), step (int64 [1], set to 3 as after three
           Trainer steps), online_model.<every 'model' key> (the same tensors as 'model', stored once),
           ema_model.<every 'model' key> (the EMA draw; its buffers are the deepcopy's own float32 copies).
           UnetRes parameter names: share_encoder 0: unet0.* and unet1.* (two Unets, outputs [unet0, unet1]);
           share_encoder -1: unet0.* only; share_encoder 1: init_conv, time_mlp.{1,3}, downs.L.{0,1,2,3},
           mid_block1, mid_attn.fn.{norm.g, fn.to_qkv, fn.to_out}, mid_block2, ups.L.*, ups_no_skip.L.*,
           final_res_block_1, final_conv_1 (first output), final_res_block_2, final_conv_2 (second output).
           Inside a Unet (prefix unet0. / unet1.) or the shared encoder (no prefix): ResnetBlock X:
           X.mlp.1.{weight,bias} (Linear), X.block{1,2}.proj.{weight,bias} (WeightStandardizedConv2d),
           X.block{1,2}.norm.{weight,bias} (GroupNorm(8)), X.res_conv.{weight,bias} (1x1, only when the width
           changes); down/up level L: .0 and .1 ResnetBlocks, .2 = Residual(PreNorm(LinearAttention)):
           L.2.fn.norm.g, L.2.fn.fn.to_qkv.weight (no bias), L.2.fn.fn.to_out.0.{weight,bias},
           L.2.fn.fn.to_out.1.g; downs.L.3 = Downsample (4x4 stride-2 conv) or, on the last level, a 3x3 conv;
           ups.L.3.1 = Upsample's conv (after nearest 2x) or, on the last level, ups.L.3 a 3x3 conv;
           mid_attn.fn.norm.g, mid_attn.fn.fn.to_qkv.weight, mid_attn.fn.fn.to_out.{weight,bias};
           time_mlp.1 / time_mlp.3 (Linear; time_mlp.0 is the parameterless sinusoidal embedding).
  NAME.io.safetensors  float32, images NHWC (B, H, W, C):
      "net_in" [2,H,W,Cin] N(0,1): the network input cat(x_t, input[, input_cond]) (x_t alone for se0_gen);
      "net_t" [2]: integer timesteps as floats, [999, 37] (T = 1000) or [7, 0] (T = 8);
      "net_out0" [2,H,W,3] and, for two-output networks (all but sem1_cond), "net_out1" [2,H,W,3]: the EMA
          UnetRes forward, ema_model.model(net_in (NCHW), net_t (long)).
      Whole sampling runs (EMA weights; torch.randn / torch.randn_like inside the official module replaced by
      pre-drawn tensors, so the official sampler itself runs unmodified; every objective run gets the same noise):
      "input" [1,H,W,3] in [0,1] (conditional configs): a smooth random image (a uniform random field at
          1/4 resolution, bilinearly upsampled);
      "input_cond" [1,H,W,3] in [0,1] (se1_cond3 only): another such image, the condition image;
      "z" [1,H,W,3]: the sampler's start noise (its torch.randn(shape) call); the sampler starts from
          input*2-1 + sqrt(sum_scale)*z for conditional models, from z for se0_gen;
      "z_steps" [T,1,H,W,3] (se0_cond_t8 only): the noise of each p_sample call in loop order, index i <-> t =
          T-1-i; the last slot (t = 0) is zeros: the official p_sample draws nothing at t = 0 (noise = 0.), so
          nothing is injected there;
      "x_T" [1,H,W,3] (conditional configs): the first returned image, input_add_noise (that start) in [0,1]
          space, (input_add_noise+1)/2 (not clamped: it leaves [0,1]);
      "result_<objective>" [1,H,W,3]: the final returned image in [0,1] space, (img+1)/2, not clamped by us
          (the last step returns the clamped x_start, so it lies in [0,1]), one per objective run, with
          ema_model.objective set before each run:
          se0_cond, se1_cond3, se0_cond_t8: pred_res_noise, pred_res_add_noise, pred_x0_noise, pred_x0_add_noise;
          sem1_cond: pred_noise, pred_res;  se0_gen: pred_res_noise.
          In se0_cond_t8 result_pred_x0_noise == result_pred_x0_add_noise exactly: the two objectives differ only
          in pred_noise, which the ancestral step (q_posterior of pred_res and x_start) does not use.
          Random networks do not predict the noise, so many result pixels end at the clamp (0 or 1; 40-80%).
  metadata (strings): "config" = JSON {"unet": UnetRes kwargs, "diffusion": ResidualDiffusion kwargs as passed
      (image_size included, model excluded), "size": [H, W], "objectives": [...]}; "sum_scale" = the value the
      official constructor resolved (defaults applied); "commit"; "official_file" = the path of the imported file
      relative to the RDDM checkout.
"""
import argparse
import hashlib
import importlib.util
import json
import math
import os
import subprocess
import sys
import types

os.environ.setdefault("TQDM_DISABLE", "1")  # the official samplers wrap their loops in tqdm

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixtures  # noqa: E402

COMMIT = "e597481"
EXPERIMENT = "experiments/2_Image_Restoration_deraing_raindrop_noise1"
OFFICIAL_FILE = EXPERIMENT + "/src/residual_denoising_diffusion_pytorch.py"

TWO_OUTPUT_OBJECTIVES = ["pred_res_noise", "pred_res_add_noise", "pred_x0_noise", "pred_x0_add_noise"]

CONFIGS = {
    "se0_cond": dict(size=(16, 24),
                     unet=dict(dim=8, dim_mults=(1, 2, 2), share_encoder=0, condition=True),
                     diffusion=dict(timesteps=1000, sampling_timesteps=10, objective="pred_res_noise",
                                    condition=True, sum_scale=1.0),
                     objectives=TWO_OUTPUT_OBJECTIVES),
    "se1_cond3": dict(size=(8, 12),
                      unet=dict(dim=8, dim_mults=(1, 2), share_encoder=1, condition=True, input_condition=True),
                      diffusion=dict(timesteps=1000, sampling_timesteps=5, objective="pred_res_add_noise",
                                     condition=True, input_condition=True),
                      objectives=TWO_OUTPUT_OBJECTIVES),
    "sem1_cond": dict(size=(8, 12),
                      unet=dict(dim=8, dim_mults=(1, 2), share_encoder=-1, condition=True),
                      diffusion=dict(timesteps=1000, sampling_timesteps=10, objective="pred_noise", condition=True,
                                     sum_scale=0.01),
                      objectives=["pred_noise", "pred_res"]),
    "se0_cond_t8": dict(size=(8, 12),
                        unet=dict(dim=8, dim_mults=(1, 2), share_encoder=0, condition=True),
                        diffusion=dict(timesteps=8, sampling_timesteps=8, objective="pred_res_noise",
                                       condition=True, sum_scale=1.0),
                        objectives=TWO_OUTPUT_OBJECTIVES),
    "se0_gen": dict(size=(8, 12),
                    unet=dict(dim=8, dim_mults=(1, 2), share_encoder=0, condition=False),
                    diffusion=dict(timesteps=1000, sampling_timesteps=10, objective="pred_res_noise",
                                   condition=False),
                    objectives=["pred_res_noise"]),
}


def official_path(root):
    for candidate in [os.path.join(root, "src", "residual_denoising_diffusion_pytorch.py"),
                      os.path.join(root, OFFICIAL_FILE)]:
        if os.path.isfile(candidate):
            return candidate
    sys.exit(f"--rddm {root}: neither src/residual_denoising_diffusion_pytorch.py nor {OFFICIAL_FILE} found")


def install_stubs():
    """Stub modules for the official file's top-level imports that the networks and samplers do not use."""
    def module(name, **attributes):
        m = types.ModuleType(name)
        for key, value in attributes.items():
            setattr(m, key, value)
        sys.modules[name] = m
        return m

    module("accelerate", Accelerator=object)
    module("Augmentor")
    functional = module("torchvision.transforms.functional")
    transforms = module("torchvision.transforms", functional=functional)
    utils = module("torchvision.utils")
    module("torchvision", transforms=transforms, utils=utils)
    get_dataset = module("datasets.get_dataset", dataset=object)
    module("datasets", get_dataset=get_dataset)


def load_official(path):
    install_stubs()
    try:
        import ema_pytorch  # noqa: F401
    except ImportError:
        sys.exit("ema-pytorch is needed: pip install ema-pytorch==0.0.10 --no-deps")
    spec = importlib.util.spec_from_file_location("residual_denoising_diffusion_pytorch", path)
    official = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = official
    spec.loader.exec_module(official)
    return official


def f16(t):
    return t.half().float()


def redraw(model, generator, official):
    """Redraws every parameter of `model` (see the docstring), float16-representable."""
    drawn = set()
    with torch.no_grad():
        for module_name, module in model.named_modules():
            prefix = module_name + "." if module_name else ""
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                fan_in = module.weight[0].numel()
                module.weight.copy_(f16(torch.randn(module.weight.shape, generator=generator) / fan_in ** 0.5))
                drawn.add(prefix + "weight")
                if module.bias is not None:
                    module.bias.copy_(f16(0.1 * torch.randn(module.bias.shape, generator=generator)))
                    drawn.add(prefix + "bias")
            elif isinstance(module, nn.GroupNorm):
                module.weight.copy_(f16(1 + 0.1 * torch.randn(module.weight.shape, generator=generator)))
                module.bias.copy_(f16(0.1 * torch.randn(module.bias.shape, generator=generator)))
                drawn.update([prefix + "weight", prefix + "bias"])
            elif isinstance(module, official.LayerNorm):
                module.g.copy_(f16(1 + 0.1 * torch.randn(module.g.shape, generator=generator)))
                drawn.add(prefix + "g")
    missing = {name for name, _ in model.named_parameters()} - drawn
    assert not missing, missing


def shared_weight_names(model):
    """The Conv2d weights the online draw takes from the EMA draw: all but the input convolutions (init_conv)."""
    return {name + ".weight" for name, m in model.named_modules()
            if isinstance(m, nn.Conv2d) and not name.endswith("init_conv")}


def checkpoint(online, ema, step, shared):
    """The Trainer.save dictionary. Parameters float16, buffers float32. Entries that are one tensor in the file
    (torch.save stores each once): online_model.* and model.* (the same online tensors); for the names in `shared`
    (Conv2d weights) the online entries and ema_model.* (the online draw takes those from the EMA draw); the
    schedule buffers of model.* and ema_model.* (equal values; separate copies in a real checkpoint)."""
    params = {name for name, _ in online.named_parameters()}
    converted = {}

    def stored(name, value):
        key = value.data_ptr()
        if key not in converted:
            converted[key] = value.detach().clone().half() if name in params else value.detach().clone()
        return converted[key]

    ema_entries = ema.state_dict()
    ema_draw = {name[len("ema_model."):]: stored(name[len("ema_model."):], value)
                for name, value in ema_entries.items() if name.startswith("ema_model.")}
    model_state = {name: ema_draw[name] if name in shared else stored(name, value)
                   for name, value in online.state_dict().items()}
    for name in model_state:
        if name not in params:  # a schedule buffer: ema_model's deepcopy holds the same values
            assert torch.equal(ema_draw[name], model_state[name]), name
            ema_draw[name] = model_state[name]
    ema_state = {}
    for name, value in ema_entries.items():
        if name.startswith("online_model."):
            ema_state[name] = model_state[name[len("online_model."):]]
        elif name.startswith("ema_model."):
            ema_state[name] = ema_draw[name[len("ema_model."):]]
        else:
            ema_state[name] = value.detach().clone()
    opt = torch.optim.Adam(online.parameters(), lr=8e-5, betas=(0.9, 0.99))
    return {"step": step, "model": model_state, "opt": opt.state_dict(), "ema": ema_state, "scaler": None}


class InjectedNoise:
    """Replaces torch.randn / torch.randn_like as the official module sees them (its global `torch`) by pops from
    pre-drawn tensors, asserting the requested shapes; all of them must be used."""

    def __init__(self, official, randn, randn_like):
        self.official = official
        self.randn = list(randn)
        self.randn_like = list(randn_like)

    def __enter__(self):
        real = torch
        owner = self

        class Proxy:
            def __getattr__(self, name):
                return getattr(real, name)

            @staticmethod
            def randn(*shape, **kwargs):
                size = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list, torch.Size)) \
                    else tuple(shape)
                value = owner.randn.pop(0)
                assert size == tuple(value.shape), (size, value.shape)
                return value.clone()

            @staticmethod
            def randn_like(x, **kwargs):
                value = owner.randn_like.pop(0)
                assert x.shape == value.shape, (x.shape, value.shape)
                return value.clone()

        self.saved = self.official.torch
        self.official.torch = Proxy()
        return self

    def __exit__(self, *exc):
        self.official.torch = self.saved
        if exc[0] is None:
            assert not self.randn and not self.randn_like, "unused injected noise"
        return False


def smooth_image(generator, h, w):
    coarse = torch.rand(1, 3, max(h // 4, 2), max(w // 4, 2), generator=generator)
    return F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rddm", required=True, help="the RDDM experiment folder (with src/) or checkout root")
    parser.add_argument("--out", default="Tests/NetworksTests/Fixtures/rddm")
    args = parser.parse_args()
    torch.set_num_threads(1)
    path = official_path(args.rddm)
    os.makedirs(args.out, exist_ok=True)
    with open(path, "rb") as f:
        print("official file", path, "sha256", hashlib.sha256(f.read()).hexdigest())
    try:
        commit = subprocess.run(["git", "-C", os.path.dirname(path), "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True).stdout.strip()
    except OSError:
        commit = ""
    official = load_official(path)
    from ema_pytorch import EMA

    for index, (name, spec) in enumerate(CONFIGS.items()):
        h, w = spec["size"]
        torch.manual_seed(1000 + index)
        online = official.ResidualDiffusion(official.UnetRes(**spec["unet"]), image_size=h, **spec["diffusion"])
        ema = EMA(online, beta=0.995, update_every=10)
        ema.step.fill_(3)
        model = ema.ema_model.eval()
        redraw(model, torch.Generator().manual_seed(2000 + index), official)
        redraw(online, torch.Generator().manual_seed(3000 + index), official)
        shared = shared_weight_names(online)
        with torch.no_grad():
            ema_params = dict(model.named_parameters())
            for pname, p in online.named_parameters():
                if pname in shared:
                    p.copy_(ema_params[pname])
        torch.save(checkpoint(online, ema, 3, shared), os.path.join(args.out, name + ".pt"))

        g = torch.Generator().manual_seed(4000 + index)
        timesteps = spec["diffusion"]["timesteps"]
        conditional = spec["diffusion"]["condition"]
        input_condition = spec["diffusion"].get("input_condition", False)
        cin = 3 * (1 + int(conditional) + int(input_condition))
        net_in = torch.randn(2, cin, h, w, generator=g)
        net_t = torch.tensor([999, 37]) if timesteps == 1000 else torch.tensor([timesteps - 1, 0])
        tensors = {"net_in": fixtures.nhwc(net_in), "net_t": net_t.float().numpy()}
        with torch.no_grad():
            outputs = model.model(net_in, net_t)
        for k, out in enumerate(outputs):
            tensors[f"net_out{k}"] = fixtures.nhwc(out)

        # Reload check: the file restores the EMA model (through the official load_state_dict calls) exactly.
        reloaded = official.ResidualDiffusion(official.UnetRes(**spec["unet"]), image_size=h, **spec["diffusion"])
        ema2 = EMA(reloaded, beta=0.995, update_every=10)
        data = torch.load(os.path.join(args.out, name + ".pt"), weights_only=False)
        reloaded.load_state_dict(data["model"])
        ema2.load_state_dict(data["ema"])
        with torch.no_grad():
            for a, b in zip(outputs, ema2.ema_model.model(net_in, net_t)):
                assert torch.equal(a, b)
            assert all(torch.equal(a, b) for a, b in zip(online.state_dict().values(),
                                                         reloaded.state_dict().values()))

        shape = (1, 3, h, w)
        if conditional:
            x_input = [smooth_image(g, h, w)]
            tensors["input"] = fixtures.nhwc(x_input[0])
            if input_condition:
                x_input.append(smooth_image(g, h, w))
                tensors["input_cond"] = fixtures.nhwc(x_input[1])
        z = torch.randn(shape, generator=g)
        tensors["z"] = fixtures.nhwc(z)
        ancestral = spec["diffusion"]["sampling_timesteps"] == timesteps
        steps = []
        if ancestral:
            steps = [torch.randn(shape, generator=g) for _ in range(timesteps - 1)]
            tensors["z_steps"] = np.stack([fixtures.nhwc(s) for s in steps + [torch.zeros(shape)]])
        assert model.is_ddim_sampling == (not ancestral)
        for objective in spec["objectives"]:
            model.objective = objective
            with InjectedNoise(official, [z], steps):
                if conditional:
                    returned = model.sample([x.clone() for x in x_input], batch_size=1, last=True)
                else:
                    sampler = model.p_sample_loop if ancestral else model.ddim_sample
                    returned = sampler([0], shape, last=True)
            if conditional:
                x_t, result = returned
                expected = (x_input[0] * 2 - 1 + math.sqrt(model.sum_scale) * z + 1) * 0.5
                assert torch.allclose(x_t, expected, atol=1e-6)
                tensors["x_T"] = fixtures.nhwc(x_t)
            else:
                (result,) = returned
            tensors["result_" + objective] = fixtures.nhwc(result)
            print(name, objective, "max|result|", float(result.abs().max()),
                  "saturated", float(((result <= 0) | (result >= 1)).float().mean()))

        config = {"unet": spec["unet"], "diffusion": dict(image_size=h, **spec["diffusion"]), "size": [h, w],
                  "objectives": spec["objectives"]}
        fixtures.save(os.path.join(args.out, name + ".io.safetensors"), tensors, metadata={
            "config": json.dumps(config), "sum_scale": repr(float(model.sum_scale)), "commit": commit or COMMIT,
            "official_file": OFFICIAL_FILE})
        print(name, "max|net_out|", max(float(o.abs().max()) for o in outputs),
              "params", sum(p.numel() for p in model.parameters()))


if __name__ == "__main__":
    main()
