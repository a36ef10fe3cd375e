/* Slow: the assembly from parts at SDXL's real sizes. The full-size random
 * SDXL base of make_sdxl_fixtures.py --full (not committed: one SGM file and
 * a diffusers folder, f16) gives the two files SDXL-Lightning users have: a
 * UNet alone in diffusers names without any config (ByteDance's
 * sdxl_lightning_Nstep_unet.safetensors has none: every size comes from the
 * shapes) and a base checkpoint for the text encoders and the VAE. The
 * manifest's check passes, and one UNet call (16x16 latent, batch 1) of the
 * assembled model equals the checkpoint's bit for bit.
 *
 * Finds the files in $LF_SDXL_FULL_DIR, else LF_SDXL_FULL_DIR_DEFAULT
 * (tests/reference/out); exits 77 (skipped) without them. Needs ~7 GB: run
 * it under the shared memory lock (flock /tmp/lf-bigmem.lock). */
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
#include "lf_manifest.h"
#include "lf_model.h"
#include "lf_rng.h"

static char s_ckpt[1200], s_unet[1200];

static double s_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* One UNet call on fixed random inputs; caller frees. */
static float *s_unet_out(lf_model_t *m) {
    const lf_model_desc_t *d = lf_model_desc(m);
    assert_int_equal(d->family, LF_FAMILY_SDXL);
    assert_int_equal(d->text_dim, 2048);
    assert_int_equal(d->pooled_dim, 1280);
    assert_int_equal(d->n_time_ids, 6);
    const int H = 16, C = 4, T = 77, V = 1280 + 6;
    float *x = malloc((size_t)C * H * H * sizeof *x), *ctx = malloc((size_t)T * 2048 * sizeof *ctx),
          *vec = malloc((size_t)V * sizeof *vec), *out = malloc((size_t)C * H * H * sizeof *out);
    lf_rng_t rng;
    lf_rng_init(&rng, LF_RNG_TORCH_CPU, 20);
    lf_rng_randn(&rng, x, (size_t)C * H * H);
    lf_rng_randn(&rng, ctx, (size_t)T * 2048);
    lf_rng_randn(&rng, vec, 1280);
    const float ids[6] = {128, 128, 0, 0, 128, 128};
    memcpy(vec + 1280, ids, sizeof ids);
    float t = 500.0f;
    double t0 = s_now();
    assert_int_equal(lf_model_denoise(m, x, 1, H, H, &t, ctx, T, vec, out), 0);
    printf("  one 16x16 UNet call: %.2f s\n", s_now() - t0);
    free(x), free(ctx), free(vec);
    return out;
}

static void test_full_size_assembly(void **state) {
    (void)state;
    char err[1024] = "", j[3000];
    snprintf(j, sizeof j, "{\"family\": \"sdxl\", \"parts\": {\"unet\": \"%s\", \"checkpoint\": \"%s\"}}", s_unet, s_ckpt);
    lf_manifest_t *man = NULL;
    assert_int_equal(lf_manifest_parse(j, strlen(j), "/tmp/full.model.json", &man, err, sizeof err), 0);
    double t0 = s_now();
    int rc = lf_manifest_check(man, err, sizeof err);
    if (rc) printf("%s\n", err);
    assert_int_equal(rc, 0);
    printf("  manifest check (headers of both files): %.3f s\n", s_now() - t0);

    lf_model_t *m = NULL;
    t0 = s_now();
    assert_int_equal(lf_model_load(s_ckpt, NULL, &m, err, sizeof err), 0);
    printf("  single file loaded in %.1f s\n", s_now() - t0);
    float *a = s_unet_out(m);
    lf_model_destroy(&m);

    const char *tp[1] = {man->text[0]};
    lf_model_opts_t o = {.weight_type = -1, .text_paths = tp, .n_text_paths = 1, .vae_path = man->vae};
    t0 = s_now();
    rc = lf_model_load(man->unet, &o, &m, err, sizeof err);
    if (rc) printf("%s\n", err);
    assert_int_equal(rc, 0);
    printf("  UNet-only diffusers file + checkpoint parts loaded in %.1f s\n", s_now() - t0);
    float *b = s_unet_out(m);
    lf_model_destroy(&m);
    double maxd = 0;
    for (int i = 0; i < 4 * 16 * 16; i++) maxd = fmax(maxd, fabs((double)a[i] - b[i]));
    printf("  max |assembled - single file| = %g\n", maxd);
    assert_memory_equal(a, b, 4 * 16 * 16 * sizeof(float));
    free(a), free(b);
    lf_manifest_destroy(&man);
}

int main(void) {
    const char *dir = getenv("LF_SDXL_FULL_DIR");
    if (!dir || !*dir) dir = LF_SDXL_FULL_DIR_DEFAULT;
    snprintf(s_ckpt, sizeof s_ckpt, "%s/sdxl_full.safetensors", dir);
    snprintf(s_unet, sizeof s_unet, "%s/sdxl_full_diffusers/unet/diffusion_pytorch_model.safetensors", dir);
    struct stat sb;
    if (stat(s_ckpt, &sb) || stat(s_unet, &sb)) {
        printf("SKIP: no full-size SDXL in %s (tests/reference/make_sdxl_fixtures.py --full; or set LF_SDXL_FULL_DIR)\n",
               dir);
        return 77;
    }
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_full_size_assembly)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
