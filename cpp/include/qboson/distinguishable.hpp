// Distinguishable photons: each photon leaves input column p by output i with probability
// |U_ip|^2, independently of the others (Walker's alias method, one uniform draw per photon).
#pragma once

#include <cstdint>
#include <vector>

#include "qboson/glynn.hpp"
#include "qboson/rng.hpp"

namespace qboson {

class AliasRouter {
public:
    // Tables for every column of the m x n matrix `u` (row-major).  Columns need not be normalised.
    AliasRouter(const cplx* u, int m, int n);

    // Output mode of one photon entering column p.
    int route(int p, ShotRng& rng) const {
        const double x = rng.uniform() * m_;
        int i = static_cast<int>(x);
        if (i >= m_) i = m_ - 1;
        const std::size_t at = static_cast<std::size_t>(p) * m_ + i;
        return (x - i) < prob_[at] ? i : alias_[at];
    }

    int modes() const { return m_; }

private:
    int m_;
    std::vector<double> prob_;
    std::vector<int> alias_;
};

}  // namespace qboson
