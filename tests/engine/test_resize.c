/* Tests of lf_resize against the reference libraries' own outputs, written
 * by tests/reference/make_resize_fixtures.py: torch 1.13's
 * F.interpolate(align_corners=False) for the latent modes (A1111's "Latent
 * ..." upscalers; max relative error 1e-5 over every case) and Pillow 9.4's
 * Image.resize on 8-bit RGB (bit for bit: every byte equal). */
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
#include "lf_params.h"
#include "lf_resize.h"
#include "lf_safetensors.h"
#include "lf_test_ref.h"
#include "lf_test_util.h"

static lf_safetensors_t *s_open(const char *rel) {
    char p[1024], err[512] = "";
    lf_safetensors_t *s = NULL;
    int rc = lf_safetensors_open(&s, lf_test_fixture(p, sizeof p, rel), err, sizeof err);
    if (rc) printf("%s\n", err);
    assert_int_equal(rc, 0);
    return s;
}

static void test_latent_modes(void **state) {
    (void)state;
    lf_safetensors_t *ref = s_open("resize/latent.safetensors");
    const lf_tensor_info_t *xi = lf_safetensors_find(ref, "x");
    const int C = (int)xi->shape[0], h = (int)xi->shape[1], w = (int)xi->shape[2];
    float *x = lf_test_ref_f32(ref, "x", NULL);
    int cases = 0;
    double worst = 0;
    for (size_t i = 0; i < lf_safetensors_count(ref); i++) {
        const lf_tensor_info_t *t = lf_safetensors_at(ref, i);
        if (strcmp(t->name, "x") == 0) continue;
        char mode[32];
        int aa, oh, ow;
        assert_int_equal(sscanf(t->name, "%31[a-z-]_%d_%dx%d", mode, &aa, &oh, &ow), 4);
        lf_resize_filter_t f = LF_RESIZE_FILTER_COUNT;
        for (int k = 0; k < LF_RESIZE_FILTER_COUNT; k++)
            if (strcmp(lf_resize_filter_name((lf_resize_filter_t)k), mode) == 0) f = k;
        assert_true(f < LF_RESIZE_FILTER_COUNT);
        size_t n;
        float *want = lf_test_ref_f32(ref, t->name, &n);
        assert_int_equal(n, (size_t)C * oh * ow);
        float *o = malloc(n * sizeof *o);
        assert_int_equal(lf_resize_latent(x, C, h, w, o, oh, ow, f, aa), 0);
        double e = lf_test_relerr(o, want, n);
        if (e > 1e-5) printf("  %s: rel err %.3g\n", t->name, e);
        assert_true(e <= 1e-5);
        worst = fmax(worst, e);
        cases++;
        free(want), free(o);
    }
    printf("  %d torch interpolate cases, worst rel err %.3g\n", cases, worst);
    assert_int_equal(cases, 36);
    free(x);
    lf_safetensors_destroy(&ref);
}

static void test_pil_filters(void **state) {
    (void)state;
    lf_safetensors_t *ref = s_open("resize/pil.safetensors");
    const lf_tensor_info_t *xi = lf_safetensors_find(ref, "x");
    const int sh = (int)xi->shape[0], sw = (int)xi->shape[1];
    const uint8_t *x = xi->data;
    int cases = 0;
    for (size_t i = 0; i < lf_safetensors_count(ref); i++) {
        const lf_tensor_info_t *t = lf_safetensors_at(ref, i);
        if (strcmp(t->name, "x") == 0) continue;
        char name[32];
        int oh, ow;
        assert_int_equal(sscanf(t->name, "%31[A-Z]_%dx%d", name, &oh, &ow), 3);
        lf_resize_filter_t f = strcmp(name, "NEAREST") == 0    ? LF_RESIZE_NEAREST
                               : strcmp(name, "BILINEAR") == 0 ? LF_RESIZE_BILINEAR
                               : strcmp(name, "BICUBIC") == 0  ? LF_RESIZE_BICUBIC
                                                               : LF_RESIZE_LANCZOS;
        const size_t n = (size_t)oh * ow * 3;
        assert_int_equal(t->nbytes, n);
        uint8_t *o = malloc(n);
        assert_int_equal(lf_resize_rgb8(x, sw, sh, o, ow, oh, f), 0);
        int diff = 0, maxd = 0;
        for (size_t k = 0; k < n; k++) {
            int d = abs((int)o[k] - (int)((const uint8_t *)t->data)[k]);
            diff += d != 0;
            if (d > maxd) maxd = d;
        }
        if (diff) printf("  %s: %d bytes differ (max %d)\n", t->name, diff, maxd);
        assert_int_equal(diff, 0);
        free(o);
        cases++;
    }
    printf("  %d Pillow cases, all bytes equal\n", cases);
    assert_int_equal(cases, 24);
    lf_safetensors_destroy(&ref);
}

