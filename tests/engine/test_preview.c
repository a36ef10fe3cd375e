/* Tests of lf_preview (the approx preview's fit and application), driven
 * with synthetic buffers: a known linear map is recovered exactly from its
 * own pairs, input that cannot determine a map is refused with LF_EINVAL,
 * block means, the upscale rule and the byte mapping. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lf_error.h"
#include "lf_preview.h"
#include "lf_rng.h"

#define S_C 4
#define S_H 12
#define S_W 10

static const float s_a[3][S_C] = {{0.31f, -0.12f, 0.05f, 0.7f},
                                  {-0.4f, 0.22f, 0.13f, -0.05f},
                                  {0.09f, 0.5f, -0.6f, 0.11f}};
static const float s_b[3] = {0.1f, -0.25f, 0.04f};

/* rgb [3][h][w] = A z + b for z [C][h][w]. */
static void s_map(const float *z, float *rgb, int C, size_t plane)
{
    for (int k = 0; k < 3; k++)
        for (size_t p = 0; p < plane; p++) {
            double v = s_b[k];
            for (int c = 0; c < C; c++) v += (double)s_a[k][c] * z[(size_t)c * plane + p];
            rgb[(size_t)k * plane + p] = (float)v;
        }
}

static void test_fit_recovers_known_map(void **state)
{
    (void)state;
    const size_t plane = S_H * S_W;
    float z[S_C * S_H * S_W], rgb[3 * S_H * S_W];
    lf_rng_t rng;
    lf_rng_init(&rng, LF_RNG_TORCH_CPU, 7);
    lf_preview_fit_t fit;
    assert_int_equal(lf_preview_fit_init(&fit, S_C), 0);
    for (int img = 0; img < 3; img++) {
        /* Latents of the SD scale (std ~5 unscaled) with an offset, so the
         * centring matters. */
        lf_rng_randn(&rng, z, S_C * plane);
        for (size_t i = 0; i < S_C * plane; i++) z[i] = z[i] * 5.0f + 3.0f;
        s_map(z, rgb, S_C, plane);
        assert_int_equal(lf_preview_fit_add(&fit, z, rgb, S_H, S_W), 0);
    }
    lf_preview_map_t m;
    memset(&m, 0xff, sizeof m);
    assert_int_equal(lf_preview_fit_solve(&fit, &m), 0);
    assert_int_equal(m.channels, S_C);
    for (int k = 0; k < 3; k++) {
        for (int c = 0; c < S_C; c++) assert_true(fabsf(m.a[k][c] - s_a[k][c]) < 1e-5f);
        assert_true(fabsf(m.b[k] - s_b[k]) < 1e-5f);
    }
    /* Applied to a latent it gives the map's own colours, as bytes. */
    uint8_t px[3 * S_H * S_W];
    assert_int_equal(lf_preview_apply(&m, z, S_H, S_W, 1, px), 0);
    for (size_t p = 0; p < plane; p++)
        for (int k = 0; k < 3; k++) {
            float v = (rgb[(size_t)k * plane + p] + 1.0f) * 127.5f;
            v = v < 0 ? 0 : v > 255 ? 255 : v;
            assert_true(fabsf(px[p * 3 + k] - v) <= 0.51f);
        }
}

