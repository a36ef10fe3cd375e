/* lf_scheduler: which queued job goes to which idle worker — a pure function
 * of plain structs (no sockets, no Redis), table-tested.
 *
 * Rules, in order:
 *  1. Capability: a worker only gets jobs for models it lists (and the
 *     job's refiner, which runs on the same worker, and its separate VAE),
 *     with
 *     width*height*batch <= its max_pixels (0 = no limit).
 *  2. Starvation bound: a job that has waited cfg->starve_ms or longer goes
 *     to any capable idle worker (one with its model resident first), before
 *     everything else, oldest priority class first. So no model starves
 *     behind others' affinity, and no low job starves behind high ones.
 *  3. Priority then FIFO: the other jobs are considered high, normal, low,
 *     and by enqueue sequence within one.
 *  4. Affinity: a job goes first to a worker with its model resident, and
 *     among those by a score: the job's SDXL refiner resident too (2, a
 *     refiner load is a second model load) plus its merged LoRA set being
 *     the job's (1, no weights to touch; a LoRA switch rewrites only the
 *     touched layers: far cheaper than a model load); a job without a
 *     refiner counts the refiner as met. Failing
 *     that, to a worker with nothing resident, or one whose resident model
 *     has no other job waiting in the candidate window (switching it costs
 *     no one). A worker whose own model has work waiting keeps it.
 *
 * Threading: reentrant; no state. Everything is borrowed for the call. */
#ifndef LF_SCHEDULER_H
#define LF_SCHEDULER_H

#include <stddef.h>
#include <stdint.h>

#include "lf_proto.h"

typedef struct {
    const char *id;
    const char *model;
    uint64_t pixels;          /* width * height * batch (the Hires-Fix size when on: lf_params_output_size) */
    lf_priority_t priority;
    int64_t created_ms;       /* first submit: age for the starvation bound */
    int64_t seq;              /* FIFO order within a priority */
    const char *refiner;      /* SDXL refiner run after the model; NULL or "" = none */
    const char *vae;          /* separate VAE the job names; NULL or "" = the checkpoint's */
    const char *lora_set;     /* lf_extranet_lora_set of the job; NULL or "" = none */
    const char *batch_key;    /* lf_batch_key of the job; NULL or "" = never batched */
} lf_sched_job_t;

typedef struct {
    const char *id;
    const char *const *models; /* models it can run */
    size_t n_models;
    const char *resident;      /* model loaded now; NULL = none */
    uint64_t max_pixels;       /* 0 = no limit */
    const char *refiner;       /* refiner loaded next to it; NULL = none */
    const char *const *vaes;   /* separate VAEs it has */
    size_t n_vaes;
    const char *lora_set;      /* LoRA set merged into the resident model; NULL or "" = none */
    uint32_t batch_max;        /* jobs it runs as one batch (LF_BATCH_MAX); 0 or 1 = one at a time */
} lf_sched_worker_t;

typedef struct {
    int64_t starve_ms;         /* <= 0: 30000 */
} lf_sched_cfg_t;

typedef struct {
    uint32_t job;              /* index into jobs */
    uint32_t worker;           /* index into workers */
} lf_sched_match_t;

/* Decide. out has room for min(n_jobs, n_workers) entries; *n_out is set to
 * the number of matches, each job and each worker at most once. Returns 0,
 * LF_EINVAL (NULL arrays with non-zero counts, counts over UINT32_MAX) or
 * LF_ENOMEM. */
int lf_scheduler_match(const lf_sched_cfg_t *cfg, const lf_sched_job_t *jobs, size_t n_jobs,
                       const lf_sched_worker_t *workers, size_t n_workers, int64_t now_ms,
                       lf_sched_match_t *out, size_t *n_out);

/* Batches (issue 18), after lf_scheduler_match: each match's job (the
 * head) takes along queued jobs that were not matched, with its batch key
 * (lf_batch.h: the same model, size, steps, sampler... — prompts and seeds
 * may differ) and its priority (a lower job never slows a higher one), in
 * FIFO order, while its worker is capable of them (each within its
 * max_pixels, so a batch's pixels stay within max_pixels x batch_max) and
 * the batch holds at most the worker's batch_max jobs. A head without a key, or a worker with
 * batch_max <= 1, runs alone. with[i] (n_jobs entries) is set to the index
 * into matches of the batch job i joins, or LF_SCHED_ALONE (a match's own
 * job, and the jobs left queued). Returns 0, LF_EINVAL or LF_ENOMEM. */
#define LF_SCHED_ALONE UINT32_MAX
int lf_scheduler_batch(const lf_sched_job_t *jobs, size_t n_jobs, const lf_sched_worker_t *workers,
                       size_t n_workers, const lf_sched_match_t *matches, size_t n_matches,
                       uint32_t *with);

/* Can worker w run job j at all (rule 1)? */
int lf_scheduler_capable(const lf_sched_worker_t *w, const lf_sched_job_t *j);

/* Why no worker can run a job (rule 1 failing for every worker). */
typedef enum {
    LF_SCHED_RUNNABLE = 0,  /* some worker can run it */
    LF_SCHED_NO_MODEL,      /* no worker serves its model */
    LF_SCHED_TOO_LARGE,     /* workers serve its model, all with max_pixels below its pixels */
} lf_sched_unmet_t;

/* Why none of `workers` (every live worker, busy or idle) can run j, or
 * LF_SCHED_RUNNABLE. For LF_SCHED_TOO_LARGE, *largest (may be NULL) is the
 * largest max_pixels among the workers that serve j's model. */
lf_sched_unmet_t lf_scheduler_unmet(const lf_sched_job_t *j, const lf_sched_worker_t *workers,
                                    size_t n_workers, uint64_t *largest);

/* The grace period before a queued job that no live worker can run fails
 * (instead of waiting for its queue TTL). since[i] is when job i was first
 * seen unrunnable (0 = runnable when last looked; any clock, as now_ms);
 * it is updated in place: set to now_ms when job i turns unrunnable, back
 * to 0 when it is runnable again. due[i] is set to the reason when job i has
 * been unrunnable for grace_ms or longer, else LF_SCHED_RUNNABLE. With no
 * worker at all every job counts as runnable: the farm is down or starting,
 * not unable, and the queue TTL bounds that wait. */
void lf_scheduler_unrunnable(int64_t grace_ms, const lf_sched_job_t *jobs, size_t n_jobs,
                             const lf_sched_worker_t *workers, size_t n_workers, int64_t now_ms,
                             int64_t *since, lf_sched_unmet_t *due);

#endif
