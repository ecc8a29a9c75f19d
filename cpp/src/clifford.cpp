// Clifford & Clifford sampling of one shot.
#include "qboson/clifford.hpp"

#include <algorithm>
#include <cmath>

namespace qboson {

void clifford_shot(const cplx* u, int m, int n, const int* columns, int k, ShotRng& rng,
                   CliffordMethod method, int threads, CliffordWorkspace& ws, std::uint32_t* counts) {
    if (k <= 0) return;
    // A random order of the photons' columns (the permutation step of algorithm B).
    ws.order.assign(columns, columns + k);
    for (int i = k - 1; i > 0; --i) {
        const int j = static_cast<int>(rng.below(static_cast<std::uint64_t>(i) + 1));
        std::swap(ws.order[i], ws.order[j]);
    }
    ws.a.resize(static_cast<std::size_t>(m) * k);
    for (int i = 0; i < m; ++i)
        for (int l = 0; l < k; ++l) ws.a[static_cast<std::size_t>(i) * k + l] = u[static_cast<std::size_t>(i) * n + ws.order[l]];

    ws.group_of.assign(m, -1);
    ws.modes.clear();
    ws.mult.clear();
    ws.minors.resize(k);
    ws.weight.resize(m);
    for (int s = 1; s <= k; ++s) {
        // Weights of placing photon s in each output mode, given photons 1..s-1 at ws.modes.
        if (s == 1) {
            for (int i = 0; i < m; ++i) ws.weight[i] = std::norm(ws.a[static_cast<std::size_t>(i) * k]);
        } else {
            const int groups = static_cast<int>(ws.modes.size());
            ws.rows.resize(static_cast<std::size_t>(groups) * s);
            for (int g = 0; g < groups; ++g)
                for (int l = 0; l < s; ++l)
                    ws.rows[static_cast<std::size_t>(g) * s + l] = ws.a[static_cast<std::size_t>(ws.modes[g]) * k + l];
            const RowGroups problem{ws.rows.data(), ws.mult.data(), groups, s};
            minors_groups(problem, ws.minors.data(), threads, ws.plan, ws.scratch);
            for (int i = 0; i < m; ++i) {
                const cplx* row = &ws.a[static_cast<std::size_t>(i) * k];
                double re = 0, im = 0;
                for (int l = 0; l < s; ++l) {
                    re += row[l].real() * ws.minors[l].real() - row[l].imag() * ws.minors[l].imag();
                    im += row[l].real() * ws.minors[l].imag() + row[l].imag() * ws.minors[l].real();
                }
                ws.weight[i] = re * re + im * im;
            }
        }
        double total = 0;
        for (int i = 0; i < m; ++i) total += ws.weight[i];
        const double x = rng.uniform() * total;
        double cum = 0;
        int r = -1;
        for (int i = 0; i < m; ++i) {
            if (ws.weight[i] <= 0) continue;
            r = i;  // last mode with positive weight guards against round-off at the top
            cum += ws.weight[i];
            if (x < cum) break;
        }
        if (r < 0) r = 0;  // all weights zero cannot happen for orthonormal columns
        counts[r] += 1;
        if (method == CliffordMethod::cc2020 && ws.group_of[r] >= 0) {
            ws.mult[ws.group_of[r]] += 1;
        } else {
            ws.group_of[r] = static_cast<int>(ws.modes.size());
            ws.modes.push_back(r);
            ws.mult.push_back(1);
        }
    }
}

}  // namespace qboson
