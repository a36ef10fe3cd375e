/* lf_cpu_threads: a tiny fork-join pool for the CPU backend.
 *
 * Workers sleep on a condition variable; a run publishes a job, every thread
 * (the caller too) takes tasks from an atomic counter, and the caller waits
 * only for the workers that joined the job. A worker that wakes after the job
 * is over (its core was busy: more threads than free cores) skips it, so an
 * oversubscribed machine costs no scheduler round trip per run. One run at a
 * time.
 *
 * Pinning (LF_PIN_THREADS=1, lf_cpu_backend.c): helper thread i runs on core
 * cpus[i] only, and so does thread i of the OpenMP team oneDNN runs on (pinned
 * from the first thread that computes: each thread has its own team). The
 * calling thread keeps its mask (the worker's cores): threads it creates
 * later inherit that mask, and a per-call thread pinned to one core (lf_quant's
 * q8 products, an OpenMP team made before the pinning) would stack on it.
 *
 * On OpenMP (LF__CPU_POOL_OMP; the backend's default with oneDNN unless
 * libgomp's threads sleep between regions, lf_cpu_backend.c): a run is
 * one GOMP_parallel region of the caller's team, the same threads oneDNN's
 * primitives use, taking tasks from the same atomic counter. With a pool of
 * its own beside oneDNN's team, a 2-thread process had 3 threads wanting 2
 * cores: the team member spinning for its next region (libgomp's default
 * wait) while our helper ran a task, ~1700 involuntary switches per SD1.5
 * step and ~1 s more CPU than one thread (docs/PERFORMANCE.md, session 12,
 * h-gap). */
#include <dlfcn.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lf_cpu_impl.h"
#include "lf_error.h"

struct lf__cpu_pool {
    int n_threads; /* including the caller */
    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t wake, done;
    unsigned generation;
    int active;    /* workers inside the current job */
    bool finished; /* the current job is over: late wakers skip it */
    bool stop;
    lf__cpu_task_fn fn;
    void *ctx;
    int64_t n_tasks;
    atomic_llong next;
    int *cpus;         /* owned; n_threads cores, thread i on cpus[i]; NULL: not pinned */
    pthread_t omp_for; /* the thread whose OpenMP team was pinned last */
    bool omp_pinned;
    /* LF__CPU_POOL_OMP: libgomp's entry points (looked up where oneDNN loaded it). */
    void (*omp_parallel)(void (*fn)(void *), void *data, unsigned n, unsigned flags);
    int (*omp_thread_num)(void);
};

typedef struct {
    lf__cpu_pool_t *pool;
    int index;
} s_arg_t;

static void s_work(lf__cpu_pool_t *p, int thread) {
    for (;;) {
        int64_t t = atomic_fetch_add(&p->next, 1);
        if (t >= p->n_tasks) break;
        p->fn(p->ctx, t, thread);
    }
}

static void *s_main(void *arg) {
    s_arg_t a = *(s_arg_t *)arg;
    free(arg);
    lf__cpu_pool_t *p = a.pool;
    unsigned seen = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->stop && p->generation == seen) pthread_cond_wait(&p->wake, &p->mu);
        if (p->stop) break;
        seen = p->generation;
        if (p->finished) continue; /* woke too late: the caller and the others did it all */
        p->active++;
        pthread_mutex_unlock(&p->mu);
        s_work(p, a.index);
        pthread_mutex_lock(&p->mu);
        if (--p->active == 0) pthread_cond_signal(&p->done);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

int lf__cpu_pin_plan(const cpu_set_t *allowed, int n_threads, int *cpus) {
    if (!allowed || !cpus || n_threads < 2 || n_threads > CPU_COUNT(allowed)) return LF_EINVAL;
    for (int cpu = 0, i = 0; cpu < CPU_SETSIZE && i < n_threads; cpu++)
        if (CPU_ISSET(cpu, allowed)) cpus[i++] = cpu;
    return 0;
}