static void test_builtins_and_errors(void **state) {
    (void)state;
    const lf_resize_builtin_t *b = lf_resize_builtin_find("Latent (bicubic antialiased)");
    assert_non_null(b);
    assert_true(b->latent && b->antialias && b->filter == LF_RESIZE_BICUBIC);
    b = lf_resize_builtin_find("Latent (nearest-exact)");
    assert_true(b && b->filter == LF_RESIZE_NEAREST_EXACT && !b->antialias);
    b = lf_resize_builtin_find("Lanczos");
    assert_true(b && !b->latent && b->filter == LF_RESIZE_LANCZOS);
    assert_null(lf_resize_builtin_find("4x-UltraSharp"));
    assert_null(lf_resize_builtin_find(NULL));
    assert_int_equal(lf_resize_builtin_count(), 9);
    assert_string_equal(lf_resize_builtin_at(0)->name, "Latent");
    assert_null(lf_resize_builtin_at(9));
    /* The gateway's copy of the names (common/lf_params.c; the gateway does
     * not link the engine) is the same list in the same order. */
    int n = 0;
    for (; lf_param_hr_builtin_upscalers[n]; n++) {
        assert_non_null(lf_resize_builtin_at(n));
        assert_string_equal(lf_param_hr_builtin_upscalers[n], lf_resize_builtin_at(n)->name);
    }
    assert_int_equal(n, lf_resize_builtin_count());
    float x[4] = {1, 2, 3, 4}, y[16];
    uint8_t p[12] = {0}, q[48];
    assert_int_equal(lf_resize_latent(x, 1, 2, 2, y, 4, 4, LF_RESIZE_LANCZOS, 0), LF_EUNSUPPORTED);
    assert_int_equal(lf_resize_latent(x, 1, 2, 2, y, 4, 4, LF_RESIZE_NEAREST, 1), LF_EUNSUPPORTED);
    assert_int_equal(lf_resize_latent(x, 1, 0, 2, y, 4, 4, LF_RESIZE_BILINEAR, 0), LF_EINVAL);
    assert_int_equal(lf_resize_rgb8(p, 2, 2, q, 4, 4, LF_RESIZE_NEAREST_EXACT), LF_EUNSUPPORTED);
    assert_int_equal(lf_resize_rgb8(NULL, 2, 2, q, 4, 4, LF_RESIZE_LANCZOS), LF_EINVAL);
    /* Same size: a copy, for every filter. */
    uint8_t r[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, s[12];
    for (int f = 0; f < LF_RESIZE_FILTER_COUNT; f++) {
        if (f == LF_RESIZE_NEAREST_EXACT) continue;
        assert_int_equal(lf_resize_rgb8(r, 2, 2, s, 2, 2, (lf_resize_filter_t)f), 0);
        assert_memory_equal(r, s, 12);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_latent_modes),
        cmocka_unit_test(test_pil_filters),
        cmocka_unit_test(test_builtins_and_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
