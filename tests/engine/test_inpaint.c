/* lf_inpaint against the libraries A1111 calls, byte for byte: Pillow 9.4's
 * convert("L"), ImageOps.invert, masking.fill (GaussianBlur box passes and
 * alpha_composite), the overlay (RGBa paste, back to RGBA), apply_overlay's
 * alpha_composite, resize_image modes 1 and 2, the latent mask (BICUBIC,
 * np.around), OpenCV 4.10's GaussianBlur with A1111's kernel sizes, and
 * masking's crop region and expansion. Reference data:
 * tests/reference/make_inpaint_fixtures.py -> fixtures/inpaint/ops.*. */
#include <jansson.h>
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
#include "lf_inpaint.h"
#include "lf_safetensors.h"
#include "lf_tensorinfo.h"
#include "lf_test_util.h"

#define W 37
#define H 29

typedef struct {
    lf_safetensors_t *st;
    json_t *meta;
} s_fix_t;

static int s_setup(void **state)
{
    char path[1024], err[256];
    s_fix_t *f = calloc(1, sizeof *f);
    lf_test_fixture(path, sizeof path, "inpaint/ops.safetensors");
    if (!f || lf_safetensors_open(&f->st, path, err, sizeof err) != 0) {
        fprintf(stderr, "%s: %s\n", path, err);
        return -1;
    }
    lf_test_fixture(path, sizeof path, "inpaint/ops.json");
    f->meta = json_load_file(path, 0, NULL);
    *state = f;
    return f->meta ? 0 : -1;
}

static int s_teardown(void **state)
{
    s_fix_t *f = *state;
    lf_safetensors_destroy(&f->st);
    json_decref(f->meta);
    free(f);
    return 0;
}

static const uint8_t *s_u8(s_fix_t *f, const char *name, size_t n)
{
    const lf_tensor_info_t *t = lf_safetensors_find(f->st, name);
    if (!t) fail_msg("fixture tensor %s missing", name);
    assert_int_equal(t->nbytes, n);
    return t->data;
}

/* Byte-exact, with the first difference named. */
static void s_same(const uint8_t *a, const uint8_t *ref, size_t n, const char *what)
{
    size_t bad = 0, first = 0;
    for (size_t i = 0; i < n; i++)
        if (a[i] != ref[i] && !bad++) first = i;
    if (bad) fail_msg("%s: %zu of %zu bytes differ, first at %zu (%u vs %u)", what, bad, n, first, a[first], ref[first]);
}

static void test_luma_invert_blur(void **state)
{
    s_fix_t *f = *state;
    uint8_t l[W * H], m[W * H];
    lf_inpaint_luma(s_u8(f, "mask_rgb", W * H * 3), W, H, l);
    s_same(l, s_u8(f, "luma", W * H), W * H, "luma");
    memcpy(m, l, sizeof m);
    lf_inpaint_invert(m, W, H);
    s_same(m, s_u8(f, "inv", W * H), W * H, "invert");
    lf_inpaint_mask_l(s_u8(f, "mask_rgba", W * H * 4), 4, W, H, m);
    s_same(m, s_u8(f, "binary_rgba", W * H), W * H, "create_binary_mask (RGBA)");
    uint8_t rgba[W * H * 4];
    const uint8_t *rgb = s_u8(f, "mask_rgb", W * H * 3);
    for (size_t p = 0; p < W * H; p++) memcpy(rgba + p * 4, rgb + p * 3, 3), rgba[p * 4 + 3] = 255;
    lf_inpaint_mask_l(rgba, 4, W, H, m); /* opaque RGBA: the luma */
    s_same(m, s_u8(f, "luma", W * H), W * H, "create_binary_mask (opaque RGBA)");
    size_t i;
    json_t *b;
    json_array_foreach(json_object_get(f->meta, "blur"), i, b) {
        const char *name = json_string_value(json_array_get(b, 0));
        memcpy(m, l, sizeof m);
        assert_int_equal(lf_inpaint_blur(m, W, H, json_number_value(json_array_get(b, 1)),
                                         json_number_value(json_array_get(b, 2))), 0);
        s_same(m, s_u8(f, name, W * H), W * H, name);
    }
    assert_int_equal(lf_inpaint_blur(m, W, H, -1, 0), LF_EINVAL);
}

