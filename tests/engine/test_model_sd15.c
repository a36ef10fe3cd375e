/* Tests of lf_model on tiny random-weight SD1.5-architecture models against
 * diffusers/transformers reference outputs (tests/reference/
 * make_model_fixtures.py). Error measure: max |ours - ref| / max |ref| over
 * the whole tensor, which must stay below 1e-4 (f32 compute, weights stored
 * as f16 and identical on both sides). */
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

#include "lf_error.h"
#include "lf_model.h"
#include "lf_safetensors.h"
#include "lf_test_ref.h"
#include "lf_test_util.h"

#define TOL 1e-4

typedef struct {
    lf_safetensors_t *ref;
    lf_backend_t *be;
} ctx_t;

static void s_check(const char *what, const float *a, const float *ref, size_t n) {
    double r = lf_test_relerr(a, ref, n);
    printf("  %-28s rel err %.3g\n", what, r);
    assert_true(r < TOL);
}

static lf_model_t *s_load(const char *rel, const lf_model_opts_t *o) {
    char path[1024], err[512] = "";
    lf_model_t *m = NULL;
    int rc = lf_model_load(lf_test_fixture(path, sizeof path, rel), o, &m, err, sizeof err);
    if (rc) printf("load %s: %s (%s)\n", rel, err, lf_strerror(rc));
    assert_int_equal(rc, 0);
    return m;
}