lf__cpu_pool_t *lf__cpu_pool_new(int n_threads, const int *cpus) {
    return lf__cpu_pool_new_kind(n_threads, cpus, LF__CPU_POOL_THREADS);
}

/* One team member's share of an OpenMP run. */
static void s_omp_body(void *arg) {
    lf__cpu_pool_t *p = arg;
    s_work(p, p->omp_thread_num());
}

lf__cpu_pool_t *lf__cpu_pool_new_kind(int n_threads, const int *cpus, lf__cpu_pool_kind_t kind) {
    if (n_threads < 1) n_threads = 1;
    lf__cpu_pool_t *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    if (kind == LF__CPU_POOL_OMP && n_threads > 1) {
        p->omp_parallel = (void (*)(void (*)(void *), void *, unsigned, unsigned))dlsym(RTLD_DEFAULT, "GOMP_parallel");
        p->omp_thread_num = (int (*)(void))dlsym(RTLD_DEFAULT, "omp_get_thread_num");
        if (!p->omp_parallel || !p->omp_thread_num) p->omp_parallel = NULL, p->omp_thread_num = NULL;
    }
    if (p->omp_parallel) { /* no threads of its own: the caller's team is made by libgomp */
        p->n_threads = n_threads;
        if (cpus && !(p->cpus = malloc((size_t)n_threads * sizeof *p->cpus))) {
            free(p);
            return NULL;
        }
        if (cpus) memcpy(p->cpus, cpus, (size_t)n_threads * sizeof *p->cpus);
        pthread_mutex_init(&p->mu, NULL);
        pthread_cond_init(&p->wake, NULL);
        pthread_cond_init(&p->done, NULL);
        return p;
    }
    p->threads = calloc((size_t)n_threads, sizeof *p->threads);
    if (cpus && n_threads > 1 && p->threads && (p->cpus = malloc((size_t)n_threads * sizeof *p->cpus)))
        memcpy(p->cpus, cpus, (size_t)n_threads * sizeof *p->cpus);
    if (!p->threads || (cpus && n_threads > 1 && !p->cpus)) {
        free(p->threads);
        free(p);
        return NULL;
    }
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done, NULL);
    p->n_threads = 1;
    for (int i = 1; i < n_threads; i++) {
        s_arg_t *a = malloc(sizeof *a);
        if (!a) break;
        a->pool = p, a->index = i;
        if (p->cpus) { /* pinned from its first instruction: it never runs on another core */
            cpu_set_t one;
            CPU_ZERO(&one);
            CPU_SET(p->cpus[i], &one);
            pthread_attr_setaffinity_np(&attr, sizeof one, &one);
        }
        if (pthread_create(&p->threads[i], &attr, s_main, a) != 0) {
            free(a);
            break;
        }
        p->n_threads++;
    }
    pthread_attr_destroy(&attr);
    if (p->n_threads != n_threads) lf__cpu_pool_destroy(&p);
    return p;
}

/* OpenMP through libgomp's entry points, looked up where oneDNN loaded it:
 * the backend itself does not link OpenMP. */
typedef void (*s_gomp_parallel_fn)(void (*fn)(void *), void *data, unsigned n, unsigned flags);
typedef struct {
    const int *cpus;
    int (*thread_num)(void);
} s_omp_pin_t;

static void s_omp_pin_one(void *arg) {
    const s_omp_pin_t *o = arg;
    int t = o->thread_num();
    if (t <= 0) return; /* the caller keeps its mask, as in the pool */
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(o->cpus[t], &one);
    pthread_setaffinity_np(pthread_self(), sizeof one, &one);
}

