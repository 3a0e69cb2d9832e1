"""Retrieval evaluation: the Oxford / Paris protocol and its revisited
(ROxford / RParis) Easy, Medium and Hard variants, exactly as the reference
evaluation code (``revisitop`` / ``cirtorch`` ``compute_ap`` and
``compute_map``) computes them.

- AP is the trapezoidal average precision of the reference ``compute_ap``.
- Junk items are removed from a ranking before the positions of the positives
  are counted (a positive keeps its place among the non-junk items).
- Queries without positives get NaN in the per-query outputs and are left out
  of the means (the reference code's ``nempty``).
- Precision at kappa is the reference formula: with the 1-based, junk-removed
  positions ``pos`` of the positives, ``kq = min(max(pos), kappa)`` and
  ``precision = count(pos <= kq) / kq``.

Floating-point sums are accumulated in the reference's order, so the results
agree with the reference code bit for bit on the same inputs. The protocol
with formulas: docs/algorithms/evaluation.md.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._arrays import host_array, torch_interop

__all__ = [
    "MapResult",
    "PROTOCOLS",
    "compute_ap",
    "compute_map",
    "compute_map_revisited",
    "revisited_gnd",
]

#: The revisited protocols of :func:`compute_map_revisited`.
PROTOCOLS = ("easy", "medium", "hard")
_LAYOUTS = ("db_by_query", "query_by_db")


class MapResult(NamedTuple):
    """What :func:`compute_map` returns; unpacks like the reference's tuple
    ``(map, aps, pr, prs)``.

    map : float
        Mean AP over the queries that have positives (NaN if none has).
    aps : (n_queries,) float64
        AP of each query; NaN for a query without positives.
    mean_precision : (len(kappas),) float64
        Mean precision at each kappa over the queries that have positives.
    precisions : (n_queries, len(kappas)) float64
        Precision of each query at each kappa; NaN rows for queries without
        positives.

    See Also
    --------
    compute_map

    Examples
    --------
    >>> from deepret import evaluate
    >>> result = evaluate.compute_map([[0], [1], [2]], [{"ok": [0, 2]}], kappas=(1, 3))
    >>> round(result.map, 4), result.mean_precision.tolist()
    (0.7917, [1.0, 0.6666666666666666])
    >>> mAP, aps, mean_pr, prs = result          # the reference's tuple
    """

    map: float
    aps: np.ndarray
    mean_precision: np.ndarray
    precisions: np.ndarray


# --------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------

def _int_array(value: Any, name: str) -> NDArray[np.int64]:
    """A 1-D int64 array of ids or positions; an empty sequence is allowed."""
    if isinstance(value, (str, bytes)) or isinstance(value, Mapping):
        raise TypeError(f"{name} must be a 1-D sequence of integers, got {type(value).__name__}")
    try:
        arr = np.asarray(host_array(value))
    except Exception as exc:  # ragged nested sequences and the like
        raise TypeError(f"{name} must be a 1-D sequence of integers ({exc})") from None
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.size == 0:
        return np.zeros(0, np.int64)
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{name} must hold integers, got dtype {arr.dtype}")
    if arr.min() < 0:
        raise ValueError(f"{name} must be non-negative, got {arr.min()}")
    return arr.astype(np.int64, copy=False)


def _check_int(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an int, got {value!r}")
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an int, got {value!r}") from None
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")
    return value


def _check_kappas(kappas: Sequence[int] | NDArray[np.integer[Any]]) -> NDArray[np.int64]:
    if isinstance(kappas, (str, bytes)) or not isinstance(kappas, (Sequence, np.ndarray)):
        raise TypeError(f"kappas must be a sequence of ints, got {type(kappas).__name__}")
    values = [_check_int(k, f"kappas[{i}]", 1) for i, k in enumerate(kappas)]
    for i, k in enumerate(values):
        if k >= 2**63:
            raise ValueError(f"kappas[{i}] must be below 2**63, got {k}")
    return np.array(values, dtype=np.int64)


def _check_ranks(ranks: ArrayLike, n_queries: int, layout: str) -> NDArray[np.int64]:
    """(n_queries, n_ranked) int64, each row a ranking without repeats."""
    if not isinstance(layout, str) or layout not in _LAYOUTS:
        raise ValueError(f"layout must be one of {_LAYOUTS}, got {layout!r}")
    arr = np.asarray(host_array(ranks))
    if arr.ndim != 2:
        shape = "(n_database, n_queries)" if layout == "db_by_query" else "(n_queries, n_database)"
        raise ValueError(f"ranks must be 2-D {shape} with layout={layout!r}, got shape "
                         f"{arr.shape} (for one query use ranks[:, None])")
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"ranks must hold integer database ids, got dtype {arr.dtype}")
    if layout == "db_by_query":
        arr = arr.T
    if arr.shape[0] != n_queries:
        axis = 1 if layout == "db_by_query" else 0
        raise ValueError(f"ranks has {arr.shape[0]} queries (axis {axis}, layout={layout!r}) "
                         f"but gnd has {n_queries} entries")
    arr = np.ascontiguousarray(arr, dtype=np.int64)
    if arr.size:
        if arr.min() < 0:
            raise ValueError(f"ranks must hold non-negative database ids, got {arr.min()}")
        srt = np.sort(arr, axis=1)
        repeats = np.flatnonzero((srt[:, 1:] == srt[:, :-1]).any(axis=1))
        if repeats.size:
            q = int(repeats[0])
            raise ValueError(f"ranks repeats a database id in the ranking of query {q}")
    return arr


def _check_gnd(gnd: Sequence[Mapping[str, Any]], positives: str = "ok") -> list[tuple[NDArray[np.int64], NDArray[np.int64]]]:
    """[(ok ids, junk ids)] per query."""
    if isinstance(gnd, (str, bytes, Mapping)) or not isinstance(gnd, Sequence):
        raise TypeError(f"gnd must be a list of dicts, got {type(gnd).__name__}")
    out = []
    for i, entry in enumerate(gnd):
        if not isinstance(entry, Mapping):
            raise TypeError(f"gnd[{i}] must be a dict, got {type(entry).__name__}")
        if positives not in entry:
            raise ValueError(f"gnd[{i}] has no {positives!r} key")
        ok = _int_array(entry[positives], f"gnd[{i}][{positives!r}]")
        junk = _int_array(entry.get("junk", ()), f"gnd[{i}]['junk']")
        if np.unique(ok).size != ok.size:
            raise ValueError(f"gnd[{i}][{positives!r}] repeats an id")
        if np.intersect1d(ok, junk).size:
            raise ValueError(f"gnd[{i}]: ids in both {positives!r} and 'junk'")
        out.append((ok, junk))
    return out


# --------------------------------------------------------------------------
# AP and mAP
# --------------------------------------------------------------------------

def _ap(positions: np.ndarray, n_positives: int) -> float:
    """Trapezoidal AP, summed in the reference loop's order."""
    if positions.size == 0:
        return 0.0
    j = np.arange(positions.size, dtype=np.float64)
    rank = positions.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision_0 = np.where(rank == 0, 1.0, j / rank)
    precision_1 = (j + 1.0) / (rank + 1.0)
    terms = (precision_0 + precision_1) * (1.0 / n_positives) / 2.0
    return float(np.cumsum(terms)[-1])  # sequential, as ap += ... in the reference