static void s_run_all(lf_model_t *m, const char *ref_rel, int vae_scale) {
    char path[1024], err[256];
    lf_safetensors_t *ref = NULL;
    assert_int_equal(
        lf_safetensors_open(&ref, lf_test_fixture(path, sizeof path, ref_rel), err, sizeof err), 0);
    const lf_model_desc_t *d = lf_model_desc(m);
    assert_int_equal(d->family, LF_FAMILY_SD15);
    assert_int_equal(d->latent_channels, 4);
    assert_int_equal(d->vae_scale, vae_scale);
    /* Text encoder, clip skip 1 and 2. */
    size_t n;
    float *idf = lf_test_ref_f32(ref, "clip_ids", &n);
    int32_t ids[2 * 77];
    for (int i = 0; i < 2 * 77; i++) ids[i] = (int32_t)idf[i];
    float *r1 = lf_test_ref_f32(ref, "clip_skip1", &n), *r2 = lf_test_ref_f32(ref, "clip_skip2", NULL);
    float *o = malloc(n * sizeof *o);
    assert_int_equal(lf_model_encode_text(m, ids, NULL, 2, 1, o, NULL), 0);
    s_check("text clip_skip 1", o, r1, n);
    assert_int_equal(lf_model_encode_text(m, ids, NULL, 2, 2, o, NULL), 0);
    s_check("text clip_skip 2", o, r2, n);
    /* Emphasis of 1 everywhere changes nothing. */
    float *w1 = malloc(2 * 77 * sizeof *w1);
    for (int i = 0; i < 2 * 77; i++) w1[i] = 1.0f;
    assert_int_equal(lf_model_encode_text(m, ids, w1, 2, 2, o, NULL), 0);
    s_check("text weights=1", o, r2, n);
    free(w1), free(o), free(r1), free(r2), free(idf);
    /* UNet. */
    float *x = lf_test_ref_f32(ref, "unet_x", &n), *t = lf_test_ref_f32(ref, "unet_t", NULL);
    float *ctx = lf_test_ref_f32(ref, "unet_ctx", NULL), *want = lf_test_ref_f32(ref, "unet_out", NULL);
    o = malloc(n * sizeof *o);
    assert_int_equal(lf_model_denoise(m, x, 2, 8, 8, t, ctx, 77, NULL, o), 0);
    s_check("unet batch 2", o, want, n);
    /* Replay of the recorded graph gives the same answer. */
    assert_int_equal(lf_model_denoise(m, x, 2, 8, 8, t, ctx, 77, NULL, o), 0);
    s_check("unet replay", o, want, n);
    /* Batch 1 (the second item alone) through a second cached graph. */
    assert_int_equal(lf_model_denoise(m, x + n / 2, 1, 8, 8, t + 1, ctx + 77 * d->text_dim, 77, NULL, o),
                     0);
    s_check("unet batch 1", o, want + n / 2, n / 2);
    free(x), free(want), free(o);
    /* A 5x7 latent: not a multiple of the UNet's downsampling. */
    x = lf_test_ref_f32(ref, "unet_x_odd", &n), want = lf_test_ref_f32(ref, "unet_out_odd", NULL);
    o = malloc(n * sizeof *o);
    assert_int_equal(lf_model_denoise(m, x, 1, 5, 7, t, ctx, 77, NULL, o), 0);
    s_check("unet 5x7 latent", o, want, n);
    free(x), free(t), free(ctx), free(want), free(o);
    /* VAE decode and encode. */
    float *z = lf_test_ref_f32(ref, "vae_z", NULL), *img = lf_test_ref_f32(ref, "vae_img", &n);
    o = malloc(n * sizeof *o);
    assert_int_equal(lf_model_vae_decode(m, z, 1, 8, 8, 0, o), 0);
    s_check("vae decode", o, img, n);
    /* Tiled decode runs (group norm statistics are per tile, so it is not
     * the untiled result; test_tiling checks the blending exactly). */
    assert_int_equal(lf_model_vae_decode(m, z, 1, 8, 8, 4, o), 0);
    for (size_t i = 0; i < n; i++) assert_true(isfinite(o[i]));
    free(z), free(img), free(o);
    float *in = lf_test_ref_f32(ref, "vae_enc_in", NULL), *mean = lf_test_ref_f32(ref, "vae_enc_mean", &n);
    o = malloc(n * sizeof *o);
    assert_int_equal(lf_model_vae_encode(m, in, 1, 8 * vae_scale, 8 * vae_scale, 0, o), 0);
    s_check("vae encode", o, mean, n);
    free(in), free(mean), free(o);
    /* Preview without TAESD: the linear approximation at latent size. */
    /* No TAESD: the approx preview, the 8x8 latent shown upscaled (room
     * for the decoded size, as lf_model.h asks). */
    const int vs = lf_model_desc(m)->vae_scale;
    uint8_t *rgb = malloc((size_t)8 * vs * 8 * vs * 3);
    int pw = 0, ph = 0;
    z = lf_test_ref_f32(ref, "vae_z", NULL);
    assert_int_equal(lf_model_preview(m, z, 8, 8, rgb, &pw, &ph), 0);
    assert_int_equal(pw, 8 * lf_preview_upscale(8, 8, vs));
    assert_int_equal(ph, pw);
    free(rgb);
    free(z);
    lf_safetensors_destroy(&ref);
}

/* Every f32 3x3 convolution oneDNN's Winograd takes (stride 1, input
 * channels a multiple of 16: here all but the first of the text-free
 * networks, at every size) run as Winograd (LF_CPU_CONV_ALGO=wino, read when
 * the model's backend is made): the UNet and the VAE decode and encode stay
 * within the same 1e-4 of diffusers. */
static void test_tiny_a_winograd(void **state) {
    (void)state;
    setenv("LF_CPU_CONV_ALGO", "wino", 1);
    lf_model_t *m = s_load("models/tiny_a.safetensors", NULL);
    unsetenv("LF_CPU_CONV_ALGO");
    s_run_all(m, "models/tiny_a_ref.safetensors", 2);
    lf_model_destroy(&m);
}

static void test_tiny_a_defaults(void **state) {
    (void)state;
    lf_model_t *m = s_load("models/tiny_a.safetensors", NULL);
    assert_int_equal(lf_model_desc(m)->prediction, LF_PRED_EPS);
    assert_true(fabsf(lf_model_desc(m)->scaling_factor - 0.18215f) < 1e-7f);
    s_run_all(m, "models/tiny_a_ref.safetensors", 2);
    lf_model_destroy(&m);
    assert_null(m);
}

