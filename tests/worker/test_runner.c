/* test_runner: the runner over fake backends — model list merging, the
 * resident model kept between jobs and switched only when needed, limits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lf_diagnostic.h"
#include "lf_error.h"
#include "lf_runner.h"

/* A fake backend with two models; counts loads and unloads through a
 * per-test context reached from the env's models_dir pointer (the only
 * channel a backend has to its settings). */
typedef struct {
    int loads, unloads, runs;
    int fail_load;
} s_fake_t;

typedef struct {
    s_fake_t *ctx;
    char model[32];
} s_fake_state_t;

static s_fake_t *s_ctx(const lf_runner_env_t *env) { return (s_fake_t *)(void *)env->models_dir; }

static int s_fake_list(const lf_runner_env_t *env, lf_model_info_t **out, size_t *n) {
    (void)env;
    lf_model_info_t *m = calloc(3, sizeof *m);
    m[0].name = strdup("alpha");
    m[0].kind = strdup("sd15");
    m[1].name = strdup("beta");
    m[1].kind = strdup("sdxl");
    m[2].name = strdup(LF_DIAGNOSTIC_MODEL); /* a duplicate: the first backend wins */
    m[2].kind = strdup("fake");
    *out = m;
    *n = 3;
    return 0;
}

static int s_fake_load(const lf_runner_env_t *env, const char *model, void **state, char *err, size_t errlen) {
    s_fake_t *c = s_ctx(env);
    if (c->fail_load) {
        if (err && errlen) snprintf(err, errlen, "/models/%s.safetensors: cannot read (fake)", model);
        return LF_EIO;
    }
    s_fake_state_t *s = calloc(1, sizeof *s);
    s->ctx = c;
    snprintf(s->model, sizeof s->model, "%s", model);
    c->loads++;
    *state = s;
    return 0;
}

static int s_fake_run(void *state, const lf_runner_job_t *job, lf_runner_output_t *out) {
    s_fake_state_t *s = state;
    s->ctx->runs++;
    out->images = calloc(1, sizeof *out->images);
    out->n_images = 1;
    out->images[0].seed = job->params->seed;
    out->info_json = strdup(s->model);
    return 0;
}

static void s_fake_unload(void **state) {
    s_fake_state_t *s = *state;
    if (s) s->ctx->unloads++;
    free(s);
    *state = NULL;
}

/* Drives "cuda:0" only. */
static int s_fake_device(const lf_runner_env_t *env, char *name, size_t n, uint64_t *mem) {
    if (!env->device || strcmp(env->device, "cuda:0")) return LF_EUNSUPPORTED;
    snprintf(name, n, "Fake GPU 9000");
    *mem = 80ull << 30;
    return 0;
}

static const lf_runner_backend_t s_fake = {
    .name = "fake",
    .list_models = s_fake_list,
    .load = s_fake_load,
    .run = s_fake_run,
    .unload = s_fake_unload,
    .device_info = s_fake_device,
};

static lf_runner_t *s_new(s_fake_t *ctx, uint64_t max_pixels) {
    lf_runner_env_t env = {.device = "cpu", .models_dir = (const char *)(void *)ctx,
                           .max_pixels = max_pixels};
    const lf_runner_backend_t *const list[] = {&lf_diagnostic_backend, &s_fake};
    lf_runner_t *r = lf_runner_new(&env, list, 2);
    assert_non_null(r);
    return r;
}

static int s_job(lf_runner_t *r, const char *model, uint32_t w, uint32_t h, char **info) {
    lf_job_params_t p = {.model = (char *)model, .width = w, .height = h, .seed = 9};
    lf_runner_job_t job = {.params = &p};
    lf_runner_output_t out = {0};
    char err[160];
    int rc = lf_runner_run(r, &job, &out, err, sizeof err);
    if (!rc && info) *info = strdup(out.info_json);
    lf_runner_output_clear(&out);
    return rc;
}

static void test_models_merged(void **st) {
    (void)st;
    s_fake_t ctx = {0};
    lf_runner_t *r = s_new(&ctx, 0);
    size_t n = 0;
    const lf_model_info_t *m = lf_runner_models(r, &n);
    assert_int_equal(n, 3);
    assert_string_equal(m[0].name, LF_DIAGNOSTIC_MODEL);
    assert_string_equal(m[0].kind, "diagnostic");
    assert_string_equal(lf_runner_model_kind(r, "beta"), "sdxl");
    assert_null(lf_runner_model_kind(r, "gamma"));
    assert_null(lf_runner_resident(r));
    lf_runner_destroy(&r);
    assert_null(r);
    lf_runner_destroy(&r); /* NULL is fine */
}

