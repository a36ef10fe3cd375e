/* Batched jobs through the whole farm (issue 18): one worker with
 * LF_BATCH_MAX=4 on the built-in model lf-tiny-shapes.
 *
 *   - 8 compatible jobs (the same size, steps, sampler, CFG; prompts and
 *     seeds differ) submitted together run in batches: the worker's count
 *     of batched jobs (/v1/workers "batched_jobs", /metrics) grows, and
 *     /v1/workers says batch_max 4;
 *   - each job's PNG is byte for byte the PNG of the same job run alone
 *     afterwards (one at a time, so never batched);
 *   - one job cancelled while it runs ends "cancelled", the others "done";
 *   - two jobs with a LoRA whose file is broken (the same LoRA set: they
 *     batch together) fail, each with the file's name, and nothing else does.
 *
 * Needs models/lf-tiny-shapes.safetensors and assets/clip (skips with 77). */
#include <setjmp.h>
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

#include "lf_testfarm.h"

#ifndef LF_SOURCE_DIR
#define LF_SOURCE_DIR "."
#endif
#define S_MODEL LF_SOURCE_DIR "/models/lf-tiny-shapes.safetensors"
#define S_ASSETS LF_SOURCE_DIR "/assets"
#define S_GOOD 8
#define S_SIZE 64
#define S_STEPS 8

static char s_dir[256];

static const char *const s_prompts[S_GOOD] = {
    "a red circle on a blue background",   "a green square on a white background",
    "a blue triangle on a yellow background", "a yellow star on a black background",
    "a cyan circle on a pink background",  "an orange square on a gray background",
    "a pink triangle on a green background", "a white star on a purple background",
};

/* POST /v1/jobs; the job id (caller frees). */
static char *s_submit(lf_testfarm_t *farm, const char *prompt, unsigned seed)
{
    char url[128];
    snprintf(url, sizeof url, "%s/v1/jobs", lf_testfarm_url(farm));
    json_t *b = json_pack("{s:s,s:I,s:i,s:i,s:i,s:f,s:s}", "prompt", prompt, "seed", (json_int_t)seed, "width",
                          S_SIZE, "height", S_SIZE, "steps", S_STEPS, "cfg_scale", 5.0, "sampler", "euler_a");
    char *body = json_dumps(b, JSON_COMPACT);
    json_t *j = NULL;
    int code = lf_http_json("POST", url, body, &j);
    if (code != 202) fail_msg("POST %s answered %d: %s", url, code, body);
    char *id = strdup(lf_json_str(j, "id"));
    json_decref(j), json_decref(b);
    free(body);
    return id;
}

static uint8_t *s_png(lf_testfarm_t *farm, const char *id, size_t *len)
{
    char url[256];
    snprintf(url, sizeof url, "%s/v1/images/%s-0.png", lf_testfarm_url(farm), id);
    char *png = NULL;
    int code = lf_http_request("GET", url, NULL, NULL, 0, &png, len);
    if (code != 200 || !png) fail_msg("GET %s answered %d", url, code);
    return (uint8_t *)png;
}

static json_t *s_worker(lf_testfarm_t *farm)
{
    char url[128];
    snprintf(url, sizeof url, "%s/v1/workers", lf_testfarm_url(farm));
    json_t *j = NULL;
    assert_int_equal(lf_http_json("GET", url, NULL, &j), 200);
    json_t *w = json_incref(json_array_get(json_object_get(j, "workers"), 0));
    json_decref(j);
    assert_non_null(w);
    return w;
}

