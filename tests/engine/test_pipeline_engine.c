/* lf_engine.h facade tests: over the fake model (a test double injected
 * through lf_engine_opts_t.model_ops) for the request mapping and errors,
 * and end to end through the real networks (LF_HAVE_MODEL) with the tiny
 * fixture checkpoints in tests/engine/fixtures/models/. The CLIP merges come
 * from the reference data (skipped when absent). */
#include <math.h>
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
#include "lf_fake_model.h"
#include "lf_image.h"
#include "lf_infotext.h"
#include "lf_safetensors.h"
#include "lf_test_models.h"
#include "lf_test_util.h"

static const char *s_vocab(char *buf, size_t len)
{
    return lf_test_refdata(buf, len, "tokenizers/clip/bpe_simple_vocab_16e6.txt.gz");
}

static lf_engine_t *s_engine(const struct lf_model_ops *ops)
{
    char vb[1024], err[256] = "";
    const char *vocab = s_vocab(vb, sizeof vb);
    if (!vocab) return NULL;
    lf_engine_opts_t o = {.vocab_path = vocab, .model_ops = ops, .n_threads = 2};
    lf_engine_t *e = NULL;
    if (lf_engine_new(&o, &e, err, sizeof err) != 0) fail_msg("lf_engine_new: %s", err);
    return e;
}

static void test_fake_facade(void **state)
{
    (void)state;
    lf_engine_t *e = s_engine(&lf_fake_model_ops);
    if (!e) skip();
    lf_engine_request_t req = lf_engine_request_defaults();
    lf_engine_result_t res = {0};
    assert_int_equal(lf_engine_generate(e, &req, NULL, NULL, NULL, &res), LF_ESTATE);
    assert_non_null(strstr(lf_engine_errstr(e), "no model"));

    assert_int_equal(lf_engine_load(e, "/models/missing.safetensors", NULL), LF_EIO);
    assert_non_null(strstr(lf_engine_errstr(e), "/models/missing.safetensors"));
    assert_null(lf_engine_model_name(e));

    assert_int_equal(lf_engine_load(e, "/models/my-model.v1.safetensors", NULL), 0);
    assert_string_equal(lf_engine_model_name(e), "my-model.v1");
    assert_string_equal(lf_engine_model_family(e), "sd15");

    req.prompt = "a cat";
    req.width = 64;
    req.height = 64;
    req.steps = 3;
    req.batch = 2;
    req.seed = 7;
    req.sampler = "DPM++ 2M";
    req.scheduler = "Karras";
    assert_int_equal(lf_engine_generate(e, &req, NULL, NULL, NULL, &res), 0);
    assert_int_equal(res.n_images, 2);
    assert_int_equal(res.images[1].seed, 8);
    lf_infotext_t info = {0};
    assert_int_equal(lf_infotext_parse(res.images[0].infotext, &info), 0);
    assert_string_equal(lf_infotext_get(&info, "Sampler"), "DPM++ 2M");
    assert_string_equal(lf_infotext_get(&info, "Schedule type"), "Karras");
    assert_string_equal(lf_infotext_get(&info, "Model"), "my-model.v1");
    assert_string_equal(lf_infotext_get(&info, "RNG"), "CPU");
    lf_infotext_clear(&info);
    lf_engine_result_clear(&res);

    req.sampler = "no_such_sampler";
    assert_int_equal(lf_engine_generate(e, &req, NULL, NULL, NULL, &res), LF_EINVAL);
    assert_non_null(strstr(lf_engine_errstr(e), "no_such_sampler"));
    req.sampler = NULL;
    req.rng = "gpu";
    assert_int_equal(lf_engine_generate(e, &req, NULL, NULL, NULL, &res), LF_EINVAL);
    req.rng = "philox";
    req.width = 100;
    assert_int_equal(lf_engine_generate(e, &req, NULL, NULL, NULL, &res), LF_EINVAL);
    assert_null(res.images);
    lf_engine_destroy(&e);
    assert_null(e);
    lf_engine_destroy(&e);
}

static void test_bad_device(void **state)
{
    (void)state;
    lf_engine_t *e = NULL;
    char err[256] = "";
    lf_engine_opts_t o = {.device = "tpu"};
    int rc = lf_engine_new(&o, &e, err, sizeof err);
    assert_true(rc == LF_EINVAL || rc == LF_EUNSUPPORTED);
    assert_null(e);
    assert_true(err[0] != '\0');
}

#ifdef LF_HAVE_MODEL
#include "lf_model.h"
#include "lf_pipeline.h"

/* The tiny fixture checkpoints have a 400-token CLIP vocabulary, so real
 * CLIP ids are folded into it (BOS/EOS to 398/399) before the real text
 * encoder; everything else is the real networks. */
