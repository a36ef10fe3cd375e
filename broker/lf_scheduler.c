/* lf_scheduler: see lf_scheduler.h for the rules. Idle workers are indexed
 * by resident model (sorted once per call), so the affinity pass costs a
 * binary search per job rather than a scan of every worker. */
#include "lf_scheduler.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "lf_error.h"

static bool s_serves(const lf_sched_worker_t *w, const char *model) {
    for (size_t i = 0; i < w->n_models; i++)
        if (w->models[i] && !strcmp(w->models[i], model)) return true;
    return false;
}

static bool s_has_refiner(const lf_sched_job_t *j) { return j->refiner && *j->refiner; }

static bool s_has_vae(const lf_sched_worker_t *w, const char *vae) {
    for (size_t i = 0; i < w->n_vaes; i++)
        if (w->vaes[i] && !strcmp(w->vaes[i], vae)) return true;
    return false;
}

int lf_scheduler_capable(const lf_sched_worker_t *w, const lf_sched_job_t *j) {
    if (!j->model) return 0;
    if (w->max_pixels && j->pixels > w->max_pixels) return 0;
    if (s_has_refiner(j) && !s_serves(w, j->refiner)) return 0;
    if (j->vae && *j->vae && !s_has_vae(w, j->vae)) return 0;
    return s_serves(w, j->model);
}

lf_sched_unmet_t lf_scheduler_unmet(const lf_sched_job_t *j, const lf_sched_worker_t *workers,
                                    size_t n_workers, uint64_t *largest) {
    bool served = false;
    uint64_t big = 0;
    for (size_t i = 0; j->model && i < n_workers; i++) {
        if (!s_serves(&workers[i], j->model)) continue;
        if (lf_scheduler_capable(&workers[i], j)) return LF_SCHED_RUNNABLE;
        served = true;
        if (workers[i].max_pixels > big) big = workers[i].max_pixels;
    }
    if (!served) return LF_SCHED_NO_MODEL;
    if (largest) *largest = big;
    return LF_SCHED_TOO_LARGE;
}

void lf_scheduler_unrunnable(int64_t grace_ms, const lf_sched_job_t *jobs, size_t n_jobs,
                             const lf_sched_worker_t *workers, size_t n_workers, int64_t now_ms,
                             int64_t *since, lf_sched_unmet_t *due) {
    for (size_t i = 0; i < n_jobs; i++) {
        lf_sched_unmet_t why =
            n_workers ? lf_scheduler_unmet(&jobs[i], workers, n_workers, NULL) : LF_SCHED_RUNNABLE;
        due[i] = LF_SCHED_RUNNABLE;
        if (why == LF_SCHED_RUNNABLE) {
            since[i] = 0;
            continue;
        }
        if (!since[i]) since[i] = now_ms;
        if (now_ms - since[i] >= grace_ms) due[i] = why;
    }
}

typedef struct {
    const lf_sched_job_t *jobs;
    const lf_sched_worker_t *workers;
    uint32_t *by_res;  /* worker indices sorted by resident ("" = none) */
    size_t n_workers;
    bool *used;
} s_ctx_t;

static const char *s_res(const lf_sched_worker_t *w) { return w->resident ? w->resident : ""; }

static int s_cmp_res(const void *a, const void *b, void *ctx) {
    const lf_sched_worker_t *ws = ctx;
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    int c = strcmp(s_res(&ws[x]), s_res(&ws[y]));
    return c ? c : (x > y) - (x < y);
}

static int s_cmp_job(const void *a, const void *b, void *ctx) {
    const lf_sched_job_t *js = ctx;
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    const lf_sched_job_t *p = &js[x], *q = &js[y];
    if (p->priority != q->priority) return p->priority < q->priority ? -1 : 1;
    if (p->seq != q->seq) return p->seq < q->seq ? -1 : 1;
    return (x > y) - (x < y);
}

