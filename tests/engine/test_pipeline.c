/* Pipeline tests over the fake model (tests/engine/lf_fake_model.c): CFG
 * batching, cfg == 1, seeds per batch image, cancel, progress and previews,
 * img2img step counts, the parameters chunk, errors. The CLIP merges come
 * from the reference data (skipped when absent). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lf_error.h"
#include "lf_fake_model.h"
#include "lf_image.h"
#include "lf_infotext.h"
#include "lf_pipeline.h"
#include "lf_test_util.h"

typedef struct {
    lf_clip_tokenizer_t *tok;
    lf_model_t *model;
    lf_pipeline_ctx_t ctx;
} s_fix_t;

static int s_setup_path(void **state, const char *path)
{
    char buf[1024];
    const char *vocab = lf_test_refdata(buf, sizeof buf, "tokenizers/clip/bpe_simple_vocab_16e6.txt.gz");
    *state = NULL;
    if (!vocab) return 0;
    s_fix_t *f = calloc(1, sizeof *f);
    char err[256];
    if (lf_clip_tokenizer_load(&f->tok, vocab, err, sizeof err) != 0) return -1;
    if (lf_fake_model_ops.load(path, NULL, &f->model, err, sizeof err) != 0) return -1;
    f->ctx = (lf_pipeline_ctx_t){.ops = &lf_fake_model_ops, .model = f->model, .tokenizer = f->tok,
                                 .model_name = "fake-sd15"};
    *state = f;
    return 0;
}

static int s_setup(void **state)
{
    return s_setup_path(state, "fake.safetensors");
}

static int s_setup_v(void **state)
{
    return s_setup_path(state, "fake-v-pred.safetensors");
}

static int s_setup_xl(void **state)
{
    return s_setup_path(state, "fake-fam-sdxl.safetensors");
}

static int s_teardown(void **state)
{
    s_fix_t *f = *state;
    if (!f) return 0;
    lf_fake_model_ops.destroy(&f->model);
    lf_clip_tokenizer_destroy(&f->tok);
    free(f);
    return 0;
}

static lf_pipeline_request_t s_req(void)
{
    return (lf_pipeline_request_t){.prompt = "a photo of a cat",
                                   .negative = "blurry",
                                   .sampler = LF_SAMPLER_EULER,
                                   .scheduler = LF_SCHEDULER_NORMAL,
                                   .steps = 4,
                                   .cfg = 7.0,
                                   .seed = 42,
                                   .width = 64,
                                   .height = 48,
                                   .batch = 1};
}

static void test_cfg_one_batch(void **state)
{
    s_fix_t *f = *state;
    if (!f) skip();
    lf_fake_model_stats_t *st = lf_fake_model_stats(f->model);
    lf_pipeline_request_t req = s_req();
    req.batch = 3;
    lf_pipeline_result_t res = {0};
    char err[256] = "";
    assert_int_equal(lf_pipeline_run(&f->ctx, &req, NULL, &res, err, sizeof err), 0);
    assert_int_equal(res.n_images, 3);
    assert_int_equal(res.steps_run, 4);
    /* One text-encoder call for cond + uncond, one denoiser call of 2B per step. */
    assert_int_equal(st->encode_text_calls, 1);
    assert_int_equal(st->encode_chunks[0], 2);
    assert_int_equal(st->denoise_calls, 4);
    for (int i = 0; i < 4; i++) assert_int_equal(st->denoise_batch[i], 6);
    assert_int_equal(st->cond_len, 77);
    assert_int_equal(st->vae_decode_calls, 3);
    assert_int_equal(st->clip_skip, 1);
    lf_pipeline_result_clear(&res);
}

/* The k-diffusion eps wrapper's input: x = noise * sigma_max from the seed's
 * generator, scaled by c_in = 1/sqrt(sigma^2 + 1), at t = sigma_to_t = 999;
 * img2img starts at the tail's first sigma. */
