// Bindings of the CUDA object-saliency family: device pointers as integers
// in, nothing computed here.
#include <cstdint>

#include "bindings.h"
#include "objects/objects.h"

namespace deepret::bind {

namespace {

template <class T>
T* ptr(std::uintptr_t p) {
  return reinterpret_cast<T*>(p);
}

}  // namespace

void register_objects_cuda(py::module_& m) {
  m.def(
      "object_saliency",
      [](bool is_double, std::uintptr_t a, std::uintptr_t fs, index_t b, index_t c, index_t h, index_t w,
         std::uintptr_t desc, std::uintptr_t boxes, std::uintptr_t weight, std::uintptr_t offsets, bool box_cover,
         std::uintptr_t out, std::uintptr_t status, std::uintptr_t stream) {
        py::gil_scoped_release release;
        objects::cuda::object_saliency(is_double, ptr<const void>(a), ptr<const void>(fs), b, c, h, w,
                                       ptr<const float>(desc), ptr<const double>(boxes), ptr<const double>(weight),
                                       ptr<const std::int64_t>(offsets), box_cover, ptr<void>(out), ptr<int>(status),
                                       stream);
      },
      py::arg("is_double"), py::arg("a"), py::arg("fs"), py::arg("b"), py::arg("c"), py::arg("h"), py::arg("w"),
      py::arg("descriptors"), py::arg("boxes"), py::arg("weights"), py::arg("offsets"), py::arg("box_cover"),
      py::arg("out"), py::arg("status"), py::arg("stream"));
  m.def(
      "weighted_pool",
      [](bool is_double, std::uintptr_t a, std::uintptr_t s, std::uintptr_t cw, index_t b, index_t c, index_t hw,
         bool normalize, std::uintptr_t out, std::uintptr_t status, std::uintptr_t stream) {
        py::gil_scoped_release release;
        objects::cuda::weighted_pool(is_double, ptr<const void>(a), ptr<const void>(s), ptr<const void>(cw), b, c,
                                     hw, normalize, ptr<void>(out), ptr<int>(status), stream);
      },
      py::arg("is_double"), py::arg("a"), py::arg("weights"), py::arg("channel_weights"), py::arg("b"),
      py::arg("c"), py::arg("hw"), py::arg("normalize"), py::arg("out"), py::arg("status"), py::arg("stream"));
  m.def(
      "crow_weights",
      [](bool is_double, std::uintptr_t a, index_t b, index_t c, index_t hw, double eps, std::uintptr_t spatial,
         std::uintptr_t channel, std::uintptr_t status, std::uintptr_t stream) {
        py::gil_scoped_release release;
        objects::cuda::crow_weights(is_double, ptr<const void>(a), b, c, hw, eps, ptr<void>(spatial),
                                    ptr<void>(channel), ptr<int>(status), stream);
      },
      py::arg("is_double"), py::arg("a"), py::arg("b"), py::arg("c"), py::arg("hw"), py::arg("eps"),
      py::arg("spatial"), py::arg("channel"), py::arg("status"), py::arg("stream"));
}

}  // namespace deepret::bind
