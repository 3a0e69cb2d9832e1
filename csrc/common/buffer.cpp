// Size checks and the allocation test hook of common/buffer.h.
#include "common/buffer.h"

#include <sys/sysinfo.h>

#include <atomic>
#include <cstdio>
#include <limits>
#include <string>

#include "common/errors.h"

namespace deepret {

namespace {

std::atomic<std::int64_t> fail_countdown{-1};
std::atomic<std::int64_t> allocations{0};

// RAM + swap, read once: no single request above it can be met.
std::size_t machine_bytes() {
  static const std::size_t bytes = [] {
    struct sysinfo info {};
    if (sysinfo(&info) != 0) return std::numeric_limits<std::size_t>::max();
    const unsigned long long total =
        (static_cast<unsigned long long>(info.totalram) + info.totalswap) * info.mem_unit;
    return total > 0 ? static_cast<std::size_t>(total) : std::numeric_limits<std::size_t>::max();
  }();
  return bytes;
}

std::string human(long double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  int u = 0;
  while (bytes >= 1024 && u < 6) bytes /= 1024, ++u;
  char text[64];
  std::snprintf(text, sizeof(text), u == 0 ? "%.0Lf %s" : "%.2Lf %s", bytes, units[u]);
  return text;
}

}  // namespace

[[noreturn]] void out_of_memory(std::size_t bytes, const char* what) {
  throw MemoryError("deepret: cannot allocate " + human(bytes) + " for " + what);
}

std::size_t checked_bytes(std::int64_t count, std::size_t size, const char* what) {
  if (count <= 0) return 1;
  const long double exact = static_cast<long double>(count) * static_cast<long double>(size);
  if (exact > static_cast<long double>(machine_bytes()))
    throw MemoryError("deepret: cannot allocate " + human(exact) + " for " + what +
                      " (more than this machine's " + human(machine_bytes()) + " of memory)");
  return static_cast<std::size_t>(count) * size;
}

void before_allocation(std::size_t bytes, const char* what) {
  allocations.fetch_add(1, std::memory_order_relaxed);
  if (fail_countdown.load(std::memory_order_relaxed) < 0) return;
  if (fail_countdown.fetch_sub(1) == 0)
    throw MemoryError("deepret: cannot allocate " + human(bytes) + " for " + what +
                      " (failure injected by the test hook)");
}

void fail_allocation(std::int64_t n) { fail_countdown.store(n < 0 ? -1 : n); }

std::int64_t allocation_count() { return allocations.load(); }

}  // namespace deepret