static void test_tiny_a_f32_weights(void **state) {
    (void)state;
    lf_model_opts_t o = {.weight_type = LF_TYPE_F32};
    lf_model_t *m = s_load("models/tiny_a.safetensors", &o);
    s_run_all(m, "models/tiny_a_ref.safetensors", 2);
    lf_model_destroy(&m);
}

/* Weights kept in bf16: the ops accept them; the result differs from the
 * f32 reference only by bf16 rounding of the weights. */
static void test_tiny_a_bf16_weights(void **state) {
    (void)state;
    lf_model_opts_t o = {.weight_type = LF_TYPE_BF16};
    lf_model_t *m = s_load("models/tiny_a.safetensors", &o);
    char path[1024], err[256];
    lf_safetensors_t *ref = NULL;
    assert_int_equal(lf_safetensors_open(
                         &ref, lf_test_fixture(path, sizeof path, "models/tiny_a_ref.safetensors"),
                         err, sizeof err),
                     0);
    size_t n;
    float *x = lf_test_ref_f32(ref, "unet_x", &n), *t = lf_test_ref_f32(ref, "unet_t", NULL);
    float *ctx = lf_test_ref_f32(ref, "unet_ctx", NULL), *want = lf_test_ref_f32(ref, "unet_out", NULL);
    float *out = malloc(n * sizeof *out);
    assert_int_equal(lf_model_denoise(m, x, 2, 8, 8, t, ctx, 77, NULL, out), 0);
    double e = lf_test_relerr(out, want, n);
    printf("  %-28s rel err %.3g (bf16 weights)\n", "unet", e);
    assert_true(e < 5e-2);
    free(x), free(t), free(ctx), free(want), free(out);
    lf_safetensors_destroy(&ref);
    lf_model_destroy(&m);
}

/* Quantize-on-load (--weights): the UNet's linear layers in Q8_0 / Q4_0,
 * multiplied through the CPU MATMUL's block-type path. The output moves from
 * the f32 reference by the weights' rounding only (a step of 1/127 of each
 * block's largest weight for Q8_0, 1/8 for Q4_0): measured 1.0e-2 / 1.3e-1
 * relative on this random tiny UNet (bf16 weights: see above); a wrong row
 * or scale would be O(1). Q8_K (ggml's activation type, not a storage
 * type) is refused, naming it. */
static void test_tiny_a_quantized_weights(void **state) {
    (void)state;
    static const struct { int type; double lo, hi; } cases[] = {{LF_TYPE_Q8_0, 1e-4, 3e-2},
                                                                {LF_TYPE_Q4_0, 1e-3, 3e-1}};
    char path[1024], err[256];
    lf_safetensors_t *ref = NULL;
    assert_int_equal(lf_safetensors_open(
                         &ref, lf_test_fixture(path, sizeof path, "models/tiny_a_ref.safetensors"),
                         err, sizeof err),
                     0);
    size_t n;
    float *x = lf_test_ref_f32(ref, "unet_x", &n), *t = lf_test_ref_f32(ref, "unet_t", NULL);
    float *ctx = lf_test_ref_f32(ref, "unet_ctx", NULL), *want = lf_test_ref_f32(ref, "unet_out", NULL);
    float *out = malloc(n * sizeof *out);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        lf_model_opts_t o = {.weight_type = LF_TYPE_F32, .weight_quant = cases[i].type};
        lf_model_t *m = s_load("models/tiny_a.safetensors", &o);
        assert_int_equal(lf_model_denoise(m, x, 2, 8, 8, t, ctx, 77, NULL, out), 0);
        double e = lf_test_relerr(out, want, n);
        printf("  %-28s rel err %.3g (%s linear weights)\n", "unet", e, lf_type_name((lf_type_t)cases[i].type));
        assert_true(e > cases[i].lo && e < cases[i].hi);
        lf_model_destroy(&m);
    }
    lf_model_opts_t k = {.weight_type = -1, .weight_quant = LF_TYPE_Q8_K};
    lf_model_t *m = NULL;
    assert_int_equal(lf_model_load(lf_test_fixture(path, sizeof path, "models/tiny_a.safetensors"), &k, &m, err,
                                   sizeof err),
                     LF_EUNSUPPORTED);
    assert_non_null(strstr(err, "q8_k"));
    free(x), free(t), free(ctx), free(want), free(out);
    lf_safetensors_destroy(&ref);
}

