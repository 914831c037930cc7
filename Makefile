# DiffusionRestore — set-up and everyday commands. See README.md.
#
#   make demo    install what is missing, build (release), run each task on the bundled photo
#   make test    install what is missing, build (release, speed flags), run the whole test suite and the browser test
#   make serve   the web page and HTTP API on http://127.0.0.1:8080/ (restore serve)
#   make bench   the engine against PyTorch on CPU, interleaved (needs a PyTorch venv; see README)
#   make build   release build of the `restore` binary only
#   make fuzz    libFuzzer + AddressSanitizer on the checkpoint readers (FUZZ_SECONDS, default 600)
#   make train-prior  train (or resume) our own diffusion prior from ../shared/data/train (PyTorch venv)
#   make train-resshift  train (or resume) our own ResShift ×4 model (PyTorch venv); eval-resshift: its quality
#   make train-diffir  train (or resume) our own DiffIR ×4 model, both stages (PyTorch venv); eval-diffir: its quality
#   make train-rddm  train (or resume) our own RDDM restoration model (noise, blur, JPEG, low light; PyTorch venv); eval-rddm: its quality
#   make train-ldm  train (or resume) our own latent-diffusion ×4 model (pixel-unshuffle first stage; PyTorch + diffusers); eval-ldm: its quality
#   make eval    DDNM quality on the bundled prior vs bicubic / Telea (Benchmarks/QUALITY.md); eval-usdr: HiR ablation
#   make bench-usdr  peak memory of USDR tiling at 256², 4096², 8192² outputs (stand-in ε-network)
#   make mutate  mutation testing: each fault of Tools/mutate/mutations.json must fail its tests (MUTATE_ARGS)

SHELL := /bin/bash
.DEFAULT_GOAL := help

# Debian packages the build needs: oneDNN (convolutions, matmuls), libpng, libjpeg-turbo, libwebp, FFTW (FFT blur
# operators), objdump (tests).
DEB_PACKAGES := libdnnl-dev libpng-dev libjpeg62-turbo-dev libwebp-dev libfftw3-dev binutils
# Speed flags, passed here rather than as unsafeFlags in Package.swift so other packages can depend on
# our libraries. haswell = AVX2 + FMA + F16C: runs on every AVX2 x86-64; oneDNN adds AVX-512 at run time.
SPEED_FLAGS := -Xswiftc -Ounchecked -Xswiftc -target-cpu -Xswiftc haswell -Xcc -march=haswell
RELEASE := swift build -c release $(SPEED_FLAGS)
TEST_FLAGS := -c release $(SPEED_FLAGS) -Xswiftc -enable-testing
BIN := .build/release
PYTHON ?= $(shell for p in "$$TORCH_PYTHON" /work/venv/bin/python venv/bin/python; do [ -x "$$p" ] && echo "$$p" && break; done)

.PHONY: help deps build demo test test-web test-slurm serve bench bench-usdr fuzz clean train-prior train-resshift train-diffir train-rddm train-ldm eval eval-usdr eval-dreamclean eval-resshift eval-diffir eval-rddm eval-ldm mutate

FUZZ_SECONDS ?= 600
FUZZ_FIXTURES := Tests/CheckpointsTests/Fixtures

help:
	@sed -n '3,15p' Makefile | sed 's/^# *//'

deps:
	@missing=""; for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "run as root, or: sudo apt-get install$$missing" >&2; exit 1; fi; \
	fi

build: deps
	$(RELEASE) --product restore

# make demo: one command per task on a bundled 256² photo (Assets/photos/chelsea-256.png, CC0, and its damaged
# copies made by Tools/demo/make_demo_photo.py): ×4 to 1024² (ResShift, bundled model, 4 steps), JPEG q10 blocks
# removed (DreamClean), σ 0.08 noise removed (DDNM+, σ estimated from the photo), holes filled (DDNM), all on
# the bundled models. Steps are cut for a quick first look (--steps 10 / 6; the defaults are 100 / 30): the
# whole demo runs in about two minutes on 2 cores after the build. Writes demo-out/ and prints one line per
# output (size, consistency, evaluations, time); --json would print the full reports.
DEMO := Assets/photos/chelsea-256
demo: build
	@mkdir -p demo-out
	$(BIN)/restore upscale -i $(DEMO).png -o demo-out/chelsea-x4.png --overwrite
	$(BIN)/restore resshift -i $(DEMO).png -o demo-out/chelsea-x4-resshift.png --overwrite
	$(BIN)/restore dejpeg -i $(DEMO)-q10.jpg -o demo-out/chelsea-dejpeg.png --steps 6 --overwrite
	$(BIN)/restore denoise -i $(DEMO)-noisy.png -o demo-out/chelsea-denoised.png --steps 10 --overwrite
	$(BIN)/restore inpaint -i $(DEMO)-holes.png --mask $(DEMO)-holes-mask.png -o demo-out/chelsea-inpainted.png --steps 10 --overwrite
	@echo "== demo-out/: chelsea-x4.png (DiffIR) and chelsea-x4-resshift.png (ResShift), ×4 of $(DEMO).png, chelsea-dejpeg.png (from $(DEMO)-q10.jpg),"
	@echo "== chelsea-denoised.png (from $(DEMO)-noisy.png), chelsea-inpainted.png (from $(DEMO)-holes.png). Photo: CC0 (Assets/photos/README.md)."

