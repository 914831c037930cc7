"""The same-size degradations of our RDDM model, in numpy: the kinds and formulas of Swift's `--simulate KIND:P…`
(Sources/Restoration/Degradations.swift), shared by the trainer (Tools/train/train_rddm.py) and the evaluation
(Tools/eval/eval_rddm.py, which checks that these kernels reproduce the files `restore` writes)."""
from __future__ import annotations

import math

import numpy as np


def disk_kernel(radius: float) -> np.ndarray:
    r = math.ceil(radius)
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    k = ((yy * yy + xx * xx) <= radius * radius).astype(np.float64)
    return k / k.sum()


def line_kernel(length: float, degrees: float) -> np.ndarray:
    r = math.ceil(length / 2)
    size = 2 * r + 1
    k = np.zeros((size, size), np.float64)
    dx, dy = math.cos(math.radians(degrees)), -math.sin(math.radians(degrees))
    n = int(length * 8) + 1
    for i in range(n):
        tau = -length / 2 + length * i / (n - 1)
        px, py = r + tau * dx, r + tau * dy
        x0, y0 = math.floor(px), math.floor(py)
        fx, fy = px - x0, py - y0
        for yy, wy in ((y0, 1 - fy), (y0 + 1, fy)):
            for xx, wx in ((x0, 1 - fx), (x0 + 1, fx)):
                if 0 <= yy < size and 0 <= xx < size:
                    k[yy, xx] += wy * wx
    return k / k.sum()


def degrade(hr_u8: np.ndarray, kind: str, p: list, rng: np.random.Generator) -> np.ndarray:
    """HR uint8 H×W×3 → the same size degraded, uint8; rng draws the noise."""
    import cv2
    if kind == "jpeg":
        ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(hr_u8[..., ::-1]),
                               [cv2.IMWRITE_JPEG_QUALITY, int(p[0]),
                                cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420])
        assert ok
        return np.ascontiguousarray(cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1])
    x = hr_u8.astype(np.float64) / 255
    if kind == "noise":
        x = x + p[0] / 255 * rng.standard_normal(x.shape)
    elif kind == "poisson":
        x = rng.poisson(p[0] * np.maximum(x, 0)) / p[0]
    elif kind in ("defocus", "motion"):
        k = disk_kernel(p[0]) if kind == "defocus" else line_kernel(p[0], p[1])
        x = cv2.filter2D(x, -1, k, borderType=cv2.BORDER_REFLECT_101)
    elif kind == "lowlight":
        x = p[0] * np.maximum(x, 0) ** p[1] + p[2] / 255 * rng.standard_normal(x.shape)
    else:
        raise ValueError(kind)
    return np.floor(np.clip(x, 0, 1) * 255 + 0.5).astype(np.uint8)
