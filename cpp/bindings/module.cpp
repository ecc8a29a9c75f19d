// qboson._core: the compiled kernels.  Private: validation and defaults live in Python.
#include <pybind11/pybind11.h>

#include "qboson/glynn.hpp"

namespace py = pybind11;

void bind_permanent(py::module_& m);
void bind_sampling(py::module_& m);

#ifndef QBOSON_VERSION
#define QBOSON_VERSION "dev"
#endif

PYBIND11_MODULE(_core, m) {
    m.doc() = "qboson's C++ kernels (private; use the qboson package)";
    bind_permanent(m);
    bind_sampling(m);
    m.def("build_info", []() {
        py::dict info;
        info["version"] = QBOSON_VERSION;
#ifdef QBOSON_HAVE_OPENMP
        info["openmp"] = true;
#else
        info["openmp"] = false;
#endif
        info["simd"] = qboson::simd_level();
        info["lanes"] = qboson::kLanes;
        return info;
    });
}
