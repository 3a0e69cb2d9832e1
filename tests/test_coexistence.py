"""deepret in one process with torch, scikit-learn and faiss, each bringing
its own OpenMP runtime and C++ code: imported before or after deepret, every
library's parallel kernels run and agree with deepret's.

The peers are optional (the [bench] extra); without them these tests skip,
unless DEEPRET_REQUIRE_PEERS=1 (as .ci/run sets where it installs them), where
a missing peer fails."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

PEERS = ("torch", "sklearn", "faiss")

WORKLOAD = textwrap.dedent("""
    import numpy as np
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2000, 32)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    scores, ids = deepret.knn(x, k=10, exclude_self=True, num_threads=2)

    index = faiss.IndexFlatIP(32)
    index.add(x)
    faiss_scores, faiss_ids = index.search(x, 11)
    np.testing.assert_allclose(faiss_scores[:, 1:], scores, rtol=1e-5, atol=1e-5)

    from sklearn.neighbors import NearestNeighbors
    _, sk_ids = NearestNeighbors(n_neighbors=11, n_jobs=2).fit(x).kneighbors(x)
    agree = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(sk_ids[:, 1:], ids)])
    assert agree > 0.99, agree

    torch.set_num_threads(2)
    image = rng.standard_normal((2, 8, 33, 31)).astype(np.float32)
    weight = rng.standard_normal((16, 8, 3, 3)).astype(np.float32)
    ours = deepret.conv2d(image, weight, padding=1, num_threads=2)
    theirs = torch.nn.functional.conv2d(torch.from_numpy(image), torch.from_numpy(weight), padding=1).numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4)

    W = deepret.knn_graph(x, k=10)
    f = deepret.diffuse(W, np.eye(2000, 4, dtype=np.float32))
    assert np.isfinite(f).all()
    print("ok")
""")


def _peers_or_skip():
    missing = []
    for name in PEERS:
        try:
            __import__(name)
        except ImportError:
            missing.append(name)
    if missing:
        message = f"peers not installed: {missing} (pip install '.[bench]')"
        if os.environ.get("DEEPRET_REQUIRE_PEERS") == "1":
            pytest.fail(message)
        pytest.skip(message)


@pytest.mark.parametrize("order", [
    ("deepret", "torch", "sklearn", "faiss"),
    ("torch", "sklearn", "faiss", "deepret"),
    ("faiss", "deepret", "sklearn", "torch"),
], ids="-".join)
def test_imported_in_any_order_every_library_computes(order):
    _peers_or_skip()
    imports = "\n".join(f"import {name}" for name in order) + "\nimport sklearn.neighbors\n"
    proc = subprocess.run([sys.executable, "-c", imports + WORKLOAD], capture_output=True,
                          text=True, timeout=300, env=dict(os.environ, OMP_NUM_THREADS="2"))
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), (
        f"exit {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
