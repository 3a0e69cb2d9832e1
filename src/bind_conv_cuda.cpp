// Bindings of the CUDA 1-D correlation: pointers in, nothing computed here.
#include <cstdint>

#include "bindings.h"
#include "conv/conv.h"

namespace deepret::bind {

void register_conv_cuda(py::module_& m) {
  py::enum_<conv::cuda::DType>(m, "DType")
      .value("bool", conv::cuda::DType::Bool)
      .value("uint8", conv::cuda::DType::U8)
      .value("uint16", conv::cuda::DType::U16)
      .value("uint32", conv::cuda::DType::U32)
      .value("uint64", conv::cuda::DType::U64)
      .value("float32", conv::cuda::DType::F32)
      .value("float64", conv::cuda::DType::F64)
      .value("complex64", conv::cuda::DType::C64)
      .value("complex128", conv::cuda::DType::C128);
  m.def(
      "correlate1d",
      [](conv::cuda::DType dtype, std::uintptr_t a, index_t n, std::uintptr_t v, index_t m_,
         std::uintptr_t out, index_t out_len, index_t left, bool conjugate_v, std::uintptr_t stream) {
        py::gil_scoped_release release;
        conv::cuda::correlate1d(dtype, reinterpret_cast<const void*>(a), n,
                                reinterpret_cast<const void*>(v), m_, reinterpret_cast<void*>(out),
                                out_len, left, conjugate_v, stream);
      },
      py::arg("dtype"), py::arg("a"), py::arg("n"), py::arg("v"), py::arg("m"), py::arg("out"),
      py::arg("out_len"), py::arg("left"), py::arg("conjugate_v"), py::arg("stream"),
      "out[o] = sum_j a[o - left + j] * v[j] on device pointers, queued on `stream`.");
}

}  // namespace deepret::bind