@torch_interop
def compute_ap(positions: ArrayLike, n_positives: int) -> float:
    """Average precision of one query, the Oxford way (trapezoidal rule).

    Parameters
    ----------
    positions : (n_found,) integer sequence
        0-based positions of the retrieved positives in the ranking after junk
        removal, strictly ascending. Positives that were not retrieved are
        simply absent.
    n_positives : int
        Number of positives of the query (retrieved or not), >= n_found and
        >= 1.

    Returns
    -------
    float
        ``sum_j (p0_j + p1_j) / (2 * n_positives)`` with ``p1_j = (j+1) /
        (pos_j+1)`` and ``p0_j = j / pos_j`` (1 when ``pos_j == 0``). A
        positive missing from ``positions`` adds nothing, so it lowers the AP.

    Raises
    ------
    ValueError
        positions not 1-D, negative, not strictly ascending, or more than
        n_positives; n_positives < 1.
    TypeError
        Non-integer positions or n_positives.

    See Also
    --------
    sklearn.metrics.average_precision_score : the step-wise (not
        trapezoidal) AP of a scored list; the Oxford numbers use this one.
    compute_map

    Examples
    --------
    >>> from deepret import evaluate
    >>> evaluate.compute_ap([0, 1], 2)            # both positives first: perfect
    1.0
    >>> round(evaluate.compute_ap([0, 2], 2), 4)  # the second one third: (1 + 1)/4 + (1/2 + 2/3)/4
    0.7917
    >>> evaluate.compute_ap([], 3)                # nothing retrieved
    0.0
    """
    pos = _int_array(positions, "positions")
    n_positives = _check_int(n_positives, "n_positives", 1)
    if pos.size > n_positives:
        raise ValueError(f"positions has {pos.size} entries but n_positives is {n_positives}")
    if pos.size > 1 and not (np.diff(pos) > 0).all():
        raise ValueError("positions must be strictly ascending")
    return _ap(pos, n_positives)


