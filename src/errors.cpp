// Engine errors become the Python exceptions they name.
#include "bindings.h"

namespace deepret::bind {

void register_error_translator() {
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const deepret::TypeError& e) {
      PyErr_SetString(PyExc_TypeError, e.what());
    } catch (const deepret::ValueError& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    }
  });
}

}  // namespace deepret::bind
