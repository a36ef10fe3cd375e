/* Batched jobs through the lf_engine facade (lf_engine_request_t.rows) on
 * the built-in model (models/lf-tiny-shapes.safetensors): every job's
 * images in a batch are byte-identical to the images the job makes alone
 * (prompts, negative prompts, seeds and per-job batch sizes differ; the
 * UNet sees batches of 2, 4 and 8 rows, so this also checks that the
 * kernels' results per row do not depend on the batch size), in any order
 * of the rows, and each job's previews are its own image's, as alone; what
 * cannot run batched is refused with LF_EUNSUPPORTED.
 * Skips without the model or the CLIP merges file (assets/).
 *
 * With the argument "cuda" (ctest test_engine_pipeline_batch_cuda, label
 * gpu, LF_CUDA_PER_IMAGE=1 as a batching worker sets it; exit 77 without a
 * device) the same runs on the CUDA backend, in f32; "cuda auto" in the
 * precision auto (bf16 tensor cores from sm_80: products, convolutions and
 * the fused attention), where the bytes must agree too. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "lf_engine.h"
#include "lf_error.h"

#define S_MODEL LF_SOURCE_DIR "/models/lf-tiny-shapes.safetensors"
#define S_ASSETS LF_SOURCE_DIR "/assets"

static const char *s_device, *s_precision; /* NULL: the CPU, f32 */

static lf_engine_t *s_engine(void)
{
    if (access(S_MODEL, R_OK) || access(S_ASSETS "/clip/bpe_simple_vocab_16e6.txt.gz", R_OK)) {
        printf("  skipped: the built-in model or assets/ (tools/fetch_assets.sh) is absent\n");
        return NULL;
    }
    char err[256] = "";
    lf_engine_opts_t o = {.assets_dir = S_ASSETS, .n_threads = 2, .device = s_device, .precision = s_precision};
    lf_engine_t *e = NULL;
    if (lf_engine_new(&o, &e, err, sizeof err)) fail_msg("%s", err);
    if (lf_engine_load(e, S_MODEL, NULL)) fail_msg("%s", lf_engine_errstr(e));
    return e;
}

static const lf_engine_row_t s_rows[3] = {
    {.prompt = "a red circle", .negative = "blue", .seed = 11, .batch = 1},
    {.prompt = "a green square on a white background", .negative = "", .seed = 42, .batch = 2},
    {.prompt = "a blue (triangle:1.3)", .negative = "noise, blur", .seed = 5, .batch = 1},
};

static lf_engine_request_t s_request(const char *sampler, const char *scheduler)
{
    lf_engine_request_t req = lf_engine_request_defaults();
    req.width = req.height = 128;
    req.steps = 3;
    req.cfg = 5;
    req.sampler = sampler;
    req.scheduler = scheduler;
    return req;
}

/* rows[order[k]] batched; each image equal to that row's own run. */
static void s_check_batch(lf_engine_t *e, const lf_engine_request_t *base, const int *order, size_t n,
                          const lf_engine_result_t *alone)
{
    lf_engine_row_t rows[3];
    for (size_t k = 0; k < n; k++) rows[k] = s_rows[order[k]];
    lf_engine_request_t req = *base;
    req.rows = rows, req.n_rows = n;
    lf_engine_result_t res = {0};
    if (lf_engine_generate(e, &req, NULL, NULL, NULL, &res)) fail_msg("%s", lf_engine_errstr(e));
    size_t at = 0;
    for (size_t k = 0; k < n; k++) {
        const lf_engine_result_t *a = &alone[order[k]];
        for (size_t i = 0; i < a->n_images; i++, at++) {
            assert_true(at < res.n_images);
            assert_int_equal(res.images[at].seed, a->images[i].seed);
            assert_string_equal(res.images[at].infotext, a->images[i].infotext);
            assert_int_equal(res.images[at].png_len, a->images[i].png_len);
            assert_memory_equal(res.images[at].png, a->images[i].png, a->images[i].png_len);
        }
    }
    assert_int_equal(res.n_images, at);
    lf_engine_result_clear(&res);
}

