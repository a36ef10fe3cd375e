/* Hires-Fix (A1111's txt2img second pass): the size, step and pixel
 * upscale rules of lf_hires against A1111's code read by hand, and the
 * whole two-pass generation on the built-in model
 * (models/lf-tiny-shapes.safetensors) against the same two passes run with
 * diffusers (tests/reference/make_hires_fixtures.py: txt2img, "Latent"
 * resize with torch's interpolate or a Pillow LANCZOS pixel upscale,
 * img2img at the strength), plus the infotext A1111 reads back and bad
 * input. The CLIP merges come from the reference data (skipped when
 * absent). */
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
#include "lf_hires.h"
#include "lf_image.h"
#include "lf_infotext.h"
#include "lf_params.h"
#include "lf_resize.h"
#include "lf_test_util.h"

/* calculate_target_resolution, case by case. */
static void test_sizes(void **state)
{
    (void)state;
    lf_hires_size_t s;
    char err[128];
    assert_int_equal(lf_hires_size(512, 512, 2.0, 0, 0, 8, 4096, &s, err, sizeof err), 0);
    assert_int_equal(s.up_w, 1024), assert_int_equal(s.up_h, 1024), assert_int_equal(s.width, 1024);
    assert_int_equal(lf_hires_size(512, 768, 1.5, 0, 0, 8, 4096, &s, err, sizeof err), 0);
    assert_int_equal(s.width, 768), assert_int_equal(s.height, 1152);
    /* Only x: y = x * h // w. */
    assert_int_equal(lf_hires_size(512, 768, 2.0, 1024, 0, 8, 4096, &s, err, sizeof err), 0);
    assert_int_equal(s.width, 1024), assert_int_equal(s.height, 1536), assert_int_equal(s.trunc_y, 0);
    /* Only y. */
    assert_int_equal(lf_hires_size(768, 512, 2.0, 0, 1024, 8, 4096, &s, err, sizeof err), 0);
    assert_int_equal(s.width, 1536), assert_int_equal(s.height, 1024);
    /* Both: cover 1024x768 from a square (src ratio 1 < 4/3: x rules), crop
     * (1024 - 768) / 8 = 32 latent rows. */
    assert_int_equal(lf_hires_size(512, 512, 2.0, 1024, 768, 8, 4096, &s, err, sizeof err), 0);
    assert_int_equal(s.up_w, 1024), assert_int_equal(s.up_h, 1024);
    assert_int_equal(s.trunc_x, 0), assert_int_equal(s.trunc_y, 32);
    assert_int_equal(s.width, 1024), assert_int_equal(s.height, 768);
    /* Both, the other way: 512x512 -> 768x1024 crops columns. */
    assert_int_equal(lf_hires_size(512, 512, 2.0, 768, 1024, 8, 4096, &s, err, sizeof err), 0);
    assert_int_equal(s.trunc_x, 32), assert_int_equal(s.width, 768), assert_int_equal(s.height, 1024);
    /* Not a multiple of 8 (A1111 would hand the VAE 665 px): refused. */
    assert_int_equal(lf_hires_size(512, 512, 1.3, 0, 0, 8, 4096, &s, err, sizeof err), LF_EINVAL);
    assert_non_null(strstr(err, "665x665"));
    assert_int_equal(lf_hires_size(1024, 1024, 8.0, 0, 0, 8, 4096, &s, err, sizeof err), LF_EINVAL);
}

/* setup_img2img_steps with explicit steps (the hires pass). */
static void test_steps(void **state)
{
    (void)state;
    int total = 0, start = 0;
    assert_int_equal(lf_hires_steps(4, 0.5, &total, &start), 0);
    assert_int_equal(total, 8), assert_int_equal(start, 4);
    assert_int_equal(lf_hires_steps(20, 0.7, &total, &start), 0); /* int(20 / 0.7) = 28 */
    assert_int_equal(total, 28), assert_int_equal(start, 8);
    assert_int_equal(lf_hires_steps(10, 1.0, &total, &start), 0); /* min(1, 0.999): int(10.01) */
    assert_int_equal(total, 10), assert_int_equal(start, 0);
    assert_int_equal(lf_hires_steps(10, 0.0, &total, &start), LF_EINVAL);
}

/* A fake x4 "model": nearest x4 (so the later LANCZOS steps are visible). */
static int s_fake_x4(void *ud, const uint8_t *src, int sw, int sh, uint8_t **dst, int *dw, int *dh)
{
    int *calls = ud;
    (*calls)++;
    uint8_t *o = malloc((size_t)sw * 4 * sh * 4 * 3);
    if (!o) return LF_ENOMEM;
    assert_int_equal(lf_resize_rgb8(src, sw, sh, o, sw * 4, sh * 4, LF_RESIZE_NEAREST), 0);
    *dst = o, *dw = sw * 4, *dh = sh * 4;
    return 0;
}

