// Object saliency (Siméoni et al., WACV 2018) and the collection-level pieces
// around it: the object-saliency map, weighted sum pooling (CroW and pooling
// with a saliency map as spatial weights), sums of rows per image, and the
// removal of same-image neighbours from a kNN list, and the checked load of a
// batch of activations. Parallel over images (or rows); sums in double (the
// OS maps' dot products: float32 over 64 channels, then double). The
// formulas are in docs/objects.md.
#pragma once

#include <cstdint>

#include "common/array_view.h"
#include "common/device.h"
#include "common/dtype.h"

namespace deepret::objects {

// Object-saliency maps. For map m, its regions are rows offsets[m] ..
// offsets[m + 1] - 1 of desc / boxes / weight. With a_p the activation
// vector at pixel p and u_p = a_p / ||a_p|| (0 when a_p = 0):
//   out[m, p] = fs[m, p] * sum_{i in N_p} max(0, <desc_i, u_p>) * weight_i,
// N_p = the map's regions whose box (y0, x0, y1, x1) holds p's centre
// (y0 <= y <= y1, x0 <= x <= x1) when box_cover, else all the map's regions.
// ValueError for non-finite or negative activations (unless !check_input:
// the caller has checked a) or offsets out of order.
template <class T>
void object_saliency(const T* a,                  // [b, c, h, w]
                     const T* fs,                 // [b, h, w]
                     index_t b, index_t c, index_t h, index_t w,
                     const float* desc,           // [k, c]
                     const double* boxes,         // [k, 4] (y0, x0, y1, x1)
                     const double* weight,        // [k]
                     const std::int64_t* offsets, // [b + 1]
                     index_t k, bool box_cover,
                     T* out,                      // [b, h, w]
                     int num_threads, bool check_input = true);

// Weighted sum pooling: out[m, j] = cw[m, j] * sum_p s[m, p] a[m, j, p]
// (cw = 1 when null), L2-normalized (v / (||v|| + 1e-6)) when `normalize`.
// ValueError for non-finite activations or weights.
template <class T>
void weighted_pool(const T* a,   // [b, c, hw]
                   const T* s,   // [b, hw]
                   const T* cw,  // [b, c] or nullptr
                   index_t b, index_t c, index_t hw, bool normalize,
                   T* out,       // [b, c]
                   int num_threads);

// CroW's weights (Kalantidis et al. 2016, alpha = beta = 2): spatial
// s[m, p] = sqrt(S_p / ||S||_2) with S_p = sum_j a[m, j, p] (0 where S = 0),
// channel cw[m, j] = log(sum_i (q_i + eps) / (q_j + eps)), q_j the fraction
// of positions where channel j is non-zero. ValueError for negative or
// non-finite activations.
template <class T>
void crow_weights(const T* a,  // [b, c, hw]
                  index_t b, index_t c, index_t hw, double eps,
                  T* spatial,  // [b, hw]
                  T* channel,  // [b, c]
                  int num_threads);

enum class Reduce : int { Sum = 0, Max = 1 };

// Per-segment reduction of rows: out[m] = reduce over rows r in
// [offsets[m], offsets[m + 1]) of wt[r] * x[r] (wt = 1 when null); Sum
// accumulates in double; Max of an empty segment is -inf, Sum 0. L2
// normalization of each out row when `normalize` (Sum only).
template <class T>
void segment_reduce(const T* x,                   // [n, d]
                    const double* wt,             // [n] or nullptr
                    const std::int64_t* offsets,  // [b + 1]
                    index_t n, index_t d, index_t b, Reduce op, bool normalize,
                    T* out,                       // [b, d]
                    int num_threads);

// The first k neighbours of each row that belong to another group:
// out_ids[i] lists, in input order, the entries j of ids[i] with
// group[j] != group[i] (and j >= 0), padded with -1 (score 0) when fewer.
template <class T>
void drop_same_group(const T* scores,             // [n, kk]
                     const std::int64_t* ids,     // [n, kk]
                     const std::int64_t* group,   // [n]
                     index_t n, index_t kk, index_t k,
                     T* out_scores,               // [n, k]
                     std::int64_t* out_ids,       // [n, k]
                     int num_threads);

// Activations into a float32 work buffer, checked in the same pass: IEEE
// binary16 -> binary32 exactly (F16C where the AVX2/AVX-512 path runs,
// integer bit arithmetic elsewhere), or a float32 copy. *lo / *hi get
// the smallest and largest value, both NaN when any value is NaN or
// infinite, so one comparison tells the caller whether the input was
// finite and non-negative.
void half_to_float(const std::uint16_t* in,  // [n]
                   index_t n,
                   float* out,               // [n]
                   float* lo, float* hi, int num_threads);
void copy_float(const float* in,  // [n]
                index_t n,
                float* out,       // [n]
                float* lo, float* hi, int num_threads);

}  // namespace deepret::objects

// ---------------------------------------------------------------- CUDA engine
// (objects_cuda.cu; built only with DEEPRET_CUDA): object_saliency,
// weighted_pool and crow_weights on device pointers, float32 or float64
// (is_double), queued on `stream`. Bad input (negative or non-finite
// activations where the CPU raises) sets *status (a device int the caller
// zeroed) to 1; the caller turns that into ValueError.
namespace deepret::objects::cuda {

void object_saliency(DType dtype, const void* a,  // [b, c, h, w] on the device
                     const void* fs,                 // [b, h, w] on the device
                     index_t b, index_t c, index_t h, index_t w,
                     const float* desc,              // [k, c] on the device
                     const double* boxes,            // [k, 4] on the device
                     const double* weight,           // [k] on the device
                     const std::int64_t* offsets,    // [b + 1] on the device
                     bool box_cover,
                     void* out,                      // [b, h, w] on the device
                     int* status, std::uintptr_t stream);
void weighted_pool(DType dtype, const void* a,  // [b, c, hw] on the device
                   const void* s,                  // [b, hw] on the device
                   const void* cw,                 // [b, c] on the device or nullptr
                   index_t b, index_t c, index_t hw, bool normalize,
                   void* out,                      // [b, c] on the device
                   int* status, std::uintptr_t stream);
void crow_weights(DType dtype, const void* a,  // [b, c, hw] on the device
                  index_t b, index_t c, index_t hw, double eps,
                  void* spatial,                  // [b, hw] on the device
                  void* channel,                  // [b, c] on the device
                  int* status, std::uintptr_t stream);

}  // namespace deepret::objects::cuda
