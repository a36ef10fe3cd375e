/* test_cpu_threads: the CPU backend's thread pool pinned one thread per core
 * (LF_PIN_THREADS): the plan from an affinity mask (pure), each helper
 * thread's mask read back with sched_getaffinity from inside a run, and the
 * OpenMP team oneDNN runs on pinned the same way. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dlfcn.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cpu/lf_cpu_impl.h"
#include "lf_backend.h"
#include "lf_error.h"

static void test_plan(void **st) {
    (void)st;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(2, &set), CPU_SET(3, &set), CPU_SET(7, &set), CPU_SET(40, &set);
    int cpus[8] = {0};
    assert_int_equal(lf__cpu_pin_plan(&set, 3, cpus), 0);
    assert_int_equal(cpus[0], 2);
    assert_int_equal(cpus[1], 3);
    assert_int_equal(cpus[2], 7);
    assert_int_equal(lf__cpu_pin_plan(&set, 4, cpus), 0);
    assert_int_equal(cpus[3], 40);
    assert_int_equal(lf__cpu_pin_plan(&set, 5, cpus), LF_EINVAL); /* would stack two on a core */
    assert_int_equal(lf__cpu_pin_plan(&set, 1, cpus), LF_EINVAL); /* nothing to pin */
    assert_int_equal(lf__cpu_pin_plan(NULL, 2, cpus), LF_EINVAL);
}

/* Each thread's mask, as the thread sees it. */
typedef struct {
    cpu_set_t mask[64];
    int seen[64];
} s_masks_t;

static void s_read_mask(void *ctx, int64_t task, int thread) {
    (void)task;
    s_masks_t *m = ctx;
    sched_getaffinity(0, sizeof m->mask[thread], &m->mask[thread]);
    m->seen[thread] = 1;
    /* Long enough that every helper takes a task (none is done before all woke). */
    struct timespec ts = {0, 2000000};
    nanosleep(&ts, NULL);
}

static int s_cores(cpu_set_t *set) {
    return sched_getaffinity(0, sizeof *set, set) ? 0 : CPU_COUNT(set);
}

static void test_pool_pinned(void **st) {
    (void)st;
    cpu_set_t all;
    int n = s_cores(&all);
    if (n < 2) skip();
    if (n > 8) n = 8;
    int cpus[8];
    assert_int_equal(lf__cpu_pin_plan(&all, n, cpus), 0);
    lf__cpu_pool_t *pool = lf__cpu_pool_new(n, cpus);
    assert_non_null(pool);
    int back[8] = {0};
    assert_true(lf__cpu_pool_pinned(pool, back));
    assert_memory_equal(back, cpus, sizeof(int) * (size_t)n);
    s_masks_t *m = calloc(1, sizeof *m);
    for (int round = 0; round < 20; round++) lf__cpu_pool_run(pool, 16L * n, s_read_mask, m);
    for (int t = 1; t < n; t++) {
        assert_int_equal(m->seen[t], 1);
        assert_int_equal(CPU_COUNT(&m->mask[t]), 1);
        assert_true(CPU_ISSET(cpus[t], &m->mask[t]));
    }
    /* The caller keeps its mask (threads it makes later inherit it). */
    assert_int_equal(CPU_COUNT(&m->mask[0]), CPU_COUNT(&all));
    lf__cpu_pool_destroy(&pool);
    assert_null(pool);
    /* Not pinned: helpers keep the whole mask. */
    pool = lf__cpu_pool_new(n, NULL);
    assert_false(lf__cpu_pool_pinned(pool, NULL));
    memset(m, 0, sizeof *m);
    for (int round = 0; round < 20; round++) lf__cpu_pool_run(pool, 16L * n, s_read_mask, m);
    for (int t = 0; t < n; t++)
        if (m->seen[t]) assert_int_equal(CPU_COUNT(&m->mask[t]), CPU_COUNT(&all));
    lf__cpu_pool_destroy(&pool);
    free(m);
}

/* libgomp (loaded with oneDNN): after lf__cpu_pool_enter, member t of this
 * thread's team runs on cpus[t] only (t >= 1). */
typedef void (*s_par_fn)(void (*fn)(void *), void *data, unsigned n, unsigned flags);
typedef struct {
    int (*num)(void);
    cpu_set_t mask[8];
} s_omp_t;

static void s_omp_read(void *arg) {
    s_omp_t *o = arg;
    int t = o->num();
    if (t >= 0 && t < 8) sched_getaffinity(0, sizeof o->mask[t], &o->mask[t]);
}

static void test_omp_pinned(void **st) {
    (void)st;
    s_par_fn par = (s_par_fn)dlsym(RTLD_DEFAULT, "GOMP_parallel");
    s_omp_t o = {.num = (int (*)(void))dlsym(RTLD_DEFAULT, "omp_get_thread_num")};
    cpu_set_t all;
    int n = s_cores(&all);
    if (!par || !o.num || n < 2) skip(); /* built without oneDNN, or one core */
    if (n > 8) n = 8;
    int cpus[8];
    assert_int_equal(lf__cpu_pin_plan(&all, n, cpus), 0);
    lf__cpu_pool_t *pool = lf__cpu_pool_new(n, cpus);
    assert_non_null(pool);
    lf__cpu_pool_enter(pool);
    par(s_omp_read, &o, (unsigned)n, 0);
    for (int t = 1; t < n; t++) {
        assert_int_equal(CPU_COUNT(&o.mask[t]), 1);
        assert_true(CPU_ISSET(cpus[t], &o.mask[t]));
    }
    assert_int_equal(CPU_COUNT(&o.mask[0]), CPU_COUNT(&all));
    lf__cpu_pool_destroy(&pool);
}

/* The backend reads LF_PIN_THREADS when made and says so in its description. */
static void test_backend_describe(void **st) {
    (void)st;
    cpu_set_t all;
    if (s_cores(&all) < 2) skip();
    setenv("LF_PIN_THREADS", "1", 1);
    lf_backend_t *be = lf_backend_cpu_new(2);
    unsetenv("LF_PIN_THREADS");
    assert_non_null(be);
    assert_non_null(strstr(lf_backend_describe(be), "2 threads (pinned to cores "));
    lf_backend_destroy(&be);
    be = lf_backend_cpu_new(2);
    assert_non_null(strstr(lf_backend_describe(be), "2 threads (not pinned)"));
    lf_backend_destroy(&be);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plan),
        cmocka_unit_test(test_pool_pinned),
        cmocka_unit_test(test_omp_pinned),
        cmocka_unit_test(test_backend_describe),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