static int s_encode_folded(lf_model_t *m, const int32_t *ids, const float *weights, size_t n_chunks,
                           int clip_skip, float *out, float *pooled)
{
    size_t n = n_chunks * 77;
    int32_t *f = malloc(n * sizeof *f);
    if (!f) return LF_ENOMEM;
    for (size_t i = 0; i < n; i++)
        f[i] = ids[i] == 49406 ? 398 : ids[i] == 49407 ? 399 : ids[i] % 398;
    int rc = lf_model_encode_text(m, f, weights, n_chunks, clip_skip, out, pooled);
    free(f);
    return rc;
}

static const lf_model_ops_t s_folded_ops = {
    .name = "real networks, CLIP ids folded into a 400-token fixture vocabulary",
    .load = lf_model_load,
    .destroy = lf_model_destroy,
    .desc = lf_model_desc,
    .encode_text = s_encode_folded,
    .denoise = lf_model_denoise,
    .vae_decode = lf_model_vae_decode,
    .vae_encode = lf_model_vae_encode,
    .preview = lf_model_preview,
};

typedef struct {
    int steps_seen;
    int previews;         /* progress calls that carried a preview */
    uint32_t pw, ph;      /* the last preview's size */
    uint8_t *last;        /* the last preview's pixels (RGB), owned */
} s_prog_t;

static void s_progress(void *ud, int step, int steps, const uint8_t *preview, size_t len)
{
    s_prog_t *p = ud;
    p->steps_seen = step;
    assert_true(step <= steps);
    if (!preview) return;
    lf_image_t im = {0};
    assert_int_equal(lf_image_decode(preview, len, NULL, &im, NULL, 0), 0);
    assert_int_equal(im.channels, 3);
    p->previews++;
    p->pw = im.width, p->ph = im.height;
    free(p->last);
    p->last = im.pixels;
    im.pixels = NULL;
    lf_image_clear(&im);
}

/* The real networks on the tiny fixture checkpoints: runs, is deterministic,
 * and the PNG carries the parameters. */
static void s_e2e(const char *path, const lf_model_ops_t *ops)
{
    lf_engine_t *e = s_engine(ops);
    if (!e) skip();
    if (lf_engine_load(e, path, NULL) != 0) fail_msg("load %s: %s", path, lf_engine_errstr(e));
    lf_engine_request_t req = lf_engine_request_defaults();
    req.prompt = "a red (circle:1.2)";
    req.negative = "blue";
    req.width = 64;
    req.height = 64;
    req.steps = 3;
    req.seed = 3;
    req.sampler = "euler_ancestral";
    req.preview_every = 1;
    s_prog_t p = {0};
    lf_engine_result_t a = {0}, b = {0};
    if (lf_engine_generate(e, &req, s_progress, &p, NULL, &a)) fail_msg("%s", lf_engine_errstr(e));
    assert_int_equal(p.steps_seen, 3);
    /* No TAESD here: the approx preview, fitted from this model's VAE, at
     * steps 1 and 2 (none with the last). The fixtures' VAE halves once
     * (vae_scale 2): the 32x32 latent is shown x2, at the image's size. */
    assert_string_equal(lf_engine_preview_kind(e), "approx");
    assert_int_equal(p.previews, 2);
    assert_int_equal(p.pw, 64);
    assert_int_equal(p.ph, 64);
    free(p.last);
    assert_int_equal(lf_engine_generate(e, &req, NULL, NULL, NULL, &b), 0);
    assert_int_equal(a.images[0].png_len, b.images[0].png_len);
    assert_memory_equal(a.images[0].png, b.images[0].png, a.images[0].png_len);
    lf_image_t im = {0};
    assert_int_equal(lf_image_decode(a.images[0].png, a.images[0].png_len, NULL, &im, NULL, 0), 0);
    assert_int_equal(im.width, 64);
    char *text = NULL;
    assert_int_equal(lf_image_png_text_get(a.images[0].png, a.images[0].png_len, "parameters", &text), 0);
    assert_non_null(strstr(text, "Steps: 3, Sampler: Euler a"));
    free(text);
    /* img2img from the first result through the real VAE encoder. */
    req.init_image = a.images[0].png;
    req.init_image_len = a.images[0].png_len;
    req.denoise = 0.5;
    req.steps = 4;
    lf_engine_result_t c = {0};
    if (lf_engine_generate(e, &req, NULL, NULL, NULL, &c)) fail_msg("%s", lf_engine_errstr(e));
    assert_int_equal(c.steps_run, 3); /* t_enc = 2, A1111 runs t_enc + 1 */
    lf_engine_result_clear(&c);
    lf_image_clear(&im);
    lf_engine_result_clear(&a);
    lf_engine_result_clear(&b);
    lf_engine_destroy(&e);
}

static void test_e2e_single_file(void **state)
{
    (void)state;
    char path[1024];
    s_e2e(lf_test_fixture(path, sizeof path, "models/tiny_a.safetensors"), &s_folded_ops);
}

