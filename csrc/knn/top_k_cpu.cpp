// top_k_lists (knn.h): the best topk of many lists at once, as DiffusionIndex
// reads its ranking out of the diffusion scores f (n, m): each column's best
// 100 of n. Where numpy partitions and then sorts every column (two passes
// over f, column by column, against its row-major layout), one pass here
// reads f row by row and keeps a heap per column; almost every value fails
// its column's threshold at the first comparison.
#include <algorithm>
#include <limits>
#include <vector>

#include "common/errors.h"
#include "common/parallel.h"
#include "knn/knn.h"
#include "knn/topk.h"

namespace deepret::knn {

namespace {

// The fewest lists a thread of the row-major case takes (a 64-byte piece of
// each row).
constexpr index_t kMinLists = 16;

}  // namespace

template <class T>
void top_k_lists(const T* values, index_t items, index_t lists, index_t item_stride,
                 index_t list_stride, index_t topk, T* scores, std::int64_t* indices,
                 int num_threads) {
  check(topk >= 1 && topk <= items, "top_k: topk must be in [1, items]");
  using Heap = TopK<T, true>;
  const T nan = std::numeric_limits<T>::quiet_NaN();
  if (list_stride == 1) {
    // Row-major lists. Each thread takes one contiguous range of lists and
    // reads its part of every row once, in order: passes of 32 lists at a
    // time read a 60,000 x 200 f seven times in 128-byte pieces 800 bytes
    // apart (27 ms, numpy 56 ms), one pass 11.6 ms (2 threads, Zen 4).
    // threshold[c] is the root's score of a full heap, NaN before and while
    // the root is NaN (v <= NaN is false: every value goes to the heap then).
    const int threads = std::max(1, std::min<int>(resolve_threads(num_threads),
                                                  int((lists + kMinLists - 1) / kMinLists)));
    const index_t grain = (lists + threads - 1) / threads;
    parallel_for(0, lists, grain, threads, [&](index_t lo, index_t hi) {
      const index_t count = hi - lo;
      std::vector<Heap> heaps(static_cast<std::size_t>(count));
      std::vector<T> threshold(static_cast<std::size_t>(count), nan);
      for (index_t j = lo; j < hi; ++j) heaps[j - lo] = Heap{scores + j * topk, indices + j * topk, topk};
      for (index_t i = 0; i < items; ++i) {
        if ((i & 1023) == 1023) checkpoint();
        const T* row = values + i * item_stride + lo;
        for (index_t c = 0; c < count; ++c) {
          const T v = row[c];
          if (v <= threshold[c]) continue;  // a tie loses too: its item comes later
          Heap& heap = heaps[c];
          heap.push(v, i);
          threshold[c] = heap.size == topk ? heap.score[0] : nan;
        }
      }
      for (Heap& heap : heaps) heap.sort_best_first();
    });
    return;
  }
  // Lists along memory (rows of a row-major array, or any other strides):
  // one list at a time.
  parallel_for(0, lists, 1, num_threads, [&](index_t lo, index_t hi) {
    for (index_t j = lo; j < hi; ++j) {
      checkpoint();
      Heap heap{scores + j * topk, indices + j * topk, topk};
      const T* list = values + j * list_stride;
      for (index_t i = 0; i < items; ++i) {
        const T v = list[i * item_stride];
        if (heap.size == topk && v <= heap.score[0]) continue;
        heap.push(v, i);
      }
      heap.sort_best_first();
    }
  });
}

template void top_k_lists<float>(const float*, index_t, index_t, index_t, index_t, index_t,
                                 float*, std::int64_t*, int);
template void top_k_lists<double>(const double*, index_t, index_t, index_t, index_t, index_t,
                                  double*, std::int64_t*, int);

}  // namespace deepret::knn
