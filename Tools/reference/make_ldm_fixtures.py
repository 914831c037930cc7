"""Golden fixtures for latent diffusion (Rombach et al., CVPR 2022), computed by the OFFICIAL CompVis code on tiny
random models.

Purpose
  The Swift LDM port (the openaimodel UNet as our ADM UNet with the SR and inpainting options, the VQ first stage with
  and without attention, the KL autoencoder, the Lightning .ckpt layout with its EMA copy, LDM's DDIM and the
  split_input_params windows) is compared against these.

Usage (needs torch, numpy, einops, tqdm; from the repository root):
  python Tools/reference/make_ldm_fixtures.py --ldm DIR --taming DIR [--out DIR]

  --ldm     a checkout of https://github.com/CompVis/latent-diffusion (fixtures made at a506df5); its `ldm` package
            is imported from there. pytorch_lightning and torchvision, which ldm/models imports but these runs do not
            use, are replaced by stub modules (LightningModule = an nn.Module on the CPU).
  --taming  a checkout of https://github.com/CompVis/taming-transformers (made at 3ba01b2) for VectorQuantizer2.
  --out     defaults to Tests/NetworksTests/Fixtures/ldm

No code from either repository lives in this one; it is imported from the given paths at run time. DDIMSampler's
register_buffer moves every tensor to CUDA (ddim.py:18-22); it is replaced by a plain setattr to run on the CPU, and
ddim.noise_like is replaced by a function handing out recorded standard normals so the per-step noise can be stored.
Not run by CI. CPU only, float32, one thread, fixed seeds.

Weights: every parameter of every module is redrawn after construction, zero-initialised ones included
(openaimodel's zero_module convolutions): conv/linear weights N(0, 1/fan_in), biases N(0, 0.1²), GroupNorm weight
1 + N(0, 0.1²) and bias N(0, 0.1²), the VQ codebook N(0, 1); values rounded to float16 and stored as float16 (the
float32 official outputs are computed from exactly the stored values). The EMA copy (model_ema.*, dots stripped, as
LitEma registers it) is a second, independent draw: every output below runs under ema_scope as the official
samplers do, so a loader taking model.diffusion_model.* instead gets different outputs.

Models (LatentDiffusion(concat_mode=True, timesteps=1000), each saved as a Lightning checkpoint
{'state_dict': model.state_dict(), 'global_step': 0}):
  sr.ckpt      the bsr_sr layout in small: UNet in 6 / out 3, model_channels 32, channel_mult (1, 1), num_res_blocks 1,
               attention_resolutions [2], num_head_channels 16 (two heads); first stage VQModelInterface VQ-f4
               (ch 32, ch_mult (1, 1, 1), num_res_blocks 1, attn_resolutions [], z 3, embed 3, n_embed 64), with the
               middle attention; cond_stage Identity, cond_stage_key LR_image; linear_start 0.0015, linear_end 0.0155.
  inpaint.ckpt the inpainting_big layout in small: UNet in 7 / out 3, model_channels 32, channel_mult (1, 1),
               num_res_blocks 1, attention_resolutions [1, 2], num_heads 2, resblock_updown True; first stage VQ-f4
               with attn_type none; cond_stage __is_first_stage__ (so the file also holds cond_stage_model.*);
               linear_start 0.0015, linear_end 0.0205.
  kl.ckpt      an AutoencoderKL (ch 32, ch_mult (1, 1), num_res_blocks 1, attn_resolutions [16] at resolution 16, so
               the first level has attention, z 4, embed 4, double_z) saved as {'state_dict'} with a fake loss.*
               entry as CompVis first-stage checkpoints carry.

Configurations: sr.json and inpaint.json, the two models' configurations as `restore ldm --config FILE` reads them.

Runs (io.safetensors; images NHWC):
  sr_unet_*      one UNet forward: x [1, 8, 12, 6] (latent then LR), t 500 → out.
  sr_run_*       the official SR path for an 8 x 12 LR: c = LR in [−1, 1] ([1, 8, 12, 3]), x_T, DDIMSampler(model)
                 .sample(S=4, eta=1.0, x_T=x_T) (grid 1, 251, 501, 751), then decode_first_stage → sr_run_out
                 [1, 32, 48, 3]; sr_run_noise_k: the 4 per-step z in the order drawn.
  sr_split_*     the same with split_input_params {ks (8, 8), stride (4, 4), vqf 4, patch_distributed_vq True,
                 clip 0.01…0.5, tie_braker False} (the Colab helper's 128/64 scaled down) on a 12 x 16 LR (latent
                 windows 2 x 3), η 0, S 4; decode_first_stage patch-distributed (windows 32², stride 16).
  inpaint_*      scripts/inpaint.py's steps on a 16 x 24 image and mask (1 = hole, binarised at 0.5): c =
                 cat(cond_stage_model.encode(masked), interpolate(mask)), DDIM S 5, η 0, x_T given, decode,
                 composite inpainted = (1 − mask)·image + mask·clamp((x + 1)/2); inpaint_image and inpaint_mask in
                 [0, 1]; inpaint_out in [0, 1] before the script's uint8 conversion.
  kl_*           kl_in [1, 16, 16, 3] → kl_mean, kl_logvar (clamped), kl_noise and kl_sample = posterior.sample() with
                 that noise, kl_decoded = decode(kl_mean).
"""
import argparse
import json
import os
import sys
import types

