// Bindings of the permanent kernels: numpy in, numbers out, GIL released.
#include <pybind11/complex.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <stdexcept>

#include "qboson/glynn.hpp"

namespace py = pybind11;
using qboson::cplx;

using CArray = py::array_t<cplx, py::array::c_style | py::array::forcecast>;
using IArray = py::array_t<std::int64_t, py::array::c_style | py::array::forcecast>;

static qboson::RowGroups as_groups(const CArray& a, const IArray& mult) {
    if (a.ndim() != 2 || mult.ndim() != 1 || mult.shape(0) != a.shape(0))
        throw std::invalid_argument("expected a (g, cols) matrix and g multiplicities");
    // Shapes are narrowed to int below: refuse anything the kernels could not index anyway.
    if (a.shape(0) > qboson::kMaxRows || a.shape(1) > qboson::kMaxRows + 1)
        throw std::invalid_argument("matrix too large for the permanent kernels (at most 62 rows, 63 columns)");
    return {a.data(), mult.data(), static_cast<int>(a.shape(0)), static_cast<int>(a.shape(1))};
}

void bind_permanent(py::module_& m) {
    m.def(
        "permanent",
        [](const CArray& a, const IArray& mult, int threads, bool extended) {
            const auto problem = as_groups(a, mult);
            const qboson::InterruptCheck interrupted = []() {
                py::gil_scoped_acquire gil;
                return PyErr_CheckSignals() != 0;
            };
            qboson::cplx value;
            try {
                py::gil_scoped_release release;
                value = qboson::permanent_groups(problem, threads, extended, interrupted);
            } catch (const qboson::Interrupted&) {
                throw py::error_already_set();  // the KeyboardInterrupt set by PyErr_CheckSignals
            }
            return value;
        },
        py::arg("a"), py::arg("mult"), py::arg("threads") = 1, py::arg("extended") = false,
        "Permanent of the matrix whose row g of a is repeated mult[g] times.");
    m.def(
        "minors",
        [](const CArray& a, const IArray& mult, int threads) {
            const auto problem = as_groups(a, mult);
            py::array_t<cplx> out(problem.cols);
            cplx* ptr = out.mutable_data();
            {
                py::gil_scoped_release release;
                qboson::minors_groups(problem, ptr, threads);
            }
            return out;
        },
        py::arg("a"), py::arg("mult"), py::arg("threads") = 1,
        "Permanents of all column-deleted minors of the expanded N x (N+1) matrix.");
}
