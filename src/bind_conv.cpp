// Bindings of the 1-D correlation engine: dtype dispatch and GIL release only.
#include <complex>
#include <cstdint>

#include "bindings.h"
#include "conv/conv.h"

namespace deepret::bind {

namespace {

template <class T>
void run_real(const py::array& a, const py::array& v, py::array& out, index_t left, int threads) {
  const T* pa = static_cast<const T*>(a.data());
  const T* pv = static_cast<const T*>(v.data());
  T* po = static_cast<T*>(out.mutable_data());
  const index_t n = a.size(), m = v.size(), len = out.size();
  EngineCall call;
  conv::correlate1d<T>(pa, n, pv, m, po, len, left, threads);
}

template <class T>
void run_complex(const py::array& a, const py::array& v, py::array& out, index_t left,
                 bool conjugate_v, int threads) {
  using C = std::complex<T>;
  const C* pa = static_cast<const C*>(a.data());
  const C* pv = static_cast<const C*>(v.data());
  C* po = static_cast<C*>(out.mutable_data());
  const index_t n = a.size(), m = v.size(), len = out.size();
  EngineCall call;
  conv::correlate1d_complex<T>(pa, n, pv, m, po, len, left, conjugate_v, threads);
}

void run_bool(const py::array& a, const py::array& v, py::array& out, index_t left, int threads) {
  const auto* pa = static_cast<const std::uint8_t*>(a.data());
  const auto* pv = static_cast<const std::uint8_t*>(v.data());
  auto* po = static_cast<std::uint8_t*>(out.mutable_data());
  const index_t n = a.size(), m = v.size(), len = out.size();
  EngineCall call;
  conv::correlate1d_bool(pa, n, pv, m, po, len, left, threads);
}

// out[o] = sum_j a[o - left + j] * v[j] (conj(v[j]) with conjugate_v), o < len(out).
void correlate1d(const py::array& a, const py::array& v, py::array& out, index_t left,
                 bool conjugate_v, int num_threads) {
  require_contiguous(a, "a");
  require_contiguous(v, "v");
  require_contiguous(out, "out", true);
  require_same_dtype(a, v, "a and v");
  require_same_dtype(a, out, "a and out");
  check(a.ndim() == 1 && v.ndim() == 1 && out.ndim() == 1, "a, v and out must be 1-D");
  const char kind = a.dtype().kind();
  const auto size = a.dtype().itemsize();
  // Signed integers run as their unsigned twins: wrap-around gives the same bits.
  if (kind == 'b') return run_bool(a, v, out, left, num_threads);
  if (kind == 'i' || kind == 'u') {
    switch (size) {
      case 1: return run_real<std::uint8_t>(a, v, out, left, num_threads);
      case 2: return run_real<std::uint16_t>(a, v, out, left, num_threads);
      case 4: return run_real<std::uint32_t>(a, v, out, left, num_threads);
      case 8: return run_real<std::uint64_t>(a, v, out, left, num_threads);
    }
  }
  if (kind == 'f') {
    if (size == sizeof(float)) return run_real<float>(a, v, out, left, num_threads);
    if (size == sizeof(double)) return run_real<double>(a, v, out, left, num_threads);
    if (size == sizeof(long double)) return run_real<long double>(a, v, out, left, num_threads);
  }
  if (kind == 'c') {
    if (size == 2 * sizeof(float)) return run_complex<float>(a, v, out, left, conjugate_v, num_threads);
    if (size == 2 * sizeof(double)) return run_complex<double>(a, v, out, left, conjugate_v, num_threads);
    if (size == 2 * sizeof(long double))
      return run_complex<long double>(a, v, out, left, conjugate_v, num_threads);
  }
  throw TypeError("correlate1d: unsupported dtype " + std::string(py::str(a.dtype())));
}

}  // namespace

void register_conv(py::module_& m) {
  m.def("correlate1d", &correlate1d, py::arg("a"), py::arg("v"), py::arg("out"), py::arg("left"),
        py::arg("conjugate_v") = false, py::arg("num_threads") = 0,
        "out[o] = sum_j a[o - left + j] * v[j] over the taps inside a; contiguous 1-D arrays of one dtype.");
}

}  // namespace deepret::bind
