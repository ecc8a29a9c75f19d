// Bindings of the 16-bit table lookup: raw 16-bit float bits as int16 numpy arrays (a torch
// bfloat16 tensor's .view(torch.int16).numpy(), no copy), GIL released.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <stdexcept>

#include "qboson/lookup16.hpp"

#if defined(__x86_64__) || defined(_M_X64)
#include <xmmintrin.h>
#endif

namespace py = pybind11;

// `out` is taken with noconvert(): any converted copy (another dtype, or a C-contiguous copy of a
// strided array) would be written instead of `out` and the result lost.
using Bits = py::array_t<std::int16_t, py::array::c_style>;

void bind_activations(py::module_& m) {
    m.def(
        "lookup16",
        [](const Bits& x, Bits& out, const Bits& table, int threads) {
            if (x.size() != out.size()) throw std::invalid_argument("lookup16: x and out differ in size");
            if (table.size() != 65537) throw std::invalid_argument("lookup16: the table must have 65536 entries and one of padding");
            if (threads < 1) throw std::invalid_argument("lookup16: threads must be >= 1");
            const auto* src = reinterpret_cast<const std::uint16_t*>(x.data());
            const auto* tab = reinterpret_cast<const std::uint16_t*>(table.data());
            auto* dst = reinterpret_cast<std::uint16_t*>(out.mutable_data());
            const auto n = static_cast<std::size_t>(x.size());
            py::gil_scoped_release release;
            qboson::lookup16(src, dst, n, tab, threads);
        },
        py::arg("x"), py::arg("out").noconvert(), py::arg("table"), py::arg("threads") = 1,
        "out[i] = table[x[i]] on 16-bit codes held as C-contiguous int16 arrays (the table: 65536 entries and one of padding).");
    m.def(
        "subnormal_mode",
        []() {
#if defined(__x86_64__) || defined(_M_X64)
            const unsigned csr = _mm_getcsr();
            return static_cast<int>(((csr >> 6) & 1u) | (((csr >> 15) & 1u) << 1));
#else
            return -1;
#endif
        },
        "The calling thread's subnormal handling: bit 0 denormals-are-zero, bit 1 flush-to-zero (x86 MXCSR); "
        "-1 where it cannot be read.");
}
