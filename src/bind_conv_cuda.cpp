// Bindings of the CUDA 1-D correlation: device arrays in (device_array.h),
// checked here before anything reaches the GPU; nothing computed here.
#include <cstdint>

#include "bindings.h"
#include "conv/conv.h"
#include "device_array.h"

namespace deepret::bind {

void register_conv_cuda(py::module_& m) {
  m.def(
      "correlate1d",
      [](py::handle a_, py::handle v_, py::handle out_, index_t left, bool conjugate_v, std::uintptr_t stream) {
        const DeviceArray a = device_array(a_, "a"), v = device_array(v_, "v"),
                          out = device_array(out_, "out", true);
        require_dtype(a, {DType::Bool, DType::I8, DType::I16, DType::I32, DType::I64, DType::U8, DType::U16,
                          DType::U32, DType::U64, DType::F32, DType::F64, DType::C64, DType::C128});
        require_same_dtype(a, v);
        require_same_dtype(a, out);
        require_shape(a, {-1}, "(n,)");
        require_shape(v, {-1}, "(m,)");
        require_shape(out, {-1}, "(out_len,)");
        check(a.size() > 0 && v.size() > 0, "a and v must be non-empty");
        DeviceCall call({&a, &v, &out}, stream);
        py::gil_scoped_release release;
        conv::cuda::correlate1d(a.dtype, a.ptr, a.size(), v.ptr, v.size(), out.ptr, out.size(), left,
                                conjugate_v, stream);
      },
      py::arg("a"), py::arg("v"), py::arg("out"), py::kw_only(), py::arg("left"), py::arg("conjugate_v"),
      py::arg("stream"),
      "out[o] = sum_j a[o - left + j] * v[j] on device arrays, queued on `stream`.");
}

}  // namespace deepret::bind