static void test_batched_jobs(void **state)
{
    (void)state;
    char env_models[400], env_assets[400];
    snprintf(env_models, sizeof env_models, "LF_MODELS_DIR=%s/models", s_dir);
    snprintf(env_assets, sizeof env_assets, "LF_ASSETS_DIR=%s", S_ASSETS);
    lf_testfarm_opts_t o = {.n_workers = 1, .extra_env = {env_models, env_assets, "LF_BATCH_MAX=4", "LF_PREVIEW_EVERY=0"}};
    lf_testfarm_t *farm = lf_testfarm_new(&o);
    assert_non_null(farm);
    /* The worker first: jobs queued before it joins would all wait for it. */
    json_t *w = NULL;
    for (long long t0 = lf_now_ms(); lf_now_ms() - t0 < 120000; usleep(100000)) {
        char url[128];
        snprintf(url, sizeof url, "%s/v1/workers", lf_testfarm_url(farm));
        json_t *j = NULL;
        if (lf_http_json("GET", url, NULL, &j) == 200 && json_array_size(json_object_get(j, "workers"))) {
            json_decref(j);
            break;
        }
        json_decref(j);
    }
    w = s_worker(farm);
    assert_int_equal(json_integer_value(json_object_get(w, "batch_max")), 4);
    json_decref(w);

    char *ids[S_GOOD], *bad[2];
    for (int i = 0; i < S_GOOD; i++) ids[i] = s_submit(farm, s_prompts[i], 4000u + (unsigned)i);
    for (int i = 0; i < 2; i++) bad[i] = s_submit(farm, "a red circle <lora:bad:1>", 50u + (unsigned)i);
    /* The last good job (in the second batch) is cancelled once it runs. */
    const int victim = S_GOOD - 1;
    char url[256];
    snprintf(url, sizeof url, "%s/v1/jobs/%s", lf_testfarm_url(farm), ids[victim]);
    bool cancelled_running = false;
    for (long long t0 = lf_now_ms(); lf_now_ms() - t0 < 300000; usleep(50000)) {
        json_t *j = NULL;
        if (lf_http_json("GET", url, NULL, &j) != 200) fail_msg("GET %s failed", url);
        const char *st = lf_json_str(j, "status");
        bool running = !strcmp(st, "running"), over = strcmp(st, "queued") && !running;
        json_decref(j);
        if (over) break;
        if (running) {
            assert_int_equal(lf_http_request("DELETE", url, NULL, NULL, 0, NULL, NULL), 202);
            cancelled_running = true;
            break;
        }
    }
    assert_true(cancelled_running);

    uint8_t *png[S_GOOD] = {0};
    size_t len[S_GOOD] = {0};
    for (int i = 0; i < S_GOOD; i++) {
        json_t *j = lf_testfarm_wait(farm, ids[i], 600000);
        assert_non_null(j);
        const char *want = i == victim ? "cancelled" : "done";
        if (strcmp(lf_json_str(j, "status"), want)) {
            char *d = json_dumps(j, JSON_COMPACT);
            fail_msg("job %d (%s) ended %s, not %s: %s", i, ids[i], lf_json_str(j, "status"), want, d);
        }
        if (i != victim) png[i] = s_png(farm, ids[i], &len[i]);
        json_decref(j);
    }
    for (int i = 0; i < 2; i++) {
        json_t *j = lf_testfarm_wait(farm, bad[i], 600000);
        assert_non_null(j);
        char *d = json_dumps(j, JSON_COMPACT);
        fprintf(stderr, "broken LoRA job %d: %s\n", i, d);
        assert_string_equal(lf_json_str(j, "status"), "failed");
        assert_non_null(strstr(d, "bad.safetensors"));
        free(d);
        json_decref(j);
    }
    /* The worker's count reaches /v1/workers with its next heartbeat: polled
     * for a while (it never goes back down), then judged. */
    w = s_worker(farm);
    json_int_t batched = json_integer_value(json_object_get(w, "batched_jobs"));
    for (long long t0 = lf_now_ms(); batched < 2 && lf_now_ms() - t0 < 30000; usleep(200000)) {
        json_decref(w);
        w = s_worker(farm);
        batched = json_integer_value(json_object_get(w, "batched_jobs"));
    }
    fprintf(stderr, "worker %s: %lld jobs ran batched\n", lf_json_str(w, "id"), (long long)batched);
    assert_true(batched >= 2);
    json_decref(w);
    char murl[128], *metrics = NULL;
    snprintf(murl, sizeof murl, "%s/metrics", lf_testfarm_url(farm));
    assert_int_equal(lf_http_request("GET", murl, NULL, NULL, 0, &metrics, NULL), 200);
    assert_non_null(strstr(metrics, "lf_worker_batched_jobs_total{worker="));
    free(metrics);

    /* The same jobs alone, one at a time: the same bytes. */
    for (int i = 0; i < S_GOOD; i++) {
        if (i == victim) continue;
        char *id = s_submit(farm, s_prompts[i], 4000u + (unsigned)i);
        json_t *j = lf_testfarm_wait(farm, id, 600000);
        assert_non_null(j);
        assert_string_equal(lf_json_str(j, "status"), "done");
        size_t l = 0;
        uint8_t *p = s_png(farm, id, &l);
        fprintf(stderr, "job %d: batched %zu bytes, alone %zu bytes: %s\n", i, len[i], l,
                l == len[i] && !memcmp(p, png[i], l) ? "identical" : "DIFFERENT");
        assert_int_equal(l, len[i]);
        assert_memory_equal(p, png[i], l);
        free(p), free(id);
        json_decref(j);
    }
    for (int i = 0; i < S_GOOD; i++) free(png[i]), free(ids[i]);
    free(bad[0]), free(bad[1]);
    lf_testfarm_destroy(&farm);
}

int main(void)
{
    struct stat sb;
    if (stat(S_MODEL, &sb) || stat(S_ASSETS "/clip/bpe_simple_vocab_16e6.txt.gz", &sb)) {
        printf("SKIP: needs %s and %s/clip (tools/fetch_assets.sh)\n", S_MODEL, S_ASSETS);
        return 77;
    }
    /* <tmp>/models: the built-in model and Lora/bad.safetensors (cut short). */
    snprintf(s_dir, sizeof s_dir, "/tmp/lf_batch_farm_XXXXXX");
    if (!mkdtemp(s_dir)) return 1;
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "mkdir -p '%s/models/Lora' && ln -s \"$(realpath '%s')\" '%s/models/' && "
             "head -c 4000 '%s' > '%s/models/Lora/bad.safetensors'",
             s_dir, S_MODEL, s_dir, S_MODEL, s_dir);
    if (system(cmd)) return 1;
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_batched_jobs)};
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    lf_test_rmdir(s_dir);
    return rc;
}
