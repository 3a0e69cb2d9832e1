"""deepret.convolve2d and deepret.conv2d against their peers, one
pytest-benchmark group per case.

convolve2d: a 2048x2048 float32 image, square kernels 3, 7, 15, mode "same",
against scipy.signal.convolve2d, scipy.ndimage.convolve, cv2.filter2D (the
flipped kernel, BORDER_CONSTANT: the same output) and scipy.signal.fftconvolve.
Every contender is checked against scipy.signal.convolve2d before timing;
flops = 2 * H * W * k * k for all of them.

conv2d: the classic CNN layers of issue #3 (LeNet, AlexNet, VGG16) and the
distinct layers of MobileNetV2 and EfficientNet-Lite0 at 224x224 (issue #14:
stem, depthwise 3x3/5x5 at stride 1 and 2, pointwise expand/project down to
7x7) at N = 1 and N = 8, float32, against torch.nn.functional.conv2d (oneDNN
on the CPU; skipped without torch) with the same thread count
(torch.set_num_threads), checked against torch in float64 before timing;
flops = 2 * N * O * C/groups * kH * kW * oH * oW, bytes = the compulsory
float32 traffic. A numpy copy of an L3-sized array gives the bandwidth the
report sets the memory-bound layers against.

Every contender gets the same thread count (DEEPRET_THREADS); the report
(bench/report_conv2d.py) reads `kind`, `contender` and `flops` from extra_info.
GPU cases (marker ``gpu``) compare with cupyx.scipy.signal.convolve2d and, where
torch sees the GPU, cuDNN.
"""

from __future__ import annotations

import functools
import os

import numpy as np
import pytest

import deepret
from bench_convolve import DEEPRET_THREADS, _synchronized, _torch
from benchlib import run_timed

IMAGE = 2048
KERNELS = (3, 7, 15)
TOLERANCE = {"direct": 1e-4, "fft": 1e-3}

# name: (C, H, W, O, k, stride, padding, groups). The classic list of issue #3.
CLASSIC_LAYERS = {
    "LeNet conv1": (1, 32, 32, 6, 5, 1, 0, 1),
    "LeNet conv2": (6, 14, 14, 16, 5, 1, 0, 1),
    "AlexNet conv1": (3, 227, 227, 96, 11, 4, 0, 1),
    "AlexNet conv2": (96, 27, 27, 256, 5, 1, 2, 2),
    "VGG16 conv1_2": (64, 224, 224, 64, 3, 1, 1, 1),
    "VGG16 conv3": (256, 56, 56, 256, 3, 1, 1, 1),
    "VGG16 conv4": (512, 28, 28, 512, 3, 1, 1, 1),
    "depthwise 3x3": (144, 56, 56, 144, 3, 1, 1, 144),
}

# Inverted-residual blocks as published, (expansion t, kernel k, output
# channels c, repeats n, first stride s): MobileNetV2 (Sandler et al. 2018,
# table 2) and EfficientNet-Lite0 (EfficientNet-B0's blocks without
# squeeze-excitation; stem and head as B0's). Both: a 3x3 stride-2 stem
# 3 -> 32 at 224x224, a 1x1 head 320 -> 1280 at 7x7.
NETWORK_BLOCKS = {
    "MobileNetV2": [(1, 3, 16, 1, 1), (6, 3, 24, 2, 2), (6, 3, 32, 3, 2), (6, 3, 64, 4, 2),
                    (6, 3, 96, 3, 1), (6, 3, 160, 3, 2), (6, 3, 320, 1, 1)],
    "EfficientNet-Lite0": [(1, 3, 16, 1, 1), (6, 3, 24, 2, 2), (6, 5, 40, 2, 2), (6, 3, 80, 3, 2),
                           (6, 5, 112, 3, 1), (6, 5, 192, 4, 2), (6, 3, 320, 1, 1)],
}


