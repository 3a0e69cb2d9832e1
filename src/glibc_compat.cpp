// Linked into the extension modules only when libstdc++ is linked statically
// (CMakeLists.txt, DEEPRET_STATIC_LIBSTDCXX). GCC 12's libstdc++.a brings
// std::random_device along with its string instantiations, and random_device
// references arc4random, which glibc has only since 2.36: that one unused
// reference would raise the wheel's manylinux floor from glibc 2.34 to 2.36.
// This local definition (the version script keeps it unexported) satisfies it
// with getentropy (glibc 2.25). deepret itself never calls random_device.
#include <cstdint>
#include <cstdlib>  // defines __GLIBC__ where the C library is glibc

#if defined(__linux__) && defined(__GLIBC__)
#include <sys/random.h>

extern "C" __attribute__((used)) std::uint32_t arc4random(void) {
  std::uint32_t value = 0;
  if (getentropy(&value, sizeof(value)) != 0) std::abort();  // the kernel has no entropy source
  return value;
}
#endif
