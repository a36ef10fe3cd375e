/* test_cpu_threads: the CPU backend's thread pool pinned one thread per core
 * (LF_PIN_THREADS): the plan from an affinity mask (pure), each helper
 * thread's mask read back with sched_getaffinity from inside a run, and the
 * OpenMP team oneDNN runs on pinned the same way. The pool on OpenMP
 * (LF_CPU_POOL; the default with oneDNN unless libgomp's team sleeps at once:
 * OMP_WAIT_POLICY=PASSIVE or GOMP_SPINCOUNT=0, a pure choice tested here): its
 * runs execute on the caller's team and make no threads of their own, and
 * ops give the same bytes on either kind of pool. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <dlfcn.h>
#include <stdatomic.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cpu/lf_cpu_impl.h"
#include "lf_backend.h"
#include "lf_error.h"
#include "lf_ops.h"
#include "lf_test_tensor.h"

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

/* Threads of this process, from /proc/self/task. */
static int s_tasks(void) {
    DIR *d = opendir("/proc/self/task");
    int n = 0;
    if (!d) return -1;
    for (struct dirent *e; (e = readdir(d));)
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n;
}

typedef struct {
    int (*num)(void);
    atomic_int hits[256];
    atomic_int bad_thread; /* a task whose thread index was not its OpenMP member number */
    atomic_int by[8];      /* tasks taken per thread index */
    cpu_set_t mask[8];
} s_omp_run_t;

static void s_omp_task(void *ctx, int64_t task, int thread) {
    s_omp_run_t *r = ctx;
    atomic_fetch_add(&r->hits[task], 1);
    if (thread < 0 || thread >= 8 || r->num() != thread) {
        atomic_fetch_add(&r->bad_thread, 1);
        return;
    }
    atomic_fetch_add(&r->by[thread], 1);
    sched_getaffinity(0, sizeof r->mask[thread], &r->mask[thread]);
    struct timespec ts = {0, 200000}; /* every member takes some */
    nanosleep(&ts, NULL);
}

/* A pool on OpenMP runs each task once on the caller's OpenMP team (thread
 * index = member number), makes no thread of its own (the team is made by
 * the first run), and pins the team as the threads pool is pinned. */
static void test_pool_omp(void **st) {
    (void)st;
    s_omp_run_t *r = calloc(1, sizeof *r);
    r->num = (int (*)(void))dlsym(RTLD_DEFAULT, "omp_get_thread_num");
    cpu_set_t all;
    int n = s_cores(&all);
    if (!dlsym(RTLD_DEFAULT, "GOMP_parallel") || !r->num || n < 2) {
        free(r);
        skip(); /* built without oneDNN, or one core */
    }
    if (n > 8) n = 8;
    int before = s_tasks();
    lf__cpu_pool_t *pool = lf__cpu_pool_new_kind(n, NULL, LF__CPU_POOL_OMP);
    assert_non_null(pool);
    assert_int_equal(lf__cpu_pool_kind(pool), LF__CPU_POOL_OMP);
    assert_int_equal(lf__cpu_pool_size(pool), n);
    assert_int_equal(s_tasks(), before); /* the threads pool would have made n - 1 */
    for (int round = 0; round < 3; round++) lf__cpu_pool_run(pool, 256, s_omp_task, r);
    for (int t = 0; t < 256; t++) assert_int_equal(atomic_load(&r->hits[t]), 3);
    assert_int_equal(atomic_load(&r->bad_thread), 0);
    for (int t = 0; t < n; t++) assert_true(atomic_load(&r->by[t]) > 0);
    lf__cpu_pool_run(pool, 1, s_omp_task, r); /* one task: on the caller */
    assert_int_equal(atomic_load(&r->hits[0]), 4);
    lf__cpu_pool_destroy(&pool);
    assert_null(pool);
    /* Pinned: member t >= 1 on cpus[t] only, the caller keeps its mask. */
    int cpus[8];
    assert_int_equal(lf__cpu_pin_plan(&all, n, cpus), 0);
    pool = lf__cpu_pool_new_kind(n, cpus, LF__CPU_POOL_OMP);
    assert_non_null(pool);
    int back[8] = {0};
    assert_true(lf__cpu_pool_pinned(pool, back));
    assert_memory_equal(back, cpus, sizeof(int) * (size_t)n);
    memset(r->by, 0, sizeof r->by);
    lf__cpu_pool_run(pool, 256, s_omp_task, r);
    for (int t = 1; t < n; t++) {
        assert_true(atomic_load(&r->by[t]) > 0);
        assert_int_equal(CPU_COUNT(&r->mask[t]), 1);
        assert_true(CPU_ISSET(cpus[t], &r->mask[t]));
    }
    assert_int_equal(CPU_COUNT(&r->mask[0]), CPU_COUNT(&all));
    lf__cpu_pool_destroy(&pool);
    /* The threads pool stays what it was: n - 1 helper threads. */
    int team = s_tasks();
    pool = lf__cpu_pool_new_kind(n, NULL, LF__CPU_POOL_THREADS);
    assert_int_equal(lf__cpu_pool_kind(pool), LF__CPU_POOL_THREADS);
    assert_int_equal(s_tasks(), team + n - 1);
    lf__cpu_pool_destroy(&pool);
    free(r);
}