void lf__cpu_pool_enter(lf__cpu_pool_t *p) {
    if (!p->cpus || (p->omp_pinned && pthread_equal(p->omp_for, pthread_self()))) return;
    p->omp_for = pthread_self(), p->omp_pinned = true;
    s_gomp_parallel_fn par = (s_gomp_parallel_fn)dlsym(RTLD_DEFAULT, "GOMP_parallel");
    s_omp_pin_t o = {p->cpus, (int (*)(void))dlsym(RTLD_DEFAULT, "omp_get_thread_num")};
    /* libgomp keeps a master's team threads in order between regions, so
     * team member t stays the thread pinned here as member t. */
    if (par && o.thread_num) par(s_omp_pin_one, &o, (unsigned)p->n_threads, 0);
}

bool lf__cpu_pool_pinned(const lf__cpu_pool_t *pool, int *cpus) {
    if (pool->cpus && cpus) memcpy(cpus, pool->cpus, (size_t)pool->n_threads * sizeof *cpus);
    return pool->cpus != NULL;
}

void lf__cpu_pool_destroy(lf__cpu_pool_t **pool_p) {
    if (!pool_p || !*pool_p) return;
    lf__cpu_pool_t *p = *pool_p;
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n_threads && !p->omp_parallel; i++) pthread_join(p->threads[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->done);
    free(p->threads);
    free(p->cpus);
    free(p);
    *pool_p = NULL;
}

int lf__cpu_pool_size(const lf__cpu_pool_t *pool) {
    return pool->n_threads;
}

lf__cpu_pool_kind_t lf__cpu_pool_kind(const lf__cpu_pool_t *pool) {
    return pool->omp_parallel ? LF__CPU_POOL_OMP : LF__CPU_POOL_THREADS;
}

lf__cpu_pool_kind_t lf__cpu_pool_default_kind(const char *pool, const char *wait_policy, const char *spincount) {
    if (pool && *pool) return !strcmp(pool, "threads") ? LF__CPU_POOL_THREADS : LF__CPU_POOL_OMP;
    /* libgomp (env.c): GOMP_SPINCOUNT, when it parses, sets the spin whatever
     * the policy ("infinite"/"infinity" or a count with an optional k/M/G/T
     * suffix); PASSIVE alone means no spin. A team that sleeps at once makes
     * each region wait for its member to wake, where our own pool's caller
     * never waits for a late helper (session 12, h-gap). */
    if (spincount && *spincount) {
        const char *s = spincount;
        while (*s == ' ' || *s == '\t') s++;
        if (!strncasecmp(s, "infinit", 7)) return LF__CPU_POOL_OMP;
        char *end;
        unsigned long long n = strtoull(s, &end, 10);
        if (end != s && *s != '-') return n ? LF__CPU_POOL_OMP : LF__CPU_POOL_THREADS;
    }
    return wait_policy && !strcasecmp(wait_policy, "passive") ? LF__CPU_POOL_THREADS : LF__CPU_POOL_OMP;
}

void lf__cpu_pool_run(lf__cpu_pool_t *p, int64_t n_tasks, lf__cpu_task_fn fn, void *ctx) {
    if (n_tasks <= 0) return;
    lf__cpu_pool_enter(p);
    if (p->n_threads == 1 || n_tasks == 1) {
        for (int64_t t = 0; t < n_tasks; t++) fn(ctx, t, 0);
        return;
    }
    if (p->omp_parallel) {
        p->fn = fn, p->ctx = ctx, p->n_tasks = n_tasks;
        atomic_store(&p->next, 0);
        /* The region ends at the team's barrier: every task is done. */
        p->omp_parallel(s_omp_body, p, (unsigned)(n_tasks < p->n_threads ? n_tasks : p->n_threads), 0);
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->fn = fn, p->ctx = ctx, p->n_tasks = n_tasks;
    atomic_store(&p->next, 0);
    p->finished = false;
    p->generation++;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    s_work(p, 0); /* returns when every task is taken; the ones taken by joined workers may still run */
    pthread_mutex_lock(&p->mu);
    while (p->active > 0) pthread_cond_wait(&p->done, &p->mu);
    p->finished = true;
    pthread_mutex_unlock(&p->mu);
}
