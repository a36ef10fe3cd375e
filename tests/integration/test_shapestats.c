/* Unit tests for lf_shapestats: synthetic images drawn here the way
 * tools/train/lf_shapes.py renders its training data (4x supersampled shape,
 * box-filtered down), classified by the C mirror of eval_shapes.py. */
#include <math.h>
#include <stdbool.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lf_error.h"
#include "lf_shapestats.h"

#define RES 128
#define SS 4

static const uint8_t *s_rgb(const char *name)
{
    for (int i = 0; i < LF_SHAPES_N_COLOURS; i++)
        if (!strcmp(lf_shapes_palette[i].name, name)) return lf_shapes_palette[i].rgb;
    fail_msg("no colour %s", name);
    return NULL;
}

/* Even-odd point in polygon. */
static int s_in_poly(const double (*p)[2], int n, double x, double y)
{
    int in = 0;
    for (int i = 0, j = n - 1; i < n; j = i++) {
        if ((p[i][1] > y) != (p[j][1] > y) &&
            x < (p[j][0] - p[i][0]) * (y - p[i][1]) / (p[j][1] - p[i][1]) + p[i][0])
            in = !in;
    }
    return in;
}

/* lf_shapes.shape_polygon, in image units. */
static int s_polygon(const char *shape, double cx, double cy, double r, double (*p)[2])
{
    if (!strcmp(shape, "square")) {
        double h = r * 0.85;
        double q[4][2] = {{cx - h, cy - h}, {cx + h, cy - h}, {cx + h, cy + h}, {cx - h, cy + h}};
        memcpy(p, q, sizeof q);
        return 4;
    }
    if (!strcmp(shape, "triangle")) {
        double w = r * 1.05, h = w * sqrt(3.0);
        double q[3][2] = {{cx, cy - h / 2}, {cx + w, cy + h / 2}, {cx - w, cy + h / 2}};
        memcpy(p, q, sizeof q);
        return 3;
    }
    if (!strcmp(shape, "star")) {
        for (int k = 0; k < 10; k++) {
            double rr = k % 2 == 0 ? r : r * 0.42, a = -M_PI / 2 + k * M_PI / 5;
            p[k][0] = cx + rr * cos(a);
            p[k][1] = cy + 0.08 * r + rr * sin(a);
        }
        return 10;
    }
    fail_msg("no polygon for %s", shape);
    return 0;
}

/* Renders one shape on a plain background: each output pixel is the mean of
 * SS x SS sub-pixels, a sub-pixel takes the shape colour when its centre is
 * inside (lf_shapes.render: a 4x image box-resized). */
static uint8_t *s_render(const char *shape, const char *colour, const char *bg, double r, double cx,
                         double cy)
{
    uint8_t *img = malloc(RES * RES * 3);
    assert_non_null(img);
    const uint8_t *fc = s_rgb(colour), *bc = s_rgb(bg);
    double poly[10][2];
    int n = strcmp(shape, "circle") ? s_polygon(shape, cx, cy, r, poly) : 0;
    for (int y = 0; y < RES; y++)
        for (int x = 0; x < RES; x++) {
            int hits = 0;
            for (int sy = 0; sy < SS; sy++)
                for (int sx = 0; sx < SS; sx++) {
                    double px = x + (sx + 0.5) / SS, py = y + (sy + 0.5) / SS;
                    if (n == 0)
                        hits += (px - cx) * (px - cx) + (py - cy) * (py - cy) <= r * r;
                    else
                        hits += s_in_poly(poly, n, px, py);
                }
            for (int c = 0; c < 3; c++)
                img[(y * RES + x) * 3 + c] =
                    (uint8_t)lround((fc[c] * hits + bc[c] * (SS * SS - hits)) / (double)(SS * SS));
        }
    return img;
}

typedef struct {
    const char *shape, *colour, *bg, *pos;
    double r, cx, cy;
} s_case_t;

