// CUDA exact kNN: for each block of queries and each chunk of the database, a
// tiled GEMM writes the (query x database) scores to a device scratch, then
// one thread block per query merges the chunk into that query's top-k: the
// scores that beat its current k-th best are gathered in shared memory and,
// when enough have piled up, bitonic-sorted together with the kept k.
#include <cstdint>
#include <limits>
#include <string>

#include "common/cuda_check.h"
#include "common/launch.h"
#include "common/errors.h"
#include "knn/knn.h"

namespace deepret::knn::cuda {

using deepret::cuda::Scratch;

namespace {

// ------------------------------------------------------------------- GEMM
constexpr int kTile = 64;        // output tile: kTile queries x kTile database rows
constexpr int kTileK = 16;       // dimensions staged per step
constexpr int kGemmThreads = 256;  // 16 x 16 threads, 4 x 4 outputs each

// scores[r][c] = <q_r, x_c> (+ bias[c]) for r < rows, c < cols; ld = cols.
template <class T>
__global__ void __launch_bounds__(kGemmThreads)
similarity_kernel(const T* __restrict__ q, index_t rows,  // [rows, d]
                  const T* __restrict__ x, index_t cols,  // [cols, d]
                  index_t d, const T* __restrict__ bias,  // [cols] or nullptr
                  T* __restrict__ scores) {               // [rows, cols]
  __shared__ T qs[kTileK][kTile + 1];
  __shared__ T xs[kTileK][kTile + 1];
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const index_t row0 = static_cast<index_t>(blockIdx.y) * kTile;
  const index_t col0 = static_cast<index_t>(blockIdx.x) * kTile;
  T acc[4][4] = {};
  for (index_t k0 = 0; k0 < d; k0 += kTileK) {
    // Each thread stages 4 elements of each tile; consecutive threads read
    // consecutive dimensions of a row (coalesced).
    for (int e = threadIdx.x; e < kTile * kTileK; e += kGemmThreads) {
      const int r = e / kTileK, kk = e % kTileK;
      const index_t dim = k0 + kk;
      const index_t qr = row0 + r, xr = col0 + r;
      qs[kk][r] = (qr < rows && dim < d) ? q[qr * d + dim] : T(0);
      xs[kk][r] = (xr < cols && dim < d) ? x[xr * d + dim] : T(0);
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kTileK; ++kk) {
      T a[4], b[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) a[i] = qs[kk][ty + 16 * i];
#pragma unroll
      for (int j = 0; j < 4; ++j) b[j] = xs[kk][tx + 16 * j];
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] += a[i] * b[j];
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const index_t r = row0 + ty + 16 * i;
    if (r >= rows) continue;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const index_t c = col0 + tx + 16 * j;
      if (c < cols) scores[r * cols + c] = acc[i][j] + (bias ? bias[c] : T(0));
    }
  }
}

// -------------------------------------------------------------------- top-k
constexpr int kSelectThreads = 256;
constexpr int kPile = 2048;  // gathered candidates before a merge
constexpr int kSort = 4096;  // sort capacity (a power of 2): kMaxK kept + a full pile
static_assert(kMaxK + kPile + kSelectThreads * 4 <= kSort, "sort capacity");

template <class T>
__device__ __forceinline__ bool better(T s1, int i1, T s2, int i2) {
  return s1 > s2 || (s1 == s2 && i1 < i2);
}

// Sort the first `size` entries (size a power of 2) best first.
template <class T>
__device__ void bitonic_sort(T* score, int* index, int size) {
  for (int span = 2; span <= size; span <<= 1) {
    for (int stride = span >> 1; stride > 0; stride >>= 1) {
      for (int i = threadIdx.x; i < size; i += blockDim.x) {
        const int j = i ^ stride;
        if (j > i) {
          const bool best_first = (i & span) == 0;
          const bool swap = best_first ? better(score[j], index[j], score[i], index[i])
                                       : better(score[i], index[i], score[j], index[j]);
          if (swap) {
            const T s = score[i]; score[i] = score[j]; score[j] = s;
            const int t = index[i]; index[i] = index[j]; index[j] = t;
          }
        }
      }
      __syncthreads();
    }
  }
}

// Merge the pile into the kept list: sort kept + pile (padded with -inf to a
// power of 2) and keep the first k.
template <class T>
__device__ void merge_pile(T* score, int* index, int& kept, int& piled, int k) {
  const int used = kept + piled;
  int size = 1;
  while (size < used) size <<= 1;
  for (int i = used + threadIdx.x; i < size; i += blockDim.x) {
    score[i] = -std::numeric_limits<T>::infinity();
    index[i] = std::numeric_limits<int>::max();
  }
  __syncthreads();
  bitonic_sort(score, index, size);
  __syncthreads();
  if (threadIdx.x == 0) {
    kept = used < k ? used : k;
    piled = 0;
  }
  __syncthreads();
}

// One thread block per query row: fold the chunk's scores (columns
// [col0, col0 + cols)) into the row's kept top-k, stored sorted in
// state_score/state_index ([rows, k]) with state_count ([rows]).
template <class T>
__global__ void __launch_bounds__(kSelectThreads)
select_kernel(const T* __restrict__ scores, index_t cols, index_t col0,  // [rows, cols]
              index_t k, index_t self_first,  // row r skips column self_first + r (or -1)
              T* state_score, int* state_index, int* state_count) {
  extern __shared__ unsigned char shared_bytes[];
  T* score = reinterpret_cast<T*>(shared_bytes);    // [kSort]
  int* index = reinterpret_cast<int*>(score + kSort);  // [kSort]
  __shared__ int kept, piled;
  const index_t row = blockIdx.x;
  T* my_score = state_score + row * k;
  int* my_index = state_index + row * k;
  if (threadIdx.x == 0) {
    kept = state_count[row];
    piled = 0;
  }
  __syncthreads();
  for (int i = threadIdx.x; i < kept; i += blockDim.x) {
    score[i] = my_score[i];
    index[i] = my_index[i];
  }
  __syncthreads();
  const T* row_scores = scores + row * cols;
  const index_t self = self_first >= 0 ? self_first + row - col0 : -1;
  for (index_t base = 0; base < cols; base += kSelectThreads * 4) {
    // The k-th kept score, -inf while fewer than k are kept.
    const T threshold = kept < k ? -std::numeric_limits<T>::infinity() : score[k - 1];
    for (int e = 0; e < 4; ++e) {
      const index_t c = base + e * kSelectThreads + threadIdx.x;
      if (c < cols && c != self) {
        const T s = row_scores[c];
        if (s >= threshold) {
          const int slot = atomicAdd(&piled, 1);
          score[kept + slot] = s;
          index[kept + slot] = static_cast<int>(col0 + c);
        }
      }
    }
    __syncthreads();
    // Every thread decides from the same `piled`: no thread may add to it
    // (next pass) before all have read it, hence the barrier.
    const bool merge = piled > kPile - kSelectThreads * 4 ||
                       (base + kSelectThreads * 4 >= cols && piled > 0);
    __syncthreads();
    if (merge) merge_pile(score, index, kept, piled, static_cast<int>(k));
  }
  for (int i = threadIdx.x; i < kept; i += blockDim.x) {
    my_score[i] = score[i];
    my_index[i] = index[i];
  }
  if (threadIdx.x == 0) state_count[row] = kept;
}

// Half negative squared norms (-|x|^2 / 2): with them the L2 search is a
// maximum of <q, x> - |x|^2 / 2.
template <class T>
__global__ void half_neg_norms_kernel(const T* __restrict__ x, index_t n, index_t d, T* out) {
  for (index_t i = static_cast<index_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += index_t(gridDim.x) * blockDim.x) {
    T sum = T(0);
    for (index_t j = 0; j < d; ++j) sum += x[i * d + j] * x[i * d + j];
    out[i] = T(-0.5) * sum;
  }
}

// Write the kept lists out: scores as T (distances for L2), indices as int64.
template <class T>
__global__ void finish_kernel(const T* __restrict__ state_score, const int* __restrict__ state_index,
                              index_t rows, index_t k, const T* __restrict__ q, index_t d, bool l2,
                              T* __restrict__ scores, std::int64_t* __restrict__ indices) {
  const index_t row = blockIdx.x;
  if (row >= rows) return;
  T norm = T(0);
  if (l2)
    for (index_t j = 0; j < d; ++j) norm += q[row * d + j] * q[row * d + j];
  for (index_t i = threadIdx.x; i < k; i += blockDim.x) {
    const T s = state_score[row * k + i];
    const T out = l2 ? norm - T(2) * s : s;
    scores[row * k + i] = l2 && out < T(0) ? T(0) : out;
    indices[row * k + i] = state_index[row * k + i];
  }
}

template <class T>
void run(const T* x, index_t n, index_t d, const T* queries, index_t nq, index_t k, Metric metric,
         index_t self_offset, T* scores, std::int64_t* indices, Scratch& scratch, cudaStream_t stream) {
  // Scratch: a (query block x database chunk) score tile of at most 256 MiB.
  const index_t chunk = 16384;
  const index_t query_block = std::max<index_t>(
      kTile, std::min<index_t>(nq, (index_t(256) << 20) / (index_t(sizeof(T)) * chunk)));
  // The grids below are bounded by these sizes, far under CUDA's limits:
  // similarity (chunk / kTile) x (query_block / kTile) = 256 x 64 blocks at
  // most, select and finish one block per query of the block (<= 4096).
  T* const tile = scratch.array<T>(query_block * chunk);
  T* const state_score = scratch.array<T>(query_block * k);
  int* const state_index = scratch.array<int>(query_block * k);
  int* const state_count = scratch.array<int>(query_block);
  T* const bias = scratch.array<T>(metric == Metric::L2 ? n : 0);
  if (metric == Metric::L2) {
    half_neg_norms_kernel<T><<<launch::blocks_1d(n, 256), 256, 0, stream>>>(x, n, d, bias);
    cuda_check(cudaGetLastError(), "knn: norms kernel");
  }
  const std::size_t select_shared = (sizeof(T) + sizeof(int)) * kSort;
  cuda_check(cudaFuncSetAttribute(select_kernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                  static_cast<int>(select_shared)),
             "knn: select kernel shared memory");
  for (index_t q0 = 0; q0 < nq; q0 += query_block) {
    const index_t rows = std::min(query_block, nq - q0);
    cuda_check(cudaMemsetAsync(state_count, 0, sizeof(int) * rows, stream), "knn: memset");
    for (index_t c0 = 0; c0 < n; c0 += chunk) {
      const index_t cols = std::min(chunk, n - c0);
      const dim3 grid(static_cast<unsigned>((cols + kTile - 1) / kTile),
                      static_cast<unsigned>((rows + kTile - 1) / kTile));
      similarity_kernel<T><<<grid, kGemmThreads, 0, stream>>>(
          queries + q0 * d, rows, x + c0 * d, cols, d,
          metric == Metric::L2 ? bias + c0 : nullptr, tile);
      cuda_check(cudaGetLastError(), "knn: similarity kernel");
      select_kernel<T><<<static_cast<unsigned>(rows), kSelectThreads, select_shared, stream>>>(
          tile, cols, c0, k, self_offset >= 0 ? self_offset + q0 : -1, state_score,
          state_index, state_count);
      cuda_check(cudaGetLastError(), "knn: select kernel");
    }
    finish_kernel<T><<<static_cast<unsigned>(rows), 128, 0, stream>>>(
        state_score, state_index, rows, k, queries + q0 * d, d, metric == Metric::L2,
        scores + q0 * k, indices + q0 * k);
    cuda_check(cudaGetLastError(), "knn: finish kernel");
  }
  // No synchronization: the scratch returns to the pool it came from, whose
  // reuse is ordered on this same stream.
}

}  // namespace

