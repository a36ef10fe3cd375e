/* lf_cpushare: which cores a worker computes on when several workers share a
 * machine, and how many compute threads it runs.
 *
 * N local workers split the cores the process may use into N contiguous
 * slices (the first cores % N slices one core larger); worker i takes slice
 * i, so two workers never run their GEMMs on the same core (oversubscribed,
 * a small image took 26-29 s instead of 0.66 s). lf_cpushare_split is pure;
 * lf_cpushare_pin applies a slice to every thread of the process (OpenBLAS's
 * threads exist before main; threads made later inherit the mask).
 * Thread-safe; no state. */
#ifndef LF_CPUSHARE_H
#define LF_CPUSHARE_H

/* A slice: `count` cores starting at position `first` of the allowed list. */
typedef struct {
    int first, count;
} lf_cpushare_t;

/* Worker `index` (0-based) of `workers` on `cores` usable cores. More workers
 * than cores: worker i gets core i % cores alone. LF_EINVAL (negative) when
 * cores < 1, workers < 1 or index is not in [0, workers); 0 otherwise. */
int lf_cpushare_split(int cores, int workers, int index, lf_cpushare_t *out);

/* Compute threads for a slice: `threads` when > 0 (an explicit setting), else
 * the slice's core count. */
int lf_cpushare_threads(const lf_cpushare_t *share, int threads);

/* Number of cores this process may run on (its affinity mask), at least 1. */
int lf_cpushare_cores(void);

/* Restricts every thread of this process to the slice's cores (positions in
 * the affinity mask the process had). 0, or a negative error (LF_EIO when the
 * system refuses; the worker then runs unpinned). */
int lf_cpushare_pin(const lf_cpushare_t *share);

#endif
