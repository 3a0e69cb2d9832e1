// Engine-side argument errors. The bindings translate ValueError into Python's
// ValueError and TypeError into Python's TypeError, so the engine can check its
// own preconditions without knowing about Python.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

namespace deepret {

struct ValueError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

struct TypeError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// check(cond, "x must be 2-D (n, d)") throws ValueError when cond is false.
inline void check(bool condition, const std::string& message) {
  if (!condition) throw ValueError(message);
}

inline void check_type(bool condition, const std::string& message) {
  if (!condition) throw TypeError(message);
}

}  // namespace deepret
