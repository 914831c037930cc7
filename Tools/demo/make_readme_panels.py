#!/usr/bin/env python3
"""Makes Assets/demo/task-*.png for the README from `make demo`'s outputs: damaged | restored side by side.
For ×4 the same 256² region of the 1024² output is shown beside the input enlarged 4× (nearest), so pixels
compare one to one. Run after `make demo`; the results are committed."""
from pathlib import Path

from PIL import Image

repo = Path(__file__).resolve().parents[2]
photos, out, demo = repo / "Assets/photos", repo / "Assets/demo", repo / "demo-out"


def pair(left, right, name):
    panel = Image.new("RGB", (left.width + right.width + 4, max(left.height, right.height)), "white")
    panel.paste(left.convert("RGB"), (0, 0))
    panel.paste(right.convert("RGB"), (left.width + 4, 0))
    panel.save(out / name, optimize=True)
    print("wrote", out / name)


box = (384, 256, 640, 512)  # a 256² region of the 1024² output (the cat's face)
small = Image.open(photos / "chelsea-256.png").resize((1024, 1024), Image.NEAREST).crop(box)
pair(small, Image.open(demo / "chelsea-x4.png").crop(box), "task-upscale.png")
pair(Image.open(photos / "chelsea-256-q10.jpg"), Image.open(demo / "chelsea-dejpeg.png"), "task-dejpeg.png")
pair(Image.open(photos / "chelsea-256-noisy.png"), Image.open(demo / "chelsea-denoised.png"), "task-denoise.png")
pair(Image.open(photos / "chelsea-256-holes.png"), Image.open(demo / "chelsea-inpainted.png"), "task-inpaint.png")
