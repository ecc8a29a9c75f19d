// The shot loop (see sampler.hpp).
#include "qboson/sampler.hpp"

#include <atomic>
#include <chrono>
#include <exception>
#include <mutex>
#include <vector>

#include "qboson/distinguishable.hpp"

#ifdef QBOSON_HAVE_OPENMP
#include <omp.h>
#endif

namespace qboson {
namespace {

struct ShotBuffers {
    CliffordWorkspace ws;
    std::vector<std::uint32_t> counts;
    std::vector<int> quantum, classical;
};

// Noise-free distinguishable photons: route straight into the output row.
template <typename Count>
void classical_shot(const SampleSpec& spec, const AliasRouter& router, std::int64_t i, Count* out) {
    ShotRng rng(spec.key, spec.start + static_cast<std::uint64_t>(i));
    Count* row = out + static_cast<std::size_t>(i) * spec.m;
    for (int j = 0; j < spec.m; ++j) row[j] = 0;
    for (int p = 0; p < spec.n; ++p) row[router.route(p, rng)] += 1;
}

template <typename Count>
void one_shot(const SampleSpec& spec, const AliasRouter& router, std::int64_t i, int inner_threads,
              ShotBuffers& b, Count* out) {
    if (spec.distinguishable && !spec.noisy) return classical_shot(spec, router, i, out);
    ShotRng rng(spec.key, spec.start + static_cast<std::uint64_t>(i));
    b.quantum.clear();
    b.classical.clear();
    for (int p = 0; p < spec.n; ++p) {
        // Draws happen only for noisy settings, so the ideal sampler's streams are unchanged.
        if (spec.transmission && spec.transmission[p] < 1.0 && !(rng.uniform() < spec.transmission[p])) continue;
        if (spec.distinguishable) {
            b.classical.push_back(p);
        } else if (spec.indistinguishability < 1.0 && !(rng.uniform() < spec.indistinguishability)) {
            b.classical.push_back(p);
        } else {
            b.quantum.push_back(p);
        }
    }
    b.counts.assign(spec.m, 0);
    clifford_shot(spec.u, spec.m, spec.n, b.quantum.data(), static_cast<int>(b.quantum.size()), rng, spec.method,
                  inner_threads, b.ws, b.counts.data());
    for (int p : b.classical) b.counts[router.route(p, rng)] += 1;
    if (spec.dark)
        for (int j = 0; j < spec.m; ++j)
            if (spec.dark[j] > 0 && rng.uniform() < spec.dark[j]) b.counts[j] += 1;
    Count* row = out + static_cast<std::size_t>(i) * spec.m;
    for (int j = 0; j < spec.m; ++j) row[j] = static_cast<Count>(b.counts[j]);
}

}  // namespace

template <typename Count>
bool sample_shots(const SampleSpec& spec, Count* out, const std::function<bool()>& interrupted) {
    const AliasRouter router(spec.u, spec.m, spec.n);
    std::atomic<bool> stop{false};
    auto last = std::chrono::steady_clock::now();
    // Called from the calling thread only (OpenMP thread 0 is the caller).
    auto poll = [&]() {
        const auto now = std::chrono::steady_clock::now();
        if (now - last < std::chrono::milliseconds(50)) return;
        last = now;
        if (interrupted && interrupted()) stop.store(true, std::memory_order_relaxed);
    };
    const int threads = spec.threads < 1 ? 1 : spec.threads;
    // Classical shots cost ~100 ns: hand them out in batches and poll the clock less often.
    const bool cheap = spec.distinguishable;
    const std::int64_t poll_every = cheap ? 1024 : 1;
#ifdef QBOSON_HAVE_OPENMP
    if (threads > 1 && spec.shots >= threads) {
        const int batch = cheap ? 4096 : 1;
        // An exception must not leave an OpenMP region: keep the first one and rethrow it after.
        std::exception_ptr error;
        std::mutex error_mutex;
#pragma omp parallel num_threads(threads)
        {
            ShotBuffers b;
            const bool caller = omp_get_thread_num() == 0;
#pragma omp for schedule(dynamic, batch)
            for (std::int64_t i = 0; i < spec.shots; ++i) {
                if (stop.load(std::memory_order_relaxed)) continue;
                try {
                    if (caller && i % poll_every == 0) poll();
                    one_shot(spec, router, i, 1, b, out);
                } catch (...) {
                    std::lock_guard<std::mutex> lock(error_mutex);
                    if (!error) error = std::current_exception();
                    stop.store(true);
                }
            }
        }
        if (error) std::rethrow_exception(error);
        return !stop.load();
    }
#endif
    // Fewer shots than threads: parallelise inside each shot's permanents instead.
    ShotBuffers b;
    for (std::int64_t i = 0; i < spec.shots; ++i) {
        if (i % poll_every == 0) {
            poll();
            if (stop.load()) break;
        }
        one_shot(spec, router, i, threads, b, out);
    }
    return !stop.load();
}

template bool sample_shots<std::uint8_t>(const SampleSpec&, std::uint8_t*, const std::function<bool()>&);
template bool sample_shots<std::uint16_t>(const SampleSpec&, std::uint16_t*, const std::function<bool()>&);
template bool sample_shots<std::uint32_t>(const SampleSpec&, std::uint32_t*, const std::function<bool()>&);

}  // namespace qboson
