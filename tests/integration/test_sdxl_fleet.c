/* SDXL in a farm of several workers (HTTP -> gateway -> broker -> workers),
 * each worker with its own models folder and limits (the test process sets
 * LF_MODELS_DIR / LF_MAX_PIXELS / LF_MODEL_MEMORY_MB before starting each;
 * lf_testfarm passes the inherited environment on):
 *   worker "xl"    models/xl: the tiny SDXL base (tests/engine/fixtures/sdxl,
 *                  widened to CLIP's vocabulary, lf-tiny-shapes' 8x VAE),
 *                  LF_MAX_PIXELS = 1024*1024;
 *   worker "sd"    models/sd: the built-in SD1.5-architecture
 *                  lf-tiny-shapes as "sd-tiny";
 *   worker "small" models/small: the same SDXL base, but LF_MODEL_MEMORY_MB
 *                  below its size.
 * Checked:
 *   - scheduling: SDXL and SD1.5 jobs submitted together each run on the
 *     worker that has the model (GET /v1/jobs/{id} "worker" against the
 *     workers' model lists in GET /v1/workers);
 *   - max_pixels: an SDXL request over the SDXL worker's limit (size, or size
 *     x batch) is a 400 JSON error naming width / batch_size, on the native
 *     and the A1111 API; nothing is queued (GET /v1/jobs and /v1/history
 *     totals unchanged), the worker is untouched (alive, same jobs_done, then
 *     runs the next SDXL job);
 *   - memory: the worker whose LF_MODEL_MEMORY_MB cannot hold the SDXL model
 *     does not offer it (GET /v1/workers), so no SDXL job is ever sent there;
 *     with the SDXL worker gone, an SDXL request is a 400 naming the model
 *     field and LF_MODEL_MEMORY_MB, not a queued job or a crashed worker.
 *
 * Needs models/lf-tiny-shapes.safetensors and the CLIP BPE merges (reference
 * data); exits 77 (ctest: skipped) with the reason without them. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "lf_test_models.h"
#include "lf_testfarm.h"

#define S_XL 0    /* worker indices */
#define S_SD 1
#define S_SMALL 2

static lf_testfarm_folder_t s_f; /* assets/, and the workers' model folders */
static const char *s_dir = s_f.dir;
static long long s_xl_bytes;

/* xl/ (an SDXL model), sd/ (the built-in model), small/ (the SDXL model again,
 * for a worker too small for it); a reason in why when something is absent. */
static bool s_prepare(char *why, size_t len)
{
    char p[3000];
    const char *shapes = s_f.shapes;
    if (!lf_testfarm_folder_new(&s_f, LF_SOURCE_DIR, "sdxl-fleet", why, len)) return false;
    if (lf_testfarm_sh("mkdir -p '%s/xl' '%s/sd' '%s/small' && ln -s '%s' '%s/sd/sd-tiny.safetensors'", s_dir, s_dir,
                       s_dir, shapes, s_dir) != 0)
        return snprintf(why, len, "cannot prepare %s", s_dir), false;
    snprintf(p, sizeof p, "%s/xl/xl-base.safetensors", s_dir);
    if (lf_test_write_clip_sdxl(LF_FIXTURE_DIR, "base", shapes, p) != 0) return snprintf(why, len, "cannot write %.1200s", p), false;
    struct stat sb;
    if (stat(p, &sb) != 0 || sb.st_size < (2 << 20)) return snprintf(why, len, "%.1200s: under 2 MiB", p), false;
    s_xl_bytes = sb.st_size;
    char q[3100];
    snprintf(q, sizeof q, "ln -s '%s' '%s/small/xl-base.safetensors'", p, s_dir);
    if (system(q) != 0) return snprintf(why, len, "cannot link %.1200s", p), false;
    return true;
}

static void s_cleanup(void) { lf_testfarm_folder_remove(&s_f); }

/* GET /v1/workers (caller owns), or NULL. */
static json_t *s_workers(lf_testfarm_t *farm)
{
    char url[128];
    snprintf(url, sizeof url, "%s/v1/workers", lf_testfarm_url(farm));
    json_t *j = NULL;
    if (lf_http_json("GET", url, NULL, &j) != 200) {
        json_decref(j);
        return NULL;
    }
    return j;
}

