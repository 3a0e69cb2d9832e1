// Bindings of the 2-D correlation and conv2d engines: dtype dispatch and GIL
// release only.
#include <complex>
#include <cstdint>
#include <cstring>

#include <pybind11/stl.h>

#include "bindings.h"
#include "conv/conv2d.h"

namespace deepret::bind {

namespace {

struct Geometry {
  index_t top, left;
  conv::Boundary boundary;
  int threads;
};

template <class T>
void run_real(const py::array& image, const py::array& weights, py::array& out, const py::array& fill,
              const Geometry& g) {
  T fill_value;
  std::memcpy(&fill_value, fill.data(), sizeof(T));
  const T* pi = static_cast<const T*>(image.data());
  const T* pw = static_cast<const T*>(weights.data());
  T* po = static_cast<T*>(out.mutable_data());
  const index_t h = image.shape(0), w = image.shape(1), kh = weights.shape(0), kw = weights.shape(1);
  const index_t oh = out.shape(0), ow = out.shape(1);
  EngineCall call;
  conv::correlate2d<T>(pi, h, w, pw, kh, kw, po, oh, ow, g.top, g.left, g.boundary, fill_value,
                       g.threads);
}

template <class T>
void run_complex(const py::array& image, const py::array& weights, py::array& out,
                 const py::array& fill, const Geometry& g) {
  using C = std::complex<T>;
  C fill_value;
  std::memcpy(static_cast<void*>(&fill_value), fill.data(), sizeof(C));
  const C* pi = static_cast<const C*>(image.data());
  const C* pw = static_cast<const C*>(weights.data());
  C* po = static_cast<C*>(out.mutable_data());
  const index_t h = image.shape(0), w = image.shape(1), kh = weights.shape(0), kw = weights.shape(1);
  const index_t oh = out.shape(0), ow = out.shape(1);
  EngineCall call;
  conv::correlate2d_complex<T>(pi, h, w, pw, kh, kw, po, oh, ow, g.top, g.left, g.boundary,
                               fill_value, g.threads);
}

// out[m, n] = sum_{j,k} ext(m - top + j, n - left + k) * weights[j, k].
void correlate2d(const py::array& image, const py::array& weights, py::array& out, index_t top,
                 index_t left, int boundary, const py::array& fill, int num_threads) {
  require_contiguous(image, "image");
  require_contiguous(weights, "weights");
  require_contiguous(out, "out", true);
  require_same_dtype(image, weights, "image and weights");
  require_same_dtype(image, out, "image and out");
  require_same_dtype(image, fill, "image and fill");
  check(image.ndim() == 2 && weights.ndim() == 2 && out.ndim() == 2,
        "image, weights and out must be 2-D");
  check(fill.size() == 1, "fill must hold one value");
  check(boundary >= 0 && boundary <= 2, "boundary must be 0 (fill), 1 (wrap) or 2 (symm)");
  const Geometry g{top, left, static_cast<conv::Boundary>(boundary), num_threads};
  const char kind = image.dtype().kind();
  const auto size = image.dtype().itemsize();
  if (kind == 'i' || kind == 'u') {
    switch (size) {
      case 1: return run_real<std::uint8_t>(image, weights, out, fill, g);
      case 2: return run_real<std::uint16_t>(image, weights, out, fill, g);
      case 4: return run_real<std::uint32_t>(image, weights, out, fill, g);
      case 8: return run_real<std::uint64_t>(image, weights, out, fill, g);
    }
  }
  if (kind == 'f') {
    if (size == sizeof(float)) return run_real<float>(image, weights, out, fill, g);
    if (size == sizeof(double)) return run_real<double>(image, weights, out, fill, g);
    if (size == sizeof(long double)) return run_real<long double>(image, weights, out, fill, g);
  }
  if (kind == 'c') {
    if (size == 2 * sizeof(float)) return run_complex<float>(image, weights, out, fill, g);
    if (size == 2 * sizeof(double)) return run_complex<double>(image, weights, out, fill, g);
    if (size == 2 * sizeof(long double)) return run_complex<long double>(image, weights, out, fill, g);
  }
  throw TypeError("correlate2d: unsupported dtype " + std::string(py::str(image.dtype())));
}

template <class T>
void run_conv2d(const py::array& input, const py::array& weight, const py::object& bias,
                py::array& out, const conv::Conv2dShape& s, int threads) {
  const T* pi = static_cast<const T*>(input.data());
  const T* pw = static_cast<const T*>(weight.data());
  const T* pb = nullptr;
  if (!bias.is_none()) pb = static_cast<const T*>(bias.cast<py::array>().data());
  T* po = static_cast<T*>(out.mutable_data());
  EngineCall call;
  conv::conv2d<T>(pi, pw, pb, po, s, threads);
}

// input [n, c, h, w], weight [o, c / groups, kh, kw], bias [o] or None, out [n, o, oh, ow].
void conv2d(const py::array& input, const py::array& weight, const py::object& bias, py::array& out,
            std::array<index_t, 2> stride, std::array<index_t, 2> padding,
            std::array<index_t, 2> dilation, index_t groups, int num_threads) {
  require_contiguous(input, "input");
  require_contiguous(weight, "weight");
  require_contiguous(out, "out", true);
  require_same_dtype(input, weight, "input and weight");
  require_same_dtype(input, out, "input and out");
  check(input.ndim() == 4 && weight.ndim() == 4 && out.ndim() == 4,
        "input, weight and out must be 4-D");
  if (!bias.is_none()) {
    const auto b = bias.cast<py::array>();
    require_contiguous(b, "bias");
    require_same_dtype(input, b, "input and bias");
    check(b.ndim() == 1 && b.shape(0) == weight.shape(0), "bias must be 1-D of length O");
  }
  check(out.shape(0) == input.shape(0) && out.shape(1) == weight.shape(0),
        "out must be [n, o, oh, ow]");
  const conv::Conv2dShape s{input.shape(0), input.shape(1), input.shape(2), input.shape(3),
                            weight.shape(0), weight.shape(2), weight.shape(3),
                            out.shape(2), out.shape(3),
                            stride[0], stride[1], padding[0], padding[1],
                            dilation[0], dilation[1], groups};
  conv::check_conv2d_shape(s);
  check(weight.shape(1) * groups == input.shape(1), "weight must be [o, c / groups, kh, kw]");
  const char kind = input.dtype().kind();
  const auto size = input.dtype().itemsize();
  if (kind == 'f' && size == 4) return run_conv2d<float>(input, weight, bias, out, s, num_threads);
  if (kind == 'f' && size == 8) return run_conv2d<double>(input, weight, bias, out, s, num_threads);
  throw TypeError("conv2d: unsupported dtype " + std::string(py::str(input.dtype())));
}

}  // namespace

void register_conv2d(py::module_& m) {
  m.def("correlate2d", &correlate2d, py::arg("image"), py::arg("weights"), py::arg("out"),
        py::arg("top"), py::arg("left"), py::arg("boundary"), py::arg("fill"),
        py::arg("num_threads") = 0,
        "out[m, n] = sum_{j,k} ext(m - top + j, n - left + k) * weights[j, k]; boundary 0 fill, 1 wrap, 2 symm.");
  m.def("conv2d", &conv2d, py::arg("input"), py::arg("weight"), py::arg("bias"), py::arg("out"),
        py::arg("stride"), py::arg("padding"), py::arg("dilation"), py::arg("groups"),
        py::arg("num_threads") = 0,
        "NCHW convolution layer (torch.nn.functional.conv2d); padding is (top, left).");
}

}  // namespace deepret::bind
