#ifndef DR_ENGINE_SUPPORT_H
#define DR_ENGINE_SUPPORT_H
#include <stddef.h>

/// 1 when the CPU executes AVX2 and FMA (the minimum the release build is compiled for), else 0.
int dr_cpu_has_avx2_fma(void);
/// 1 when the CPU has AVX-512 F (oneDNN then picks its AVX-512 kernels), else 0.
int dr_cpu_has_avx512f(void);

/// Body of a parallel loop: handles iterations [begin, end).
typedef void (*dr_range_body)(void *context, long begin, long end);

/// Runs `body` over [0, n) split into one contiguous range per thread of the OpenMP pool (libgomp),
/// the same pool that oneDNN uses, so Swift kernels and oneDNN primitives never compete for the cores.
/// Runs inline when n < 2 * grain or only one thread is available. Must not be nested.
void dr_parallel_for(long n, long grain, void *context, dr_range_body body);

/// Threads in the pool (omp_get_max_threads).
int dr_max_threads(void);

/// Fixes glibc's mmap threshold (it otherwise grows after large frees, and many window-sized tensors then
/// fragment the heap); no-op elsewhere. Returns 1 when applied.
int dr_fix_mmap_threshold(long bytes);
/// Sets the pool's thread count (omp_set_num_threads); affects oneDNN too.
void dr_set_num_threads(int n);

#endif

/// Measures the FMA throughput of the pool's threads over about `seconds`, in GFLOP/s (2 FLOP per FMA
/// lane): 512-bit FMAs when the CPU has AVX-512 F and `allow_avx512` is set, else 256-bit FMAs.
double dr_fma_peak_gflops(double seconds, int allow_avx512);

// MARK: - AVX-512 kernels (call only when dr_cpu_has_avx512f() is 1)

/// y[p, k] = act((x[p, k] − mean[k]) · a[k] + b[k]) over `pixels` rows of `channels`; act = SiLU when `silu`.
void dr_channel_affine_avx512(const float *x, float *y, long pixels, long channels,
                              const float *mean, const float *a, const float *b, int silu);

/// sum[k] += Σ_p (x[p, k] − pivot[k]) and squares[k] += Σ_p (x[p, k] − pivot[k])² over `pixels` rows.
void dr_shifted_moments_avx512(const float *x, long pixels, long channels, const float *pivot,
                               float *sum, float *squares);