/* First position in by_res whose resident is >= model. */
static size_t s_lower(const s_ctx_t *c, const char *model) {
    size_t lo = 0, hi = c->n_workers;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (strcmp(s_res(&c->workers[c->by_res[mid]]), model) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static const char *s_set(const char *s) { return s ? s : ""; }

/* How well worker w with the job's model resident suits job j: 2 when it
 * also has the job's SDXL refiner resident (or the job has none: a refiner
 * load is a second model load), plus 1 when its merged LoRA set is the
 * job's (a LoRA switch only rewrites the touched layers: far cheaper). */
static int s_affinity(const lf_sched_worker_t *w, const lf_sched_job_t *j) {
    int score = 0;
    if (!s_has_refiner(j) || (w->refiner && !strcmp(w->refiner, j->refiner))) score += 2;
    if (!strcmp(s_set(w->lora_set), s_set(j->lora_set))) score += 1;
    return score;
}

/* An unused capable worker whose resident is `res` ("" = none), or -1.
 * With the model resident, the one with the best s_affinity comes first
 * (ties: sorted order). */
static long s_take_res(s_ctx_t *c, const lf_sched_job_t *j, const char *res) {
    long best = -1;
    int best_score = -1;
    for (size_t k = s_lower(c, res); k < c->n_workers; k++) {
        uint32_t w = c->by_res[k];
        if (strcmp(s_res(&c->workers[w]), res)) break;
        if (c->used[w] || !lf_scheduler_capable(&c->workers[w], j)) continue;
        if (!*res) return (long)w;
        int score = s_affinity(&c->workers[w], j);
        if (score == 3) return (long)w;
        if (score > best_score) best = (long)w, best_score = score;
    }
    return best;
}

int lf_scheduler_match(const lf_sched_cfg_t *cfg, const lf_sched_job_t *jobs, size_t n_jobs,
                       const lf_sched_worker_t *workers, size_t n_workers, int64_t now_ms,
                       lf_sched_match_t *out, size_t *n_out) {
    if (!n_out || (n_jobs && !jobs) || (n_workers && !workers) || n_jobs > UINT32_MAX ||
        n_workers > UINT32_MAX)
        return LF_EINVAL;
    *n_out = 0;
    if (!n_jobs || !n_workers) return 0;
    if (!out) return LF_EINVAL;
    int64_t starve = cfg && cfg->starve_ms > 0 ? cfg->starve_ms : 30000;

    uint32_t *order = malloc(n_jobs * sizeof *order);
    bool *done = calloc(n_jobs, sizeof *done);
    s_ctx_t c = {jobs, workers, malloc(n_workers * sizeof(uint32_t)), n_workers,
                 calloc(n_workers, sizeof(bool))};
    /* Demand per job model (indexed by the first job with that model). */
    uint32_t *demand = calloc(n_jobs, sizeof *demand);
    uint32_t *first = malloc(n_jobs * sizeof *first);
    long *wdem = malloc(n_workers * sizeof *wdem);
    if (!order || !done || !c.by_res || !c.used || !demand || !first || !wdem) {
        free(order), free(done), free(c.by_res), free(c.used), free(demand), free(first);
        free(wdem);
        return LF_ENOMEM;
    }
    for (uint32_t i = 0; i < n_jobs; i++) order[i] = i;
    for (uint32_t i = 0; i < n_workers; i++) c.by_res[i] = i;
    qsort_r(order, n_jobs, sizeof *order, s_cmp_job, (void *)jobs);
    qsort_r(c.by_res, n_workers, sizeof *c.by_res, s_cmp_res, (void *)workers);

    size_t n = 0, cap = n_jobs < n_workers ? n_jobs : n_workers;
#define S_ASSIGN(ji, wi)                                                                         \
    do {                                                                                         \
        out[n++] = (lf_sched_match_t){(uint32_t)(ji), (uint32_t)(wi)};                           \
        done[ji] = true;                                                                         \
        c.used[wi] = true;                                                                       \
    } while (0)

    /* Pass 0: starved jobs take any capable worker, their own model first. */
    for (size_t k = 0; k < n_jobs && n < cap; k++) {
        uint32_t ji = order[k];
        const lf_sched_job_t *j = &jobs[ji];
        if (!j->model || now_ms - j->created_ms < starve) continue;
        long w = s_take_res(&c, j, j->model);
        if (w < 0) w = s_take_res(&c, j, "");
        for (size_t x = 0; w < 0 && x < n_workers; x++)
            if (!c.used[x] && lf_scheduler_capable(&workers[x], j)) w = (long)x;
        if (w >= 0) S_ASSIGN(ji, w);
    }
    /* Pass 1: affinity. */
    for (size_t k = 0; k < n_jobs && n < cap; k++) {
        uint32_t ji = order[k];
        if (done[ji] || !jobs[ji].model) continue;
        long w = s_take_res(&c, &jobs[ji], jobs[ji].model);
        if (w >= 0) S_ASSIGN(ji, w);
    }
    /* Demand left per model, for pass 2's "switching costs no one": jobs
     * of one model count at the first job of that model; each worker's
     * resident model points at that slot (or nowhere). */
    for (uint32_t i = 0; i < n_jobs; i++) {
        first[i] = i;
        if (!jobs[i].model) continue;
        for (uint32_t p = 0; p < i; p++)
            if (jobs[p].model && !strcmp(jobs[p].model, jobs[i].model)) {
                first[i] = first[p];
                break;
            }
        if (!done[i]) demand[first[i]]++;
    }
    for (uint32_t x = 0; x < n_workers; x++) {
        wdem[x] = -1;
        for (uint32_t q = 0; workers[x].resident && q < n_jobs; q++)
            if (jobs[q].model && !strcmp(jobs[q].model, workers[x].resident)) {
                wdem[x] = (long)first[q];
                break;
            }
    }
    /* Pass 2: the rest, to empty workers or workers free to switch. */
    for (size_t k = 0; k < n_jobs && n < cap; k++) {
        uint32_t ji = order[k];
        const lf_sched_job_t *j = &jobs[ji];
        if (done[ji] || !j->model) continue;
        long w = s_take_res(&c, j, "");
        for (size_t x = 0; w < 0 && x < n_workers; x++)
            if (!c.used[x] && workers[x].resident && (wdem[x] < 0 || demand[wdem[x]] == 0) &&
                lf_scheduler_capable(&workers[x], j))
                w = (long)x;
        if (w >= 0) {
            S_ASSIGN(ji, w);
            demand[first[ji]]--;
        }
    }
#undef S_ASSIGN
    free(order), free(done), free(c.by_res), free(c.used), free(demand), free(first);
    free(wdem);
    *n_out = n;
    return 0;
}

int lf_scheduler_batch(const lf_sched_job_t *jobs, size_t n_jobs, const lf_sched_worker_t *workers,
                       size_t n_workers, const lf_sched_match_t *matches, size_t n_matches,
                       uint32_t *with) {
    if ((n_jobs && (!jobs || !with)) || (n_matches && !matches) || n_jobs > UINT32_MAX)
        return LF_EINVAL;
    for (size_t i = 0; i < n_jobs; i++) with[i] = LF_SCHED_ALONE;
    for (size_t k = 0; k < n_matches; k++)
        if (matches[k].job >= n_jobs || matches[k].worker >= n_workers) return LF_EINVAL;
    uint32_t *order = malloc((n_jobs ? n_jobs : 1) * sizeof *order);
    bool *taken = calloc(n_jobs ? n_jobs : 1, sizeof *taken);
    if (!order || !taken) {
        free(order), free(taken);
        return LF_ENOMEM;
    }
    for (uint32_t i = 0; i < n_jobs; i++) order[i] = i;
    qsort_r(order, n_jobs, sizeof *order, s_cmp_job, (void *)jobs);
    for (size_t k = 0; k < n_matches; k++) taken[matches[k].job] = true;
    for (size_t k = 0; k < n_matches; k++) {
        const lf_sched_job_t *h = &jobs[matches[k].job];
        const lf_sched_worker_t *w = &workers[matches[k].worker];
        if (w->batch_max <= 1 || !h->batch_key || !*h->batch_key) continue;
        uint32_t n = 1;
        for (size_t q = 0; q < n_jobs && n < w->batch_max; q++) {
            uint32_t j = order[q];
            const lf_sched_job_t *c = &jobs[j];
            if (taken[j] || c->priority != h->priority || !c->batch_key ||
                strcmp(c->batch_key, h->batch_key) || !lf_scheduler_capable(w, c))
                continue;
            taken[j] = true;
            with[j] = (uint32_t)k;
            n++;
        }
    }
    free(order), free(taken);
    return 0;
}
