// The two row passes of the batched CG (cg_cpu.cpp) and the column-block
// product of spmm, written once with GCC vector extensions and compiled once
// per instruction set like knn_simd.h:
// portable in cg_cpu.cpp, AVX2+FMA in cg_cpu_avx2.cpp, AVX-512F in
// cg_cpu_avx512.cpp, each copy in its own namespace and using nothing inline
// from outside it.
//
// Vectors are stored in panels: the m columns are cut into panels of K
// columns (K * sizeof(T) <= 64 bytes, one cache line), and a panel holds its
// n rows contiguously, [n, K]. The product gathers one line per nonzero and
// the panel (n * 64 bytes: 6.4 MB at n = 10^5) may stay in the last-level
// cache, where the gathers of all 64 columns at once (25.6 MB, plus the
// streams of the other vectors) went to memory. Where it does not (a VM's
// share of a shared L3 can be a few MB) the gathers miss, and the product
// prefetches them in software (gather_row's `ahead`).
#ifndef DEEPRET_SIMD_NS
#error "define DEEPRET_SIMD_NS before including cg_simd.h"
#endif

#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>

#include "diffusion/spmv.h"

// The helpers below pass vectors wider than the registers of the portable
// and AVX2 builds; they are inlined, and nothing with such a parameter
// crosses a translation unit, so the ABI note GCC attaches to them does not
// apply. (GCC emits it at the end of the translation unit, hence no pop.)
#pragma GCC diagnostic ignored "-Wpsabi"

namespace deepret::diffusion::DEEPRET_SIMD_NS {

// The widest vector register of this translation unit's instruction set.
#if defined(__AVX512F__)
constexpr int kNativeBytes = 64;
#elif defined(__AVX2__)
constexpr int kNativeBytes = 32;
#else
constexpr int kNativeBytes = 16;
#endif

// One row of a panel, K values, as `pieces` vectors of the widest register
// of this translation unit (kNativeBytes). Every operation on a row goes
// piece by piece: GCC's generic vectors wider than the registers (16
// float32 columns = 64 bytes on AVX2) were lowered through the stack and
// general registers, lane by lane.
template <class T, int K>
struct Native {
  static constexpr int bytes = int(K * sizeof(T)) < kNativeBytes ? int(K * sizeof(T)) : kNativeBytes;
  static constexpr int lanes = bytes / int(sizeof(T));
  static constexpr int pieces = K / lanes;
  typedef T N __attribute__((vector_size(bytes)));
  static N load(const T* p) {
    N v;
    std::memcpy(&v, p, sizeof(N));
    return v;
  }
  static void store(T* p, N v) { std::memcpy(p, &v, sizeof(N)); }
};

template <class T>
struct Native<T, 1> {
  static constexpr int lanes = 1, pieces = 1;
  using N = T;
  static N load(const T* p) { return *p; }
  static void store(T* p, N v) { *p = v; }
};

// A row of K values held in registers.
template <class T, int K>
struct Row {
  typename Native<T, K>::N piece[Native<T, K>::pieces];
};

// Per-column sums of products of two panel rows, in double (a product of
// two float32 values is exact there), kept as native-width pieces of
// doubles: a vector of K doubles widened from K values at once was
// scalarized by the AVX2 build (16 float32 columns: 4 ymm of doubles, moved
// lane by lane through general registers at every row).
template <class T, int K>
struct RowSums {
  static constexpr int lanes = (K * 8 < kNativeBytes ? K * 8 : kNativeBytes) / 8;  // doubles a piece
  static constexpr int pieces = K / lanes;
  typedef double N __attribute__((vector_size(lanes * 8)));
  N part[pieces] = {};

