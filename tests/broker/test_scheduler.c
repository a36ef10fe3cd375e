/* test_scheduler: lf_scheduler as a table — each row is a set of queued jobs,
 * idle workers and the expected assignment (job -> worker, or unassigned). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lf_error.h"
#include "lf_scheduler.h"

#define NOW 1000000
#define MAXN 8

static const char *const M1[] = {"m1"};
static const char *const M2[] = {"m2"};
static const char *const M12[] = {"m1", "m2"};

typedef struct {
    const char *name;
    lf_sched_job_t jobs[MAXN];
    size_t n_jobs;
    lf_sched_worker_t workers[MAXN];
    size_t n_workers;
    /* expected: worker id for each job, NULL = stays queued */
    const char *expect[MAXN];
} s_case_t;

#define J(id_, model_, prio_, age_ms, seq_) \
    {.id = id_, .model = model_, .pixels = 512 * 512, .priority = prio_, .created_ms = NOW - (age_ms), .seq = seq_}
#define JP(id_, model_, px) {.id = id_, .model = model_, .pixels = px, .priority = LF_PRIO_NORMAL, .created_ms = NOW, .seq = 1}
#define W(id_, models_, res_, maxpx) \
    {.id = id_, .models = models_, .n_models = sizeof models_ / sizeof *models_, .resident = res_, .max_pixels = maxpx}

static const char *const XL[] = {"xl", "xl-refiner", "m1"};
static const char *const XL_ONLY[] = {"xl"};
static const char *const VAES[] = {"fixed-vae"};
#define JR(id_, model_, refiner_, seq_) \
    {.id = id_, .model = model_, .refiner = refiner_, .pixels = 1024 * 1024, .priority = LF_PRIO_NORMAL, .created_ms = NOW, .seq = seq_}
#define WR(id_, models_, res_, refiner_) \
    {.id = id_, .models = models_, .n_models = sizeof models_ / sizeof *models_, .resident = res_, .refiner = refiner_}