/* A backend made with LF_CPU_POOL=kind (read when it is made). */
static lf_backend_t *s_backend_pool(const char *kind) {
    setenv("LF_CPU_POOL", kind, 1);
    lf_backend_t *be = lf_backend_cpu_new(2);
    unsetenv("LF_CPU_POOL");
    return be;
}

static bool s_same(const lf_tensor_t *a, const lf_tensor_t *b) {
    return memcmp(a->data, b->data, lf_tensor_nbytes(a)) == 0;
}

/* The same ops on a backend whose pool runs on OpenMP and on one with pool
 * threads of its own give the same bytes (tasks do not depend on which
 * thread runs them), in f32 and in bf16 compute: attention, group norm +
 * SiLU, layer norm, GEGLU and a convolution (oneDNN's team either way). */
static void test_pool_kinds_same_bytes(void **st) {
    (void)st;
    lf_backend_t *be[2] = {s_backend_pool("omp"), s_backend_pool("threads")};
    assert_non_null(be[0]);
    assert_non_null(be[1]);
    assert_non_null(strstr(lf_backend_describe(be[1]), "pool threads"));
    if (!dlsym(RTLD_DEFAULT, "GOMP_parallel")) fprintf(stderr, "no libgomp: both pools are threads\n");
    else assert_non_null(strstr(lf_backend_describe(be[0]), "pool OpenMP"));
    int64_t D = 40, Nq = 130, Nk = 77, H = 2, B = 2, C = 64, W = 16;
    lf_tensor_t q = lf_test_rand(LF_TYPE_F32, D, Nq, H, B, 2), k = lf_test_rand(LF_TYPE_F32, D, Nk, H, B, 2);
    lf_tensor_t v = lf_test_rand(LF_TYPE_F32, D, Nk, H, B, 1);
    lf_tensor_t x = lf_test_rand(LF_TYPE_F32, W, W, C, B, 3), g = lf_test_rand(LF_TYPE_F32, C, 1, 1, 1, 1);
    lf_tensor_t bt = lf_test_rand(LF_TYPE_F32, C, 1, 1, 1, 1), lg = lf_test_rand(LF_TYPE_F32, D, 1, 1, 1, 1);
    lf_tensor_t gx = lf_test_rand(LF_TYPE_F32, 2 * C, 200, 1, 1, 2);
    lf_tensor_t w = lf_test_rand(LF_TYPE_F32, 3, 3, C, C, 0.1);
    lf_tensor_t d[2][5];
    for (int prec = 0; prec < 2; prec++) {
        for (int i = 0; i < 2; i++) {
            lf_backend_set_precision(be[i], prec ? LF_PRECISION_BF16 : LF_PRECISION_F32);
            d[i][0] = lf_test_zeros(LF_TYPE_F32, D, Nq, H, B);
            d[i][1] = lf_test_zeros(LF_TYPE_F32, W, W, C, B);
            d[i][2] = lf_test_zeros(LF_TYPE_F32, D, Nq, H, B);
            d[i][3] = lf_test_zeros(LF_TYPE_F32, C, 200, 1, 1);
            d[i][4] = lf_test_zeros(LF_TYPE_F32, W, W, C, B);
            assert_int_equal(lf_op_attention(be[i], &d[i][0], &q, &k, &v, NULL, 0.158f), 0);
            assert_int_equal(lf_op_group_norm(be[i], &d[i][1], &x, &g, &bt, 32, 1e-5f, 1), 0);
            assert_int_equal(lf_op_layer_norm(be[i], &d[i][2], &q, &lg, &lg, 1e-5f), 0);
            assert_int_equal(lf_op_geglu(be[i], &d[i][3], &gx), 0);
            assert_int_equal(lf_op_conv2d(be[i], &d[i][4], &x, &w, NULL, 1, 1), 0);
        }
        for (int o = 0; o < 5; o++) {
            assert_true(s_same(&d[0][o], &d[1][o]));
            free(d[0][o].data), free(d[1][o].data);
        }
    }
    lf_tensor_t *all[] = {&q, &k, &v, &x, &g, &bt, &lg, &gx, &w};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) free(all[i]->data);
    lf_backend_destroy(&be[0]);
    lf_backend_destroy(&be[1]);
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

