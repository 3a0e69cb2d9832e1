// Engine-side errors. The bindings translate ValueError into Python's
// ValueError and TypeError into Python's TypeError, so the engine can check its
// own preconditions without knowing about Python; MemoryError is a
// std::bad_alloc with a message (the size asked for), which pybind11 turns
// into Python's MemoryError like any bad_alloc.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <new>
#include <string>
#include <utility>

namespace deepret {

struct ValueError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

struct TypeError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class MemoryError : public std::bad_alloc {
 public:
  explicit MemoryError(std::string message) : message_(std::move(message)) {}
  const char* what() const noexcept override { return message_.c_str(); }

 private:
  std::string message_;
};

// check(cond, "x must be 2-D (n, d)") throws ValueError when cond is false.
inline void check(bool condition, const std::string& message) {
  if (!condition) throw ValueError(message);
}

inline void check_type(bool condition, const std::string& message) {
  if (!condition) throw TypeError(message);
}

}  // namespace deepret