static void test_e2e_diffusers(void **state)
{
    (void)state;
    char path[1024];
    s_e2e(lf_test_fixture(path, sizeof path, "models/tiny_b_diffusers"), &s_folded_ops);
}

/* The whole real path, tokenizer included: the tiny checkpoint widened to
 * CLIP's vocabulary. */
static void test_e2e_clip_ids(void **state)
{
    (void)state;
    char path[] = "/tmp/lf_e2e_model_XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    assert_int_equal(lf_test_write_clip_model(LF_FIXTURE_DIR, path), 0);
    s_e2e(path, NULL);
    unlink(path);
}

/* The built-in model (models/lf-tiny-shapes.safetensors) with previews on
 * and no TAESD decoder: every step but the last carries the approx preview
 * (the 16x16 latent shown x4: 64x64), and the last one (step 5 of 6, the
 * denoised estimate) already looks like the image. Measured: mean |last
 * preview - the final image's 8x8 block means| = 29 of 255 (the map's own
 * error on this model, see test_model_preview.c, plus the last step's
 * change); bound 40. A flat grey preview is 79 away. */
static void test_default_model_previews(void **state)
{
    (void)state;
    const char *path = LF_SOURCE_DIR "/models/lf-tiny-shapes.safetensors";
    if (access(path, R_OK) != 0) {
        printf("  skipped: %s is absent (the built-in model)\n", path);
        skip();
    }
    lf_engine_t *e = s_engine(NULL);
    if (!e) skip();
    if (lf_engine_load(e, path, NULL) != 0) fail_msg("load %s: %s", path, lf_engine_errstr(e));
    assert_string_equal(lf_engine_preview_kind(e), "approx");
    lf_engine_request_t req = lf_engine_request_defaults();
    req.prompt = "a large red circle in the center on a blue background";
    req.width = 128;
    req.height = 128;
    req.steps = 6;
    req.cfg = 5.0;
    req.seed = 2000;
    req.preview_every = 1;
    s_prog_t p = {0};
    lf_engine_result_t r = {0};
    if (lf_engine_generate(e, &req, s_progress, &p, NULL, &r)) fail_msg("%s", lf_engine_errstr(e));
    assert_int_equal(p.previews, 5);
    assert_int_equal(p.pw, 64);
    assert_int_equal(p.ph, 64);
    lf_image_t im = {0};
    assert_int_equal(lf_image_decode(r.images[0].png, r.images[0].png_len, NULL, &im, NULL, 0), 0);
    double err = 0.0, grey = 0.0;
    for (int y = 0; y < 16; y++)
        for (int x = 0; x < 16; x++)
            for (int c = 0; c < 3; c++) {
                double m = 0.0;
                for (int dy = 0; dy < 8; dy++)
                    for (int dx = 0; dx < 8; dx++)
                        m += im.pixels[((size_t)(y * 8 + dy) * 128 + (size_t)(x * 8 + dx)) * 3 + c];
                m /= 64.0;
                err += fabs(p.last[((size_t)(y * 4) * 64 + (size_t)(x * 4)) * 3 + c] - m);
                grey += fabs(128.0 - m);
            }
    err /= 16 * 16 * 3;
    grey /= 16 * 16 * 3;
    printf("  last preview vs image: mean |diff| %.1f of 255 (flat grey: %.1f)\n", err, grey);
    assert_true(err < 40.0);
    assert_true(grey >= 40.0);
    free(p.last);
    lf_image_clear(&im);
    lf_engine_result_clear(&r);
    lf_engine_destroy(&e);
}
#endif

#ifdef LF_HAVE_MODEL
/* Step caching through the facade on the built-in model: off, FBCache at
 * threshold 0 and DeepCache at interval 1 give the same pixels (the full
 * network every step, run in parts), the infotext records the options
 * only when on, and the result counts full and cached evaluations. */
