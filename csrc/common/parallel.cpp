// The thread pool behind parallel_for (see parallel.h for the semantics).
#include "common/parallel.h"

#include <sched.h>
#include <strings.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <utility>

#include "common/errors.h"

namespace deepret {

namespace {

// Thrown by checkpoint() on a thread whose job was stopped: the job already
// holds the exception that stopped it, so this one is dropped.
struct Stopped {};

// How long an idle pool thread, and a caller waiting for the last chunks,
// spin before they sleep on a condition variable. A call that follows the
// last one within it (CG's iterations, a loop over small inputs) then starts
// and ends without a futex wake-up, which costs tens of microseconds on a
// VM: convolve of 10^6 floats with 3 taps on 2 threads (about 0.1 ms) was
// 25-45 % slower (median) on this pool than on OpenMP, whose threads spin
// the same way (libgomp's GOMP_SPINCOUNT), without the spin and 10-25 %
// with it; one-column diffusion (20 short loops per call) moved within the
// machine's noise either way (bench/RESULTS.md, issue #12).
// OMP_WAIT_POLICY=passive (any case) turns the spin off, as for libgomp.
std::chrono::microseconds spin_time() {
  static const std::chrono::microseconds spin = [] {
    const char* policy = std::getenv("OMP_WAIT_POLICY");
    const bool passive = policy != nullptr && strcasecmp(policy, "passive") == 0;
    return std::chrono::microseconds(passive ? 0 : 200);
  }();
  return spin;
}

// Spins until ready() or the spin time has passed (the caller then sleeps
// on its condition variable if still not ready).
template <class Ready>
void spin_for(const Ready& ready) {
  const auto spin = spin_time();
  if (spin.count() == 0) return;
  const auto until = std::chrono::steady_clock::now() + spin;
  for (;;) {
    for (int i = 0; i < 64; ++i) {
      if (ready()) return;
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
    }
    if (std::chrono::steady_clock::now() >= until) return;
  }
}

struct Job;
thread_local Job* current_job = nullptr;   // the job this thread runs a chunk of
thread_local bool pool_worker = false;     // a pool thread (never the caller)
thread_local InterruptPoll* installed_poll = nullptr;

struct Job {
  const std::function<void(std::int64_t)>* body = nullptr;  // valid until every chunk is done
  std::int64_t chunks = 0;
  int helpers = 0;                    // pool threads allowed to join
  std::atomic<std::int64_t> next{0};  // next chunk to claim
  std::atomic<int> joined{0};
  std::atomic<bool> stopped{false};
  // Claimed chunks that have finished or were skipped. An atomic, not a
  // counter under the mutex: two threads taking a mutex at every one of 64
  // chunks of a 0.1 ms call bounce its cache line back and forth.
  std::atomic<std::int64_t> done{0};
  std::mutex mutex;                   // guards error; the waiter sleeps under it
  std::condition_variable finished;
  std::exception_ptr error;

  bool all_done() const { return done.load(std::memory_order_acquire) == chunks; }

  void fail(std::exception_ptr failure) {
    std::lock_guard<std::mutex> lock(mutex);
    if (!error) error = failure;
    stopped.store(true);
  }

  // Claims and runs chunks until none is left; once the job is stopped the
  // chunks still unclaimed are counted as done without running. A late
  // helper claims nothing and never touches `body`, which may be gone then.
  void work() {
    Job* const outer = current_job;
    current_job = this;
    for (;;) {
      const std::int64_t c = next.fetch_add(1);
      if (c >= chunks) break;
      if (!stopped.load(std::memory_order_relaxed)) {
        try {
          (*body)(c);
          if (!pool_worker) poll_interrupt();
        } catch (const Stopped&) {
        } catch (...) {
          fail(std::current_exception());
        }
      }
      if (done.fetch_add(1, std::memory_order_acq_rel) + 1 == chunks) {
        // Under the mutex, so that a waiter that has just seen done < chunks
        // is already asleep on `finished` (or has not yet looked) when notified.
        std::lock_guard<std::mutex> lock(mutex);
        finished.notify_all();
      }
    }
    current_job = outer;
  }
};

class Pool {
 public:
  // Never destroyed: its threads are detached and end with the process. A
  // forked child has none of the parent's threads (and may have been forked
  // while one of them held a lock): it starts a new pool and leaks the copy.
  static Pool& instance() {
    static std::atomic<Pool*> current{nullptr};
    Pool* pool = current.load();
    const pid_t pid = getpid();
    while (pool == nullptr || pool->pid_ != pid) {
      Pool* fresh = new Pool(pid);
      if (current.compare_exchange_strong(pool, fresh)) return *fresh;
      delete fresh;  // another thread of this process won the race; `pool` is its pool
    }
    return *pool;
  }

  // One job at a time; false when another caller (or a nested call) holds it.
  bool try_acquire() { return !busy_.exchange(true); }
  void release() { busy_.store(false); }