static void test_fit_refuses_degenerate(void **state)
{
    (void)state;
    const size_t plane = S_H * S_W;
    float z[S_C * S_H * S_W], rgb[3 * S_H * S_W];
    lf_rng_t rng;
    lf_rng_init(&rng, LF_RNG_TORCH_CPU, 9);
    lf_preview_fit_t fit;
    lf_preview_map_t m = {.channels = 99};

    /* Nothing added; then fewer pairs than unknowns per colour. */
    assert_int_equal(lf_preview_fit_init(&fit, S_C), 0);
    assert_int_equal(lf_preview_fit_solve(&fit, &m), LF_EINVAL);
    lf_rng_randn(&rng, z, S_C * plane);
    s_map(z, rgb, S_C, plane);
    float z1[S_C * 2], rgb1[3 * 2];
    for (int c = 0; c < S_C; c++) z1[c * 2] = z[c * plane], z1[c * 2 + 1] = z[c * plane + 1];
    for (int k = 0; k < 3; k++) rgb1[k * 2] = rgb[k * plane], rgb1[k * 2 + 1] = rgb[k * plane + 1];
    assert_int_equal(lf_preview_fit_add(&fit, z1, rgb1, 1, 2), 0);
    assert_int_equal(lf_preview_fit_solve(&fit, &m), LF_EINVAL);

    /* A constant channel (lf-tiny-shapes' encoder leaves channel 3 at 0). */
    assert_int_equal(lf_preview_fit_init(&fit, S_C), 0);
    for (size_t p = 0; p < plane; p++) z[3 * plane + p] = 0.5f;
    s_map(z, rgb, S_C, plane);
    assert_int_equal(lf_preview_fit_add(&fit, z, rgb, S_H, S_W), 0);
    assert_int_equal(lf_preview_fit_solve(&fit, &m), LF_EINVAL);

    /* Two channels that move together. */
    assert_int_equal(lf_preview_fit_init(&fit, S_C), 0);
    lf_rng_randn(&rng, z, S_C * plane);
    for (size_t p = 0; p < plane; p++) z[2 * plane + p] = 2.0f * z[plane + p] - 1.0f;
    s_map(z, rgb, S_C, plane);
    assert_int_equal(lf_preview_fit_add(&fit, z, rgb, S_H, S_W), 0);
    assert_int_equal(lf_preview_fit_solve(&fit, &m), LF_EINVAL);
    assert_int_equal(m.channels, 99); /* untouched by the failures */

    /* Bad arguments, and a NaN refused before it poisons the sums. */
    assert_int_equal(lf_preview_fit_init(&fit, 0), LF_EINVAL);
    assert_int_equal(lf_preview_fit_init(&fit, LF_PREVIEW_MAX_CHANNELS + 1), LF_EINVAL);
    assert_int_equal(lf_preview_fit_init(&fit, S_C), 0);
    lf_rng_randn(&rng, z, S_C * plane);
    s_map(z, rgb, S_C, plane);
    z[5] = NAN;
    assert_int_equal(lf_preview_fit_add(&fit, z, rgb, S_H, S_W), LF_EINVAL);
    assert_true(fit.n == 0.0);
    assert_int_equal(lf_preview_fit_add(&fit, z, rgb, 0, S_W), LF_EINVAL);
}

static void test_block_mean(void **state)
{
    (void)state;
    /* 2x3 latent pixels of 4x4 blocks: block (y, x) of channel c holds
     * c*100 + y*10 + x plus a zero-mean pattern. */
    const int h = 2, w = 3, s = 4, W = w * s, H = h * s;
    float img[3 * 8 * 12], out[3 * 2 * 3];
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++)
                img[(c * H + y) * W + x] =
                    (float)(c * 100 + (y / s) * 10 + x / s) + ((x + y) % 2 ? 0.5f : -0.5f);
    assert_int_equal(lf_preview_block_mean(img, h, w, s, out), 0);
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                assert_float_equal(out[(c * h + y) * w + x], c * 100 + y * 10 + x, 1e-5);
    assert_int_equal(lf_preview_block_mean(img, h, w, 0, out), LF_EINVAL);
}

/* ComfyUI's Flux projection folded into a map of the VAE's latent: the
 * bytes are ComfyUI's preview of the model latent (z - 0.1159) * 0.3611,
 * linear(x, factors, bias) then ((v + 1) / 2) * 255, computed here directly
 * (in double) for a spread of latents; a wrong scale or shift fails it. */
