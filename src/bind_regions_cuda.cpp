// Bindings of the CUDA EGM, feature saliency and pooling: device arrays in
// (device_array.h), checked here before anything reaches the GPU. Bad
// values found on the device (NaN, a negative activation, an empty box) set
// status[0] to 1 for the caller to raise.
#include <cstdint>

#include "bindings.h"
#include "device_array.h"
#include "egm/egm.h"
#include "pool/pool.h"

namespace deepret::bind {

namespace {

// Activations [b, c, hw] (or [b, c, h, w] with four dims) as float32/64 and a writable int32 status [1].
void check_activations(const DeviceArray& a, const DeviceArray& status, bool spatial) {
  require_dtype(a, {DType::F32, DType::F64});
  if (spatial)
    require_shape(a, {-1, -1, -1, -1}, "(b, c, h, w)");
  else
    require_shape(a, {-1, -1, -1}, "(b, c, h * w)");
  require_dtype(status, {DType::I32});
  require_shape(status, {1}, "(1,)");
}

}  // namespace

void register_regions_cuda(py::module_& m) {
  m.def(
      "egm",
      [](py::handle s_, py::handle means_, py::handle variances_, py::handle weights_, py::handle boxes_,
         py::handle counts_, double sigma, double lam, double tau, double threshold, double power, int max_iter,
         double box_scale, py::object allocate, std::uintptr_t stream) {
        const DeviceArray s = device_array(s_, "s"), means = device_array(means_, "means", true),
                          variances = device_array(variances_, "variances", true),
                          weights = device_array(weights_, "weights", true),
                          boxes = device_array(boxes_, "boxes", true), counts = device_array(counts_, "counts", true);
        require_dtype(s, {DType::F64});
        require_shape(s, {-1, -1, -1}, "(b, h, w)");
        const index_t b = s.dim(0), rows = s.size();
        for (const DeviceArray* a : {&means, &variances, &weights, &boxes}) require_dtype(*a, {DType::F64});
        require_shape(means, {rows, 2}, "(b * h * w, 2)");
        require_shape(variances, {rows, 2}, "(b * h * w, 2)");
        require_shape(weights, {rows}, "(b * h * w,)");
        require_shape(boxes, {rows, 4}, "(b * h * w, 4)");
        require_dtype(counts, {DType::I64});
        require_shape(counts, {b}, "(b,)");
        egm::Params p;
        p.sigma = sigma, p.lam = lam, p.tau = tau, p.threshold = threshold, p.power = power;
        p.max_iter = max_iter, p.box_scale = box_scale;
        DeviceCall call({&s, &means, &variances, &weights, &boxes, &counts}, stream);
        PyScratch scratch(std::move(allocate));
        py::gil_scoped_release release;
        egm::cuda::egm(s.data<const double>(), b, s.dim(1), s.dim(2), p, means.data<double>(),
                       variances.data<double>(), weights.data<double>(), boxes.data<double>(),
                       counts.data<std::int64_t>(), scratch, stream);
      },
      py::arg("s"), py::arg("means"), py::arg("variances"), py::arg("weights"), py::arg("boxes"), py::arg("counts"),
      py::kw_only(), py::arg("sigma"), py::arg("lam"), py::arg("tau"), py::arg("threshold"), py::arg("power"),
      py::arg("max_iter"), py::arg("box_scale"), py::arg("allocate"), py::arg("stream"),
      "EGM on float64 maps [b, h, w]; map i's regions go to rows [i*h*w, i*h*w + counts[i]).");
  m.def(
      "feature_saliency",
      [](py::handle a_, py::handle out_, py::handle status_, double eps, py::object allocate, std::uintptr_t stream) {
        const DeviceArray a = device_array(a_, "a"), out = device_array(out_, "out", true),
                          status = device_array(status_, "status", true);
        check_activations(a, status, false);
        require_same_dtype(a, out);
        require_shape(out, {a.dim(0), a.dim(2)}, "(b, h * w)");
        DeviceCall call({&a, &out, &status}, stream);
        PyScratch scratch(std::move(allocate));
        py::gil_scoped_release release;
        pool::cuda::feature_saliency(a.dtype, a.ptr, a.dim(0), a.dim(1), a.dim(2), eps, out.ptr,
                                     status.data<int>(), scratch, stream);
      },
      py::arg("a"), py::arg("out"), py::arg("status"), py::kw_only(), py::arg("eps"), py::arg("allocate"),
      py::arg("stream"));
  m.def(
      "global_pool",
      [](py::handle a_, py::handle out_, py::handle status_, int kind, double p, double eps, bool normalize,
         std::uintptr_t stream) {
        const DeviceArray a = device_array(a_, "a"), out = device_array(out_, "out", true),
                          status = device_array(status_, "status", true);
        check_activations(a, status, false);
        require_same_dtype(a, out);
        require_shape(out, {a.dim(0), a.dim(1)}, "(b, c)");
        check(kind >= 0 && kind <= 2, "kind must be 0 (mac), 1 (spoc) or 2 (gem)");
        DeviceCall call({&a, &out, &status}, stream);
        py::gil_scoped_release release;
        pool::cuda::global_pool(a.dtype, a.ptr, a.dim(0), a.dim(1), a.dim(2), static_cast<pool::Global>(kind), p,
                                eps, normalize, out.ptr, status.data<int>(), stream);
      },
      py::arg("a"), py::arg("out"), py::arg("status"), py::kw_only(), py::arg("kind"), py::arg("p"), py::arg("eps"),
      py::arg("normalize"), py::arg("stream"));
  m.def(
      "regional_max",
      [](py::handle a_, py::handle boxes_, py::handle image_, py::handle out_, py::handle status_, bool normalize,
         std::uintptr_t stream) {
        const DeviceArray a = device_array(a_, "a"), boxes = device_array(boxes_, "boxes"),
                          image = device_array(image_, "image"), out = device_array(out_, "out", true),
                          status = device_array(status_, "status", true);
        check_activations(a, status, true);
        require_dtype(boxes, {DType::F64});
        require_shape(boxes, {-1, 4}, "(k, 4)");
        require_dtype(image, {DType::I64});
        require_shape(image, {boxes.dim(0)}, "(k,)");
        require_same_dtype(a, out);
        require_shape(out, {boxes.dim(0), a.dim(1)}, "(k, c)");
        DeviceCall call({&a, &boxes, &image, &out, &status}, stream);
        py::gil_scoped_release release;
        pool::cuda::regional_max(a.dtype, a.ptr, a.dim(0), a.dim(1), a.dim(2), a.dim(3), boxes.data<const double>(),
                                 image.data<const std::int64_t>(), boxes.dim(0), normalize, out.ptr,
                                 status.data<int>(), stream);
      },
      py::arg("a"), py::arg("boxes"), py::arg("image"), py::arg("out"), py::arg("status"), py::kw_only(),
      py::arg("normalize"), py::arg("stream"));
  m.def(
      "rmac",
      [](py::handle a_, py::handle boxes_, py::handle out_, py::handle status_, py::object allocate,
         std::uintptr_t stream) {
        const DeviceArray a = device_array(a_, "a"), boxes = device_array(boxes_, "boxes"),
                          out = device_array(out_, "out", true), status = device_array(status_, "status", true);
        check_activations(a, status, true);
        require_dtype(boxes, {DType::F64});
        require_shape(boxes, {-1, 4}, "(r, 4)");
        require_same_dtype(a, out);
        require_shape(out, {a.dim(0), a.dim(1)}, "(b, c)");
        DeviceCall call({&a, &boxes, &out, &status}, stream);
        PyScratch scratch(std::move(allocate));
        py::gil_scoped_release release;
        pool::cuda::rmac(a.dtype, a.ptr, a.dim(0), a.dim(1), a.dim(2), a.dim(3), boxes.data<const double>(),
                         boxes.dim(0), out.ptr, status.data<int>(), scratch, stream);
      },
      py::arg("a"), py::arg("boxes"), py::arg("out"), py::arg("status"), py::kw_only(), py::arg("allocate"),
      py::arg("stream"));
}

}  // namespace deepret::bind