static void test_denoiser_input(void **state)
{
    s_fix_t *f = *state;
    if (!f) skip();
    lf_fake_model_stats_t *st = lf_fake_model_stats(f->model);
    lf_pipeline_request_t req = s_req();
    req.seed = 42;
    lf_pipeline_result_t res = {0};
    assert_int_equal(lf_pipeline_run(&f->ctx, &req, NULL, &res, NULL, 0), 0);
    lf_pipeline_result_clear(&res);
    lf_rng_t rng;
    lf_rng_init(&rng, LF_RNG_TORCH_CPU, 42);
    float *noise = malloc(4 * 6 * 8 * sizeof *noise);
    lf_rng_randn(&rng, noise, 4 * 6 * 8);
    double smax = 14.614642143249512, cin = 1.0 / sqrt(smax * smax + 1.0);
    assert_float_equal(st->first_t, 999.0, 1e-3);
    assert_float_equal(st->first_x0, noise[0] * smax * cin, 1e-4);
    free(noise);
}

static void test_cfg1_skips_uncond(void **state)
{
    s_fix_t *f = *state;
    if (!f) skip();
    lf_fake_model_stats_t *st = lf_fake_model_stats(f->model);
    lf_pipeline_request_t req = s_req();
    req.cfg = 1.0;
    req.batch = 2;
    req.negative = "a very long negative prompt that would otherwise need encoding";
    lf_pipeline_result_t res = {0};
    assert_int_equal(lf_pipeline_run(&f->ctx, &req, NULL, &res, NULL, 0), 0);
    assert_int_equal(st->encode_text_calls, 1);
    assert_int_equal(st->encode_chunks[0], 1);
    for (int i = 0; i < st->denoise_calls; i++) assert_int_equal(st->denoise_batch[i], 2);
    lf_pipeline_result_clear(&res);
}

static void test_negative_padded_to_prompt_chunks(void **state)
{
    s_fix_t *f = *state;
    if (!f) skip();
    lf_fake_model_stats_t *st = lf_fake_model_stats(f->model);
    lf_pipeline_request_t req = s_req();
    req.prompt = "cat BREAK dog BREAK bird"; /* three chunks */
    req.negative = "";
    lf_pipeline_result_t res = {0};
    assert_int_equal(lf_pipeline_run(&f->ctx, &req, NULL, &res, NULL, 0), 0);
    assert_int_equal(st->encode_chunks[0], 6); /* 3 cond + 3 uncond (1 + 2 empty) */
    assert_int_equal(st->cond_len, 3 * 77);
    lf_pipeline_result_clear(&res);
    /* And the other way round: a longer negative pads the prompt. */
    req.prompt = "cat";
    req.negative = "a BREAK b";
    assert_int_equal(lf_pipeline_run(&f->ctx, &req, NULL, &res, NULL, 0), 0);
    assert_int_equal(st->encode_chunks[1], 4);
    lf_pipeline_result_clear(&res);
}

/* SDXL with several chunks (BREAK, as A1111): every chunk goes through the
 * text encoders, and the pooled embedding of each side comes from its FIRST
 * chunk (A1111 / ComfyUI), next to the micro-conditioning (A1111's
 * defaults: original = target = image size, crop 0,0; height first). The
 * fake's pooled row is its chunk's first token id (+ 0.25 p). */
static void test_sdxl_pooled_from_first_chunk(void **state)
{
    s_fix_t *f = *state;
    if (!f) skip();
    lf_fake_model_stats_t *st = lf_fake_model_stats(f->model);
    lf_pipeline_request_t req = s_req();
    req.prompt = "cat BREAK dog BREAK bird";
    req.negative = "fish BREAK frog";
    lf_pipeline_result_t res = {0};
    assert_int_equal(lf_pipeline_run(&f->ctx, &req, NULL, &res, NULL, 0), 0);
    lf_pipeline_result_clear(&res);
    assert_int_equal(st->encode_chunks[0], 6); /* 3 + 3 (the negative padded) */
    assert_int_equal(st->cond_len, 3 * 77);
    int32_t cat, fish, dog;
    assert_int_equal(lf_clip_tokenizer_encode(f->tok, "cat", &cat, 1), 1);
    assert_int_equal(lf_clip_tokenizer_encode(f->tok, "fish", &fish, 1), 1);
    assert_int_equal(lf_clip_tokenizer_encode(f->tok, "dog", &dog, 1), 1);
    for (int p = 0; p < LF_FAKE_POOLED; p++) {
        assert_float_equal(st->first_vec[0][p], (float)cat + 0.25f * p, 0);  /* cond: chunk 0 */
        assert_float_equal(st->first_vec[1][p], (float)fish + 0.25f * p, 0); /* uncond: chunk 0 */
    }
    assert_true(st->first_vec[0][0] != (float)dog);
    const float ids[6] = {48, 64, 0, 0, 48, 64}; /* height 48, width 64 */
    for (int i = 0; i < 6; i++) {
        assert_float_equal(st->first_vec[0][LF_FAKE_POOLED + i], ids[i], 0);
        assert_float_equal(st->first_vec[1][LF_FAKE_POOLED + i], ids[i], 0);
    }
}