static void s_same_bytes(const char *sampler, const char *scheduler, int orders)
{
    lf_engine_t *e = s_engine();
    if (!e) skip();
    lf_engine_request_t base = s_request(sampler, scheduler);
    lf_engine_result_t alone[3] = {{0}};
    for (int j = 0; j < 3; j++) {
        lf_engine_request_t req = base;
        req.prompt = s_rows[j].prompt, req.negative = s_rows[j].negative;
        req.seed = s_rows[j].seed, req.batch = s_rows[j].batch;
        if (lf_engine_generate(e, &req, NULL, NULL, NULL, &alone[j])) fail_msg("%s", lf_engine_errstr(e));
        assert_int_equal(alone[j].n_images, (size_t)s_rows[j].batch);
        /* On CUDA, auto is 16-bit (the builds' GPUs are sm_80+: bf16); the reference is f32. */
        assert_non_null(alone[j].precision);
        if (s_precision) assert_string_not_equal(alone[j].precision, "f32");
        else assert_string_equal(alone[j].precision, "f32");
    }
    /* The images differ between jobs (the comparison below means something). */
    assert_true(alone[0].images[0].png_len != alone[2].images[0].png_len ||
                memcmp(alone[0].images[0].png, alone[2].images[0].png, alone[0].images[0].png_len));
    static const int all[3] = {0, 1, 2}, swapped[3] = {2, 0, 1}, pair[2] = {2, 0};
    s_check_batch(e, &base, all, 3, alone);
    if (orders > 1) {
        s_check_batch(e, &base, swapped, 3, alone);
        s_check_batch(e, &base, pair, 2, alone);
    }
    for (int j = 0; j < 3; j++) lf_engine_result_clear(&alone[j]);
    lf_engine_destroy(&e);
}

static void test_same_bytes_euler_a(void **state)
{
    (void)state;
    s_same_bytes("euler_ancestral", "normal", 3);
}

static void test_same_bytes_dpmpp_2m_karras(void **state)
{
    (void)state;
    s_same_bytes("dpmpp_2m", "karras", 1);
}

/* A job's previews, one PNG per step (steps without one: none). */
typedef struct {
    uint8_t *png[8];
    size_t len[8];
    int calls;
} s_previews_t;

static void s_keep_preview(void *ud, int step, int steps, const uint8_t *preview, size_t len)
{
    s_previews_t *p = ud;
    (void)steps;
    p->calls++;
    if (step < 1 || step > 8 || !preview || !len) return;
    free(p->png[step - 1]);
    p->png[step - 1] = malloc(len);
    assert_non_null(p->png[step - 1]);
    memcpy(p->png[step - 1], preview, len);
    p->len[step - 1] = len;
}

static void s_previews_clear(s_previews_t *p)
{
    for (int i = 0; i < 8; i++) free(p->png[i]);
    memset(p, 0, sizeof *p);
}

/* Batched jobs each get previews of their own image (their row's first),
 * the same bytes as the job alone previews at that step; before, every
 * job of a batch got the batch's first image. */
