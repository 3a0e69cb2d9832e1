// Math of the kNN graph that the CPU and CUDA engines share (DEEPRET_HD).
#pragma once

#include <cmath>
#include <cstdint>

#include "common/hostdevice.h"
#include "graph/graph.h"

namespace deepret::graph {

// One neighbour of a row: its column and affinity.
template <class T>
struct Entry {
  std::int32_t col;
  T val;
};

// gamma when it is an integer in [1, 64] (computed by repeated multiplication,
// so the common gamma = 3 costs two multiplies, not a pow), else 0.
inline int integer_gamma(double gamma) {
  return (gamma >= 1 && gamma <= 64 && gamma == std::floor(gamma)) ? static_cast<int>(gamma) : 0;
}

// max(0, s)^gamma in double, with s = score (inner product) or 1 - score / 2
// (squared L2 distance).
DEEPRET_HD double affinity(double score, double gamma, int int_gamma, bool l2) {
  const double s = l2 ? 1.0 - 0.5 * score : score;
  if (!(s > 0)) return 0;
  if (int_gamma == 3) return s * s * s;
  if (int_gamma > 0) {
    double result = 1, base = s;
    for (int e = int_gamma; e > 0; e >>= 1) {
      if (e & 1) result *= base;
      base *= base;
    }
    return result;
  }
  return pow(s, gamma);
}

// Insertion sort of row [first, last) by column: the usual k = 10..50 row.
template <class T>
DEEPRET_HD void insertion_sort_by_column(Entry<T>* first, Entry<T>* last) {
  for (Entry<T>* p = first + 1; p < last; ++p) {
    const Entry<T> e = *p;
    Entry<T>* q = p;
    for (; q > first && (q - 1)->col > e.col; --q) *q = *(q - 1);
    *q = e;
  }
}

// Merge equal neighbouring columns of a sorted row in place, keeping the
// largest affinity; returns the new length.
template <class T>
DEEPRET_HD index_t dedupe_max(Entry<T>* row, index_t m) {
  index_t u = 0;
  for (index_t t = 0; t < m; ++t) {
    if (u > 0 && row[u - 1].col == row[t].col) {
      if (row[t].val > row[u - 1].val) row[u - 1].val = row[t].val;
    } else {
      row[u++] = row[t];
    }
  }
  return u;
}

// Position of `col` in the sorted row [first, first + m), or -1.
template <class T>
DEEPRET_HD index_t find_column(const Entry<T>* first, index_t m, std::int32_t col) {
  index_t lo = 0, hi = m;
  while (lo < hi) {
    const index_t mid = lo + (hi - lo) / 2;
    if (first[mid].col < col) lo = mid + 1;
    else hi = mid;
  }
  return (lo < m && first[lo].col == col) ? lo : -1;
}

// w_ij = a_ij * (d_i^-1/2 * d_j^-1/2): the product in parentheses commutes
// exactly, so w_ij and w_ji are the same bits.
template <class T>
DEEPRET_HD T normalized(T a, double dinv_i, double dinv_j) {
  return static_cast<T>(static_cast<double>(a) * (dinv_i * dinv_j));
}

}  // namespace deepret::graph