/* Image i of a batch seeded s equals the single image seeded s + i. */
static void test_batch_seeds(void **state)
{
    s_fix_t *f = *state;
    if (!f) skip();
    lf_pipeline_request_t req = s_req();
    req.sampler = LF_SAMPLER_EULER_ANCESTRAL; /* per-step noise too */
    req.batch = 2;
    req.seed = 100;
    lf_pipeline_result_t batch = {0}, single = {0};
    assert_int_equal(lf_pipeline_run(&f->ctx, &req, NULL, &batch, NULL, 0), 0);
    assert_int_equal(batch.images[0].seed, 100);
    assert_int_equal(batch.images[1].seed, 101);
    assert_true(batch.images[0].png_len != batch.images[1].png_len ||
                memcmp(batch.images[0].png, batch.images[1].png, batch.images[0].png_len) != 0);
    req.batch = 1;
    req.seed = 101;
    assert_int_equal(lf_pipeline_run(&f->ctx, &req, NULL, &single, NULL, 0), 0);
    assert_int_equal(single.images[0].png_len, batch.images[1].png_len);
    assert_memory_equal(single.images[0].png, batch.images[1].png, single.images[0].png_len);
    lf_pipeline_result_clear(&batch);
    lf_pipeline_result_clear(&single);
}

typedef struct {
    int calls, last_step, steps, previews, cancel_at;
    atomic_bool cancel;
} s_prog_t;

static void s_progress(void *ud, int step, int steps, const uint8_t *preview, size_t len)
{
    s_prog_t *p = ud;
    p->calls++;
    assert_int_equal(step, p->last_step + 1);
    p->last_step = step;
    p->steps = steps;
    if (preview) {
        lf_image_info_t info;
        assert_int_equal(lf_image_probe(preview, len, &info), 0);
        assert_int_equal(info.format, LF_IMG_PNG);
        p->previews++;
    }
    if (p->cancel_at && step == p->cancel_at) atomic_store(&p->cancel, true);
}

static void test_progress_and_previews(void **state)
{
    s_fix_t *f = *state;
    if (!f) skip();
    lf_pipeline_request_t req = s_req();
    req.steps = 6;
    req.preview_every = 2;
    s_prog_t p = {0};
    lf_pipeline_hooks_t hooks = {.progress = s_progress, .progress_ud = &p, .cancel = &p.cancel};
    lf_pipeline_result_t res = {0};
    assert_int_equal(lf_pipeline_run(&f->ctx, &req, &hooks, &res, NULL, 0), 0);
    assert_int_equal(p.calls, 6);
    assert_int_equal(p.steps, 6);
    assert_int_equal(p.previews, 2); /* steps 2 and 4; none with the last */
    assert_int_equal(lf_fake_model_stats(f->model)->preview_calls, 2);
    lf_pipeline_result_clear(&res);
}

static void test_cancel(void **state)
{
    s_fix_t *f = *state;
    if (!f) skip();
    lf_pipeline_request_t req = s_req();
    req.steps = 10;
    s_prog_t p = {.cancel_at = 3};
    lf_pipeline_hooks_t hooks = {.progress = s_progress, .progress_ud = &p, .cancel = &p.cancel};
    lf_pipeline_result_t res = {0};
    char err[128] = "";
    assert_int_equal(lf_pipeline_run(&f->ctx, &req, &hooks, &res, err, sizeof err), LF_ECANCELED);
    assert_int_equal(p.calls, 3);
    assert_int_equal(lf_fake_model_stats(f->model)->denoise_calls, 3);
    assert_int_equal(lf_fake_model_stats(f->model)->vae_decode_calls, 0);
    assert_null(res.images);
    /* Raised before the start: nothing runs. */
    atomic_store(&p.cancel, true);
    assert_int_equal(lf_pipeline_run(&f->ctx, &req, &hooks, &res, err, sizeof err), LF_ECANCELED);
    assert_int_equal(lf_fake_model_stats(f->model)->denoise_calls, 3);
}

