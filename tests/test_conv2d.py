"""deepret.conv2d against torch.nn.functional.conv2d (skipped without torch)
and a float64 reference: every option on seeded random shapes, odd and prime
sizes, non-contiguous inputs, and torch's errors as ValueError/TypeError."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import deepret
from _helpers import to_numpy

try:
    import torch
    F = torch.nn.functional
    # The references are small: one thread spares them OpenMP's wake-ups,
    # which on a busy machine cost a scheduler tick per call.
    torch.set_num_threads(1)
except ImportError:  # torch is no dependency: its cases skip
    torch = F = None
needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed")


def numpy_conv2d(x, w, b, stride, padding, dilation, groups):
    """The obvious float64 conv2d (int/pair padding): one tap at a time."""
    sh, sw = (stride, stride) if np.isscalar(stride) else stride
    ph, pw = (padding, padding) if np.isscalar(padding) else padding
    dh, dw = (dilation, dilation) if np.isscalar(dilation) else dilation
    x = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    oh, ow = (h - dh * (kh - 1) - 1) // sh + 1, (wd - dw * (kw - 1) - 1) // sw + 1
    og = o // groups
    out = np.zeros((n, o, oh, ow))
    for g in range(groups):
        xs = x[:, g * cg:(g + 1) * cg]
        ws = w[g * og:(g + 1) * og].astype(np.float64)
        for j in range(kh):
            for k in range(kw):
                patch = xs[:, :, j * dh:j * dh + sh * (oh - 1) + 1:sh, k * dw:k * dw + sw * (ow - 1) + 1:sw]
                out[:, g * og:(g + 1) * og] += np.einsum("nchw,oc->nohw", patch, ws[:, :, j, k])
    if b is not None:
        out += b.astype(np.float64)[None, :, None, None]
    return out


def reference(x, w, b, stride, padding, dilation, groups):
    """torch's conv2d in float64 (the exact-enough reference)."""
    t = lambda a: None if a is None else torch.from_numpy(np.ascontiguousarray(a, np.float64))
    return F.conv2d(t(x), t(w), t(b), stride, padding, dilation, groups).numpy()


def rel_error(ours, ref, x, w):
    """max |ours - ref| / max |ref|, the issue's acceptance measure."""
    scale = max(float(np.abs(ref).max()) if ref.size else 0.0, 1e-30)
    return float(np.abs(ours.astype(np.float64) - ref).max() / scale) if ref.size else 0.0