import numpy as np
import torch

import fixtures


def stub_modules():
    pl = types.ModuleType("pytorch_lightning")

    class LightningModule(torch.nn.Module):
        device = torch.device("cpu")

    pl.LightningModule = LightningModule
    utilities = types.ModuleType("pytorch_lightning.utilities")
    distributed = types.ModuleType("pytorch_lightning.utilities.distributed")
    distributed.rank_zero_only = lambda f: f
    pl.utilities = utilities
    utilities.distributed = distributed
    sys.modules.update({"pytorch_lightning": pl, "pytorch_lightning.utilities": utilities,
                        "pytorch_lightning.utilities.distributed": distributed})
    tv = types.ModuleType("torchvision")
    tv_utils = types.ModuleType("torchvision.utils")
    tv_utils.make_grid = None
    tv.utils = tv_utils
    sys.modules.update({"torchvision": tv, "torchvision.utils": tv_utils})


def redraw(module, generator):
    for name, p in module.named_parameters():
        with torch.no_grad():
            if name.endswith("embedding.weight"):
                v = torch.randn(p.shape, generator=generator)
            elif p.dim() >= 2:
                v = torch.randn(p.shape, generator=generator) / np.sqrt(p[0].numel())
            elif "norm" in name and name.endswith("weight"):
                v = 1 + 0.1 * torch.randn(p.shape, generator=generator)
            else:
                v = 0.1 * torch.randn(p.shape, generator=generator)
            p.copy_(v.half().float())


def first_stage(attn_type=None):
    dd = dict(double_z=False, z_channels=3, resolution=16, in_channels=3, out_ch=3, ch=32, ch_mult=[1, 1, 1],
              num_res_blocks=1, attn_resolutions=[], dropout=0.0)
    if attn_type:
        dd["attn_type"] = attn_type
    return {"target": "ldm.models.autoencoder.VQModelInterface",
            "params": {"embed_dim": 3, "n_embed": 64, "ddconfig": dd, "lossconfig": {"target": "torch.nn.Identity"}}}


SR_UNET = dict(image_size=16, in_channels=6, out_channels=3, model_channels=32, attention_resolutions=[2],
               num_res_blocks=1, channel_mult=[1, 1], num_head_channels=16)
INPAINT_UNET = dict(image_size=16, in_channels=7, out_channels=3, model_channels=32, attention_resolutions=[1, 2],
                    num_res_blocks=1, channel_mult=[1, 1], num_heads=2, resblock_updown=True)


def configuration(kind):
    """The tiny model's configuration as `restore ldm --config` reads it (the official keyword arguments)."""
    dd = first_stage("none" if kind == "inpaint" else None)["params"]["ddconfig"]
    stage = {k: dd[k] for k in ("ch", "ch_mult", "num_res_blocks", "resolution", "z_channels", "in_channels", "out_ch")}
    stage.update(n_embed=64, embed_dim=3, attn_type=dd.get("attn_type", "vanilla"))
    return {"unet_config": SR_UNET if kind == "sr" else INPAINT_UNET, "first_stage_config": stage,
            "conditioning": "sr4" if kind == "sr" else "inpaint", "linear_start": 0.0015,
            "linear_end": 0.0155 if kind == "sr" else 0.0205}


