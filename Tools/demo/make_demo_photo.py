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