static const s_case_t s_cases[] = {
    {"refiner affinity: base + refiner resident beats the base alone",
     {JR("a", "xl", "xl-refiner", 1)}, 1,
     {WR("w1", XL, "xl", NULL), WR("w2", XL, "xl", "xl-refiner")}, 2, {"w2"}},
    {"refiner affinity: order does not matter",
     {JR("a", "xl", "xl-refiner", 1)}, 1,
     {WR("w2", XL, "xl", "xl-refiner"), WR("w1", XL, "xl", NULL)}, 2, {"w2"}},
    {"refiner: the base resident still beats nothing resident",
     {JR("a", "xl", "xl-refiner", 1)}, 1,
     {WR("w0", XL, NULL, NULL), WR("w1", XL, "xl", NULL)}, 2, {"w1"}},
    {"refiner: a job without one takes any worker with the base",
     {JR("a", "xl", NULL, 1)}, 1,
     {WR("w1", XL, "xl", NULL), WR("w2", XL, "xl", "xl-refiner")}, 2, {"w1"}},
    {"vae: only a worker that has the job's VAE is capable",
     {{.id = "a", .model = "xl", .vae = "fixed-vae", .pixels = 1, .priority = LF_PRIO_NORMAL, .created_ms = NOW, .seq = 1}}, 1,
     {WR("w1", XL, "xl", NULL), {.id = "w2", .models = XL, .n_models = 3, .vaes = VAES, .n_vaes = 1}}, 2, {"w2"}},
    {"refiner: a worker that cannot run the refiner is not capable",
     {JR("a", "xl", "xl-refiner", 1)}, 1,
     {WR("w1", XL_ONLY, "xl", NULL)}, 1, {NULL}},
    {"one job one worker", {J("a", "m1", LF_PRIO_NORMAL, 0, 1)}, 1,
     {W("w1", M1, NULL, 0)}, 1, {"w1"}},
    {"priority: high before normal before low",
     {J("low", "m1", LF_PRIO_LOW, 0, 1), J("norm", "m1", LF_PRIO_NORMAL, 0, 2),
      J("high", "m1", LF_PRIO_HIGH, 0, 3)}, 3,
     {W("w1", M1, NULL, 0)}, 1, {NULL, NULL, "w1"}},
    {"FIFO within a level",
     {J("b", "m1", LF_PRIO_NORMAL, 0, 7), J("a", "m1", LF_PRIO_NORMAL, 0, 5),
      J("c", "m1", LF_PRIO_NORMAL, 0, 9)}, 3,
     {W("w1", M1, NULL, 0), W("w2", M1, NULL, 0)}, 2, {"w2", "w1", NULL}},
    {"affinity: the worker with the model resident gets it",
     {J("a", "m2", LF_PRIO_NORMAL, 0, 1)}, 1,
     {W("w1", M12, "m1", 0), W("w2", M12, "m2", 0)}, 2, {"w2"}},
    {"affinity beats FIFO across models",
     {J("a2", "m2", LF_PRIO_NORMAL, 0, 1), J("b1", "m1", LF_PRIO_NORMAL, 0, 2)}, 2,
     {W("w1", M12, "m1", 0)}, 1, {NULL, "w1"}},
    {"an empty worker takes a job no resident worker matches",
     {J("a", "m2", LF_PRIO_NORMAL, 0, 1), J("b", "m1", LF_PRIO_NORMAL, 0, 2)}, 2,
     {W("w1", M12, "m1", 0), W("w2", M12, NULL, 0)}, 2, {"w2", "w1"}},
    {"a worker whose model has work keeps it (no switch before the bound)",
     {J("a", "m2", LF_PRIO_HIGH, 1000, 1), J("b", "m1", LF_PRIO_LOW, 0, 2),
      J("c", "m1", LF_PRIO_LOW, 0, 3)}, 3,
     {W("w1", M12, "m1", 0)}, 1, {NULL, "w1", NULL}},
    {"a worker with no demand for its model switches",
     {J("a", "m2", LF_PRIO_NORMAL, 0, 1)}, 1,
     {W("w1", M12, "m1", 0)}, 1, {"w1"}},
    {"starvation bound: an old job takes a busy-model worker",
     {J("old", "m2", LF_PRIO_NORMAL, 31000, 1), J("b", "m1", LF_PRIO_NORMAL, 0, 2)}, 2,
     {W("w1", M12, "m1", 0)}, 1, {"w1", NULL}},
    {"starvation bound beats priority",
     {J("high", "m1", LF_PRIO_HIGH, 0, 5), J("oldlow", "m1", LF_PRIO_LOW, 40000, 1)}, 2,
     {W("w1", M1, NULL, 0)}, 1, {NULL, "w1"}},
    {"starved job prefers its resident worker",
     {J("old", "m2", LF_PRIO_NORMAL, 31000, 1)}, 1,
     {W("w1", M12, "m1", 0), W("w2", M12, "m2", 0)}, 2, {"w2"}},
    {"capability: model not listed",
     {J("a", "m2", LF_PRIO_NORMAL, 99000, 1)}, 1,
     {W("w1", M1, NULL, 0)}, 1, {NULL}},
    {"capability: max_pixels",
     {JP("big", "m1", 2048 * 2048), JP("small", "m1", 512 * 512)}, 2,
     {W("w1", M1, NULL, 1024 * 1024), W("w2", M1, NULL, 4096 * 4096)}, 2, {"w2", "w1"}},
    {"capability: max_pixels even when starved",
     {J("a", "m1", LF_PRIO_NORMAL, 99000, 1)}, 1,
     {W("w1", M1, "m1", 1000)}, 1, {NULL}},
    {"more workers than jobs",
     {J("a", "m1", LF_PRIO_NORMAL, 0, 1)}, 1,
     {W("w1", M2, NULL, 0), W("w2", M1, "m2", 0), W("w3", M1, "m1", 0)}, 3, {"w3"}},
};

