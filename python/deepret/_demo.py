"""``deepret demo``: the retrieval pipeline on the bundled Oxford5k data.

Ranks the 55 queries (full-image, the query's own descriptor) by cosine
similarity and by diffusion, evaluates both with the Oxford protocol, and
times deepret against the scipy-based reference practice on the same data:
a numpy brute-force kNN + scipy.sparse graph, and scipy.sparse.linalg.cg
looped over the queries. ``--plot`` adds a figure of mAP against alpha and k.
"""

from __future__ import annotations

import sys
import time
import warnings

import numpy as np

PLOT_KS = (10, 20, 30, 50, 100)
PLOT_ALPHAS = (0.5, 0.7, 0.8, 0.9, 0.95, 0.99)
QUERY_K = 10       # database neighbours marked in each query's y
PAPER_K, PAPER_ALPHA = 50, 0.99  # Iscen et al.'s defaults (DiffusionIndex's); on these 128-D
# descriptors a smaller graph and alpha rank better (see the --plot figure), hence the demo's own.
GAMMA = 3.0
TOL, MAXITER = 1e-6, 20


def _bar(total, desc):
    """A tqdm bar on stderr, drawn only where stderr is a terminal (disable=None)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="step", leave=False, file=sys.stderr, disable=None)


class _Steps:
    """The demo's steps: a bar on a terminal; elsewhere (a log, a pipe) one
    line on stderr per finished step."""

    def __init__(self, total):
        self.total, self.done, self.name = total, 0, ""
        self.bar = _bar(total, "demo")

    def start(self, name):
        self.name = name
        self.bar.set_description(name)

    def finish(self):
        self.done += 1
        self.bar.update(1)
        if self.bar.disable:
            print(f"deepret demo: step {self.done}/{self.total} done: {self.name}", file=sys.stderr,
                  flush=True)

    def close(self):
        self.bar.close()


class _Clock:
    """Median wall time per label over a few runs (the first run also warms
    up thread pools and caches, for deepret and the reference alike)."""

    def __init__(self, repeats: int):
        self.repeats = repeats
        self.seconds = {}

    def __call__(self, label, function, *args, **kwargs):
        times = []
        for _ in range(self.repeats):
            start = time.perf_counter()
            result = function(*args, **kwargs)
            times.append(time.perf_counter() - start)
        self.seconds[label] = float(np.median(times))
        return result


# --- deepret --------------------------------------------------------------------------------

def _deepret_cosine(x, queries):
    import deepret

    _, ids = deepret.knn(x, queries, k=len(x))
    return ids  # (nq, n)


def _deepret_diffusion(x, W, queries, alpha, order="auto"):
    import deepret

    y = deepret.query_vector(x, queries, k=QUERY_K, gamma=GAMMA)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", deepret.ConvergenceWarning)
        f = deepret.diffuse(W, y, alpha, TOL, MAXITER, order=order)
    return np.argsort(-f, axis=0, kind="stable").T  # (nq, n)


# --- the scipy-based reference practice -----------------------------------------------------

def _reference_cosine(x, queries):
    return np.argsort(-(queries @ x.T), axis=1, kind="stable")


def _reference_graph(x, k):
    """Brute-force kNN with numpy, then the reference code's scipy.sparse
    construction: s^gamma, mutual pairs by elementwise minimum with the
    transpose, D^-1/2 A D^-1/2."""
    import scipy.sparse as sp

    n = len(x)
    sims = x @ x.T
    np.fill_diagonal(sims, -np.inf)  # no self loops
    ids = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    scores = np.take_along_axis(sims, ids, axis=1)
    A = sp.csr_matrix((np.maximum(scores, 0).ravel() ** GAMMA, ids.ravel(), np.arange(0, n * k + 1, k)),
                      shape=(n, n))
    A = A.minimum(A.T)
    degrees = np.asarray(A.sum(axis=1)).ravel()
    scale = np.zeros_like(degrees)
    np.divide(1.0, np.sqrt(degrees), out=scale, where=degrees > 0)
    D = sp.diags(scale)
    return (D @ A @ D).tocsr()


def _scipy_cg(A, b):
    import scipy.sparse.linalg as spl

    try:
        return spl.cg(A, b, rtol=TOL, atol=0.0, maxiter=MAXITER)[0]
    except TypeError:  # scipy < 1.12 calls it tol
        return spl.cg(A, b, tol=TOL, atol=0.0, maxiter=MAXITER)[0]


def _reference_diffusion(x, W, queries, alpha, progress):
    import scipy.sparse as sp

    A = (sp.eye(W.shape[0], dtype=W.dtype, format="csr") - alpha * W).tocsr()
    ranks = np.empty((len(queries), len(x)), dtype=np.int64)
    for q, query in enumerate(queries):
        sims = x @ query
        top = np.argpartition(-sims, QUERY_K - 1)[:QUERY_K]
        y = np.zeros(len(x), dtype=W.dtype)
        y[top] = np.maximum(sims[top], 0) ** GAMMA
        ranks[q] = np.argsort(-_scipy_cg(A, y), kind="stable")
        progress.update(1)
    return ranks


# --- the demo -------------------------------------------------------------------------------

def _evaluate(ranks, gnd):
    from deepret import evaluate

    result = evaluate.compute_map(ranks, gnd, kappas=(1, 5, 10), layout="query_by_db")
    return [result.map, *result.mean_precision]


def _row(label, scores, graph_s=None, query_ms=None):
    def cell(value, fmt, width):
        return f"{'—':>{width}}" if value is None else f"{value:{width}{fmt}}"

    return (f"{label:<46}" + "".join(f"{100 * v:7.1f}" for v in scores)
            + cell(graph_s, ".3f", 10) + cell(query_ms, ".2f", 13))


def run(args) -> int:
    import deepret
    from deepret.datasets import load_oxford5k

    data = load_oxford5k()
    if not 1 <= args.k < len(data.imlist) or not 0 < args.alpha < 1 or not 1 <= args.repeats <= 100:
        print(f"deepret demo: error: need 1 <= --k < {len(data.imlist)}, 0 < --alpha < 1 and 1 <= --repeats <= 100, "
              f"got {args.k}, {args.alpha} and {args.repeats}", file=sys.stderr)
        return 2
    if args.plot is not None:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            print("deepret demo: error: --plot needs matplotlib: pip install 'deepret[plot]'", file=sys.stderr)
            return 2
    with_reference = not args.no_reference

    x = data.descriptors / np.linalg.norm(data.descriptors, axis=1, keepdims=True)  # type: ignore[arg-type]
    queries, gnd, nq = x[data.query_indices], data.gnd, len(data.query_indices)  # type: ignore[arg-type]
    print(f"deepret {deepret.__version__}: CPU path {deepret.simd_path()}, "
          f"CUDA engine {'built' if deepret.cuda_built() else 'not built'}, "
          f"GPU {'available' if deepret.has_cuda() else 'not available'}")
    print(f"Oxford5k (bundled): {len(x)} images, {nq} queries, {x.shape[1]}-D descriptors, "
          f"L2-normalized; full-image queries")
    print(f"diffusion: {args.k}-NN mutual graph, gamma {GAMMA:g}, alpha {args.alpha}, {QUERY_K} query "
          f"neighbours, CG tol {TOL:g}, at most {MAXITER} iterations\n")

    clock = _Clock(args.repeats)
    steps = _Steps(6 if with_reference else 4)
    steps.start("cosine ranking")
    cosine = clock("cosine", _deepret_cosine, x, queries)
    steps.finish()
    steps.start("kNN graph")
    W = clock("graph", deepret.knn_graph, x, k=args.k, gamma=GAMMA)
    steps.finish()
    steps.start("diffusion")
    diffused = clock("diffusion", _deepret_diffusion, x, W, queries, args.alpha)
    steps.finish()
    steps.start("diffusion, paper defaults")
    # The reference codes count each point among its own k neighbours.
    paper = _deepret_diffusion(x, deepret.knn_graph(x, k=PAPER_K, gamma=GAMMA, k_includes_self=True),
                               queries, PAPER_ALPHA)
    steps.finish()
    if with_reference:
        steps.start("reference: numpy kNN + scipy.sparse graph")
        reference_cosine = clock("reference cosine", _reference_cosine, x, queries)
        W_reference = clock("reference graph", _reference_graph, x, args.k)
        steps.finish()
        steps.start("reference: scipy cg per query")
        with _bar(nq * args.repeats, "scipy cg per query") as per_query:
            reference_diffused = clock("reference diffusion", _reference_diffusion, x, W_reference, queries,
                                       args.alpha, per_query)
        steps.finish()
    steps.close()

    s = clock.seconds
    print(f"{'method':<46}{'mAP':>7}{'mP@1':>7}{'mP@5':>7}{'mP@10':>7}{'graph s':>10}{'per query ms':>13}")
    cosine_map = _evaluate(cosine, gnd)
    diffusion_map = _evaluate(diffused, gnd)
    print(_row("cosine similarity (deepret.knn)", cosine_map, None, 1e3 * s["cosine"] / nq))
    print(_row(f"diffusion k={args.k} alpha={args.alpha} (deepret)", diffusion_map, s["graph"],
               1e3 * s["diffusion"] / nq))
    print(_row(f"diffusion k={PAPER_K} alpha={PAPER_ALPHA} (paper defaults)", _evaluate(paper, gnd)))
    if with_reference:
        print("reference practice: numpy brute-force kNN, scipy.sparse graph, scipy.sparse.linalg.cg per query")
        print(_row("cosine similarity (numpy matmul + argsort)", _evaluate(reference_cosine, gnd), None,
                   1e3 * s["reference cosine"] / nq))
        print(_row(f"diffusion k={args.k} alpha={args.alpha} (scipy cg loop)", _evaluate(reference_diffused, gnd),
                   s["reference graph"], 1e3 * s["reference diffusion"] / nq))
        print(f"\nspeed-up over the reference practice: graph {s['reference graph'] / s['graph']:.1f}x, "
              f"diffusion per query {s['reference diffusion'] / s['diffusion']:.1f}x "
              f"(median of {args.repeats} runs each on this machine; bench/RESULTS.md has them at scale)")
    gain = diffusion_map[0] - cosine_map[0]
    print(f"diffusion {'beats' if gain > 0 else 'does NOT beat'} cosine similarity by "
          f"{100 * gain:+.1f} mAP points")
    if args.plot is not None:
        _plot(x, queries, gnd, cosine_map[0], args.plot)
        print(f"wrote {args.plot}")
    return 0


def _plot(x, queries, gnd, cosine, path):
    import deepret
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = {}
    with _bar(len(PLOT_KS) * len(PLOT_ALPHAS), "mAP over alpha and k") as bar:
        for k in PLOT_KS:
            W = deepret.knn_graph(x, k=k, gamma=GAMMA)
            order = deepret.locality_order(W)
            curves[k] = []
            for alpha in PLOT_ALPHAS:
                curves[k].append(_evaluate(_deepret_diffusion(x, W, queries, alpha, order), gnd)[0])
                bar.update(1)
    figure, axes = plt.subplots(figsize=(6, 4), dpi=120)
    for k, values in curves.items():
        axes.plot(PLOT_ALPHAS, values, marker="o", label=f"diffusion, k = {k}")
    axes.axhline(cosine, color="gray", linestyle="--", label="cosine similarity")
    axes.set_xlabel("alpha")
    axes.set_ylabel("mAP")
    axes.set_title("Oxford5k: diffusion mAP against alpha and k")
    axes.legend(fontsize=8)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