static void test_e2e_cache(void **state)
{
    (void)state;
    const char *path = LF_SOURCE_DIR "/models/lf-tiny-shapes.safetensors";
    if (access(path, R_OK) != 0) {
        printf("  skipped: %s is absent (the built-in model)\n", path);
        skip();
    }
    lf_engine_t *e = s_engine(NULL);
    if (!e) skip();
    if (lf_engine_load(e, path, NULL) != 0) fail_msg("load %s: %s", path, lf_engine_errstr(e));
    lf_engine_request_t req = lf_engine_request_defaults();
    req.prompt = "a large red circle in the center on a blue background";
    req.width = req.height = 128;
    req.steps = 6;
    req.cfg = 5.0;
    req.seed = 2000;
    lf_engine_result_t a = {0}, r = {0};
    if (lf_engine_generate(e, &req, NULL, NULL, NULL, &a)) fail_msg("%s", lf_engine_errstr(e));
    assert_int_equal(a.model_calls_full, 6);
    assert_int_equal(a.model_calls_cached, 0);
    assert_null(strstr(a.images[0].infotext, "Cache"));
    lf_image_t ia = {0}, ib = {0};
    assert_int_equal(lf_image_decode(a.images[0].png, a.images[0].png_len, NULL, &ia, NULL, 0), 0);
    const lf_stepcache_opts_t same[2] = {{.kind = LF_STEPCACHE_FBCACHE, .threshold = 0, .interval = 1},
                                         {.kind = LF_STEPCACHE_DEEPCACHE, .interval = 1, .depth = 3}};
    const char *texts[2] = {"Cache: fbcache, Cache threshold: 0, Cache start: 0, Cache end: 0",
                            "Cache: deepcache, Cache start: 0, Cache end: 0, Cache interval: 1, Cache depth: 3"};
    for (int k = 0; k < 2; k++) {
        req.cache = same[k];
        if (lf_engine_generate(e, &req, NULL, NULL, NULL, &r)) fail_msg("%s", lf_engine_errstr(e));
        assert_int_equal(lf_image_decode(r.images[0].png, r.images[0].png_len, NULL, &ib, NULL, 0), 0);
        assert_memory_equal(ia.pixels, ib.pixels, (size_t)128 * 128 * 3);
        assert_int_equal(r.model_calls_full, 6);
        assert_int_equal(r.model_calls_cached, 0);
        if (!strstr(r.images[0].infotext, texts[k]))
            fail_msg("infotext lacks '%s': %s", texts[k], r.images[0].infotext);
        lf_image_clear(&ib);
        lf_engine_result_clear(&r);
    }
    /* DeepCache interval 2: steps 0, 2, 4 full. */
    req.cache = (lf_stepcache_opts_t){.kind = LF_STEPCACHE_DEEPCACHE, .interval = 2, .depth = 3};
    if (lf_engine_generate(e, &req, NULL, NULL, NULL, &r)) fail_msg("%s", lf_engine_errstr(e));
    assert_int_equal(r.model_calls_full, 3);
    assert_int_equal(r.model_calls_cached, 3);
    lf_engine_result_clear(&r);
    /* FBCache at the largest threshold with a 1-step window at each end:
     * steps 0 and 5 full, the others reuse. */
    req.cache = (lf_stepcache_opts_t){.kind = LF_STEPCACHE_FBCACHE, .threshold = 1, .start = 1, .end = 1,
                                      .interval = 1};
    if (lf_engine_generate(e, &req, NULL, NULL, NULL, &r)) fail_msg("%s", lf_engine_errstr(e));
    printf("  fbcache 1.0: %d full, %d cached\n", r.model_calls_full, r.model_calls_cached);
    assert_int_equal(r.model_calls_full + r.model_calls_cached, 6);
    assert_true(r.model_calls_full >= 2 && r.model_calls_cached >= 1);
    assert_non_null(strstr(r.images[0].infotext, "Cache threshold: 1, Cache start: 1, Cache end: 1"));
    lf_engine_result_clear(&r);
    /* A bad value names the field. */
    req.cache.threshold = 2;
    assert_int_equal(lf_engine_generate(e, &req, NULL, NULL, NULL, &r), LF_EINVAL);
    assert_non_null(strstr(lf_engine_errstr(e), "cache.threshold"));
    lf_image_clear(&ia);
    lf_engine_result_clear(&a);
    lf_engine_destroy(&e);
}
#endif

#ifdef LF_HAVE_MODEL
/* Compute precision through the facade on the built-in model (a real
 * trained model): bf16 matrix products give the f32 image within
 * PSNR_BF16_MEAN dB on average over these 3 prompt/seed pairs, and no pair
 * under PSNR_BF16_MIN (measured 30.1, 49.0 and 45.9 dB with bf16 attention;
 * 40.1, 51.4, 45.1 with it f32: a 6-step sampler amplifies rounding at some
 * seeds, so the first pair's figure moves by +-10 dB with any change of the
 * kernels' rounding or summation order, docs/PERFORMANCE.md), the infotext says
 * "Precision: bf16" only when bf16 ran, and a bad word names the field. On a
 * CPU without AVX512_BF16, bf16 runs as f32: the same pixels. The precision
 * is the request's: a job that names none, right after a bf16 one, runs in
 * the engine's default (f32 here). */