static void test_table(void **state) {
    (void)state;
    lf_sched_cfg_t cfg = {.starve_ms = 30000};
    for (size_t t = 0; t < sizeof s_cases / sizeof *s_cases; t++) {
        const s_case_t *c = &s_cases[t];
        lf_sched_match_t out[MAXN];
        size_t n = 99;
        assert_int_equal(lf_scheduler_match(&cfg, c->jobs, c->n_jobs, c->workers, c->n_workers,
                                            NOW, out, &n), 0);
        const char *got[MAXN] = {0};
        bool wused[MAXN] = {0};
        for (size_t i = 0; i < n; i++) {
            assert_true(out[i].job < c->n_jobs);
            assert_true(out[i].worker < c->n_workers);
            assert_null(got[out[i].job]);      /* each job once */
            assert_false(wused[out[i].worker]); /* each worker once */
            wused[out[i].worker] = true;
            got[out[i].job] = c->workers[out[i].worker].id;
        }
        for (size_t j = 0; j < c->n_jobs; j++) {
            const char *e = c->expect[j], *g = got[j];
            if ((e == NULL) != (g == NULL) || (e && strcmp(e, g))) {
                fprintf(stderr, "case '%s': job %s -> %s, expected %s\n", c->name,
                        c->jobs[j].id, g ? g : "(queued)", e ? e : "(queued)");
                fail();
            }
        }
    }
}

/* LoRA affinity: among workers with the job's model resident, the one whose
 * merged LoRA set is the job's wins; with none, any of them (a LoRA switch)
 * before a worker that must load the model. */