/* The attributes of eval_shapes.py's 40 evaluation cases (the same ones the
 * farm's end-to-end test prompts for), as lf_shapes.sample_attrs drew them. */
static const s_case_t s_eval_truth[] = {
    {"star", "cyan", "orange", "center", 26.6934, 60.8887, 62.3313},
    {"triangle", "orange", "pink", "bottom", 25.5286, 63.2916, 91.4691},
    {"triangle", "green", "cyan", "bottom", 37.7698, 59.9579, 88.2302},
    {"triangle", "orange", "brown", "top", 21.9333, 61.1311, 31.8955},
    {"star", "yellow", "cyan", "bottom left", 13.2915, 28.9282, 92.6215},
    {"star", "blue", "gray", "top right", 15.7871, 91.6417, 28.2322},
    {"circle", "green", "pink", "bottom right", 13.4058, 91.3232, 94.4582},
    {"circle", "gray", "green", "left", 38.1408, 40.1408, 63.6184},
    {"circle", "white", "yellow", "right", 38.7400, 87.2600, 62.1631},
    {"star", "white", "gray", "center", 38.4330, 66.7958, 68.0465},
    {"square", "white", "black", "bottom left", 38.0068, 40.0068, 87.9932},
    {"star", "cyan", "black", "bottom", 23.5612, 62.9503, 96.4799},
    {"star", "brown", "red", "bottom left", 13.0400, 29.0884, 96.2342},
    {"circle", "brown", "blue", "right", 26.1501, 93.8378, 66.3302},
    {"star", "black", "green", "left", 23.4353, 33.3962, 63.7162},
    {"circle", "orange", "brown", "right", 13.2251, 91.9014, 63.7866},
    {"circle", "yellow", "pink", "top", 13.8097, 66.7829, 34.4241},
    {"square", "red", "cyan", "bottom", 23.6638, 63.9260, 97.3393},
    {"square", "green", "orange", "left", 22.2368, 27.1645, 59.2246},
    {"circle", "cyan", "yellow", "bottom left", 38.8010, 40.8010, 87.1990},
    {"star", "orange", "purple", "bottom left", 39.2020, 41.2020, 86.7980},
    {"circle", "pink", "blue", "left", 36.8555, 38.8555, 62.0549},
    {"square", "green", "orange", "center", 15.0602, 69.0907, 66.5904},
    {"square", "red", "black", "bottom right", 13.7551, 91.6408, 95.3753},
    {"circle", "yellow", "red", "center", 22.2003, 65.8696, 64.4372},
    {"triangle", "orange", "gray", "left", 36.4226, 38.4226, 66.8240},
    {"square", "white", "purple", "left", 24.1094, 30.9320, 67.1790},
    {"star", "yellow", "black", "bottom right", 16.0033, 95.6092, 96.3510},
    {"triangle", "blue", "yellow", "bottom left", 22.0725, 34.5166, 96.0683},
    {"square", "black", "blue", "left", 25.4888, 34.4978, 61.7352},
    {"circle", "red", "yellow", "top left", 38.5897, 40.5897, 40.5897},
    {"star", "orange", "cyan", "top", 34.7731, 68.6707, 36.7731},
    {"triangle", "red", "orange", "bottom right", 24.9219, 97.2626, 96.0957},
    {"circle", "white", "blue", "top right", 35.2762, 90.7238, 37.2762},
    {"triangle", "cyan", "pink", "center", 13.6457, 67.5406, 66.2331},
    {"circle", "black", "purple", "bottom left", 34.7916, 36.7916, 91.2084},
    {"circle", "green", "cyan", "bottom right", 25.6753, 92.7569, 91.8558},
    {"triangle", "gray", "white", "right", 34.0913, 91.9087, 67.1469},
    {"triangle", "red", "orange", "top", 22.5808, 60.5211, 34.7703},
    {"triangle", "gray", "yellow", "bottom right", 37.2569, 88.7431, 88.7431},
};

