// CUDA kNN graph: plain kernels, one thread per row, and a one-block scan.
//
// 1. directed: row i's valid pairs with their affinities in a slot of k
//    entries, insertion-sorted by column and deduplicated (largest affinity).
// 2. mutual: keep (i, j) when the sorted row j holds i (binary search), with
//    min(a_ij, a_ji); union: the transpose by atomic counting sort, each
//    transposed row sorted, merged with the directed row (max on common columns).
// 3. normalize: degrees, w_ij = a_ij * (d_i^-1/2 * d_j^-1/2) (graph_math.h).
// 4. compact: drop the entries that are zero (underflow) into the output.
// The math is graph_math.h's, shared with the CPU engine; the result is the
// CPU engine's, bit for bit up to the rounding of the degree sums.
#include <cstdint>
#include <string>

#include "common/cuda_check.h"
#include "graph/graph.h"
#include "graph/graph_math.h"

namespace deepret::graph::cuda {

using deepret::cuda::Scratch;

namespace {

constexpr int kThreads = 256;
constexpr int kScanThreads = 1024;

// One thread per row: n < 2^31 (checked) keeps the grid under 2^23 blocks,
// far below gridDim.x's limit.
unsigned blocks_for(index_t n) { return static_cast<unsigned>((n + kThreads - 1) / kThreads); }

// Device memory for the duration of one call, from the caller's pool.
template <class V>
class DeviceBuffer {
 public:
  DeviceBuffer(index_t count, Scratch& scratch) : ptr_(scratch.array<V>(count)) {}
  V* get() const { return ptr_; }

