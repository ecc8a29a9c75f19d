// Elementwise 16-bit table lookup: see qboson/lookup16.hpp.
#include "qboson/lookup16.hpp"

#include <algorithm>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(QBOSON_NO_CLONES)
#define QBOSON_LOOKUP_GATHER 1
#include <immintrin.h>
#endif

namespace qboson {
namespace {

// Elements per task: 64 KiB of input, small enough to balance threads, large enough to amortise.
constexpr std::size_t kChunk = std::size_t{1} << 15;

inline void lookup_block(const std::uint16_t* x, std::uint16_t* y, std::size_t n, const std::uint16_t* table) {
    for (std::size_t i = 0; i < n; ++i) y[i] = table[x[i]];
}

#ifdef QBOSON_LOOKUP_GATHER
// AVX-512: sixteen 32-bit gathers at byte offsets 2 x[i], keeping the low 16 bits of each word; the
// word of entry 65535 reaches into the padding entry.
__attribute__((target("arch=x86-64-v4"))) void lookup_block_avx512(const std::uint16_t* x, std::uint16_t* y,
                                                                   std::size_t n, const std::uint16_t* table) {
    std::size_t i = 0;
    // The zero-masked forms throughout: the plain intrinsics start from an "undefined" register,
    // which draws GCC's -Wmaybe-uninitialized in the sanitizer (debug) build.
    const __m512i zero = _mm512_setzero_si512();
    const __mmask16 all = static_cast<__mmask16>(0xFFFF);
    for (; i + 16 <= n; i += 16) {
        const __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + i));
        const __m512i codes = _mm512_maskz_cvtepu16_epi32(all, raw);
        const __m512i words = _mm512_mask_i32gather_epi32(zero, all, codes, static_cast<const void*>(table), 2);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(y + i), _mm512_maskz_cvtepi32_epi16(all, words));
    }
    lookup_block(x + i, y + i, n - i, table);
}
#endif

using BlockFn = void (*)(const std::uint16_t*, std::uint16_t*, std::size_t, const std::uint16_t*);

BlockFn best_block() {
#ifdef QBOSON_LOOKUP_GATHER
    __builtin_cpu_init();
    if (__builtin_cpu_supports("x86-64-v4")) return lookup_block_avx512;
#endif
    return lookup_block;
}

}  // namespace

void lookup16(const std::uint16_t* x, std::uint16_t* y, std::size_t n, const std::uint16_t* table, int threads) {
    const BlockFn block = best_block();
    const std::size_t chunks = (n + kChunk - 1) / kChunk;
#ifdef QBOSON_HAVE_OPENMP
    if (threads > 1 && chunks > 1) {
        const long long count = static_cast<long long>(chunks);
#pragma omp parallel for num_threads(threads) schedule(static)
        for (long long c = 0; c < count; ++c) {
            const std::size_t start = static_cast<std::size_t>(c) * kChunk;
            block(x + start, y + start, std::min(kChunk, n - start), table);
        }
        return;
    }
#else
    (void)threads;
    (void)chunks;
#endif
    block(x, y, n, table);
}

}  // namespace qboson
