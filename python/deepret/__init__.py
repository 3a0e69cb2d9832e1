"""deepret: graph-based image retrieval kernels with a C++/CUDA core.

numpy arrays run on the CPU engine, CuPy arrays on the CUDA engine, and the
result comes back as the same kind of array that went in.
"""

from ._backend import CudaUnavailableError, cuda_built, has_cuda, simd_path
from .conv import convolve, correlate
from .pooling import gem, mac, regional_max_pool, rmac, rmac_regions, spoc
from .regions import Regions, egm
from .saliency import feature_saliency
from . import plot  # matplotlib is imported on first use

__version__ = "0.1.0"

__all__ = [
    "CudaUnavailableError",
    "Regions",
    "convolve",
    "correlate",
    "cuda_built",
    "egm",
    "feature_saliency",
    "gem",
    "has_cuda",
    "mac",
    "regional_max_pool",
    "rmac",
    "rmac_regions",
    "simd_path",
    "spoc",
]
