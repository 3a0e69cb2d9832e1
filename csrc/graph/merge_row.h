// The per-row merge of the CPU graph engines (graph_cpu.cpp, graph_block_cpu.cpp):
// a row's out-pairs S_i (its own list, sorted by column) against its in-pairs
// T_i (the rows listing it, sorted by source).
#pragma once

#include <algorithm>
#include <cstdint>

#include "graph/graph_math.h"

namespace deepret::graph {

// The next column of a sorted row and its largest affinity (duplicates merged).
template <class T>
inline bool next_run(const Entry<T>*& p, const Entry<T>* end, std::int32_t& col, T& val) {
  if (p == end) return false;
  col = p->col;
  val = p->val;
  for (++p; p != end && p->col == col; ++p) val = std::max(val, p->val);
  return true;
}

// Mutual: the columns in both rows, min; union: all, max on common columns.
// Writes the result when out_col is not null; returns its length.
template <class T>
inline index_t merge_row(const Entry<T>* s, const Entry<T>* s_end, const Entry<T>* t, const Entry<T>* t_end,
                         bool mutual, std::int32_t* out_col, T* out_val) {
  std::int32_t cs = 0, ct = 0;
  T vs{}, vt{};
  bool has_s = next_run(s, s_end, cs, vs), has_t = next_run(t, t_end, ct, vt);
  index_t m = 0;
  auto emit = [&](std::int32_t col, T val) {
    if (out_col) out_col[m] = col, out_val[m] = val;
    ++m;
  };
  while (has_s && has_t) {
    if (cs == ct) {
      emit(cs, mutual ? std::min(vs, vt) : std::max(vs, vt));
      has_s = next_run(s, s_end, cs, vs);
      has_t = next_run(t, t_end, ct, vt);
    } else if (cs < ct) {
      if (!mutual) emit(cs, vs);
      has_s = next_run(s, s_end, cs, vs);
    } else {
      if (!mutual) emit(ct, vt);
      has_t = next_run(t, t_end, ct, vt);
    }
  }
  if (!mutual) {
    for (; has_s; has_s = next_run(s, s_end, cs, vs)) emit(cs, vs);
    for (; has_t; has_t = next_run(t, t_end, ct, vt)) emit(ct, vt);
  }
  return m;
}

}  // namespace deepret::graph
