// Non-owning views of strided arrays, with shapes and strides counted in
// elements (not bytes), as the engine sees them.
#pragma once

#include <array>
#include <cstdint>

#include "common/errors.h"
#include "common/hostdevice.h"

namespace deepret {

using index_t = std::int64_t;

template <class T, int NDIM>
struct ArrayView {
  T* data = nullptr;
  std::array<index_t, NDIM> shape{};
  std::array<index_t, NDIM> strides{};  // in elements

  index_t size() const {
    index_t total = 1;
    for (int d = 0; d < NDIM; ++d) total *= shape[d];
    return total;
  }

  bool is_contiguous() const {
    index_t expected = 1;
    for (int d = NDIM - 1; d >= 0; --d) {
      if (shape[d] != 1 && strides[d] != expected) return false;
      expected *= shape[d];
    }
    return true;
  }

  T& operator()(index_t i) const { return data[i * strides[0]]; }
  T& operator()(index_t i, index_t j) const { return data[i * strides[0] + j * strides[1]]; }
};

template <class T>
using Vector = ArrayView<T, 1>;

// A contiguous 1-D view.
template <class T>
Vector<T> vector_view(T* data, index_t n) {
  Vector<T> v;
  v.data = data;
  v.shape = {n};
  v.strides = {1};
  return v;
}

}  // namespace deepret
