// Per-query top-k as a binary heap whose root is the worst kept candidate.
// "Better" means a larger score, and on equal scores the smaller index, so
// the final order is numpy's stable descending sort.
#pragma once

#include <cstdint>
#include <utility>

#include "common/array_view.h"

namespace deepret::knn {

template <class T>
struct TopK {
  T* score;             // [k] heap storage
  std::int64_t* index;  // [k]
  index_t k;
  index_t size = 0;

  static bool better(T s1, std::int64_t i1, T s2, std::int64_t i2) {
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
      sift_up(size++, s, i);
    } else if (better(s, i, score[0], index[0])) {
      sift_down(0, s, i);
    }
  }

  // Sort the kept candidates best first, in place (heap sort).
  void sort_best_first() {
    for (index_t end = size - 1; end > 0; --end) {
      const T s = score[end];
      const std::int64_t i = index[end];
      score[end] = score[0];
      index[end] = index[0];
      sift_down_bounded(0, s, i, end);
    }
  }

 private:
  void sift_up(index_t pos, T s, std::int64_t i) {
    while (pos > 0) {
      const index_t parent = (pos - 1) / 2;
      if (!better(score[parent], index[parent], s, i)) break;  // parent is worse: stop
      score[pos] = score[parent];
      index[pos] = index[parent];
      pos = parent;
    }
    score[pos] = s;
    index[pos] = i;
  }

  void sift_down(index_t pos, T s, std::int64_t i) { sift_down_bounded(pos, s, i, size); }

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
