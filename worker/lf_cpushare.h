/* lf_cpushare: which cores a worker computes on when several workers share a
 * machine, and how many compute threads it runs.
 *
 * N local workers split the cores the process may use into N contiguous
 * slices (the first cores % N slices one core larger); worker i takes slice
 * i, so two workers never run their GEMMs on the same core (oversubscribed,
 * a small image took 26-29 s instead of 0.66 s). lf_cpushare_split is pure;
 * lf_cpushare_pin applies a slice to every thread of the process (OpenBLAS's
 * threads exist before main; threads made later inherit the mask). The cores
 * split are those of the affinity mask, as many as a cgroup CPU quota allows
 * (a container limited to 4 of 64 cores runs 4 threads, not 64).
 * Thread-safe; no state. */
#ifndef LF_CPUSHARE_H
#define LF_CPUSHARE_H

#include <stddef.h>

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

/* Whole cores a CPU quota grants, from a cgroup v2 cpu.max line ("QUOTA
 * PERIOD" or "max PERIOD") or cgroup v1's "QUOTA PERIOD" (cfs_quota_us,
 * cfs_period_us; QUOTA -1 = none): floor(QUOTA / PERIOD), at least 1, so
 * threads never outnumber the quota (1.5 cores run 1 thread). 0 when there is
 * no quota or the text is not one. Pure. */
int lf_cpushare_quota_cores(const char *cpu_max);

/* The smallest quota (lf_cpushare_quota_cores) over this process's cgroup and
 * its parents, read under root (normally "/sys/fs/cgroup"), self_cgroup being
 * the text of /proc/self/cgroup: cgroup v2 (the "0::PATH" line, cpu.max from
 * PATH up to root) or v1 (the cpu controller's PATH under root/cpu, its
 * cpu.cfs_quota_us and cpu.cfs_period_us, up to root/cpu). 0 = no quota. */
int lf_cpushare_cgroup_cores(const char *root, const char *self_cgroup);

/* Cores this worker may use: the affinity mask's count, capped by the cgroup
 * CPU quota where one is set; at least 1. */
int lf_cpushare_cores(void);

/* A core list ("0-3,8") of the slice's cores (positions in this process's
 * affinity mask, as lf_cpushare_pin takes them) into out. Returns out. */
char *lf_cpushare_list(const lf_cpushare_t *share, char *out, size_t size);

/* Restricts every thread of this process to the slice's cores (positions in
 * the affinity mask the process had). 0, or a negative error (LF_EIO when the
 * system refuses; the worker then runs unpinned). */
int lf_cpushare_pin(const lf_cpushare_t *share);

#endif
