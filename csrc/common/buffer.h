// Uninitialized scratch and result arrays for the CPU engine, and the one
// place where sizes that come from the user become bytes.
//
// Every allocation sized by the input goes through checked_bytes(): a count
// whose bytes overflow, or exceed the machine's memory (RAM + swap), cannot
// fit, so it fails with MemoryError naming the size before anything is
// allocated (with overcommit, malloc might otherwise "succeed" and the
// process be killed when the pages are touched). A failing malloc gives the
// same MemoryError. Inside a parallel region the exception reaches the
// caller through the runtime (common/parallel.h).
//
// First-touching fresh memory costs about 1 ms per MB in page faults on these
// VMs with 4 KiB pages; numpy asks for transparent huge pages on large arrays
// (madvise), and so does allocate() here: 2 MiB-aligned, MADV_HUGEPAGE from
// 4 MiB up. Buffers are freed with std::free, so a Buffer's memory can be
// handed to numpy with a deleter that calls std::free.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <new>
#include <type_traits>
#include <vector>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace deepret {

// count * size in bytes (at least 1); throws MemoryError ("cannot allocate
// 1.5 TiB for <what>...") when that overflows or cannot fit in this machine.
std::size_t checked_bytes(std::int64_t count, std::size_t size, const char* what);

// Throws the MemoryError of a failed allocation of `bytes`.
[[noreturn]] void out_of_memory(std::size_t bytes, const char* what);

// Called before every checked allocation: counts it, and fails it when the
// test hook says so (fail_allocation).
void before_allocation(std::size_t bytes, const char* what);

// Test hook: the n-th checked allocation from now (0 = the next one) throws
// MemoryError, once; n < 0 disarms. allocation_count() counts them all.
void fail_allocation(std::int64_t n);
std::int64_t allocation_count();

struct FreeDeleter {
  void operator()(void* p) const noexcept { std::free(p); }
};

template <class V>
using Buffer = std::unique_ptr<V[], FreeDeleter>;

// `count` uninitialized elements of a trivial type V (at least one byte is
// allocated, so the pointer is never null); throws MemoryError. `align`
// (a power of two) asks for more than malloc's alignment below 4 MiB, e.g.
// 64 for data read in whole cache lines.
template <class V>
Buffer<V> allocate(std::int64_t count, const char* what = "a work array", std::size_t align = 0) {
  static_assert(std::is_trivially_default_constructible_v<V> && std::is_trivially_destructible_v<V>,
                "allocate() hands out uninitialized memory");
  constexpr std::size_t kHuge = std::size_t(2) << 20;
  const std::size_t bytes = checked_bytes(count, sizeof(V), what);
  before_allocation(bytes, what);
  void* p = nullptr;
  if (bytes >= 2 * kHuge) {
    const std::size_t rounded = (bytes + kHuge - 1) / kHuge * kHuge;
    p = std::aligned_alloc(kHuge, rounded);
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (p) madvise(p, rounded, MADV_HUGEPAGE);  // advice only: failure is harmless
#endif
  } else if (align > alignof(std::max_align_t)) {
    p = std::aligned_alloc(align, (bytes + align - 1) / align * align);
  } else {
    p = std::malloc(bytes);
  }
  if (!p) out_of_memory(bytes, what);
  return Buffer<V>(static_cast<V*>(p));
}

// std::allocator with the same checks, for the engine's std::vectors (scratch
// resized from user sizes, often inside parallel regions).
template <class T>
struct CheckedAllocator {
  using value_type = T;
  CheckedAllocator() noexcept = default;
  template <class U>
  CheckedAllocator(const CheckedAllocator<U>&) noexcept {}
  T* allocate(std::size_t count) {
    const std::size_t bytes = checked_bytes(static_cast<std::int64_t>(
                                                std::min<std::size_t>(count, PTRDIFF_MAX)),
                                            sizeof(T), "scratch");
    before_allocation(bytes, "scratch");
    void* p = std::malloc(bytes);
    if (!p) out_of_memory(bytes, "scratch");
    return static_cast<T*>(p);
  }
  void deallocate(T* p, std::size_t) noexcept { std::free(p); }
  template <class U>
  bool operator==(const CheckedAllocator<U>&) const noexcept { return true; }
  template <class U>
  bool operator!=(const CheckedAllocator<U>&) const noexcept { return false; }
};

template <class T>
using Scratch = std::vector<T, CheckedAllocator<T>>;

// Frees v's memory when it holds more than max_bytes: per-thread scratch kept
// between calls stays bounded after one huge call.
template <class Vector>
void release_if_larger(Vector& v, std::size_t max_bytes) {
  if (v.capacity() * sizeof(typename Vector::value_type) > max_bytes) Vector().swap(v);
}

}  // namespace deepret
