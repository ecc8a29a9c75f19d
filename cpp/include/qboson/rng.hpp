// Per-shot random streams: shot i of a run is drawn from a generator seeded only by (key, i),
// so samples do not depend on the thread count or on how shots are split between calls.
#pragma once

#include <cstdint>

namespace qboson {

// SplitMix64 (Steele, Lea & Flood 2014): a bijective 64-bit mixer, used to derive stream states.
inline std::uint64_t splitmix64(std::uint64_t& state) {
    std::uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

// xoshiro256** (Blackman & Vigna 2018), seeded from (key, stream) through SplitMix64.
class ShotRng {
public:
    ShotRng(std::uint64_t key, std::uint64_t stream) {
        // Mix the stream index first so that nearby (key, stream) pairs give unrelated states.
        std::uint64_t sm = key;
        std::uint64_t mixed = splitmix64(sm) ^ stream;
        std::uint64_t s2 = mixed;
        splitmix64(s2);
        sm = s2 ^ (stream * 0xD1B54A32D192ED03ULL);
        for (auto& word : s_) word = splitmix64(sm);
    }

    std::uint64_t next() {
        const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
        const std::uint64_t t = s_[1] << 17;
        s_[2] ^= s_[0];
        s_[3] ^= s_[1];
        s_[1] ^= s_[2];
        s_[0] ^= s_[3];
        s_[2] ^= t;
        s_[3] = rotl(s_[3], 45);
        return result;
    }

    // Uniform double in [0, 1) with 53 random bits.
    double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

    // Uniform integer in [0, bound) without modulo bias (Lemire 2019).
    std::uint64_t below(std::uint64_t bound) {
        unsigned __int128 product = static_cast<unsigned __int128>(next()) * bound;
        std::uint64_t low = static_cast<std::uint64_t>(product);
        if (low < bound) {
            const std::uint64_t threshold = (0 - bound) % bound;
            while (low < threshold) {
                product = static_cast<unsigned __int128>(next()) * bound;
                low = static_cast<std::uint64_t>(product);
            }
        }
        return static_cast<std::uint64_t>(product >> 64);
    }

private:
    static std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
    std::uint64_t s_[4];
};

}  // namespace qboson
