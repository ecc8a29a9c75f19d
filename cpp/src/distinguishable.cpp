// Alias tables for routing distinguishable photons (Vose's construction of Walker's method).
#include "qboson/distinguishable.hpp"

#include <cmath>

namespace qboson {

AliasRouter::AliasRouter(const cplx* u, int m, int n)
    : m_(m), prob_(static_cast<std::size_t>(m) * n, 1.0), alias_(static_cast<std::size_t>(m) * n, 0) {
    std::vector<double> scaled(m);
    std::vector<int> small, large;
    for (int p = 0; p < n; ++p) {
        double total = 0;
        for (int i = 0; i < m; ++i) total += std::norm(u[static_cast<std::size_t>(i) * n + p]);
        small.clear();
        large.clear();
        for (int i = 0; i < m; ++i) {
            scaled[i] = total > 0 ? std::norm(u[static_cast<std::size_t>(i) * n + p]) * m / total : 1.0;
            (scaled[i] < 1.0 ? small : large).push_back(i);
        }
        double* prob = &prob_[static_cast<std::size_t>(p) * m];
        int* alias = &alias_[static_cast<std::size_t>(p) * m];
        for (int i = 0; i < m; ++i) alias[i] = i;
        while (!small.empty() && !large.empty()) {
            const int s = small.back();
            small.pop_back();
            const int l = large.back();
            prob[s] = scaled[s];
            alias[s] = l;
            scaled[l] -= 1.0 - scaled[s];
            if (scaled[l] < 1.0) {
                large.pop_back();
                small.push_back(l);
            }
        }
        // Leftovers are 1 up to round-off.
        for (int i : large) prob[i] = 1.0;
        for (int i : small) prob[i] = 1.0;
    }
}

}  // namespace qboson