def _query_scores(ranking: np.ndarray, ok: np.ndarray, junk: np.ndarray,
                  kappas: np.ndarray) -> tuple[float, np.ndarray]:
    """AP and precision at kappas of one query (which has positives)."""
    pos = np.flatnonzero(np.isin(ranking, ok))
    if junk.size:
        junk_pos = np.flatnonzero(np.isin(ranking, junk))
        # junk ranked above a positive moves it up by one place each
        pos = pos - np.searchsorted(junk_pos, pos, side="left")
    ap = _ap(pos, ok.size)
    if pos.size == 0:  # nothing retrieved (a top-K list): precision 0
        return ap, np.zeros(kappas.size)
    pos1 = pos + 1
    kq = np.minimum(pos1[-1], kappas)
    return ap, np.searchsorted(pos1, kq, side="right") / kq


def _map(ranks_q: np.ndarray, gnd: list[tuple[np.ndarray, np.ndarray]],
         kappas: np.ndarray) -> MapResult:
    nq = len(gnd)
    aps = np.full(nq, np.nan)
    prs = np.full((nq, kappas.size), np.nan)
    for i, (ok, junk) in enumerate(gnd):
        if ok.size:
            aps[i], prs[i] = _query_scores(ranks_q[i], ok, junk, kappas)
    valid = ~np.isnan(aps)
    n_valid = int(valid.sum())
    if n_valid == 0:
        return MapResult(float("nan"), aps, np.full(kappas.size, np.nan), prs)
    # running sums in query order, as the reference accumulates them
    mean_ap = float(np.cumsum(aps[valid])[-1]) / n_valid
    mean_pr = np.cumsum(prs[valid], axis=0)[-1] / n_valid
    return MapResult(mean_ap, aps, mean_pr, prs)