/* More: every shape in several colours, sizes and places, including the
 * hard pairs (dark on dark, light on light within the palette's contrast rule). */
static const s_case_t s_extra[] = {
    {"circle", "red", "white", "center", 20, 64, 64},
    {"square", "blue", "yellow", "top left", 16, 32, 32},
    {"triangle", "black", "gray", "bottom right", 30, 96, 96},
    {"star", "pink", "green", "top right", 36, 90, 36},
    {"circle", "brown", "cyan", "left", 13, 30, 64},
    {"square", "purple", "white", "bottom", 26, 64, 96},
    {"triangle", "yellow", "blue", "top", 22, 64, 30},
    {"star", "gray", "black", "right", 24, 96, 64},
    {"circle", "orange", "black", "bottom left", 38, 40, 88},
    {"square", "cyan", "red", "center", 39, 64, 64},
    {"triangle", "white", "purple", "center", 14, 64, 64},
    {"star", "green", "white", "bottom left", 14, 32, 96},
};

static void s_check(const s_case_t *c, int i, bool check_pos)
{
    uint8_t *img = s_render(c->shape, c->colour, c->bg, c->r, c->cx, c->cy);
    lf_shapestats_t st;
    assert_int_equal(lf_shapestats_analyse(img, RES, RES, &st), 0);
    free(img);
    if (!st.colour || !st.shape || strcmp(st.colour, c->colour) || strcmp(st.shape, c->shape) ||
        strcmp(st.bg, c->bg) || (check_pos && strcmp(st.position, c->pos)))
        fail_msg("case %d: want %s %s %s on %s, got %s %s %s on %s (fill %.3f yoff %.3f)", i, c->colour,
                 c->shape, c->pos, c->bg, st.colour ? st.colour : "-", st.shape ? st.shape : "-",
                 st.position ? st.position : "-", st.bg, st.fill, st.yoff);
}

static void test_eval_truth_renders(void **state)
{
    (void)state;
    /* As eval_shapes.py: the position is scored only for the even cases (their
     * prompts name it; the odd ones' jitter can move a shape across a cut). */
    for (size_t i = 0; i < sizeof s_eval_truth / sizeof s_eval_truth[0]; i++)
        s_check(&s_eval_truth[i], (int)i, i % 2 == 0);
}

static void test_extra_renders(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof s_extra / sizeof s_extra[0]; i++) s_check(&s_extra[i], (int)i, true);
}

/* Exact fills of hard-edged shapes: a square box fills 1.0, a disc ~pi/4 of
 * its box (0.785 + its edge pixels), a triangle ~0.5 (+ edge). */
static void test_fill_and_moments(void **state)
{
    (void)state;
    struct {
        const char *shape;
        double fill_lo, fill_hi, yoff_lo, yoff_hi, comp_lo, comp_hi;
    } t[] = {
        {"square", 0.97, 1.001, -0.01, 0.01, 0.160, 0.172},
        {"circle", 0.78, 0.88, -0.01, 0.01, 0.154, 0.164},
        {"triangle", 0.55, 0.66, 0.11, 0.15, 0.180, 0.200},
        {"star", 0.42, 0.55, 0.01, 0.06, 0.20, 0.30},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        uint8_t *img = s_render(t[i].shape, "white", "black", 30, 64, 64);
        lf_shapestats_t st;
        assert_int_equal(lf_shapestats_analyse(img, RES, RES, &st), 0);
        free(img);
        if (st.fill < t[i].fill_lo || st.fill > t[i].fill_hi || st.yoff < t[i].yoff_lo ||
            st.yoff > t[i].yoff_hi || st.compactness < t[i].comp_lo || st.compactness > t[i].comp_hi)
            fail_msg("%s: fill %.3f yoff %.3f compactness %.4f out of range", t[i].shape, st.fill, st.yoff,
                     st.compactness);
        assert_string_equal(st.shape, t[i].shape);
        assert_string_equal(st.colour, "white");
        assert_string_equal(st.bg, "black");
        assert_string_equal(st.position, "center");
    }
}