def build(kind, seed):
    from ldm.models.diffusion.ddpm import LatentDiffusion
    if kind == "sr":
        unet = SR_UNET
        model = LatentDiffusion(first_stage_config=first_stage(), cond_stage_config={"target": "torch.nn.Identity"},
                                unet_config={"target": "ldm.modules.diffusionmodules.openaimodel.UNetModel", "params": unet},
                                linear_start=0.0015, linear_end=0.0155, timesteps=1000, first_stage_key="image",
                                cond_stage_key="LR_image", image_size=16, channels=3, concat_mode=True,
                                cond_stage_trainable=False, loss_type="l2")
    else:
        unet = INPAINT_UNET
        model = LatentDiffusion(first_stage_config=first_stage("none"), cond_stage_config="__is_first_stage__",
                                unet_config={"target": "ldm.modules.diffusionmodules.openaimodel.UNetModel", "params": unet},
                                linear_start=0.0015, linear_end=0.0205, timesteps=1000, first_stage_key="image",
                                cond_stage_key="masked_image", image_size=16, channels=3, concat_mode=True, loss_type="l1")
    g = torch.Generator().manual_seed(seed)
    redraw(model.model, g)
    redraw(model.first_stage_model, g)
    # The EMA copy: an independent draw of every UNet parameter, in LitEma's buffers.
    shadow = dict(model.model_ema.named_buffers())
    ema_source = torch.nn.Module()
    ema_source.diffusion_model = type(model.model.diffusion_model)(**unet)
    redraw(ema_source, g)
    for name, p in ema_source.named_parameters():
        shadow[name.replace(".", "")].copy_(p.detach())
    model.eval()
    return model


def save_ckpt(model, path):
    """float16 for the weights (the schedule buffers stay float32); tensors shared in the model (the inpainting
    model's cond_stage_model is its first_stage_model) stay shared, so they are stored once."""
    halves = {}

    def half(k, v):
        if not v.is_floating_point() or v.dim() == 0 or k.startswith(("betas", "alphas", "sqrt", "log_one", "posterior")):
            return v
        return halves.setdefault(v.data_ptr(), v.half())

    sd = {k: half(k, v) for k, v in model.state_dict().items()}
    torch.save({"state_dict": sd, "global_step": 0}, path)


