"""Reference values of the report's quality metrics, computed by scikit-image (not run by CI).

Writes Tests/RestorationTests/Fixtures/quality.safetensors: image pairs on the [0, 1] scale, NHWC [1, H, W, C]
float32 ("CASE.a", "CASE.b"), and __metadata__["values"]: JSON {CASE: {"psnr": …, "ssim": …}} from
  skimage.metrics.peak_signal_noise_ratio(a, b, data_range=1)
  skimage.metrics.structural_similarity(a, b, data_range=1, channel_axis=-1, gaussian_weights=True, sigma=1.5,
                                        use_sample_covariance=False)
(the Wang et al. 2004 setting: 11×11 Gaussian window, K1 0.01, K2 0.03), computed in float64 on the stored
float32 values, and "ssim_sample_covariance" (scikit-image's default use_sample_covariance=True) to show which
convention the report does not use.

Usage: python Tools/reference/make_quality_fixtures.py   (numpy, scikit-image, torch + safetensors for saving)
"""
import json
import os

import numpy as np
import skimage
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "..", "Tests", "RestorationTests", "Fixtures", "quality.safetensors")


def cases():
    rng = np.random.default_rng(20261207)
    yy, xx = np.mgrid[0:24, 0:20] / 23.0
    smooth = np.stack([yy, xx, 0.5 + 0.4 * np.sin(6 * yy) * np.cos(5 * xx)], axis=-1)
    yield "rgb_noise", smooth, np.clip(smooth + rng.normal(0, 0.05, smooth.shape), 0, 1)
    yield "rgb_blocky", smooth, np.repeat(np.repeat(smooth[::4, ::4], 4, 0), 4, 1)[:24, :20]
    gray = rng.uniform(0, 1, (16, 13, 1))
    yield "gray_random", gray, np.clip(0.7 * gray + 0.2 + rng.normal(0, 0.1, gray.shape), 0, 1)


def main():
    import torch
    from safetensors.torch import save_file

    tensors, values = {}, {}
    for name, a, b in cases():
        a, b = a.astype(np.float32), b.astype(np.float32)
        a64, b64 = a.astype(np.float64), b.astype(np.float64)
        values[name] = {
            "psnr": float(peak_signal_noise_ratio(a64, b64, data_range=1)),
            "ssim": float(structural_similarity(a64, b64, data_range=1, channel_axis=-1, gaussian_weights=True, sigma=1.5,
                                                use_sample_covariance=False)),
            "ssim_sample_covariance": float(structural_similarity(a64, b64, data_range=1, channel_axis=-1,
                                                                  gaussian_weights=True, sigma=1.5)),
        }
        tensors[f"{name}.a"] = torch.from_numpy(a[None].copy())
        tensors[f"{name}.b"] = torch.from_numpy(b[None].copy())
        print(name, values[name])
    save_file(tensors, OUT, metadata={"values": json.dumps(values, sort_keys=True), "scikit_image": skimage.__version__})


if __name__ == "__main__":
    main()
