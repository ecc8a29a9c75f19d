// The shot loop: noise draws, exact quantum sampling, classical routing and dark counts for each
// shot, parallel over shots (or inside a shot when there are fewer shots than threads).
#pragma once

#include <cstdint>
#include <functional>

#include "qboson/clifford.hpp"

namespace qboson {

struct SampleSpec {
    const cplx* u = nullptr;             // m x n input columns, row-major
    int m = 0;
    int n = 0;
    std::int64_t shots = 0;
    std::uint64_t start = 0;             // index of the first shot
    std::uint64_t key = 0;               // seed of the run: shot i uses stream (key, start + i)
    int threads = 1;
    CliffordMethod method = CliffordMethod::cc2020;
    bool distinguishable = false;        // route every photon classically
    const double* transmission = nullptr;  // n: survival probability of each input photon
    double indistinguishability = 1.0;   // probability that a surviving photon interferes
    const double* dark = nullptr;        // m: probability of one dark count per mode
    bool noisy = false;                  // any transmission < 1 or dark count > 0 (set by the caller)
};

// Fill `out` (shots x m, row-major) with photon counts.  `interrupted` is polled from the
// calling thread every ~50 ms; when it returns true the loop stops early and this returns
// false (the content of `out` is then unspecified).
template <typename Count>
bool sample_shots(const SampleSpec& spec, Count* out, const std::function<bool()>& interrupted);

}  // namespace qboson
