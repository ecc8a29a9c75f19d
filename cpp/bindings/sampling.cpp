// Bindings of the sampler: writes into a caller-allocated (shots, m) array, GIL released,
// Ctrl-C polled between shots.
#include <pybind11/functional.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <limits>
#include <stdexcept>
#include <string>

#include "qboson/sampler.hpp"

namespace py = pybind11;
using qboson::cplx;

using CArray = py::array_t<cplx, py::array::c_style | py::array::forcecast>;
using DArray = py::array_t<double, py::array::c_style | py::array::forcecast>;

template <typename Count>
static void run(qboson::SampleSpec spec, py::array out) {
    auto typed = out.cast<py::array_t<Count, py::array::c_style>>();
    Count* ptr = typed.mutable_data();
    const std::function<bool()> interrupted = []() {
        py::gil_scoped_acquire gil;
        return PyErr_CheckSignals() != 0;
    };
    bool finished;
    {
        py::gil_scoped_release release;
        finished = qboson::sample_shots(spec, ptr, interrupted);
    }
    if (!finished) throw py::error_already_set();
}

void bind_sampling(py::module_& m) {
    m.def(
        "sample",
        [](const CArray& u, py::array out, std::uint64_t start, std::uint64_t key, int threads, int method,
           bool distinguishable, const DArray& transmission, double indistinguishability, const DArray& dark) {
            if (u.ndim() != 2) throw std::invalid_argument("columns must be a 2-D (m, n) array");
            if (u.shape(0) > std::numeric_limits<int>::max() || u.shape(1) > std::numeric_limits<int>::max())
                throw std::invalid_argument("columns: too many modes or photons");
            const int m_modes = static_cast<int>(u.shape(0));
            const int n = static_cast<int>(u.shape(1));
            if (out.ndim() != 2 || out.shape(1) != m_modes || !(out.flags() & py::array::c_style) ||
                !out.writeable())
                throw std::invalid_argument("out must be a writable C-contiguous (shots, m) array");
            if (transmission.ndim() != 1 || transmission.shape(0) != n)
                throw std::invalid_argument("transmission must have one entry per photon");
            if (dark.ndim() != 1 || dark.shape(0) != m_modes)
                throw std::invalid_argument("dark must have one entry per mode");
            if (threads < 1 || threads > qboson::kMaxThreads)
                throw std::invalid_argument("threads must be in [1, " + std::to_string(qboson::kMaxThreads) + "]");
            if (out.shape(0) > 0 && start > ~std::uint64_t{0} - static_cast<std::uint64_t>(out.shape(0) - 1))
                throw std::invalid_argument("start + shots exceeds the 2^64 shot streams");
            if (method != 0 && method != 1) throw std::invalid_argument("method must be 0 (cc2020) or 1 (cc2017)");
            qboson::SampleSpec spec;
            spec.u = u.data();
            spec.m = m_modes;
            spec.n = n;
            spec.shots = out.shape(0);
            spec.start = start;
            spec.key = key;
            spec.threads = threads;
            spec.method = static_cast<qboson::CliffordMethod>(method);
            spec.distinguishable = distinguishable;
            spec.transmission = transmission.data();
            spec.indistinguishability = indistinguishability;
            spec.dark = dark.data();
            for (int p = 0; p < n; ++p) spec.noisy |= spec.transmission[p] < 1.0;
            for (int j = 0; j < m_modes; ++j) spec.noisy |= spec.dark[j] > 0.0;
            const char kind = out.dtype().kind();
            const auto size = out.dtype().itemsize();
            if (kind == 'u' && size == 1) return run<std::uint8_t>(spec, out);
            if (kind == 'u' && size == 2) return run<std::uint16_t>(spec, out);
            if (kind == 'u' && size == 4) return run<std::uint32_t>(spec, out);
            throw std::invalid_argument("out must have dtype uint8, uint16 or uint32");
        },
        py::arg("columns"), py::arg("out"), py::arg("start"), py::arg("key"), py::arg("threads"), py::arg("method"),
        py::arg("distinguishable"), py::arg("transmission"), py::arg("indistinguishability"), py::arg("dark"),
        "Fill out (shots, m) with photon counts; shot i uses the random stream (key, start + i).");
}
