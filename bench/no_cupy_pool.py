"""pytest plugin for bench/gpu_check.sh's sanitizer runs: CuPy without its
memory pools, so that every device allocation (deepret's scratch included,
which comes from CuPy) is a cudaMalloc of its own, whose bounds
compute-sanitizer's memcheck knows. Loaded with ``-p no_cupy_pool`` and
bench/ on PYTHONPATH; without CuPy it does nothing."""

try:
    import cupy
except ImportError:  # the GPU tests then skip
    cupy = None

if cupy is not None:
    cupy.cuda.set_allocator(None)
    cupy.cuda.set_pinned_memory_allocator(None)
