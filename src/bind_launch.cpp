// The CUDA engine's launch geometry (common/launch.h) exposed by the CPU
// module, so that tests check it for every size on machines without a GPU.
#include <tuple>

#include <pybind11/stl.h>

#include "bindings.h"
#include "common/launch.h"

namespace deepret::bind {

void register_launch(py::module_& m) {
  m.attr("_GRID_LIMITS") = py::make_tuple(launch::kMaxGridX, launch::kMaxGridYZ, launch::kMaxGridYZ);
  m.def("_launch_blocks_1d", &launch::blocks_1d, py::arg("count"), py::arg("threads"),
        "Test hook: blocks of a grid-stride loop over count items.");
  m.def("_launch_blocks_per_item", &launch::blocks_per_item, py::arg("items"),
        "Test hook: blocks of a one-block-per-item kernel (looping with stride gridDim.x).");
  m.def(
      "_launch_tiles",
      [](launch::count_t nx, launch::count_t ny, launch::count_t nz) {
        const launch::Grid3 g = launch::tiles(nx, ny, nz);
        return std::make_tuple(g.x, g.y, g.z);
      },
      py::arg("nx"), py::arg("ny"), py::arg("nz"), "Test hook: the grid over (nx, ny, nz) tiles.");
  m.def(
      "_launch_cg",
      [](launch::count_t n, launch::count_t m_) {
        const launch::CgGeometry g = launch::cg_geometry(n, m_);
        return py::dict(py::arg("threads") = std::make_tuple(g.columns, g.rows),
                        py::arg("grid") = std::make_tuple(g.grid.x, g.grid.y, g.grid.z),
                        py::arg("column_tiles") = g.column_tiles);
      },
      py::arg("n"), py::arg("m"), "Test hook: the batched CG's geometry for [n, m] vectors.");
}

}  // namespace deepret::bind
