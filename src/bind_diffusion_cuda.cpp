// Bindings of the CUDA batched CG: device arrays in (device_array.h),
// checked here before anything reaches the GPU; nothing computed here.
#include <cstdint>

#include "bindings.h"
#include "device_array.h"
#include "diffusion/cg.h"

namespace deepret::bind {

void register_diffusion_cuda(py::module_& m) {
  m.def(
      "batched_cg",
      [](py::handle indptr_, py::handle indices_, py::handle data_, py::handle y_, py::handle f_,
         py::handle iterations_, py::handle residuals_, double alpha, double tol, index_t maxiter,
         py::object allocate, std::uintptr_t stream) {
        const DeviceArray indptr = device_array(indptr_, "indptr"), indices = device_array(indices_, "indices"),
                          data = device_array(data_, "data"), y = device_array(y_, "y"),
                          f = device_array(f_, "f", true), iterations = device_array(iterations_, "iterations", true),
                          residuals = device_array(residuals_, "residuals", true);
        require_dtype(indptr, {DType::I32, DType::I64});
        require_same_dtype(indptr, indices);
        require_shape(indptr, {-1}, "(n + 1,)");
        check(indptr.dim(0) >= 1, "indptr must have n + 1 >= 1 entries");
        const index_t n = indptr.dim(0) - 1;
        require_shape(indices, {-1}, "(nnz,)");
        require_dtype(data, {DType::F32, DType::F64});
        require_shape(data, {indices.dim(0)}, "(nnz,)");
        require_same_dtype(data, y);
        require_shape(y, {n, -1}, "(n, m)");
        require_same_dtype(data, f);
        require_shape(f, {n, y.dim(1)}, "(n, m)");
        require_dtype(iterations, {DType::I64});
        require_shape(iterations, {y.dim(1)}, "(m,)");
        require_dtype(residuals, {DType::F64});
        require_shape(residuals, {y.dim(1)}, "(m,)");
        check(alpha > 0.0 && alpha < 1.0, "alpha must be in (0, 1)");
        check(maxiter >= 0, "maxiter must be non-negative");
        DeviceCall call({&indptr, &indices, &data, &y, &f, &iterations, &residuals}, stream);
        PyScratch scratch(std::move(allocate));
        py::gil_scoped_release release;
        diffusion::cuda::batched_cg(data.dtype, indptr.dtype, n, indptr.ptr, indices.ptr, data.ptr, alpha, y.ptr,
                                    y.dim(1), f.ptr, tol, maxiter, iterations.data<std::int64_t>(),
                                    residuals.data<double>(), scratch, stream);
      },
      py::arg("indptr"), py::arg("indices"), py::arg("data"), py::arg("y"), py::arg("f"), py::arg("iterations"),
      py::arg("residuals"), py::kw_only(), py::arg("alpha"), py::arg("tol"), py::arg("maxiter"),
      py::arg("allocate"), py::arg("stream"),
      "Solve (I - alpha W) f = y on the GPU for W = (data, indices, indptr) in CSR (device arrays; "
      "row-major y and f); scratch from allocate(nbytes).");
}

}  // namespace deepret::bind