void search(DType dtype, const void* x, index_t n, index_t d, const void* queries, index_t nq,
            index_t k, Metric metric, index_t self_offset, void* scores, std::int64_t* indices,
            Scratch& scratch, std::uintptr_t stream_handle) {
  check_type(dtype == DType::F32 || dtype == DType::F64,
             std::string("knn: on the GPU x must be float32 or float64, got ") + dtype_name(dtype));
  check(n >= 1 && d >= 1, "knn: the database must have at least one row and one column");
  check(k >= 1 && k <= kMaxK, "knn: on the GPU k must be between 1 and 1024");
  check(k <= n - (self_offset >= 0 ? 1 : 0), "knn: k is larger than the number of candidates");
  check(n < std::numeric_limits<int>::max(), "knn: on the GPU n must be below 2^31");
  if (nq == 0) return;
  auto stream = reinterpret_cast<cudaStream_t>(stream_handle);
  if (dtype == DType::F32)
    return run<float>(static_cast<const float*>(x), n, d, static_cast<const float*>(queries), nq, k,
                      metric, self_offset, static_cast<float*>(scores), indices, scratch, stream);
  run<double>(static_cast<const double*>(x), n, d, static_cast<const double*>(queries), nq, k,
              metric, self_offset, static_cast<double*>(scores), indices, scratch, stream);
}

}  // namespace deepret::knn::cuda