static void test_resident_switch(void **st) {
    (void)st;
    s_fake_t ctx = {0};
    lf_runner_t *r = s_new(&ctx, 0);
    char *info = NULL;
    assert_int_equal(s_job(r, "alpha", 8, 8, &info), 0);
    assert_string_equal(info, "alpha");
    free(info);
    assert_int_equal(s_job(r, "alpha", 8, 8, NULL), 0);
    assert_int_equal(ctx.loads, 1); /* kept resident between jobs */
    assert_string_equal(lf_runner_resident(r), "alpha");
    assert_int_equal(s_job(r, "beta", 8, 8, NULL), 0);
    assert_int_equal(ctx.loads, 2);
    assert_int_equal(ctx.unloads, 1);
    assert_string_equal(lf_runner_resident(r), "beta");
    assert_int_equal(s_job(r, LF_DIAGNOSTIC_MODEL, 8, 8, NULL), 0);
    assert_int_equal(ctx.unloads, 2);
    assert_string_equal(lf_runner_resident(r), LF_DIAGNOSTIC_MODEL);
    assert_int_equal(ctx.runs, 3);
    lf_runner_destroy(&r);
    assert_int_equal(ctx.unloads, 2);
}

static void test_errors(void **st) {
    (void)st;
    s_fake_t ctx = {0};
    lf_runner_t *r = s_new(&ctx, 64 * 64);
    assert_int_equal(s_job(r, "gamma", 8, 8, NULL), LF_ENOTFOUND);
    assert_int_equal(s_job(r, NULL, 8, 8, NULL), LF_EINVAL);
    assert_int_equal(s_job(r, "alpha", 0, 8, NULL), LF_EINVAL);
    assert_int_equal(s_job(r, "alpha", 65, 64, NULL), LF_ELIMIT);
    assert_int_equal(ctx.loads, 0); /* nothing loaded for a job that cannot run */
    assert_int_equal(s_job(r, "alpha", 64, 64, NULL), 0);
    ctx.fail_load = 1;
    assert_int_equal(s_job(r, "beta", 8, 8, NULL), LF_EIO);
    /* The job's error carries the backend's reason, naming the file. */
    lf_job_params_t p = {.model = "beta", .width = 8, .height = 8};
    lf_runner_job_t job = {.params = &p};
    lf_runner_output_t out = {0};
    char err[160];
    assert_int_equal(lf_runner_run(r, &job, &out, err, sizeof err), LF_EIO);
    assert_string_equal(err, "cannot load model 'beta': /models/beta.safetensors: cannot read (fake)");
    assert_null(lf_runner_resident(r)); /* the old one was unloaded first */
    lf_runner_destroy(&r);
    assert_int_equal(ctx.loads, ctx.unloads);
}

static void test_device_info(void **st) {
    (void)st;
    s_fake_t ctx = {0};
    const lf_runner_backend_t *const list[] = {&lf_diagnostic_backend, &s_fake};
    char name[64] = "untouched";
    uint64_t mem = 7;
    lf_runner_env_t env = {.device = "cuda:0", .models_dir = (const char *)(void *)&ctx};
    lf_runner_t *r = lf_runner_new(&env, list, 2);
    assert_int_equal(lf_runner_device_info(r, name, sizeof name, &mem), 0);
    assert_string_equal(name, "Fake GPU 9000");
    assert_int_equal(mem, 80ull << 30);
    lf_runner_destroy(&r);
    env.device = "cuda:1"; /* nobody drives it; the diagnostic backend is CPU only */
    r = lf_runner_new(&env, list, 2);
    strcpy(name, "untouched");
    assert_int_equal(lf_runner_device_info(r, name, sizeof name, &mem), LF_EUNSUPPORTED);
    assert_non_null(strstr(name, "cuda:1")); /* the reason, naming the device */
    lf_runner_destroy(&r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_models_merged),
        cmocka_unit_test(test_resident_switch),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_device_info),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
