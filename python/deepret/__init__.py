"""deepret: graph-based image retrieval kernels with a C++/CUDA core.

numpy arrays run on the CPU engine, CuPy arrays on the CUDA engine, and the
result comes back as the same kind of array that went in.
"""

from ._backend import CudaUnavailableError, cuda_built, has_cuda, simd_path
from .conv import convolve, correlate
from .knn import knn
from .diffusion import CgInfo, ConvergenceWarning, DiffusionIndex, diffuse, katz, query_vector
from .graph import graph_from_knn, knn_graph
from . import datasets, evaluate

__version__ = "0.1.0"

__all__ = [
    "CgInfo",
    "ConvergenceWarning",
    "DiffusionIndex",
    "diffuse",
    "katz",
    "query_vector",
    "CudaUnavailableError",
    "convolve",
    "correlate",
    "cuda_built",
    "graph_from_knn",
    "datasets",
    "evaluate",
    "has_cuda",
    "knn",
    "knn_graph",
    "simd_path",
]
