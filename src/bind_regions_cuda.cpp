// Bindings of the CUDA EGM, feature saliency and pooling: device pointers as
// integers in, nothing computed here.
#include <cstdint>

#include "bindings.h"
#include "egm/egm.h"
#include "pool/pool.h"

namespace deepret::bind {

namespace {

template <class T>
T* ptr(std::uintptr_t p) {
  return reinterpret_cast<T*>(p);
}

}  // namespace

void register_regions_cuda(py::module_& m) {
  m.def(
      "egm",
      [](std::uintptr_t s, index_t b, index_t h, index_t w, double sigma, double lam, double tau, double threshold,
         double power, int max_iter, double box_scale, std::uintptr_t means, std::uintptr_t variances,
         std::uintptr_t weights, std::uintptr_t boxes, std::uintptr_t counts, std::uintptr_t stream) {
        egm::Params p;
        p.sigma = sigma, p.lam = lam, p.tau = tau, p.threshold = threshold, p.power = power;
        p.max_iter = max_iter, p.box_scale = box_scale;
        py::gil_scoped_release release;
        egm::cuda::egm(ptr<const double>(s), b, h, w, p, ptr<double>(means), ptr<double>(variances),
                       ptr<double>(weights), ptr<double>(boxes), ptr<std::int64_t>(counts), stream);
      },
      py::arg("s"), py::arg("b"), py::arg("h"), py::arg("w"), py::arg("sigma"), py::arg("lam"), py::arg("tau"),
      py::arg("threshold"), py::arg("power"), py::arg("max_iter"), py::arg("box_scale"), py::arg("means"),
      py::arg("variances"), py::arg("weights"), py::arg("boxes"), py::arg("counts"), py::arg("stream"),
      "EGM on float64 maps [b, h, w]; map i's regions go to rows [i*h*w, i*h*w + counts[i]).");
  m.def(
      "feature_saliency",
      [](bool is_double, std::uintptr_t a, index_t b, index_t c, index_t hw, double eps, std::uintptr_t out,
         std::uintptr_t status, std::uintptr_t stream) {
        py::gil_scoped_release release;
        pool::cuda::feature_saliency(is_double, ptr<const void>(a), b, c, hw, eps, ptr<void>(out),
                                     ptr<int>(status), stream);
      },
      py::arg("is_double"), py::arg("a"), py::arg("b"), py::arg("c"), py::arg("hw"), py::arg("eps"),
      py::arg("out"), py::arg("status"), py::arg("stream"));
  m.def(
      "global_pool",
      [](bool is_double, std::uintptr_t a, index_t b, index_t c, index_t hw, int kind, double p, double eps,
         bool normalize, std::uintptr_t out, std::uintptr_t status, std::uintptr_t stream) {
        check(kind >= 0 && kind <= 2, "kind must be 0 (mac), 1 (spoc) or 2 (gem)");
        py::gil_scoped_release release;
        pool::cuda::global_pool(is_double, ptr<const void>(a), b, c, hw, static_cast<pool::Global>(kind), p, eps,
                                normalize, ptr<void>(out), ptr<int>(status), stream);
      },
      py::arg("is_double"), py::arg("a"), py::arg("b"), py::arg("c"), py::arg("hw"), py::arg("kind"),
      py::arg("p"), py::arg("eps"), py::arg("normalize"), py::arg("out"), py::arg("status"), py::arg("stream"));
  m.def(
      "regional_max",
      [](bool is_double, std::uintptr_t a, index_t b, index_t c, index_t h, index_t w, std::uintptr_t boxes,
         std::uintptr_t image, index_t k, bool normalize, std::uintptr_t out, std::uintptr_t status,
         std::uintptr_t stream) {
        py::gil_scoped_release release;
        pool::cuda::regional_max(is_double, ptr<const void>(a), b, c, h, w, ptr<const double>(boxes),
                                 ptr<const std::int64_t>(image), k, normalize, ptr<void>(out), ptr<int>(status),
                                 stream);
      },
      py::arg("is_double"), py::arg("a"), py::arg("b"), py::arg("c"), py::arg("h"), py::arg("w"),
      py::arg("boxes"), py::arg("image"), py::arg("k"), py::arg("normalize"), py::arg("out"), py::arg("status"),
      py::arg("stream"));
  m.def(
      "rmac",
      [](bool is_double, std::uintptr_t a, index_t b, index_t c, index_t h, index_t w, std::uintptr_t boxes,
         index_t r, std::uintptr_t out, std::uintptr_t status, std::uintptr_t stream) {
        py::gil_scoped_release release;
        pool::cuda::rmac(is_double, ptr<const void>(a), b, c, h, w, ptr<const double>(boxes), r, ptr<void>(out),
                         ptr<int>(status), stream);
      },
      py::arg("is_double"), py::arg("a"), py::arg("b"), py::arg("c"), py::arg("h"), py::arg("w"),
      py::arg("boxes"), py::arg("r"), py::arg("out"), py::arg("status"), py::arg("stream"));
}

}  // namespace deepret::bind
