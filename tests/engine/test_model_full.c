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
#include "lf_test_ref.h"

static double s_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* $LF_SD15_FULL, else the path make_model_fixtures.py --full writes. */
static const char *s_checkpoint(void) {
    const char *ck = getenv("LF_SD15_FULL");
    return ck && *ck ? ck : LF_SD15_FULL_DEFAULT;
}

static void test_full_sd15(void **state) {
    (void)state;
    const char *ck = s_checkpoint(); /* main() skips the whole test without it */
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
    float *x = lf_test_ref_f32(ref, "unet_x", &n), *t = lf_test_ref_f32(ref, "unet_t", NULL);
    float *ctx = lf_test_ref_f32(ref, "unet_ctx", NULL), *want = lf_test_ref_f32(ref, "unet_out", NULL);
    float *o = malloc(n * sizeof *o);
    t0 = s_now();
    assert_int_equal(lf_model_denoise(m, x, 1, 64, 64, t, ctx, 77, NULL, o), 0);
    double e = lf_test_relerr(o, want, n);
    printf("  unet 64x64 step %.1f s, rel err %.3g\n", s_now() - t0, e);
    assert_true(e < 1e-4);
    free(x), free(t), free(ctx), free(want), free(o);
    float *idf = lf_test_ref_f32(ref, "clip_ids", NULL), *w2 = lf_test_ref_f32(ref, "clip_skip2", &n);
    int32_t ids[77];
    for (int i = 0; i < 77; i++) ids[i] = (int32_t)idf[i];
    o = malloc(n * sizeof *o);
    assert_int_equal(lf_model_encode_text(m, ids, NULL, 1, 2, o, NULL), 0);
    e = lf_test_relerr(o, w2, n);
    printf("  text clip skip 2 rel err %.3g\n", e);
    assert_true(e < 1e-4);
    free(idf), free(w2), free(o);
    float *z = lf_test_ref_f32(ref, "vae_z", NULL), *img = lf_test_ref_f32(ref, "vae_img", &n);
    o = malloc(n * sizeof *o);
    t0 = s_now();
    assert_int_equal(lf_model_vae_decode(m, z, 1, 32, 32, 0, o), 0);
    e = lf_test_relerr(o, img, n);
    printf("  vae decode 32x32 %.1f s, rel err %.3g\n", s_now() - t0, e);
    assert_true(e < 1e-4);
    free(z), free(img), free(o);
    lf_model_destroy(&m);
    lf_safetensors_destroy(&ref);
}

int main(void) {
    /* Without the (uncommitted) checkpoint ctest reports Skipped (77), not Passed. */
    const char *ck = s_checkpoint();
    struct stat sb;
    if (stat(ck, &sb) != 0) {
        printf("SKIP: %s absent (make_model_fixtures.py --full, or set LF_SD15_FULL)\n", ck);
        return 77;
    }
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_full_sd15)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