static uint8_t *s_test_png(int w, int h, size_t *len)
{
    lf_image_t im = {.pixels = malloc((size_t)w * h * 3), .width = (uint32_t)w, .height = (uint32_t)h,
                     .channels = 3};
    for (int i = 0; i < w * h * 3; i++) im.pixels[i] = (uint8_t)(i * 7);
    uint8_t *png = NULL;
    assert_int_equal(lf_image_png_encode(&im, NULL, 0, -1, &png, len, NULL, 0), 0);
    lf_image_clear(&im);
    return png;
}

static void test_img2img_partial_schedule(void **state)
{
    s_fix_t *f = *state;
    if (!f) skip();
    lf_fake_model_stats_t *st = lf_fake_model_stats(f->model);
    size_t len;
    uint8_t *png = s_test_png(30, 20, &len);
    lf_pipeline_request_t req = s_req();
    req.steps = 20;
    req.denoise = 0.5;
    req.init_image = png;
    req.init_image_len = len;
    lf_pipeline_result_t res = {0};
    char err[256] = "";
    assert_int_equal(lf_pipeline_run(&f->ctx, &req, NULL, &res, err, sizeof err), 0);
    assert_int_equal(res.steps_run, 11); /* t_enc = 10, A1111 runs t_enc + 1 */
    assert_int_equal(st->denoise_calls, 11);
    assert_int_equal(st->vae_encode_calls, 1);
    char *text = NULL;
    assert_int_equal(lf_infotext_png_find(res.images[0].png, res.images[0].png_len, "parameters", &text), 0);
    lf_infotext_t info = {0};
    assert_int_equal(lf_infotext_parse(text, &info), 0);
    assert_string_equal(lf_infotext_get(&info, "Denoising strength"), "0.5");
    lf_infotext_clear(&info);
    free(text);
    lf_pipeline_result_clear(&res);
    /* A file that is not an image: a clear error. */
    req.init_image = (const uint8_t *)"not an image";
    req.init_image_len = 12;
    assert_int_equal(lf_pipeline_run(&f->ctx, &req, NULL, &res, err, sizeof err), LF_EFORMAT);
    assert_non_null(strstr(err, "init image"));
    free(png);
}

static void test_sigmas_tail(void **state)
{
    (void)state;
    double s[21];
    assert_int_equal(lf_pipeline_sigmas(LF_SCHEDULER_KARRAS, 20, 1.0, s), 0);
    assert_int_equal(lf_pipeline_sigmas(LF_SCHEDULER_KARRAS, 20, 0.75, s), 4);
    assert_int_equal(lf_pipeline_sigmas(LF_SCHEDULER_KARRAS, 20, 0.01, s), 19);
    assert_int_equal(lf_pipeline_sigmas(LF_SCHEDULER_KARRAS, 20, 0.999, s), 0);
    assert_true(s[20] == 0.0);
    assert_true(lf_pipeline_sigmas(LF_SCHEDULER_KARRAS, 0, 1.0, s) < 0);
}

