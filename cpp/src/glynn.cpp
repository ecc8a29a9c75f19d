// Glynn permanents with row multiplicities: planning, the lane-parallel kernel and its drivers.
#include "qboson/glynn.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <limits>
#include <mutex>
#include <stdexcept>
#include <cstdlib>
#include <string>

#ifdef QBOSON_HAVE_OPENMP
#include <omp.h>
#endif

namespace qboson {
namespace {

// Fast Gray chains are kept short: it bounds round-off drift of the running sums and gives
// enough independent blocks for threads.
constexpr std::int64_t kMaxSteps = std::int64_t{1} << 12;

std::int64_t binomial(std::int64_t n, std::int64_t k) {
    if (k < 0 || k > n) return 0;
    std::int64_t r = 1;
    for (std::int64_t i = 0; i < k; ++i) r = r * (n - i) / (i + 1);  // exact at every step
    return r;
}

std::int64_t signed_binom(const GlynnPlan& plan, int g, std::int64_t d) {
    const std::int64_t c = plan.binom[static_cast<std::size_t>(g) * plan.binom_stride + d];
    return (d & 1) ? -c : c;
}

typedef double v8d __attribute__((vector_size(64)));
typedef double v4d __attribute__((vector_size(32)));
typedef double v2d __attribute__((vector_size(16)));

// Scratch needed by one block, in Reals.
std::size_t block_scratch_reals(int cols, int lanes, bool minors) {
    const std::size_t per = static_cast<std::size_t>(cols) * lanes;
    return (minors ? 6 * per : 2 * per + 2 * lanes) + lanes + 16;
}

// One block of `NV * VW` lanes.  Vec is a GCC vector of VW Reals (or a scalar with VW = 1); NG of
// the NV vectors are processed together (NV % NG == 0).
// Writes the block's contribution (before the 2^-(N-1) factor): one complex for a permanent,
// `cols` complexes for minors, as interleaved (re, im) pairs.
template <typename Real, typename Vec, int NV, int VW, bool kMinors, int NG = NV>
inline __attribute__((always_inline)) void block_body(const GlynnPlan& plan, std::int64_t block,
                                                     Real* scratch, Real* out) {
    constexpr int L = NV * VW;
    const int cols = plan.cols;
    const std::size_t per = static_cast<std::size_t>(cols) * L;
    Real* sre_r = scratch;
    Real* sim_r = sre_r + per;
    Real* tail = sim_r + per;
    Real* sufre_r = tail;                 // minors only
    Real* sufim_r = kMinors ? tail + per : tail;
    Real* accre_r = kMinors ? tail + 2 * per : tail;
    Real* accim_r = kMinors ? tail + 3 * per : tail + L;
    Real* wslow = kMinors ? tail + 4 * per : tail + 2 * L;

    // Starting column sums and slow weights of every lane.
    const int nslow = static_cast<int>(plan.slow_group.size());
    std::int64_t digit[64];
    for (int lane = 0; lane < L; ++lane) {
        std::int64_t q = block * L + lane;
        Real w = 1;
        if (q >= plan.lanes) {  // padding lane: any valid state, weight 0
            q = 0;
            w = 0;
        }
        for (int g = 0; g < plan.groups; ++g) digit[g] = 0;
        std::int64_t sign_w = 1;
        for (int s = 0; s < nslow; ++s) {
            const int g = plan.slow_group[s];
            digit[g] = q % plan.slow_radix[s];
            q /= plan.slow_radix[s];
            sign_w *= signed_binom(plan, g, digit[g]);
        }
        wslow[lane] = w * static_cast<Real>(sign_w);
        for (int j = 0; j < cols; ++j) {
            Real re = 0, im = 0;
            for (int g = 0; g < plan.groups; ++g) {
                const Real c = static_cast<Real>(plan.mult[g] - 2 * digit[g]);
                re += c * static_cast<Real>(plan.bre[static_cast<std::size_t>(g) * cols + j]);
                im += c * static_cast<Real>(plan.bim[static_cast<std::size_t>(g) * cols + j]);
            }
            sre_r[static_cast<std::size_t>(j) * L + lane] = re;
            sim_r[static_cast<std::size_t>(j) * L + lane] = im;
        }
    }

    Vec* sre = reinterpret_cast<Vec*>(sre_r);
    Vec* sim = reinterpret_cast<Vec*>(sim_r);
    Vec* accre = reinterpret_cast<Vec*>(accre_r);
    Vec* accim = reinterpret_cast<Vec*>(accim_r);
    Vec* sufre = reinterpret_cast<Vec*>(sufre_r);
    Vec* sufim = reinterpret_cast<Vec*>(sufim_r);
    const Vec zero = Vec{} * Real(0);
    const Vec one = zero + Real(1);
    const int nacc = kMinors ? cols * NV : NV;
    for (int i = 0; i < nacc; ++i) {
        accre[i] = zero;
        accim[i] = zero;
    }

    const double* bre = plan.bre.data();
    const double* bim = plan.bim.data();
    for (std::int64_t t = 0; t < plan.steps; ++t) {
        // Every lane takes the same Gray step: add coef * row g to the column sums.
        Real cr_row = 0;
        const double* rre = bre;
        const double* rim = bim;
        if (t > 0) {
            const std::size_t g = static_cast<std::size_t>(plan.step_group[t]);
            cr_row = static_cast<Real>(plan.step_coef[t]);
            rre = bre + g * cols;
            rim = bim + g * cols;
        }
        const Real wf = static_cast<Real>(plan.fast_weight[t]);
        // NG vectors at a time: enough independent multiply chains to hide latency, few enough
        // to stay in registers (16 on AVX2/SSE, 32 on AVX-512).  Per lane, the arithmetic and its
        // order do not depend on NG.
        for (int v0 = 0; v0 < NV; v0 += NG) {
            if constexpr (!kMinors) {
                Vec pr[NG], pi[NG];
                for (int w = 0; w < NG; ++w) {
                    pr[w] = one;
                    pi[w] = zero;
                }
                for (int j = 0; j < cols; ++j) {
                    const Real ur = cr_row * static_cast<Real>(rre[j]);
                    const Real ui = cr_row * static_cast<Real>(rim[j]);
                    for (int w = 0; w < NG; ++w) {
                        const int idx = j * NV + v0 + w;
                        const Vec c = sre[idx] + ur;
                        const Vec d = sim[idx] + ui;
                        sre[idx] = c;
                        sim[idx] = d;
                        const Vec a = pr[w], b = pi[w];
                        pr[w] = a * c - b * d;
                        pi[w] = a * d + b * c;
                    }
                }
                for (int w = 0; w < NG; ++w) {
                    accre[v0 + w] += wf * pr[w];
                    accim[v0 + w] += wf * pi[w];
                }
            } else {
                // Suffix products (with the column update folded in), then prefix products:
                // prefix_l * suffix_l is the product of every column sum but l.
                Vec rr[NG], ri[NG];
                for (int w = 0; w < NG; ++w) {
                    rr[w] = one;
                    ri[w] = zero;
                }
                for (int j = cols - 1; j >= 0; --j) {
                    const Real ur = cr_row * static_cast<Real>(rre[j]);
                    const Real ui = cr_row * static_cast<Real>(rim[j]);
                    for (int w = 0; w < NG; ++w) {
                        const int idx = j * NV + v0 + w;
                        sufre[idx] = rr[w];
                        sufim[idx] = ri[w];
                        const Vec c = sre[idx] + ur;
                        const Vec d = sim[idx] + ui;
                        sre[idx] = c;
                        sim[idx] = d;
                        const Vec a = rr[w], b = ri[w];
                        rr[w] = a * c - b * d;
                        ri[w] = a * d + b * c;
                    }
                }
                for (int w = 0; w < NG; ++w) {
                    rr[w] = one * wf;  // fold the term's weight into the prefix
                    ri[w] = zero;
                }
                for (int l = 0; l < cols; ++l) {
                    for (int w = 0; w < NG; ++w) {
                        const int idx = l * NV + v0 + w;
                        const Vec a = rr[w], b = ri[w];
                        const Vec c = sufre[idx], d = sufim[idx];
                        accre[idx] += a * c - b * d;
                        accim[idx] += a * d + b * c;
                        const Vec e = sre[idx], f = sim[idx];
                        rr[w] = a * e - b * f;
                        ri[w] = a * f + b * e;
                    }
                }
            }
        }
    }

    // Reduce the lanes in a fixed order.
    const int nout = kMinors ? cols : 1;
    for (int l = 0; l < nout; ++l) {
        Real re = 0, im = 0;
        for (int lane = 0; lane < L; ++lane) {
            re += wslow[lane] * accre_r[static_cast<std::size_t>(l) * L + lane];
            im += wslow[lane] * accim_r[static_cast<std::size_t>(l) * L + lane];
        }
        out[2 * l] = re;
        out[2 * l + 1] = im;
    }
}

}  // namespace

// The double kernels, compiled once per instruction set and dispatched by hand (not by GCC's
// target_clones resolver), so that a test can force each variant and build_info() can say which
// one runs.  The default build runs on any x86-64 and uses AVX-512 where present.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(QBOSON_NO_CLONES)
#define QBOSON_ISA_VARIANTS 1
#endif

namespace detail {
#ifndef QBOSON_NARROW_GROUP
#define QBOSON_NARROW_GROUP 4
#endif
// Each variant uses vectors of its native width (GCC splits wider generic vectors poorly: the
// AVX2 build of the 8-wide kernel ran 10x slower than AVX-512) and keeps kNarrowGroup of them
// in flight.  The lane layout, hence every result, is the same for all variants.
constexpr int kNarrowGroup = QBOSON_NARROW_GROUP;
using BlockFn = void (*)(const GlynnPlan&, std::int64_t, double*, double*);

void block_plain_baseline(const GlynnPlan& plan, std::int64_t block, double* scratch, double* out) {
    block_body<double, v2d, kLanes / 2, 2, false, kNarrowGroup>(plan, block, scratch, out);
}
void block_minors_baseline(const GlynnPlan& plan, std::int64_t block, double* scratch, double* out) {
    block_body<double, v2d, kLanes / 2, 2, true, kNarrowGroup>(plan, block, scratch, out);
}
#ifdef QBOSON_ISA_VARIANTS
__attribute__((target("arch=x86-64-v3"))) void block_plain_avx2(const GlynnPlan& plan, std::int64_t block,
                                                                 double* scratch, double* out) {
    block_body<double, v4d, kLanes / 4, 4, false, kNarrowGroup>(plan, block, scratch, out);
}
__attribute__((target("arch=x86-64-v3"))) void block_minors_avx2(const GlynnPlan& plan, std::int64_t block,
                                                                  double* scratch, double* out) {
    block_body<double, v4d, kLanes / 4, 4, true, kNarrowGroup>(plan, block, scratch, out);
}
__attribute__((target("arch=x86-64-v4"))) void block_plain_avx512(const GlynnPlan& plan, std::int64_t block,
                                                                   double* scratch, double* out) {
    block_body<double, v8d, kLanes / 8, 8, false>(plan, block, scratch, out);
}
__attribute__((target("arch=x86-64-v4"))) void block_minors_avx512(const GlynnPlan& plan, std::int64_t block,
                                                                    double* scratch, double* out) {
    block_body<double, v8d, kLanes / 8, 8, true>(plan, block, scratch, out);
}
#endif

struct KernelSet {
    const char* name;
    BlockFn plain;
    BlockFn minors;
};

// Best first.
const KernelSet kKernels[] = {
#ifdef QBOSON_ISA_VARIANTS
    {"avx512", block_plain_avx512, block_minors_avx512},
    {"avx2", block_plain_avx2, block_minors_avx2},
#endif
    {"baseline", block_plain_baseline, block_minors_baseline},
};

bool cpu_runs(const KernelSet& k) {
#ifdef QBOSON_ISA_VARIANTS
    __builtin_cpu_init();
    const std::string name = k.name;
    if (name == "avx512") return __builtin_cpu_supports("x86-64-v4");
    if (name == "avx2") return __builtin_cpu_supports("x86-64-v3");
#endif
    (void)k;
    return true;
}

const KernelSet& find_kernel(const std::string& name) {
    std::string known;
    for (const auto& k : kKernels) {
        if (name == k.name) {
            if (!cpu_runs(k))
                throw std::invalid_argument("kernel '" + name + "' needs instructions this CPU lacks");
            return k;
        }
        known += std::string(known.empty() ? "" : ", ") + k.name;
    }
    throw std::invalid_argument("unknown kernel '" + name + "' (this build has: " + known + ", or auto)");
}

const KernelSet& best_kernel() {
    for (const auto& k : kKernels)
        if (cpu_runs(k)) return k;
    return kKernels[sizeof(kKernels) / sizeof(kKernels[0]) - 1];
}

const KernelSet& kernel_named(const char* name) {
    if (name == nullptr || *name == '\0' || std::string(name) == "auto") return best_kernel();
    return find_kernel(name);
}

std::atomic<const KernelSet*> g_kernel{nullptr};

// The kernel in use; the first call reads QBOSON_KERNEL.
const KernelSet& current_kernel() {
    const KernelSet* k = g_kernel.load(std::memory_order_acquire);
    if (k == nullptr) {
        k = &kernel_named(std::getenv("QBOSON_KERNEL"));
        g_kernel.store(k, std::memory_order_release);
    }
    return *k;
}
}  // namespace detail

namespace {

constexpr int kLanesExtended = 8;

void block_plain_ld(const GlynnPlan& plan, std::int64_t block, long double* scratch, long double* out) {
    block_body<long double, long double, kLanesExtended, 1, false>(plan, block, scratch, out);
}

// Small problems (the first photons of every sample) in one scalar lane: setting up 32 lanes
// would cost more than the sum itself.
constexpr double kScalarMaxTerms = 256;

void block_minors_scalar(const GlynnPlan& plan, std::int64_t block, double* scratch, double* out) {
    block_body<double, double, 1, 1, true>(plan, block, scratch, out);
}

template <typename T>
T* aligned64(std::vector<T>& buf, std::size_t count) {
    buf.resize(count + 64 / sizeof(T) + 1);
    auto p = reinterpret_cast<std::uintptr_t>(buf.data());
    p = (p + 63) & ~static_cast<std::uintptr_t>(63);
    return reinterpret_cast<T*>(p);
}

// Polls an interrupt callback from the calling thread at most every 50 ms.
class Poller {
public:
    explicit Poller(const InterruptCheck* check) : check_(check), last_(std::chrono::steady_clock::now()) {}
    // Returns true once the computation should stop.
    bool poll() {
        if (!check_ || !*check_) return false;
        const auto now = std::chrono::steady_clock::now();
        if (now - last_ < std::chrono::milliseconds(50)) return stop_.load(std::memory_order_relaxed);
        last_ = now;
        if ((*check_)()) stop_.store(true);
        return stop_.load();
    }
    bool stopped() const { return stop_.load(std::memory_order_relaxed); }

private:
    const InterruptCheck* check_;
    std::chrono::steady_clock::time_point last_;
    std::atomic<bool> stop_{false};
};

// Run every block (in parallel when asked) and sum their outputs in block order.
template <typename Real, typename Kernel>
void run_blocks(const GlynnPlan& plan, int lanes, bool minors, int nout, int threads, Kernel kernel,
                std::vector<Real>& scratch, Real* total, const InterruptCheck* interrupted = nullptr) {
    const std::size_t ws = block_scratch_reals(plan.cols, lanes, minors);
    std::vector<Real> partial(static_cast<std::size_t>(plan.blocks) * 2 * nout);
    const std::int64_t blocks = (plan.lanes + lanes - 1) / lanes;
    Poller poller(interrupted);
#ifdef QBOSON_HAVE_OPENMP
    if (threads > 1 && blocks > 1) {
        std::exception_ptr error;  // exceptions must not leave the OpenMP region
        std::mutex error_mutex;
#pragma omp parallel num_threads(threads)
        {
            try {
                std::vector<Real> local;
                Real* work = aligned64(local, ws);
                const bool caller = omp_get_thread_num() == 0;
#pragma omp for schedule(dynamic, 1)
                for (std::int64_t b = 0; b < blocks; ++b) {
                    if (caller ? poller.poll() : poller.stopped()) continue;
                    kernel(plan, b, work, &partial[b * 2 * nout]);
                }
            } catch (...) {
                std::lock_guard<std::mutex> lock(error_mutex);
                if (!error) error = std::current_exception();
            }
        }
        if (error) std::rethrow_exception(error);
    } else
#endif
    {
        (void)threads;
        Real* work = aligned64(scratch, ws);
        for (std::int64_t b = 0; b < blocks; ++b) {
            if (poller.poll()) break;
            kernel(plan, b, work, &partial[b * 2 * nout]);
        }
    }
    if (poller.stopped()) throw Interrupted();
    for (int i = 0; i < 2 * nout; ++i) total[i] = 0;
    for (std::int64_t b = 0; b < blocks; ++b)
        for (int i = 0; i < 2 * nout; ++i) total[i] += partial[b * 2 * nout + i];
}

void plan_for_lanes(const RowGroups& problem, GlynnPlan& plan, int lanes);

// Refuse what the kernels cannot index, before any arithmetic on the multiplicities: each one is
// bounded first, so their sum cannot wrap.  Returns N, the rows with multiplicity.
std::int64_t checked_rows(const RowGroups& p, int threads) {
    if (threads < 1 || threads > kMaxThreads)
        throw std::invalid_argument("threads must be in [1, " + std::to_string(kMaxThreads) + "]");
    if (p.groups < 0 || p.cols < 0 || p.cols > kMaxRows + 1 || p.groups > kMaxRows)
        throw std::invalid_argument("matrix shape out of range: at most 62 rows and 63 columns");
    std::int64_t rows = 0;
    for (int g = 0; g < p.groups; ++g) {
        if (p.mult[g] < 1 || p.mult[g] > kMaxRows)
            throw std::invalid_argument("row multiplicities must lie in [1, 62]");
        rows += p.mult[g];
    }
    if (rows > kMaxRows) throw std::invalid_argument("more than 62 rows: out of reach of 64-bit Gray counters");
    return rows;
}

}  // namespace

void plan_glynn(const RowGroups& problem, GlynnPlan& plan) { plan_for_lanes(problem, plan, kLanes); }

namespace {

void plan_for_lanes(const RowGroups& p, GlynnPlan& plan, int lane_width) {
    const int G = p.groups;
    const int cols = p.cols;
    plan.cols = cols;
    plan.groups = G;
    plan.bre.resize(static_cast<std::size_t>(G) * cols);
    plan.bim.resize(static_cast<std::size_t>(G) * cols);
    for (std::size_t i = 0; i < plan.bre.size(); ++i) {
        plan.bre[i] = p.rows[i].real();
        plan.bim[i] = p.rows[i].imag();
    }
    plan.mult.assign(p.mult, p.mult + G);
    plan.rows = 0;
    int pinned = -1;
    std::int64_t maxm = 0;
    for (int g = 0; g < G; ++g) {
        if (plan.mult[g] < 1 || plan.mult[g] > kMaxRows)
            throw std::invalid_argument("row multiplicities must lie in [1, 62]");
        plan.rows += plan.mult[g];
        maxm = std::max(maxm, plan.mult[g]);
        if (pinned < 0 || plan.mult[g] < plan.mult[pinned]) pinned = g;
    }
    if (plan.rows > 62) throw std::invalid_argument("more than 62 rows: out of reach of 64-bit Gray counters");
    // Pin one copy of the smallest group: it saves the most terms (a factor 2 for a single row).
    plan.maxdigit.resize(G);
    for (int g = 0; g < G; ++g) plan.maxdigit[g] = plan.mult[g] - (g == pinned ? 1 : 0);
    plan.binom_stride = static_cast<int>(maxm + 1);
    plan.binom.assign(static_cast<std::size_t>(G) * plan.binom_stride, 0);
    for (int g = 0; g < G; ++g)
        for (std::int64_t d = 0; d <= plan.maxdigit[g]; ++d)
            plan.binom[static_cast<std::size_t>(g) * plan.binom_stride + d] = binomial(plan.maxdigit[g], d);

    // Split digits: slow ones (from the last group backwards) until there are enough lanes
    // and the fast chain is short enough.
    double total = 1;
    for (int g = 0; g < G; ++g) total *= static_cast<double>(plan.maxdigit[g] + 1);
    plan.slow_group.clear();
    plan.slow_radix.clear();
    plan.lanes = 1;
    std::vector<char> is_slow(G, 0);
    for (int g = G - 1; g >= 0; --g) {
        const double steps = total / static_cast<double>(plan.lanes);
        if (plan.lanes >= lane_width && steps <= static_cast<double>(kMaxSteps)) break;
        if (plan.maxdigit[g] == 0) continue;
        is_slow[g] = 1;
        plan.slow_group.push_back(g);
        plan.slow_radix.push_back(plan.maxdigit[g] + 1);
        plan.lanes *= plan.maxdigit[g] + 1;
    }
    plan.blocks = (plan.lanes + lane_width - 1) / lane_width;

    // The fast digits' reflected mixed-radix Gray code, shared by every lane.
    std::vector<int> fast_group;
    std::vector<std::int64_t> radix;
    for (int g = 0; g < G; ++g)
        if (!is_slow[g] && plan.maxdigit[g] > 0) {
            fast_group.push_back(g);
            radix.push_back(plan.maxdigit[g] + 1);
        }
    std::int64_t steps = 1;
    for (auto r : radix) steps *= r;
    plan.steps = steps;
    plan.step_group.assign(steps, 0);
    plan.step_coef.assign(steps, 0.0);
    plan.fast_weight.assign(steps, 0.0);
    std::vector<std::int64_t> val(radix.size(), 0), dir(radix.size(), 1);
    // Weight of the fast digits: sign (-1)^(sum of digits) flips at every step; the magnitude,
    // a product of binomials containing C(M'_g, old), changes by an exact integer division.
    std::int64_t magnitude = 1;
    std::int64_t sign = 1;
    plan.fast_weight[0] = 1.0;
    for (std::int64_t t = 1; t < steps; ++t) {
        std::size_t d = 0;
        std::int64_t next = val[0] + dir[0];
        while (next < 0 || next >= radix[d]) {
            dir[d] = -dir[d];
            ++d;
            next = val[d] + dir[d];
        }
        const int g = fast_group[d];
        const std::int64_t old = val[d];
        val[d] = next;
        plan.step_group[t] = g;
        plan.step_coef[t] = next > old ? -2.0 : 2.0;
        const std::int64_t* row = &plan.binom[static_cast<std::size_t>(g) * plan.binom_stride];
        magnitude = magnitude / row[old] * row[next];
        sign = -sign;
        plan.fast_weight[t] = static_cast<double>(sign * magnitude);
    }
}

}  // namespace

cplx permanent_groups(const RowGroups& problem, int threads, bool extended, const InterruptCheck& interrupted) {
    const std::int64_t rows = checked_rows(problem, threads);
    if (rows != problem.cols) throw std::invalid_argument("permanent: rows (with multiplicity) != columns");
    if (problem.cols == 0) return cplx(1.0, 0.0);
    GlynnPlan plan;
    const double scale = std::ldexp(1.0, -static_cast<int>(rows - 1));
    if (extended) {
        plan_for_lanes(problem, plan, kLanesExtended);
        std::vector<long double> scratch;
        long double total[2];
        run_blocks<long double>(plan, kLanesExtended, false, 1, threads, block_plain_ld, scratch, total, &interrupted);
        return cplx(static_cast<double>(total[0] * scale), static_cast<double>(total[1] * scale));
    }
    plan_for_lanes(problem, plan, kLanes);
    std::vector<double> scratch;
    double total[2];
    run_blocks<double>(plan, kLanes, false, 1, threads, detail::current_kernel().plain, scratch, total, &interrupted);
    return cplx(total[0] * scale, total[1] * scale);
}

void minors_groups(const RowGroups& problem, cplx* out, int threads, GlynnPlan& plan,
                   std::vector<double>& scratch) {
    const std::int64_t rows = checked_rows(problem, threads);
    if (rows + 1 != problem.cols) throw std::invalid_argument("minors: columns must be rows + 1");
    if (rows == 0) {
        out[0] = cplx(1.0, 0.0);
        return;
    }
    double terms = 1;
    std::int64_t smallest = problem.mult[0];
    for (int g = 0; g < problem.groups; ++g) {
        terms *= static_cast<double>(problem.mult[g] + 1);
        smallest = std::min(smallest, problem.mult[g]);
    }
    terms = terms / static_cast<double>(smallest + 1) * static_cast<double>(smallest);
    std::vector<double> total(2 * static_cast<std::size_t>(problem.cols));
    if (terms <= kScalarMaxTerms) {
        plan_for_lanes(problem, plan, 1);
        run_blocks<double>(plan, 1, true, problem.cols, 1, block_minors_scalar, scratch, total.data());
    } else {
        plan_for_lanes(problem, plan, kLanes);
        run_blocks<double>(plan, kLanes, true, problem.cols, threads, detail::current_kernel().minors, scratch,
                           total.data());
    }
    const double scale = std::ldexp(1.0, -static_cast<int>(rows - 1));
    for (int l = 0; l < problem.cols; ++l) out[l] = cplx(total[2 * l] * scale, total[2 * l + 1] * scale);
}

void minors_groups(const RowGroups& problem, cplx* out, int threads) {
    GlynnPlan plan;
    std::vector<double> scratch;
    minors_groups(problem, out, threads, plan, scratch);
}

const char* active_kernel() { return detail::current_kernel().name; }

void set_kernel(const char* name) { detail::g_kernel.store(&detail::kernel_named(name), std::memory_order_release); }

bool kernel_supported(const char* name) {
    for (const auto& k : detail::kKernels)
        if (std::string(name) == k.name) return detail::cpu_runs(k);
    return false;
}

const char* simd_level() {
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
        return "x86-64-v4 (AVX-512)";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "x86-64-v3 (AVX2+FMA)";
#endif
    return "default";
}

}  // namespace qboson