static void test_tiny_b_metadata(void **state) {
    (void)state;
    lf_model_t *m = s_load("models/tiny_b.safetensors", NULL);
    assert_int_equal(lf_model_desc(m)->prediction, LF_PRED_V);
    assert_true(fabsf(lf_model_desc(m)->scaling_factor - 0.5f) < 1e-7f);
    s_run_all(m, "models/tiny_b_ref.safetensors", 4);
    lf_model_destroy(&m);
}

static void test_tiny_b_diffusers(void **state) {
    (void)state;
    lf_model_t *m = s_load("models/tiny_b_diffusers", NULL);
    assert_int_equal(lf_model_desc(m)->prediction, LF_PRED_V);
    s_run_all(m, "models/tiny_b_ref.safetensors", 4);
    lf_model_destroy(&m);
}

static void test_vae_override(void **state) {
    (void)state;
    /* tiny_b's VAE on tiny_b's diffusers folder via a separate file in the
     * original layout. */
    char vp[1024];
    lf_model_opts_t o = {.weight_type = -1,
                         .vae_path = lf_test_fixture(vp, sizeof vp, "models/tiny_b.safetensors")};
    lf_model_t *m = s_load("models/tiny_b_diffusers", &o);
    s_run_all(m, "models/tiny_b_ref.safetensors", 4);
    lf_model_destroy(&m);
}

/* Rewrites tiny_a without one tensor / with one tensor's shape changed. */
static void s_write_broken(const char *out, const char *drop, const char *reshape) {
    char path[1024], err[256];
    lf_safetensors_t *st = NULL;
    assert_int_equal(
        lf_safetensors_open(&st, lf_test_fixture(path, sizeof path, "models/tiny_a.safetensors"),
                            err, sizeof err),
        0);
    size_t n = lf_safetensors_count(st), k = 0;
    lf_tensor_info_t *v = calloc(n, sizeof *v);
    for (size_t i = 0; i < n; i++) {
        const lf_tensor_info_t *t = lf_safetensors_at(st, i);
        if (drop && strcmp(t->name, drop) == 0) continue;
        v[k] = *t;
        if (reshape && strcmp(t->name, reshape) == 0) {
            /* [o, i, 3, 3] -> [o * i, 1, 3, 3]: same bytes, wrong shape. */
            v[k].shape[0] *= v[k].shape[1];
            v[k].shape[1] = 1;
        }
        k++;
    }
    assert_int_equal(lf_safetensors_write(out, v, k, NULL, 0), 0);
    free(v);
    lf_safetensors_destroy(&st);
}

/* A standalone VAE file in the original layout without the
 * first_stage_model. prefix (as .vae.safetensors files are shipped). */
static void test_vae_standalone(void **state) {
    (void)state;
    char path[1024], err[256], tmp[] = "/tmp/lf_vae_XXXXXX";
    lf_safetensors_t *st = NULL;
    assert_int_equal(
        lf_safetensors_open(&st, lf_test_fixture(path, sizeof path, "models/tiny_a.safetensors"),
                            err, sizeof err),
        0);
    size_t n = lf_safetensors_count(st), k = 0;
    lf_tensor_info_t *v = calloc(n, sizeof *v);
    const char *pre = "first_stage_model.";
    for (size_t i = 0; i < n; i++) {
        const lf_tensor_info_t *t = lf_safetensors_at(st, i);
        if (strncmp(t->name, pre, strlen(pre)) != 0) continue;
        v[k] = *t;
        v[k++].name = t->name + strlen(pre);
    }
    assert_non_null(mkdtemp(tmp));
    char vp[256];
    snprintf(vp, sizeof vp, "%s/tiny.vae.safetensors", tmp);
    assert_int_equal(lf_safetensors_write(vp, v, k, NULL, 0), 0);
    free(v);
    lf_safetensors_destroy(&st);
    lf_model_opts_t o = {.weight_type = -1, .vae_path = vp};
    lf_model_t *m = s_load("models/tiny_a.safetensors", &o);
    s_run_all(m, "models/tiny_a_ref.safetensors", 2);
    lf_model_destroy(&m);
    unlink(vp);
    rmdir(tmp);
}

