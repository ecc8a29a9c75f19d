// Exact sampling of indistinguishable photons (Clifford & Clifford 2017, algorithm B), with the
// repeated-row permanents of Clifford & Clifford 2020 for photons that share an output mode.
#pragma once

#include <cstdint>
#include <vector>

#include "qboson/glynn.hpp"
#include "qboson/rng.hpp"

namespace qboson {

enum class CliffordMethod : int {
    cc2020 = 0,  // group photons already in one output mode: prod(s_i + 1) terms per step
    cc2017 = 1,  // treat every photon as its own row: 2^(k-2) terms at step k
};

// Reusable per-thread buffers of the sampler.
struct CliffordWorkspace {
    std::vector<cplx> a;            // m x k: the permuted input columns, row-major
    std::vector<int> order;         // column order (random permutation)
    std::vector<int> modes;         // distinct output modes holding photons (row groups)
    std::vector<std::int64_t> mult; // photons in each of them
    std::vector<int> group_of;      // output mode -> group index, -1 if empty
    std::vector<cplx> rows;         // groups x k submatrix
    std::vector<cplx> minors;       // k minors
    std::vector<double> weight;     // m output weights
    GlynnPlan plan;
    std::vector<double> scratch;
};

// Draw one output pattern of the photons entering `columns` (indices into the m x n column
// matrix `u`, row-major) and add it to `counts` (length m).  The columns must be orthonormal.
void clifford_shot(const cplx* u, int m, int n, const int* columns, int k, ShotRng& rng,
                   CliffordMethod method, int threads, CliffordWorkspace& ws, std::uint32_t* counts);

}  // namespace qboson
