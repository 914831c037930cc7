"""Golden fixtures for DDNM / DDNM+, computed by the OFFICIAL DDNM code (run on CPU through monkeypatches).

What it writes (into Tests/MethodsTests/Fixtures unless --out is given)
  operators.safetensors   every official A_functions operator (functions/svd_operators.py) applied to fixed
                          random vectors: A, A_pinv(A x), Vt, V, Ut(A x), U(r), singulars, Lambda, Lambda_noise,
                          plus the operator's internal tensors ("P.state.*": SVD factors, permutations, index
                          lists) so a Swift port can inject the exact SVD bases (signs / null-space bases / tie
                          orders of torch.svd and torch.sort are implementation-defined).
                          __metadata__["operators"]: JSON of constructor parameters, layouts and call arguments.
  tiny_adm16.pt           torch.save(state_dict) in float16 of a tiny openai/guided-diffusion UNetModel (the
                          adm_a configuration of make_network_fixtures.py with image_size 16), random weights.
  trajectories.safetensors  complete DDNM sampling runs on that model with injected noise: the official
                          Diffusion.svd_based_ddnm_plus (-> functions/svd_ddnm.ddnm_diffusion / ddnm_plus_diffusion)
                          and Diffusion.simplified_ddnm_plus are executed verbatim; torch.randn / torch.randn_like
                          are replaced during the run by a tape that hands out pre-drawn tensors in call order.
                          __metadata__: "cases" (JSON per case), "model_config", "layout".

How the official code is run on CPU (nothing of it is copied here; it is imported from --ddnm at run time)
  * torch.Tensor.to('cuda' | device('cuda')) -> cpu, torch.Tensor.cuda() -> identity;
  * missing third-party modules are stubbed: cv2 (unused import), tqdm (plain iteration), torchvision.utils
    (save_image no-op), DDNM's `datasets` (get_dataset returns the one synthetic image; data_transform is the
    official `rescaled` branch 2x-1; inverse_data_transform the official (x+1)/2 + clamp, and records its input),
    functions.ckpt_util, guided_diffusion.models / script_util (checkpoint loading is not used);
  * the simplified path hard-codes 256 in AdaptiveAvgPool2d((256//scale, 256//scale)); during that call
    torch.nn.AdaptiveAvgPool2d is wrapped to pool to (image_size//scale) instead;
  * the inpainting mask is written to <tmp>/exp/inp_masks/mask.npy (int64, 1 = keep) and the working directory
    is switched there while the official code runs np.load("exp/inp_masks/mask.npy");
  * CS (block compressed sensing) draws a 1024x1024 Gaussian matrix and keeps V of its SVD; that V (4 MB) is
    replaced after construction by the orthonormal DCT-II basis (see metadata) so Swift can rebuild it.

Usage (from the repository root, with a PyTorch venv that also has `safetensors`):
  python Tools/reference/make_ddnm_fixtures.py --ddnm /tmp/ref/ddnm --guided-diffusion /tmp/ref/gd [--out DIR]

  --ddnm              a checkout of https://github.com/wyhuai/DDNM
                      (fixtures made at commit 00b58eac7843a4c99114fd8fa42da7aa2b6808af)
  --guided-diffusion  a checkout of https://github.com/openai/guided-diffusion
                      (fixtures made at commit 22e0df8183507e13a7813f8d38d51b072ca1e67c), for UNetModel.

Reuses randomize / round_to_half / canonicalize_safetensors_header / ADM_A from make_network_fixtures.py.
Not run by CI. CPU only, one thread, deterministic (reruns are byte-identical).
"""
import argparse
import contextlib
import copy
import importlib.util
import json
import math
import os
import sys
import tempfile
import types

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_network_fixtures as mnf  # noqa: E402

DEFAULT_OUT = os.path.join(HERE, "..", "..", "Tests", "MethodsTests", "Fixtures")
S = 16            # image size of every fixture except CS (32)
ETA = 0.85
NUM_T = 1000


# ---------------------------------------------------------------------------------------------------------------
# Loading the official DDNM code on CPU


class _Tqdm:
    def __init__(self, iterable=None, *a, **k):
        self.iterable = iterable

    def __iter__(self):
        return iter(self.iterable)

    def set_description(self, *a, **k):
        pass


def _module(name, **attrs):
    m = types.ModuleType(name)
    for k, v in attrs.items():
        setattr(m, k, v)
    return m


def _unused(*a, **k):
    raise RuntimeError("not used by the fixtures")


def _is_cuda(d):
    return (isinstance(d, str) and d.startswith("cuda")) or (isinstance(d, torch.device) and d.type == "cuda")


def patch_cuda_to_cpu():
    real_to = torch.Tensor.to

    def to(self, *args, **kw):
        args = tuple("cpu" if _is_cuda(a) else a for a in args)
        if _is_cuda(kw.get("device")):
            kw["device"] = "cpu"
        return real_to(self, *args, **kw)

    torch.Tensor.to = to
    torch.Tensor.cuda = lambda self, *a, **k: self