static void test_row_previews(void **state)
{
    (void)state;
    lf_engine_t *e = s_engine();
    if (!e) skip();
    lf_engine_request_t base = s_request("euler", "normal");
    base.steps = 4;
    base.preview_every = 1; /* steps 1..3 (none with the last) */
    s_previews_t alone[3], batched[3], whole;
    memset(alone, 0, sizeof alone), memset(batched, 0, sizeof batched), memset(&whole, 0, sizeof whole);
    for (int j = 0; j < 3; j++) {
        lf_engine_request_t req = base;
        req.prompt = s_rows[j].prompt, req.negative = s_rows[j].negative;
        req.seed = s_rows[j].seed, req.batch = s_rows[j].batch;
        lf_engine_result_t res = {0};
        if (lf_engine_generate(e, &req, s_keep_preview, &alone[j], NULL, &res)) fail_msg("%s", lf_engine_errstr(e));
        lf_engine_result_clear(&res);
    }
    /* Rows 2, 0, 1: the first row's image is not image 0 of every row. */
    static const int order[3] = {2, 0, 1};
    lf_engine_row_t rows[3];
    for (int k = 0; k < 3; k++) {
        rows[k] = s_rows[order[k]];
        rows[k].progress = s_keep_preview, rows[k].progress_ud = &batched[order[k]];
    }
    lf_engine_request_t req = base;
    req.rows = rows, req.n_rows = 3;
    lf_engine_result_t res = {0};
    if (lf_engine_generate(e, &req, s_keep_preview, &whole, NULL, &res)) fail_msg("%s", lf_engine_errstr(e));
    lf_engine_result_clear(&res);
    for (int j = 0; j < 3; j++) {
        assert_int_equal(batched[j].calls, base.steps); /* each step, as the generate-level callback */
        for (int st = 0; st < base.steps - 1; st++) {
            assert_non_null(alone[j].png[st]);
            assert_non_null(batched[j].png[st]);
            assert_int_equal(batched[j].len[st], alone[j].len[st]);
            assert_memory_equal(batched[j].png[st], alone[j].png[st], alone[j].len[st]);
        }
        assert_null(batched[j].png[base.steps - 1]);
    }
    /* The jobs' previews differ (the check above means something), and the
     * generate-level one is still the batch's first image (row 2's). */
    assert_true(batched[0].len[1] != batched[2].len[1] ||
                memcmp(batched[0].png[1], batched[2].png[1], batched[0].len[1]));
    assert_int_equal(whole.len[1], alone[2].len[1]);
    assert_memory_equal(whole.png[1], alone[2].png[1], alone[2].len[1]);
    for (int j = 0; j < 3; j++) s_previews_clear(&alone[j]), s_previews_clear(&batched[j]);
    s_previews_clear(&whole);
    lf_engine_destroy(&e);
}

/* What cannot run batched is refused (the worker then runs the jobs one by one). */
static void test_refused(void **state)
{
    (void)state;
    lf_engine_t *e = s_engine();
    if (!e) skip();
    lf_engine_request_t req = s_request("euler", "normal");
    lf_engine_result_t res = {0};
    /* A prompt of two 75-token chunks beside one of one chunk. */
    char longp[1200] = "";
    for (int i = 0; i < 100; i++) strcat(longp, "red ");
    lf_engine_row_t rows[2] = {{.prompt = "a red circle", .seed = 1}, {.prompt = longp, .seed = 2}};
    req.rows = rows, req.n_rows = 2;
    assert_int_equal(lf_engine_generate(e, &req, NULL, NULL, NULL, &res), LF_EUNSUPPORTED);
    assert_non_null(strstr(lf_engine_errstr(e), "chunks"));
    /* Hires-Fix and step caching do not run batched. */
    rows[1].prompt = "a blue square";
    req.enable_hr = 1;
    assert_int_equal(lf_engine_generate(e, &req, NULL, NULL, NULL, &res), LF_EUNSUPPORTED);
    req.enable_hr = 0;
    req.cache = (lf_stepcache_opts_t){.kind = LF_STEPCACHE_FBCACHE, .threshold = 0.1f, .interval = 1};
    assert_int_equal(lf_engine_generate(e, &req, NULL, NULL, NULL, &res), LF_EUNSUPPORTED);
    req.cache = (lf_stepcache_opts_t){0};
    /* Over LF_PIPELINE_BATCH_ROWS_MAX UNet rows (5 images with CFG). */
    rows[0].batch = 4;
    assert_int_equal(lf_engine_generate(e, &req, NULL, NULL, NULL, &res), LF_EUNSUPPORTED);
    assert_non_null(strstr(lf_engine_errstr(e), "rows"));
    rows[0].batch = 0;
    req.rows = NULL; /* n_rows without rows */
    assert_int_equal(lf_engine_generate(e, &req, NULL, NULL, NULL, &res), LF_EINVAL);
    lf_engine_destroy(&e);
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "cuda") == 0) {
        char why[256] = "";
        s_device = "cuda";
        s_precision = argc > 2 ? argv[2] : NULL;
        if (lf_engine_device_info(s_device, why, sizeof why, NULL)) {
            printf("SKIP: no CUDA device (%s)\n", why);
            return 77;
        }
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_bytes_euler_a),
        cmocka_unit_test(test_same_bytes_dpmpp_2m_karras),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_row_previews),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