static void test_nearest_palette(void **state)
{
    (void)state;
    for (int i = 0; i < LF_SHAPES_N_COLOURS; i++) {
        double c[3] = {lf_shapes_palette[i].rgb[0], lf_shapes_palette[i].rgb[1], lf_shapes_palette[i].rgb[2]};
        assert_int_equal(lf_shapes_nearest(c), i);
    }
    struct {
        double rgb[3];
        const char *want;
    } t[] = {{{255, 0, 0}, "red"},       {{0, 0, 0}, "black"},       {{255, 255, 255}, "white"},
             {{120, 120, 130}, "gray"},  {{0, 255, 255}, "cyan"},    {{255, 160, 0}, "orange"},
             {{150, 90, 50}, "brown"},   {{0, 128, 0}, "green"}};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        assert_string_equal(lf_shapes_palette[lf_shapes_nearest(t[i].rgb)].name, t[i].want);
}

static void test_plain_and_noise(void **state)
{
    (void)state;
    uint8_t *img = malloc(RES * RES * 3);
    assert_non_null(img);
    for (int i = 0; i < RES * RES; i++) img[i * 3] = 40, img[i * 3 + 1] = 70, img[i * 3 + 2] = 220;
    lf_shapestats_t st;
    assert_int_equal(lf_shapestats_analyse(img, RES, RES, &st), 0);
    assert_string_equal(st.bg, "blue");
    assert_int_equal(st.fg_pixels, 0);
    assert_null(st.colour);
    assert_null(st.shape);
    assert_null(st.position);
    /* Under 12 foreground pixels: still no shape. */
    for (int i = 0; i < 11; i++) img[(64 * RES + 20 + i * 3) * 3] = 250;
    assert_int_equal(lf_shapestats_analyse(img, RES, RES, &st), 0);
    assert_int_equal(st.fg_pixels, 11);
    assert_null(st.shape);
    /* Slight noise on the background (distance < 60) is not foreground. */
    for (int i = 0; i < RES * RES; i++) img[i * 3] = (uint8_t)(40 + (i * 7919) % 30);
    assert_int_equal(lf_shapestats_analyse(img, RES, RES, &st), 0);
    assert_int_equal(st.fg_pixels, 0);
    free(img);
}

/* Median of the border, not mean: a shape touching the border does not move it. */
static void test_background_median(void **state)
{
    (void)state;
    uint8_t *img = s_render("square", "yellow", "purple", 40, 30, 64);
    lf_shapestats_t st;
    assert_int_equal(lf_shapestats_analyse(img, RES, RES, &st), 0);
    assert_string_equal(st.bg, "purple");
    assert_true(fabs(st.bg_rgb[0] - 140) < 0.01 && fabs(st.bg_rgb[1] - 50) < 0.01);
    assert_string_equal(st.colour, "yellow");
    free(img);
}

static void test_bad_args(void **state)
{
    (void)state;
    uint8_t px[3 * 64] = {0};
    lf_shapestats_t st;
    assert_int_equal(lf_shapestats_analyse(NULL, 8, 8, &st), LF_EINVAL);
    assert_int_equal(lf_shapestats_analyse(px, 8, 8, NULL), LF_EINVAL);
    assert_int_equal(lf_shapestats_analyse(px, 4, 4, &st), LF_EINVAL);
    assert_int_equal(lf_shapestats_analyse(px, 8, 8, &st), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nearest_palette),   cmocka_unit_test(test_plain_and_noise),
        cmocka_unit_test(test_background_median), cmocka_unit_test(test_fill_and_moments),
        cmocka_unit_test(test_eval_truth_renders), cmocka_unit_test(test_extra_renders),
        cmocka_unit_test(test_bad_args),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