test: deps
	swift build --build-tests $(TEST_FLAGS)
	RESTORE_EXPECT_SPEED_FLAGS=1 swift test --skip-build $(TEST_FLAGS)
	$(MAKE) test-web
	$(MAKE) test-slurm

# The batch contract on a real one-node Slurm (Tests/slurm/slurm_test.sh): installs Debian's slurmctld, slurmd,
# slurm-client and munge when missing, starts the daemons on a private configuration and stops them by their
# process ids; runs the test build's restore binary.
test-slurm: deps
	swift build $(TEST_FLAGS) --product restore
	RESTORE=$$(swift build $(TEST_FLAGS) --show-bin-path)/restore bash Tests/slurm/slurm_test.sh

# The web page in a real browser (Tests/web/browser_test.py): Debian's chromium + chromium-driver, Selenium
# from PyPI in .build/web-venv; the test starts `restore serve` on 127.0.0.1 and stops it by its process id.
# Uses the binary of the test build (same flags: no second build of the tree).
WEB_PACKAGES := chromium chromium-driver python3-venv
WEB_VENV := .build/web-venv
test-web: deps
	@missing=""; for p in $(WEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "run as root, or: sudo apt-get install$$missing" >&2; exit 1; fi; \
	fi
	@[ -x $(WEB_VENV)/bin/python ] || python3 -m venv $(WEB_VENV)
	@$(WEB_VENV)/bin/python -c "import selenium" 2>/dev/null || $(WEB_VENV)/bin/pip install -q selenium
	swift build $(TEST_FLAGS) --product restore && swift build $(TEST_FLAGS) --product restore-serve
	$(WEB_VENV)/bin/python Tests/web/browser_test.py

# The service and its page on http://127.0.0.1:8080/ (Ctrl-C stops it). `restore serve` runs the
# restore-serve binary built beside restore (the service's SwiftNIO stack stays out of the CLI's build).
serve: build
	$(RELEASE) --product restore-serve
	$(BIN)/restore serve

bench: deps
	$(RELEASE) --product engine-bench
	@if [ -z "$(PYTHON)" ]; then echo "PyTorch not found: python3 -m venv /work/venv && /work/venv/bin/pip install torch numpy (outside the repository); printing our times only"; fi
	python3 Tools/bench/bench.py --engine $(BIN)/engine-bench $(if $(PYTHON),--python $(PYTHON)) --pairs 11 --reps 5 --markdown Benchmarks/engine-ops.md

# Seeds come from the committed corpus; new inputs collect in .build/fuzz-corpus; a crash is copied to
# $(FUZZ_FIXTURES)/fuzz-crashes/, which the test suite replays through the normal reader.
fuzz: deps
	swift build -c release --scratch-path .build/fuzz --product checkpoint-fuzz -Xswiftc -sanitize=fuzzer,address -Xswiftc -DFUZZING -Xcc -fsanitize=address
	@mkdir -p .build/fuzz-corpus .build/fuzz-artifacts $(FUZZ_FIXTURES)/fuzz-crashes
	.build/fuzz/release/checkpoint-fuzz .build/fuzz-corpus $(FUZZ_FIXTURES)/fuzz-seeds -max_total_time=$(FUZZ_SECONDS) \
	  -max_len=262144 -rss_limit_mb=4096 -timeout=10 -print_final_stats=1 -artifact_prefix=.build/fuzz-artifacts/ ; \
	status=$$?; for f in .build/fuzz-artifacts/*; do [ -e "$$f" ] && cp "$$f" $(FUZZ_FIXTURES)/fuzz-crashes/; done; exit $$status

# make bench-usdr: peak memory of USDR tiling at 256², 4096² and 8192² outputs with a stand-in ε-network
# (Tools/bench/usdr_memory.py; standard-library Python, /usr/bin/time from the `time` package).
bench-usdr: build
	@command -v /usr/bin/time >/dev/null || { echo "bench-usdr needs /usr/bin/time: apt-get install time" >&2; exit 1; }
	python3 Tools/bench/usdr_memory.py --binary $(BIN)/restore

clean:
	rm -rf .build demo-out

# make mutate: mutation testing (Tools/mutate/README.md). Each mutation of Tools/mutate/mutations.json is applied to a
# scratch copy of the package (.build-mutate/src, its own incremental release build with the test flags), the tests of
# its filter run, and the file restored; prints killed / survived per mutation and exits non-zero unless all are
# killed. MUTATE_ARGS e.g. "--only methods-ddnm-plus-svd-form-sign", "--module Methods", "--list", "--timeout 600".
MUTATE_ARGS ?=
mutate: deps
	python3 Tools/mutate/mutate.py $(MUTATE_ARGS)

# make train-prior: train the unconditional ADM ε-prior from ../shared/data/train (Tools/train/README.md),
# seeds fixed; resumes from .cache/train-prior/last.pt; exports Models/adm64-prior.{safetensors,json} and the
# loss curve. Pass flags through TRAIN_ARGS, e.g. make train-prior TRAIN_ARGS="--minutes 60".
# Every trainer runs under nice -n 10 with TRAIN_THREADS threads (default: all cores), resumes from its last
# checkpoint, and pauses at its next step while .cache/train-<name>/PAUSE exists (touch it before benchmarks).
TRAIN_ARGS ?=
TRAIN_THREADS ?= $(shell nproc)
# A trainer under nice with TRAIN_THREADS threads, from a Python that has the modules $(1) (space-separated);
# $(2) is what to pip-install otherwise, $(3) the script in Tools/train; $(4), optional, a pinned package NAME==VERSION
# checked by its installed version (not imported) and installed with --no-deps.
comma := ,
space := $(subst ,, )
define train_python
@py="$(PYTHON)"; \
	if [ -z "$$py" ] || ! "$$py" -c 'import $(subst $(space),$(comma),$(strip $(1)))$(if $(4),; import importlib.metadata as m; assert m.version("$(word 1,$(subst ==, ,$(4)))") == "$(word 2,$(subst ==, ,$(4)))")' >/dev/null 2>&1; then \
	  echo "$@ needs a Python with $(2)$(if $(4), and $(4)) (matplotlib for the plot):" >&2; \
	  echo "  python3 -m venv venv && venv/bin/pip install $(2) matplotlib$(if $(4), && venv/bin/pip install --no-deps $(4))" >&2; \
	  echo "  (or point TORCH_PYTHON at such a Python; looked at: \$$TORCH_PYTHON, /work/venv/bin/python, venv/bin/python)" >&2; \
	  exit 1; \
	fi; \
	nice -n 10 "$$py" Tools/train/$(3) --threads $(TRAIN_THREADS) $(TRAIN_ARGS)
endef

train-prior:
	$(call train_python,torch numpy PIL safetensors guided_diffusion.unet,torch numpy pillow safetensors guided-diffusion-sdk,train_prior.py)

# make train-resshift: train our own ResShift ×4 model (pixel space through pixel-unshuffle ×4, 4 steps) from
# ../shared/data/train with our Real-ESRGAN-style degradations (Tools/train/train_resshift.py); resumes from
# .cache/train-resshift/last.pt; exports Models/resshift-x4-own.{safetensors,md} and the curve at the end of
# each uninterrupted chunk. TRAIN_ARGS as for train-prior, e.g. TRAIN_ARGS="--minutes 60".
train-resshift:
	$(call train_python,torch numpy PIL,torch numpy pillow,train_resshift.py)

# make train-diffir: train our own DiffIR ×4 model (stage 1: CPEN_S1 + DIRformer; stage 2: CPEN_S2 + the IPR
# diffusion, then jointly) from ../shared/data/train (Tools/train/train_diffir.py); under nice, TRAIN_THREADS
# threads (default: all cores); resumes from .cache/train-diffir/last.pt; `touch .cache/train-diffir/PAUSE` pauses
# it at the next step (remove the file to go on); exports Models/diffir-x4-own.{safetensors,md} and the curve.
train-diffir:
	$(call train_python,torch numpy PIL safetensors,torch numpy pillow safetensors,train_diffir.py)

# make train-rddm: train our own RDDM restoration model (RDDM's UnetRes with one lucidrains UNet, pred_res,
# sum_scale 0.01) on ../shared/data/train with one of six degradations per crop (Tools/train/train_rddm.py); the
# network is denoising-diffusion-pytorch 0.31.1's Unet (installed --no-deps: the Unet needs only einops). Under nice,
# TRAIN_THREADS threads; resumes from .cache/train-rddm/last.pt; `touch .cache/train-rddm/PAUSE` pauses it at the
# next step; exports Models/rddm-own.{safetensors,md} and the curve at the end of each uninterrupted chunk.
train-rddm:
	$(call train_python,torch numpy PIL cv2 einops safetensors,torch numpy pillow opencv-python-headless einops safetensors,train_rddm.py,denoising-diffusion-pytorch==0.31.1)

# make train-ldm: train our own latent-diffusion ×4 SR model (bsr_sr's form: LR concatenated to the latent, LDM's
# linear schedule; the x0 target by default) over a lossless pixel-unshuffle ×4 first stage, the UNet being diffusers' UNet2DModel
# (Tools/train/train_ldm.py). Under nice, TRAIN_THREADS threads; resumes from .cache/train-ldm/last.pt; `touch
# .cache/train-ldm/PAUSE` pauses it; exports Models/ldm-x4-own.{safetensors,md} and the curve at the end of each
# uninterrupted chunk.
train-ldm:
	$(call train_python,torch numpy PIL safetensors diffusers,torch numpy pillow safetensors diffusers,train_ldm.py)

# The evaluations run the release binary from a Python with numpy, OpenCV and scikit-image (baselines, metrics).
define eval_python
@py="$(PYTHON)"; \
	if [ -z "$$py" ] || ! "$$py" -c 'import numpy, cv2, skimage' >/dev/null 2>&1; then \
	  echo "$@ needs a Python with numpy, opencv-python-headless and scikit-image:" >&2; \
	  echo "  python3 -m venv venv && venv/bin/pip install numpy opencv-python-headless scikit-image" >&2; \
	  exit 1; \
	fi; \
	"$$py" $(1) --binary $(BIN)/restore $(EVAL_ARGS)
endef

# make eval: DDNM quality on our own prior (Tools/eval/eval_prior.py): ×4 SR vs bicubic and inpainting vs
# OpenCV Telea on 12 crops of scikit-image's CC0 photos; writes Benchmarks/QUALITY.md and
# Benchmarks/quality-prior.csv. Needs a Python with numpy, opencv-python-headless and scikit-image.
EVAL_ARGS ?=
eval: build
	$(call eval_python,Tools/eval/eval_prior.py)

# make eval-usdr: USDR ablation (HiR on/off, hq_demo's hard overlap, naive tiles; PSNR and seam ratio) for colorization and inpainting at 128²
# (Tools/eval/usdr_ablation.py); appends its section to Benchmarks/QUALITY.md.
eval-usdr: build
	$(call eval_python,Tools/eval/usdr_ablation.py)

# make eval-dreamclean: DreamClean vs degraded inputs and classical methods (JPEG q10/q20, noise, ×4 SR + noise)
# on the bundled prior (Tools/eval/eval_dreamclean.py); appends its section to Benchmarks/QUALITY.md.
eval-dreamclean: build
	$(call eval_python,Tools/eval/eval_dreamclean.py)

# make eval-resshift: our ResShift ×4 model vs bicubic and vs DDNM ×4 on our prior, 12 crops of 128²
# (Tools/eval/eval_resshift.py); writes its section of Benchmarks/QUALITY.md and Benchmarks/quality-resshift.csv.
eval-resshift: build
	$(call eval_python,Tools/eval/eval_resshift.py)

# make eval-diffir: our DiffIR ×4 model vs bicubic, our ResShift and DDNM ×4 (12 crops of 128², Y-PSNR / PSNR / SSIM),
# and DIRformer's tiles against the whole image on the four photos at native size (Tools/eval/eval_diffir.py);
# writes its section of Benchmarks/QUALITY.md and Benchmarks/quality-diffir.csv. Needs /usr/bin/time.
eval-diffir: build
	$(call eval_python,Tools/eval/eval_diffir.py)

# make eval-rddm: our RDDM model (restore rddm, Models/rddm-own.safetensors unless EVAL_ARGS="--model FILE") on six
# same-size degradations (noise, Poisson, defocus, motion, JPEG, low light; 12 crops of 128²) vs the degraded input,
# classical methods (NL-means, Wiener with the true kernel, TV, the true inverse tone curve) and DreamClean
# (Tools/eval/eval_rddm.py); writes its section of Benchmarks/QUALITY.md, Benchmarks/quality-rddm.csv and -grid.png.
eval-rddm: build
	$(call eval_python,Tools/eval/eval_rddm.py)

# make eval-ldm: our LDM ×4 model (restore ldm, Models/ldm-x4-own.safetensors unless EVAL_ARGS="--model FILE") vs bicubic
# on 12 crops of 128², clean bicubic:4 and realistic LR (Tools/eval/eval_ldm.py); writes its section of
# Benchmarks/QUALITY.md and Benchmarks/quality-ldm.csv.
eval-ldm: build
	$(call eval_python,Tools/eval/eval_ldm.py)