  // `lanes` values from row, as doubles. (Built element by element: GCC 12
  // turns this into one vcvtps2pd, where __builtin_convertvector of 4
  // float32 became two half-width conversions, one through the stack.)
  static N widen(const T* row) { return widen(row, std::make_integer_sequence<int, lanes>{}); }
  template <int... lane>
  static N widen(const T* row, std::integer_sequence<int, lane...>) {
    return N{double(row[lane])...};
  }
  // part[c] += a[c] b[c] for the K columns of rows a and b.
  void add(const T* a, const T* b) {
    for (int s = 0; s < pieces; ++s) part[s] += widen(a + s * lanes) * widen(b + s * lanes);
  }
  void add_to(double* out) const {
    double sums[K];
    std::memcpy(sums, part, sizeof(sums));
    for (int c = 0; c < K; ++c) out[c] += sums[c];
  }
};

template <class T>
struct RowSums<T, 1> {
  double part = 0.0;
  void add(const T* a, const T* b) { part += double(*a) * double(*b); }
  void add_to(double* out) const { *out += part; }
};

// Asks for the line of x that the entry `ahead` entries on will gather
// (entries are read in storage order, across rows), where that entry lies
// before `limit`.
template <class T, class I>
inline void prefetch_gather(const Csr<T, I>& w, const T* x, index_t ld, I e, index_t ahead,
                            I limit) {
  if (e + ahead < limit) __builtin_prefetch(x + index_t(w.indices[e + ahead]) * ld);
}

// The sum of w_ij x_j over row i's nonzeros, x_j the K values at x + j * ld.
// With ahead > 0, each entry first prefetches the row of x gathered `ahead`
// entries later (up to entry `limit`, the end of the caller's rows).
template <class T, class I, int K>
__attribute__((always_inline)) inline Row<T, K> gather_row(const Csr<T, I>& w, const T* x,
                                                           index_t ld, index_t i, index_t ahead,
                                                           I limit) {
  using Nat = Native<T, K>;
  if constexpr (K == 1) {
    // One column: a single chain, which the compiler keeps scalar (four
    // chains it turns into emulated vector gathers and shuffles, measured
    // slower); the rows' chains overlap in the out-of-order core.
    T sum = T(0);
    for (I e = w.indptr[i]; e < w.indptr[i + 1]; ++e) {
      if (ahead > 0) prefetch_gather(w, x, ld, e, ahead, limit);
      sum += w.data[e] * x[index_t(w.indices[e]) * ld];
    }
    return Row<T, K>{{sum}};
  } else {
    // Four accumulators, each as native-width pieces (kNativeBytes): the
    // fused multiply-adds of one row do not wait on each other's latency,
    // and the sums stay in registers (a 64-byte V accumulated whole was
    // moved through the stack and general registers after every entry by
    // the AVX2 build).
    constexpr int lanes = Nat::lanes, pieces = Nat::pieces;
    using N = typename Nat::N;
    const auto load = &Nat::load;
    // Two chains where a row is 4 or more native pieces (16 float32 or 8
    // float64 columns on the portable build: 4 chains were 16 xmm
    // accumulators, more than its 16 registers hold with the loads, and
    // spilled at every entry). 256 float32 columns x 20 iterations on the
    // 13,818-region graph of bench/scale_objects.py (1.53 M entries), medians
    // of 5, three rounds interleaved: 0.87-0.89 s -> 0.71-0.79 s. The
    // portable path's sums are then in another order than the wider
    // builds' (each build is still the same on any number of threads).
    constexpr int chains = pieces >= 4 ? 2 : 4;
    N acc[chains][pieces] = {};
    const I begin = w.indptr[i], end = w.indptr[i + 1];
    // The entries `ahead` on lie before `limit` for every entry of the row
    // but in the last rows of the caller's range: there alone each prefetch
    // checks its bound (a compare and a branch per entry otherwise).
    auto entries = [&](auto checked) __attribute__((always_inline)) {
      auto prefetch = [&](I e) {
        if constexpr (decltype(checked)::value)
          prefetch_gather(w, x, ld, e, ahead, limit);
        else
          __builtin_prefetch(x + index_t(w.indices[e + ahead]) * ld);
      };
      I e = begin;
      for (; e + chains - 1 < end; e += chains) {
        if (ahead > 0)
          for (int c = 0; c < chains; ++c) prefetch(e + c);
        for (int c = 0; c < chains; ++c) {
          const T* xc = x + index_t(w.indices[e + c]) * ld;
          const T wc = w.data[e + c];
          for (int s = 0; s < pieces; ++s) acc[c][s] += wc * load(xc + s * lanes);
        }
      }
      for (; e < end; ++e) {
        if (ahead > 0) prefetch(e);
        const T* xe = x + index_t(w.indices[e]) * ld;
        for (int s = 0; s < pieces; ++s) acc[0][s] += w.data[e] * load(xe + s * lanes);
      }
    };
    if (index_t(end) + ahead <= index_t(limit))
      entries(std::false_type{});
    else
      entries(std::true_type{});
    Row<T, K> out;
    for (int s = 0; s < pieces; ++s) {
      if constexpr (chains == 4)
        out.piece[s] = (acc[0][s] + acc[1][s]) + (acc[2][s] + acc[3][s]);
      else
        out.piece[s] = acc[0][s] + acc[1][s];
    }
    return out;
  }
}

// q = p - alpha W p on rows [lo, hi) of one panel, and per column the
// partial dot products <p, q>, <r, q> and <q, q> over those rows (in double,
// row by row) added to dots[0 .. K), dots[K .. 2K) and dots[2K .. 3K).
template <class T, class I, int K>
void panel_product(const Csr<T, I>& w, T alpha,
                   const T* p,  // [n, K]
                   const T* r,  // [n, K]
                   T* q,        // [n, K] out
                   index_t lo, index_t hi,
                   index_t ahead,  // gathers prefetched this many entries ahead (0: none)
                   double* dots)   // [3, K] in/out
{
  using Nat = Native<T, K>;
  const I limit = w.indptr[hi];
  RowSums<T, K> pq, rq, qq;
  for (index_t i = lo; i < hi; ++i) {
    const Row<T, K> sum = gather_row<T, I, K>(w, p, K, i, ahead, limit);
    for (int s = 0; s < Nat::pieces; ++s) {
      const index_t at = i * K + s * Nat::lanes;
      Nat::store(q + at, Nat::load(p + at) - alpha * sum.piece[s]);
    }
    pq.add(p + i * K, q + i * K);
    rq.add(r + i * K, q + i * K);
    qq.add(q + i * K, q + i * K);
  }
  pq.add_to(dots);
  rq.add_to(dots + K);
  qq.add_to(dots + 2 * K);
}

// y = W x on rows [lo, hi) for K columns of row-major x and y (row strides
// ldx, ldy; x and y point at the block's first column); `ahead` as in
// gather_row.
template <class T, class I, int K>
void block_product(const Csr<T, I>& w, const T* x, index_t ldx, T* y, index_t ldy, index_t lo,
                   index_t hi, index_t ahead) {
  using Nat = Native<T, K>;
  const I limit = w.indptr[hi];
  for (index_t i = lo; i < hi; ++i) {
    const Row<T, K> sum = gather_row<T, I, K>(w, x, ldx, i, ahead, limit);
    for (int s = 0; s < Nat::pieces; ++s) Nat::store(y + i * ldy + s * Nat::lanes, sum.piece[s]);
  }
}

// The vector updates of one CG iteration and the next direction, on rows
// [lo, hi) of one panel: f += a d, r -= a q, p = r + beta d (with the new r),
// where d is the direction the product used; and per column the partial
// |r|^2 of the new r added to rho[0 .. K). On the first iteration d is r
// itself (read before r is written) and f is 0, so that neither f nor p need
// to be filled before: `first` then writes f = a d without reading it.
template <class T, int K>
void panel_update(const T* a,     // [K] step per column (0: column stopped)
                  const T* beta,  // [K] direction update per column
                  bool first,
                  T* f,            // [n, K] in/out (out only when first)
                  T* r,            // [n, K] in/out
                  const T* d,      // [n, K] the direction: p, or r when first
                  T* p,            // [n, K] out: the next direction (may be d)
                  const T* q,      // [n, K]
                  index_t lo, index_t hi,
                  double* rho)  // [K] in/out
{
  using Nat = Native<T, K>;
  using N = typename Nat::N;
  N step[Nat::pieces], turn[Nat::pieces];
  for (int s = 0; s < Nat::pieces; ++s) {
    step[s] = Nat::load(a + s * Nat::lanes);
    turn[s] = Nat::load(beta + s * Nat::lanes);
  }
  RowSums<T, K> sum;
  auto rows = [&](auto first_rows) {
    for (index_t i = lo; i < hi; ++i) {
      for (int s = 0; s < Nat::pieces; ++s) {
        const index_t at = i * K + s * Nat::lanes;
        const N direction = Nat::load(d + at);
        const N moved = step[s] * direction;
        Nat::store(f + at, decltype(first_rows)::value ? moved : Nat::load(f + at) + moved);
        const N residual = Nat::load(r + at) - step[s] * Nat::load(q + at);
        Nat::store(r + at, residual);
        Nat::store(p + at, residual + turn[s] * direction);
      }
      sum.add(r + i * K, r + i * K);
    }
  };
  if (first)
    rows(std::true_type{});
  else
    rows(std::false_type{});
  sum.add_to(rho);
}

// |y - (I - alpha W) f|^2 per column of one panel of f on rows [lo, hi),
// the product summed in double, added to partial[0 .. K) (cg_cpu.cpp's true
// residual; panel row i is row order[i] of y when there is an order). Sums in
// native-width pieces of doubles, as gather_row; rows of f prefetched
// `ahead` entries on.
// Rows of y read ahead where they come in a random order (`order`): each is
// a miss, which the loop over the row before does not overlap.
constexpr index_t kRowsAhead = 8;

template <class T, class I, int K>
void residual_rows(const Csr<T, I>& w, double alpha,
                   const T* f,  // [n, K]
                   const T* y,  // [n, m] the caller's, row-major
                   index_t m, index_t c0,
                   const I* order,  // [n] or nullptr
                   index_t lo, index_t hi, index_t ahead,
                   double* partial)  // [K] in/out
{
  using Sums = RowSums<T, K>;
  constexpr int lanes = Sums::lanes, pieces = Sums::pieces;
  using N = typename Sums::N;
  const I limit = w.indptr[hi];
  // A full panel (every column a column of y) sums |e|^2 in registers; the
  // last, partial panel of y column by column (y has no padded columns).
  const bool full = m - c0 >= K;
  const index_t columns = full ? K : m - c0;
  N squares[pieces] = {};
  for (index_t i = lo; i < hi; ++i) {
    if (order && i + kRowsAhead < hi) {  // both ends: the K values of y may cross a line
      const T* ahead_row = y + index_t(order[i + kRowsAhead]) * m + c0;
      __builtin_prefetch(ahead_row);
      __builtin_prefetch(ahead_row + columns - 1);
    }
    N wf[pieces] = {};
    for (I e = w.indptr[i]; e < w.indptr[i + 1]; ++e) {
      if (ahead > 0) prefetch_gather(w, f, K, e, ahead, limit);
      const double value = double(w.data[e]);
      const T* fj = f + index_t(w.indices[e]) * K;
      for (int s = 0; s < pieces; ++s) wf[s] += value * Sums::widen(fj + s * lanes);
    }
    const T* row = y + (order ? index_t(order[i]) : i) * m + c0;
    if (full) {
      for (int s = 0; s < pieces; ++s) {
        const N e = Sums::widen(row + s * lanes) - (Sums::widen(f + i * K + s * lanes) - alpha * wf[s]);
        squares[s] += e * e;
      }
    } else {
      double sums[K];
      std::memcpy(sums, wf, sizeof(sums));
      for (index_t c = 0; c < columns; ++c) {
        const double e = double(row[c]) - (double(f[i * K + c]) - alpha * sums[c]);
        partial[c] += e * e;
      }
    }
  }
  if (full) {
    double sums[K];
    std::memcpy(sums, squares, sizeof(sums));
    for (int c = 0; c < K; ++c) partial[c] += sums[c];
  }
}

}  // namespace deepret::diffusion::DEEPRET_SIMD_NS
