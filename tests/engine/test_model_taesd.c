/* Tests of the TAESD preview decoder: a tiny random SD-style decoder
 * (diffusers AutoencoderTiny key names, 4 latent channels) and the real
 * FLUX.2 decoder from the shared reference data (PyTorch zip, 32 latent
 * channels, pool branch), both against PyTorch outputs written by
 * tests/reference/make_model_fixtures.py. Error: max |ours - ref| / max |ref|
 * below 1e-4. */
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
        cmocka_unit_test(test_model_preview),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
