/* Tests of the TAESD preview decoder: a tiny random SD-style decoder
 * (diffusers AutoencoderTiny key names, 4 latent channels) and the real
 * FLUX.2 decoder from the shared reference data (PyTorch zip, 32 latent
 * channels, pool branch), both against PyTorch outputs written by
 * tests/reference/make_model_fixtures.py, and a tiny random TAEF1 (16 latent
 * channels) against diffusers' AutoencoderTiny(latent_channels=16)
 * (tests/reference/make_taef1_fixture.py), alone and as a Flux model's
 * preview. Error: max |ours - ref| / max |ref| below 1e-4. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lf_error.h"
#include "lf_model.h"
#include "lf_safetensors.h"
#include "lf_taesd.h"
#include "lf_test_ref.h"
#include "lf_test_util.h"

static void s_compare(const char *weights, const char *ref_path, int latent_ch) {
    char err[512] = "", path[1024];
    lf_backend_t *be = lf_backend_cpu_new(0);
    lf_pool_t *pool = lf_pool_new(be, 0);
    lf_taesd_t *t = NULL;
    int rc = lf_taesd_new(&t, weights, be, pool, err, sizeof err);
    if (rc) printf("%s\n", err);
    assert_int_equal(rc, 0);
    assert_int_equal(lf_taesd_latent_channels(t), latent_ch);
    assert_int_equal(lf_taesd_scale(t), 8);
    lf_safetensors_t *ref = NULL;
    assert_int_equal(
        lf_safetensors_open(&ref, lf_test_fixture(path, sizeof path, ref_path), err, sizeof err),
        0);
    size_t n;
    float *z = lf_test_ref_f32(ref, "z", NULL), *want = lf_test_ref_f32(ref, "rgb", &n);
    float *o = malloc(n * sizeof *o);
    assert_int_equal(lf_taesd_decode(t, z, 8, 8, o), 0);
    double m = 0, e = 0;
    for (size_t i = 0; i < n; i++) {
        m = fmax(m, fabs(want[i]));
        e = fmax(e, fabs((double)o[i] - want[i]));
    }
    printf("  %s: rel err %.3g (max |ref| %.3g)\n", ref_path, e / m, m);
    assert_true(e / m < 1e-4);
    /* Replay. */
    assert_int_equal(lf_taesd_decode(t, z, 8, 8, o), 0);
    free(z), free(want), free(o);
    lf_safetensors_destroy(&ref);
    lf_taesd_destroy(&t);
    lf_pool_destroy(&pool);
    lf_backend_destroy(&be);
}

static void test_tiny_sd(void **state) {
    (void)state;
    char p[1024];
    s_compare(lf_test_fixture(p, sizeof p, "models/taesd_tiny_sd.safetensors"),
              "models/taesd_tiny_sd_ref.safetensors", 4);
}

static void test_taef2_real(void **state) {
    (void)state;
    char p[1024];
    if (!lf_test_refdata(p, sizeof p, "taesd/taef2_decoder.pth")) {
        skip();
        return;
    }
    s_compare(p, "models/taef2_ref.safetensors", 32);
}

static void test_taef1_tiny(void **state) {
    (void)state;
    char p[1024];
    s_compare(lf_test_fixture(p, sizeof p, "flux/taef1_tiny.safetensors"), "flux/taef1_tiny_ref.safetensors", 16);
}

/* A Flux model with TAEF1 as its preview: the pipeline hands the preview
 * the VAE's own latent (x0 / scale + shift); TAEF1 takes the model's
 * (ComfyUI's process_in: (z - shift) * scale), so the bytes are diffusers'
 * decode of z, (rgb in [0, 1]) * 255 rounded and clamped, within one level. */
