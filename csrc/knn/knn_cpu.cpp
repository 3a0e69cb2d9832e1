// CPU driver of exact kNN: packs the database once, then runs blocks of
// queries in parallel; each block scores one L2-sized chunk of the database at
// a time with the SIMD micro-kernel (knn_simd.h) and feeds the chunk, still in
// cache, to each query's top-k heap. When there are too few query blocks to
// keep every thread busy, the database is split into parts instead and the
// parts' heaps are merged at the end.
#include <algorithm>
#include <cstdlib>
#include <limits>
#include <vector>

#include "common/errors.h"
#include "common/parallel.h"
#include "common/simd.h"
#include "knn/knn.h"
#include "knn/topk.h"

#define DEEPRET_SIMD_NS portable
#define DEEPRET_VBYTES 16
#include "knn/knn_simd.h"
#undef DEEPRET_SIMD_NS
#undef DEEPRET_VBYTES

namespace deepret::knn {

#if defined(DEEPRET_X86)
namespace avx2 {
template <class T, int NR>
void score_block(const T* q, index_t rows, index_t d, const T* panels, index_t panel_count,
                 const T* bias, T* scores, T* packed, bool pack);
}  // namespace avx2
#endif

namespace {

template <class T>
void free_aligned(T* p) {
  std::free(p);
}

template <class T>
T* alloc_aligned(index_t count) {
  const std::size_t bytes = ((sizeof(T) * std::max<index_t>(count, 1) + 63) / 64) * 64;
  void* p = std::aligned_alloc(64, bytes);
  if (!p) throw std::bad_alloc();
  return static_cast<T*>(p);
}

template <class T>
void score_block(const T* q, index_t rows, index_t d, const T* panels, index_t panel_count,
                 const T* bias, T* scores, T* packed, bool pack) {
  constexpr int NR = PackedDatabase<T>::kPanel;
#if defined(DEEPRET_X86)
  if (use_avx2_fma())
    return avx2::score_block<T, NR>(q, rows, d, panels, panel_count, bias, scores, packed, pack);
#endif
  portable::score_block<T, NR>(q, rows, d, panels, panel_count, bias, scores, packed, pack);
}

// Database panels per chunk: about 512 KiB of packed rows, so that a chunk and
// its block of scores stay in L2 while the heaps read them.
template <class T>
index_t chunk_panels(index_t d) {
  const index_t panel_bytes = index_t(sizeof(T)) * PackedDatabase<T>::kPanel * d;
  return std::clamp<index_t>((index_t(512) << 10) / panel_bytes, 1, 256);
}

template <class T>
T squared_norm(const T* row, index_t d) {
  T sum = T(0);
  for (index_t j = 0; j < d; ++j) sum += row[j] * row[j];
  return sum;
}

}  // namespace

template <class T>
PackedDatabase<T>::PackedDatabase(const T* x, index_t n, index_t d, int num_threads)
    : n_(n), d_(d), data_(nullptr, free_aligned<T>) {
  check(n >= 1 && d >= 1, "knn: the database must have at least one row and one column");
  const index_t count = panels();
  data_.reset(alloc_aligned<T>(count * kPanel * d));
  half_neg_norms_.reset(new T[static_cast<std::size_t>(count * kPanel)]);
  T* packed = data_.get();
  T* norms = half_neg_norms_.get();
  parallel_for(0, count, 16, num_threads, [&](index_t lo, index_t hi) {
    for (index_t p = lo; p < hi; ++p) {
      T* dst = packed + p * kPanel * d;
      for (int c = 0; c < kPanel; ++c) {
        const index_t row = p * kPanel + c;
        const T* src = x + row * d;
        if (row < n) {
          for (index_t j = 0; j < d; ++j) dst[j * kPanel + c] = src[j];
          norms[row] = T(-0.5) * squared_norm(src, d);
        } else {
          for (index_t j = 0; j < d; ++j) dst[j * kPanel + c] = T(0);
          norms[row] = T(0);
        }
      }
    }
  });
}

template <class T>
void search(const PackedDatabase<T>& db, const T* queries, index_t nq, index_t k, Metric metric,
            index_t self_offset, T* scores, std::int64_t* indices, int num_threads) {
  constexpr int NR = PackedDatabase<T>::kPanel;
  constexpr index_t kRows = portable::kBlockRows;
  const index_t n = db.size(), d = db.dim();
  const bool exclude_self = self_offset >= 0;
  check(k >= 1, "knn: k must be at least 1");
  check(k <= n - (exclude_self ? 1 : 0), "knn: k is larger than the number of candidates");
  if (nq == 0) return;

  const T lowest = -std::numeric_limits<T>::infinity();
  const T* bias = metric == Metric::L2 ? db.half_neg_norms() : nullptr;
  const index_t per_chunk = chunk_panels<T>(d);
  const index_t chunk_count = (db.panels() + per_chunk - 1) / per_chunk;
  const index_t blocks = (nq + kRows - 1) / kRows;
  const int threads = resolve_threads(num_threads);
  const index_t parts =
      blocks >= 4 * index_t(threads) ? 1 : std::min<index_t>(threads, chunk_count);

  // With parts > 1 each part keeps its own heaps, merged below.
  std::vector<T> part_scores(parts > 1 ? parts * nq * k : 0);
  std::vector<std::int64_t> part_indices(parts > 1 ? parts * nq * k : 0);
  std::vector<index_t> part_sizes(parts > 1 ? parts * nq : 0);

  parallel_for(0, blocks * parts, 1, num_threads, [&](index_t lo, index_t hi) {
    std::unique_ptr<T[]> packed(new T[static_cast<std::size_t>(kRows * d)]);
    std::unique_ptr<T[]> block_scores(new T[static_cast<std::size_t>(kRows * per_chunk * NR)]);
    std::vector<TopK<T>> heaps(kRows);
    for (index_t item = lo; item < hi; ++item) {
      const index_t block = item / parts, part = item % parts;
      const index_t q0 = block * kRows;
      const index_t rows = std::min(kRows, nq - q0);
      for (index_t r = 0; r < rows; ++r) {
        const index_t at = parts > 1 ? (part * nq + q0 + r) * k : (q0 + r) * k;
        heaps[r] = parts > 1 ? TopK<T>{part_scores.data() + at, part_indices.data() + at, k}
                             : TopK<T>{scores + at, indices + at, k};
      }
      const index_t c0 = chunk_count * part / parts, c1 = chunk_count * (part + 1) / parts;
      for (index_t chunk = c0; chunk < c1; ++chunk) {
        const index_t p0 = chunk * per_chunk;
        const index_t count = std::min(per_chunk, db.panels() - p0);
        const index_t ldc = count * NR;
        const index_t first = p0 * NR, valid = std::min(ldc, n - first);
        score_block<T>(queries + q0 * d, rows, d, db.panel(p0), count,
                       bias ? bias + first : nullptr, block_scores.get(), packed.get(),
                       chunk == c0);
        for (index_t r = 0; r < rows; ++r) {
          TopK<T>& heap = heaps[r];
          const T* row = block_scores.get() + r * ldc;
          const index_t self = exclude_self ? self_offset + q0 + r - first : -1;
          T threshold = heap.threshold(lowest);
          for (index_t c = 0; c < valid; ++c) {
            if (row[c] > threshold && c != self) {
              heap.push(row[c], first + c);
              threshold = heap.threshold(lowest);
            }
          }
        }
      }
      for (index_t r = 0; r < rows; ++r) {
        if (parts > 1) {
          part_sizes[part * nq + q0 + r] = heaps[r].size;
        } else {
          heaps[r].sort_best_first();
        }
      }
    }
  });

  if (parts > 1) {
    parallel_for(0, nq, 64, num_threads, [&](index_t lo, index_t hi) {
      for (index_t q = lo; q < hi; ++q) {
        TopK<T> heap{scores + q * k, indices + q * k, k};
        for (index_t part = 0; part < parts; ++part) {
          const index_t at = (part * nq + q) * k;
          for (index_t i = 0; i < part_sizes[part * nq + q]; ++i)
            heap.push(part_scores[at + i], part_indices[at + i]);
        }
        heap.sort_best_first();
      }
    });
  }

  if (metric == Metric::L2) {
    // The heaps held <q, x> - |x|^2 / 2; the distance is |q|^2 - 2 * that.
    parallel_for(0, nq, 256, num_threads, [&](index_t lo, index_t hi) {
      for (index_t q = lo; q < hi; ++q) {
        const T norm = squared_norm(queries + q * d, d);
        for (index_t i = 0; i < k; ++i) {
          T& s = scores[q * k + i];
          s = std::max(T(0), norm - T(2) * s);
        }
      }
    });
  }
}

template class PackedDatabase<float>;
template class PackedDatabase<double>;
template void search<float>(const PackedDatabase<float>&, const float*, index_t, index_t, Metric,
                            index_t, float*, std::int64_t*, int);
template void search<double>(const PackedDatabase<double>&, const double*, index_t, index_t,
                             Metric, index_t, double*, std::int64_t*, int);

}  // namespace deepret::knn
