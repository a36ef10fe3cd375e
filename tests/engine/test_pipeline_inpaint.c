/* Inpainting through the pipeline.
 *
 * 1. Over the fake model (lf_fake_model.c): pixels outside the blurred mask
 *    come back as the init image's bytes for every masked content (fill,
 *    original, latent noise, latent nothing), for "only masked" (the output
 *    keeps the init image's size), for a mask of another size than the
 *    image and for an RGBA mask (its alpha is the mask, as A1111 reads it);
 *    inside, the image changed. Bad input: an undecodable mask, a mask
 *    without an init image. The infotext keys A1111 writes.
 * 2. Over the real tiny networks (the fixture checkpoint widened to CLIP's
 *    vocabulary, lf_test_models.h; its 9-input copy for the inpainting-UNet
 *    cases) against tests/reference/make_inpaint_fixtures.py, which writes
 *    A1111's rule out by hand over diffusers' networks, Pillow and OpenCV:
 *    the final latent (after the last blend) to 1e-4 relative and the
 *    result's bytes (overlay included) to one level; and diffusers' own
 *    StableDiffusionInpaintPipeline on the 9-input model and
 *    StableDiffusionXLInpaintPipeline on the tiny SDXL base widened the same
 *    way, where the two rules meet (a white mask, strength 1). Skips without the CLIP merges
 *    file of the reference data. */
#include <jansson.h>
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
#include "lf_model.h"
#include "lf_pipeline.h"
#include "lf_safetensors.h"
#include "lf_tensorinfo.h"
#include "lf_test_capture.h"
#include "lf_test_models.h"
#include "lf_test_util.h"

/* ---- 1. the fake model ---------------------------------------------------- */

typedef struct {
    lf_clip_tokenizer_t *tok;
    lf_model_t *model;
    lf_pipeline_ctx_t ctx;
} s_fix_t;

static int s_setup(void **state)
{
    char buf[1024], err[256];
    const char *vocab = lf_test_refdata(buf, sizeof buf, "tokenizers/clip/bpe_simple_vocab_16e6.txt.gz");
    *state = NULL;
    if (!vocab) return 0;
    s_fix_t *f = calloc(1, sizeof *f);
    if (!f || lf_clip_tokenizer_load(&f->tok, vocab, err, sizeof err) != 0) return -1;
    if (lf_fake_model_ops.load("fake.safetensors", NULL, &f->model, err, sizeof err) != 0) return -1;
    f->ctx = (lf_pipeline_ctx_t){.ops = &lf_fake_model_ops, .model = f->model, .tokenizer = f->tok,
                                 .model_name = "fake-sd15"};
    *state = f;
    return 0;
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

/* A textured RGB image (every pixel distinct enough to see a change). */
static uint8_t *s_rgb(int w, int h)
{
    uint8_t *p = malloc((size_t)w * h * 3);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t *q = p + ((size_t)y * w + x) * 3;
            q[0] = (uint8_t)(x * 255 / (w - 1));
            q[1] = (uint8_t)(y * 255 / (h - 1));
            q[2] = (uint8_t)((x * 37 + y * 11) % 256);
        }
    return p;
}

static uint8_t *s_png(const uint8_t *rgb, int w, int h, size_t *len)
{
    lf_image_t im = {.pixels = (uint8_t *)rgb, .width = (uint32_t)w, .height = (uint32_t)h, .channels = 3};
    uint8_t *png = NULL;
    assert_int_equal(lf_image_png_encode(&im, NULL, 0, -1, &png, len, NULL, 0), 0);
    return png;
}

/* A black mask with a white rectangle [x1, x2) x [y1, y2). */
static uint8_t *s_mask_png(int w, int h, int x1, int y1, int x2, int y2, size_t *len)
{
    uint8_t *m = calloc((size_t)w * h, 3);
    for (int y = y1; y < y2; y++) memset(m + ((size_t)y * w + x1) * 3, 255, (size_t)(x2 - x1) * 3);
    uint8_t *png = s_png(m, w, h, len);
    free(m);
    return png;
}

static lf_pipeline_request_t s_req(void)
{
    return (lf_pipeline_request_t){.prompt = "a photo of a cat", .negative = "blurry",
                                   .sampler = LF_SAMPLER_EULER, .scheduler = LF_SCHEDULER_NORMAL,
                                   .steps = 4, .cfg = 7.0, .seed = 42, .width = 64, .height = 48,
                                   .batch = 1, .denoise = 0.75, .mask_blur_x = 4, .mask_blur_y = 4,
                                   .initial_noise_multiplier = 1, .inpainting_mask_weight = 1};
}