static bool s_offers(json_t *w, const char *model)
{
    size_t i;
    json_t *m;
    json_array_foreach(json_object_get(w, "models"), i, m) if (!strcmp(lf_json_str(m, "name"), model)) return true;
    return false;
}

/* The id of the live worker offering model (and not other), into out. */
static bool s_worker_with(lf_testfarm_t *farm, const char *model, const char *not_model, char *out, size_t len)
{
    json_t *j = s_workers(farm);
    size_t i;
    json_t *w;
    bool found = false;
    json_array_foreach(json_object_get(j, "workers"), i, w) {
        if (s_offers(w, model) && !(not_model && s_offers(w, not_model))) {
            snprintf(out, len, "%s", lf_json_str(w, "id"));
            found = true;
        }
    }
    json_decref(j);
    return found;
}

static int s_setup(void **state)
{
    lf_testfarm_opts_t o = {.n_workers = 0, .extra_env = {s_f.env_assets, "LF_PREVIEW_EVERY=0"}};
    lf_testfarm_t *farm = lf_testfarm_new(&o);
    if (!farm) return -1;
    /* Each worker's own folder and limits, through the environment it inherits. */
    char models[200], mb[32];
    static const char *const sub[] = {"xl", "sd", "small"};
    for (int i = 0; i < 3; i++) {
        snprintf(models, sizeof models, "%s/%s", s_dir, sub[i]);
        setenv("LF_MODELS_DIR", models, 1);
        if (i == S_XL) setenv("LF_MAX_PIXELS", "1048576", 1);
        else unsetenv("LF_MAX_PIXELS");
        snprintf(mb, sizeof mb, "%lld", s_xl_bytes / (1 << 20) / 2);
        if (i == S_SMALL) setenv("LF_MODEL_MEMORY_MB", mb, 1);
        else unsetenv("LF_MODEL_MEMORY_MB");
        if (lf_testfarm_start(farm, LF_TF_WORKER, i) != 0) return lf_testfarm_destroy(&farm), -1;
    }
    unsetenv("LF_MODELS_DIR"), unsetenv("LF_MAX_PIXELS"), unsetenv("LF_MODEL_MEMORY_MB");
    /* Until all three have registered with their models. */
    long long t0 = lf_now_ms();
    bool up = false;
    while (!up && lf_now_ms() - t0 < 30000) {
        json_t *j = s_workers(farm);
        up = j && json_array_size(json_object_get(j, "workers")) == 3;
        json_decref(j);
        char id[128];
        up = up && s_worker_with(farm, "xl-base", NULL, id, sizeof id) && s_worker_with(farm, "sd-tiny", NULL, id, sizeof id);
        if (!up) usleep(100 * 1000);
    }
    if (!up) {
        fprintf(stderr, "workers did not come up\n");
        lf_testfarm_destroy(&farm);
        return -1;
    }
    fprintf(stderr, "farm with 3 workers up in %lld ms\n", lf_now_ms() - t0);
    *state = farm;
    return 0;
}

static char *s_submit(lf_testfarm_t *farm, const char *model, int size)
{
    char url[256], body[512];
    snprintf(url, sizeof url, "%s/v1/jobs", lf_testfarm_url(farm));
    snprintf(body, sizeof body,
             "{\"model\":\"%s\",\"prompt\":\"a red circle\",\"steps\":2,\"cfg_scale\":5,\"seed\":3,"
             "\"width\":%d,\"height\":%d}",
             model, size, size);
    json_t *j = NULL;
    int code = lf_http_json("POST", url, body, &j);
    char *id = code == 202 ? strdup(lf_json_str(j, "id")) : NULL;
    if (code != 202) fprintf(stderr, "POST %s: %d\n", body, code);
    json_decref(j);
    return id;
}

