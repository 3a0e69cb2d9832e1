"""deepret: graph-based image retrieval kernels with a C++/CUDA core.

numpy arrays run on the CPU engine, CuPy arrays on the CUDA engine, and the
result comes back as the same kind of array that went in.
"""

from ._backend import CudaUnavailableError, cuda_built, has_cuda, simd_path
from .conv import convolve, correlate
from .conv2d import conv2d
from .signal2d import convolve2d, correlate2d

__version__ = "0.1.0"

__all__ = [
    "CudaUnavailableError",
    "conv2d",
    "convolve",
    "convolve2d",
    "correlate",
    "correlate2d",
    "cuda_built",
    "has_cuda",
    "simd_path",
]