/* Runs req; checks every pixel farther than `margin` from the rectangle
 * (in output pixels) is the original's, and that some pixel inside
 * changed. Returns the infotext (caller frees). */
static char *s_run_unchanged(s_fix_t *f, lf_pipeline_request_t *req, const uint8_t *orig, int ow, int oh, int x1,
                             int y1, int x2, int y2, int margin)
{
    lf_pipeline_result_t res = {0};
    char err[256] = "";
    if (lf_pipeline_run(&f->ctx, req, NULL, &res, err, sizeof err) != 0) fail_msg("run: %s", err);
    assert_int_equal(res.images[0].width, ow);
    assert_int_equal(res.images[0].height, oh);
    lf_image_t im = {0};
    assert_int_equal(lf_image_decode(res.images[0].png, res.images[0].png_len, NULL, &im, NULL, 0), 0);
    assert_int_equal(im.width, (uint32_t)ow);
    int changed = 0;
    for (int y = 0; y < oh; y++)
        for (int x = 0; x < ow; x++) {
            const size_t o = ((size_t)y * ow + x) * 3;
            const int far = x < x1 - margin || x >= x2 + margin || y < y1 - margin || y >= y2 + margin;
            if (far && memcmp(im.pixels + o, orig + o, 3))
                fail_msg("pixel (%d,%d) outside the mask changed: %u,%u,%u vs %u,%u,%u", x, y, im.pixels[o],
                         im.pixels[o + 1], im.pixels[o + 2], orig[o], orig[o + 1], orig[o + 2]);
            if (x >= x1 && x < x2 && y >= y1 && y < y2 && memcmp(im.pixels + o, orig + o, 3)) changed++;
        }
    assert_true(changed > (x2 - x1) * (y2 - y1) / 2);
    lf_image_clear(&im);
    char *text = strdup(res.images[0].infotext);
    lf_pipeline_result_clear(&res);
    return text;
}

static void test_unmasked_unchanged_each_fill(void **state)
{
    s_fix_t *f = *state;
    if (!f) skip();
    size_t il, ml;
    uint8_t *rgb = s_rgb(64, 48), *init = s_png(rgb, 64, 48, &il), *mask = s_mask_png(64, 48, 20, 16, 40, 32, &ml);
    static const char *const content[] = {"Masked content: fill", NULL, "Masked content: latent noise",
                                          "Masked content: latent nothing"};
    for (int fill = 0; fill < 4; fill++) {
        lf_pipeline_request_t req = s_req();
        req.init_image = init, req.init_image_len = il, req.mask = mask, req.mask_len = ml;
        req.inpainting_fill = fill;
        /* Blur sigma 4: kernel radius 10 (A1111's 2 * int(2.5 * 4 + 0.5) + 1 taps). */
        char *text = s_run_unchanged(f, &req, rgb, 64, 48, 20, 16, 40, 32, 11);
        assert_non_null(strstr(text, "Mask blur: 4"));
        if (content[fill]) assert_non_null(strstr(text, content[fill]));
        else assert_null(strstr(text, "Masked content"));
        assert_null(strstr(text, "Inpaint area"));
        free(text);
    }
    free(rgb), free(init), free(mask);
}

static void test_only_masked(void **state)
{
    s_fix_t *f = *state;
    if (!f) skip();
    size_t il, ml;
    /* A 96x80 image, the masked box is cropped (padding 8), resized to the
     * job's 64x48, generated, resized back and pasted: the PNG is 96x80. */
    uint8_t *rgb = s_rgb(96, 80), *init = s_png(rgb, 96, 80, &il), *mask = s_mask_png(96, 80, 50, 30, 70, 46, &ml);
    lf_pipeline_request_t req = s_req();
    req.init_image = init, req.init_image_len = il, req.mask = mask, req.mask_len = ml;
    req.inpainting_fill = 1, req.inpaint_full_res = 1, req.inpaint_full_res_padding = 8;
    req.mask_blur_x = req.mask_blur_y = 2; /* radius 5 */
    char *text = s_run_unchanged(f, &req, rgb, 96, 80, 50, 30, 70, 46, 6);
    assert_non_null(strstr(text, "Inpaint area: Only masked, Masked area padding: 8"));
    free(text);
    /* Inverted: the black part is repainted; the white box stays. */
    req.inpainting_mask_invert = 1;
    lf_pipeline_result_t res = {0};
    char err[256] = "";
    assert_int_equal(lf_pipeline_run(&f->ctx, &req, NULL, &res, err, sizeof err), 0);
    assert_non_null(strstr(res.images[0].infotext, "Mask mode: Inpaint not masked"));
    lf_image_t im = {0};
    assert_int_equal(lf_image_decode(res.images[0].png, res.images[0].png_len, NULL, &im, NULL, 0), 0);
    for (int y = 36; y < 40; y++)
        for (int x = 56; x < 64; x++) assert_memory_equal(im.pixels + ((size_t)y * 96 + x) * 3, rgb + ((size_t)y * 96 + x) * 3, 3);
    lf_image_clear(&im);
    lf_pipeline_result_clear(&res);
    /* A blank mask with "only masked": plain img2img at the job size, as A1111. */
    free(mask);
    mask = s_mask_png(96, 80, 0, 0, 0, 0, &ml);
    req.mask = mask, req.mask_len = ml, req.inpainting_mask_invert = 0;
    assert_int_equal(lf_pipeline_run(&f->ctx, &req, NULL, &res, err, sizeof err), 0);
    assert_int_equal(res.images[0].width, 64);
    assert_null(strstr(res.images[0].infotext, "Inpaint area"));
    lf_pipeline_result_clear(&res);
    free(rgb), free(init), free(mask);
}