def case(rng, n, c, h, w, o, kh, kw, groups, dtype, bias=True):
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    wt = rng.standard_normal((o, c // groups, kh, kw)).astype(dtype)
    b = rng.standard_normal(o).astype(dtype) if bias else None
    return x, wt, b


OPTIONS = [
    # (stride, padding, dilation)
    (1, 0, 1), (2, 1, 1), ((2, 3), (1, 2), 1), (1, "same", 1), (1, "valid", 1), (1, "same", (2, 3)),
    (3, 2, 2), ((1, 2), 0, (3, 1)), (1, (0, 3), 1),
]
GEOMETRY = [
    # (n, c, h, w, o, kh, kw, groups)
    (1, 1, 7, 7, 1, 1, 1, 1), (2, 3, 13, 17, 5, 3, 3, 1), (1, 4, 11, 29, 8, 5, 2, 2),
    (3, 6, 9, 8, 6, 3, 4, 6), (1, 6, 23, 19, 12, 3, 3, 6), (1, 16, 10, 12, 13, 1, 1, 1),
    (2, 9, 31, 5, 7, 2, 5, 1), (1, 8, 17, 17, 16, 4, 4, 4),
]


@needs_torch
@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("option", OPTIONS, ids=str)
def test_matches_torch(simd, option, dtype):
    stride, padding, dilation = option
    rng = np.random.default_rng([OPTIONS.index(option), np.dtype(dtype).itemsize])
    for geometry, bias in itertools.product(GEOMETRY, (True, False)):
        n, c, h, w, o, kh, kw, groups = geometry
        x, wt, b = case(rng, n, c, h, w, o, kh, kw, groups, dtype, bias)
        try:
            ref = reference(x, wt, b, stride, padding, dilation, groups)
        except RuntimeError:
            with pytest.raises(ValueError):
                deepret.conv2d(x, wt, b, stride, padding, dilation, groups)
            continue
        ours = deepret.conv2d(x, wt, b, stride, padding, dilation, groups)
        assert ours.dtype == dtype and ours.shape == ref.shape
        tol = 1e-5 if dtype == np.float32 else 1e-12
        assert rel_error(ours, ref, x, wt) < tol, (geometry, bias)
        # torch in the input dtype agrees as well
        tt = F.conv2d(torch.from_numpy(x), torch.from_numpy(wt),
                      None if b is None else torch.from_numpy(b), stride, padding, dilation, groups)
        assert rel_error(ours, tt.numpy().astype(np.float64), x, wt) < 2 * tol


LAYERS = [
    # (c, h, w, o, k, stride, padding, groups): the benchmark's layers, shrunk
    (1, 32, 32, 6, 5, 1, 0, 1),        # LeNet conv1
    (6, 14, 14, 16, 5, 1, 0, 1),       # LeNet conv2
    (3, 67, 67, 24, 11, 4, 0, 1),      # AlexNet conv1 (smaller image, fewer channels)
    (16, 13, 13, 32, 5, 1, 2, 2),      # AlexNet conv2 (grouped)
    (32, 30, 30, 32, 3, 1, 1, 1),      # VGG 3x3
    (144, 14, 14, 144, 3, 1, 1, 144),  # depthwise
    (64, 9, 9, 80, 1, 1, 0, 1),        # 1x1
]


@needs_torch
@pytest.mark.parametrize("layer", LAYERS, ids=str)
def test_layers_threads(layer):
    c, h, w, o, k, stride, padding, groups = layer
    rng = np.random.default_rng(list(layer))
    x, wt, b = case(rng, 2, c, h, w, o, k, k, groups, np.float32)
    ref = reference(x, wt, b, stride, padding, 1, groups)
    for threads in (1, 2, 3):
        ours = deepret.conv2d(x, wt, b, stride, padding, 1, groups, num_threads=threads)
        assert rel_error(ours, ref, x, wt) < 1e-5


@needs_torch
def test_non_contiguous_unbatched_and_out():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 10, 19, 23)).astype(np.float32)
    wt = rng.standard_normal((6, 5, 3, 3)).astype(np.float32)
    xs, ws = x[:, ::2, :, ::-1], wt.transpose(0, 1, 3, 2)
    ref = reference(xs, ws, None, 1, 1, 1, 1)
    assert rel_error(deepret.conv2d(xs, ws, None, 1, 1), ref, xs, ws) < 1e-5
    ref3 = reference(xs[:1], ws, None, 2, 0, 1, 1)[0]
    ours3 = deepret.conv2d(xs[0], ws, stride=2)
    assert ours3.shape == ref3.shape
    assert rel_error(ours3, ref3, xs, ws) < 1e-5
    out = np.empty(ref.shape, np.float32)
    assert deepret.conv2d(xs, ws, None, 1, 1, out=out) is out
    assert rel_error(out, ref, xs, ws) < 1e-5


