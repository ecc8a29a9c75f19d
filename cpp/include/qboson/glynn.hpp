// Permanents by Glynn's formula with row multiplicities, in mixed-radix reflected Gray-code order.
//
// For a matrix whose g-th distinct row b_g appears M_g times (N = sum M_g rows, N columns),
//   Per = 2^-(N-1) sum_{D} prod_g (-1)^{D_g} C(M'_g, D_g) prod_j s_j(D),
//   s_j(D) = sum_g (M_g - 2 D_g) b_gj,
// where D_g in [0, M'_g] counts the copies of row g with sign -1, and one copy of one row is
// pinned to +1 (M'_g = M_g - 1 for that row, M_g otherwise).  With all M_g = 1 this is the
// plain Glynn/BB-FG formula with 2^(N-1) terms; with repeated rows it has prod(M'_g + 1)
// terms (Chin & Huh 2018; Clifford & Clifford 2020).
//
// The digit vector D is split into "slow" digits, enumerated across SIMD lanes and blocks of
// lanes, and "fast" digits, enumerated in time by one Gray code that every lane follows in
// lockstep: each step adds the same multiple of one row to every lane's column sums, so the
// lanes differ only in their starting sums.  Blocks are summed in a fixed order, so results
// do not depend on the number of threads.  Short Gray chains also bound the drift of the
// running column sums.
#pragma once

#include <complex>
#include <cstdint>
#include <functional>
#include <stdexcept>
#include <vector>

namespace qboson {

using cplx = std::complex<double>;

// A matrix with repeated rows: `groups` distinct rows of `cols` entries (row-major) and their
// multiplicities.
struct RowGroups {
    const cplx* rows;
    const std::int64_t* mult;
    int groups;
    int cols;
};

// Precomputed traversal of one problem (digit split, fast Gray sequence and its weights).
struct GlynnPlan {
    int cols = 0;
    int groups = 0;
    std::int64_t rows = 0;                 // N, the number of rows with multiplicity
    std::vector<double> bre, bim;          // groups x cols
    std::vector<std::int64_t> mult;        // M_g
    std::vector<std::int64_t> maxdigit;    // M'_g (0 for a row with nothing to enumerate)
    std::vector<int> slow_group;           // groups enumerated across lanes (slowest last)
    std::vector<std::int64_t> slow_radix;
    std::vector<int> step_group;           // fast Gray sequence: group changed at step t (t >= 1)
    std::vector<double> step_coef;         // and the change of its factor: -2 (digit up) or +2 (down)
    std::vector<double> fast_weight;       // prod over fast digits of (-1)^D C(M', D), per step
    std::int64_t steps = 1;                // T, length of the fast sequence
    std::int64_t lanes = 1;                // P, number of slow-digit combinations
    std::int64_t blocks = 1;               // ceil(P / lane width)
    std::vector<std::int64_t> binom;       // C(M'_g, d) per group, row-major (groups x (maxM+1))
    int binom_stride = 1;
};

// Thrown when the caller's interrupt callback asked a long computation to stop.
struct Interrupted : std::runtime_error {
    Interrupted() : std::runtime_error("interrupted") {}
};

// Polled by the calling thread between blocks of a long permanent; returns true to stop.
using InterruptCheck = std::function<bool()>;

// Lanes per block of the double kernel.
constexpr int kLanes = 32;

// Largest row count (with multiplicity) the kernels index: Gray-code counters and term counts
// are 64-bit, and 2^(N-1) terms must fit in them.
constexpr std::int64_t kMaxRows = 62;

// Most OpenMP threads a kernel accepts (libgomp itself fails somewhere near 1,000).
constexpr int kMaxThreads = 256;

// Build the traversal for `problem` (rows must total cols for a permanent, cols - 1 for minors).
void plan_glynn(const RowGroups& problem, GlynnPlan& plan);

// Permanent of the expanded N x N matrix (problem.cols == N).
// Throws Interrupted when `interrupted` (polled about every 50 ms) returns true.
cplx permanent_groups(const RowGroups& problem, int threads, bool extended = false,
                      const InterruptCheck& interrupted = nullptr);

// All column-deleted minors of the expanded N x (N+1) matrix: out[l] = Per(B without column l),
// l in [0, N].  problem.cols must be N + 1.  A matrix with no rows gives out[0] = 1.
void minors_groups(const RowGroups& problem, cplx* out, int threads);

// Same as minors_groups, reusing a caller-owned plan and scratch (the sampler's hot path).
void minors_groups(const RowGroups& problem, cplx* out, int threads, GlynnPlan& plan,
                   std::vector<double>& scratch);

// Highest instruction-set level of the running CPU ("x86-64-v4 (AVX-512)", "x86-64-v3 (AVX2+FMA)"
// or "default").
const char* simd_level();

// The double-precision block kernels are compiled once per instruction set ("avx512", "avx2",
// "baseline").  The one in use is chosen at first use: the environment variable QBOSON_KERNEL
// when set (one of those names, or "auto"), else the best the CPU supports.  Asking for a name
// that is unknown or that the CPU cannot run throws std::invalid_argument.
const char* active_kernel();
void set_kernel(const char* name);
// Whether the running CPU (and this build) can run kernel `name`.
bool kernel_supported(const char* name);

}  // namespace qboson
