// Engine errors become the Python exceptions they name; Python's signals
// reach the engine's interrupt poll (EngineCall).
#include <atomic>

#include "bindings.h"

namespace deepret::bind {

namespace {
std::atomic<unsigned long> main_thread{0};
}  // namespace

void init_engine_calls() {
  main_thread.store(py::module_::import("threading").attr("main_thread")().attr("ident").cast<unsigned long>());
}

std::function<void()> EngineCall::signal_poll() {
  if (PyThread_get_thread_ident() != main_thread.load()) return {};
  return [] {
    py::gil_scoped_acquire gil;
    if (PyErr_CheckSignals() != 0) throw py::error_already_set();
  };
}

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