static void test_errors(void **state) {
    (void)state;
    char err[512] = "", tmp[] = "/tmp/lf_model_XXXXXX";
    lf_model_t *m = NULL;
    assert_int_not_equal(lf_model_load("/nonexistent/model.safetensors", NULL, &m, err, sizeof err),
                         0);
    assert_non_null(strstr(err, "/nonexistent/model.safetensors"));
    assert_non_null(mkdtemp(tmp));
    char p[256];
    snprintf(p, sizeof p, "%s/missing.safetensors", tmp);
    const char *gone = "model.diffusion_model.output_blocks.2.1.proj_out.weight";
    s_write_broken(p, gone, NULL);
    assert_int_not_equal(lf_model_load(p, NULL, &m, err, sizeof err), 0);
    printf("  missing: %s\n", err);
    assert_non_null(strstr(err, gone));
    assert_non_null(strstr(err, p));
    assert_null(m);
    unlink(p);
    snprintf(p, sizeof p, "%s/shape.safetensors", tmp);
    const char *bad = "model.diffusion_model.input_blocks.1.0.out_layers.3.weight";
    s_write_broken(p, NULL, bad);
    assert_int_not_equal(lf_model_load(p, NULL, &m, err, sizeof err), 0);
    printf("  shape: %s\n", err);
    assert_non_null(strstr(err, bad));
    unlink(p);
    /* Not a weights file at all. */
    snprintf(p, sizeof p, "%s/junk.ckpt", tmp);
    FILE *f = fopen(p, "wb");
    fputs("this is not a checkpoint", f);
    fclose(f);
    assert_int_not_equal(lf_model_load(p, NULL, &m, err, sizeof err), 0);
    printf("  junk: %s\n", err);
    unlink(p);
    rmdir(tmp);
    /* Bad arguments at call time. */
    m = s_load("models/tiny_a.safetensors", NULL);
    int32_t ids[77] = {0};
    ids[3] = 100000; /* outside the vocabulary */
    float *o = malloc(77 * 64 * sizeof *o);
    assert_int_equal(lf_model_encode_text(m, ids, NULL, 1, 1, o, NULL), LF_EINVAL);
    float x[4 * 6 * 6] = {0}, t = 1, ctx[77 * 64] = {0};
    assert_int_equal(lf_model_denoise(m, x, 0, 3, 3, &t, ctx, 77, NULL, x), LF_EINVAL); /* batch 0 */
    free(o);
    lf_model_destroy(&m);
}

/* Tiling: a 12x8 latent in tiles of 8 (overlap 2) is two tiles, rows 0-7
 * and 4-11. Output rows that only one tile covers must equal an untiled
 * decode of that tile's crop exactly; rows in the overlap are a blend. The
 * same for encode with the image. */