static void test_parameters_round_trip(void **state)
{
    s_fix_t *f = *state;
    if (!f) skip();
    lf_pipeline_request_t req = s_req();
    req.prompt = "a (red:1.2) fox, forest";
    req.negative = "ugly";
    req.sampler = LF_SAMPLER_EULER_ANCESTRAL;
    req.scheduler = LF_SCHEDULER_KARRAS;
    req.cfg = 7.5;
    req.clip_skip = 2;
    req.rng = LF_RNG_PHILOX;
    req.seed = 1234;
    lf_pipeline_result_t res = {0};
    assert_int_equal(lf_pipeline_run(&f->ctx, &req, NULL, &res, NULL, 0), 0);
    assert_int_equal(lf_fake_model_stats(f->model)->clip_skip, 2);
    char *text = NULL;
    assert_int_equal(lf_image_png_text_get(res.images[0].png, res.images[0].png_len, "parameters", &text), 0);
    assert_string_equal(text, res.images[0].infotext);
    lf_infotext_t info = {0};
    assert_int_equal(lf_infotext_parse(text, &info), 0);
    assert_string_equal(info.prompt, "a (red:1.2) fox, forest");
    assert_string_equal(info.negative, "ugly");
    assert_string_equal(lf_infotext_get(&info, "Steps"), "4");
    assert_string_equal(lf_infotext_get(&info, "Sampler"), "Euler a");
    assert_string_equal(lf_infotext_get(&info, "Schedule type"), "Karras");
    assert_string_equal(lf_infotext_get(&info, "CFG scale"), "7.5");
    assert_string_equal(lf_infotext_get(&info, "Seed"), "1234");
    assert_string_equal(lf_infotext_get(&info, "Size-1"), "64");
    assert_string_equal(lf_infotext_get(&info, "Size-2"), "48");
    assert_string_equal(lf_infotext_get(&info, "Model"), "fake-sd15");
    assert_string_equal(lf_infotext_get(&info, "Clip skip"), "2");
    assert_string_equal(lf_infotext_get(&info, "RNG"), "NV");
    assert_null(lf_infotext_get(&info, "Denoising strength"));
    assert_null(lf_infotext_get(&info, "VAE")); /* the checkpoint's own: not written */
    lf_infotext_clear(&info);
    free(text);
    /* A separate VAE: "VAE: name" right after the model, as A1111 writes it. */
    lf_pipeline_result_t res2 = {0};
    lf_pipeline_ctx_t ctx = f->ctx;
    ctx.vae_name = "sdxl-fixed";
    assert_int_equal(lf_pipeline_run(&ctx, &req, NULL, &res2, NULL, 0), 0);
    assert_non_null(strstr(res2.images[0].infotext, "Model: fake-sd15, VAE: sdxl-fixed, "));
    assert_int_equal(lf_infotext_parse(res2.images[0].infotext, &info), 0);
    assert_string_equal(lf_infotext_get(&info, "VAE"), "sdxl-fixed");
    lf_infotext_clear(&info);
    lf_pipeline_result_clear(&res2);
    /* The PNG decodes at the requested size. */
    lf_image_t im = {0};
    assert_int_equal(lf_image_decode(res.images[0].png, res.images[0].png_len, NULL, &im, NULL, 0), 0);
    assert_int_equal(im.width, 64);
    assert_int_equal(im.height, 48);
    lf_image_clear(&im);
    lf_pipeline_result_clear(&res);
}

static void test_errors(void **state)
{
    s_fix_t *f = *state;
    if (!f) skip();
    lf_pipeline_result_t res = {0};
    char err[256];
    lf_pipeline_request_t req = s_req();
    req.width = 63;
    assert_int_equal(lf_pipeline_run(&f->ctx, &req, NULL, &res, err, sizeof err), LF_EINVAL);
    assert_non_null(strstr(err, "63x48"));
    req = s_req();
    req.steps = 0;
    assert_int_equal(lf_pipeline_run(&f->ctx, &req, NULL, &res, err, sizeof err), LF_EINVAL);
    req = s_req();
    req.init_image = (const uint8_t *)"x";
    req.init_image_len = 1;
    req.denoise = 0.0;
    assert_int_equal(lf_pipeline_run(&f->ctx, &req, NULL, &res, err, sizeof err), LF_EINVAL);
    req = s_req();
    lf_fake_model_stats(f->model)->fail_denoise_at = 2;
    assert_int_equal(lf_pipeline_run(&f->ctx, &req, NULL, &res, err, sizeof err), LF_EIO);
    assert_non_null(strstr(err, "denoiser"));
    assert_null(res.images);
}