/* The memory-limited worker offers no SDXL model. */
static void test_memory_limited_worker_does_not_offer_sdxl(void **state)
{
    lf_testfarm_t *farm = *state;
    json_t *j = s_workers(farm);
    assert_non_null(j);
    size_t i;
    json_t *w;
    int with_xl = 0, n = 0;
    json_array_foreach(json_object_get(j, "workers"), i, w) {
        n++;
        with_xl += s_offers(w, "xl-base");
        char *d = json_dumps(json_object_get(w, "models"), JSON_COMPACT);
        fprintf(stderr, "worker %s models %s\n", lf_json_str(w, "id"), d);
        free(d);
    }
    json_decref(j);
    assert_int_equal(n, 3);
    /* xl-base is in two folders; only the worker without a memory limit offers it. */
    assert_int_equal(with_xl, 1);
}

/* SDXL and SD1.5 jobs submitted together land on the worker that has each. */
static void test_sdxl_and_sd15_jobs_routed(void **state)
{
    lf_testfarm_t *farm = *state;
    char xl[128], sd[128];
    assert_true(s_worker_with(farm, "xl-base", "sd-tiny", xl, sizeof xl));
    assert_true(s_worker_with(farm, "sd-tiny", "xl-base", sd, sizeof sd));
    assert_string_not_equal(xl, sd);
    enum { N = 6 };
    char *ids[N];
    for (int i = 0; i < N; i++) {
        ids[i] = s_submit(farm, i % 2 ? "sd-tiny" : "xl-base", i % 2 ? 128 : 256);
        assert_non_null(ids[i]);
    }
    for (int i = 0; i < N; i++) {
        json_t *j = lf_testfarm_wait(farm, ids[i], 300000);
        assert_non_null(j);
        const char *want = i % 2 ? sd : xl;
        fprintf(stderr, "%s job %s: %s on %s (want %s)\n", i % 2 ? "sd-tiny" : "xl-base", ids[i], lf_json_str(j, "status"),
                lf_json_str(j, "worker"), want);
        assert_string_equal(lf_json_str(j, "status"), "done");
        assert_string_equal(lf_json_str(j, "worker"), want);
        json_decref(j);
        free(ids[i]);
    }
}

static long long s_total(lf_testfarm_t *farm, const char *path)
{
    char url[256];
    snprintf(url, sizeof url, "%s%s", lf_testfarm_url(farm), path);
    json_t *j = NULL;
    long long t = lf_http_json("GET", url, NULL, &j) == 200 ? json_integer_value(json_object_get(j, "total")) : -1;
    json_decref(j);
    return t;
}

static long long s_jobs_done(lf_testfarm_t *farm, const char *id)
{
    json_t *j = s_workers(farm);
    size_t i;
    json_t *w;
    long long n = -1;
    json_array_foreach(json_object_get(j, "workers"), i, w) if (!strcmp(lf_json_str(w, "id"), id)) n =
        json_integer_value(json_object_get(w, "jobs_done"));
    json_decref(j);
    return n;
}

/* A POST that must be refused: 400, a JSON error naming field. */
static void s_refused(lf_testfarm_t *farm, const char *path, const char *body, const char *field)
{
    char url[256], *resp = NULL;
    snprintf(url, sizeof url, "%s%s", lf_testfarm_url(farm), path);
    int code = lf_http_request("POST", url, "application/json", body, strlen(body), &resp, NULL);
    fprintf(stderr, "POST %s %s: %d %s\n", path, body, code, resp ? resp : "");
    assert_int_equal(code, 400);
    json_t *j = resp ? json_loads(resp, 0, NULL) : NULL;
    assert_non_null(j);
    json_t *err = json_object_get(j, "error");
    if (!err) err = j;
    char *d = json_dumps(err, JSON_COMPACT);
    assert_non_null(strstr(d, field));
    free(d);
    json_decref(j);
    free(resp);
}