/* Upscaler.upscale + resize_image: "Lanczos" 2x is one LANCZOS resize; a
 * x4 model for a x2 target runs once, then LANCZOS down to the target. */
static void test_pixel_upscale(void **state)
{
    (void)state;
    enum { W = 24, H = 16 };
    uint8_t src[W * H * 3];
    for (int i = 0; i < W * H * 3; i++) src[i] = (uint8_t)(i * 37 + (i / 7) * 11);
    uint8_t *got = NULL, want[W * 2 * H * 2 * 3];
    assert_int_equal(lf_hires_upscale_rgb8(lf_resize_builtin_find("Lanczos"), NULL, NULL, src, W, H, 2 * W,
                                           2 * H, &got), 0);
    assert_int_equal(lf_resize_rgb8(src, W, H, want, 2 * W, 2 * H, LF_RESIZE_LANCZOS), 0);
    assert_memory_equal(got, want, sizeof want);
    free(got);
    int calls = 0;
    assert_int_equal(lf_hires_upscale_rgb8(NULL, s_fake_x4, &calls, src, W, H, 2 * W, 2 * H, &got), 0);
    assert_int_equal(calls, 1);
    uint8_t *x4 = malloc(W * 4 * H * 4 * 3);
    assert_int_equal(lf_resize_rgb8(src, W, H, x4, 4 * W, 4 * H, LF_RESIZE_NEAREST), 0);
    assert_int_equal(lf_resize_rgb8(x4, 4 * W, 4 * H, want, 2 * W, 2 * H, LF_RESIZE_LANCZOS), 0);
    assert_memory_equal(got, want, sizeof want);
    free(got);
    free(x4);
    assert_int_equal(lf_hires_upscale_rgb8(lf_resize_builtin_find("Latent"), NULL, NULL, src, W, H, 2 * W,
                                           2 * H, &got), LF_EINVAL);
}

static lf_engine_t *s_shapes(void)
{
    char vb[1024], err[256] = "";
    const char *vocab = lf_test_refdata(vb, sizeof vb, "tokenizers/clip/bpe_simple_vocab_16e6.txt.gz");
    const char *path = LF_SOURCE_DIR "/models/lf-tiny-shapes.safetensors";
    if (!vocab) return NULL;
    if (access(path, R_OK) != 0) {
        printf("SKIP: %s is absent (the built-in model)\n", path);
        return NULL;
    }
    lf_engine_opts_t o = {.vocab_path = vocab, .n_threads = 2};
    lf_engine_t *e = NULL;
    if (lf_engine_new(&o, &e, err, sizeof err) != 0) fail_msg("lf_engine_new: %s", err);
    if (lf_engine_load(e, path, NULL) != 0) fail_msg("load: %s", lf_engine_errstr(e));
    return e;
}

/* The fixture's settings (tests/engine/fixtures/hires/cases.json). */
static lf_engine_request_t s_request(const char *upscaler)
{
    lf_engine_request_t r = lf_engine_request_defaults();
    r.prompt = "a large yellow square in the center on a black background";
    r.negative = "blurry";
    r.seed = 7;
    r.steps = 6;
    r.cfg = 5.0;
    r.sampler = "euler";
    r.scheduler = "normal";
    r.width = r.height = 64;
    r.enable_hr = 1;
    r.hr_scale = 2.0;
    r.hr_steps = 4;
    r.denoise = 0.5;
    r.hr_upscaler = upscaler;
    return r;
}

static int s_progress_max, s_progress_total, s_previews;
static void s_progress(void *ud, int step, int steps, const uint8_t *preview, size_t len)
{
    (void)ud, (void)len;
    if (step > s_progress_max) s_progress_max = step;
    s_progress_total = steps;
    if (preview) s_previews++;
}

/* The two passes equal diffusers' by hand: 8-bit images within 2 steps
 * (compare_engine's tolerance for this f16 model: float rounding through
 * 10 UNet calls and two VAE passes), mean difference well under 1. */