class Official:
    """The official modules: svd_operators, svd_ddnm and guided_diffusion/diffusion.py (class Diffusion)."""

    def __init__(self, ddnm_dir):
        ddnm_dir = os.path.abspath(ddnm_dir)
        patch_cuda_to_cpu()
        self.inverse_calls = []
        tv_utils = _module("torchvision.utils", save_image=lambda *a, **k: None)
        stubs = {
            "cv2": _module("cv2"),
            "tqdm": _module("tqdm", tqdm=_Tqdm),
            "torchvision": _module("torchvision", utils=tv_utils),
            "torchvision.utils": tv_utils,
        }
        for k, v in stubs.items():
            sys.modules.setdefault(k, v)
        self.ops = self._load("functions.svd_operators", os.path.join(ddnm_dir, "functions", "svd_operators.py"))
        self.svd = self._load("functions.svd_ddnm", os.path.join(ddnm_dir, "functions", "svd_ddnm.py"))
        functions_pkg = _module("functions", svd_operators=self.ops, svd_ddnm=self.svd)
        functions_pkg.__path__ = []
        sys.modules["functions"] = functions_pkg
        sys.modules["functions.ckpt_util"] = _module("functions.ckpt_util", get_ckpt_path=_unused, download=_unused)
        self.datasets = _module("datasets", get_dataset=_unused, data_transform=self._data_transform,
                                inverse_data_transform=self._inverse_data_transform)
        sys.modules["datasets"] = self.datasets
        saved = {k: sys.modules.get(k) for k in ("guided_diffusion.models", "guided_diffusion.script_util")}
        sys.modules["guided_diffusion.models"] = _module("guided_diffusion.models", Model=_unused)
        sys.modules["guided_diffusion.script_util"] = _module(
            "guided_diffusion.script_util", create_model=_unused, create_classifier=_unused,
            classifier_defaults=_unused, args_to_dict=_unused)
        try:
            self.diff = self._load("ddnm_diffusion", os.path.join(ddnm_dir, "guided_diffusion", "diffusion.py"))
        finally:
            for k, v in saved.items():
                if v is None:
                    sys.modules.pop(k, None)
                else:
                    sys.modules[k] = v

    @staticmethod
    def _load(name, path):
        spec = importlib.util.spec_from_file_location(name, path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
        return mod

    @staticmethod
    def _data_transform(config, x):  # DDNM datasets.data_transform, `rescaled: true` branch
        return 2 * x - 1.0

    def _inverse_data_transform(self, config, x):  # DDNM datasets.inverse_data_transform, `rescaled` branch
        self.inverse_calls.append(x.detach().clone())
        return torch.clamp((x + 1.0) / 2.0, 0.0, 1.0)

    # -----------------------------------------------------------------------------------------------------------

    def make_diffusion(self, workdir, image_size, x01, deg, deg_scale=0.0, sigma_y=0.0, add_noise=False,
                       T=10, L=1, r=1):
        """A Diffusion object whose config matches DDNM's configs (linear betas 1e-4..0.02, 1000 steps).
        sigma_y is the value on the [-1, 1] scale; the official code doubles args.sigma_y, so half is passed."""
        ns = types.SimpleNamespace
        config = ns(
            data=ns(dataset="synthetic", image_size=image_size, channels=3, num_workers=0, rescaled=True,
                    logit_transform=False, uniform_dequantization=False, gaussian_dequantization=False),
            model=ns(type="openai", var_type="fixedsmall"),
            diffusion=ns(beta_schedule="linear", beta_start=0.0001, beta_end=0.02, num_diffusion_timesteps=NUM_T),
            sampling=ns(batch_size=1),
            time_travel=ns(T_sampling=T, travel_length=L, travel_repeat=r))
        args = ns(seed=1234, deg=deg, deg_scale=deg_scale, sigma_y=sigma_y / 2, eta=ETA, add_noise=add_noise,
                  subset_start=-1, subset_end=-1, image_folder=os.path.join(workdir, "out"), exp="exp")
        self.diff.get_dataset = lambda a, c: (None, [(x01[0], 0)])  # bound by `from datasets import`
        return self.diff.Diffusion(args, config, device=torch.device("cpu"))

    def run_svd_based(self, diffusion, model, workdir, inner=None):
        """Runs the official Diffusion.svd_based_ddnm_plus; `inner(fn, *args, **kw)` wraps the sampler call
        (fn = the official ddnm_diffusion or ddnm_plus_diffusion)."""
        captured = {}
        real = {"ddnm_diffusion": self.diff.ddnm_diffusion, "ddnm_plus_diffusion": self.diff.ddnm_plus_diffusion}

        def wrap(name):
            def f(x, model_, b, eta, A_funcs, y, *rest, **kw):
                captured.update(sampler=name, x_T=x.clone(), A_funcs=A_funcs, y=y.clone(), betas=b, eta=eta,
                                rest=rest)
                if inner is None:
                    return [x], [x]
                xs, x0s = inner(real[name], x, model_, b, eta, A_funcs, y, *rest, **kw)
                captured.update(xs=xs, x0s=x0s)
                return xs, x0s
            return f

        self.inverse_calls.clear()
        self.diff.ddnm_diffusion = wrap("ddnm_diffusion")
        self.diff.ddnm_plus_diffusion = wrap("ddnm_plus_diffusion")
        try:
            with chdir(workdir):
                diffusion.svd_based_ddnm_plus(model, None)
        finally:
            self.diff.ddnm_diffusion = real["ddnm_diffusion"]
            self.diff.ddnm_plus_diffusion = real["ddnm_plus_diffusion"]
        return captured

    def run_simplified(self, diffusion, model, workdir):
        """Runs the official Diffusion.simplified_ddnm_plus; returns the final xs[-1] (as handed to
        inverse_data_transform)."""
        real_pool = torch.nn.AdaptiveAvgPool2d
        size = diffusion.config.data.image_size

        def pool(output_size):  # the official code asks for (256//scale, 256//scale)
            scale = 256 // output_size[0]
            assert output_size == (256 // scale, 256 // scale) and size % scale == 0
            return real_pool((size // scale, size // scale))

        self.inverse_calls.clear()
        torch.nn.AdaptiveAvgPool2d = pool
        try:
            with chdir(workdir):
                diffusion.simplified_ddnm_plus(model, None)
        finally:
            torch.nn.AdaptiveAvgPool2d = real_pool
        calls = self.inverse_calls
        # calls: Apy[0], x_orig[0] (preview images), then each xi of xs[-1], then x_orig[0] again for the PSNR
        assert len(calls) == 4 and torch.equal(calls[1], calls[3]), [c.shape for c in calls]
        return calls[2].unsqueeze(0)


@contextlib.contextmanager
def chdir(path):
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def write_mask(workdir, mask):
    d = os.path.join(workdir, "exp", "inp_masks")
    os.makedirs(d, exist_ok=True)
    np.save(os.path.join(d, "mask.npy"), mask.numpy().astype(np.int64))


# ---------------------------------------------------------------------------------------------------------------
# Noise tape: torch.randn / torch.randn_like hand out pre-drawn tensors in call order


class NoiseTape:
    def __init__(self, tensors):
        self.tensors = list(tensors)
        self.used = 0

    def _next(self, shape):
        assert self.used < len(self.tensors), "sampler drew more noise than prepared"
        t = self.tensors[self.used]
        assert tuple(t.shape) == tuple(shape), (t.shape, shape)
        self.used += 1
        return t.clone()

    @contextlib.contextmanager
    def active(self):
        real_randn, real_like = torch.randn, torch.randn_like

        def randn(*size, **kw):
            if len(size) == 1 and isinstance(size[0], (tuple, list, torch.Size)):
                size = tuple(size[0])
            return self._next(size)

        def randn_like(t, **kw):
            return self._next(t.shape)

        torch.randn, torch.randn_like = randn, randn_like
        try:
            yield self
        finally:
            torch.randn, torch.randn_like = real_randn, real_like


# ---------------------------------------------------------------------------------------------------------------
# Fixed inputs


def make_mask():
    """16x16, 1 = keep; about 40 % missing: a 5x6 hole plus scattered pixels (deterministic)."""
    g = torch.Generator().manual_seed(7)
    m = (torch.rand(S, S, generator=g) >= 0.33).float()
    m[4:9, 9:15] = 0
    return m


def make_x01():
    """Synthetic 16x16 RGB image on the [0, 1] scale (8-bit values /255, like ToTensor): R horizontal ramp,
    G vertical ramp, B a disc; x_gt = 2*x01 - 1 (DDNM's data_transform) lies in [-1, 1]."""
    yy, xx = torch.meshgrid(torch.arange(S, dtype=torch.float64), torch.arange(S, dtype=torch.float64),
                            indexing="ij")
    r = 20 + 215 * xx / (S - 1)
    g = 235 - 200 * yy / (S - 1)
    disc = ((xx - 9.5) ** 2 + (yy - 6.5) ** 2) <= 4.5 ** 2
    b = torch.where(disc, torch.full_like(xx, 230.0), 40 + 60 * (xx + yy) / (2 * (S - 1)))
    img = torch.stack([r, g, b]).round().clamp(0, 255)
    return (img / 255.0).float().unsqueeze(0)


def dct_basis(n):
    """Orthonormal DCT-II basis as columns: V[i, k] = c_k cos(pi (2i+1) k / (2n)), c_0 = sqrt(1/n), else
    sqrt(2/n); computed in float64, rounded to float32."""
    i = torch.arange(n, dtype=torch.float64)[:, None]
    k = torch.arange(n, dtype=torch.float64)[None, :]
    v = torch.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2.0 / n)
    v[:, 0] = math.sqrt(1.0 / n)
    return v.float()


# ---------------------------------------------------------------------------------------------------------------
# operators.safetensors

OPERATORS = [
    # prefix, deg, deg_scale, image size, class
    ("sr2", "sr_averagepooling", 2.0, S, "SuperResolution"),
    ("sr4", "sr_averagepooling", 4.0, S, "SuperResolution"),
    ("color", "colorization", 0.0, S, "Colorization"),
    ("inpaint", "inpainting", 0.0, S, "Inpainting"),
    ("denoise", "denoising", 0.0, S, "Denoising"),
    ("wht", "cs_walshhadamard", 0.25, S, "WalshHadamardCS"),
    ("csblock", "cs_blockbased", 0.25, 32, "CS"),
    ("bicubic2", "sr_bicubic", 2.0, S, "SRConv"),
    ("deblur_uni", "deblur_uni", 0.0, S, "Deblurring"),
    ("deblur_gauss", "deblur_gauss", 0.0, S, "Deblurring"),
    ("deblur_aniso", "deblur_aniso", 0.0, S, "Deblurring2D"),
]

# (a, sigma_y, sigma_t, eta) for Lambda / Lambda_noise; a and sigma_t are 0-d float32 tensors as in
# ddnm_plus_diffusion (a = sqrt(at_next), sigma_t = sqrt(1 - at_next)), sigma_y and eta Python floats.
LAMBDA_ARGS = [
    (0.6, 0.2, 0.8, ETA),                              # mixed branches (sigma_t vs a*sigma_y/s)
    (0.95, 0.5, math.sqrt(1 - 0.95 ** 2), ETA),        # mostly sigma_t < a*sigma_y/s
    (0.7, 0.0, math.sqrt(1 - 0.7 ** 2), ETA),          # sigma_y = 0: the `a != 0 and sigma_y != 0` branch off
]


def build_operator(off, workdir, deg, deg_scale, size):
    torch.manual_seed(1234)  # main.py seeds torch with args.seed (1234) before sampling; WHT's randperm uses it
    x01 = torch.full((1, 3, size, size), 0.5)
    diffusion = off.make_diffusion(workdir, size, x01, deg, deg_scale)
    return off.run_svd_based(diffusion, None, workdir)["A_funcs"]


def make_operators(off, workdir, mask, out):
    tensors = {"inpaint.mask": mask.clone()}
    meta = {}
    gx = torch.Generator().manual_seed(0)
    x16 = torch.randn(1, 3 * S * S, generator=gx)
    gx32 = torch.Generator().manual_seed(0)
    x32 = torch.randn(1, 3 * 32 * 32, generator=gx32)
    gl = torch.Generator().manual_seed(1)
    lam_in = {k: torch.randn(1, 3 * S * S, generator=gl) for k in ("vec", "z", "eps")}
    for k, v in lam_in.items():
        tensors["lambda_inputs." + k] = v
    wht_perm = None
    for prefix, deg, deg_scale, size, cls in OPERATORS:
        A = build_operator(off, workdir, deg, deg_scale, size)
        assert type(A).__name__ == cls, (prefix, type(A).__name__)
        info = {"class": cls, "deg": deg, "deg_scale": deg_scale, "image_size": size, "channels": 3}
        if cls == "CS":
            A.V_small = dct_basis(1024)
            A.Vt_small = A.V_small.transpose(0, 1)
            info["V_small"] = ("replaced after construction by the orthonormal DCT-II basis dct_basis(1024): "
                               "V_small[i,k] = c_k*cos(pi*(2i+1)*k/2048), c_0 = sqrt(1/1024), c_k = sqrt(2/1024); "
                               "Vt_small = V_small^T; not stored")
            info["ctor"] = {"channels": 3, "img_dim": 32, "ratio": deg_scale}
            info["note"] = "img_dim 16 is impossible (y_dim = img_dim // 32 = 0); this operator uses 32x32 inputs"
        gen = torch.Generator().manual_seed(1000 + len(meta))
        x = (x32 if size == 32 else x16).clone()
        n = x.shape[1]
        Ax = A.A(x.clone())
        m = Ax.shape[1]
        r = torch.randn(1, m, generator=gen)
        t = {
            "x": x, "A": Ax, "Apinv": A.A_pinv(Ax.clone()), "Vt": A.Vt(x.clone()), "V": A.V(x.clone()),
            "Ut": A.Ut(Ax.clone()), "r": r, "U": A.U(r.clone()), "singulars": A.singulars().reshape(-1).clone(),
        }
        assert t["singulars"].shape[0] == m, (prefix, t["singulars"].shape, m)
        has_lambda = cls in ("Denoising", "SuperResolution", "Colorization", "Inpainting", "WalshHadamardCS",
                             "Deblurring")
        info["has_lambda"] = has_lambda
        if has_lambda:
            calls = []
            for k, (a, sy, st, eta) in enumerate(LAMBDA_ARGS):
                a_t = torch.tensor(a, dtype=torch.float32)
                st_t = torch.tensor(st, dtype=torch.float32)
                vec, z, eps = lam_in["vec"], lam_in["z"], lam_in["eps"]
                assert vec.shape[1] == n
                t[f"lambda.{k}.args"] = torch.tensor([a_t.item(), sy, st_t.item(), eta], dtype=torch.float32)
                t[f"lambda.{k}.out"] = A.Lambda(vec.clone(), a_t, sy, st_t, eta)
                t[f"lambda_noise.{k}.out"] = A.Lambda_noise(z.clone(), a_t, sy, st_t, eta, eps.clone())
                calls.append({"k": k, "a": a_t.item(), "sigma_y": sy, "sigma_t": st_t.item(), "eta": eta,
                              "lambda": f"{prefix}.lambda.{k}.out = Lambda(lambda_inputs.vec, a, sigma_y, "
                                        "sigma_t, eta)",
                              "lambda_noise": f"{prefix}.lambda_noise.{k}.out = Lambda_noise(lambda_inputs.z, a, "
                                              "sigma_y, sigma_t, eta, lambda_inputs.eps)"})
            info["lambda_calls"] = calls
        # internal tensors of the operator (float32; integer index tensors converted to float)
        state = []
        for name, v in sorted(vars(A).items()):
            if torch.is_tensor(v) and not (cls == "CS" and name in ("V_small", "Vt_small")):
                t["state." + name] = v.detach().float().clone().reshape(v.shape)
                state.append([name, list(v.shape), str(v.dtype).replace("torch.", "")])
            elif isinstance(v, (int, float)) and not isinstance(v, bool):
                info.setdefault("attributes", {})[name] = v
        info["state"] = state
        if cls == "WalshHadamardCS":
            wht_perm = A.perm.clone()
            t["perm"] = A.perm.float()
        kernels = describe_kernels(deg)
        if kernels:
            info["kernels"] = {k: v.tolist() for k, v in kernels.items()}
            for k, v in kernels.items():
                t[k] = v
        for k, v in t.items():
            assert torch.isfinite(v).all(), (prefix, k)
            tensors[f"{prefix}.{k}"] = v.float().contiguous()
        meta[prefix] = info
    path = os.path.join(out, "operators.safetensors")
    layout = (
        "All vectors are the official flattened form [1, N]. Image-domain vectors (x, Apinv, V, Lambda/Lambda_noise "
        "vec/eps/out) are CHW order: index = c*H*W + h*W + w (NCHW image reshaped). A/Ut/U/r/singulars are in each "
        "operator's own range-space order (e.g. SuperResolution: C*(H/s)^2 patch means in CHW order; Inpainting: "
        "kept entries of the pixel-major RGB vector; Colorization: H*W gray pixels; Deblurring/SRConv: pixel-major "
        "(singular-sorted index, channel) interleaved). Vt/V spectral-domain vectors follow the official ordering. "
        "P.state.* are the operator's tensors (vars(A)), integer ones cast to float. inpaint.mask is [16,16], 1 = keep. "
        "lambda_inputs.{vec,z,eps} [1,768] CHW are shared by every operator's Lambda / Lambda_noise calls; "
        "P.lambda.K.args = [a, sigma_y, sigma_t, eta] as float32 (a, sigma_t were 0-d float32 tensors, sigma_y and "
        "eta Python floats).")
    save(path, tensors, {"operators": json.dumps(meta, sort_keys=True), "layout": layout,
                         "lambda_signature": "Lambda(vec, a, sigma_y, sigma_t, eta); "
                                             "Lambda_noise(vec, a, sigma_y, sigma_t, eta, epsilon)"})
    return wht_perm


def describe_kernels(deg):
    """The kernels diffusion.py builds (recomputed here only to store them; the operators above were built by
    the official code). Checked against the operators' A matrices in check_kernels."""
    if deg == "sr_bicubic":
        factor = 2

        def cubic(x, a=-0.5):
            if abs(x) <= 1:
                return (a + 2) * abs(x) ** 3 - (a + 3) * abs(x) ** 2 + 1
            if 1 < abs(x) < 2:
                return a * abs(x) ** 3 - 5 * a * abs(x) ** 2 + 8 * a * abs(x) - 4 * a
            return 0
        k = np.array([cubic((1 / factor) * (i - np.floor(factor * 4 / 2) + 0.5)) for i in range(factor * 4)])
        k = torch.from_numpy(k / np.sum(k)).float()
        return {"kernel": k / k.sum()}
    if deg == "deblur_uni":
        return {"kernel": torch.Tensor([1 / 9] * 9)}
    if deg == "deblur_gauss":
        k = torch.Tensor([math.exp(-0.5 * (v / 10) ** 2) for v in (-2, -1, 0, 1, 2)])
        return {"kernel": k / k.sum()}
    if deg == "deblur_aniso":
        k2 = torch.Tensor([math.exp(-0.5 * (v / 20) ** 2) for v in range(-4, 5)])
        k1 = torch.Tensor([math.exp(-0.5 * (v / 1) ** 2) for v in range(-4, 5)])
        return {"kernel1": k1 / k1.sum(), "kernel2": k2 / k2.sum()}
    return {}


# ---------------------------------------------------------------------------------------------------------------
# Tiny ADM


def tiny_adm_config():
    cfg = dict(mnf.ADM_A)
    cfg["image_size"] = S
    return cfg


def make_model(unet, out):
    cfg = tiny_adm_config()
    torch.manual_seed(5001)
    model = unet.UNetModel(**mnf.adm_kwargs(cfg))
    mnf.randomize(model, 5002)
    model.eval()
    g = torch.Generator().manual_seed(5003)
    probe = torch.randn(4, 3, S, S, generator=g)
    probe_t = torch.tensor([900.0, 500.0, 100.0, 0.0])
    with torch.no_grad():
        std = model(probe, probe_t)[:, :3].std().item()
        scale = 1.0 / std  # make the epsilon channels ~unit standard deviation
        model.out[-1].weight.mul_(scale)
        model.out[-1].bias.mul_(scale)
    mnf.round_to_half(model)
    with torch.no_grad():
        e = model(probe, probe_t)[:, :3]
    print(f"tiny_adm16: eps std {e.std().item():.3f}, max|eps| {e.abs().max().item():.3f} (out conv scaled by "
          f"{scale:.4f})")
    path = os.path.join(out, "tiny_adm16.pt")
    torch.save(mnf.half_state_dict(model), path)
    os.chmod(path, 0o644)
    return model, cfg


class ModelRecorder:
    def __init__(self, model):
        self.model = model
        self.calls = []

    def __call__(self, x, t, *rest):
        assert not rest
        out = self.model(x, t)
        self.calls.append((x.clone(), t.clone(), out[:, :3].clone()))
        return out


# ---------------------------------------------------------------------------------------------------------------
# trajectories.safetensors


def schedule(off, T, L, r):
    times = off.svd.get_schedule_jump(T, L, r)
    assert times == off.diff.get_schedule_jump(T, L, r)
    skip = NUM_T // T
    pairs = []
    for i, j in zip(times[:-1], times[1:]):
        i, j = i * skip, j * skip
        pairs.append((i, -1 if j < 0 else j))
    return pairs


def noise_uses(pairs):
    uses = ["x_T (torch.randn(1,3,H,W) before the loop)"]
    step = 0
    for k, (i, j) in enumerate(pairs):
        if j < i:
            uses.append(f"pair {k} ({i}->{j}): model call {step}, z = torch.randn_like(x0_t)")
            step += 1
        else:
            uses.append(f"pair {k} ({i}->{j}): time-travel renoise of x0_preds[-1], torch.randn_like(x0_t)")
    return uses


CASES = [
    # name, path, deg, deg_scale, sigma_y ([-1,1] scale), T, L, r
    ("svd_sr2", "svd", "sr_averagepooling", 2.0, 0.0, 10, 1, 1),
    ("svd_inpaint", "svd", "inpainting", 0.0, 0.0, 10, 1, 1),
    ("svd_color", "svd", "colorization", 0.0, 0.0, 10, 1, 1),
    ("svd_deblur_gauss", "svd", "deblur_gauss", 0.0, 0.0, 10, 1, 1),
    ("svd_wht", "svd", "cs_walshhadamard", 0.25, 0.0, 10, 1, 1),
    ("svd_sr2_plus", "svd", "sr_averagepooling", 2.0, 0.1, 10, 1, 1),
    ("svd_sr2_travel", "svd", "sr_averagepooling", 2.0, 0.0, 10, 2, 2),
    ("simp_sr2", "simplified", "sr_averagepooling", 2.0, 0.0, 10, 1, 1),
    ("simp_color", "simplified", "colorization", 0.0, 0.0, 10, 1, 1),
    ("simp_inpaint", "simplified", "inpainting", 0.0, 0.0, 10, 1, 1),
    ("simp_sr2_sigma", "simplified", "sr_averagepooling", 2.0, 0.1, 10, 1, 1),
    ("simp_travel", "simplified", "sr_averagepooling", 2.0, 0.0, 10, 2, 2),
    # appended (seeds are 20000 + index, so earlier cases keep their draws): DDNM+ on an SVD form, WHT's own
    # Lambda / Lambda_noise (svd_operators.py:253-300); sigma_y 0.3 puts several steps past the threshold.
    ("svd_wht_plus", "svd", "cs_walshhadamard", 0.25, 0.3, 10, 1, 1),
]


# cases that also store the model outputs CASE.et.K (size budget); together they cover every sampler branch
ET_CASES = ("svd_sr2", "svd_sr2_plus", "svd_sr2_travel", "simp_sr2", "simp_sr2_sigma", "simp_travel", "svd_wht_plus")


def alphas_bar(betas):
    return torch.cat([torch.zeros(1), betas]).neg().add(1).cumprod(0)  # index t+1, as compute_alpha


def replay(path, model, betas, pairs, noise, y, eta, sigma_y, correct, A_funcs=None, A=None, Ap=None):
    """Independent re-implementation of the two loops (used to confirm the noise mapping and to build the
    no-correction baseline). Returns the final xs[-1]."""
    ab = alphas_bar(betas)
    x = noise[0]
    k = 1
    x0_preds = []
    for i, j in pairs:
        at_next = ab[j + 1].view(1, 1, 1, 1)
        z = noise[k]
        k += 1
        if j < i:
            at = ab[i + 1].view(1, 1, 1, 1)
            with torch.no_grad():
                et = model(x, torch.ones(1) * i)[:, :3]
            x0 = (x - et * (1 - at).sqrt()) / at.sqrt()
            x0_preds.append(x0)
            if path == "svd" and sigma_y == 0:
                x0h = x0 - A_funcs.A_pinv(A_funcs.A(x0.reshape(1, -1)) - y.reshape(1, -1)).reshape(*x0.shape) \
                    if correct else x0
                c1 = (1 - at_next).sqrt() * eta
                c2 = (1 - at_next).sqrt() * ((1 - eta ** 2) ** 0.5)
                x = at_next.sqrt() * x0h + c1 * z + c2 * et
            elif path == "svd":
                a, st = at_next.sqrt()[0, 0, 0, 0], (1 - at_next).sqrt()[0, 0, 0, 0]
                x0h = x0
                if correct:
                    x0h = x0 - A_funcs.Lambda(A_funcs.A_pinv(A_funcs.A(x0.reshape(1, -1)) - y.reshape(1, -1))
                                              .reshape(1, -1), a, sigma_y, st, eta).reshape(*x0.shape)
                x = at_next.sqrt() * x0h + A_funcs.Lambda_noise(z.reshape(1, -1), a, sigma_y, st, eta,
                                                                et.reshape(1, -1)).reshape(*x0.shape)
            else:
                sigma_t = (1 - at_next ** 2).sqrt()
                if sigma_t >= at_next * sigma_y:
                    lam, gamma = 1.0, (sigma_t ** 2 - (at_next * sigma_y) ** 2).sqrt()
                else:
                    lam, gamma = sigma_t / (at_next * sigma_y), 0.0
                x0h = x0 - lam * Ap(A(x0) - y) if correct else x0
                c1 = (1 - at_next).sqrt() * eta
                c2 = (1 - at_next).sqrt() * ((1 - eta ** 2) ** 0.5)
                x = at_next.sqrt() * x0h + gamma * (c1 * z + c2 * et)
        else:
            x = at_next.sqrt() * x0_preds[-1] + z * (1 - at_next).sqrt()
    assert k == len(noise)
    return x


def simplified_ops(deg, scale, mask, diff_mod):
    """The simplified path's A / Ap (for the replay check only): same definitions as diffusion.py."""
    if deg == "colorization":
        return diff_mod.color2gray, diff_mod.gray2color
    if deg == "sr_averagepooling":
        s = round(scale)
        return torch.nn.AdaptiveAvgPool2d((S // s, S // s)), (lambda z: diff_mod.MeanUpsample(z, s))
    if deg == "inpainting":
        mk = torch.from_numpy(mask.numpy().astype(np.int64))
        return (lambda z: z * mk), (lambda z: z * mk)
    raise ValueError(deg)


def make_trajectories(off, model, cfg, workdir, mask, wht_perm, out):
    x01 = make_x01()
    x_gt = Official._data_transform(None, x01)
    tensors = {"x_gt": x_gt, "mask": mask.clone()}
    cases = {}
    for ci, (name, path, deg, scale, sigma_y, T, L, r) in enumerate(CASES):
        pairs = schedule(off, T, L, r)
        g = torch.Generator().manual_seed(20000 + ci)
        noise = [torch.randn(1, 3, S, S, generator=g) for _ in range(1 + len(pairs))]
        add_noise = path == "svd" and sigma_y > 0
        # y's noise has y's shape as diffusion.py:538-551 leaves it: [1, 3, 8, 8] for SR, the [1, M] vector for CS
        y_shape = (1, 3 * S * S // round(1 / scale)) if deg.startswith("cs") else (1, 3, S // 2, S // 2)
        pre = [torch.randn(*y_shape, generator=g)] if add_noise else []
        tape = NoiseTape(pre + noise)
        rec = ModelRecorder(model)
        torch.manual_seed(1234)  # as main.py; only WHT's randperm consumes the global RNG
        diffusion = off.make_diffusion(workdir, S, x01, deg, scale, sigma_y, add_noise, T, L, r)
        assert abs(diffusion.args.sigma_y * 2 - sigma_y) == 0
        with tape.active():
            if path == "svd":
                cap = off.run_svd_based(diffusion, rec, workdir, inner=lambda fn, *a, **k: fn(*a, **k))
            else:
                x_final = off.run_simplified(diffusion, rec, workdir)
        assert tape.used == len(tape.tensors), (name, tape.used, len(tape.tensors))
        n_calls = sum(1 for i, j in pairs if j < i)
        assert len(rec.calls) == n_calls, (name, len(rec.calls), n_calls)
        betas = diffusion.betas
        info = {"path": path, "deg": deg, "deg_scale": scale, "sigma_y": sigma_y, "sigma_y_cli": sigma_y / 2,
                "eta": ETA, "T_sampling": T, "travel_length": L, "travel_repeat": r, "skip": NUM_T // T,
                "pairs": [list(p) for p in pairs], "model_calls": n_calls, "noise_draws": len(noise),
                "noise_uses": noise_uses(pairs)}
        if path == "svd":
            assert torch.equal(cap["x_T"], noise[0])
            A_funcs, y = cap["A_funcs"], cap["y"]
            x_final = cap["xs"][0]
            info["sampler"] = cap["sampler"] + " (functions/svd_ddnm.py) via Diffusion.svd_based_ddnm_plus"
            info["operator"] = type(A_funcs).__name__
            info["y_form"] = "official vector [1, M] as passed to the sampler (operator range-space order)"
            assert off.inverse_calls and torch.equal(off.inverse_calls[2], x_final)
            if deg == "cs_walshhadamard":
                assert torch.equal(A_funcs.perm, wht_perm), "WHT permutation differs from operators.safetensors"
                tensors[f"{name}.perm"] = A_funcs.perm.float()
                info["perm"] = f"{name}.perm (same as operators wht.perm; torch.randperm(256) after manual_seed(1234))"
            if add_noise:
                tensors[f"{name}.y_noise"] = pre[0]
                info["y_noise"] = (f"y = A(x_gt) reshaped {list(pre[0].shape)} + sigma_y * {name}.y_noise (official "
                                   "get_gaussian_noisy_img, --add_noise); drawn before x_T, not part of noise.K")
            ref = replay(path, model, betas, pairs, noise, y, ETA, sigma_y, True, A_funcs=A_funcs)
            base = replay(path, model, betas, pairs, noise, y, ETA, sigma_y, False, A_funcs=A_funcs)
            resid = (A_funcs.A(x_final.reshape(1, -1)) - y).abs().max().item()
            resid0 = (A_funcs.A(base.reshape(1, -1)) - y).abs().max().item()
        else:
            A, Ap = simplified_ops(deg, scale, mask, off.diff)
            y = A(x_gt)
            info["sampler"] = "Diffusion.simplified_ddnm_plus (guided_diffusion/diffusion.py), executed verbatim"
            info["operator"] = {"sr_averagepooling": "AdaptiveAvgPool2d(H/s) / MeanUpsample(s)",
                                "colorization": "color2gray (mean, repeated to 3 channels) / gray2color",
                                "inpainting": "z*mask / z*mask"}[deg]
            info["y_form"] = f"image NCHW {list(y.shape)} = A(x_gt) (never noised in the simplified path)"
            ref = replay(path, model, betas, pairs, noise, y, ETA, sigma_y, True, A=A, Ap=Ap)
            base = replay(path, model, betas, pairs, noise, y, ETA, sigma_y, False, A=A, Ap=Ap)
            resid = (A(x_final) - y).abs().max().item()
            resid0 = (A(base) - y).abs().max().item()
        err = (ref - x_final).abs().max().item()
        diff = (base - x_final).abs().max().item()
        assert torch.isfinite(x_final).all()
        assert err <= 1e-4 * max(1.0, x_final.abs().max().item()), (name, "replay mismatch", err)
        assert diff > 1e-2, (name, "output equals the no-correction sampler", diff)
        print(f"{name}: max|x0| {x_final.abs().max().item():.3f}, replay err {err:.2e}, vs no-correction "
              f"{diff:.3f}, |A x0 - y| {resid:.2e} (no-correction {resid0:.2e}), draws {len(noise)}, "
              f"calls {n_calls}")
        info["checks"] = {"max_abs_x0": x_final.abs().max().item(), "replay_max_err": err,
                          "max_diff_vs_no_correction": diff, "max_abs_A_x0_minus_y": resid,
                          "max_abs_A_x0_minus_y_no_correction": resid0}
        tensors[f"{name}.y"] = y
        tensors[f"{name}.x0"] = x_final
        for k, z in enumerate(noise):
            tensors[f"{name}.noise.{k}"] = z
        info["et_stored"] = name in ET_CASES
        for k, (xt, t, et) in enumerate(rec.calls):
            if name in ET_CASES:
                tensors[f"{name}.et.{k}"] = et
            assert t.tolist() == [float([p for p in pairs if p[1] < p[0]][k][0])]
        cases[name] = info
    layout = (
        "Images are NCHW float32 [1,3,16,16] on the [-1,1] scale: x_gt, CASE.noise.K, CASE.et.K, CASE.x0. "
        "x_gt = 2*x01 - 1 with x01 an 8-bit synthetic image /255 (R ramp, G ramp, B disc). "
        "CASE.noise.K: K-th torch.randn/randn_like draw of the run (K = 0 is x_T); see cases[CASE].noise_uses. "
        "CASE.et.K (only cases with et_stored): first 3 channels of the model output at the K-th model call "
        "(t = the i of the K-th downward pair), so a sampler can be replayed without the network. CASE.x0: the sampler's final xs[-1]. "
        "CASE.y: svd path = official vector [1, M]; simplified path = image NCHW. mask: [16,16], 1 = keep. "
        "Betas: float32(linspace(1e-4, 0.02, 1000) in float64); alpha_bar(t) = cumprod(1 - [0, betas])[t+1].")
    save(os.path.join(out, "trajectories.safetensors"), tensors,
         {"cases": json.dumps(cases, sort_keys=True), "model_config": json.dumps(cfg, sort_keys=True),
          "model_file": "tiny_adm16.pt (openai/guided-diffusion UNetModel, float16 state dict)",
          "layout": layout})


# ---------------------------------------------------------------------------------------------------------------


def save(path, tensors, metadata):
    from safetensors.torch import save_file

    save_file({k: v.detach().float().contiguous() for k, v in tensors.items()}, path, metadata=metadata)
    mnf.canonicalize_safetensors_header(path)
    os.chmod(path, 0o644)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ddnm", required=True, help="checkout of wyhuai/DDNM")
    ap.add_argument("--guided-diffusion", required=True, help="checkout of openai/guided-diffusion")
    ap.add_argument("--out", default=DEFAULT_OUT)
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)

    sys.path.insert(0, os.path.abspath(args.guided_diffusion))
    from guided_diffusion import unet  # noqa: E402  (openai/guided-diffusion)

    off = Official(args.ddnm)
    mask = make_mask()
    print(f"mask: {int((mask == 0).sum())} of {S * S} pixels missing")
    with tempfile.TemporaryDirectory() as workdir:
        write_mask(workdir, mask)
        wht_perm = make_operators(off, workdir, mask, out)
        model, cfg = make_model(unet, out)
        make_trajectories(off, model, cfg, workdir, mask, wht_perm, out)
    for f in ("operators.safetensors", "trajectories.safetensors", "tiny_adm16.pt"):
        print(f"{f}: {os.path.getsize(os.path.join(out, f))} bytes")


if __name__ == "__main__":
    main()
