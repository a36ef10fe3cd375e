/* lf_cpu_threads: a tiny fork-join pool for the CPU backend.
 *
 * Workers sleep on a condition variable; a run publishes a job, every thread
 * (the caller too) takes tasks from an atomic counter, and the caller waits
 * only for the workers that joined the job. A worker that wakes after the job
 * is over (its core was busy: more threads than free cores) skips it, so an
 * oversubscribed machine costs no scheduler round trip per run. One run at a
 * time. */
#include <stdatomic.h>
#include <stdlib.h>

#include "lf_cpu_impl.h"

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

lf__cpu_pool_t *lf__cpu_pool_new(int n_threads) {
    if (n_threads < 1) n_threads = 1;
    lf__cpu_pool_t *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->threads = calloc((size_t)n_threads, sizeof *p->threads);
    if (!p->threads) {
        free(p);
        return NULL;
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done, NULL);
    p->n_threads = 1;
    for (int i = 1; i < n_threads; i++) {
        s_arg_t *a = malloc(sizeof *a);
        if (!a) break;
        a->pool = p, a->index = i;
        if (pthread_create(&p->threads[i], NULL, s_main, a) != 0) {
            free(a);
            break;
        }
        p->n_threads++;
    }
    if (p->n_threads != n_threads) lf__cpu_pool_destroy(&p);
    return p;
}

void lf__cpu_pool_destroy(lf__cpu_pool_t **pool_p) {
    if (!pool_p || !*pool_p) return;
    lf__cpu_pool_t *p = *pool_p;
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n_threads; i++) pthread_join(p->threads[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->done);
    free(p->threads);
    free(p);
    *pool_p = NULL;
}

int lf__cpu_pool_size(const lf__cpu_pool_t *pool) {
    return pool->n_threads;
}

void lf__cpu_pool_run(lf__cpu_pool_t *p, int64_t n_tasks, lf__cpu_task_fn fn, void *ctx) {
    if (n_tasks <= 0) return;
    if (p->n_threads == 1 || n_tasks == 1) {
        for (int64_t t = 0; t < n_tasks; t++) fn(ctx, t, 0);
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