static void test_sdxl_over_max_pixels_refused(void **state)
{
    lf_testfarm_t *farm = *state;
    char xl[128];
    assert_true(s_worker_with(farm, "xl-base", "sd-tiny", xl, sizeof xl));
    long long q0 = s_total(farm, "/v1/jobs"), h0 = s_total(farm, "/v1/history"), d0 = s_jobs_done(farm, xl);
    assert_true(q0 >= 0 && h0 >= 0 && d0 >= 0);
    /* 1280x1024 > 1024*1024 on the only worker serving xl-base. */
    s_refused(farm, "/v1/jobs", "{\"model\":\"xl-base\",\"prompt\":\"x\",\"steps\":2,\"width\":1280,\"height\":1024}",
              "\"width\"");
    s_refused(farm, "/v1/jobs",
              "{\"model\":\"xl-base\",\"prompt\":\"x\",\"steps\":2,\"width\":1024,\"height\":1024,\"batch_size\":2}",
              "\"batch_size\"");
    s_refused(farm, "/sdapi/v1/txt2img",
              "{\"prompt\":\"x\",\"steps\":2,\"width\":1536,\"height\":1536,"
              "\"override_settings\":{\"sd_model_checkpoint\":\"xl-base\"}}",
              "width");
    /* Nothing queued or run; the worker is untouched and runs the next job. */
    assert_int_equal(s_total(farm, "/v1/jobs"), q0);
    assert_int_equal(s_total(farm, "/v1/history"), h0);
    assert_true(lf_testfarm_alive(farm, LF_TF_WORKER, S_XL));
    assert_int_equal(s_jobs_done(farm, xl), d0);
    char *id = s_submit(farm, "xl-base", 512);
    assert_non_null(id);
    json_t *j = lf_testfarm_wait(farm, id, 300000);
    assert_non_null(j);
    assert_string_equal(lf_json_str(j, "status"), "done");
    assert_string_equal(lf_json_str(j, "worker"), xl);
    json_decref(j);
    free(id);
}

/* Without the SDXL worker, the only other holder of xl-base may not hold it:
 * the user gets a 400 naming the model field and the memory limit. Last:
 * it stops the SDXL worker. */
static void test_sdxl_no_worker_with_memory_refused(void **state)
{
    lf_testfarm_t *farm = *state;
    assert_int_equal(lf_testfarm_kill(farm, LF_TF_WORKER, S_XL, SIGTERM), 0);
    char id[128];
    long long t0 = lf_now_ms();
    while (s_worker_with(farm, "xl-base", NULL, id, sizeof id) && lf_now_ms() - t0 < 60000) usleep(200 * 1000);
    fprintf(stderr, "SDXL worker gone from /v1/workers after %lld ms\n", lf_now_ms() - t0);
    assert_false(s_worker_with(farm, "xl-base", NULL, id, sizeof id));
    long long q0 = s_total(farm, "/v1/jobs");
    s_refused(farm, "/v1/jobs", "{\"model\":\"xl-base\",\"prompt\":\"x\",\"steps\":2}", "LF_MODEL_MEMORY_MB");
    s_refused(farm, "/v1/jobs", "{\"model\":\"xl-base\",\"prompt\":\"x\",\"steps\":2}", "\"model\"");
    s_refused(farm, "/sdapi/v1/txt2img", "{\"prompt\":\"x\",\"steps\":2,\"override_settings\":{\"sd_model_checkpoint\":\"xl-base\"}}",
              "sd_model_checkpoint");
    assert_int_equal(s_total(farm, "/v1/jobs"), q0);
    assert_true(lf_testfarm_alive(farm, LF_TF_WORKER, S_SMALL));
    assert_true(lf_testfarm_alive(farm, LF_TF_WORKER, S_SD));
}

int main(int argc, char **argv)
{
    char why[1400];
    if (!s_prepare(why, sizeof why)) {
        printf("SKIP: %s\n", why);
        s_cleanup();
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_memory_limited_worker_does_not_offer_sdxl),
        cmocka_unit_test(test_sdxl_and_sd15_jobs_routed),
        cmocka_unit_test(test_sdxl_over_max_pixels_refused),
        cmocka_unit_test(test_sdxl_no_worker_with_memory_refused),
    };
    if (argc > 1) cmocka_set_test_filter(argv[1]);
    int rc = cmocka_run_group_tests(tests, s_setup, lf_testfarm_teardown);
    s_cleanup();
    return rc;
}
