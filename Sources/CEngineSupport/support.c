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