#define PSNR_BF16_MEAN 35.0
#define PSNR_BF16_MIN 30.0
static void test_e2e_precision(void **state)
{
    (void)state;
    const char *path = LF_SOURCE_DIR "/models/lf-tiny-shapes.safetensors";
    if (access(path, R_OK) != 0) {
        printf("  skipped: %s is absent (the built-in model)\n", path);
        skip();
    }
    lf_engine_t *e = s_engine(NULL);
    if (!e) skip();
    if (lf_engine_load(e, path, NULL) != 0) fail_msg("load %s: %s", path, lf_engine_errstr(e));
    static const char *prompts[3] = {"a large red circle in the center on a blue background",
                                     "a small green square in the top left corner on a white background",
                                     "two yellow triangles on a black background"};
    double psnr_sum = 0;
    int n_bf16 = 0;
    for (int k = 0; k < 3; k++) {
        lf_engine_request_t req = lf_engine_request_defaults();
        req.prompt = prompts[k];
        req.width = req.height = 128;
        req.steps = 6;
        req.cfg = 5.0;
        req.seed = 2000 + (uint64_t)k;
        lf_engine_result_t a = {0}, b = {0};
        /* The f32 image of prompts 1 and 2 names no precision, right after
         * the previous prompt's bf16 job: were that job's precision left
         * set, a would be bf16 too and equal b (se == 0 below). */
        req.precision = k ? NULL : "f32";
        if (lf_engine_generate(e, &req, NULL, NULL, NULL, &a)) fail_msg("%s", lf_engine_errstr(e));
        assert_string_equal(a.precision, "f32");
        assert_null(strstr(a.images[0].infotext, "Precision"));
        req.precision = "bf16";
        if (lf_engine_generate(e, &req, NULL, NULL, NULL, &b)) fail_msg("%s", lf_engine_errstr(e));
        lf_image_t ia = {0}, ib = {0};
        assert_int_equal(lf_image_decode(a.images[0].png, a.images[0].png_len, NULL, &ia, NULL, 0), 0);
        assert_int_equal(lf_image_decode(b.images[0].png, b.images[0].png_len, NULL, &ib, NULL, 0), 0);
        size_t n = (size_t)128 * 128 * 3;
        double se = 0;
        for (size_t i = 0; i < n; i++) se += ((double)ia.pixels[i] - ib.pixels[i]) * ((double)ia.pixels[i] - ib.pixels[i]);
        double psnr = se > 0 ? 10 * log10(255.0 * 255.0 / (se / (double)n)) : INFINITY;
        printf("  %s vs f32: PSNR %.1f dB (%s)\n", b.precision, psnr, prompts[k]);
        if (!strcmp(b.precision, "bf16")) {
            assert_non_null(strstr(b.images[0].infotext, "Precision: bf16"));
            assert_true(psnr >= PSNR_BF16_MIN);
            assert_true(se > 0); /* bf16 did run: not the f32 pixels */
            psnr_sum += psnr, n_bf16++;
        } else {
            assert_string_equal(b.precision, "f32");
            assert_true(se == 0);
        }
        lf_image_clear(&ia), lf_image_clear(&ib);
        lf_engine_result_clear(&a), lf_engine_result_clear(&b);
    }
    if (n_bf16) {
        printf("  mean PSNR %.1f dB\n", psnr_sum / n_bf16);
        assert_true(psnr_sum / n_bf16 >= PSNR_BF16_MEAN);
    }
    lf_engine_request_t req = lf_engine_request_defaults();
    req.precision = "fp8";
    lf_engine_result_t r = {0};
    assert_int_equal(lf_engine_generate(e, &req, NULL, NULL, NULL, &r), LF_EINVAL);
    assert_non_null(strstr(lf_engine_errstr(e), "precision"));
    lf_engine_destroy(&e);
}
#endif

#ifdef LF_HAVE_MODEL /* the family from tensor names needs the networks' module */
/* lf_engine_probe's resolution: lf.config "resolution" in a safetensors
 * file's metadata, a diffusers folder's unet sample_size x 8, else the
 * family's size; a file of unknown tensors has none. */
static void s_write_probe_file(const char *path, const char *tensor, const char *config)
{
    static const float v = 1.0f;
    lf_tensor_info_t t = {.name = tensor, .dtype = LF_DTYPE_F32, .ndim = 1, .shape = {1}, .strides = {1},
                          .data = &v, .nbytes = sizeof v};
    const char *meta[2] = {"lf.config", config};
    assert_int_equal(lf_safetensors_write(path, &t, 1, meta, config ? 1 : 0), 0);
}

static void test_probe_resolution(void **state)
{
    (void)state;
    static const char *unet = "model.diffusion_model.input_blocks.0.0.weight";
    char path[] = "/tmp/lf_probe_XXXXXX", err[256] = "";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    const char *family = NULL;
    uint32_t side = 7;
    s_write_probe_file(path, unet, "{\"name\": \"lf-tiny-shapes\", \"resolution\": 256}");
    assert_int_equal(lf_engine_probe(path, &family, &side, err, sizeof err), 0);
    assert_string_equal(family, "sd15");
    assert_int_equal(side, 256);
    s_write_probe_file(path, unet, NULL); /* a real SD1.5 file: no lf.config */
    assert_int_equal(lf_engine_probe(path, &family, &side, err, sizeof err), 0);
    assert_int_equal(side, 512);
    s_write_probe_file(path, unet, "{\"resolution\": \"big\"}"); /* nonsense: the family's */
    assert_int_equal(lf_engine_probe(path, &family, &side, err, sizeof err), 0);
    assert_int_equal(side, 512);
    s_write_probe_file(path, "conditioner.embedders.0.transformer.text_model.x", NULL);
    assert_int_equal(lf_engine_probe(path, &family, &side, err, sizeof err), 0);
    assert_string_equal(family, "sdxl");
    assert_int_equal(side, 1024);
    s_write_probe_file(path, "something.else", NULL);
    assert_int_equal(lf_engine_probe(path, &family, &side, err, sizeof err), 0);
    assert_string_equal(family, "unknown");
    assert_int_equal(side, 0);
    assert_int_equal(lf_engine_probe(path, &family, NULL, err, sizeof err), 0); /* resolution optional */
    unlink(path);
    /* The diffusers fixture's unet/config.json: sample_size 8 -> 64 px. */
    assert_int_equal(lf_engine_probe(LF_FIXTURE_DIR "/models/tiny_b_diffusers", &family, &side, err, sizeof err), 0);
    assert_int_equal(side, 64);
}
#endif

