// AVX-512 versions of the hottest Swift glue kernels. Swift has no per-function target attributes, and the
// package is compiled for AVX2 (haswell), so on AVX-512 machines these C functions, compiled for
// avx512f and chosen at run time, do the element-wise work at full vector width.
#include "CEngineSupport.h"
#include <immintrin.h>

#define DR_AVX512 __attribute__((target("avx512f,fma")))

// e^x for x in float range: 2^n · p(r) with n = round(x·log2 e), r = x − n·ln 2 (Cody–Waite split),
// p a degree-6 Taylor/minimax-style polynomial; relative error ≈ 2e-7. Inputs are clamped to
// [−87.3, 88.7] so the result never overflows to ∞ or flushes to 0 before scaling.
DR_AVX512 static inline __m512 dr_exp512(__m512 x) {
    x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.3f)), _mm512_set1_ps(88.7f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    __m512 r2 = _mm512_mul_ps(r, r);
    p = _mm512_fmadd_ps(p, r2, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_scalef_ps(p, n);
}

DR_AVX512 static inline __m512 dr_silu512(__m512 v) {
    __m512 e = dr_exp512(_mm512_sub_ps(_mm512_setzero_ps(), v));
    return _mm512_div_ps(v, _mm512_add_ps(_mm512_set1_ps(1.0f), e));
}

DR_AVX512 void dr_channel_affine_avx512(const float *x, float *y, long pixels, long channels,
                                        const float *mean, const float *a, const float *b, int silu) {
    long full = channels & ~15L;
    __mmask16 tail = (__mmask16)((1u << (channels - full)) - 1u);
    for (long p = 0; p < pixels; p++) {
        const float *xp = x + p * channels;
        float *yp = y + p * channels;
        long k = 0;
        for (; k < full; k += 16) {
            __m512 v = _mm512_sub_ps(_mm512_loadu_ps(xp + k), _mm512_loadu_ps(mean + k));
            __m512 r = _mm512_fmadd_ps(v, _mm512_loadu_ps(a + k), _mm512_loadu_ps(b + k));
            _mm512_storeu_ps(yp + k, silu ? dr_silu512(r) : r);
        }
        if (tail) {
            __m512 v = _mm512_sub_ps(_mm512_maskz_loadu_ps(tail, xp + k), _mm512_maskz_loadu_ps(tail, mean + k));
            __m512 r = _mm512_fmadd_ps(v, _mm512_maskz_loadu_ps(tail, a + k), _mm512_maskz_loadu_ps(tail, b + k));
            _mm512_mask_storeu_ps(yp + k, tail, silu ? dr_silu512(r) : r);
        }
    }
}

DR_AVX512 void dr_shifted_moments_avx512(const float *x, long pixels, long channels, const float *pivot,
                                         float *sum, float *squares) {
    long full = channels & ~15L;
    __mmask16 tail = (__mmask16)((1u << (channels - full)) - 1u);
    for (long k = 0; k < full; k += 16) {
        __m512 s = _mm512_loadu_ps(sum + k), q = _mm512_loadu_ps(squares + k), c = _mm512_loadu_ps(pivot + k);
        for (long p = 0; p < pixels; p++) {
            __m512 d = _mm512_sub_ps(_mm512_loadu_ps(x + p * channels + k), c);
            s = _mm512_add_ps(s, d);
            q = _mm512_fmadd_ps(d, d, q);
        }
        _mm512_storeu_ps(sum + k, s);
        _mm512_storeu_ps(squares + k, q);
    }
    if (tail) {
        long k = full;
        __m512 s = _mm512_maskz_loadu_ps(tail, sum + k), q = _mm512_maskz_loadu_ps(tail, squares + k);
        __m512 c = _mm512_maskz_loadu_ps(tail, pivot + k);
        for (long p = 0; p < pixels; p++) {
            __m512 d = _mm512_sub_ps(_mm512_maskz_loadu_ps(tail, x + p * channels + k), c);
            s = _mm512_add_ps(s, d);
            q = _mm512_fmadd_ps(d, d, q);
        }
        _mm512_mask_storeu_ps(sum + k, tail, s);
        _mm512_mask_storeu_ps(squares + k, tail, q);
    }
}
