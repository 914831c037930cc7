"""Golden fixture for our own LDM export format (Tools/train/train_ldm.py): a tiny UNet2DModel with every parameter
redrawn, exported by the trainer's own `export` (diffusers names, the openaimodel configuration, pixel_unshuffle 4 and
the sampling defaults in the metadata), and the trainer's DDIM sampler run on it with a recorded x_T.

Usage (torch, diffusers, safetensors; from the repository root):
  python Tools/reference/make_ldm_own_fixture.py [--out DIR]          (default Tests/NetworksTests/Fixtures/ldm/own)
  python Tools/reference/make_ldm_own_fixture.py --parameterization x0 --out Tests/NetworksTests/Fixtures/ldm/own-x0

Files: ldm-x4-own.safetensors (+ the card and curve the export writes, removed again), io.safetensors with
lr [1, 8, 12, 3] in [-1, 1], xt [1, 8, 12, 48] and sr [1, 32, 48, 3] = pixel_shuffle(DDIM(x_T), 4) clamped, 4 steps, η 0;
the UNet predicts ε (bsr_sr's form) or, with --parameterization x0, the clean latent.
UNet: block_out_channels (32, 32), one block per level, attention (16-channel heads) at level 1 and in the middle.
Not run by CI.
"""
import argparse
import os
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "train")]
import fixtures  # noqa: E402
import train_ldm  # noqa: E402
from make_ldm_fixtures import redraw  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="Tests/NetworksTests/Fixtures/ldm/own")
    parser.add_argument("--parameterization", choices=["eps", "x0"], default="eps")
    args = parser.parse_args()
    torch.set_num_threads(1)
    targs = train_ldm.parse_args(["--block-out-channels", "32,32", "--layers-per-block", "1", "--attention-levels", "1",
                                  "--head-channels", "16", "--hr-crop", "32", "--sample-steps", "4", "--export-dir", args.out,
                                  "--name", "ldm-x4-own", "--parameterization", args.parameterization])
    kw = train_ldm.unet_kwargs(targs)
    model = train_ldm.build(kw)
    g = torch.Generator().manual_seed(31)
    redraw(model, g)
    model.eval()
    diffusion = train_ldm.LDMDiffusion("cpu", sample_steps=4, eta=0.0, parameterization=args.parameterization)
    lr = (torch.rand(1, 3, 8, 12, generator=g) * 2 - 1)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    ckpt = {"step": 0, "unet": kw, "diffusion": diffusion.config, "args": vars(targs), "ema": state, "losses": [], "val": {},
            "history": []}
    train_ldm.export(ckpt, targs)
    for suffix in ("-curve.csv", "-curve.png", ".md"):
        p = Path(args.out) / f"ldm-x4-own{suffix}"
        if p.exists():
            p.unlink()
    model.half().float()  # the exported weights are float16
    model.load_state_dict({k: v.half().float() for k, v in state.items()})
    gen = torch.Generator().manual_seed(5)
    xt = torch.randn((1, 48, 8, 12), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        sr = diffusion.sample(model, lr, gen, lambda: torch.autocast("cpu", enabled=False))
    fixtures.save(os.path.join(args.out, "io.safetensors"), {"lr": fixtures.nhwc(lr), "xt": fixtures.nhwc(xt), "sr": fixtures.nhwc(sr)},
                  metadata={"script": "Tools/reference/make_ldm_own_fixture.py"})
    for name in sorted(os.listdir(args.out)):
        print(name, os.path.getsize(os.path.join(args.out, name)))


if __name__ == "__main__":
    main()