@torch_interop
def compute_map(ranks: ArrayLike, gnd: Sequence[Mapping[str, Any]], kappas: Sequence[int] | NDArray[np.int64] = (1, 5, 10), *,
                layout: str = "db_by_query") -> MapResult:
    """mAP and precision at kappas over a set of queries (Oxford5k/Paris6k).

    Parameters
    ----------
    ranks : 2-D integer array
        Database ids, best first. With ``layout="db_by_query"`` (the
        reference code's layout, e.g. ``np.argsort(-sim, axis=0)`` of a
        ``(n_database, n_queries)`` similarity) the shape is ``(n_ranked,
        n_queries)``: column ``i`` ranks query ``i``. With
        ``layout="query_by_db"`` it is ``(n_queries, n_ranked)``: row ``i``.
        ``n_ranked`` may be less than the database size (a top-K list):
        positives that are not listed count as not retrieved (they add
        nothing to the AP but still count in its denominator). Ids must be
        non-negative and not repeat within a query's ranking. A numpy array,
        a nested sequence, a CuPy array or a torch tensor (CPU or CUDA):
        the evaluation runs on the host, so device input is copied there
        once.
    gnd : list of n_queries dicts
        ``gnd[i]["ok"]``: ids of the positives of query i; optional
        ``gnd[i]["junk"]``: ids ignored (removed from the ranking before
        positions are counted). ``ok`` must not repeat ids or share ids with
        ``junk``. Other keys (``bbx``, ...) are ignored.
    kappas : sequence of ints >= 1
        Cut-offs for precision at k (reference formula, see module docs).
    layout : {"db_by_query", "query_by_db"}

    Returns
    -------
    MapResult
        ``(map, aps, mean_precision, precisions)``; queries with an empty
        ``ok`` get NaN and are left out of ``map`` and ``mean_precision``
        (both NaN when no query has positives). The arrays are numpy
        arrays, or CPU torch tensors when a torch tensor came in.

    Raises
    ------
    ValueError
        ranks not 2-D, of another number of queries than gnd, negative or
        repeated ids; gnd entries without ``ok``, with repeated ids or ids
        both ok and junk; kappas < 1; an unknown layout.
    TypeError
        Non-integer ranks, gnd not a list of dicts, kappas not ints.

    See Also
    --------
    sklearn.metrics.average_precision_score : step-wise AP of one scored list.
    compute_map_revisited : the ROxford/RParis protocols.
    deepret.datasets.load_oxford5k : data and ground truth to evaluate on.

    Notes
    -----
    The protocol, with formulas: the documentation's "Evaluation" page
    (docs/algorithms/evaluation.md).

    Examples
    --------
    >>> import numpy as np
    >>> from deepret import evaluate
    >>> gnd = [{"ok": [2], "junk": [0]}, {"ok": [0, 1]}]
    >>> ranks = np.array([[0, 1], [2, 2], [1, 0]])   # (n_database, n_queries): column = query
    >>> result = evaluate.compute_map(ranks, gnd, kappas=(1, 2))
    >>> result.aps.round(4)                          # junk 0 removed: 2 is first for query 0
    array([1.    , 0.7917])
    >>> round(result.map, 4), result.precisions.tolist()
    (0.8958, [[1.0, 1.0], [1.0, 0.5]])
    >>> evaluate.compute_map(ranks.T, gnd, layout="query_by_db").map == result.map
    True
    """
    kappas = _check_kappas(kappas)
    entries = _check_gnd(gnd)
    ranks_q = _check_ranks(ranks, len(entries), layout)
    return _map(ranks_q, entries, kappas)


def _concat(entry: Mapping[str, Any], keys: tuple[str, ...], i: int) -> NDArray[np.int64]:
    parts = []
    for key in keys:
        if key not in entry:
            raise ValueError(f"gnd[{i}] has no {key!r} key (revisited ground truth needs "
                             "'easy', 'hard' and 'junk')")
        parts.append(_int_array(entry[key], f"gnd[{i}][{key!r}]"))
    return np.concatenate(parts)


_PROTOCOL_KEYS = {  # protocol: (positives, junk)
    "easy": (("easy",), ("junk", "hard")),
    "medium": (("easy", "hard"), ("junk",)),
    "hard": (("hard",), ("junk", "easy")),
}


