// Bindings of the object-saliency family (csrc/objects): array checks, dtype
// dispatch and GIL release only.
#include <cstdint>

#include <pybind11/numpy.h>

#include "bindings.h"
#include "objects/objects.h"

namespace deepret::bind {

namespace {

bool is_kind(const py::array& a, char kind, int itemsize) {
  return a.dtype().kind() == kind && a.dtype().itemsize() == itemsize;
}

// float64 (true) or float32 (false) for a, which every other T array must share.
bool float_type(const py::array& a, std::initializer_list<const py::array*> same, const char* name) {
  require_contiguous(a, name);
  check_type(is_kind(a, 'f', 4) || is_kind(a, 'f', 8), std::string(name) + " must be float32 or float64");
  for (const py::array* other : same) {
    require_contiguous(*other, "array");
    require_same_dtype(a, *other, "arrays of one call");
  }
  return a.dtype().itemsize() == 8;
}

void require(const py::array& a, char kind, int itemsize, const char* name) {
  require_contiguous(a, name);
  check_type(is_kind(a, kind, itemsize), std::string(name) + " has the wrong dtype");
}

template <class T>
T* ptr(py::array& a) { return static_cast<T*>(a.mutable_data()); }
template <class T>
const T* cptr(const py::array& a) { return static_cast<const T*>(a.data()); }

template <class T>
void object_saliency_t(const py::array& a, const py::array& fs, const py::array& desc, const py::array& boxes,
                       const py::array& weight, const py::array& offsets, bool box_cover, py::array& out,
                       int threads, bool check_input) {
  const index_t b = a.shape(0), c = a.shape(1), h = a.shape(2), w = a.shape(3), k = desc.shape(0);
  const T *pa = cptr<T>(a), *pf = cptr<T>(fs);
  const float* pd = cptr<float>(desc);
  const double *pb = cptr<double>(boxes), *pw = cptr<double>(weight);
  const std::int64_t* po = cptr<std::int64_t>(offsets);
  T* pout = ptr<T>(out);
  EngineCall call;
  objects::object_saliency<T>(pa, pf, b, c, h, w, pd, pb, pw, po, k, box_cover, pout, threads, check_input);
}

template <class T>
void weighted_pool_t(const py::array& a, const py::array& s, const py::object& cw, py::array& out,
                     bool normalize, int threads) {
  const index_t b = a.shape(0), c = a.shape(1), hw = a.shape(2);
  const T* pc = nullptr;
  py::array cwa;
  if (!cw.is_none()) {
    cwa = cw.cast<py::array>();
    pc = cptr<T>(cwa);
  }
  const T *pa = cptr<T>(a), *ps = cptr<T>(s);
  T* pout = ptr<T>(out);
  EngineCall call;
  objects::weighted_pool<T>(pa, ps, pc, b, c, hw, normalize, pout, threads);
}

template <class T>
void crow_t(const py::array& a, double eps, py::array& spatial, py::array& channel, int threads) {
  const index_t b = a.shape(0), c = a.shape(1), hw = a.shape(2);
  const T* pa = cptr<T>(a);
  T *ps = ptr<T>(spatial), *pc = ptr<T>(channel);
  EngineCall call;
  objects::crow_weights<T>(pa, b, c, hw, eps, ps, pc, threads);
}

template <class T>
void segment_t(const py::array& x, const py::object& wt, const py::array& offsets, int op, bool normalize,
               py::array& out, int threads) {
  const index_t n = x.shape(0), d = x.shape(1), b = offsets.shape(0) - 1;
  const double* pw = nullptr;
  py::array wa;
  if (!wt.is_none()) {
    wa = wt.cast<py::array>();
    require(wa, 'f', 8, "wt");
    check(wa.ndim() == 1 && wa.shape(0) == n, "wt must be (n,)");
    pw = cptr<double>(wa);
  }
  const T* px = cptr<T>(x);
  const std::int64_t* po = cptr<std::int64_t>(offsets);
  T* pout = ptr<T>(out);
  EngineCall call;
  objects::segment_reduce<T>(px, pw, po, n, d, b, static_cast<objects::Reduce>(op), normalize, pout, threads);
}

template <class T>
void drop_t(const py::array& scores, const py::array& ids, const py::array& group, index_t k,
            py::array& out_scores, py::array& out_ids, int threads) {
  const index_t n = scores.shape(0), kk = scores.shape(1);
  const T* ps = cptr<T>(scores);
  const std::int64_t *pi = cptr<std::int64_t>(ids), *pg = cptr<std::int64_t>(group);
  T* pos = ptr<T>(out_scores);
  std::int64_t* poi = ptr<std::int64_t>(out_ids);
  EngineCall call;
  objects::drop_same_group<T>(ps, pi, pg, n, kk, k, pos, poi, threads);
}

}  // namespace

void register_objects(py::module_& m) {
  m.def(
      "widen_range",
      [](const py::array& in, py::array& out, int threads) {
        const bool half = in.dtype().kind() == 'f' && in.itemsize() == 2;
        if (!half) require(in, 'f', 4, "in");
        require_contiguous(in, "in");
        require(out, 'f', 4, "out");
        require_contiguous(out, "out", true);
        check(in.size() == out.size(), "in and out must have the same size");
        float* po = ptr<float>(out);
        const index_t n = in.size();
        float lo = 0.0f, hi = 0.0f;
        {
          EngineCall call;
          if (half)
            objects::half_to_float(static_cast<const std::uint16_t*>(in.data()), n, po, &lo, &hi, threads);
          else
            objects::copy_float(cptr<float>(in), n, po, &lo, &hi, threads);
        }
        return py::make_tuple(lo, hi);
      },
      py::arg("in"), py::arg("out"), py::arg("num_threads") = 0);
  m.def(
      "object_saliency",
      [](const py::array& a, const py::array& fs, const py::array& desc, const py::array& boxes,
         const py::array& weight, const py::array& offsets, bool box_cover, py::array& out, int threads,
         bool check_input) {
        const bool f64 = float_type(a, {&fs, &out}, "a");
        require(desc, 'f', 4, "descriptors");
        require(boxes, 'f', 8, "boxes");
        require(weight, 'f', 8, "weights");
        require(offsets, 'i', 8, "offsets");
        require_contiguous(out, "out", true);
        check(a.ndim() == 4 && fs.ndim() == 3 && out.ndim() == 3 && desc.ndim() == 2 && boxes.ndim() == 2 &&
                  weight.ndim() == 1 && offsets.ndim() == 1,
              "a (b, c, h, w), fs and out (b, h, w), descriptors (k, c), boxes (k, 4), weights (k,), offsets (b+1,)");
        const index_t b = a.shape(0), c = a.shape(1), h = a.shape(2), w = a.shape(3), k = desc.shape(0);
        check(fs.shape(0) == b && fs.shape(1) == h && fs.shape(2) == w && out.shape(0) == b &&
                  out.shape(1) == h && out.shape(2) == w && desc.shape(1) == c && boxes.shape(0) == k &&
                  boxes.shape(1) == 4 && weight.shape(0) == k && offsets.shape(0) == b + 1,
              "object_saliency: array shapes do not agree");
        if (f64)
          return object_saliency_t<double>(a, fs, desc, boxes, weight, offsets, box_cover, out, threads,
                                           check_input);
        object_saliency_t<float>(a, fs, desc, boxes, weight, offsets, box_cover, out, threads, check_input);
      },
      py::arg("a"), py::arg("fs"), py::arg("descriptors"), py::arg("boxes"), py::arg("weights"),
      py::arg("offsets"), py::arg("box_cover"), py::arg("out"), py::arg("num_threads") = 0,
      py::arg("check_input") = true);
  m.def(
      "weighted_pool",
      [](const py::array& a, const py::array& s, const py::object& cw, py::array& out, bool normalize,
         int threads) {
        const bool f64 = float_type(a, {&s, &out}, "a");
        require_contiguous(out, "out", true);
        check(a.ndim() == 3 && s.ndim() == 2 && out.ndim() == 2 && s.shape(0) == a.shape(0) &&
                  s.shape(1) == a.shape(2) && out.shape(0) == a.shape(0) && out.shape(1) == a.shape(1),
              "a must be (b, c, hw), weights (b, hw), out (b, c)");
        if (!cw.is_none()) {
          const auto cwa = cw.cast<py::array>();
          require_contiguous(cwa, "channel_weights");
          require_same_dtype(a, cwa, "a and channel_weights");
          check(cwa.ndim() == 2 && cwa.shape(0) == a.shape(0) && cwa.shape(1) == a.shape(1),
                "channel_weights must be (b, c)");
        }
        if (f64) return weighted_pool_t<double>(a, s, cw, out, normalize, threads);
        weighted_pool_t<float>(a, s, cw, out, normalize, threads);
      },
      py::arg("a"), py::arg("weights"), py::arg("channel_weights"), py::arg("out"), py::arg("normalize"),
      py::arg("num_threads") = 0);
  m.def(
      "crow_weights",
      [](const py::array& a, double eps, py::array& spatial, py::array& channel, int threads) {
        const bool f64 = float_type(a, {&spatial, &channel}, "a");
        require_contiguous(spatial, "spatial", true);
        require_contiguous(channel, "channel", true);
        check(a.ndim() == 3 && spatial.ndim() == 2 && channel.ndim() == 2 && spatial.shape(0) == a.shape(0) &&
                  spatial.shape(1) == a.shape(2) && channel.shape(0) == a.shape(0) &&
                  channel.shape(1) == a.shape(1),
              "a must be (b, c, hw), spatial (b, hw), channel (b, c)");
        if (f64) return crow_t<double>(a, eps, spatial, channel, threads);
        crow_t<float>(a, eps, spatial, channel, threads);
      },
      py::arg("a"), py::arg("eps"), py::arg("spatial"), py::arg("channel"), py::arg("num_threads") = 0);
  m.def(
      "segment_reduce",
      [](const py::array& x, const py::object& wt, const py::array& offsets, int op, bool normalize,
         py::array& out, int threads) {
        const bool f64 = float_type(x, {&out}, "x");
        require(offsets, 'i', 8, "offsets");
        require_contiguous(out, "out", true);
        check(op == 0 || op == 1, "op must be 0 (sum) or 1 (max)");
        check(x.ndim() == 2 && offsets.ndim() == 1 && offsets.shape(0) >= 1 && out.ndim() == 2 &&
                  out.shape(0) == offsets.shape(0) - 1 && out.shape(1) == x.shape(1),
              "x must be (n, d), offsets (b + 1,), out (b, d)");
        if (f64) return segment_t<double>(x, wt, offsets, op, normalize, out, threads);
        segment_t<float>(x, wt, offsets, op, normalize, out, threads);
      },
      py::arg("x"), py::arg("wt"), py::arg("offsets"), py::arg("op"), py::arg("normalize"), py::arg("out"),
      py::arg("num_threads") = 0);
  m.def(
      "drop_same_group",
      [](const py::array& scores, const py::array& ids, const py::array& group, index_t k, py::array& out_scores,
         py::array& out_ids, int threads) {
        const bool f64 = float_type(scores, {&out_scores}, "scores");
        require(ids, 'i', 8, "ids");
        require(group, 'i', 8, "group");
        require(out_ids, 'i', 8, "out_ids");
        require_contiguous(out_scores, "out_scores", true);
        require_contiguous(out_ids, "out_ids", true);
        const index_t n = scores.ndim() == 2 ? scores.shape(0) : -1;
        check(scores.ndim() == 2 && ids.ndim() == 2 && ids.shape(0) == n && ids.shape(1) == scores.shape(1) &&
                  group.ndim() == 1 && group.shape(0) == n && out_scores.ndim() == 2 &&
                  out_scores.shape(0) == n && out_scores.shape(1) == k && out_ids.ndim() == 2 &&
                  out_ids.shape(0) == n && out_ids.shape(1) == k && k >= 0,
              "scores and ids must be (n, kk), group (n,), out_scores and out_ids (n, k)");
        if (f64) return drop_t<double>(scores, ids, group, k, out_scores, out_ids, threads);
        drop_t<float>(scores, ids, group, k, out_scores, out_ids, threads);
      },
      py::arg("scores"), py::arg("ids"), py::arg("group"), py::arg("k"), py::arg("out_scores"),
      py::arg("out_ids"), py::arg("num_threads") = 0);
}

}  // namespace deepret::bind
