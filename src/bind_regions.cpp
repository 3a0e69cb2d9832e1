// Bindings of EGM, feature saliency and pooling: array checks, dtype dispatch
// and GIL release only.
#include <cstdint>
#include <string>
#include <vector>

#include <pybind11/numpy.h>

#include "bindings.h"
#include "egm/egm.h"
#include "pool/pool.h"

namespace deepret::bind {

namespace {

using Doubles = py::array_t<double, py::array::c_style>;

py::array to_array(const std::vector<double>& v, index_t cols) {
  const index_t rows = cols > 0 ? static_cast<index_t>(v.size()) / cols : static_cast<index_t>(v.size());
  if (cols == 0) return Doubles({rows}, v.data());
  return Doubles({rows, cols}, v.data());
}

// s [b, h, w] float64 -> (means [K, 2], variances [K, 2], weights [K], boxes [K, 4], counts [b]).
py::tuple egm(const py::array& s, double sigma, double lam, double tau, double threshold, double power,
              int max_iter, double box_scale, int num_threads) {
  require_contiguous(s, "s");
  check(s.ndim() == 3, "s must be 3-D (b, h, w)");
  check_type(s.dtype().kind() == 'f' && s.dtype().itemsize() == 8, "s must be float64");
  egm::Params p;
  p.sigma = sigma, p.lam = lam, p.tau = tau, p.threshold = threshold, p.power = power;
  p.max_iter = max_iter, p.box_scale = box_scale;
  const index_t b = s.shape(0), h = s.shape(1), w = s.shape(2);
  const double* data = static_cast<const double*>(s.data());
  egm::Result r;
  {
    EngineCall call;
    r = egm::egm(data, b, h, w, p, num_threads);
  }
  py::array_t<std::int64_t> counts({b}, r.counts.data());
  return py::make_tuple(to_array(r.means, 2), to_array(r.variances, 2), to_array(r.weights, 0),
                        to_array(r.boxes, 4), counts);
}

template <class T>
void saliency_t(const py::array& a, py::array& out, double eps, int threads, bool check_input) {
  const T* pa = static_cast<const T*>(a.data());
  T* po = static_cast<T*>(out.mutable_data());
  const index_t b = a.shape(0), c = a.shape(1), hw = a.shape(2);
  EngineCall call;
  pool::feature_saliency<T>(pa, b, c, hw, eps, po, threads, check_input);
}

template <class T>
void global_t(const py::array& a, py::array& out, pool::Global kind, double p, double eps, bool normalize,
              int threads) {
  const T* pa = static_cast<const T*>(a.data());
  T* po = static_cast<T*>(out.mutable_data());
  const index_t b = a.shape(0), c = a.shape(1), hw = a.shape(2);
  EngineCall call;
  pool::global_pool<T>(pa, b, c, hw, kind, p, eps, normalize, po, threads);
}

template <class T>
void regional_t(const py::array& a, const py::array& boxes, const py::array& image, py::array& out,
                bool normalize, int threads, bool check_input) {
  const T* pa = static_cast<const T*>(a.data());
  const double* pb = static_cast<const double*>(boxes.data());
  const auto* pi = static_cast<const std::int64_t*>(image.data());
  T* po = static_cast<T*>(out.mutable_data());
  const index_t b = a.shape(0), c = a.shape(1), h = a.shape(2), w = a.shape(3), k = boxes.shape(0);
  EngineCall call;
  pool::regional_max<T>(pa, b, c, h, w, pb, pi, k, normalize, po, threads, check_input);
}

template <class T>
void rmac_t(const py::array& a, const py::array& regions, py::array& out, int threads) {
  const T* pa = static_cast<const T*>(a.data());
  const auto* pr = static_cast<const std::int64_t*>(regions.data());
  T* po = static_cast<T*>(out.mutable_data());
  const index_t b = a.shape(0), c = a.shape(1), h = a.shape(2), w = a.shape(3), r = regions.shape(0);
  EngineCall call;
  pool::rmac<T>(pa, b, c, h, w, pr, r, po, threads);
}

bool is_f64(const py::array& a, const py::array& out) {
  require_contiguous(a, "a");
  require_contiguous(out, "out", true);
  require_same_dtype(a, out, "a and out");
  check_type(a.dtype().kind() == 'f' && (a.dtype().itemsize() == 4 || a.dtype().itemsize() == 8),
             "a must be float32 or float64");
  return a.dtype().itemsize() == 8;
}

}  // namespace

void register_regions(py::module_& m) {
  m.def("egm", &egm, py::arg("s"), py::arg("sigma"), py::arg("lam"), py::arg("tau"), py::arg("threshold"),
        py::arg("power"), py::arg("max_iter"), py::arg("box_scale"), py::arg("num_threads") = 0,
        "EGM on contiguous float64 maps (b, h, w): (means, variances, weights, boxes, counts).");
  m.def(
      "feature_saliency",
      [](const py::array& a, py::array& out, double eps, int threads, bool check_input) {
        check(a.ndim() == 3 && out.ndim() == 2, "a must be (b, c, h*w) and out (b, h*w)");
        if (is_f64(a, out)) return saliency_t<double>(a, out, eps, threads, check_input);
        saliency_t<float>(a, out, eps, threads, check_input);
      },
      py::arg("a"), py::arg("out"), py::arg("eps"), py::arg("num_threads") = 0, py::arg("check_input") = true);
  m.def(
      "global_pool",
      [](const py::array& a, py::array& out, int kind, double p, double eps, bool normalize, int threads) {
        check(a.ndim() == 3 && out.ndim() == 2, "a must be (b, c, h*w) and out (b, c)");
        check(kind >= 0 && kind <= 2, "kind must be 0 (mac), 1 (spoc) or 2 (gem)");
        const auto g = static_cast<pool::Global>(kind);
        if (is_f64(a, out)) return global_t<double>(a, out, g, p, eps, normalize, threads);
        global_t<float>(a, out, g, p, eps, normalize, threads);
      },
      py::arg("a"), py::arg("out"), py::arg("kind"), py::arg("p"), py::arg("eps"), py::arg("normalize"),
      py::arg("num_threads") = 0);
  m.def(
      "regional_max",
      [](const py::array& a, const py::array& boxes, const py::array& image, py::array& out, bool normalize,
         int threads, bool check_input) {
        require_contiguous(boxes, "boxes");
        require_contiguous(image, "image");
        check(a.ndim() == 4 && boxes.ndim() == 2 && boxes.shape(1) == 4 && image.ndim() == 1 &&
                  image.shape(0) == boxes.shape(0) && out.ndim() == 2,
              "a must be (b, c, h, w), boxes (k, 4), image (k,), out (k, c)");
        check_type(boxes.dtype().kind() == 'f' && boxes.dtype().itemsize() == 8, "boxes must be float64");
        check_type(image.dtype().kind() == 'i' && image.dtype().itemsize() == 8, "image must be int64");
        if (is_f64(a, out)) return regional_t<double>(a, boxes, image, out, normalize, threads, check_input);
        regional_t<float>(a, boxes, image, out, normalize, threads, check_input);
      },
      py::arg("a"), py::arg("boxes"), py::arg("image"), py::arg("out"), py::arg("normalize"),
      py::arg("num_threads") = 0, py::arg("check_input") = true);
  m.def(
      "rmac",
      [](const py::array& a, const py::array& regions, py::array& out, int threads) {
        require_contiguous(regions, "regions");
        check(a.ndim() == 4 && regions.ndim() == 2 && regions.shape(1) == 4 && out.ndim() == 2,
              "a must be (b, c, h, w), regions (r, 4), out (b, c)");
        check_type(regions.dtype().kind() == 'i' && regions.dtype().itemsize() == 8, "regions must be int64");
        if (is_f64(a, out)) return rmac_t<double>(a, regions, out, threads);
        rmac_t<float>(a, regions, out, threads);
      },
      py::arg("a"), py::arg("regions"), py::arg("out"), py::arg("num_threads") = 0);
}

}  // namespace deepret::bind