 private:
  V* ptr_;
};

// ptr [n + 1] = exclusive prefix sum of counts [n]; one block.
__global__ void __launch_bounds__(kScanThreads)
scan_kernel(const std::int64_t* __restrict__ counts, std::int64_t* __restrict__ ptr, index_t n) {
  __shared__ long long partial[kScanThreads];
  const index_t per = (n + kScanThreads - 1) / kScanThreads;
  const index_t lo = min(n, static_cast<index_t>(threadIdx.x) * per);
  const index_t hi = min(n, lo + per);
  long long sum = 0;
  for (index_t i = lo; i < hi; ++i) sum += counts[i];
  partial[threadIdx.x] = sum;
  __syncthreads();
  for (int offset = 1; offset < kScanThreads; offset <<= 1) {  // inclusive Hillis-Steele
    const long long v = threadIdx.x >= offset ? partial[threadIdx.x - offset] : 0;
    __syncthreads();
    partial[threadIdx.x] += v;
    __syncthreads();
  }
  long long run = partial[threadIdx.x] - sum;
  for (index_t i = lo; i < hi; ++i) {
    ptr[i] = run;
    run += counts[i];
  }
  if (threadIdx.x == kScanThreads - 1) ptr[n] = partial[kScanThreads - 1];
}

template <class T>
__global__ void directed_kernel(const T* __restrict__ scores,           // [n, k]
                                const std::int64_t* __restrict__ indices,  // [n, k]
                                index_t n, index_t k, double gamma, int int_gamma, bool l2,
                                Entry<T>* __restrict__ rows,  // [n, k]
                                std::int64_t* __restrict__ len) {  // [n]
  const index_t i = static_cast<index_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  Entry<T>* row = rows + i * k;
  index_t m = 0;
  for (index_t t = 0; t < k; ++t) {
    const std::int64_t j = indices[i * k + t];
    if (j < 0 || j >= n || j == i) continue;
    const T a = static_cast<T>(affinity(static_cast<double>(scores[i * k + t]), gamma, int_gamma, l2));
    if (a > 0) row[m++] = {static_cast<std::int32_t>(j), a};
  }
  insertion_sort_by_column(row, row + m);
  len[i] = dedupe_max(row, m);
}

// Mutual pairs of row i: count them (out_col null) or write them at ptr[i].
template <class T>
__global__ void mutual_kernel(const Entry<T>* __restrict__ rows,  // [n, k]
                              const std::int64_t* __restrict__ len,  // [n]
                              index_t n, index_t k,
                              std::int64_t* __restrict__ count,     // [n] (count pass)
                              const std::int64_t* __restrict__ ptr,  // [n + 1] (fill pass)
                              std::int32_t* __restrict__ out_col, T* __restrict__ out_val) {
  const index_t i = static_cast<index_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const Entry<T>* row = rows + i * k;
  index_t m = 0;
  for (index_t t = 0; t < len[i]; ++t) {
    const index_t j = row[t].col;
    const index_t back = find_column(rows + j * k, len[j], static_cast<std::int32_t>(i));
    if (back < 0) continue;
    if (out_col) {
      const T other = rows[j * k + back].val;
      out_col[ptr[i] + m] = row[t].col;
      out_val[ptr[i] + m] = row[t].val < other ? row[t].val : other;
    }
    ++m;
  }
  if (!out_col) count[i] = m;
}

template <class T>
__global__ void indegree_kernel(const Entry<T>* __restrict__ rows, const std::int64_t* __restrict__ len,
                                index_t n, index_t k, unsigned long long* __restrict__ indegree) {  // [n]
  const index_t i = static_cast<index_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  for (index_t t = 0; t < len[i]; ++t) atomicAdd(indegree + rows[i * k + t].col, 1ull);
}

template <class T>
__global__ void transpose_kernel(const Entry<T>* __restrict__ rows, const std::int64_t* __restrict__ len,
                                 index_t n, index_t k,
                                 unsigned long long* __restrict__ cursor,  // [n], from tptr
                                 Entry<T>* __restrict__ t_rows) {          // [tptr[n]]
  const index_t i = static_cast<index_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  for (index_t t = 0; t < len[i]; ++t) {
    const Entry<T> e = rows[i * k + t];
    t_rows[atomicAdd(cursor + e.col, 1ull)] = {static_cast<std::int32_t>(i), e.val};
  }
}

template <class T>
__global__ void sort_rows_kernel(Entry<T>* __restrict__ t_rows, const std::int64_t* __restrict__ tptr, index_t n) {
  const index_t i = static_cast<index_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) insertion_sort_by_column(t_rows + tptr[i], t_rows + tptr[i + 1]);
}

// Union of directed row i and transposed row i (max on common columns):
// count (out_col null) or write at ptr[i].
template <class T>
__global__ void union_kernel(const Entry<T>* __restrict__ rows, const std::int64_t* __restrict__ len,
                             const Entry<T>* __restrict__ t_rows, const std::int64_t* __restrict__ tptr,
                             index_t n, index_t k, std::int64_t* __restrict__ count,
                             const std::int64_t* __restrict__ ptr, std::int32_t* __restrict__ out_col,
                             T* __restrict__ out_val) {
  const index_t i = static_cast<index_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const Entry<T>* a = rows + i * k;
  const Entry<T>* a_end = a + len[i];
  const Entry<T>* b = t_rows + tptr[i];
  const Entry<T>* b_end = t_rows + tptr[i + 1];
  index_t m = 0;
  while (a < a_end || b < b_end) {
    std::int32_t col;
    T val;
    if (b == b_end || (a < a_end && a->col < b->col)) {
      col = a->col, val = a->val, ++a;
    } else if (a == a_end || b->col < a->col) {
      col = b->col, val = b->val, ++b;
    } else {
      col = a->col, val = a->val > b->val ? a->val : b->val, ++a, ++b;
    }
    if (out_col) out_col[ptr[i] + m] = col, out_val[ptr[i] + m] = val;
    ++m;
  }
  if (!out_col) count[i] = m;
}

template <class T>
__global__ void degree_kernel(const std::int64_t* __restrict__ ptr, const T* __restrict__ val, index_t n,
                              double* __restrict__ dinv) {  // [n]
  const index_t i = static_cast<index_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  double d = 0;
  for (index_t p = ptr[i]; p < ptr[i + 1]; ++p) d += static_cast<double>(val[p]);
  dinv[i] = d > 0 ? 1.0 / sqrt(d) : 0.0;
}

template <class T>
__global__ void scale_kernel(const std::int64_t* __restrict__ ptr, const std::int32_t* __restrict__ col,
                             T* __restrict__ val, index_t n, const double* __restrict__ dinv) {
  const index_t i = static_cast<index_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  for (index_t p = ptr[i]; p < ptr[i + 1]; ++p) val[p] = normalized(val[p], dinv[i], dinv[col[p]]);
}

// Non-zero entries of row i: count (out_col null) or copy to out_ptr[i].
template <class T>
__global__ void compact_kernel(const std::int64_t* __restrict__ ptr, const std::int32_t* __restrict__ col,
                               const T* __restrict__ val, index_t n, std::int64_t* __restrict__ count,
                               const std::int64_t* __restrict__ out_ptr, std::int32_t* __restrict__ out_col,
                               T* __restrict__ out_val) {
  const index_t i = static_cast<index_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  index_t m = 0;
  for (index_t p = ptr[i]; p < ptr[i + 1]; ++p) {
    if (!(val[p] != 0)) continue;
    if (out_col) out_col[out_ptr[i] + m] = col[p], out_val[out_ptr[i] + m] = val[p];
    ++m;
  }
  if (!out_col) count[i] = m;
}

void launched(const char* what) { cuda_check(cudaGetLastError(), what); }

void scan(const std::int64_t* counts, std::int64_t* ptr, index_t n, cudaStream_t stream) {
  scan_kernel<<<1, kScanThreads, 0, stream>>>(counts, ptr, n);
  launched("graph_from_knn: scan kernel");
}

template <class T>
index_t run(const T* scores, const std::int64_t* indices, index_t n, index_t k, const Options& options,
            std::int64_t* indptr, std::int32_t* out_indices, T* out_data, index_t capacity, Scratch& scratch,
            cudaStream_t stream) {
  const unsigned grid = blocks_for(n);
  DeviceBuffer<Entry<T>> rows(n * k, scratch);
  DeviceBuffer<std::int64_t> len(n, scratch), count(n, scratch), ptr(n + 1, scratch);
  directed_kernel<T><<<grid, kThreads, 0, stream>>>(scores, indices, n, k, options.gamma,
                                                     integer_gamma(options.gamma), options.l2, rows.get(), len.get());
  launched("graph_from_knn: directed kernel");

  // The graph before normalization, in bcol/bval at ptr.
  const index_t bound = options.mutual ? n * k : 2 * n * k;
  DeviceBuffer<std::int32_t> bcol(bound, scratch);
  DeviceBuffer<T> bval(bound, scratch);
  if (options.mutual) {
    mutual_kernel<T><<<grid, kThreads, 0, stream>>>(rows.get(), len.get(), n, k, count.get(), nullptr, nullptr, nullptr);
    launched("graph_from_knn: mutual count kernel");
    scan(count.get(), ptr.get(), n, stream);
    mutual_kernel<T><<<grid, kThreads, 0, stream>>>(rows.get(), len.get(), n, k, nullptr, ptr.get(), bcol.get(),
                                                    bval.get());
    launched("graph_from_knn: mutual fill kernel");
  } else {
    DeviceBuffer<unsigned long long> cursor(n, scratch);
    DeviceBuffer<std::int64_t> tptr(n + 1, scratch);
    DeviceBuffer<Entry<T>> t_rows(n * k, scratch);
    cuda_check(cudaMemsetAsync(cursor.get(), 0, sizeof(unsigned long long) * n, stream), "graph_from_knn: memset");
    indegree_kernel<T><<<grid, kThreads, 0, stream>>>(rows.get(), len.get(), n, k, cursor.get());
    launched("graph_from_knn: indegree kernel");
    scan(reinterpret_cast<const std::int64_t*>(cursor.get()), tptr.get(), n, stream);
    cuda_check(cudaMemcpyAsync(cursor.get(), tptr.get(), sizeof(std::int64_t) * n, cudaMemcpyDeviceToDevice, stream),
               "graph_from_knn: cursor copy");
    transpose_kernel<T><<<grid, kThreads, 0, stream>>>(rows.get(), len.get(), n, k, cursor.get(), t_rows.get());
    launched("graph_from_knn: transpose kernel");
    sort_rows_kernel<T><<<grid, kThreads, 0, stream>>>(t_rows.get(), tptr.get(), n);
    launched("graph_from_knn: sort kernel");
    union_kernel<T><<<grid, kThreads, 0, stream>>>(rows.get(), len.get(), t_rows.get(), tptr.get(), n, k,
                                                   count.get(), nullptr, nullptr, nullptr);
    launched("graph_from_knn: union count kernel");
    scan(count.get(), ptr.get(), n, stream);
    union_kernel<T><<<grid, kThreads, 0, stream>>>(rows.get(), len.get(), t_rows.get(), tptr.get(), n, k, nullptr,
                                                   ptr.get(), bcol.get(), bval.get());
    launched("graph_from_knn: union fill kernel");
  }

  if (options.normalize) {
    DeviceBuffer<double> dinv(n, scratch);
    degree_kernel<T><<<grid, kThreads, 0, stream>>>(ptr.get(), bval.get(), n, dinv.get());
    launched("graph_from_knn: degree kernel");
    scale_kernel<T><<<grid, kThreads, 0, stream>>>(ptr.get(), bcol.get(), bval.get(), n, dinv.get());
    launched("graph_from_knn: scale kernel");
  }

  compact_kernel<T><<<grid, kThreads, 0, stream>>>(ptr.get(), bcol.get(), bval.get(), n, count.get(), nullptr,
                                                   nullptr, nullptr);
  launched("graph_from_knn: compact count kernel");
  scan(count.get(), indptr, n, stream);
  compact_kernel<T><<<grid, kThreads, 0, stream>>>(ptr.get(), bcol.get(), bval.get(), n, nullptr, indptr,
                                                   out_indices, out_data);
  launched("graph_from_knn: compact kernel");
  std::int64_t nnz = 0;
  cuda_check(cudaMemcpyAsync(&nnz, indptr + n, sizeof(nnz), cudaMemcpyDeviceToHost, stream), "graph_from_knn: nnz copy");
  cuda_check(cudaStreamSynchronize(stream), "graph_from_knn");
  check(nnz <= capacity, "graph_from_knn: output capacity too small");  // cannot happen: nnz <= bound
  return nnz;
}

}  // namespace

