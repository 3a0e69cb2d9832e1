// Uninitialized scratch and result arrays for the CPU engine.
//
// First-touching fresh memory costs about 1 ms per MB in page faults on these
// VMs with 4 KiB pages; numpy asks for transparent huge pages on large arrays
// (madvise), and so does allocate() here: 2 MiB-aligned, MADV_HUGEPAGE from
// 4 MiB up. Buffers are freed with std::free, so a Buffer's memory can be
// handed to numpy with a deleter that calls std::free.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <new>
#include <type_traits>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace deepret {

struct FreeDeleter {
  void operator()(void* p) const noexcept { std::free(p); }
};

template <class V>
using Buffer = std::unique_ptr<V[], FreeDeleter>;

// `count` uninitialized elements of a trivial type V (at least one byte is
// allocated, so the pointer is never null); throws std::bad_alloc.
template <class V>
Buffer<V> allocate(std::int64_t count) {
  static_assert(std::is_trivially_default_constructible_v<V> && std::is_trivially_destructible_v<V>,
                "allocate() hands out uninitialized memory");
  constexpr std::size_t kHuge = std::size_t(2) << 20;
  const std::size_t bytes = static_cast<std::size_t>(count > 0 ? count : 1) * sizeof(V);
  void* p = nullptr;
  if (bytes >= 2 * kHuge) {
    const std::size_t rounded = (bytes + kHuge - 1) / kHuge * kHuge;
    p = std::aligned_alloc(kHuge, rounded);
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (p) madvise(p, rounded, MADV_HUGEPAGE);  // advice only: failure is harmless
#endif
  } else {
    p = std::malloc(bytes);
  }
  if (!p) throw std::bad_alloc();
  return Buffer<V>(static_cast<V*>(p));
}

}  // namespace deepret
