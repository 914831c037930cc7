#include "CEngineSupport.h"

// libgomp's entry points (the GNU OpenMP ABI); declared here so that no -fopenmp is needed, which with
// clang would pull in LLVM's libomp: two OpenMP runtimes in one process would fight for the two cores.
extern void GOMP_parallel(void (*fn)(void *), void *data, unsigned num_threads, unsigned flags);
extern int omp_get_thread_num(void);
extern int omp_get_num_threads(void);
extern int omp_get_max_threads(void);
extern void omp_set_num_threads(int n);
extern int omp_in_parallel(void);

int dr_cpu_has_avx2_fma(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

int dr_cpu_has_avx512f(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f");
}

struct dr_job {
    long n;
    void *context;
    dr_range_body body;
};

static void dr_job_run(void *data) {
    const struct dr_job *job = (const struct dr_job *)data;
    long threads = omp_get_num_threads();
    long id = omp_get_thread_num();
    long chunk = (job->n + threads - 1) / threads;
    long begin = id * chunk;
    long end = begin + chunk < job->n ? begin + chunk : job->n;
    if (begin < end) job->body(job->context, begin, end);
}

void dr_parallel_for(long n, long grain, void *context, dr_range_body body) {
    if (n <= 0) return;
    long threads = omp_get_max_threads();
    if (grain < 1) grain = 1;
    if (threads < 2 || n < 2 * grain || omp_in_parallel()) {
        body(context, 0, n);
        return;
    }
    long useful = n / grain;
    unsigned count = (unsigned)(useful < threads ? useful : threads);
    struct dr_job job = { n, context, body };
    GOMP_parallel(dr_job_run, &job, count, 0);
}

int dr_max_threads(void) { return omp_get_max_threads(); }
void dr_set_num_threads(int n) { omp_set_num_threads(n); }

// MARK: - FMA peak (for benchmark reports: % of the peak measured in the same run)

#include <immintrin.h>
#include <time.h>

static double dr_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

#define DR_CHAINS 12

__attribute__((target("avx2,fma"))) static double dr_fma_loop_avx2(long iterations) {
    __m256 acc[DR_CHAINS];
    const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
    for (int i = 0; i < DR_CHAINS; i++) acc[i] = _mm256_set1_ps((float)i);
    for (long it = 0; it < iterations; it++)
        for (int i = 0; i < DR_CHAINS; i++) acc[i] = _mm256_fmadd_ps(acc[i], a, b);
    float out[8];
    __m256 sum = acc[0];
    for (int i = 1; i < DR_CHAINS; i++) sum = _mm256_add_ps(sum, acc[i]);
    _mm256_storeu_ps(out, sum);
    return out[0];
}

__attribute__((target("avx512f"))) static double dr_fma_loop_avx512(long iterations) {
    __m512 acc[DR_CHAINS];
    const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
    for (int i = 0; i < DR_CHAINS; i++) acc[i] = _mm512_set1_ps((float)i);
    for (long it = 0; it < iterations; it++)
        for (int i = 0; i < DR_CHAINS; i++) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
    __m512 sum = acc[0];
    for (int i = 1; i < DR_CHAINS; i++) sum = _mm512_add_ps(sum, acc[i]);
    return _mm512_reduce_add_ps(sum);
}

struct dr_peak_job { long iterations; int wide; double sink; };

static void dr_peak_run(void *data) {
    struct dr_peak_job *job = (struct dr_peak_job *)data;
    double r = job->wide ? dr_fma_loop_avx512(job->iterations) : dr_fma_loop_avx2(job->iterations);
    if (r == 12345.678) job->sink = r;  // keeps the loop alive
}

double dr_fma_peak_gflops(double seconds, int allow_avx512) {
    int wide = allow_avx512 && dr_cpu_has_avx512f();
    int lanes = wide ? 16 : 8;
    int threads = omp_get_max_threads();
    struct dr_peak_job job = { 1000000, wide, 0 };
    double best = 0;
    double start = dr_now();
    while (dr_now() - start < seconds) {
        double t0 = dr_now();
        GOMP_parallel(dr_peak_run, &job, threads, 0);
        double dt = dr_now() - t0;
        double flops = (double)job.iterations * DR_CHAINS * lanes * 2.0 * threads;
        if (flops / dt > best) best = flops / dt;
        if (dt < 0.02) job.iterations *= 2;
    }
    return best * 1e-9;
}

#if defined(__GLIBC__)
#include <malloc.h>
int dr_fix_mmap_threshold(long bytes) { return mallopt(M_MMAP_THRESHOLD, (int)bytes); }
#else
int dr_fix_mmap_threshold(long bytes) { (void)bytes; return 0; }
#endif
