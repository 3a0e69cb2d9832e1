// parallel_for: split [begin, end) into chunks of at least `grain` items and run
// body(lo, hi) on each, over OpenMP threads when the build has OpenMP.
// num_threads <= 0 means OpenMP's default, which honours OMP_NUM_THREADS.
//
// Up to kChunksPerThread chunks per thread, handed out dynamically: on a
// shared machine a thread that loses its core for a scheduler slice then
// delays the call by one small chunk, not by half of the work.
#pragma once

#include <algorithm>
#include <cstdint>

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace deepret {

inline int max_threads() {
#if defined(_OPENMP)
  return omp_get_max_threads();
#else
  return 1;
#endif
}

inline int resolve_threads(int num_threads) {
  return num_threads > 0 ? num_threads : max_threads();
}

template <class Body>
void parallel_for(std::int64_t begin, std::int64_t end, std::int64_t grain, int num_threads,
                  const Body& body) {
  const std::int64_t total = end - begin;
  if (total <= 0) return;
  grain = std::max<std::int64_t>(grain, 1);
  const int threads = resolve_threads(num_threads);
  const std::int64_t max_chunks = (total + grain - 1) / grain;
  if (threads <= 1 || max_chunks <= 1) {
    body(begin, end);
    return;
  }
  constexpr std::int64_t kChunksPerThread = 32;
  const std::int64_t chunks = std::min<std::int64_t>(max_chunks, threads * kChunksPerThread);
  const int team = static_cast<int>(std::min<std::int64_t>(chunks, threads));
#if defined(_OPENMP)
#pragma omp parallel for num_threads(team) schedule(dynamic, 1)
#else
  (void)team;
#endif
  for (std::int64_t c = 0; c < chunks; ++c) {
    const std::int64_t lo = begin + total * c / chunks;
    const std::int64_t hi = begin + total * (c + 1) / chunks;
    body(lo, hi);
  }
}

}  // namespace deepret
