/* Tests of lf_model on tiny random-weight SDXL base and refiner models
 * against diffusers/transformers reference outputs (tests/reference/
 * make_sdxl_fixtures.py, fixtures in tests/engine/fixtures/sdxl/). Each
 * network: max |ours - ref| / max |ref| over the whole tensor below 1e-4
 * (f32 compute, weights stored as f16 and identical on both sides): both
 * text encoders (penultimate hidden states without the final norm,
 * concatenated; the pooled projected embedding), the UNet with its added
 * embedding (pooled + micro-conditioning), the VAE. The base loads from the
 * single SGM file, from the diffusers folder and from an old-style pickled
 * .ckpt (SGM layout), and all agree. */
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
#include "lf_weights.h"

#define TOL 1e-4

static void s_check(const char *what, const float *a, const float *ref, size_t n) {
    double r = lf_test_relerr(a, ref, n);
    printf("  %-34s rel err %.3g\n", what, r);
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

static lf_safetensors_t *s_ref(const char *rel) {
    char path[1024], err[256];
    lf_safetensors_t *ref = NULL;
    assert_int_equal(lf_safetensors_open(&ref, lf_test_fixture(path, sizeof path, rel), err, sizeof err),
                     0);
    return ref;
}

/* vec [batch][pooled | time ids] from the reference's separate inputs. */
static float *s_vec(lf_safetensors_t *ref, int batch, int P, int K) {
    float *emb = lf_test_ref_f32(ref, "unet_text_embeds", NULL), *ids = lf_test_ref_f32(ref, "unet_time_ids", NULL);
    float *v = malloc((size_t)batch * (P + K) * sizeof *v);
    assert_non_null(v);
    for (int b = 0; b < batch; b++) {
        memcpy(v + (size_t)b * (P + K), emb + (size_t)b * P, (size_t)P * sizeof *v);
        memcpy(v + (size_t)b * (P + K) + P, ids + (size_t)b * K, (size_t)K * sizeof *v);
    }
    free(emb), free(ids);
    return v;
}

/* Every network of m against ref; *unet_out (may be NULL) gets the UNet's
 * batch-2 output (caller frees) for the cross-layout comparison. */
static void s_run_all(lf_model_t *m, const char *ref_rel, int with_clip_l, float **unet_out) {
    lf_safetensors_t *ref = s_ref(ref_rel);
    const lf_model_desc_t *d = lf_model_desc(m);
    assert_int_equal(d->family, LF_FAMILY_SDXL);
    assert_int_equal(d->latent_channels, 4);
    assert_int_equal(d->vae_scale, 2);
    assert_int_equal(d->pooled_dim, 20);
    assert_int_equal(d->n_time_ids, with_clip_l ? 6 : 5);
    assert_int_equal(d->text_dim, with_clip_l ? 16 + 24 : 24);
    /* SDXL's VAE factor (the single file's config does not give one). */
    assert_true(fabsf(d->scaling_factor - 0.13025f) < 1e-7f);
    const int D = d->text_dim, D1 = with_clip_l ? 16 : 0, D2 = 24;

    /* Text: both encoders' penultimate states side by side, and the pooled
     * embedding. The ids are CLIP-L's (EOS padding); the model pads
     * OpenCLIP's with 0 itself. */
    size_t n;
    float *idf = lf_test_ref_f32(ref, "ids", &n);
    int32_t ids[2 * 77];
    for (int i = 0; i < 2 * 77; i++) ids[i] = (int32_t)idf[i];
    float *want = lf_test_ref_f32(ref, "text_cond", &n), *wpool = lf_test_ref_f32(ref, "te2_pooled", NULL);
    assert_int_equal(n, (size_t)2 * 77 * D);
    float *o = malloc(n * sizeof *o), pooled[2 * 20];
    for (int skip = 1; skip <= 2; skip++) {
        memset(pooled, 0, sizeof pooled);
        assert_int_equal(lf_model_encode_text(m, ids, NULL, 2, skip, o, pooled), 0);
        s_check(skip == 1 ? "text (both encoders, skip 1)" : "text (both encoders, skip 2)", o, want, n);
        s_check("pooled (OpenCLIP, projected)", pooled, wpool, 2 * 20);
    }
    /* Each encoder's part on its own. */
    float *part = malloc((size_t)2 * 77 * D2 * sizeof *part), *pref = lf_test_ref_f32(ref, "te2_hidden", NULL);
    for (int r = 0; r < 2 * 77; r++) memcpy(part + (size_t)r * D2, o + (size_t)r * D + D1, D2 * sizeof *part);
    s_check("OpenCLIP hidden_states[-2]", part, pref, (size_t)2 * 77 * D2);
    free(pref);
    free(part);
    /* Clip skip changes nothing for SDXL (A1111's default). */
    assert_int_equal(lf_model_encode_text(m, ids, NULL, 2, 3, o, NULL), 0);
    s_check("text clip skip 3 (ignored)", o, want, n);
    /* Emphasis of 1 everywhere changes nothing; pooled may be NULL. */
    float w1[2 * 77];
    for (int i = 0; i < 2 * 77; i++) w1[i] = 1.0f;
    assert_int_equal(lf_model_encode_text(m, ids, w1, 2, 2, o, NULL), 0);
    s_check("text weights=1", o, want, n);
    free(want), free(wpool), free(o), free(idf);

    /* UNet with the added embedding. */
    const int P = d->pooled_dim, K = d->n_time_ids;
    float *x = lf_test_ref_f32(ref, "unet_x", &n), *t = lf_test_ref_f32(ref, "unet_t", NULL);
    float *ctx = lf_test_ref_f32(ref, "unet_ctx", NULL);
    float *vec = s_vec(ref, 2, P, K);
    want = lf_test_ref_f32(ref, "unet_out", NULL);
    o = malloc(n * sizeof *o);
    assert_int_equal(lf_model_denoise(m, x, 2, 8, 8, t, ctx, 77, vec, o), 0);
    s_check("unet batch 2 (+ added embedding)", o, want, n);
    assert_int_equal(lf_model_denoise(m, x, 2, 8, 8, t, ctx, 77, vec, o), 0);
    s_check("unet replay", o, want, n);
    /* Step caching with the added embedding (lf_unet_forward_cached): a
     * full evaluation in parts, then a reuse on the same inputs, give
     * diffusers' output (FBCache, then DeepCache at branch 3). */
    for (int k = 0; k < 2; k++) {
        lf_stepcache_opts_t co = {.kind = k ? LF_STEPCACHE_DEEPCACHE : LF_STEPCACHE_FBCACHE,
                                  .threshold = 0.05f, .interval = 2, .depth = 3};
        lf_stepcache_t *sc = lf_stepcache_new(&co);
        for (int step = 0; step < 2; step++) {
            lf_stepcache_begin(sc, step, 10);
            assert_int_equal(lf_model_denoise_cached(m, sc, x, 2, 8, 8, t, ctx, 77, vec, o), 0);
            s_check(k ? "unet deepcache full, reuse" : "unet fbcache full, reuse", o, want, n);
        }
        assert_int_equal(lf_stepcache_reused(sc), 1);
        lf_stepcache_destroy(&sc);
    }
    /* The second item alone: its own time ids, a second cached graph. */
    float *o1 = malloc(n / 2 * sizeof *o1);
    assert_int_equal(lf_model_denoise(m, x + n / 2, 1, 8, 8, t + 1, ctx + 77 * D, 77, vec + P + K, o1), 0);
    s_check("unet batch 1", o1, want + n / 2, n / 2);
    free(o1);
    /* The vector conditioning is required. */
    assert_int_equal(lf_model_denoise(m, x, 2, 8, 8, t, ctx, 77, NULL, o), LF_EINVAL);
    if (unet_out) {
        *unet_out = o;
        o = NULL;
    }
    free(x), free(want), free(o);
    x = lf_test_ref_f32(ref, "unet_x_odd", &n), want = lf_test_ref_f32(ref, "unet_out_odd", NULL);
    o = malloc(n * sizeof *o);
    assert_int_equal(lf_model_denoise(m, x, 1, 5, 7, t, ctx, 77, vec, o), 0);
    s_check("unet 5x7 latent", o, want, n);
    free(x), free(t), free(ctx), free(want), free(o), free(vec);

    /* VAE decode and encode. */
    float *z = lf_test_ref_f32(ref, "vae_z", NULL), *img = lf_test_ref_f32(ref, "vae_img", &n);
    o = malloc(n * sizeof *o);
    assert_int_equal(lf_model_vae_decode(m, z, 1, 8, 8, 0, o), 0);
    s_check("vae decode", o, img, n);
    assert_int_equal(lf_model_vae_decode(m, z, 1, 8, 8, 4, o), 0); /* tiled */
    for (size_t i = 0; i < n; i++) assert_true(isfinite(o[i]));
    free(z), free(img), free(o);
    float *in = lf_test_ref_f32(ref, "vae_enc_in", NULL), *mean = lf_test_ref_f32(ref, "vae_enc_mean", &n);
    o = malloc(n * sizeof *o);
    assert_int_equal(lf_model_vae_encode(m, in, 1, 16, 16, 0, o), 0);
    s_check("vae encode", o, mean, n);
    free(in), free(mean), free(o);
    /* The approx preview fits from this VAE too. */
    uint8_t rgb[16 * 16 * 3];
    int pw = 0, ph = 0;
    z = lf_test_ref_f32(ref, "vae_z", NULL);
    assert_int_equal(lf_model_preview(m, z, 8, 8, rgb, &pw, &ph), 0);
    assert_true(pw > 0 && ph > 0);
    free(z);
    lf_safetensors_destroy(&ref);
}

static void test_base_single_file(void **state) {
    (void)state;
    lf_model_t *m = s_load("sdxl/base.safetensors", NULL);
    s_run_all(m, "sdxl/base_ref.safetensors", 1, NULL);
    lf_model_destroy(&m);
    assert_null(m);
}

static void test_base_diffusers_agrees(void **state) {
    (void)state;
    float *a = NULL, *b = NULL;
    lf_model_t *m = s_load("sdxl/base_diffusers", NULL);
    s_run_all(m, "sdxl/base_ref.safetensors", 1, &a);
    lf_model_destroy(&m);
    m = s_load("sdxl/base.safetensors", NULL);
    s_run_all(m, "sdxl/base_ref.safetensors", 1, &b);
    lf_model_destroy(&m);
    /* Same weights, same graph: the two layouts give the same numbers. */
    double e = lf_test_relerr(a, b, 2 * 4 * 8 * 8);
    printf("  single file vs diffusers folder: rel diff %.3g\n", e);
    assert_true(e < 1e-6);
    free(a), free(b);
}

/* The same base as an old-style pickled .ckpt (torch.save of {"state_dict":
 * SGM tensors, "global_step", "lf.config"}), read by lf_torchzip's restricted
 * pickle machine: every network matches diffusers and the UNet's output is
 * bit for bit the safetensors file's. */
static void test_base_ckpt_agrees(void **state) {
    (void)state;
    float *a = NULL, *b = NULL;
    /* Its top-level strings are its metadata (the tiny sizes' lf.config);
     * other entries (global_step, an int) are not. */
    char path[1024], err[256] = "";
    lf_weights_t *w = NULL;
    assert_int_equal(lf_weights_open(&w, lf_test_fixture(path, sizeof path, "sdxl/base.ckpt"), err, sizeof err), 0);
    const char *cfg = lf_weights_metadata(w, "lf.config");
    assert_non_null(cfg);
    assert_non_null(strstr(cfg, "\"text_encoder_2\""));
    assert_null(lf_weights_metadata(w, "global_step"));
    assert_non_null(lf_weights_find(w, "model.diffusion_model.label_emb.0.0.weight"));
    lf_weights_destroy(&w);
    lf_model_t *m = s_load("sdxl/base.ckpt", NULL);
    s_run_all(m, "sdxl/base_ref.safetensors", 1, &a);
    lf_model_destroy(&m);
    m = s_load("sdxl/base.safetensors", NULL);
    s_run_all(m, "sdxl/base_ref.safetensors", 1, &b);
    lf_model_destroy(&m);
    double e = lf_test_relerr(a, b, 2 * 4 * 8 * 8);
    printf("  .ckpt vs .safetensors: rel diff %.3g\n", e);
    assert_memory_equal(a, b, (size_t)2 * 4 * 8 * 8 * sizeof *a);
    free(a), free(b);
}

static void test_base_f32_weights(void **state) {
    (void)state;
    lf_model_opts_t o = {.weight_type = LF_TYPE_F32};
    lf_model_t *m = s_load("sdxl/base.safetensors", &o);
    s_run_all(m, "sdxl/base_ref.safetensors", 1, NULL);
    lf_model_destroy(&m);
}

static void test_refiner(void **state) {
    (void)state;
    lf_model_t *m = s_load("sdxl/refiner.safetensors", NULL);
    s_run_all(m, "sdxl/refiner_ref.safetensors", 0, NULL);
    lf_model_destroy(&m);
}

/* The base's diffusers folder with the VAE taken from a separate file (the
 * single-file checkpoint, original layout). */
static void test_vae_path(void **state) {
    (void)state;
    char vp[1024];
    lf_model_opts_t o = {.weight_type = -1,
                         .vae_path = lf_test_fixture(vp, sizeof vp, "sdxl/base.safetensors")};
    lf_model_t *m = s_load("sdxl/base_diffusers", &o);
    /* The separate file carries no scaling factor: SDXL's default. */
    s_run_all(m, "sdxl/base_ref.safetensors", 1, NULL);
    lf_model_destroy(&m);
}

/* Rewrites the base without tensors whose name starts with drop. */
static void s_write_without(const char *out, const char *drop) {
    char path[1024], err[256];
    lf_safetensors_t *st = s_ref("sdxl/base.safetensors");
    (void)path, (void)err;
    size_t n = lf_safetensors_count(st), k = 0;
    lf_tensor_info_t *t = calloc(n, sizeof *t);
    assert_non_null(t);
    for (size_t i = 0; i < n; i++) {
        const lf_tensor_info_t *ti = lf_safetensors_at(st, i);
        if (strncmp(ti->name, drop, strlen(drop)) != 0) t[k++] = *ti;
    }
    const char *meta[2] = {"lf.config", lf_safetensors_metadata(st, "lf.config")};
    assert_int_equal(lf_safetensors_write(out, t, k, meta, 1), 0);
    free(t);
    lf_safetensors_destroy(&st);
}

static void test_missing_openclip(void **state) {
    (void)state;
    char tmp[] = "/tmp/lf_sdxl_broken_XXXXXX";
    int fd = mkstemp(tmp);
    assert_true(fd >= 0);
    close(fd);
    s_write_without(tmp, "conditioner.embedders.1.");
    lf_model_t *m = NULL;
    char err[512] = "";
    int rc = lf_model_load(tmp, NULL, &m, err, sizeof err);
    printf("  without OpenCLIP: %s\n", err);
    assert_int_equal(rc, LF_ENOTFOUND);
    assert_non_null(strstr(err, "OpenCLIP"));
    assert_null(m);
    /* A missing packed in_proj names the tensor. */
    s_write_without(tmp, "conditioner.embedders.1.model.transformer.resblocks.1.attn.in_proj_weight");
    rc = lf_model_load(tmp, NULL, &m, err, sizeof err);
    printf("  without an in_proj: %s\n", err);
    assert_int_equal(rc, LF_ENOTFOUND);
    assert_non_null(strstr(err, "resblocks.1.attn.in_proj_weight"));
    unlink(tmp);
}

/* A checkpoint without its VAE takes one from opts.vae_path (the SGM file's
 * first_stage_model.*); without one it fails naming the file. */
static void test_missing_vae(void **state) {
    (void)state;
    char tmp[] = "/tmp/lf_sdxl_novae_XXXXXX", vp[1024], err[512] = "";
    int fd = mkstemp(tmp);
    assert_true(fd >= 0);
    close(fd);
    s_write_without(tmp, "first_stage_model.");
    lf_model_t *m = NULL;
    int rc = lf_model_load(tmp, NULL, &m, err, sizeof err);
    printf("  without a VAE: %s\n", err);
    assert_true(rc < 0);
    assert_non_null(strstr(err, tmp));
    lf_model_opts_t o = {.weight_type = -1,
                         .vae_path = lf_test_fixture(vp, sizeof vp, "sdxl/base.safetensors")};
    assert_int_equal(lf_model_load(tmp, &o, &m, err, sizeof err), 0);
    s_run_all(m, "sdxl/base_ref.safetensors", 1, NULL);
    lf_model_destroy(&m);
    unlink(tmp);
}

/* A non-finite VAE output is an error, never a black or NaN image. */
static void test_vae_nonfinite(void **state) {
    (void)state;
    lf_model_t *m = s_load("sdxl/base.safetensors", NULL);
    float z[4 * 8 * 8], img[3 * 16 * 16];
    for (int i = 0; i < 4 * 8 * 8; i++) z[i] = 0.1f * (i % 7);
    assert_int_equal(lf_model_vae_decode(m, z, 1, 8, 8, 0, img), 0);
    z[17] = NAN;
    assert_int_equal(lf_model_vae_decode(m, z, 1, 8, 8, 0, img), LF_EOVERFLOW);
    lf_model_destroy(&m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_base_single_file), cmocka_unit_test(test_base_diffusers_agrees),
        cmocka_unit_test(test_base_ckpt_agrees), cmocka_unit_test(test_base_f32_weights),
        cmocka_unit_test(test_refiner),
        cmocka_unit_test(test_vae_path),         cmocka_unit_test(test_missing_openclip),
        cmocka_unit_test(test_missing_vae),      cmocka_unit_test(test_vae_nonfinite),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