static void test_mask_other_size(void **state)
{
    s_fix_t *f = *state;
    if (!f) skip();
    size_t il, ml;
    /* A half-size mask is resized to the job (A1111 resizes it too). */
    uint8_t *rgb = s_rgb(64, 48), *init = s_png(rgb, 64, 48, &il), *mask = s_mask_png(32, 24, 10, 8, 20, 16, &ml);
    lf_pipeline_request_t req = s_req();
    req.init_image = init, req.init_image_len = il, req.mask = mask, req.mask_len = ml;
    req.inpainting_fill = 1, req.mask_blur_x = req.mask_blur_y = 1; /* radius 3 at 32x24 */
    char *text = s_run_unchanged(f, &req, rgb, 64, 48, 20, 16, 40, 32, 12);
    free(text);
    free(rgb), free(init), free(mask);
}

/* An RGBA mask whose alpha varies: A1111 reads its alpha (the RGB here is
 * black everywhere, so its luma would repaint nothing). */
static void test_alpha_mask(void **state)
{
    s_fix_t *f = *state;
    if (!f) skip();
    size_t il, ml;
    uint8_t *rgb = s_rgb(64, 48), *init = s_png(rgb, 64, 48, &il);
    lf_image_t m = {.pixels = calloc(64 * 48, 4), .width = 64, .height = 48, .channels = 4};
    for (int y = 16; y < 32; y++)
        for (int x = 20; x < 40; x++) m.pixels[((size_t)y * 64 + x) * 4 + 3] = 255;
    uint8_t *mask = NULL;
    assert_int_equal(lf_image_png_encode(&m, NULL, 0, -1, &mask, &ml, NULL, 0), 0);
    lf_image_clear(&m);
    lf_pipeline_request_t req = s_req();
    req.init_image = init, req.init_image_len = il, req.mask = mask, req.mask_len = ml;
    req.inpainting_fill = 1;
    free(s_run_unchanged(f, &req, rgb, 64, 48, 20, 16, 40, 32, 11));
    free(rgb), free(init), free(mask);
}

static void test_bad_mask(void **state)
{
    s_fix_t *f = *state;
    if (!f) skip();
    size_t il;
    uint8_t *rgb = s_rgb(64, 48), *init = s_png(rgb, 64, 48, &il);
    lf_pipeline_request_t req = s_req();
    lf_pipeline_result_t res = {0};
    char err[256] = "";
    req.init_image = init, req.init_image_len = il;
    req.mask = (const uint8_t *)"not an image", req.mask_len = 12;
    assert_int_equal(lf_pipeline_run(&f->ctx, &req, NULL, &res, err, sizeof err), LF_EFORMAT);
    assert_non_null(strstr(err, "mask"));
    req.init_image = NULL;
    assert_int_equal(lf_pipeline_run(&f->ctx, &req, NULL, &res, err, sizeof err), LF_EINVAL);
    assert_non_null(strstr(err, "mask"));
    free(rgb), free(init);
}

/* ---- 2. the tiny networks against the reference --------------------------- */

#define P_SIZE 16
#define P_LATENT (4 * (P_SIZE / 2) * (P_SIZE / 2))


#define S_ENGINES 3
typedef struct {
    lf_engine_t *engine[S_ENGINES]; /* the plain model, its 9-input copy, the SDXL base's 9-input copy */
    char model[S_ENGINES][64];
    json_t *cases;
} s_env_t;

