// A plain complex type for device code (std::complex is host-only); the layout
// matches numpy's complex64/complex128 and cupy's.
#pragma once

#include "common/hostdevice.h"

namespace deepret {

template <class T>
struct alignas(2 * sizeof(T)) Complex {
  T re, im;
};

template <class T>
DEEPRET_HD Complex<T> operator+(Complex<T> a, Complex<T> b) {
  return {a.re + b.re, a.im + b.im};
}

template <class T>
DEEPRET_HD Complex<T> operator*(Complex<T> a, Complex<T> b) {
  return {a.re * b.re - a.im * b.im, a.re * b.im + a.im * b.re};
}

template <class T>
DEEPRET_HD Complex<T> conj(Complex<T> a) {
  return {a.re, -a.im};
}

}  // namespace deepret
