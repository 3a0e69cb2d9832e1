// The CPU engine's one parallel runtime: parallel_for over a small thread
// pool (parallel.cpp), with defined semantics that every kernel shares.
//
//   parallel_for(begin, end, grain, num_threads, body) splits [begin, end)
//   into chunks of at least `grain` items (up to ChunksPerThread per thread,
//   claimed dynamically) and runs body(lo, hi) on each, on up to num_threads
//   threads, the calling thread included; num_threads <= 0 means
//   max_threads() (OMP_NUM_THREADS, else the CPUs this process may run on).
//
//   Exceptions: the first exception a chunk throws (std::bad_alloc, deepret's
//   ValueError, anything) stops the call: no new chunk starts, the chunks
//   already running finish (or stop at their next checkpoint()), and the
//   exception is rethrown in the caller. Nothing is left running.
//
//   Cancellation: checkpoint() between work items. On the calling thread it
//   runs the interrupt poll the bindings installed (InterruptPoll: Python's
//   pending signals, at most every kPollInterval); on any thread it throws
//   once the call it works for has been stopped. The caller also polls while
//   it waits for the other threads' last chunks.
//
//   Concurrency: one job runs on the pool at a time; a call made while it is
//   busy (another Python thread, or a parallel_for inside a chunk) runs its
//   chunks serially on its own thread, with the same results.
//
//   Determinism: results never depend on which thread ran which chunk (every
//   kernel writes disjoint outputs or reduces per fixed block).
//
// Why a pool of our own and not OpenMP: libgomp's threads do not survive
// fork(), and a child that enters a parallel region after its parent used
// OpenMP hangs (multiprocessing's default start method forks); a
// pthread_atfork fix would have to reach into libgomp's state. The pool
// records its pid and a forked child starts a new one. Speed decided the
// rest: measured on a 2-core AMD EPYC (AVX2+FMA) shared with other jobs
// (load 7-10), median of 9 runs, three runs of each build interleaved,
// OpenMP parallel for -> this pool: diffuse 20k x 1 column 424 -> 31 ms,
// EGM 64x64 35.6 -> 7.8 ms, convolve 1M x 64 taps 20.0 -> 4.0 ms, knn 500
// queries x 20k 168 -> 116 ms, knn_graph 20k 3.78 -> 3.04 s, diffuse 20k x
// 64 columns and regional_max_pool equal within the noise. Calls made of
// many short parallel loops gain most: an OpenMP region joins every thread
// of its team, so a member that has lost its core costs the call a
// scheduler tick (4 ms) at each barrier, where the pool returns as soon as
// every chunk is done and a helper that has not started claims nothing.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>

namespace deepret {

// Threads a kernel uses by default: the first number in OMP_NUM_THREADS when
// it is a positive integer (as OpenMP reads it), else the CPUs in this
// process's affinity mask.
int max_threads();

inline int resolve_threads(int num_threads) { return num_threads > 0 ? num_threads : max_threads(); }

// Runs body(c) for every chunk c in [0, chunks) on up to `threads` threads
// (the caller included), with the semantics above.
void run_chunks(std::int64_t chunks, int threads, const std::function<void(std::int64_t)>& body);

// Throws when the call this thread works for is being stopped (another chunk
// failed, or an interrupt); on the calling thread, polls for interrupts.
void checkpoint();

// Whether this thread is the one that called into the engine (not a pool
// worker): callbacks into the caller's world (progress bars) run only there.
bool on_calling_thread();

// Installs `poll` for the calling thread while alive. poll() runs between
// work items on this thread, at most every kPollInterval; it throws to cancel
// the call (the exception reaches the caller like a chunk's).
class InterruptPoll {
 public:
  static constexpr std::chrono::milliseconds kPollInterval{50};
  explicit InterruptPoll(std::function<void()> poll);
  ~InterruptPoll();
  InterruptPoll(const InterruptPoll&) = delete;
  InterruptPoll& operator=(const InterruptPoll&) = delete;

 private:
  std::function<void()> poll_;
  InterruptPoll* previous_;
  std::chrono::steady_clock::time_point last_;
  friend void poll_interrupt();
};

// Runs the installed poll now if its interval has passed (calling thread only).
void poll_interrupt();

// Runs body(c) for c in [0, chunks) on this thread, with a checkpoint()
// between chunks: what run_chunks does for one thread, or while the pool is
// busy. A template so that parallel_for's body inlines into the loop.
template <class ChunkBody>
void run_chunks_serially(std::int64_t chunks, const ChunkBody& body) {
  for (std::int64_t c = 0; c < chunks; ++c) {
    if (c > 0) checkpoint();
    body(c);
  }
}

// Up to ChunksPerThread chunks per thread, handed out dynamically: on a
// shared machine a thread that loses its core for a scheduler slice then
// delays the call by one small chunk, not by half of the work. Kernels whose
// chunks carry a fixed cost (packing, conv2d) ask for fewer.
template <int ChunksPerThread = 32, class Body>
void parallel_for(std::int64_t begin, std::int64_t end, std::int64_t grain, int num_threads,
                  const Body& body) {
  const std::int64_t total = end - begin;
  if (total <= 0) return;
  grain = std::max<std::int64_t>(grain, 1);
  const int threads = resolve_threads(num_threads);
  const std::int64_t max_chunks = (total + grain - 1) / grain;
  if (max_chunks <= 1) {
    body(begin, end);
    return;
  }
  // One thread still cuts the range (into ChunksPerThread chunks), so that a
  // serial call stays interruptible between chunks.
  const std::int64_t chunks =
      std::min<std::int64_t>(max_chunks, std::int64_t(std::max(threads, 1)) * ChunksPerThread);
  const int team = static_cast<int>(std::min<std::int64_t>(chunks, threads));
  const auto chunk = [&](std::int64_t c) {
    body(begin + total * c / chunks, begin + total * (c + 1) / chunks);
  };
  // One thread runs the chunks here, where body inlines into the loop, not
  // through run_chunks' std::function: called through it, graph_from_knn's
  // transpose (random scatter stores) reloaded its captures at every store.
  // n = 10^5, k = 50, 1 thread, min of 9 calls, A/B in fresh processes:
  // 252-275 ms before the pool, 296-326 through run_chunks, 246-269 here
  // (bench/RESULTS.md, issue #12).
  if (team <= 1) return run_chunks_serially(chunks, chunk);
  run_chunks(chunks, team, chunk);
}

// Test hook: runs `chunks` 1-ms chunks on num_threads threads; the first
// chunk from fail_at on that a pool worker runs throws ValueError.
void runtime_self_test(std::int64_t chunks, std::int64_t fail_at, int num_threads);

}  // namespace deepret