static void test_flux_model_preview(void **state) {
    (void)state;
    char tp[1024], cp[1024], vp[1024], ap[1024], rp[1024], err[512] = "";
    const char *texts[1] = {lf_test_fixture(cp, sizeof cp, "flux/flux_clip_l.safetensors")};
    lf_model_opts_t o = {.weight_type = LF_TYPE_F32, .text_paths = texts, .n_text_paths = 1,
                         .vae_path = lf_test_fixture(vp, sizeof vp, "flux/flux_vae.safetensors"),
                         .taesd_path = lf_test_fixture(ap, sizeof ap, "flux/taef1_tiny.safetensors")};
    lf_model_t *m = NULL;
    int rc = lf_model_load(lf_test_fixture(tp, sizeof tp, "flux/flux_dev_bfl.safetensors"), &o, &m, err, sizeof err);
    if (rc) printf("%s\n", err);
    assert_int_equal(rc, 0);
    assert_int_equal(lf_model_desc(m)->preview, LF_PREVIEW_TAESD);
    lf_safetensors_t *ref = NULL;
    assert_int_equal(lf_safetensors_open(&ref, lf_test_fixture(rp, sizeof rp, "flux/taef1_tiny_ref.safetensors"), err,
                                         sizeof err),
                     0);
    size_t n;
    float *z = lf_test_ref_f32(ref, "z_vae", NULL), *want = lf_test_ref_f32(ref, "rgb", &n);
    assert_int_equal(n, 3 * 64 * 64);
    uint8_t *rgb = malloc(n);
    int w = 0, h = 0;
    assert_int_equal(lf_model_preview(m, z, 8, 8, rgb, &w, &h), 0);
    assert_int_equal(w, 64);
    assert_int_equal(h, 64);
    int worst = 0, inside = 0;
    for (size_t i = 0; i < 64 * 64; i++)
        for (int c = 0; c < 3; c++) {
            float v = want[(size_t)c * 64 * 64 + i] * 255.0f;
            int e = (int)lrintf(v < 0 ? 0 : v > 255 ? 255 : v);
            inside += v > 0 && v < 255;
            int d = abs((int)rgb[i * 3 + c] - e);
            worst = d > worst ? d : worst;
        }
    printf("  flux model preview (TAEF1): worst %d levels, %d of %zu values inside 0..255\n", worst, inside, n);
    assert_true(worst <= 1);
    assert_true(inside > (int)n / 2); /* the reference is not all clamped */
    free(z), free(want), free(rgb);
    lf_safetensors_destroy(&ref);
    lf_model_destroy(&m);
}

static void test_model_preview(void **state) {
    (void)state;
    char mp[1024], tp[1024], err[512] = "";
    lf_model_opts_t o = {.weight_type = -1,
                         .taesd_path =
                             lf_test_fixture(tp, sizeof tp, "models/taesd_tiny_sd.safetensors")};
    lf_model_t *m = NULL;
    int rc = lf_model_load(lf_test_fixture(mp, sizeof mp, "models/tiny_a.safetensors"), &o, &m, err,
                           sizeof err);
    if (rc) printf("%s\n", err);
    assert_int_equal(rc, 0);
    assert_true(lf_model_desc(m)->has_preview);
    float z[4 * 8 * 8];
    for (int i = 0; i < 4 * 64; i++) z[i] = sinf((float)i);
    uint8_t *rgb = malloc(64 * 64 * 3);
    int w = 0, h = 0;
    assert_int_equal(lf_model_preview(m, z, 8, 8, rgb, &w, &h), 0);
    assert_int_equal(w, 64);
    assert_int_equal(h, 64);
    free(rgb);
    lf_model_destroy(&m);
    /* A file that is not a TAESD decoder is refused with its name. */
    o.taesd_path = mp;
    assert_int_not_equal(lf_model_load(mp, &o, &m, err, sizeof err), 0);
    printf("  not taesd: %s\n", err);
    assert_non_null(strstr(err, "tiny_a.safetensors"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tiny_sd),
        cmocka_unit_test(test_taef2_real),
        cmocka_unit_test(test_taef1_tiny),
        cmocka_unit_test(test_flux_model_preview),
        cmocka_unit_test(test_model_preview),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