index_t graph_from_knn(DType dtype, const void* scores, const std::int64_t* indices, index_t n, index_t k,
                       const Options& options, std::int64_t* indptr, std::int32_t* out_indices, void* out_data,
                       index_t capacity, Scratch& scratch, std::uintptr_t stream_handle) {
  check(n >= 0 && k >= 0, "graph_from_knn: negative shape");
  check(n < (index_t(1) << 31), "graph_from_knn: n must be below 2^31");
  check(options.gamma > 0, "gamma must be a finite number > 0");
  check(capacity >= (options.mutual ? n * k : 2 * n * k), "graph_from_knn: output capacity too small");
  auto stream = reinterpret_cast<cudaStream_t>(stream_handle);
  if (n == 0) {
    cuda_check(cudaMemsetAsync(indptr, 0, sizeof(std::int64_t), stream), "graph_from_knn: memset");
    cuda_check(cudaStreamSynchronize(stream), "graph_from_knn");
    return 0;
  }
  switch (dtype) {
    case DType::F32:
      return run<float>(static_cast<const float*>(scores), indices, n, k, options, indptr, out_indices,
                        static_cast<float*>(out_data), capacity, scratch, stream);
    case DType::F64:
      return run<double>(static_cast<const double*>(scores), indices, n, k, options, indptr, out_indices,
                         static_cast<double*>(out_data), capacity, scratch, stream);
    default: break;
  }
  throw TypeError(std::string("graph_from_knn: scores must be float32 or float64, got ") + dtype_name(dtype));
}

}  // namespace deepret::graph::cuda