static void test_shapes_vs_diffusers(void **state)
{
    (void)state;
    lf_engine_t *e = s_shapes();
    if (!e) skip();
    static const char *const cases[][2] = {{"latent", "Latent"}, {"lanczos", "Lanczos"}};
    for (size_t c = 0; c < 2; c++) {
        char fx[1024], rel[64];
        snprintf(rel, sizeof rel, "hires/%s.u8", cases[c][0]);
        FILE *f = fopen(lf_test_fixture(fx, sizeof fx, rel), "rb");
        assert_non_null(f);
        static uint8_t want[128 * 128 * 3];
        assert_int_equal(fread(want, 1, sizeof want, f), sizeof want);
        fclose(f);
        lf_engine_request_t r = s_request(cases[c][1]);
        r.preview_every = 1;
        lf_engine_result_t res = {0};
        s_progress_max = s_progress_total = s_previews = 0;
        if (lf_engine_generate(e, &r, s_progress, NULL, NULL, &res) != 0)
            fail_msg("%s: %s", cases[c][1], lf_engine_errstr(e));
        assert_int_equal(res.images[0].width, 128);
        assert_int_equal(res.images[0].height, 128);
        assert_int_equal(res.steps_run, 6 + 4);
        /* One bar over both passes; previews from both (not with the last step). */
        assert_int_equal(s_progress_total, 10);
        assert_int_equal(s_progress_max, 10);
        assert_int_equal(s_previews, 9);
        lf_image_t im = {0};
        assert_int_equal(lf_image_decode(res.images[0].png, res.images[0].png_len, NULL, &im, NULL, 0), 0);
        assert_int_equal(im.width, 128);
        int worst = 0;
        double sum = 0;
        for (size_t i = 0; i < sizeof want; i++) {
            int dd = abs((int)im.pixels[i] - (int)want[i]);
            worst = dd > worst ? dd : worst;
            sum += dd;
        }
        if (getenv("LF_HIRES_DUMP")) {
            char out[256];
            snprintf(out, sizeof out, "%s/%s.png", getenv("LF_HIRES_DUMP"), cases[c][0]);
            FILE *o = fopen(out, "wb");
            if (o) fwrite(res.images[0].png, 1, res.images[0].png_len, o), fclose(o);
        }
        printf("  %s: max |ours - diffusers| = %d, mean %.4f (of 255)\n", cases[c][1], worst, sum / sizeof want);
        if (!getenv("LF_HIRES_DUMP")) assert_true(worst <= 2);
        assert_true(sum / sizeof want < 0.1);
        lf_image_clear(&im);
        /* The infotext as A1111 writes it, and read back (A1111's paste rule). */
        lf_infotext_t it = {0};
        assert_int_equal(lf_infotext_parse(res.images[0].infotext, &it), 0);
        assert_string_equal(lf_infotext_get(&it, "Size-1"), "64");
        assert_string_equal(lf_infotext_get(&it, "Hires upscale"), "2");
        assert_string_equal(lf_infotext_get(&it, "Hires steps"), "4");
        assert_string_equal(lf_infotext_get(&it, "Hires upscaler"), cases[c][1]);
        assert_string_equal(lf_infotext_get(&it, "Denoising strength"), "0.5");
        assert_null(lf_infotext_get(&it, "Hires sampler"));
        lf_infotext_clear(&it);
        lf_job_params_t p = {0};
        assert_int_equal(lf_params_from_infotext(res.images[0].infotext, &p, NULL), 0);
        assert_true(p.enable_hr);
        assert_string_equal(p.mode, "txt2img");
        assert_true(p.hr_scale == 2.0 && p.hr_second_pass_steps == 4 && p.denoise == 0.5);
        assert_string_equal(p.hr_upscaler, cases[c][1]);
        lf_params_clear(&p);
        lf_engine_result_clear(&res);
    }
    lf_engine_destroy(&e);
}

/* Bad input: an upscaler nobody has, a strength of 0, a size that is not
 * a multiple of 8, an init image; all refused by name before any work. */
static void test_bad_input(void **state)
{
    (void)state;
    lf_engine_t *e = s_shapes();
    if (!e) skip();
    lf_engine_result_t res = {0};
    lf_engine_request_t r = s_request("4x-NoSuchModel");
    assert_int_equal(lf_engine_generate(e, &r, NULL, NULL, NULL, &res), LF_EINVAL);
    assert_non_null(strstr(lf_engine_errstr(e), "hr_upscaler '4x-NoSuchModel'"));
    r = s_request("Latent");
    r.denoise = 0.0;
    assert_int_equal(lf_engine_generate(e, &r, NULL, NULL, NULL, &res), LF_EINVAL);
    assert_non_null(strstr(lf_engine_errstr(e), "denoising strength"));
    r = s_request("Latent (bicubic antialiased)");
    r.hr_scale = 1.3; /* 83.2 -> 83 */
    assert_int_equal(lf_engine_generate(e, &r, NULL, NULL, NULL, &res), LF_EINVAL);
    assert_non_null(strstr(lf_engine_errstr(e), "multiple of 8"));
    r = s_request("Latent");
    r.hr_sampler = "no-such-sampler";
    assert_int_equal(lf_engine_generate(e, &r, NULL, NULL, NULL, &res), LF_EINVAL);
    assert_non_null(strstr(lf_engine_errstr(e), "hr_sampler"));
    lf_engine_destroy(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_steps),
        cmocka_unit_test(test_pixel_upscale),
        cmocka_unit_test(test_shapes_vs_diffusers),
        cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