def test_errors():
    x = np.zeros((1, 4, 8, 8), np.float32)
    w = np.zeros((6, 4, 3, 3), np.float32)
    conv = deepret.conv2d
    with pytest.raises(ValueError, match="Expected 3D"):
        conv(x[0, 0], w)
    with pytest.raises(ValueError, match="weight must be 4-D"):
        conv(x, w[0])
    with pytest.raises(ValueError, match="to have 4 channels, but got 3"):
        conv(x[:, :3], w)
    with pytest.raises(ValueError, match="divisible by 4 at dimension 0"):
        conv(x, w[:, :1], groups=4)
    with pytest.raises(ValueError, match="expected input.* to have 8 channels"):
        conv(x, np.zeros((6, 4, 3, 3), np.float32), groups=2)
    with pytest.raises(ValueError, match="Kernel size can't be greater"):
        conv(x, np.zeros((6, 4, 9, 3), np.float32))
    with pytest.raises(ValueError, match="Kernel size can't be greater"):
        conv(x, w, dilation=4)
    with pytest.raises(ValueError, match="non-positive stride"):
        conv(x, w, stride=0)
    with pytest.raises(ValueError, match="dilation should be greater than zero"):
        conv(x, w, dilation=(1, 0))
    with pytest.raises(ValueError, match="negative padding"):
        conv(x, w, padding=-1)
    with pytest.raises(ValueError, match="non-positive groups"):
        conv(x, w, groups=0)
    with pytest.raises(ValueError, match="Invalid padding string"):
        conv(x, w, padding="full")
    with pytest.raises(ValueError, match="not supported for strided"):
        conv(x, w, stride=2, padding="same")
    with pytest.raises(ValueError, match="expected bias to be 1-dimensional with 6 elements"):
        conv(x, w, np.zeros(5, np.float32))
    with pytest.raises(ValueError, match="list of 2 values"):
        conv(x, w, stride=(1, 1, 1))
    with pytest.raises(TypeError, match="float32 or float64"):
        conv(x.astype(np.int32), w.astype(np.int32))
    with pytest.raises(TypeError, match="same dtype"):
        conv(x, w.astype(np.float64))
    with pytest.raises(TypeError, match="pair of ints"):
        conv(x, w, stride=1.5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("groups", [1, 3, 6])
def test_backend_against_numpy(xp, groups, dtype):
    """Both engines (and on the CPU the auto-detected SIMD path, AVX-512 where
    present) against the obvious float64 version (no torch needed)."""
    rng = np.random.default_rng([4, groups])
    x, wt, b = case(rng, 2, 6, 15, 12, 6 if groups == 6 else 9, 3, 3, groups, dtype)
    for stride, padding, dilation in [(1, 0, 1), (2, 1, 1), ((2, 3), (1, 2), 1), (3, 2, 2),
                                      ((1, 2), 0, (3, 1)), (1, (0, 3), 1)]:
        ref = numpy_conv2d(x, wt, b, stride, padding, dilation, groups)
        ours = deepret.conv2d(xp.asarray(x), xp.asarray(wt), xp.asarray(b), stride, padding,
                              dilation, groups)
        assert isinstance(ours, xp.ndarray)
        assert rel_error(to_numpy(ours), ref, x, wt) < (1e-5 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_deep_reduction_auto_path(dtype):
    """K = C * kh * kw beyond one packed tile (several reduction blocks), odd
    channel and pixel counts, on the auto-detected SIMD path."""
    rng = np.random.default_rng(9)
    x, wt, b = case(rng, 3, 41, 17, 19, 29, 3, 3, 1, dtype)
    ref = numpy_conv2d(x, wt, b, 1, 1, 1, 1)
    for threads in (1, 2):
        ours = deepret.conv2d(x, wt, b, 1, 1, num_threads=threads)
        assert rel_error(ours, ref, x, wt) < (1e-5 if dtype == np.float32 else 1e-12)


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded")
def test_concurrent_callers_and_fork():
    """The 2-D kernels' thread pool: concurrent Python threads (one runs on
    the pool, the others serially) and a forked child (a fresh pool) all get
    the right answer."""
    import os
    import threading

    rng = np.random.default_rng(10)
    x, wt, b = case(rng, 2, 8, 33, 31, 12, 3, 3, 1, np.float32)
    ref = numpy_conv2d(x, wt, b, 1, 1, 1, 1)
    image = rng.standard_normal((300, 200)).astype(np.float32)
    kernel = rng.standard_normal((5, 5)).astype(np.float32)
    ref2 = deepret.convolve2d(image, kernel, "same", num_threads=1)
    errors = []

    def work():
        try:
            for _ in range(20):
                assert rel_error(deepret.conv2d(x, wt, b, 1, 1, num_threads=2), ref, x, wt) < 1e-5
                np.testing.assert_array_equal(deepret.convolve2d(image, kernel, "same", num_threads=2), ref2)
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    workers = [threading.Thread(target=work) for _ in range(4)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    assert not errors, errors
    if not hasattr(os, "fork"):
        return
    pid = os.fork()
    if pid == 0:  # child: exit status 0 only if the pool works here too
        ok = rel_error(deepret.conv2d(x, wt, b, 1, 1, num_threads=2), ref, x, wt) < 1e-5
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


# Layers of MobileNet/EfficientNet-class networks (the direct paths of the
# CPU engine), shrunk: (n, c, h, w, o, k, stride, padding, dilation, groups).
# Widths cover a row narrower than one vector (7), one to four vectors and
# wider (tiles of 2 rows x 4 vectors plus a rest), odd and even padding at
# stride 2; pointwise pixel counts leave 0, 1 to 4 (the dot-product tile)
# and more pixels past the last strip, output channel counts that suit
# either tile family, and reductions deeper than one block (K > 256).
MOBILE_LAYERS = [
    (1, 8, 7, 7, 8, 3, 1, 1, 1, 8),          # depthwise 3x3 on 7x7
    (2, 6, 14, 14, 6, 5, 1, 2, 1, 6),        # depthwise 5x5, 14x14
    (1, 5, 23, 37, 5, 3, 1, 1, 1, 5),        # odd sizes, a wide row
    (1, 4, 75, 70, 4, 3, 1, 1, 1, 4),        # wide rows: 2 x 4-vector tiles and a rest
    (1, 6, 28, 28, 6, 3, 2, 1, 1, 6),        # depthwise 3x3 stride 2
    (2, 5, 29, 31, 5, 5, 2, 2, 1, 5),        # depthwise 5x5 stride 2, odd input
    (1, 4, 14, 15, 4, 5, 2, 2, 1, 4),        # 5x5 stride 2 down to 7x8
    (1, 3, 40, 90, 3, 3, 2, 0, 1, 3),        # stride 2 without padding, wide
    (1, 3, 17, 19, 3, 3, 2, (1, 2), 1, 3),   # odd left padding at stride 2
    (1, 4, 16, 16, 8, 3, 2, 1, 1, 4),        # channel multiplier 2
    (1, 3, 20, 22, 3, 3, (3, 3), 1, 1, 3),   # stride 3
    (1, 4, 19, 21, 4, 3, 2, 2, 2, 4),        # dilation 2 at stride 2
    (1, 2, 9, 9, 2, 7, 1, 3, 1, 2),          # 7x7 taps (no compiled tap count)
    (1, 3, 32, 32, 32, 3, 2, 1, 1, 1),       # stem 3 -> 32, stride 2
    (2, 3, 33, 47, 16, 3, 2, 1, 1, 1),       # stem, odd input
    (1, 3, 30, 30, 10, 5, 1, 2, 1, 1),       # few channels, stride 1
    (1, 4, 31, 33, 8, 3, 2, 1, 1, 2),        # few channels per group, grouped
    (1, 3, 35, 35, 12, 7, 4, 0, 1, 1),       # AlexNet-like stem, stride 4
    (1, 40, 7, 7, 70, 1, 1, 0, 1, 1),        # pointwise on 7x7 (one pixel past 3 strips)
    (2, 24, 14, 14, 36, 1, 1, 0, 1, 1),      # 14x14: four past
    (1, 300, 7, 7, 20, 1, 1, 0, 1, 1),       # deep reduction (two blocks), 7x7
    (1, 520, 3, 5, 13, 1, 1, 0, 1, 1),       # three blocks, fifteen pixels
    (1, 16, 16, 16, 24, 1, 1, 0, 1, 1),      # whole strips only
    (1, 12, 9, 11, 18, 1, 1, 0, 1, 3),       # grouped pointwise, 99 pixels
    (3, 32, 5, 5, 7, 1, 1, 0, 1, 1),         # 25 pixels: one past a strip
    (1, 10, 5, 6, 8, 1, 1, 0, 1, 1),         # 30 pixels: a one-vector rest (4-row tiles)
    (1, 10, 1, 23, 6, 1, 1, 0, 1, 1),        # 23 pixels, 6 channels (6-row tiles)
    (1, 3, 11, 90, 6, 3, 2, 1, 1, 1),        # stem rows of 45 pixels, 6 channels
]


def _mobile_case(layer, dtype, bias=True):
    n, c, h, w, o, k, stride, padding, dilation, groups = layer
    rng = np.random.default_rng([MOBILE_LAYERS.index(layer), np.dtype(dtype).itemsize])
    return case(rng, n, c, h, w, o, k, k, groups, dtype, bias)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layer", MOBILE_LAYERS, ids=str)
def test_mobile_layers_each_path(simd, layer, dtype):
    """Depthwise, stem and pointwise layers on every SIMD path the CPU has,
    against the obvious float64 version, with and without bias."""
    stride, padding, dilation, groups = layer[6:]
    for bias in (True, False):
        x, wt, b = _mobile_case(layer, dtype, bias)
        ref = numpy_conv2d(x, wt, b, stride, padding, dilation, groups)
        ours = deepret.conv2d(x, wt, b, stride, padding, dilation, groups)
        assert ours.shape == ref.shape and ours.dtype == dtype
        assert rel_error(ours, ref, x, wt) < (1e-5 if dtype == np.float32 else 1e-12), (layer, bias)


@pytest.mark.parametrize("layer", MOBILE_LAYERS[::3], ids=str)
def test_mobile_layers_threads(simd, layer):
    """The same result for any thread count (tasks split channels, row bands
    and pixel blocks differently) on each path."""
    stride, padding, dilation, groups = layer[6:]
    x, wt, b = _mobile_case(layer, np.float32)
    first = deepret.conv2d(x, wt, b, stride, padding, dilation, groups, num_threads=1)
    for threads in (2, 3):
        np.testing.assert_array_equal(
            deepret.conv2d(x, wt, b, stride, padding, dilation, groups, num_threads=threads), first)


def test_direct_paths_padding_stays_zero():
    """Calls of different shapes one after another on the same thread reuse
    its row copies: a later call must not see an earlier one's values where
    it expects zero padding (a large plane, then small ones with other
    padding, then the large one again)."""
    rng = np.random.default_rng(12)
    shapes = [(1, 2, 40, 41, 2, 3, 1, 1), (1, 3, 9, 9, 3, 5, 2, 2), (1, 2, 40, 41, 2, 3, 2, 0),
              (1, 2, 8, 8, 2, 3, 1, 1), (1, 2, 40, 41, 2, 3, 1, 1)]
    for n, c, h, w, o, k, stride, padding in shapes:
        x = rng.standard_normal((n, c, h, w)).astype(np.float32) + 100  # no zeros by chance
        wt = rng.standard_normal((o, 1, k, k)).astype(np.float32)
        ref = numpy_conv2d(x, wt, None, stride, padding, 1, c)
        ours = deepret.conv2d(x, wt, None, stride, padding, 1, c, num_threads=1)
        assert rel_error(ours, ref, x, wt) < 1e-5, (h, w, k, stride, padding)


@needs_torch
@pytest.mark.filterwarnings("ignore:Using padding='same'")
def test_mobile_same_padding_matches_torch():
    """padding='same' with even kernels pads one more at the bottom/right,
    which the row copies see only as a shorter input."""
    rng = np.random.default_rng(13)
    for c, k, groups in [(6, 4, 6), (3, 2, 1), (8, 4, 4)]:
        x, wt, b = case(rng, 2, c, 13, 10, c if groups == c else 12, k, k, groups, np.float32)
        ref = reference(x, wt, b, 1, "same", 1, groups)
        assert rel_error(deepret.conv2d(x, wt, b, 1, "same", 1, groups), ref, x, wt) < 1e-5
