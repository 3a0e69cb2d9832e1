// Bindings of the CUDA 2-D correlation and conv2d: device arrays in
// (device_array.h), checked here before anything reaches the GPU.
#include <array>
#include <cstdint>
#include <string>

#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include "bindings.h"
#include "conv/conv2d.h"
#include "device_array.h"

namespace deepret::bind {

void register_conv2d_cuda(py::module_& m) {
  m.def(
      "correlate2d",
      [](py::handle image_, py::handle weights_, py::handle out_, index_t top, index_t left, int boundary,
         const py::array& fill, std::uintptr_t stream) {
        const DeviceArray image = device_array(image_, "image"), weights = device_array(weights_, "weights"),
                          out = device_array(out_, "out", true);
        require_dtype(image, {DType::I8, DType::I16, DType::I32, DType::I64, DType::U8, DType::U16, DType::U32,
                              DType::U64, DType::F32, DType::F64, DType::C64, DType::C128});
        require_same_dtype(image, weights);
        require_same_dtype(image, out);
        require_shape(image, {-1, -1}, "(h, w)");
        require_shape(weights, {-1, -1}, "(kh, kw)");
        require_shape(out, {-1, -1}, "(oh, ow)");
        check(boundary >= 0 && boundary <= 2, "boundary must be 0 (fill), 1 (wrap) or 2 (symm)");
        check(fill.size() == 1 && fill.itemsize() == static_cast<py::ssize_t>(dtype_size(image.dtype)),
              "fill must hold one value of the image's dtype");
        const void* fill_ptr = fill.data();
        DeviceCall call({&image, &weights, &out}, stream);
        py::gil_scoped_release release;
        conv::cuda::correlate2d(image.dtype, image.ptr, image.dim(0), image.dim(1), weights.ptr, weights.dim(0),
                                weights.dim(1), out.ptr, out.dim(0), out.dim(1), top, left, boundary, fill_ptr,
                                stream);
      },
      py::arg("image"), py::arg("weights"), py::arg("out"), py::kw_only(), py::arg("top"), py::arg("left"),
      py::arg("boundary"), py::arg("fill"), py::arg("stream"),
      "out[m, n] = sum_{j,k} ext(m - top + j, n - left + k) * weights[j, k] on device arrays.");
  m.def(
      "conv2d",
      [](py::handle input_, py::handle weight_, py::handle bias_, py::handle out_, std::array<index_t, 2> stride,
         std::array<index_t, 2> padding, std::array<index_t, 2> dilation, index_t groups, std::uintptr_t stream) {
        const DeviceArray x = device_array(input_, "input"), w = device_array(weight_, "weight"),
                          out = device_array(out_, "out", true);
        const std::optional<DeviceArray> b = optional_device_array(bias_, "bias");
        require_dtype(x, {DType::F32, DType::F64});
        require_same_dtype(x, w);
        require_same_dtype(x, out);
        require_shape(x, {-1, -1, -1, -1}, "(n, c, h, w)");
        check(groups >= 1 && x.dim(1) % groups == 0, "groups must divide input's " + std::to_string(x.dim(1)) +
                                                        " channels, got groups = " + std::to_string(groups));
        require_shape(w, {-1, x.dim(1) / groups, -1, -1}, "(o, c / groups, kh, kw)");
        check(w.dim(0) % groups == 0, "groups must divide weight's " + std::to_string(w.dim(0)) +
                                          " output channels, got groups = " + std::to_string(groups));
        require_shape(out, {x.dim(0), w.dim(0), -1, -1}, "(n, o, oh, ow)");
        if (b) {
          require_same_dtype(x, *b);
          require_shape(*b, {w.dim(0)}, "(o,)");
        }
        check(stride[0] >= 1 && stride[1] >= 1 && dilation[0] >= 1 && dilation[1] >= 1 && padding[0] >= 0 &&
                  padding[1] >= 0,
              "stride and dilation must be positive, padding non-negative");
        const conv::Conv2dShape s{x.dim(0),  x.dim(1),   x.dim(2),   x.dim(3),    w.dim(0),   w.dim(2),
                                  w.dim(3),  out.dim(2), out.dim(3), stride[0],   stride[1],  padding[0],
                                  padding[1], dilation[0], dilation[1], groups};
        DeviceCall call({&x, &w, b ? &*b : nullptr, &out}, stream);
        py::gil_scoped_release release;
        conv::cuda::conv2d(x.dtype, x.ptr, w.ptr, b ? b->ptr : nullptr, out.ptr, s, stream);
      },
      py::arg("input"), py::arg("weight"), py::arg("bias"), py::arg("out"), py::kw_only(), py::arg("stride"),
      py::arg("padding"), py::arg("dilation"), py::arg("groups"), py::arg("stream"),
      "NCHW conv2d on device arrays (bias None for none), queued on `stream`; padding is (top, left), "
      "the output size is out's.");
}

}  // namespace deepret::bind