/* A file of n bytes (sparse) in dir; returns path. */
static const char *s_sized_file(const char *dir, const char *name, off_t n, char *path, size_t len)
{
    snprintf(path, len, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(ftruncate(fileno(f), n), 0);
    fclose(f);
    return path;
}

static int s_gen(lf_engine_t *e, const char *refiner, const char *vae)
{
    lf_engine_request_t req = lf_engine_request_defaults();
    req.prompt = "a lighthouse";
    req.width = req.height = 64;
    req.steps = 2;
    req.refiner_path = refiner;
    /* 1 = no hand-off (lf_pipeline.h): these tests are about residency, not
     * the refiner's steps, which the SDXL pipeline tests cover. */
    req.refiner_switch_at = 1.0;
    req.vae_path = vae;
    req.orig_width = 2048, req.crop_top = 16, req.target_height = 512;
    req.aesthetic_score = 7, req.negative_aesthetic_score = 2;
    lf_engine_result_t res = {0};
    int rc = lf_engine_generate(e, &req, NULL, NULL, NULL, &res);
    if (rc == 0) assert_int_equal(res.n_images, 1);
    lf_engine_result_clear(&res);
    return rc;
}

/* The refiner through the facade (the fake model): loaded on first use,
 * kept resident while base + refiner fit the memory budget, released when
 * they do not or when a new base needs the room; a job's VAE reloads the
 * base only when it changes; errors name the file. */
/* What test_fake_refiner_vae's models say they hold resident. */
static uint64_t s_resident;

static uint64_t s_resident_bytes(const lf_model_t *m)
{
    (void)m;
    return s_resident;
}

static void test_fake_refiner_vae(void **state)
{
    (void)state;
    char vb[1024], err[256] = "", dir[] = "/tmp/lf-engine-refinerXXXXXX";
    const char *vocab = s_vocab(vb, sizeof vb);
    if (!vocab) skip();
    assert_non_null(mkdtemp(dir));
    char base[512], big[512], ref[512], vae[512], broken[512];
    s_sized_file(dir, "base.safetensors", 100, base, sizeof base);
    s_sized_file(dir, "big.safetensors", 200, big, sizeof big);
    s_sized_file(dir, "sdxl-refiner.safetensors", 60, ref, sizeof ref);
    s_sized_file(dir, "fixed-vae.safetensors", 0, vae, sizeof vae);
    s_sized_file(dir, "broken-vae.safetensors", 0, broken, sizeof broken);
    lf_engine_stats_t st;

    /* Budget 200: base (100) + refiner (60) fit; the big base (200) does not. */
    lf_engine_opts_t o = {.vocab_path = vocab, .model_ops = &lf_fake_model_ops, .memory_budget = 200};
    lf_engine_t *e = NULL;
    assert_int_equal(lf_engine_new(&o, &e, err, sizeof err), 0);
    assert_int_equal(lf_engine_load(e, base, NULL), 0);
    assert_null(lf_engine_refiner_name(e));
    assert_int_equal(s_gen(e, ref, NULL), 0);
    assert_string_equal(lf_engine_refiner_name(e), "sdxl-refiner");
    assert_int_equal(s_gen(e, ref, NULL), 0);
    assert_int_equal(s_gen(e, NULL, NULL), 0); /* a job without it leaves it resident */
    lf_engine_stats(e, &st);
    assert_int_equal(st.refiner_loads, 1);
    assert_int_equal(st.model_loads, 1);
    assert_string_equal(lf_engine_refiner_name(e), "sdxl-refiner");
    assert_string_equal(lf_engine_model_name(e), "base");
    assert_int_equal(lf_engine_load(e, big, NULL), 0); /* the new base needs the room */
    assert_null(lf_engine_refiner_name(e));
    assert_int_equal(lf_engine_load(e, base, NULL), 0);
    assert_int_equal(s_gen(e, ref, NULL), 0);
    lf_engine_unload_refiner(e);
    assert_null(lf_engine_refiner_name(e));

    /* Errors name the file; the base stays. */
    char missing[600];
    snprintf(missing, sizeof missing, "%s/missing-refiner.safetensors", dir);
    assert_int_equal(s_gen(e, missing, NULL), LF_EIO);
    assert_non_null(strstr(lf_engine_errstr(e), missing));
    assert_non_null(strstr(lf_engine_errstr(e), "refiner"));
    assert_string_equal(lf_engine_model_name(e), "base");
    /* A refiner of another family than the base. */
    char xl[512];
    s_sized_file(dir, "fam-sdxl-refiner.safetensors", 10, xl, sizeof xl);
    assert_int_equal(s_gen(e, xl, NULL), LF_EINVAL);
    assert_non_null(strstr(lf_engine_errstr(e), xl));
    assert_non_null(strstr(lf_engine_errstr(e), "sdxl"));
    assert_null(lf_engine_refiner_name(e));
    unlink(xl);
    lf_engine_request_t bad = lf_engine_request_defaults();
    bad.refiner_path = ref;
    bad.refiner_switch_at = 0;
    lf_engine_result_t res = {0};
    assert_int_equal(lf_engine_generate(e, &bad, NULL, NULL, NULL, &res), LF_EINVAL);
    assert_non_null(strstr(lf_engine_errstr(e), "refiner_switch_at"));

    /* The VAE: reloaded only when it changes; "" = the checkpoint's; NULL = as loaded. */
    lf_engine_stats(e, &st);
    unsigned loads = st.model_loads;
    assert_null(lf_engine_vae_path(e));
    assert_int_equal(s_gen(e, NULL, vae), 0);
    assert_string_equal(lf_engine_vae_path(e), vae);
    assert_int_equal(s_gen(e, NULL, vae), 0);
    assert_int_equal(s_gen(e, NULL, NULL), 0);
    lf_engine_stats(e, &st);
    assert_int_equal(st.model_loads, loads + 1);
    assert_string_equal(lf_engine_vae_path(e), vae);
    assert_int_equal(s_gen(e, NULL, ""), 0);
    assert_null(lf_engine_vae_path(e));
    /* The infotext names a separate VAE ("VAE: name" after the model): the
     * request's vae_name, else the file's name; nothing for the checkpoint's. */
    lf_engine_request_t vr = lf_engine_request_defaults();
    vr.prompt = "a lighthouse";
    vr.width = vr.height = 64;
    vr.steps = 1;
    vr.vae_path = vae;
    vr.vae_name = "my-vae";
    assert_int_equal(lf_engine_generate(e, &vr, NULL, NULL, NULL, &res), 0);
    assert_non_null(strstr(res.images[0].infotext, "Model: base, VAE: my-vae, "));
    lf_engine_result_clear(&res);
    vr.vae_path = "";
    assert_int_equal(lf_engine_generate(e, &vr, NULL, NULL, NULL, &res), 0);
    assert_null(strstr(res.images[0].infotext, "VAE"));
    lf_engine_result_clear(&res);
    vr.vae_path = vae;
    vr.vae_name = NULL;
    assert_int_equal(lf_engine_generate(e, &vr, NULL, NULL, NULL, &res), 0);
    assert_non_null(strstr(res.images[0].infotext, "Model: base, VAE: fixed-vae, "));
    lf_engine_result_clear(&res);
    assert_int_equal(s_gen(e, NULL, ""), 0);
    char nofile[600];
    snprintf(nofile, sizeof nofile, "%s/no-such-vae.safetensors", dir);
    assert_int_equal(s_gen(e, NULL, nofile), LF_EIO);
    assert_non_null(strstr(lf_engine_errstr(e), nofile));
    assert_int_equal(s_gen(e, NULL, broken), LF_EFORMAT);
    assert_non_null(strstr(lf_engine_errstr(e), broken));
    assert_string_equal(lf_engine_model_name(e), "base"); /* back on its own VAE */
    assert_null(lf_engine_vae_path(e));
    assert_int_equal(s_gen(e, NULL, NULL), 0);
    lf_engine_destroy(&e);

    /* Budget 150: base + refiner (160) do not fit: released after the job. */
    o.memory_budget = 150;
    assert_int_equal(lf_engine_new(&o, &e, err, sizeof err), 0);
    /* A base that alone exceeds the budget is refused, its size named. */
    assert_int_equal(lf_engine_model_bytes(big, NULL, NULL), 200);
    assert_int_equal(lf_engine_load(e, big, NULL), LF_ELIMIT);
    assert_non_null(strstr(lf_engine_errstr(e), big));
    assert_non_null(strstr(lf_engine_errstr(e), "memory budget"));
    assert_null(lf_engine_model_name(e));
    assert_int_equal(lf_engine_load(e, base, NULL), 0);
    assert_int_equal(s_gen(e, ref, NULL), 0);
    assert_null(lf_engine_refiner_name(e));
    assert_int_equal(s_gen(e, ref, NULL), 0);
    lf_engine_stats(e, &st);
    assert_int_equal(st.refiner_loads, 2);
    lf_engine_destroy(&e);

    /* With a model that says what its weights take resident (GGUF blocks
     * kept, quantize-on-load), the budget counts that, not the files: the
     * 100-byte base taking 500 is refused once loaded, naming "resident";
     * quantized on load (weights q8_0), the 200-byte file taking 90 fits
     * the budget of 150 its file size would exceed, and the refiner (its 60
     * bytes held as 90) no longer fits beside it. */
    lf_model_ops_t rops = lf_fake_model_ops;
    rops.weight_bytes = s_resident_bytes;
    o.model_ops = &rops;
    assert_int_equal(lf_engine_new(&o, &e, err, sizeof err), 0);
    s_resident = 500;
    assert_int_equal(lf_engine_load(e, base, NULL), LF_ELIMIT);
    assert_non_null(strstr(lf_engine_errstr(e), "resident"));
    assert_null(lf_engine_model_name(e));
    lf_engine_destroy(&e);
    o.weights = "q8_0";
    assert_int_equal(lf_engine_new(&o, &e, err, sizeof err), 0);
    s_resident = 90;
    assert_int_equal(lf_engine_load(e, big, NULL), 0);
    assert_int_equal(s_gen(e, ref, NULL), 0);
    assert_null(lf_engine_refiner_name(e)); /* 90 + 90 > 150: released after the job */
    lf_engine_destroy(&e);
    o.weights = NULL, o.model_ops = &lf_fake_model_ops;

    const char *names[] = {"base", "big", "sdxl-refiner", "fixed-vae", "broken-vae"};
    for (size_t i = 0; i < 5; i++) {
        char p[600];
        snprintf(p, sizeof p, "%s/%s.safetensors", dir, names[i]);
        unlink(p);
    }
    rmdir(dir);
}

/* The VAE tile the facade asks for: tiles of 64 latent pixels above
 * 768x768 by default (so 1024x1024 SDXL decodes in bounded memory), whole
 * images below, the engine's own setting when given (-1: never tile). */
static int s_last_tile = -99;

static int s_decode_tile_rec(lf_model_t *m, const float *z, int batch, int h, int w, int tile, float *img)
{
    s_last_tile = tile;
    return lf_fake_model_ops.vae_decode(m, z, batch, h, w, tile, img);
}

static void test_vae_tile_default(void **state)
{
    (void)state;
    char vb[1024], err[256] = "";
    const char *vocab = s_vocab(vb, sizeof vb);
    if (!vocab) skip();
    lf_model_ops_t ops = lf_fake_model_ops;
    ops.vae_decode = s_decode_tile_rec;
    static const struct {
        int opt, w, h, want;
    } cases[] = {{0, 512, 512, 0}, {0, 768, 768, 0}, {0, 1024, 1024, 64}, {0, 1024, 640, 64},
                 {-1, 1024, 1024, 0}, {32, 1024, 1024, 32}, {32, 256, 256, 32}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        lf_engine_opts_t o = {.vocab_path = vocab, .model_ops = &ops, .vae_tile = cases[i].opt};
        lf_engine_t *e = NULL;
        assert_int_equal(lf_engine_new(&o, &e, err, sizeof err), 0);
        assert_int_equal(lf_engine_load(e, "/nowhere/fam-sdxl-base.safetensors", NULL), 0);
        lf_engine_request_t req = lf_engine_request_defaults();
        req.prompt = "a lighthouse";
        req.width = cases[i].w, req.height = cases[i].h;
        req.steps = 1;
        lf_engine_result_t res = {0};
        s_last_tile = -99;
        assert_int_equal(lf_engine_generate(e, &req, NULL, NULL, NULL, &res), 0);
        lf_engine_result_clear(&res);
        printf("  vae_tile %d, %dx%d: tile %d\n", cases[i].opt, cases[i].w, cases[i].h, s_last_tile);
        assert_int_equal(s_last_tile, cases[i].want);
        lf_engine_destroy(&e);
    }
}

/* argv[1], when given, runs only the tests whose names match it (a glob). */
int main(int argc, char **argv)
{
    if (argc > 1) cmocka_set_test_filter(argv[1]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fake_facade),
        cmocka_unit_test(test_fake_refiner_vae),
        cmocka_unit_test(test_vae_tile_default),
        cmocka_unit_test(test_bad_device),
#ifdef LF_HAVE_MODEL
        cmocka_unit_test(test_probe_resolution),
        cmocka_unit_test(test_e2e_single_file),
        cmocka_unit_test(test_e2e_diffusers),
        cmocka_unit_test(test_e2e_clip_ids),
        cmocka_unit_test(test_default_model_previews),
        cmocka_unit_test(test_e2e_cache),
        cmocka_unit_test(test_e2e_precision),
#endif
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