static int s_setup_real(void **state)
{
    *state = NULL;
    char vb[1024], err[256] = "", path[1024];
    const char *vocab = lf_test_refdata(vb, sizeof vb, "tokenizers/clip/bpe_simple_vocab_16e6.txt.gz");
    if (!vocab) return 0;
    s_env_t *env = calloc(1, sizeof *env);
    if (!env) return -1;
    lf_test_fixture(path, sizeof path, "inpaint/cases.json");
    env->cases = json_load_file(path, 0, NULL);
    if (!env->cases) return -1;
    for (int k = 0; k < S_ENGINES; k++) {
        snprintf(env->model[k], sizeof env->model[k], "/tmp/lf_inpaint_model_XXXXXX");
        int fd = mkstemp(env->model[k]);
        if (fd < 0) return -1;
        close(fd);
        if ((k < 2 ? lf_test_write_clip_model_ex(LF_FIXTURE_DIR, env->model[k], k)
                   : lf_test_write_clip_sdxl_ex(LF_FIXTURE_DIR, "base", NULL, env->model[k], 1)) != 0)
            return -1;
        lf_engine_opts_t o = {.vocab_path = vocab, .model_ops = &lf_test_rec_ops, .n_threads = 2};
        if (lf_engine_new(&o, &env->engine[k], err, sizeof err) != 0 ||
            lf_engine_load(env->engine[k], env->model[k], NULL) != 0) {
            fprintf(stderr, "engine: %s %s\n", err, env->engine[k] ? lf_engine_errstr(env->engine[k]) : "");
            return -1;
        }
    }
    *state = env;
    return 0;
}

static int s_teardown_real(void **state)
{
    s_env_t *env = *state;
    if (!env) return 0;
    for (int k = 0; k < S_ENGINES; k++) {
        lf_engine_destroy(&env->engine[k]);
        unlink(env->model[k]);
    }
    json_decref(env->cases);
    free(env);
    return 0;
}

static uint8_t *s_read(const char *rel, size_t *len)
{
    char path[1024];
    lf_test_fixture(path, sizeof path, rel);
    FILE *fp = fopen(path, "rb");
    if (!fp) fail_msg("%s: cannot open", path);
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)n);
    assert_int_equal(fread(b, 1, (size_t)n, fp), (size_t)n);
    fclose(fp);
    *len = (size_t)n;
    return b;
}

static double s_num(const json_t *c, const char *k, double def)
{
    const json_t *v = json_object_get(c, k);
    return json_is_number(v) ? json_number_value(v) : def;
}

/* The worker advertises an inpainting model from its first conv's inputs. */
static void test_probe_unet_inputs(void **state)
{
    s_env_t *env = *state;
    if (!env) skip();
    assert_int_equal(lf_engine_probe_unet_inputs(env->model[0]), 4);
    assert_int_equal(lf_engine_probe_unet_inputs(env->model[1]), 9);
    assert_int_equal(lf_engine_probe_unet_inputs(env->model[2]), 9);
    assert_int_equal(lf_engine_probe_unet_inputs("/nonexistent"), 0);
}