  void run(const std::shared_ptr<Job>& job) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      while (static_cast<int>(threads_) < job->helpers) {
        try {
          std::thread(&Pool::loop, this).detach();
        } catch (const std::system_error&) {  // no more threads (a ulimit): run with fewer
          break;
        }
        ++threads_;
      }
      job->helpers = std::min(job->helpers, static_cast<int>(threads_));
      job_ = job;
      ++generation_;
    }
    wake_.notify_all();
    job->work();
    spin_for([&] { return job->all_done(); });
    // The chunks other threads still run: wait for them, polling for
    // interrupts meanwhile so that a long last chunk cannot hide a Ctrl-C.
    std::unique_lock<std::mutex> lock(job->mutex);
    while (!job->all_done()) {
      if (installed_poll == nullptr) {
        job->finished.wait(lock);
        continue;
      }
      job->finished.wait_for(lock, InterruptPoll::kPollInterval);
      if (job->all_done()) break;
      lock.unlock();
      try {
        poll_interrupt();
      } catch (...) {
        job->fail(std::current_exception());
      }
      lock.lock();
    }
    lock.unlock();
    std::lock_guard<std::mutex> pool_lock(mutex_);
    job_.reset();
  }

 private:
  explicit Pool(pid_t pid) : pid_(pid) {}

  void loop() {
    pool_worker = true;
    std::uint64_t seen = 0;
    for (;;) {
      std::shared_ptr<Job> job;
      spin_for([&] { return generation_.load(std::memory_order_acquire) != seen; });
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return generation_ != seen; });
        seen = generation_.load();
        job = job_;
      }
      if (job && job->joined.fetch_add(1) < job->helpers) job->work();
    }
  }

  const pid_t pid_;
  std::atomic<bool> busy_{false};
  std::mutex mutex_;  // guards job_, generation_, threads_
  std::condition_variable wake_;
  std::shared_ptr<Job> job_;
  std::atomic<std::uint64_t> generation_{0};  // written under mutex_; read while spinning
  unsigned threads_ = 0;
};

int affinity_cpus() {
#if defined(__linux__)
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    const int count = CPU_COUNT(&set);
    if (count > 0) return count;
  }
#endif
  const unsigned hw = std::thread::hardware_concurrency();
  return hw > 0 ? static_cast<int>(hw) : 1;
}

}  // namespace

int max_threads() {
  // Read at every call (a getenv), so that a change made through os.environ
  // after import is honoured too.
  if (const char* env = std::getenv("OMP_NUM_THREADS")) {
    char* end = nullptr;
    const long value = std::strtol(env, &end, 10);
    if (end != env && value > 0 && (*end == '\0' || *end == ',' || *end == ' '))
      return static_cast<int>(std::min<long>(value, 1024));
  }
  return affinity_cpus();
}

void run_chunks(std::int64_t chunks, int threads, const std::function<void(std::int64_t)>& body) {
  if (chunks <= 0) return;
  if (threads <= 1 || chunks == 1) return run_chunks_serially(chunks, body);
  Pool& pool = Pool::instance();
  if (!pool.try_acquire()) return run_chunks_serially(chunks, body);  // another job holds the pool
  struct Release {  // whatever happens below
    Pool& pool;
    ~Release() { pool.release(); }
  } release{pool};
  auto job = std::make_shared<Job>();
  job->body = &body;
  job->chunks = chunks;
  job->helpers = threads - 1;
  pool.run(job);
  // Take the error out of the job here: a pool thread may hold the last
  // reference to the job and destroy it later, and the error can be a
  // Python exception (an interrupt poll's), whose destructor takes the GIL.
  // Run on a pool thread during interpreter shutdown, that aborted the
  // process ("terminate called without an active exception") after a
  // SIGTERM had already been handled (tests/test_cli.py, under load).
  std::exception_ptr error;
  {
    std::lock_guard<std::mutex> lock(job->mutex);
    error = std::exchange(job->error, nullptr);
  }
  if (error) std::rethrow_exception(error);
}

void checkpoint() {
  if (!pool_worker) poll_interrupt();
  if (current_job != nullptr && current_job->stopped.load(std::memory_order_relaxed)) throw Stopped{};
}

bool on_calling_thread() { return !pool_worker; }

InterruptPoll::InterruptPoll(std::function<void()> poll)
    : poll_(std::move(poll)), previous_(installed_poll), last_(std::chrono::steady_clock::now()) {
  installed_poll = this;
}

InterruptPoll::~InterruptPoll() { installed_poll = previous_; }

void poll_interrupt() {
  InterruptPoll* poll = installed_poll;
  if (poll == nullptr || !poll->poll_) return;
  const auto now = std::chrono::steady_clock::now();
  if (now - poll->last_ < InterruptPoll::kPollInterval) return;
  poll->last_ = now;
  poll->poll_();
}

void runtime_self_test(std::int64_t chunks, std::int64_t fail_at, int num_threads) {
  // The first chunk from fail_at on that a pool worker runs throws (any
  // chunk from fail_at on when the call runs on one thread); every chunk
  // takes a millisecond, so that the threads interleave.
  const bool serial = resolve_threads(num_threads) <= 1;
  parallel_for<1024>(0, chunks, 1, num_threads, [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t c = lo; c < hi; ++c) {
      if (c >= fail_at && (pool_worker || serial))
        throw ValueError("runtime self-test: chunk " + std::to_string(c) +
                         (pool_worker ? " failed on a pool worker" : " failed on the calling thread"));
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      checkpoint();
    }
  });
}

}  // namespace deepret