def revisited_gnd(gnd: Sequence[Mapping[str, Any]], protocol: str) -> list[dict[str, NDArray[np.int64]]]:
    """Oxford-style ground truth (``ok``/``junk``) for one protocol of a
    revisited dataset (ROxford5k, RParis6k).

    ``gnd`` is a list of dicts with ``easy``, ``hard`` and ``junk`` id lists.
    ``protocol="easy"``: ok = easy, junk = junk + hard; ``"medium"``:
    ok = easy + hard, junk = junk; ``"hard"``: ok = hard, junk = junk + easy.
    Returns a list of ``{"ok": int64 array, "junk": int64 array}``.

    Parameters
    ----------
    gnd : list of dicts with ``easy``, ``hard`` and ``junk``
    protocol : {"easy", "medium", "hard"}

    Returns
    -------
    list of dicts
        ``{"ok": int64 array, "junk": int64 array}`` per query.

    Raises
    ------
    ValueError
        An unknown protocol, an entry without ``easy``, ``hard`` or ``junk``.
    TypeError
        gnd not a list of dicts.

    See Also
    --------
    compute_map_revisited

    Examples
    --------
    >>> from deepret import evaluate
    >>> gnd = [{"easy": [1], "hard": [4], "junk": [7]}]
    >>> entry = evaluate.revisited_gnd(gnd, "hard")[0]
    >>> entry["ok"].tolist(), entry["junk"].tolist()
    ([4], [7, 1])
    """
    if not isinstance(protocol, str) or protocol not in _PROTOCOL_KEYS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    if isinstance(gnd, (str, bytes, Mapping)) or not isinstance(gnd, Sequence):
        raise TypeError(f"gnd must be a list of dicts, got {type(gnd).__name__}")
    ok_keys, junk_keys = _PROTOCOL_KEYS[protocol]
    out = []
    for i, entry in enumerate(gnd):
        if not isinstance(entry, Mapping):
            raise TypeError(f"gnd[{i}] must be a dict, got {type(entry).__name__}")
        out.append({"ok": _concat(entry, ok_keys, i), "junk": _concat(entry, junk_keys, i)})
    return out


@torch_interop
def compute_map_revisited(ranks: ArrayLike, gnd: Sequence[Mapping[str, Any]], kappas: Sequence[int] | NDArray[np.int64] = (1, 5, 10), *,
                          layout: str = "db_by_query",
                          protocols: str | Sequence[str] = PROTOCOLS) -> dict[str, MapResult]:
    """The revisited protocol: :func:`compute_map` under Easy, Medium and Hard.

    Parameters
    ----------
    ranks : 2-D integer array
        As in :func:`compute_map` (``layout`` says which axis is the query).
    gnd : list of n_queries dicts
        With ``easy``, ``hard`` and ``junk`` id lists (the revisited ground
        truth), turned into ok/junk by :func:`revisited_gnd`.
    kappas : sequence of ints >= 1
        The revisited papers report mP@1, 5, 10 (the default).
    protocols : sequence of {"easy", "medium", "hard"}
        Which protocols to compute (default: all three).

    Returns
    -------
    dict
        ``{protocol: MapResult}``; a query without positives under a protocol
        (e.g. no easy images) is NaN there and left out of that protocol's
        means.

    Raises
    ------
    ValueError, TypeError
        As :func:`compute_map` and :func:`revisited_gnd`; an unknown protocol.

    See Also
    --------
    compute_map, revisited_gnd
    deepret.datasets.load_ground_truth : ``"roxford5k"``, ``"rparis6k"``.

    Examples
    --------
    >>> import numpy as np
    >>> from deepret import evaluate
    >>> gnd = [{"easy": [0], "hard": [2], "junk": [1]}]
    >>> ranks = np.array([[0], [1], [2], [3]])       # (n_database, 1 query)
    >>> result = evaluate.compute_map_revisited(ranks, gnd)
    >>> {p: round(r.map, 4) for p, r in result.items()}
    {'easy': 1.0, 'medium': 1.0, 'hard': 1.0}
    >>> result = evaluate.compute_map_revisited(ranks[::-1], gnd)   # worst first
    >>> {p: round(r.map, 4) for p, r in result.items()}
    {'easy': 0.25, 'medium': 0.4167, 'hard': 0.25}
    """
    if isinstance(protocols, str):
        protocols = (protocols,)
    protocols = tuple(protocols)
    for p in protocols:
        if not isinstance(p, str) or p not in _PROTOCOL_KEYS:
            raise ValueError(f"protocols must be drawn from {PROTOCOLS}, got {p!r}")
    kappas = _check_kappas(kappas)
    per_protocol = {p: _check_gnd(revisited_gnd(gnd, p)) for p in protocols}
    n_queries = len(gnd)
    ranks_q = _check_ranks(ranks, n_queries, layout)
    return {p: _map(ranks_q, entries, kappas) for p, entries in per_protocol.items()}
