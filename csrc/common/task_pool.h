// pool_for: parallel_for's contract (split [begin, end) into chunks of at
// least `grain`, run body(lo, hi) on each, up to num_threads threads, 0 =
// OpenMP's default), on a small thread pool that the caller works in too and
// that returns as soon as every chunk is done: a helper thread that has not
// been scheduled yet (a busy machine) claims nothing and delays nothing. An
// OpenMP parallel region instead joins every thread of its team, so one
// descheduled thread costs the call a whole scheduler tick (4 ms here).
//
// One job at a time: a call made while the pool is busy (another Python
// thread, or a nested call) runs serially in its caller. Exceptions thrown by
// the body are rethrown in the caller once every claimed chunk has finished.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>

#include "common/parallel.h"

namespace deepret {

// Runs body(c) for every c in [0, chunks) on up to `threads` threads (the
// caller included); returns when all have finished.
void run_chunks(std::int64_t chunks, int threads, const std::function<void(std::int64_t)>& body);

template <class Body>
void pool_for(std::int64_t begin, std::int64_t end, std::int64_t grain, int num_threads,
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
  constexpr std::int64_t kChunksPerThread = 8;
  const std::int64_t chunks = std::min<std::int64_t>(max_chunks, threads * kChunksPerThread);
  const int team = static_cast<int>(std::min<std::int64_t>(chunks, threads));
  run_chunks(chunks, team, [&](std::int64_t c) {
    body(begin + total * c / chunks, begin + total * (c + 1) / chunks);
  });
}

}  // namespace deepret