static void test_tiling(void **state) {
    (void)state;
    lf_model_t *m = s_load("models/tiny_a.safetensors", NULL);
    const int s = 2, C = 4, H = 12, W = 8;
    float *z = malloc(sizeof(float) * C * H * W), *crop = malloc(sizeof(float) * C * 8 * W);
    float *full = malloc(sizeof(float) * 3 * H * s * W * s),
          *part = malloc(sizeof(float) * 3 * 8 * s * W * s);
    for (int i = 0; i < C * H * W; i++) z[i] = sinf(0.37f * (float)i) * 1.5f;
    assert_int_equal(lf_model_vae_decode(m, z, 1, H, W, 8, full), 0);
    for (int k = 0; k < 2; k++) {
        const int y0 = k ? 4 : 0;
        for (int c = 0; c < C; c++)
            memcpy(crop + c * 8 * W, z + (c * H + y0) * W, sizeof(float) * 8 * W);
        assert_int_equal(lf_model_vae_decode(m, crop, 1, 8, W, 0, part), 0);
        /* Rows only this tile covers: latent 0-3 (tile 0), 8-11 (tile 1). */
        const int r0 = k ? 8 : 0;
        double e = 0, mx = 0;
        for (int c = 0; c < 3; c++)
            for (int y = r0 * s; y < (r0 + 4) * s; y++)
                for (int x = 0; x < W * s; x++) {
                    float a = full[(c * H * s + y) * W * s + x];
                    float b = part[(c * 8 * s + y - y0 * s) * W * s + x];
                    e = fmax(e, fabs(a - b));
                    mx = fmax(mx, fabs(b));
                }
        printf("  tiled decode, tile %d alone: rel err %.3g\n", k, e / mx);
        assert_true(e / mx < 1e-5);
    }
    /* Encode: image 24x16 in tiles of 8 latent pixels (16 image pixels). */
    float *img = malloc(sizeof(float) * 3 * H * s * W * s),
          *mean = malloc(sizeof(float) * C * H * W);
    float *icrop = malloc(sizeof(float) * 3 * 8 * s * W * s),
          *mpart = malloc(sizeof(float) * C * 8 * W);
    for (int i = 0; i < 3 * H * s * W * s; i++) img[i] = sinf(0.11f * (float)i);
    assert_int_equal(lf_model_vae_encode(m, img, 1, H * s, W * s, 8, mean), 0);
    for (int c = 0; c < 3; c++)
        memcpy(icrop + c * 8 * s * W * s, img + (c * H * s + 4 * s) * W * s,
               sizeof(float) * 8 * s * W * s);
    assert_int_equal(lf_model_vae_encode(m, icrop, 1, 8 * s, W * s, 0, mpart), 0);
    double e = 0, mx = 0;
    for (int c = 0; c < C; c++)
        for (int y = 8; y < 12; y++)
            for (int x = 0; x < W; x++) {
                float a = mean[(c * H + y) * W + x], b = mpart[(c * 8 + y - 4) * W + x];
                e = fmax(e, fabs(a - b));
                mx = fmax(mx, fabs(b));
            }
    printf("  tiled encode, last tile alone: rel err %.3g\n", e / mx);
    assert_true(e / mx < 1e-5);
    free(z), free(crop), free(full), free(part), free(img), free(mean), free(icrop), free(mpart);
    lf_model_destroy(&m);
}

static void test_detect_family(void **state) {
    (void)state;
    const char *sd[] = {"first_stage_model.encoder.conv_in.weight",
                        "model.diffusion_model.input_blocks.0.0.weight"};
    const char *xl[] = {"model.diffusion_model.input_blocks.0.0.weight",
                        "conditioner.embedders.0.transformer.text_model.embeddings.position_ids"};
    const char *fx[] = {"double_blocks.0.img_attn.qkv.weight"};
    const char *none[] = {"foo"};
    assert_int_equal(lf_model_detect_family(sd, 2), LF_FAMILY_SD15);
    assert_int_equal(lf_model_detect_family(xl, 2), LF_FAMILY_SDXL);
    assert_int_equal(lf_model_detect_family(fx, 1), LF_FAMILY_FLUX);
    assert_int_equal(lf_model_detect_family(none, 1), LF_FAMILY_UNKNOWN);
    assert_string_equal(lf_family_name(LF_FAMILY_SD15), "sd15");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_detect_family),
        cmocka_unit_test(test_tiny_a_defaults),
        cmocka_unit_test(test_tiny_a_winograd),
        cmocka_unit_test(test_tiny_a_f32_weights),
        cmocka_unit_test(test_tiny_a_bf16_weights),
        cmocka_unit_test(test_tiny_a_quantized_weights),
        cmocka_unit_test(test_tiny_b_metadata),
        cmocka_unit_test(test_tiny_b_diffusers),
        cmocka_unit_test(test_vae_override),
        cmocka_unit_test(test_vae_standalone),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_tiling),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
