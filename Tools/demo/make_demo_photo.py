#!/usr/bin/env python3
"""Makes Assets/photos/chelsea-64.png, the demo's 64² photo (the bundled prior's native size), from the
bundled Assets/photos/chelsea.png (scikit-image, CC0): downscaled to 96×64 (Lanczos, antialiased), then the
centre-left 64×64 square around the cat's face. Run once; the result is committed."""
from pathlib import Path

from PIL import Image

repo = Path(__file__).resolve().parents[2]
src = Image.open(repo / "Assets/photos/chelsea.png").convert("RGB")
small = src.resize((96, 64), Image.LANCZOS)
small.crop((12, 0, 76, 64)).save(repo / "Assets/photos/chelsea-64.png", optimize=True)
print("wrote Assets/photos/chelsea-64.png")

# The demo's inpainting mask (white = hole, the project's convention): an 18×18 box over the cat's cheek.
mask = Image.new("L", (64, 64), 0)
mask.paste(255, (30, 34, 48, 52))
mask.save(repo / "Assets/photos/chelsea-64-hole.png", optimize=True)
print("wrote Assets/photos/chelsea-64-hole.png")

# The task demo (make demo, README quick start): a 256² photo and three damaged copies, each made here with a
# fixed seed so that the committed files are reproducible.
import numpy as np

big = src.crop((75, 0, 375, 300)).resize((256, 256), Image.LANCZOS)
big.save(repo / "Assets/photos/chelsea-256.png", optimize=True)
big.save(repo / "Assets/photos/chelsea-256-q10.jpg", quality=10)
pixels = np.asarray(big).astype(np.float64) / 255
noisy = np.clip(pixels + np.random.default_rng(0).normal(0, 0.08, pixels.shape), 0, 1)
Image.fromarray((noisy * 255).round().astype(np.uint8)).save(repo / "Assets/photos/chelsea-256-noisy.png", optimize=True)
holes = Image.new("L", (256, 256), 0)
for box in [(60, 150, 96, 186), (150, 40, 180, 70), (190, 170, 230, 200), (110, 90, 126, 210)]:
    holes.paste(255, box)
holes.save(repo / "Assets/photos/chelsea-256-holes-mask.png", optimize=True)
with_holes = np.asarray(big).copy()
with_holes[np.asarray(holes) > 0] = 255
Image.fromarray(with_holes).save(repo / "Assets/photos/chelsea-256-holes.png", optimize=True)
print("wrote Assets/photos/chelsea-256{,-q10.jpg,-noisy,-holes,-holes-mask}.png (σ 0.08 noise, seed 0; JPEG quality 10)")
