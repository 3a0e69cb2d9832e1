"""deepret: graph-based image retrieval kernels with a C++/CUDA core.

numpy arrays run on the CPU engine, CuPy arrays on the CUDA engine, and the
result comes back as the same kind of array that went in.
"""

from ._backend import CudaUnavailableError, cuda_built, has_cuda, simd_path
from .conv import convolve, correlate
from .conv2d import conv2d
from .signal2d import convolve2d, correlate2d
from .knn import knn
from .graph import graph_from_knn, knn_graph
from .diffusion import (CgInfo, ConvergenceWarning, DiffusionIndex, diffuse, katz, locality_order,
                        query_vector)
from .pooling import gem, mac, regional_max_pool, rmac, rmac_regions, spoc
from .regions import Regions, egm
from .saliency import feature_saliency
from .crow import crow, crow_weights, weighted_sum_pool
from .regionset import RegionSet
from .objects import ObjectSaliency, object_saliency, region_graph, saliency_pool
from .regional import RegionalDiffusionIndex
from .describe import describe
from .qe import alpha_qe, average_qe
from .whitening import PCAWhitening
from .spectral import EigsInfo, SpectralIndex, graph_eigs
from . import datasets, evaluate
from . import plot  # matplotlib is imported on first use

__version__ = "0.1.0"

__all__ = [
    "CgInfo",
    "ConvergenceWarning",
    "CudaUnavailableError",
    "DiffusionIndex",
    "ObjectSaliency",
    "RegionSet",
    "RegionalDiffusionIndex",
    "EigsInfo",
    "PCAWhitening",
    "Regions",
    "SpectralIndex",
    "alpha_qe",
    "average_qe",
    "conv2d",
    "convolve",
    "convolve2d",
    "correlate",
    "correlate2d",
    "crow",
    "crow_weights",
    "cuda_built",
    "datasets",
    "describe",
    "diffuse",
    "egm",
    "evaluate",
    "feature_saliency",
    "gem",
    "graph_eigs",
    "graph_from_knn",
    "has_cuda",
    "katz",
    "knn",
    "knn_graph",
    "locality_order",
    "mac",
    "object_saliency",
    "query_vector",
    "region_graph",
    "regional_max_pool",
    "rmac",
    "rmac_regions",
    "saliency_pool",
    "simd_path",
    "spoc",
    "weighted_sum_pool",
]