static void test_crop_region(void **state)
{
    s_fix_t *f = *state;
    uint8_t m[W * H];
    memcpy(m, s_u8(f, "blur_4_4", W * H), sizeof m);
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(f->meta, "crop"), i, c) {
        int r[4], pad = (int)json_integer_value(json_array_get(c, 0));
        int pw = (int)json_integer_value(json_array_get(c, 1)), ph = (int)json_integer_value(json_array_get(c, 2));
        assert_int_equal(lf_inpaint_crop_region(m, W, H, pad, pw, ph, r), 0);
        json_t *ref = json_array_get(c, 3);
        for (int k = 0; k < 4; k++)
            if (r[k] != json_integer_value(json_array_get(ref, (size_t)k)))
                fail_msg("pad %d, %dx%d: region {%d,%d,%d,%d}, A1111 {%lld,%lld,%lld,%lld}", pad, pw, ph, r[0], r[1],
                         r[2], r[3], json_integer_value(json_array_get(ref, 0)),
                         json_integer_value(json_array_get(ref, 1)), json_integer_value(json_array_get(ref, 2)),
                         json_integer_value(json_array_get(ref, 3)));
    }
    memset(m, 0, sizeof m);
    int r[4];
    assert_int_equal(lf_inpaint_crop_region(m, W, H, 4, 16, 16, r), 1); /* blank: no region */
}

static void test_resize_modes(void **state)
{
    s_fix_t *f = *state;
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(f->meta, "resize"), i, c) {
        const char *name = json_string_value(json_array_get(c, 0));
        int mode = (int)json_integer_value(json_array_get(c, 1));
        int dw = (int)json_integer_value(json_array_get(c, 2)), dh = (int)json_integer_value(json_array_get(c, 3));
        uint8_t *out = malloc((size_t)dw * dh * 3);
        assert_int_equal(lf_inpaint_resize_mode(mode, s_u8(f, "img", W * H * 3), W, H, out, dw, dh), 0);
        s_same(out, s_u8(f, name, (size_t)dw * dh * 3), (size_t)dw * dh * 3, name);
        free(out);
    }
}

static void test_fill_overlay_composite(void **state)
{
    s_fix_t *f = *state;
    uint8_t img[W * H * 3], mfo[W * H], ov[W * H * 4], dst[W * H * 4], rgb[W * H * 3];
    const uint8_t *mask = s_u8(f, "blur_4_4", W * H);
    memcpy(img, s_u8(f, "img", sizeof img), sizeof img);
    assert_int_equal(lf_inpaint_fill(img, mask, W, H), 0);
    s_same(img, s_u8(f, "fill", sizeof img), sizeof img, "masking.fill");
    for (size_t p = 0; p < W * H; p++) mfo[p] = (uint8_t)(mask[p] > 127 ? 255 : mask[p] * 2);
    lf_inpaint_overlay(s_u8(f, "img", sizeof img), mfo, W, H, ov);
    s_same(ov, s_u8(f, "overlay", sizeof ov), sizeof ov, "overlay");
    const uint8_t *other = s_u8(f, "other", sizeof img);
    for (size_t p = 0; p < W * H; p++) {
        memcpy(dst + p * 4, other + p * 3, 3);
        dst[p * 4 + 3] = 255;
    }
    lf_inpaint_alpha_composite(dst, ov, W, H);
    for (size_t p = 0; p < W * H; p++) memcpy(rgb + p * 3, dst + p * 4, 3);
    s_same(rgb, s_u8(f, "composite", sizeof rgb), sizeof rgb, "apply_overlay");
    /* Outside the blurred mask the result is the original, byte for byte. */
    for (size_t p = 0; p < W * H; p++)
        if (!mask[p]) assert_memory_equal(rgb + p * 3, s_u8(f, "img", sizeof img) + p * 3, 3);
}

static void test_latent_mask(void **state)
{
    s_fix_t *f = *state;
    const uint8_t *src = s_u8(f, "lmask_src", 40 * 32);
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(f->meta, "latent"), i, c) {
        int lw = (int)json_integer_value(json_array_get(c, 0)), lh = (int)json_integer_value(json_array_get(c, 1));
        char name[32];
        snprintf(name, sizeof name, "lmask_%dx%d", lw, lh);
        const lf_tensor_info_t *t = lf_safetensors_find(f->st, name);
        assert_non_null(t);
        float *nm = malloc((size_t)lw * lh * sizeof *nm);
        assert_int_equal(lf_inpaint_latent_mask(src, 40, 32, nm, lw, lh), 0);
        for (int k = 0; k < lw * lh; k++)
            if (nm[k] != lf_tensorinfo_get_f32(t, k)) fail_msg("%s[%d]: %g vs %g", name, k, nm[k], lf_tensorinfo_get_f32(t, k));
        free(nm);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_luma_invert_blur),
        cmocka_unit_test(test_crop_region),
        cmocka_unit_test(test_resize_modes),
        cmocka_unit_test(test_fill_overlay_composite),
        cmocka_unit_test(test_latent_mask),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