class RecordedNoise:
    def __init__(self, seed):
        self.g = torch.Generator().manual_seed(seed)
        self.drawn = []

    def __call__(self, shape, device, repeat=False):
        z = torch.randn(shape, generator=self.g)
        self.drawn.append(z)
        return z


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ldm", required=True)
    parser.add_argument("--taming", required=True)
    parser.add_argument("--out", default="Tests/NetworksTests/Fixtures/ldm")
    args = parser.parse_args()
    torch.set_num_threads(1)
    sys.path[:0] = [os.path.abspath(args.ldm), os.path.abspath(args.taming)]
    stub_modules()
    import ldm.models.diffusion.ddim as ddim
    from ldm.models.autoencoder import AutoencoderKL

    ddim.DDIMSampler.register_buffer = lambda self, name, attr: setattr(self, name, attr)
    os.makedirs(args.out, exist_ok=True)
    io = {}
    g = torch.Generator().manual_seed(7)

    def randn(*shape):
        return torch.randn(*shape, generator=g)

    with torch.no_grad():
        # ---- super-resolution
        sr = build("sr", 1)
        save_ckpt(sr, os.path.join(args.out, "sr.ckpt"))
        sr = build("sr", 1)  # the stored (float16-rounded) values are what was drawn
        with sr.ema_scope():
            x = randn(1, 6, 8, 12)
            io["sr_unet_in"] = fixtures.nhwc(x)
            io["sr_unet_out"] = fixtures.nhwc(sr.model.diffusion_model(x, torch.tensor([500])))

            lr = randn(1, 3, 8, 12).clamp(-1, 1)
            x_t = randn(1, 3, 8, 12)
            noise = RecordedNoise(11)
            ddim.noise_like = noise
            samples, _ = ddim.DDIMSampler(sr).sample(S=4, batch_size=1, shape=(3, 8, 12), conditioning=lr, eta=1.0,
                                                     x_T=x_t, verbose=False)
            io["sr_run_lr"], io["sr_run_xt"] = fixtures.nhwc(lr), fixtures.nhwc(x_t)
            io["sr_run_latent"] = fixtures.nhwc(samples)
            io["sr_run_out"] = fixtures.nhwc(sr.decode_first_stage(samples))
            for k, z in enumerate(noise.drawn):
                io[f"sr_run_noise_{k}"] = fixtures.nhwc(z)

            sr.split_input_params = {"ks": (8, 8), "stride": (4, 4), "vqf": 4, "patch_distributed_vq": True,
                                     "tie_braker": False, "clip_max_weight": 0.5, "clip_min_weight": 0.01,
                                     "clip_max_tie_weight": 0.5, "clip_min_tie_weight": 0.01}
            lr = randn(1, 3, 12, 16).clamp(-1, 1)
            x_t = randn(1, 3, 12, 16)
            samples, _ = ddim.DDIMSampler(sr).sample(S=4, batch_size=1, shape=(3, 12, 16), conditioning=lr, eta=0.0,
                                                     x_T=x_t, verbose=False)
            io["sr_split_lr"], io["sr_split_xt"] = fixtures.nhwc(lr), fixtures.nhwc(x_t)
            io["sr_split_latent"] = fixtures.nhwc(samples)
            io["sr_split_out"] = fixtures.nhwc(sr.decode_first_stage(samples))

        # ---- inpainting (scripts/inpaint.py)
        ip = build("inpaint", 2)
        save_ckpt(ip, os.path.join(args.out, "inpaint.ckpt"))
        ip = build("inpaint", 2)
        with ip.ema_scope():
            x = randn(1, 7, 8, 12)
            io["inpaint_unet_in"] = fixtures.nhwc(x)
            io["inpaint_unet_out"] = fixtures.nhwc(ip.model.diffusion_model(x, torch.tensor([321])))

            image = torch.rand(1, 3, 16, 24, generator=g)
            mask = torch.zeros(1, 1, 16, 24)
            mask[:, :, 4:12, 6:17] = 1
            masked = (1 - mask) * image
            batch = {k: v * 2 - 1 for k, v in {"image": image, "mask": mask, "masked_image": masked}.items()}
            c = ip.cond_stage_model.encode(batch["masked_image"])
            cc = torch.nn.functional.interpolate(batch["mask"], size=c.shape[-2:])
            c = torch.cat((c, cc), dim=1)
            x_t = randn(1, 3, 4, 6)
            samples, _ = ddim.DDIMSampler(ip).sample(S=5, conditioning=c, batch_size=1, shape=(3, 4, 6), x_T=x_t, verbose=False)
            decoded = ip.decode_first_stage(samples)
            predicted = torch.clamp((decoded + 1) / 2, 0, 1)
            io["inpaint_image"], io["inpaint_mask"] = fixtures.nhwc(image), fixtures.nhwc(mask)
            io["inpaint_xt"], io["inpaint_condition"] = fixtures.nhwc(x_t), fixtures.nhwc(c)
            io["inpaint_latent"] = fixtures.nhwc(samples)
            io["inpaint_out"] = fixtures.nhwc((1 - mask) * image + mask * predicted)

        # ---- KL autoencoder
        kl = AutoencoderKL(ddconfig=dict(double_z=True, z_channels=4, resolution=16, in_channels=3, out_ch=3, ch=32,
                                         ch_mult=[1, 1], num_res_blocks=1, attn_resolutions=[16], dropout=0.0),
                           lossconfig={"target": "torch.nn.Identity"}, embed_dim=4)
        redraw(kl, torch.Generator().manual_seed(3))
        kl.eval()
        sd = {k: v.half() for k, v in kl.state_dict().items()}
        sd["loss.logvar"] = torch.zeros(())
        torch.save({"state_dict": sd, "global_step": 0}, os.path.join(args.out, "kl.ckpt"))
        x = torch.rand(1, 3, 16, 16, generator=g) * 2 - 1
        posterior = kl.encode(x)
        torch.manual_seed(5)
        sample = posterior.sample()
        torch.manual_seed(5)
        kl_noise = torch.randn(posterior.mean.shape)
        io["kl_in"], io["kl_mean"], io["kl_logvar"] = fixtures.nhwc(x), fixtures.nhwc(posterior.mean), fixtures.nhwc(posterior.logvar)
        io["kl_noise"], io["kl_sample"] = fixtures.nhwc(kl_noise), fixtures.nhwc(sample)
        io["kl_decoded"] = fixtures.nhwc(kl.decode(posterior.mode()))

    for kind in ("sr", "inpaint"):
        with open(os.path.join(args.out, f"{kind}.json"), "w") as f:
            json.dump(configuration(kind), f, indent=1)
    fixtures.save(os.path.join(args.out, "io.safetensors"), io,
                  metadata={"source": "CompVis/latent-diffusion a506df5 + taming-transformers 3ba01b2",
                            "script": "Tools/reference/make_ldm_fixtures.py"})
    for name in sorted(os.listdir(args.out)):
        print(f"{name}: {os.path.getsize(os.path.join(args.out, name))} bytes")


if __name__ == "__main__":
    main()