static void test_lora_affinity(void **state) {
    (void)state;
    lf_sched_worker_t ws[3] = {
        {.id = "plain", .models = M1, .n_models = 1, .resident = "m1"},
        {.id = "ink", .models = M1, .n_models = 1, .resident = "m1", .lora_set = "ink:1:1"},
        {.id = "empty", .models = M1, .n_models = 1},
    };
    lf_sched_job_t j[3] = {
        {.id = "a", .model = "m1", .priority = LF_PRIO_NORMAL, .created_ms = NOW, .seq = 1, .lora_set = "ink:1:1"},
        {.id = "b", .model = "m1", .priority = LF_PRIO_NORMAL, .created_ms = NOW, .seq = 2},
        {.id = "c", .model = "m1", .priority = LF_PRIO_NORMAL, .created_ms = NOW, .seq = 3, .lora_set = "x:1:1"},
    };
    lf_sched_match_t out[3];
    size_t n = 0;
    /* Job b (plain) alone: the plain worker, though "ink" is first in no order. */
    assert_int_equal(lf_scheduler_match(NULL, &j[1], 1, ws, 3, NOW, out, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(ws[out[0].worker].id, "plain");
    /* Job a alone: the worker holding its set. */
    assert_int_equal(lf_scheduler_match(NULL, &j[0], 1, ws, 3, NOW, out, &n), 0);
    assert_string_equal(ws[out[0].worker].id, "ink");
    /* Job c (a set nobody holds): a worker with m1 resident (a LoRA switch),
     * not the empty one (a model load). */
    assert_int_equal(lf_scheduler_match(NULL, &j[2], 1, ws, 3, NOW, out, &n), 0);
    assert_int_equal(n, 1);
    assert_true(!strcmp(ws[out[0].worker].id, "plain") || !strcmp(ws[out[0].worker].id, "ink"));
    /* All three: a -> ink, b -> plain, c -> empty. */
    assert_int_equal(lf_scheduler_match(NULL, j, 3, ws, 3, NOW, out, &n), 0);
    assert_int_equal(n, 3);
    for (size_t i = 0; i < n; i++) {
        const char *want = out[i].job == 0 ? "ink" : out[i].job == 1 ? "plain" : "empty";
        assert_string_equal(ws[out[i].worker].id, want);
    }
}

/* The combined affinity score: with the model resident, the refiner (a
 * second model load) outweighs the LoRA set (a switch of a few layers), and
 * a worker with both beats either. */
static void test_affinity_score(void **state) {
    (void)state;
    lf_sched_worker_t ws[3] = {
        {.id = "lora", .models = XL, .n_models = 3, .resident = "xl", .lora_set = "ink:1:1"},
        {.id = "refiner", .models = XL, .n_models = 3, .resident = "xl", .refiner = "xl-refiner"},
        {.id = "both", .models = XL, .n_models = 3, .resident = "xl", .refiner = "xl-refiner",
         .lora_set = "ink:1:1"},
    };
    lf_sched_job_t j = {.id = "a", .model = "xl", .refiner = "xl-refiner", .pixels = 1024 * 1024,
                        .priority = LF_PRIO_NORMAL, .created_ms = NOW, .seq = 1,
                        .lora_set = "ink:1:1"};
    lf_sched_match_t out[1];
    size_t n = 0;
    assert_int_equal(lf_scheduler_match(NULL, &j, 1, ws, 3, NOW, out, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(ws[out[0].worker].id, "both");
    /* Without "both": the refiner beats the LoRA set. */
    assert_int_equal(lf_scheduler_match(NULL, &j, 1, ws, 2, NOW, out, &n), 0);
    assert_string_equal(ws[out[0].worker].id, "refiner");
    /* A job without a refiner: the LoRA set decides (either worker holding it). */
    j.refiner = NULL;
    assert_int_equal(lf_scheduler_match(NULL, &j, 1, ws, 2, NOW, out, &n), 0);
    assert_string_equal(ws[out[0].worker].id, "lora");
    /* A refiner job with no LoRAs: the refiner worker, not the one holding a set. */
    j.refiner = "xl-refiner", j.lora_set = NULL;
    assert_int_equal(lf_scheduler_match(NULL, &j, 1, ws, 3, NOW, out, &n), 0);
    assert_string_equal(ws[out[0].worker].id, "refiner");
}

static void test_edges(void **state) {
    (void)state;
    size_t n = 5;
    assert_int_equal(lf_scheduler_match(NULL, NULL, 0, NULL, 0, NOW, NULL, &n), 0);
    assert_int_equal(n, 0);
    lf_sched_job_t j = J("a", "m1", LF_PRIO_NORMAL, 0, 1);
    assert_int_equal(lf_scheduler_match(NULL, &j, 1, NULL, 3, NOW, NULL, &n), LF_EINVAL);
    assert_int_equal(lf_scheduler_match(NULL, &j, 1, NULL, 0, NOW, NULL, NULL), LF_EINVAL);
    lf_sched_job_t nomodel = {.id = "x"};
    lf_sched_worker_t w = W("w1", M1, NULL, 0);
    lf_sched_match_t out[1];
    assert_int_equal(lf_scheduler_match(NULL, &nomodel, 1, &w, 1, NOW, out, &n), 0);
    assert_int_equal(n, 0);
}

/* Many workers, many jobs: every job placed once, fast enough. */
static void test_scale(void **state) {
    (void)state;
    enum { NJ = 192, NW = 1000 };
    static const char *const models[] = {"m0", "m1", "m2", "m3"};
    lf_sched_job_t *jobs = calloc(NJ, sizeof *jobs);
    lf_sched_worker_t *ws = calloc(NW, sizeof *ws);
    lf_sched_match_t *out = calloc(NJ, sizeof *out);
    for (int i = 0; i < NJ; i++)
        jobs[i] = (lf_sched_job_t){.id = "j", .model = models[i % 4], .pixels = 1,
                                   .priority = i % 3, .created_ms = NOW, .seq = i};
    for (int i = 0; i < NW; i++)
        ws[i] = (lf_sched_worker_t){.id = "w", .models = models, .n_models = 4,
                                    .resident = i % 5 ? models[i % 4] : NULL};
    size_t n;
    assert_int_equal(lf_scheduler_match(NULL, jobs, NJ, ws, NW, NOW, out, &n), 0);
    assert_int_equal(n, NJ);
    for (size_t i = 0; i < n; i++) /* with so many workers, every job finds its model */
        assert_string_equal(ws[out[i].worker].resident ? ws[out[i].worker].resident : "-",
                            jobs[out[i].job].model);
    free(jobs), free(ws), free(out);
}

/* Which requirement no worker meets: the model, or the size for every
 * worker that has the model (busy workers count: they free up). */
static void test_unmet(void **state) {
    (void)state;
    const lf_sched_worker_t ws[] = {
        {.id = "w1", .models = M1, .n_models = 1, .resident = NULL, .max_pixels = 512 * 512},
        {.id = "w2", .models = M12, .n_models = 2, .resident = "m2", .max_pixels = 256 * 256},
    };
    uint64_t big = 0;
    lf_sched_job_t j = {.id = "j", .model = "m1", .pixels = 512 * 512, .priority = LF_PRIO_NORMAL, .created_ms = 0, .seq = 1};
    assert_int_equal(lf_scheduler_unmet(&j, ws, 2, &big), LF_SCHED_RUNNABLE);
    j.model = "m3";
    assert_int_equal(lf_scheduler_unmet(&j, ws, 2, &big), LF_SCHED_NO_MODEL);
    j.model = "m2", j.pixels = 512 * 512;
    assert_int_equal(lf_scheduler_unmet(&j, ws, 2, &big), LF_SCHED_TOO_LARGE);
    assert_int_equal(big, 256 * 256);
    j.model = "m1", j.pixels = 1024 * 1024;
    assert_int_equal(lf_scheduler_unmet(&j, ws, 2, &big), LF_SCHED_TOO_LARGE);
    assert_int_equal(big, 512 * 512);
    const lf_sched_worker_t unlimited = {.id = "w3", .models = M2, .n_models = 1, .resident = NULL, .max_pixels = 0};
    j.model = "m2";
    assert_int_equal(lf_scheduler_unmet(&j, &unlimited, 1, NULL), LF_SCHED_RUNNABLE);
    assert_int_equal(lf_scheduler_unmet(&j, NULL, 0, NULL), LF_SCHED_NO_MODEL);
}

/* The grace period: a job is due only after grace_ms unrunnable in a row;
 * turning runnable resets the clock; no worker at all is never "unable". */
static void test_unrunnable_grace(void **state) {
    (void)state;
    const lf_sched_worker_t w1 = {.id = "w1", .models = M1, .n_models = 1, .resident = NULL, .max_pixels = 512 * 512};
    const lf_sched_worker_t w12 = {.id = "w12", .models = M12, .n_models = 2, .resident = NULL, .max_pixels = 512 * 512};
    const lf_sched_job_t jobs[] = {
        {.id = "a", .model = "m1", .pixels = 64 * 64, .priority = LF_PRIO_NORMAL, .created_ms = 0, .seq = 1},     /* runnable on w1 */
        {.id = "b", .model = "m2", .pixels = 64 * 64, .priority = LF_PRIO_NORMAL, .created_ms = 0, .seq = 2},     /* needs m2 */
        {.id = "c", .model = "m1", .pixels = 1024 * 1024, .priority = LF_PRIO_HIGH, .created_ms = 0, .seq = 3},   /* too large for w1 */
    };
    int64_t since[3] = {0, 0, 0};
    lf_sched_unmet_t due[3];
    const int64_t g = 60000, t0 = 1000000;
    lf_scheduler_unrunnable(g, jobs, 3, &w1, 1, t0, since, due);
    assert_int_equal(since[0], 0);
    assert_int_equal(since[1], t0);
    assert_int_equal(since[2], t0);
    for (int i = 0; i < 3; i++) assert_int_equal(due[i], LF_SCHED_RUNNABLE);
    lf_scheduler_unrunnable(g, jobs, 3, &w1, 1, t0 + g - 1, since, due);
    for (int i = 0; i < 3; i++) assert_int_equal(due[i], LF_SCHED_RUNNABLE);
    /* A worker with m2 comes and goes: b's clock starts again. */
    lf_scheduler_unrunnable(g, jobs, 3, &w12, 1, t0 + g - 1, since, due);
    assert_int_equal(since[1], 0);
    assert_int_equal(since[2], t0);
    lf_scheduler_unrunnable(g, jobs, 3, &w1, 1, t0 + g, since, due);
    assert_int_equal(due[0], LF_SCHED_RUNNABLE);
    assert_int_equal(due[1], LF_SCHED_RUNNABLE);
    assert_int_equal(since[1], t0 + g);
    assert_int_equal(due[2], LF_SCHED_TOO_LARGE);
    lf_scheduler_unrunnable(g, jobs, 3, &w1, 1, t0 + 2 * g, since, due);
    assert_int_equal(due[1], LF_SCHED_NO_MODEL);
    /* No live worker at all: nothing is due, and the clocks stop. */
    lf_scheduler_unrunnable(g, jobs, 3, NULL, 0, t0 + 3 * g, since, due);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(due[i], LF_SCHED_RUNNABLE);
        assert_int_equal(since[i], 0);
    }
}

/* Batches: the head takes same-key, same-priority jobs in FIFO order up to
 * batch_max and max_pixels x batch_max; never a job another worker got. */
#define JB(id_, model_, key_, prio_, seq_, px) \
    {.id = id_, .model = model_, .batch_key = key_, .pixels = px, .priority = prio_, .created_ms = NOW, .seq = seq_}
static void s_batch(const lf_sched_job_t *jobs, size_t n, lf_sched_worker_t *ws, size_t nw, const char *expect) {
    lf_sched_match_t mt[MAXN];
    size_t nm = 0;
    uint32_t with[MAXN];
    assert_int_equal(lf_scheduler_match(NULL, jobs, n, ws, nw, NOW, mt, &nm), 0);
    assert_int_equal(lf_scheduler_batch(jobs, n, ws, nw, mt, nm, with), 0);
    /* expect: per job, the worker index of its batch as a digit, '-' for
     * alone (a head, or left queued). */
    char got[MAXN + 1] = "";
    for (size_t i = 0; i < n; i++)
        got[i] = with[i] == LF_SCHED_ALONE ? '-' : (char)('0' + mt[with[i]].worker);
    got[n] = '\0';
    assert_string_equal(got, expect);
}

static void test_batch(void **state) {
    (void)state;
    const uint64_t P = 512 * 512;
    lf_sched_job_t jobs[] = {JB("a", "m1", "K", LF_PRIO_NORMAL, 1, P), JB("b", "m1", "K", LF_PRIO_NORMAL, 2, 2 * P),
                             JB("c", "m1", "K2", LF_PRIO_NORMAL, 3, P), JB("d", "m1", "K", LF_PRIO_LOW, 4, P),
                             JB("e", "m1", "K", LF_PRIO_NORMAL, 5, P), JB("f", "m2", "K", LF_PRIO_NORMAL, 6, P),
                             JB("g", "m1", "K", LF_PRIO_NORMAL, 7, P)};
    lf_sched_worker_t w[2] = {W("w1", M1, "m1", 0), W("w2", M1, "m1", 0)};
    w[0].batch_max = 3;
    s_batch(jobs, 7, w, 1, "-0--0--"); /* b and e; c another key, d lower, f another model, g over 3 */
    w[0].batch_max = 4;
    w[0].max_pixels = P;
    s_batch(jobs, 7, w, 1, "----0-0"); /* b (2 images) is over the worker's max_pixels */
    w[0].max_pixels = 0;
    s_batch(jobs, 7, w, 1, "-0--0-0");
    w[0].batch_max = 1;
    s_batch(jobs, 7, w, 1, "-------");
    /* Two workers: a and b are heads; the rest split in FIFO order. */
    w[0].batch_max = w[1].batch_max = 2;
    s_batch(jobs, 7, w, 2, "----0-1");
    /* A head without a key runs alone. */
    jobs[0].batch_key = NULL;
    w[0].batch_max = 3;
    s_batch(jobs, 7, w, 1, "-------");
    uint32_t with[1];
    assert_int_equal(lf_scheduler_batch(NULL, 1, w, 1, NULL, 0, with), LF_EINVAL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_edges),
        cmocka_unit_test(test_lora_affinity),
        cmocka_unit_test(test_affinity_score),
        cmocka_unit_test(test_scale),
        cmocka_unit_test(test_unmet),
        cmocka_unit_test(test_unrunnable_grace),
        cmocka_unit_test(test_batch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
