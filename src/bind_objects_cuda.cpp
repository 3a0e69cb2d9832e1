// Bindings of the CUDA object-saliency family: device arrays in
// (device_array.h), checked here before anything reaches the GPU. Bad
// values found on the device set status[0] to 1 for the caller to raise.
#include <cstdint>

#include "bindings.h"
#include "device_array.h"
#include "objects/objects.h"

namespace deepret::bind {

namespace {

void check_status(const DeviceArray& status) {
  require_dtype(status, {DType::I32});
  require_shape(status, {1}, "(1,)");
}

}  // namespace

void register_objects_cuda(py::module_& m) {
  m.def(
      "object_saliency",
      [](py::handle a_, py::handle fs_, py::handle desc_, py::handle boxes_, py::handle weights_,
         py::handle offsets_, py::handle out_, py::handle status_, bool box_cover, std::uintptr_t stream) {
        const DeviceArray a = device_array(a_, "a"), fs = device_array(fs_, "fs"),
                          desc = device_array(desc_, "descriptors"), boxes = device_array(boxes_, "boxes"),
                          weights = device_array(weights_, "weights"), offsets = device_array(offsets_, "offsets"),
                          out = device_array(out_, "out", true), status = device_array(status_, "status", true);
        require_dtype(a, {DType::F32, DType::F64});
        require_shape(a, {-1, -1, -1, -1}, "(b, c, h, w)");
        const index_t b = a.dim(0), c = a.dim(1), h = a.dim(2), w = a.dim(3);
        require_same_dtype(a, fs);
        require_shape(fs, {b, h, w}, "(b, h, w)");
        require_dtype(desc, {DType::F32});
        require_shape(desc, {-1, c}, "(k, c)");
        const index_t k = desc.dim(0);
        require_dtype(boxes, {DType::F64});
        require_shape(boxes, {k, 4}, "(k, 4)");
        require_dtype(weights, {DType::F64});
        require_shape(weights, {k}, "(k,)");
        require_dtype(offsets, {DType::I64});
        require_shape(offsets, {b + 1}, "(b + 1,)");
        require_same_dtype(a, out);
        require_shape(out, {b, h, w}, "(b, h, w)");
        check_status(status);
        DeviceCall call({&a, &fs, &desc, &boxes, &weights, &offsets, &out, &status}, stream);
        py::gil_scoped_release release;
        objects::cuda::object_saliency(a.dtype, a.ptr, fs.ptr, b, c, h, w, desc.data<const float>(),
                                       boxes.data<const double>(), weights.data<const double>(),
                                       offsets.data<const std::int64_t>(), box_cover, out.ptr, status.data<int>(),
                                       stream);
      },
      py::arg("a"), py::arg("fs"), py::arg("descriptors"), py::arg("boxes"), py::arg("weights"), py::arg("offsets"),
      py::arg("out"), py::arg("status"), py::kw_only(), py::arg("box_cover"), py::arg("stream"));
  m.def(
      "weighted_pool",
      [](py::handle a_, py::handle s_, py::handle cw_, py::handle out_, py::handle status_, bool normalize,
         std::uintptr_t stream) {
        const DeviceArray a = device_array(a_, "a"), s = device_array(s_, "weights"),
                          out = device_array(out_, "out", true), status = device_array(status_, "status", true);
        const std::optional<DeviceArray> cw = optional_device_array(cw_, "channel_weights");
        require_dtype(a, {DType::F32, DType::F64});
        require_shape(a, {-1, -1, -1}, "(b, c, h * w)");
        require_same_dtype(a, s);
        require_shape(s, {a.dim(0), a.dim(2)}, "(b, h * w)");
        if (cw) {
          require_same_dtype(a, *cw);
          require_shape(*cw, {a.dim(0), a.dim(1)}, "(b, c)");
        }
        require_same_dtype(a, out);
        require_shape(out, {a.dim(0), a.dim(1)}, "(b, c)");
        check_status(status);
        DeviceCall call({&a, &s, cw ? &*cw : nullptr, &out, &status}, stream);
        py::gil_scoped_release release;
        objects::cuda::weighted_pool(a.dtype, a.ptr, s.ptr, cw ? cw->ptr : nullptr, a.dim(0), a.dim(1), a.dim(2),
                                     normalize, out.ptr, status.data<int>(), stream);
      },
      py::arg("a"), py::arg("weights"), py::arg("channel_weights"), py::arg("out"), py::arg("status"), py::kw_only(),
      py::arg("normalize"), py::arg("stream"));
  m.def(
      "crow_weights",
      [](py::handle a_, py::handle spatial_, py::handle channel_, py::handle status_, double eps,
         std::uintptr_t stream) {
        const DeviceArray a = device_array(a_, "a"), spatial = device_array(spatial_, "spatial", true),
                          channel = device_array(channel_, "channel", true),
                          status = device_array(status_, "status", true);
        require_dtype(a, {DType::F32, DType::F64});
        require_shape(a, {-1, -1, -1}, "(b, c, h * w)");
        require_same_dtype(a, spatial);
        require_shape(spatial, {a.dim(0), a.dim(2)}, "(b, h * w)");
        require_same_dtype(a, channel);
        require_shape(channel, {a.dim(0), a.dim(1)}, "(b, c)");
        check_status(status);
        DeviceCall call({&a, &spatial, &channel, &status}, stream);
        py::gil_scoped_release release;
        objects::cuda::crow_weights(a.dtype, a.ptr, a.dim(0), a.dim(1), a.dim(2), eps, spatial.ptr, channel.ptr,
                                    status.data<int>(), stream);
      },
      py::arg("a"), py::arg("spatial"), py::arg("channel"), py::arg("status"), py::kw_only(), py::arg("eps"),
      py::arg("stream"));
}

}  // namespace deepret::bind