def network_layers(blocks, image=224, stem=32, head=1280):
    """The distinct conv layers of a network, in order: {shape: name}. Padding
    k // 2 (torch's implementations); a repeated block's layers appear once."""
    layers = {(3, image, image, stem, 3, 2, 1, 1): f"stem 3>{stem} 3x3 s2 @{image}"}
    cin, size = stem, image // 2
    for t, k, cout, repeats, first_stride in blocks:
        for i in range(repeats):
            stride, hidden = (first_stride if i == 0 else 1), cin * t
            if t != 1:
                layers.setdefault((cin, size, size, hidden, 1, 1, 0, 1), f"expand 1x1 {cin}>{hidden} @{size}")
            layers.setdefault((hidden, size, size, hidden, k, stride, k // 2, hidden),
                              f"dw {k}x{k} s{stride} {hidden} @{size}")
            size //= stride
            layers.setdefault((hidden, size, size, cout, 1, 1, 0, 1), f"project 1x1 {hidden}>{cout} @{size}")
            cin = cout
    layers.setdefault((cin, size, size, head, 1, 1, 0, 1), f"head 1x1 {cin}>{head} @{size}")
    return layers


# Each shape is timed once; NETWORKS lists the layer names of each network
# (the shapes both networks share appear in both lists).
MOBILE_LAYERS, NETWORKS = {}, {}
for _net, _blocks in NETWORK_BLOCKS.items():
    NETWORKS[_net] = []
    for _shape, _name in network_layers(_blocks).items():
        _known = next((n for n, s in MOBILE_LAYERS.items() if s == _shape), None)
        if _known is None:
            _known = _name
            MOBILE_LAYERS[_known] = _shape
        NETWORKS[_net].append(_known)

LAYERS = {**CLASSIC_LAYERS, **MOBILE_LAYERS}
BATCHES = (1, 8)


def layer_family(name: str) -> str:
    """"classic" (issue #3's targets) or "mobile" (issue #14's)."""
    return "classic" if name in CLASSIC_LAYERS else "mobile"


def layer_bytes(name: str, n: int) -> int:
    """The compulsory float32 traffic: input, weight, bias read once, output written once."""
    c, h, w, o, k, stride, padding, groups = LAYERS[name]
    oh, ow = (h + 2 * padding - k) // stride + 1, (w + 2 * padding - k) // stride + 1
    return 4 * (n * c * h * w + o * (c // groups) * k * k + o + n * o * oh * ow)


# ---------------------------------------------------------------- convolve2d
@functools.lru_cache(maxsize=None)
def image_data(k: int):
    rng = np.random.default_rng([IMAGE, k])
    image = rng.standard_normal((IMAGE, IMAGE)).astype(np.float32)
    kernel = rng.standard_normal((k, k)).astype(np.float32)
    image.flags.writeable = kernel.flags.writeable = False
    return image, kernel


@functools.lru_cache(maxsize=None)
def image_reference(k: int):
    """scipy.signal.convolve2d's result and the error scale max(|image| conv |kernel|)."""
    from scipy.signal import convolve2d, fftconvolve

    image, kernel = image_data(k)
    reference = convolve2d(image, kernel, "same")
    scale = float(fftconvolve(np.abs(image.astype(np.float64)), np.abs(kernel.astype(np.float64)),
                              "same").max())
    return reference, scale


def image_check(k, method):
    def check(result):
        reference, scale = image_reference(k)
        result = np.asarray(result)
        assert result.shape == reference.shape and result.dtype == reference.dtype
        error = float(np.abs(result.astype(np.float64) - reference).max() / scale)
        assert error <= TOLERANCE[method], f"relative error {error:.2e} ({method}, k={k})"
        return error
    return check


def _c_deepret(image, kernel):
    out = np.empty_like(image)
    return lambda: deepret.convolve2d(image, kernel, "same", out=out)


def _c_deepret_one(image, kernel):
    out = np.empty_like(image)
    return lambda: deepret.convolve2d(image, kernel, "same", out=out, num_threads=1)


def _c_scipy(image, kernel):
    from scipy.signal import convolve2d
    return lambda: convolve2d(image, kernel, "same")


def _c_ndimage(image, kernel):
    from scipy.ndimage import convolve
    out = np.empty_like(image)
    return lambda: convolve(image, kernel, output=out, mode="constant", cval=0.0)


def _c_cv2(image, kernel):
    cv2 = pytest.importorskip("cv2")
    cv2.setNumThreads(DEEPRET_THREADS)
    flipped = np.ascontiguousarray(kernel[::-1, ::-1])
    out = np.empty_like(image)
    return lambda: cv2.filter2D(image, -1, flipped, dst=out, borderType=cv2.BORDER_CONSTANT)


def _c_fft(image, kernel):
    from scipy.signal import fftconvolve
    return lambda: fftconvolve(image, kernel, "same")


IMAGE_CONTENDERS = {
    "deepret": ("direct", DEEPRET_THREADS, _c_deepret),
    "deepret 1 thread": ("direct", 1, _c_deepret_one),
    "cv2.filter2D": ("direct", DEEPRET_THREADS, _c_cv2),
    "scipy.ndimage.convolve": ("direct", 1, _c_ndimage),
    "scipy.signal.convolve2d": ("direct", 1, _c_scipy),
    "scipy.signal.fftconvolve": ("fft", 1, _c_fft),
}


@pytest.mark.parametrize("contender", list(IMAGE_CONTENDERS))
@pytest.mark.parametrize("k", KERNELS, ids=lambda k: f"k{k}")
def test_convolve2d(benchmark, k, contender):
    method, threads, factory = IMAGE_CONTENDERS[contender]
    image, kernel = image_data(k)
    benchmark.group = f"convolve2d same {IMAGE}x{IMAGE} k={k}x{k} float32"
    run_timed(benchmark, factory(image, kernel), check=image_check(k, method),
              contender=contender, ours=contender == "deepret", device="cpu", kind="convolve2d",
              n=IMAGE, k=k, dtype="float32", mode="same", flops=2 * IMAGE * IMAGE * k * k,
              threads=threads)


# -------------------------------------------------------------------- conv2d
@functools.lru_cache(maxsize=None)
def layer_data(name: str, n: int):
    c, h, w, o, k, stride, padding, groups = LAYERS[name]
    rng = np.random.default_rng([n, c, h, o, k])
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    weight = (rng.standard_normal((o, c // groups, k, k)) / np.sqrt(c // groups * k * k)).astype(np.float32)
    bias = rng.standard_normal(o).astype(np.float32)
    for a in (x, weight, bias):
        a.flags.writeable = False
    return x, weight, bias


def layer_flops(name: str, n: int) -> int:
    c, h, w, o, k, stride, padding, groups = LAYERS[name]
    oh, ow = (h + 2 * padding - k) // stride + 1, (w + 2 * padding - k) // stride + 1
    return 2 * n * o * (c // groups) * k * k * oh * ow


@functools.lru_cache(maxsize=None)
def layer_reference(name: str, n: int):
    torch = _torch()
    c, h, w, o, k, stride, padding, groups = LAYERS[name]
    x, weight, bias = layer_data(name, n)
    t = lambda a: torch.from_numpy(a.astype(np.float64))
    with torch.no_grad():
        return torch.nn.functional.conv2d(t(x), t(weight), t(bias), stride, padding, 1, groups).numpy()


def layer_check(name, n):
    def check(result):
        reference = layer_reference(name, n)
        result = np.asarray(result)
        assert result.shape == reference.shape and result.dtype == np.float32
        error = float(np.abs(result.astype(np.float64) - reference).max() / np.abs(reference).max())
        assert error < 1e-5, f"relative error {error:.2e} ({name}, N={n})"
        return error
    return check


def _l_deepret(name, n, x, weight, bias):
    c, h, w, o, k, stride, padding, groups = LAYERS[name]
    out = np.empty(layer_reference(name, n).shape, np.float32)
    return lambda: deepret.conv2d(x, weight, bias, stride, padding, 1, groups, out=out)


def _l_deepret_one(name, n, x, weight, bias):
    c, h, w, o, k, stride, padding, groups = LAYERS[name]
    out = np.empty(layer_reference(name, n).shape, np.float32)
    return lambda: deepret.conv2d(x, weight, bias, stride, padding, 1, groups, out=out, num_threads=1)


def _l_torch(name, n, x, weight, bias, threads=DEEPRET_THREADS):
    torch = _torch()
    if torch is None:
        pytest.skip("torch is not installed")
    torch.set_num_threads(threads)
    c, h, w, o, k, stride, padding, groups = LAYERS[name]
    tx, tw, tb = (torch.from_numpy(np.array(a)) for a in (x, weight, bias))

    def call():
        with torch.no_grad():
            return torch.nn.functional.conv2d(tx, tw, tb, stride, padding, 1, groups).numpy()
    return call


def _l_torch_one(name, n, x, weight, bias):
    return _l_torch(name, n, x, weight, bias, threads=1)


# The 1-thread pair is not a peer comparison of its own: it shows the kernels'
# speed without threading, which a busy machine disturbs far less.
LAYER_CONTENDERS = {"deepret": (_l_deepret, DEEPRET_THREADS), "torch (oneDNN)": (_l_torch, DEEPRET_THREADS),
                    "deepret 1 thread": (_l_deepret_one, 1), "torch 1 thread": (_l_torch_one, 1)}


@pytest.mark.parametrize("contender", list(LAYER_CONTENDERS))
@pytest.mark.parametrize("n", BATCHES, ids=lambda n: f"N{n}")
@pytest.mark.parametrize("layer", list(LAYERS))
def test_conv2d(benchmark, layer, n, contender):
    if _torch() is None:
        pytest.skip("torch is not installed: no reference for conv2d")
    if benchmark.disabled and layer_family(layer) == "mobile" and (n != 1 or contender not in ("deepret", "torch (oneDNN)")):
        # The smoke run (CI) checks every mobile layer once, at N = 1; the timed run does the rest.
        pytest.skip("smoke run: mobile layers at N = 1, deepret and torch only")
    x, weight, bias = layer_data(layer, n)
    benchmark.group = f"conv2d {layer} N={n} float32"
    factory, threads = LAYER_CONTENDERS[contender]
    try:
        run_timed(benchmark, factory(layer, n, x, weight, bias),
                  check=layer_check(layer, n), contender=contender, ours=contender == "deepret",
                  device="cpu", kind="conv2d", layer=layer, n=n, dtype="float32",
                  flops=layer_flops(layer, n), bytes=layer_bytes(layer, n), threads=threads,
                  family=layer_family(layer),
                  networks=[net for net, names in NETWORKS.items() if layer in names],
                  shape=list(LAYERS[layer]))
    finally:
        if _torch() is not None:
            _torch().set_num_threads(DEEPRET_THREADS)


COPY_BYTES = 8 << 20  # in L3 (32 MiB on the Zen 3 this was tuned on), like the layers' data


def test_conv2d_copy_bandwidth(benchmark):
    """The bandwidth a memory-bound layer can hope for: numpy copying an
    array about the size of the larger layers' data (read + write counted)."""
    source = np.ones(COPY_BYTES // 4, np.float32)
    target = np.empty_like(source)

    def check(_):
        assert target[0] == target[-1] == 1.0
        return 0.0
    benchmark.group = f"conv2d memory bandwidth: numpy copy {COPY_BYTES >> 20} MiB"
    run_timed(benchmark, lambda: np.copyto(target, source), check=check, contender="numpy copyto",
              ours=False, device="cpu", kind="conv2d-copy", bytes=2 * COPY_BYTES, threads=1)


# ----------------------------------------------------------------------- GPU
@pytest.mark.gpu
@pytest.mark.parametrize("contender", ["deepret", "cupyx.scipy.signal.convolve2d"])
@pytest.mark.parametrize("k", KERNELS, ids=lambda k: f"k{k}")
def test_gpu_convolve2d(benchmark, cupy_device, k, contender):
    cp, gpu_name = cupy_device
    host_image, host_kernel = image_data(k)
    image, kernel = cp.asarray(host_image), cp.asarray(host_kernel)
    if contender == "deepret":
        out = cp.empty_like(image)
        call = lambda: deepret.convolve2d(image, kernel, "same", out=out)
    else:
        signal = pytest.importorskip("cupyx.scipy.signal")
        call = lambda: signal.convolve2d(image, kernel, "same")
    benchmark.group = f"gpu convolve2d same {IMAGE}x{IMAGE} k={k}x{k} float32"
    check = image_check(k, "direct")
    run_timed(benchmark, _synchronized(cp, call), check=lambda r: check(cp.asnumpy(r)),
              contender=contender, ours=contender == "deepret", device="gpu", gpu_name=gpu_name,
              kind="convolve2d", n=IMAGE, k=k, dtype="float32", mode="same",
              flops=2 * IMAGE * IMAGE * k * k)


@pytest.mark.gpu
@pytest.mark.parametrize("contender", ["deepret", "torch (cuDNN)"])
@pytest.mark.parametrize("n", BATCHES, ids=lambda n: f"N{n}")
@pytest.mark.parametrize("layer", list(CLASSIC_LAYERS))
def test_gpu_conv2d(benchmark, cupy_device, layer, n, contender):
    cp, gpu_name = cupy_device
    c, h, w, o, k, stride, padding, groups = LAYERS[layer]
    host = layer_data(layer, n)
    if contender == "deepret":
        x, weight, bias = (cp.asarray(a) for a in host)
        call = lambda: deepret.conv2d(x, weight, bias, stride, padding, 1, groups)
        to_host = cp.asnumpy
    else:
        torch = _torch()
        if torch is None or not torch.cuda.is_available():
            pytest.skip("torch with CUDA is not installed")
        tx, tw, tb = (torch.from_numpy(np.array(a)).cuda() for a in host)
        torch.backends.cudnn.allow_tf32 = False  # TF32 would not be float32 accuracy
        call = lambda: torch.nn.functional.conv2d(tx, tw, tb, stride, padding, 1, groups)
        to_host = lambda r: r.cpu().numpy()
    # Without torch there is no float64 reference: check deepret against a float64 cupy-free
    # direct sum only where torch exists, else against itself in float64 on the GPU.
    if _torch() is not None:
        check = layer_check(layer, n)
    else:
        def check(result):
            ref = deepret.conv2d(*(cp.asarray(a.astype(np.float64)) for a in host), stride, padding, 1, groups)
            ref = cp.asnumpy(ref)
            return float(np.abs(result - ref).max() / np.abs(ref).max())
    benchmark.group = f"gpu conv2d {layer} N={n} float32"
    run_timed(benchmark, _synchronized(cp, call), check=lambda r: check(to_host(r)),
              contender=contender, ours=contender == "deepret", device="gpu", gpu_name=gpu_name,
              kind="conv2d", layer=layer, n=n, dtype="float32", flops=layer_flops(layer, n),
              cudnn_tf32="off")
