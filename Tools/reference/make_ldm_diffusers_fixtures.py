"""Golden fixtures for the diffusers layout of latent-diffusion SR (`ldm-super-resolution-4x-openimages`): a tiny
folder written by diffusers' own save_pretrained, and the outputs of diffusers' own modules, as the second
reference the LDM issue asks for (the CompVis code is the first: make_ldm_fixtures.py).

Usage (needs torch and diffusers from PyPI; made with diffusers 0.42.1; from the repository root):
  python Tools/reference/make_ldm_diffusers_fixtures.py [--out DIR]     (default Tests/NetworksTests/Fixtures/ldm/diffusers)

Folder (what LDMSuperResolutionPipeline.save_pretrained writes, less model_index.json's pipeline class):
  unet/      UNet2DModel(sample_size 16, in_channels 6, out_channels 3, block_out_channels (32, 32), layers_per_block 1,
             down_block_types (DownBlock2D, AttnDownBlock2D), up_block_types (AttnUpBlock2D, UpBlock2D),
             attention_head_dim 16): the layout of the released SR UNet (plain embedding add, heads of 16 channels here,
             32 there) in small; attention at the second level and in the middle (2 heads of 16).
  vqvae/     VQModel(block_out_channels (32, 32, 32), three DownEncoderBlock2D / UpDecoderBlock2D, layers_per_block 1,
             latent_channels 3, num_vq_embeddings 64, vq_embed_dim 3): an f4 VQ with the middle attention.
  scheduler/ DDIMScheduler(beta_start 0.0015, beta_end 0.0155, beta_schedule scaled_linear, num_train_timesteps 1000).
Every parameter redrawn (conv/linear weights N(0, 1/fan_in), biases N(0, 0.1²), norm weights 1 + N(0, 0.1²), the
codebook N(0, 1)), rounded to float16 and saved as float16 safetensors.

io.safetensors (NHWC): unet_in [1, 8, 12, 6] at t = 500 → unet_out; vq_in [1, 16, 24, 3] → vq_latent = encode(x).latents
(before quantisation) → vq_decoded = decode(vq_latent) (which quantises, force_not_quantize False).
Not run by CI. CPU, float32, one thread, fixed seeds.
"""
import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixtures  # noqa: E402
from make_ldm_fixtures import redraw  # noqa: E402  (the same redraw of every parameter)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="Tests/NetworksTests/Fixtures/ldm/diffusers")
    args = parser.parse_args()
    torch.set_num_threads(1)
    from diffusers import DDIMScheduler, UNet2DModel, VQModel

    g = torch.Generator().manual_seed(21)
    unet = UNet2DModel(sample_size=16, in_channels=6, out_channels=3, block_out_channels=(32, 32), layers_per_block=1,
                       down_block_types=("DownBlock2D", "AttnDownBlock2D"), up_block_types=("AttnUpBlock2D", "UpBlock2D"),
                       attention_head_dim=16)
    vq = VQModel(block_out_channels=(32, 32, 32), down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
                 layers_per_block=1, latent_channels=3, num_vq_embeddings=64, vq_embed_dim=3, sample_size=16)
    redraw(unet, g)
    redraw(vq, g)
    unet.eval()
    vq.eval()
    io = {}
    with torch.no_grad():
        x = torch.randn(1, 6, 8, 12, generator=g)
        io["unet_in"] = fixtures.nhwc(x)
        io["unet_out"] = fixtures.nhwc(unet(x, torch.tensor([500])).sample)
        image = torch.rand(1, 3, 16, 24, generator=g) * 2 - 1
        latent = vq.encode(image).latents
        io["vq_in"], io["vq_latent"] = fixtures.nhwc(image), fixtures.nhwc(latent)
        io["vq_decoded"] = fixtures.nhwc(vq.decode(latent).sample)
    os.makedirs(args.out, exist_ok=True)
    unet.half().save_pretrained(os.path.join(args.out, "unet"))
    vq.half().save_pretrained(os.path.join(args.out, "vqvae"))
    DDIMScheduler(beta_start=0.0015, beta_end=0.0155, beta_schedule="scaled_linear", num_train_timesteps=1000).save_pretrained(
        os.path.join(args.out, "scheduler"))
    with open(os.path.join(args.out, "model_index.json"), "w") as f:
        json.dump({"_class_name": "LDMSuperResolutionPipeline", "unet": ["diffusers", "UNet2DModel"],
                   "vqvae": ["diffusers", "VQModel"], "scheduler": ["diffusers", "DDIMScheduler"]}, f, indent=2)
    fixtures.save(os.path.join(args.out, "io.safetensors"), io, metadata={"source": "diffusers 0.42.1",
                                                                          "script": "Tools/reference/make_ldm_diffusers_fixtures.py"})
    for root, _, files in os.walk(args.out):
        for name in sorted(files):
            print(os.path.join(root, name), os.path.getsize(os.path.join(root, name)))


if __name__ == "__main__":
    main()
