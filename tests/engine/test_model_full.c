/* Full-size SD1.5 (random weights) through lf_model: one UNet step at a
 * 64x64 latent (4096-token attention), the text encoder with clip skip 2 and
 * a VAE decode, against PyTorch outputs from
 * `make_model_fixtures.py --full`. The checkpoint (~2 GB) is not committed:
 * the test reads LF_SD15_FULL (default tests/reference/out/
 * sd15_full.safetensors, with sd15_full_ref.safetensors beside it) and
 * skips with a message when it is absent. Label "slow". Error: max |ours -
 * ref| / max |ref|. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <cmocka.h>

#include "lf_error.h"
#include "lf_model.h"
#include "lf_safetensors.h"

static float *s_get(lf_safetensors_t *ref, const char *name, size_t *n) {
    const lf_tensor_info_t *t = lf_safetensors_find(ref, name);
    assert_non_null(t);
    size_t k = (size_t)lf_tensorinfo_numel(t);
    float *v = malloc(k * sizeof *v);
    assert_non_null(v);
    for (size_t i = 0; i < k; i++) v[i] = lf_tensorinfo_get_f32(t, (int64_t)i);
    if (n) *n = k;
    return v;
}

static double s_relerr(const float *a, const float *ref, size_t n) {
    double m = 0, e = 0;
    for (size_t i = 0; i < n; i++) {
        m = fmax(m, fabs(ref[i]));
        e = fmax(e, fabs((double)a[i] - ref[i]));
    }
    return m > 0 ? e / m : e;
}

static double s_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void test_full_sd15(void **state) {
    (void)state;
    const char *ck = getenv("LF_SD15_FULL");
    if (!ck || !*ck) ck = LF_SD15_FULL_DEFAULT;
    struct stat sb;
    if (stat(ck, &sb) != 0) {
        printf("SKIP: %s absent (make_model_fixtures.py --full, or set LF_SD15_FULL)\n", ck);
        skip();
        return;
    }
    char refp[4096], err[512] = "";
    snprintf(refp, sizeof refp, "%s", ck);
    char *slash = strrchr(refp, '/');
    snprintf(slash ? slash + 1 : refp, sizeof refp - (size_t)(slash ? slash + 1 - refp : 0),
             "sd15_full_ref.safetensors");
    lf_safetensors_t *ref = NULL;
    int rc = lf_safetensors_open(&ref, refp, err, sizeof err);
    if (rc) {
        printf("SKIP: %s\n", err);
        skip();
        return;
    }
    double t0 = s_now();
    lf_model_t *m = NULL;
    rc = lf_model_load(ck, NULL, &m, err, sizeof err);
    if (rc) printf("%s\n", err);
    assert_int_equal(rc, 0);
    printf("  load %.1f s\n", s_now() - t0);
    const lf_model_desc_t *d = lf_model_desc(m);
    assert_int_equal(d->text_dim, 768);
    assert_int_equal(d->vae_scale, 8);
    size_t n;
    float *x = s_get(ref, "unet_x", &n), *t = s_get(ref, "unet_t", NULL);
    float *ctx = s_get(ref, "unet_ctx", NULL), *want = s_get(ref, "unet_out", NULL);
    float *o = malloc(n * sizeof *o);
    t0 = s_now();
    assert_int_equal(lf_model_denoise(m, x, 1, 64, 64, t, ctx, 77, o), 0);
    double e = s_relerr(o, want, n);
    printf("  unet 64x64 step %.1f s, rel err %.3g\n", s_now() - t0, e);
    assert_true(e < 1e-4);
    free(x), free(t), free(ctx), free(want), free(o);
    float *idf = s_get(ref, "clip_ids", NULL), *w2 = s_get(ref, "clip_skip2", &n);
    int32_t ids[77];
    for (int i = 0; i < 77; i++) ids[i] = (int32_t)idf[i];
    o = malloc(n * sizeof *o);
    assert_int_equal(lf_model_encode_text(m, ids, NULL, 1, 2, o), 0);
    e = s_relerr(o, w2, n);
    printf("  text clip skip 2 rel err %.3g\n", e);
    assert_true(e < 1e-4);
    free(idf), free(w2), free(o);
    float *z = s_get(ref, "vae_z", NULL), *img = s_get(ref, "vae_img", &n);
    o = malloc(n * sizeof *o);
    t0 = s_now();
    assert_int_equal(lf_model_vae_decode(m, z, 1, 32, 32, 0, o), 0);
    e = s_relerr(o, img, n);
    printf("  vae decode 32x32 %.1f s, rel err %.3g\n", s_now() - t0, e);
    assert_true(e < 1e-4);
    free(z), free(img), free(o);
    lf_model_destroy(&m);
    lf_safetensors_destroy(&ref);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_full_sd15)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
