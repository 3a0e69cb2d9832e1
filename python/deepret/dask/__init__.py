"""deepret on a Dask cluster: exact kNN, kNN graphs and diffusion of
row-chunked ``dask.array`` descriptors, run on the current
``distributed.Client`` with deepret's native kernels inside each task.

The functions mirror the top level (``deepret.knn``, ``deepret.knn_graph``,
``deepret.diffuse``, ``deepret.DiffusionIndex``) and give the same results:
indices exactly, values to the last bits (see docs/dask.md for the task
layout, memory per task and the plan for 10^8 descriptors). Needs the
optional extra: ``pip install "deepret[dask]"``. ``import deepret`` never
imports this package or dask.
"""

from __future__ import annotations

try:
    import dask  # noqa: F401
    import distributed  # noqa: F401
except ImportError as error:  # pragma: no cover - exercised where dask is absent
    raise ImportError(
        "deepret.dask needs dask and distributed: pip install \"deepret[dask]\" "
        f"(or \"dask[distributed]\"); {error}") from error

from .diffusion import DiffusionIndex, diffuse, offline_diffusion
from .graph import knn_graph
from .knn import knn

__all__ = ["DiffusionIndex", "diffuse", "knn", "knn_graph", "offline_diffusion"]
