/* The VAE decode of the built-in model (models/lf-tiny-shapes.safetensors;
 * skipped with a message when absent) with the CPU's default convolution
 * algorithms against the GEMM-only decode (LF_CPU_CONV_ALGO=gemm, the f32
 * reference path before Winograd): at 256x256 the decoder's 3x3
 * convolutions from its 64x64 level up run as Winograd by default
 * (kernels/cpu/lf_cpu_dnnl.c). The images must agree within 1e-4 of the
 * largest |value| (measured 1e-6-class differences; the full-size SD1.5 VAE
 * at 512x512: 9.8e-6 of 4.25) and the 8-bit PSNR be above 60 dB, yet not be
 * bit-identical (else Winograd did not run and this test checks nothing).
 * The latent is the GEMM-only encode of a drawn test image (coloured
 * rectangles on a gradient, as the model draws), so the decode is an image
 * of the model's range, not a dim blur. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "lf_error.h"
#include "lf_model.h"

#ifndef LF_MODELS_DIR
#define LF_MODELS_DIR "models"
#endif
#define S_LATENT 32 /* the model's native 256x256 */

/* The built-in model loaded with algo as LF_CPU_CONV_ALGO (NULL: the
 * default). */
static lf_model_t *s_load(const char *path, const char *algo) {
    if (algo) setenv("LF_CPU_CONV_ALGO", algo, 1);
    char err[512] = "";
    lf_model_t *m = NULL;
    int rc = lf_model_load(path, NULL, &m, err, sizeof err);
    unsetenv("LF_CPU_CONV_ALGO");
    if (rc) fail_msg("load %s: %s", path, err);
    return m;
}

/* A test image [3][side][side] in [-1, 1]: a horizontal gradient with a
 * red and a green rectangle. */
static void s_image(float *img, int side) {
    const size_t plane = (size_t)side * side;
    for (int y = 0; y < side; y++)
        for (int x = 0; x < side; x++) {
            float r = (float)x / (float)side, g = 0.2f, b = 1.0f - (float)x / (float)side;
            if (x > side / 8 && x < side / 2 && y > side / 6 && y < side / 2) r = 1.0f, g = 0.0f, b = 0.0f;
            if (x > side / 2 && x < 7 * side / 8 && y > side / 2 && y < 7 * side / 8) r = 0.0f, g = 1.0f, b = 0.0f;
            img[(size_t)y * side + x] = r * 2 - 1;
            img[plane + (size_t)y * side + x] = g * 2 - 1;
            img[2 * plane + (size_t)y * side + x] = b * 2 - 1;
        }
}

static void test_vae_decode_default_vs_gemm(void **state) {
    (void)state;
    const char *path = LF_MODELS_DIR "/lf-tiny-shapes.safetensors";
    struct stat sb;
    if (stat(path, &sb) != 0) {
        printf("  skipped: %s is absent (the built-in model)\n", path);
        skip();
        return;
    }
    lf_model_t *mg = s_load(path, "gemm"), *md = s_load(path, NULL);
    const int C = lf_model_desc(mg)->latent_channels, S = S_LATENT, side = S * lf_model_desc(mg)->vae_scale;
    const size_t n = (size_t)3 * side * side;
    float *img = malloc(n * sizeof *img), *z = malloc((size_t)C * S * S * sizeof *z);
    float *ref = malloc(n * sizeof *ref), *got = malloc(n * sizeof *got);
    assert_true(img && z && ref && got);
    s_image(img, side);
    assert_int_equal(lf_model_vae_encode(mg, img, 1, side, side, 0, z), 0);
    assert_int_equal(lf_model_vae_decode(mg, z, 1, S, S, 0, ref), 0);
    assert_int_equal(lf_model_vae_decode(md, z, 1, S, S, 0, got), 0);
    double maxref = 0, maxdiff = 0, se = 0;
    for (size_t i = 0; i < n; i++) {
        const double d = fabs((double)got[i] - ref[i]);
        maxref = fmax(maxref, fabs(ref[i])), maxdiff = fmax(maxdiff, d);
        const double a = fmin(fmax(got[i], -1.0), 1.0), b = fmin(fmax(ref[i], -1.0), 1.0);
        se += (a - b) * (a - b) * 127.5 * 127.5;
    }
    const double psnr = se > 0 ? 10.0 * log10(255.0 * 255.0 / (se / (double)n)) : INFINITY;
    printf("  default vs gemm: max |diff| %.3g of max |ref| %.3g, PSNR %.1f dB\n", maxdiff, maxref, psnr);
    assert_true(maxref > 0.5); /* an image, not a blur */
    assert_true(maxdiff <= 1e-4 * maxref);
    assert_true(psnr >= 60.0);
    assert_true(maxdiff > 0.0);
    free(img), free(z), free(ref), free(got);
    lf_model_destroy(&mg), lf_model_destroy(&md);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vae_decode_default_vs_gemm),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