static void test_flux_projection(void **state)
{
    (void)state;
    enum { C = 16, H = 3, W = 5 };
    float z[C * H * W];
    for (int i = 0; i < C * H * W; i++) z[i] = 3.0f * sinf(0.37f * (float)i + 0.5f) + 0.1159f;
    lf_preview_map_t m;
    assert_int_equal(lf_preview_map_affine(&lf_preview_flux_factors[0][0], lf_preview_flux_bias, C, 0.3611f,
                                           0.1159f, &m), 0);
    uint8_t rgb[H * W * 3];
    assert_int_equal(lf_preview_apply(&m, z, H, W, 1, rgb), 0);
    int spread = 0;
    for (int p = 0; p < H * W; p++)
        for (int k = 0; k < 3; k++) {
            double v = lf_preview_flux_bias[k];
            for (int c = 0; c < C; c++) v += lf_preview_flux_factors[c][k] * (z[c * H * W + p] - 0.1159) * 0.3611;
            double b = (v + 1.0) / 2.0 * 255.0;
            int want = (int)lrint(b < 0 ? 0 : b > 255 ? 255 : b);
            assert_true(abs((int)rgb[p * 3 + k] - want) <= 1);
            spread |= 1 << (want / 32);
        }
    assert_true(__builtin_popcount(spread) >= 2); /* not all one colour */
    assert_int_equal(lf_preview_map_affine(NULL, lf_preview_flux_bias, C, 1, 0, &m), LF_EINVAL);
    assert_int_equal(lf_preview_map_affine(&lf_preview_flux_factors[0][0], lf_preview_flux_bias, 0, 1, 0, &m),
                     LF_EINVAL);
}

static void test_upscale_and_apply(void **state)
{
    (void)state;
    assert_int_equal(lf_preview_upscale(32, 32, 8), 4);   /* 256 px image -> 128 px preview */
    assert_int_equal(lf_preview_upscale(64, 64, 8), 4);   /* 512 -> 256 */
    assert_int_equal(lf_preview_upscale(128, 96, 8), 4);  /* 1024 -> 512 */
    assert_int_equal(lf_preview_upscale(200, 100, 8), 2); /* 1600 -> 400 */
    assert_int_equal(lf_preview_upscale(512, 8, 8), 1);
    assert_int_equal(lf_preview_upscale(8, 8, 2), 2);     /* never past the VAE's own scale */

    /* A 1-channel map, a 2x2 latent shown x3: each byte block is uniform,
     * and values past the range clamp (NaN shows black). */
    lf_preview_map_t m = {.channels = 1, .a = {{1.0f}, {-1.0f}, {0.0f}}, .b = {0.0f, 0.0f, 0.5f}};
    const float z[4] = {-1.0f, 0.0f, 2.0f, NAN};
    uint8_t px[6 * 6 * 3];
    assert_int_equal(lf_preview_apply(&m, z, 2, 2, 3, px), 0);
    const uint8_t want[4][3] = {{0, 255, 191}, {128, 128, 191}, {255, 0, 191}, {0, 0, 0}};
    for (int y = 0; y < 6; y++)
        for (int x = 0; x < 6; x++)
            for (int k = 0; k < 3; k++)
                assert_int_equal(px[(y * 6 + x) * 3 + k], want[(y / 3) * 2 + x / 3][k]);
    assert_int_equal(lf_preview_apply(&m, z, 2, 2, 9, px), LF_EINVAL);
    m.channels = 0;
    assert_int_equal(lf_preview_apply(&m, z, 2, 2, 1, px), LF_EINVAL);
    assert_string_equal(lf_preview_kind_name(LF_PREVIEW_APPROX), "approx");
    assert_string_equal(lf_preview_kind_name(LF_PREVIEW_TAESD), "taesd");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fit_recovers_known_map),
        cmocka_unit_test(test_fit_refuses_degenerate),
        cmocka_unit_test(test_block_mean),
        cmocka_unit_test(test_upscale_and_apply),
        cmocka_unit_test(test_flux_projection),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
