#include "common/task_pool.h"

#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>

namespace deepret {

namespace {

struct Job {
  const std::function<void(std::int64_t)>* body = nullptr;  // valid until every chunk is done
  std::int64_t chunks = 0;
  int helpers = 0;                     // pool threads allowed to join
  std::atomic<std::int64_t> next{0};   // next chunk to claim
  std::atomic<int> joined{0};
  std::mutex mutex;                    // guards done, error
  std::condition_variable finished;
  std::int64_t done = 0;
  std::exception_ptr error;

  // Claims and runs chunks until none is left. A late helper claims nothing
  // and never touches `body`, which may be gone by then.
  void work() {
    for (;;) {
      const std::int64_t c = next.fetch_add(1);
      if (c >= chunks) return;
      std::exception_ptr failure;
      try {
        (*body)(c);
      } catch (...) {
        failure = std::current_exception();
      }
      std::lock_guard<std::mutex> lock(mutex);
      if (failure && !error) error = failure;
      if (++done == chunks) finished.notify_all();
    }
  }
};

class Pool {
 public:
  // Never destroyed: its threads are detached and end with the process.
  static Pool& instance() {
    static std::atomic<Pool*> current{nullptr};
    static std::mutex create;
    std::lock_guard<std::mutex> lock(create);
    Pool* pool = current.load();
    // A forked child has none of the parent's threads: start a new pool.
    if (pool == nullptr || pool->pid_ != getpid()) {
      pool = new Pool();
      current.store(pool);
    }
    return *pool;
  }

  // One job at a time; false when another caller (or a nested call on this
  // very thread) holds the pool.
  bool try_acquire() { return !busy_.exchange(true); }
  void release() { busy_.store(false); }

  void run(const std::shared_ptr<Job>& job, int helpers) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      while (static_cast<int>(threads_) < helpers) {
        std::thread(&Pool::loop, this).detach();
        ++threads_;
      }
      job_ = job;
      ++generation_;
    }
    wake_.notify_all();
    job->work();
    std::unique_lock<std::mutex> lock(job->mutex);
    job->finished.wait(lock, [&] { return job->done == job->chunks; });
    lock.unlock();
    std::lock_guard<std::mutex> pool_lock(mutex_);
    job_.reset();
  }

 private:
  Pool() : pid_(getpid()) {}

  void loop() {
    std::uint64_t seen = 0;
    for (;;) {
      std::shared_ptr<Job> job;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return generation_ != seen; });
        seen = generation_;
        job = job_;
      }
      if (job && job->joined.fetch_add(1) < job->helpers) job->work();
    }
  }

  pid_t pid_;
  std::atomic<bool> busy_{false};
  std::mutex mutex_;   // guards job_, generation_, threads_
  std::condition_variable wake_;
  std::shared_ptr<Job> job_;
  std::uint64_t generation_ = 0;
  unsigned threads_ = 0;
};

}  // namespace

void run_chunks(std::int64_t chunks, int threads, const std::function<void(std::int64_t)>& body) {
  if (chunks <= 0) return;
  if (threads <= 1 || chunks == 1) {
    for (std::int64_t c = 0; c < chunks; ++c) body(c);
    return;
  }
  Pool& pool = Pool::instance();
  if (!pool.try_acquire()) {  // another job runs (another caller, or a nested call)
    for (std::int64_t c = 0; c < chunks; ++c) body(c);
    return;
  }
  auto job = std::make_shared<Job>();
  job->body = &body;
  job->chunks = chunks;
  job->helpers = threads - 1;
  pool.run(job, threads - 1);
  pool.release();
  if (job->error) std::rethrow_exception(job->error);
}

}  // namespace deepret