/* The pool's kind by default: oneDNN's OpenMP team unless libgomp's threads
 * sleep between regions (OMP_WAIT_POLICY=PASSIVE); LF_CPU_POOL wins. */
static void test_pool_default_kind(void **st) {
    (void)st;
    if (!dlsym(RTLD_DEFAULT, "GOMP_parallel")) skip(); /* built without oneDNN: always threads */
    const char *was = getenv("OMP_WAIT_POLICY"), *was_spin = getenv("GOMP_SPINCOUNT");
    char *saved = was ? strdup(was) : NULL, *saved_spin = was_spin ? strdup(was_spin) : NULL;
    const struct {
        const char *wait, *pool, *spin, *want;
    } cases[] = {{NULL, NULL, NULL, "pool OpenMP"},      {"ACTIVE", NULL, NULL, "pool OpenMP"},
                 {"passive", NULL, NULL, "pool threads"}, {"PASSIVE", "omp", NULL, "pool OpenMP"},
                 {NULL, "threads", NULL, "pool threads"}, {NULL, NULL, "10000", "pool OpenMP"},
                 {NULL, NULL, "0", "pool threads"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (cases[i].wait) setenv("OMP_WAIT_POLICY", cases[i].wait, 1);
        else unsetenv("OMP_WAIT_POLICY");
        if (cases[i].pool) setenv("LF_CPU_POOL", cases[i].pool, 1);
        if (cases[i].spin) setenv("GOMP_SPINCOUNT", cases[i].spin, 1);
        else unsetenv("GOMP_SPINCOUNT");
        lf_backend_t *be = lf_backend_cpu_new(2);
        unsetenv("LF_CPU_POOL");
        assert_non_null(be);
        assert_non_null(strstr(lf_backend_describe(be), cases[i].want));
        lf_backend_destroy(&be);
    }
    if (saved) setenv("OMP_WAIT_POLICY", saved, 1);
    else unsetenv("OMP_WAIT_POLICY");
    if (saved_spin) setenv("GOMP_SPINCOUNT", saved_spin, 1);
    else unsetenv("GOMP_SPINCOUNT");
    free(saved);
    free(saved_spin);
}

/* The choice itself (pure): LF_CPU_POOL wins; otherwise our own threads
 * only where libgomp's team sleeps as soon as a region ends (PASSIVE without
 * a spin count, or a spin count of 0), the team where it spins first (a
 * short GOMP_SPINCOUNT is what deploy/lightfarm gives a worker on cores of
 * its own). */
static void test_pool_default_kind_pure(void **st) {
    (void)st;
    const lf__cpu_pool_kind_t T = LF__CPU_POOL_THREADS, O = LF__CPU_POOL_OMP;
    const struct {
        const char *pool, *wait, *spin;
        lf__cpu_pool_kind_t want;
    } cases[] = {
        {NULL, NULL, NULL, O},          {"", NULL, NULL, O},           {NULL, "PASSIVE", NULL, T},
        {NULL, "passive", "", T},       {NULL, "ACTIVE", NULL, O},     {NULL, NULL, "10000", O},
        {NULL, NULL, "10k", O},         {NULL, NULL, "0", T},          {NULL, "PASSIVE", "10000", O},
        {NULL, "PASSIVE", "0", T},      {NULL, NULL, "infinite", O},   {NULL, "passive", "bogus", T},
        {NULL, NULL, "-5", O},          {"threads", NULL, "10000", T}, {"omp", "PASSIVE", NULL, O},
        {"threads", "ACTIVE", NULL, T},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        lf__cpu_pool_kind_t got = lf__cpu_pool_default_kind(cases[i].pool, cases[i].wait, cases[i].spin);
        if (got != cases[i].want)
            fail_msg("case %zu (LF_CPU_POOL %s, OMP_WAIT_POLICY %s, GOMP_SPINCOUNT %s): got %s", i,
                     cases[i].pool ? cases[i].pool : "-", cases[i].wait ? cases[i].wait : "-",
                     cases[i].spin ? cases[i].spin : "-", got == O ? "omp" : "threads");
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plan),
        cmocka_unit_test(test_pool_pinned),
        cmocka_unit_test(test_omp_pinned),
        cmocka_unit_test(test_pool_omp),
        cmocka_unit_test(test_pool_kinds_same_bytes),
        cmocka_unit_test(test_backend_describe),
        cmocka_unit_test(test_pool_default_kind),
        cmocka_unit_test(test_pool_default_kind_pure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
