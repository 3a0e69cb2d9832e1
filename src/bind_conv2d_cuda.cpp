// Bindings of the CUDA 2-D correlation and conv2d: pointers in, nothing computed here.
#include <array>
#include <cstdint>

#include <pybind11/stl.h>

#include "bindings.h"
#include "conv/conv2d.h"

namespace deepret::bind {

void register_conv2d_cuda(py::module_& m) {
  m.def(
      "correlate2d",
      [](int dtype, std::uintptr_t image, index_t h, index_t w, std::uintptr_t weights, index_t kh,
         index_t kw, std::uintptr_t out, index_t oh, index_t ow, index_t top, index_t left,
         int boundary, const py::array& fill, std::uintptr_t stream) {
        const void* fill_ptr = fill.data();
        py::gil_scoped_release release;
        conv::cuda::correlate2d(dtype, reinterpret_cast<const void*>(image), h, w,
                                reinterpret_cast<const void*>(weights), kh, kw,
                                reinterpret_cast<void*>(out), oh, ow, top, left, boundary, fill_ptr,
                                stream);
      },
      py::arg("dtype"), py::arg("image"), py::arg("h"), py::arg("w"), py::arg("weights"),
      py::arg("kh"), py::arg("kw"), py::arg("out"), py::arg("oh"), py::arg("ow"), py::arg("top"),
      py::arg("left"), py::arg("boundary"), py::arg("fill"), py::arg("stream"),
      "out[m, n] = sum_{j,k} ext(m - top + j, n - left + k) * weights[j, k] on device pointers.");
  m.def(
      "conv2d",
      [](int dtype, std::uintptr_t input, std::uintptr_t weight, std::uintptr_t bias,
         std::uintptr_t out, std::array<index_t, 4> in_shape, std::array<index_t, 3> w_shape,
         std::array<index_t, 2> out_hw, std::array<index_t, 2> stride,
         std::array<index_t, 2> padding, std::array<index_t, 2> dilation, index_t groups,
         std::uintptr_t stream) {
        const conv::Conv2dShape s{in_shape[0], in_shape[1], in_shape[2], in_shape[3],
                                  w_shape[0], w_shape[1], w_shape[2], out_hw[0], out_hw[1],
                                  stride[0], stride[1], padding[0], padding[1],
                                  dilation[0], dilation[1], groups};
        py::gil_scoped_release release;
        conv::cuda::conv2d(dtype, reinterpret_cast<const void*>(input),
                           reinterpret_cast<const void*>(weight),
                           reinterpret_cast<const void*>(bias), reinterpret_cast<void*>(out), s,
                           stream);
      },
      py::arg("dtype"), py::arg("input"), py::arg("weight"), py::arg("bias"), py::arg("out"),
      py::arg("in_shape"), py::arg("w_shape"), py::arg("out_hw"), py::arg("stride"),
      py::arg("padding"), py::arg("dilation"), py::arg("groups"), py::arg("stream"),
      "NCHW conv2d on device pointers (bias 0 for none), queued on `stream`.");
}

}  // namespace deepret::bind
