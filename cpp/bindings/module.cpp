// qboson._core: the compiled kernels.  Private: validation and defaults live in Python.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>

#include "qboson/glynn.hpp"

namespace py = pybind11;

void bind_permanent(py::module_& m);
void bind_sampling(py::module_& m);
void bind_activations(py::module_& m);

#ifndef QBOSON_VERSION
#define QBOSON_VERSION "dev"
#endif

PYBIND11_MODULE(_core, m) {
    m.doc() = "qboson's C++ kernels (private; use the qboson package)";
    bind_permanent(m);
    bind_sampling(m);
    bind_activations(m);
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
        info["kernel"] = qboson::active_kernel();
        py::list available;
        for (const char* name : {"avx512", "avx2", "baseline"})
            if (qboson::kernel_supported(name)) available.append(name);
        info["kernels"] = available;
        return info;
    });
    m.def(
        "set_kernel", [](const std::string& name) { qboson::set_kernel(name.c_str()); }, py::arg("name"),
        "Force the double-precision kernel ('avx512', 'avx2', 'baseline' or 'auto'); for tests and benchmarks.");
    // Resolve QBOSON_KERNEL now, so that a bad value fails at import with a clear message.
    qboson::active_kernel();
}
