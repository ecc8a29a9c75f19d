/* The float32 fused multiply-add peak of one core, in GFLOP/s (an FMA counts as 2 flops).
 *
 *     cc -O2 -march=native fma_peak.c -o fma_peak && ./fma_peak [seconds]
 *
 * Twelve independent FMA chains on the widest vectors the compiler targets (AVX-512, else
 * AVX2 with FMA): enough to cover the FMA latency of two pipes, so the loop runs at the
 * core's FMA throughput.  bench/roofline.py compiles and runs it, one copy per core at once.
 */
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#if defined(__AVX512F__)
typedef __m512 vec;
#define LANES 16
#define SET1 _mm512_set1_ps
#define FMA _mm512_fmadd_ps
#define ADD _mm512_add_ps
static float first_lane(vec v) { return _mm512_cvtss_f32(v); }
#elif defined(__AVX2__) && defined(__FMA__)
typedef __m256 vec;
#define LANES 8
#define SET1 _mm256_set1_ps
#define FMA _mm256_fmadd_ps
#define ADD _mm256_add_ps
static float first_lane(vec v) { return _mm256_cvtss_f32(v); }
#else
#error "fma_peak needs AVX2 with FMA, or AVX-512"
#endif

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

#define STEP(x) x = FMA(x, m, c)

int main(int argc, char **argv) {
    double seconds = argc > 1 ? atof(argv[1]) : 1.0;
    /* m < 1 and a small c keep every chain at a normal float: no subnormal or overflow slowdown */
    vec m = SET1(0.999999f), c = SET1(1e-7f);
    vec a0 = SET1(0), a1 = SET1(1), a2 = SET1(2), a3 = SET1(3), a4 = SET1(4), a5 = SET1(5);
    vec a6 = SET1(6), a7 = SET1(7), a8 = SET1(8), a9 = SET1(9), a10 = SET1(10), a11 = SET1(11);
    long iterations = 0, block = 1000000;
    double t0 = now(), t1;
    do {
        for (long i = 0; i < block; i++) {
            STEP(a0); STEP(a1); STEP(a2); STEP(a3); STEP(a4); STEP(a5);
            STEP(a6); STEP(a7); STEP(a8); STEP(a9); STEP(a10); STEP(a11);
        }
        iterations += block;
        t1 = now();
    } while (t1 - t0 < seconds);
    vec s = ADD(ADD(ADD(a0, a1), ADD(a2, a3)), ADD(ADD(a4, a5), ADD(a6, a7)));
    s = ADD(s, ADD(ADD(a8, a9), ADD(a10, a11)));
    /* the chains' sum is printed so that the compiler keeps them */
    printf("%.3f %d %g\n", iterations * 12.0 * LANES * 2 / (t1 - t0) / 1e9, LANES, first_lane(s));
    return 0;
}
