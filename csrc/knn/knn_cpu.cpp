// CPU driver of exact kNN: packs the database once, then runs blocks of
// queries in parallel; each block scores one L2-sized chunk of the database at
// a time with the SIMD micro-kernel (knn_simd.h) and feeds the chunk, still in
// cache, to each query's top-k heap. When there are too few query blocks to
// keep every thread busy, the database is split into parts instead and the
// parts' heaps are merged at the end. The all-vs-all (search_self) and one
// rectangle of a split all-vs-all (search_pair, for deepret.dask) share one
// tile runner: each score tile computed once feeds the heaps of its rows and
// of its columns. merge_sorted and finish_distances complete a split search.
#include <algorithm>
#include <exception>
#include <limits>
#include <utility>
#include <vector>

#include "common/buffer.h"
#include "common/errors.h"
#include "common/parallel.h"
#include "common/simd.h"
#include "knn/knn.h"
#include "knn/tile_schedule.h"
#include "knn/topk.h"

#define DEEPRET_SIMD_NS portable
#define DEEPRET_VBYTES 16
#include "knn/knn_simd.h"
#undef DEEPRET_SIMD_NS
#undef DEEPRET_VBYTES

namespace deepret::knn {

#if defined(DEEPRET_X86)
namespace avx2 {  // knn_cpu_avx2.cpp, compiled with -mavx2 -mfma
#include "knn/knn_kernels.inc"
}  // namespace avx2
namespace avx512 {  // knn_cpu_avx512.cpp, compiled with -mavx512f
#include "knn/knn_kernels.inc"
}  // namespace avx512
#endif

namespace {

template <class T>
void score_block(const T* q, index_t rows, index_t d, const T* panels, index_t panel_count,
                 const T* bias, T* scores, T* packed, bool pack) {
  constexpr int NR = PackedDatabase<T>::kPanel;
#if defined(DEEPRET_X86)
  if (use_avx512f())
    return avx512::score_block<T, NR>(q, rows, d, panels, panel_count, bias, scores, packed, pack);
  if (use_avx2_fma())
    return avx2::score_block<T, NR>(q, rows, d, panels, panel_count, bias, scores, packed, pack);
#endif
  portable::score_block<T, NR>(q, rows, d, panels, panel_count, bias, scores, packed, pack);
}

// Columns whose score may enter a heap (see knn_simd.h), on the SIMD path.
template <class T>
index_t candidates(const T* row, const T* column_bias, T row_bias, const T* thresholds,
                   T threshold, index_t count, std::int32_t* out) {
#if defined(DEEPRET_X86)
  if (use_avx512f())
    return avx512::candidates<T>(row, column_bias, row_bias, thresholds, threshold, count, out);
  if (use_avx2_fma())
    return avx2::candidates<T>(row, column_bias, row_bias, thresholds, threshold, count, out);
#endif
  return portable::candidates<T>(row, column_bias, row_bias, thresholds, threshold, count, out);
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

// The heaps of an L2 search hold <q, x> - |x|^2 / 2; the distance is
// |q|^2 - 2 * that, clipped at 0 against rounding.
template <class T, class Norm>
void finish_l2(T* scores, index_t nq, index_t k, int num_threads, const Norm& query_norm) {
  parallel_for(0, nq, 256, num_threads, [&](index_t lo, index_t hi) {
    for (index_t q = lo; q < hi; ++q) {
      const T norm = query_norm(q);
      for (index_t i = 0; i < k; ++i) {
        T& s = scores[q * k + i];
        s = std::max(T(0), norm - T(2) * s);
      }
    }
  });
}

// Rows per block of the all-vs-all search: a B x B score tile and B packed
// rows together in about 1.25 MiB of L2.
template <class T>
index_t self_block_rows(index_t d) {
  index_t rows = 512;
  while (rows > 64 && index_t(sizeof(T)) * (rows * rows + rows * d) > (index_t(5) << 18)) rows -= 32;
  return rows;
}

// One side of a rectangle of the all-vs-all: its rows, their -|x|^2 / 2 and
// their heaps (the same side twice for the self search).
template <class T>
struct Side {
  const T* x;         // [n, d] rows
  const T* half_neg;  // [n]
  TopK<T>* heaps;     // [n]
  index_t n;
};

// A worker thread's buffers for run_tile.
template <class T>
struct TileScratch {
  Buffer<T> packed, tile, column_threshold;
  Buffer<std::int32_t> found;
  TileScratch(index_t d, index_t rows_per_block)
      : packed(allocate<T>(portable::kBlockRows * d, "kNN query packing")),
        tile(allocate<T>((rows_per_block + portable::kBlockRows) * rows_per_block, "a kNN score tile")),
        column_threshold(allocate<T>(rows_per_block, "kNN thresholds")),
        found(allocate<std::int32_t>(rows_per_block, "kNN candidates")) {}
};

// Tile (bi, bj): scores of block bi of `rows` against block bj of `cols`
// (packed in db), computed once; the row scan feeds the heaps of rows' block
// (candidates from cols), the column scan those of cols' block (from rows).
// A diagonal tile (the same block of the same side) feeds its rows only.
template <class T>
void run_tile(const PackedDatabase<T>& db, const Side<T>& rows, const Side<T>& cols,
              index_t rows_per_block, index_t bi, index_t bj, bool diagonal, bool exclude_self,
              bool l2, TileScratch<T>& scratch) {
  constexpr int NR = PackedDatabase<T>::kPanel;
  constexpr index_t kRows = portable::kBlockRows;
  const index_t d = db.dim();
  const T lowest = -std::numeric_limits<T>::infinity();
  T* tile = scratch.tile.get();
  T* column_threshold = scratch.column_threshold.get();
  std::int32_t* found = scratch.found.get();
  const index_t i0 = bi * rows_per_block, i1 = std::min(rows.n, i0 + rows_per_block);
  const index_t j0 = bj * rows_per_block, j1 = std::min(cols.n, j0 + rows_per_block);
  const index_t panel0 = j0 / NR, panel_count = (j1 - j0 + NR - 1) / NR;
  const index_t ldc = panel_count * NR;
  for (index_t r0 = i0; r0 < i1; r0 += kRows)
    score_block<T>(rows.x + r0 * d, std::min(kRows, i1 - r0), d, db.panel(panel0), panel_count,
                   nullptr, tile + (r0 - i0) * ldc, scratch.packed.get(), true);
  for (index_t r = 0; r < i1 - i0; ++r) {
    TopK<T>& heap = rows.heaps[i0 + r];
    const T* row = tile + r * ldc;
    const index_t self = diagonal && exclude_self ? r : -1;
    const index_t hits = candidates<T>(row, l2 ? cols.half_neg + j0 : nullptr, T(0), nullptr,
                                       heap.threshold(lowest), j1 - j0, found);
    for (index_t h = 0; h < hits; ++h) {
      const index_t c = found[h];
      const T s = l2 ? row[c] + cols.half_neg[j0 + c] : row[c];
      if (c != self && heap.accepts(s, j0 + c)) heap.push(s, j0 + c);
    }
  }
  if (diagonal) return;
  for (index_t c = 0; c < j1 - j0; ++c) column_threshold[c] = cols.heaps[j0 + c].threshold(lowest);
  for (index_t r = 0; r < i1 - i0; ++r) {
    const T* row = tile + r * ldc;
    const T bias = l2 ? rows.half_neg[i0 + r] : T(0);
    const index_t hits = candidates<T>(row, nullptr, bias, column_threshold, T(0), j1 - j0, found);
    for (index_t h = 0; h < hits; ++h) {
      const index_t c = found[h];
      const T s = row[c] + bias;
      TopK<T>& heap = cols.heaps[j0 + c];
      if (heap.accepts(s, i0 + r)) {
        heap.push(s, i0 + r);
        column_threshold[c] = heap.threshold(lowest);
      }
    }
  }
}

// Runs tile(bi, bj, scratch) for every pair of `rounds` on `threads` worker
// loops of the runtime's pool, each claiming tiles from a TileScheduler until
// none is left. A failure on any thread (an allocation, an interrupt,
// progress() raising) stops the scheduler, so that no thread waits for a
// block the failed one held. `progress(done, total)` as in search_self.
template <class T, class Tile>
void run_tiles(const TileRounds& rounds, index_t blocks,
               int threads, index_t d, index_t rows_per_block,
               const std::function<void(index_t, index_t)>& progress, const Tile& tile) {
  TileScheduler tiles(rounds, blocks);
  const index_t total = tiles.size();
  auto work = [&] {
    try {
      TileScratch<T> scratch(d, rows_per_block);
      const bool caller = on_calling_thread();
      std::pair<index_t, index_t> pair;
      index_t slot, reported = 0;
      while (tiles.next(&pair, &slot)) {
        tile(pair.first, pair.second, scratch);
        const index_t done = tiles.finish(slot);
        // About a hundred reports in all, from the calling thread only.
        if (caller && progress && (done - reported) * 100 >= total) {
          reported = done;
          progress(done, total);
        }
        checkpoint();
      }
    } catch (...) {
      tiles.stop();
      throw;
    }
  };
  run_chunks(threads, threads, [&](std::int64_t) { work(); });
  if (progress) progress(total, total);
}

}  // namespace

template <class T>
PackedDatabase<T>::PackedDatabase(const T* x, index_t n, index_t d, int num_threads)
    : n_(n), d_(d) {
  check(n >= 1 && d >= 1, "knn: the database must have at least one row and one column");
  const index_t count = panels();
  data_ = allocate<T>(count * kPanel * d, "the packed kNN database", 64);
  half_neg_norms_ = allocate<T>(count * kPanel, "the kNN database norms");
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
            index_t self_offset, T* scores, std::int64_t* indices, int num_threads, bool raw) {
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
  const index_t part_entries = parts > 1 ? parts * nq * k : 0;
  Buffer<T> part_scores = allocate<T>(part_entries, "the kNN heaps of the database parts");
  Buffer<std::int64_t> part_indices =
      allocate<std::int64_t>(part_entries, "the kNN heaps of the database parts");
  Buffer<index_t> part_sizes = allocate<index_t>(parts > 1 ? parts * nq : 0, "the kNN heaps");

  parallel_for(0, blocks * parts, 1, num_threads, [&](index_t lo, index_t hi) {
    // Per chunk: scratch lives while its chunk runs, never beyond the call.
    Buffer<T> packed = allocate<T>(kRows * d, "kNN query packing");
    Buffer<T> block_scores = allocate<T>(kRows * per_chunk * NR, "a kNN score block");
    Scratch<TopK<T>> heaps(static_cast<std::size_t>(kRows));
    Buffer<std::int32_t> found = allocate<std::int32_t>(per_chunk * NR, "kNN candidates");
    for (index_t item = lo; item < hi; ++item) {
      if (item > lo) checkpoint();
      const index_t block = item / parts, part = item % parts;
      const index_t q0 = block * kRows;
      const index_t rows = std::min(kRows, nq - q0);
      for (index_t r = 0; r < rows; ++r) {
        const index_t at = parts > 1 ? (part * nq + q0 + r) * k : (q0 + r) * k;
        heaps[r] = parts > 1 ? TopK<T>{part_scores.get() + at, part_indices.get() + at, k}
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
          const index_t hits = candidates<T>(row, nullptr, T(0), nullptr, heap.threshold(lowest),
                                             valid, found.get());
          for (index_t h = 0; h < hits; ++h) {
            const index_t c = found[h];
            if (c != self && heap.accepts(row[c], first + c)) heap.push(row[c], first + c);
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
    // Grain: about 4,096 merged candidates per chunk, so that a few queries
    // with a large k (a full ranking) still spread over the threads.
    const index_t grain = std::max<index_t>(1, 4096 / (parts * k));
    parallel_for(0, nq, grain, num_threads, [&](index_t lo, index_t hi) {
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

  if (metric == Metric::L2 && !raw)
    finish_l2(scores, nq, k, num_threads,
              [&](index_t q) { return squared_norm(queries + q * d, d); });
}

template <class T>
void search_self(const PackedDatabase<T>& db, const T* x, index_t k, Metric metric,
                 bool exclude_self, T* scores, std::int64_t* indices, int num_threads,
                 const std::function<void(index_t, index_t)>& progress, bool raw) {
  const index_t n = db.size(), d = db.dim();
  const index_t rows_per_block = self_block_rows<T>(d);
  const index_t blocks = (n + rows_per_block - 1) / rows_per_block;
  if (blocks < 4) {  // too small for the tiling to pay: the plain search
    search(db, x, n, k, metric, exclude_self ? 0 : -1, scores, indices, num_threads, raw);
    if (progress) progress(1, 1);
    return;
  }
  check(k >= 1, "knn: k must be at least 1");
  check(k <= n - (exclude_self ? 1 : 0), "knn: k is larger than the number of candidates");

  Scratch<TopK<T>> heaps(static_cast<std::size_t>(n));
  for (index_t i = 0; i < n; ++i) heaps[i] = TopK<T>{scores + i * k, indices + i * k, k};
  const Side<T> side{x, db.half_neg_norms(), heaps.data(), n};
  const int threads = static_cast<int>(std::min<index_t>(resolve_threads(num_threads), blocks / 2));
  run_tiles<T>(tile_rounds(blocks), blocks, threads, d, rows_per_block, progress,
            [&](index_t bi, index_t bj, TileScratch<T>& scratch) {
              run_tile(db, side, side, rows_per_block, bi, bj, bi == bj, exclude_self,
                       metric == Metric::L2, scratch);
            });
  parallel_for(0, n, 256, num_threads, [&](index_t lo, index_t hi) {
    for (index_t i = lo; i < hi; ++i) heaps[i].sort_best_first();
  });
  if (metric == Metric::L2 && !raw)
    finish_l2(scores, n, k, num_threads, [&](index_t q) { return T(-2) * side.half_neg[q]; });
}

template <class T>
void search_pair(const PackedDatabase<T>& db, const T* a, index_t na, const T* b, index_t ka,
                 index_t kb, Metric metric, T* a_scores, std::int64_t* a_indices, T* b_scores,
                 std::int64_t* b_indices, int num_threads) {
  const index_t nb = db.size(), d = db.dim();
  check(na >= 1, "knn: the query block must have at least one row");
  check(ka >= 1 && ka <= nb, "knn: ka must lie in [1, rows of b]");
  check(kb >= 1 && kb <= na, "knn: kb must lie in [1, rows of a]");
  const index_t rows_per_block = self_block_rows<T>(d);
  const index_t pa = (na + rows_per_block - 1) / rows_per_block;
  const index_t pb = (nb + rows_per_block - 1) / rows_per_block;

  Buffer<T> a_half_neg = allocate<T>(na, "the kNN query norms");
  parallel_for(0, na, 1024, num_threads, [&](index_t lo, index_t hi) {
    for (index_t i = lo; i < hi; ++i) a_half_neg[i] = T(-0.5) * squared_norm(a + i * d, d);
  });
  Scratch<TopK<T>> heaps(static_cast<std::size_t>(na + nb));
  for (index_t i = 0; i < na; ++i) heaps[i] = TopK<T>{a_scores + i * ka, a_indices + i * ka, ka};
  for (index_t j = 0; j < nb; ++j) heaps[na + j] = TopK<T>{b_scores + j * kb, b_indices + j * kb, kb};
  const Side<T> side_a{a, a_half_neg.get(), heaps.data(), na};
  const Side<T> side_b{b, db.half_neg_norms(), heaps.data() + na, nb};

  const int threads = static_cast<int>(std::min<index_t>(resolve_threads(num_threads), std::min(pa, pb)));
  // The blocks of a are 0 .. pa - 1 and those of b pa .. pa + pb - 1 for the
  // scheduler (a tile holds the heaps of one block of each side).
  run_tiles<T>(rectangle_rounds(pa, pb), pa + pb, threads, d, rows_per_block, {},
            [&](index_t bi, index_t bj, TileScratch<T>& scratch) {
              run_tile(db, side_a, side_b, rows_per_block, bi, bj - pa, false, false,
                       metric == Metric::L2, scratch);
            });
  parallel_for(0, na + nb, 256, num_threads, [&](index_t lo, index_t hi) {
    for (index_t i = lo; i < hi; ++i) heaps[i].sort_best_first();
  });
}

template <class T>
void merge_sorted(index_t n, const T* a_scores, const std::int64_t* a_indices, index_t ka,
                  const T* b_scores, const std::int64_t* b_indices, index_t kb, index_t k,
                  T* scores, std::int64_t* indices, int num_threads) {
  check(k >= 1 && k <= ka + kb, "knn: the merged k must lie in [1, ka + kb]");
  parallel_for(0, n, 1024, num_threads, [&](index_t lo, index_t hi) {
    for (index_t q = lo; q < hi; ++q) {
      const T* sa = a_scores + q * ka;
      const T* sb = b_scores + q * kb;
      const std::int64_t* ia = a_indices + q * ka;
      const std::int64_t* ib = b_indices + q * kb;
      index_t u = 0, v = 0;
      for (index_t t = 0; t < k; ++t) {
        const bool take_a =
            v == kb || (u < ka && TopK<T>::better(sa[u], ia[u], sb[v], ib[v]));
        scores[q * k + t] = take_a ? sa[u] : sb[v];
        indices[q * k + t] = take_a ? ia[u++] : ib[v++];
      }
    }
  });
}

template <class T>
void finish_distances(T* scores, index_t n, index_t k, const T* x, index_t d, int num_threads) {
  finish_l2(scores, n, k, num_threads, [&](index_t q) { return squared_norm(x + q * d, d); });
}

template <class T>
double similarity_only(const PackedDatabase<T>& db, const T* queries, index_t nq, int num_threads) {
  constexpr int NR = PackedDatabase<T>::kPanel;
  constexpr index_t kRows = portable::kBlockRows;
  const index_t d = db.dim();
  const index_t per_chunk = chunk_panels<T>(d);
  const index_t blocks = (nq + kRows - 1) / kRows;
  std::vector<double> first_scores(blocks, 0.0);
  parallel_for(0, blocks, 1, num_threads, [&](index_t lo, index_t hi) {
    Buffer<T> packed = allocate<T>(kRows * d, "kNN query packing");
    Buffer<T> block_scores = allocate<T>(kRows * per_chunk * NR, "a kNN score block");
    for (index_t block = lo; block < hi; ++block) {
      const index_t q0 = block * kRows, rows = std::min(kRows, nq - q0);
      for (index_t p0 = 0; p0 < db.panels(); p0 += per_chunk) {
        const index_t count = std::min(per_chunk, db.panels() - p0);
        score_block<T>(queries + q0 * d, rows, d, db.panel(p0), count, nullptr,
                       block_scores.get(), packed.get(), p0 == 0);
        first_scores[block] += double(block_scores[0]);
      }
    }
  });
  double sum = 0;
  for (double s : first_scores) sum += s;
  return sum;
}

template class PackedDatabase<float>;
template class PackedDatabase<double>;
template void search<float>(const PackedDatabase<float>&, const float*, index_t, index_t, Metric,
                            index_t, float*, std::int64_t*, int, bool);
template void search<double>(const PackedDatabase<double>&, const double*, index_t, index_t,
                             Metric, index_t, double*, std::int64_t*, int, bool);
template double similarity_only<float>(const PackedDatabase<float>&, const float*, index_t, int);
template double similarity_only<double>(const PackedDatabase<double>&, const double*, index_t, int);
template void search_self<float>(const PackedDatabase<float>&, const float*, index_t, Metric, bool,
                                 float*, std::int64_t*, int,
                                 const std::function<void(index_t, index_t)>&, bool);
template void search_self<double>(const PackedDatabase<double>&, const double*, index_t, Metric,
                                  bool, double*, std::int64_t*, int,
                                  const std::function<void(index_t, index_t)>&, bool);
template void search_pair<float>(const PackedDatabase<float>&, const float*, index_t, const float*,
                                 index_t, index_t, Metric, float*, std::int64_t*, float*,
                                 std::int64_t*, int);
template void search_pair<double>(const PackedDatabase<double>&, const double*, index_t,
                                  const double*, index_t, index_t, Metric, double*, std::int64_t*,
                                  double*, std::int64_t*, int);
template void merge_sorted<float>(index_t, const float*, const std::int64_t*, index_t, const float*,
                                  const std::int64_t*, index_t, index_t, float*, std::int64_t*, int);
template void merge_sorted<double>(index_t, const double*, const std::int64_t*, index_t,
                                   const double*, const std::int64_t*, index_t, index_t, double*,
                                   std::int64_t*, int);
template void finish_distances<float>(float*, index_t, index_t, const float*, index_t, int);
template void finish_distances<double>(double*, index_t, index_t, const double*, index_t, int);

}  // namespace deepret::knn