static void test_reference_cases(void **state)
{
    s_env_t *env = *state;
    if (!env) skip();
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(env->cases, "cases"), i, c) {
        const char *name = json_string_value(json_object_get(c, "name"));
        const int big = (int)s_num(c, "full_res", 0), t2i = (int)s_num(c, "txt2img", 0);
        const int eng = s_num(c, "sdxl", 0) ? 2 : (int)s_num(c, "nine", 0);
        size_t il = 0, ml = 0;
        uint8_t *init = t2i ? NULL : s_read(big ? "inpaint/init_big.png" : "inpaint/init.png", &il);
        char mrel[128];
        const char *mname = json_string_value(json_object_get(c, "mask"));
        snprintf(mrel, sizeof mrel, "inpaint/%s", mname ? mname : big ? "mask_big.png" : "mask.png");
        uint8_t *mask = t2i ? NULL : s_read(mrel, &ml);
        lf_engine_request_t req = lf_engine_request_defaults();
        req.prompt = json_string_value(json_object_get(env->cases, "prompt"));
        req.negative = json_string_value(json_object_get(env->cases, "negative"));
        req.sampler = json_string_value(json_object_get(c, "sampler"));
        req.steps = (int)s_num(c, "steps", 4);
        req.cfg = s_num(env->cases, "cfg", 5);
        req.seed = (uint64_t)s_num(env->cases, "seed", 0);
        req.width = req.height = P_SIZE;
        if (!t2i) {
            req.init_image = init, req.init_image_len = il, req.mask = mask, req.mask_len = ml;
            req.denoise = s_num(c, "denoise", 0.75);
            req.inpainting_fill = (int)s_num(c, "fill", 1);
            req.mask_blur_x = req.mask_blur_y = s_num(c, "blur", 0);
            req.inpaint_full_res = big;
            req.inpaint_full_res_padding = (int)s_num(c, "pad", 0);
            req.inpainting_mask_invert = (int)s_num(c, "invert", 0);
            req.initial_noise_multiplier = s_num(c, "mult", 1);
            req.inpainting_mask_weight = s_num(c, "weight", 1);
        }
        lf_engine_result_t res = {0};
        lf_test_cap_expect(4, P_SIZE / 2, P_SIZE / 2, 3 * P_SIZE * P_SIZE);
        if (lf_engine_generate(env->engine[eng], &req, NULL, NULL, NULL, &res) != 0)
            fail_msg("%s: %s", name, lf_engine_errstr(env->engine[eng]));
        assert_int_equal(lf_test_cap.calls, 1);
        char path[1024], rel[128], err[256];
        snprintf(rel, sizeof rel, "inpaint/%s.safetensors", name);
        lf_test_fixture(path, sizeof path, rel);
        lf_safetensors_t *st = NULL;
        if (lf_safetensors_open(&st, path, err, sizeof err) != 0) fail_msg("%s: %s", path, err);
        const lf_tensor_info_t *lat = lf_safetensors_find(st, "latent"), *img = lf_safetensors_find(st, "image");
        assert_non_null(lat);
        assert_non_null(img);
        assert_int_equal(lf_tensorinfo_numel(lat), P_LATENT);
        double d = 0, m = 0;
        for (int k = 0; k < P_LATENT; k++) {
            double r = lf_tensorinfo_get_f32(lat, k);
            d = fmax(d, fabs(lf_test_cap.latent[k] - r));
            m = fmax(m, fabs(r));
        }
        lf_image_t out = {0};
        assert_int_equal(lf_image_decode(res.images[0].png, res.images[0].png_len, NULL, &out, NULL, 0), 0);
        assert_int_equal(img->nbytes, (size_t)out.width * out.height * 3);
        const uint8_t *ref = img->data;
        int maxd = 0, ndiff = 0;
        for (size_t k = 0; k < img->nbytes; k++) {
            int dd = abs((int)out.pixels[k] - (int)ref[k]);
            maxd = dd > maxd ? dd : maxd;
            ndiff += dd != 0;
        }
        printf("inpaint %-26s %ux%u: latent rel err %.2e, image max diff %d (%d of %zu bytes differ)\n", name,
               out.width, out.height, d / m, maxd, ndiff, img->nbytes);
        fflush(stdout);
        if (!(d / m < 1e-4)) fail_msg("%s: latent beyond 1e-4 relative", name);
        if (maxd > 1) fail_msg("%s: image differs by %d levels", name, maxd);
        /* A1111 writes the conditioning's weight for inpainting UNets only. */
        const char *it = res.images[0].infotext;
        const char *cmw = strstr(it, "Conditional mask weight: ");
        if ((cmw != NULL) != (eng > 0)) fail_msg("%s: infotext %s", name, it);
        if (cmw && !t2i && !strstr(it, "Denoising strength: ")) fail_msg("%s: no denoising strength: %s", name, it);
        if (cmw && !t2i && strstr(it, "Denoising strength: ") > cmw) fail_msg("%s: order: %s", name, it);
        lf_image_clear(&out);
        lf_safetensors_destroy(&st);
        lf_engine_result_clear(&res);
        free(init);
        free(mask);
    }
}

int main(void)
{
    const struct CMUnitTest fake[] = {
        cmocka_unit_test(test_unmasked_unchanged_each_fill),
        cmocka_unit_test(test_only_masked),
        cmocka_unit_test(test_mask_other_size),
        cmocka_unit_test(test_alpha_mask),
        cmocka_unit_test(test_bad_mask),
    };
    const struct CMUnitTest real[] = {
        cmocka_unit_test(test_probe_unet_inputs),
        cmocka_unit_test(test_reference_cases),
    };
    int rc = cmocka_run_group_tests_name("fake model", fake, s_setup, s_teardown);
    return rc | cmocka_run_group_tests_name("tiny networks vs A1111's rule", real, s_setup_real, s_teardown_real);
}
