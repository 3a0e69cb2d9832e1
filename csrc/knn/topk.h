// Per-query top-k as a binary heap whose root is the worst kept candidate.
// "Better" means a larger score, and on equal scores the smaller index, so
// the final order is numpy's stable descending sort. Until k candidates have
// arrived they are only appended (the heap is built once, when it fills), so
// a search with k close to n costs one sort per query instead of n sift-ups.
#pragma once

#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

#include "common/array_view.h"
#include "common/buffer.h"

namespace deepret::knn {

// NanLast: NaN ranks below every number (as numpy sorts NaN last), for
// scores that were not checked finite (top_k_lists); kNN's scores are, and
// its heaps skip the test.
template <class T, bool NanLast = false>
struct TopK {
  T* score;             // [k] heap storage
  std::int64_t* index;  // [k]
  index_t k;
  index_t size = 0;

  static bool better(T s1, std::int64_t i1, T s2, std::int64_t i2) {
    if constexpr (NanLast) {
      if (s2 != s2) return s1 == s1 || i1 < i2;  // anything beats NaN; NaNs by index
      if (s1 != s1) return false;
    }
    return s1 > s2 || (s1 == s2 && i1 < i2);
  }

  // Score a candidate must beat (strictly) once the heap is full. Candidates
  // arrive in increasing index order within one scan, so on a tie the kept
  // one (smaller index) wins, as `better` wants.
  T threshold(T lowest) const { return size < k ? lowest : score[0]; }

  // Whether (s, i) would enter: for candidates in any index order.
  bool accepts(T s, std::int64_t i) const { return size < k || better(s, i, score[0], index[0]); }

  void push(T s, std::int64_t i) {
    if (size < k) {
      score[size] = s;
      index[size] = i;
      if (++size == k) make_heap();
    } else if (better(s, i, score[0], index[0])) {
      sift_down_bounded(0, s, i, size);
    }
  }

  // Sort the kept candidates best first, in place. The pairs' scratch is
  // kept per thread between heaps, up to 1 MiB (a large k, a full ranking,
  // gets a fresh one that is freed after the sort).
  void sort_best_first() {
    thread_local Scratch<std::pair<T, std::int64_t>> kept;
    kept.resize(static_cast<std::size_t>(size));
    for (index_t j = 0; j < size; ++j) kept[j] = {score[j], index[j]};
    std::sort(kept.begin(), kept.end(), [](const auto& a, const auto& b) {
      return better(a.first, a.second, b.first, b.second);
    });
    for (index_t j = 0; j < size; ++j) {
      score[j] = kept[j].first;
      index[j] = kept[j].second;
    }
    release_if_larger(kept, std::size_t(1) << 20);
  }

 private:
  // Bottom-up heap construction over the k appended candidates.
  void make_heap() {
    for (index_t pos = size / 2 - 1; pos >= 0; --pos) sift_down_bounded(pos, score[pos], index[pos], size);
  }

  // Root = worst: a child replaces the hole when it is worse than (s, i).
  void sift_down_bounded(index_t pos, T s, std::int64_t i, index_t end) {
    for (;;) {
      index_t child = 2 * pos + 1;
      if (child >= end) break;
      if (child + 1 < end && better(score[child], index[child], score[child + 1], index[child + 1]))
        ++child;  // the worse of the two children
      if (!better(s, i, score[child], index[child])) break;
      score[pos] = score[child];
      index[pos] = index[child];
      pos = child;
    }
    score[pos] = s;
    index[pos] = i;
  }
};

}  // namespace deepret::knn
