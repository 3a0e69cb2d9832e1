"""Type stub of deepret._core_cuda, the CUDA engine (pybind11;
src/module_cuda.cpp and src/bind_*_cuda.cpp), present only in builds with
nvcc. Its functions take raw device pointers (ints) and a CUDA stream, and
are called only by the Python layer after it checked the CuPy arrays;
their argument lists are not typed here."""

from typing import Any

def device_count() -> int: ...
def __getattr__(name: str) -> Any: ...