/* Every sampler runs through the pipeline (ancestral/SDE ones draw noise). */
static void test_all_samplers(void **state)
{
    s_fix_t *f = *state;
    if (!f) skip();
    for (int k = 0; k < LF_SAMPLER_COUNT; k++) {
        lf_pipeline_request_t req = s_req();
        req.sampler = (lf_sampler_kind_t)k;
        req.steps = 3;
        lf_pipeline_result_t res = {0};
        char err[256] = "";
        int rc = lf_pipeline_run(&f->ctx, &req, NULL, &res, err, sizeof err);
        if (rc) fail_msg("%s: %s", lf_sampler_name((lf_sampler_kind_t)k), err);
        assert_int_equal(res.n_images, 1);
        lf_pipeline_result_clear(&res);
    }
    /* CFG++ steps along the unconditional estimate, so even at cfg 1 (where
     * guidance skips the negative pass) every denoiser call carries it. */
    lf_pipeline_request_t req = s_req();
    req.sampler = LF_SAMPLER_EULER_CFG_PP;
    req.cfg = 1.0;
    req.steps = 3;
    lf_fake_model_stats_t *st = lf_fake_model_stats(f->model);
    memset(st, 0, sizeof *st);
    lf_pipeline_result_t res = {0};
    assert_int_equal(lf_pipeline_run(&f->ctx, &req, NULL, &res, NULL, 0), 0);
    assert_int_equal(st->denoise_calls, 3);
    for (int i = 0; i < 3; i++) assert_int_equal(st->denoise_batch[i], 2 * req.batch);
    lf_pipeline_result_clear(&res);
    req.sampler = LF_SAMPLER_EULER;
    memset(st, 0, sizeof *st);
    assert_int_equal(lf_pipeline_run(&f->ctx, &req, NULL, &res, NULL, 0), 0);
    assert_int_equal(st->denoise_batch[0], req.batch);
    lf_pipeline_result_clear(&res);
}

static void test_v_prediction(void **state)
{
    s_fix_t *f = *state;
    if (!f) skip();
    assert_int_equal(lf_fake_model_ops.desc(f->model)->prediction, LF_PRED_V);
    lf_pipeline_request_t req = s_req();
    lf_pipeline_result_t res = {0};
    assert_int_equal(lf_pipeline_run(&f->ctx, &req, NULL, &res, NULL, 0), 0);
    lf_pipeline_result_clear(&res);
}

static void test_resize(void **state)
{
    (void)state;
    uint8_t src[4 * 2 * 3], dst[8 * 8 * 3];
    for (int i = 0; i < 4 * 2 * 3; i++) src[i] = 77;
    assert_int_equal(lf_pipeline_resize_rgb8(src, 4, 2, dst, 8, 8), 0);
    for (int i = 0; i < 8 * 8 * 3; i++) assert_int_equal(dst[i], 77);
    /* Shrinking 2x1 -> 1x1 averages (the filter widens with the scale). */
    uint8_t two[6] = {0, 100, 200, 100, 200, 0}, one[3];
    assert_int_equal(lf_pipeline_resize_rgb8(two, 2, 1, one, 1, 1), 0);
    assert_int_equal(one[0], 50);
    assert_int_equal(one[1], 150);
    assert_int_equal(one[2], 100);
    /* The same size is the identity. */
    uint8_t ramp[5 * 3 * 3], same[5 * 3 * 3];
    for (int i = 0; i < 45; i++) ramp[i] = (uint8_t)(i * 5);
    assert_int_equal(lf_pipeline_resize_rgb8(ramp, 5, 3, same, 5, 3), 0);
    assert_memory_equal(ramp, same, sizeof ramp);
    assert_int_equal(lf_pipeline_resize_rgb8(ramp, 0, 3, same, 5, 3), LF_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_cfg_one_batch, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_cfg1_skips_uncond, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_denoiser_input, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_negative_padded_to_prompt_chunks, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_batch_seeds, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_progress_and_previews, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_cancel, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_img2img_partial_schedule, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_parameters_round_trip, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_errors, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_all_samplers, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_v_prediction, s_setup_v, s_teardown),
        cmocka_unit_test_setup_teardown(test_sdxl_pooled_from_first_chunk, s_setup_xl, s_teardown),
        cmocka_unit_test(test_sigmas_tail),
        cmocka_unit_test(test_resize),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
