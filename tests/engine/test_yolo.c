/* lf_yolo against ultralytics 8.3.40 (tests/reference/make_yolo_fixtures.py):
 * tiny random-weight YOLOv8 / YOLO11 detect and segment models saved as
 * ultralytics saves them; the raw head outputs on a small image (.pt and
 * .safetensors), and predict(image, conf) with ADetailer's mask conversion
 * on a synthetic image (letterbox pads only: exact) and astronaut.png
 * (resized by cv2.INTER_LINEAR first: a pixel level may differ). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "lf_error.h"
#include "lf_image.h"
#include "lf_safetensors.h"
#include "lf_test_util.h"
#include "lf_torchzip.h"
#include "lf_yolo.h"

#ifndef LF_ASSETS_DIR
#define LF_ASSETS_DIR "assets"
#endif
#define FIX LF_FIXTURE_DIR "/yolo/"

static const char *const s_models[4] = {"v8det", "v8seg", "v11det", "v11seg"};

static int s_png(const char *path, lf_image_t *img)
{
    size_t len = 0;
    unsigned char *b = lf_test_slurp(path, &len);
    if (!b) return -1;
    int rc = lf_image_decode(b, len, NULL, img, NULL, 0);
    free(b);
    return rc;
}

static lf_yolo_t *s_load(const char *name, const char *ext)
{
    char path[512], err[512];
    snprintf(path, sizeof path, FIX "%s%s", name, ext);
    lf_yolo_t *y = lf_yolo_new(path, err, sizeof err);
    if (!y) print_error("%s\n", err);
    assert_non_null(y);
    return y;
}

/* max |a - b| / max |b| */
static double s_rel(const float *a, const float *b, size_t n)
{
    double d = 0, m = 0;
    for (size_t i = 0; i < n; i++) {
        d = fmax(d, fabs((double)a[i] - b[i]));
        m = fmax(m, fabs((double)b[i]));
    }
    return d / (m > 0 ? m : 1);
}

static void s_check_raw(lf_yolo_t *y, const char *name)
{
    lf_image_t img;
    assert_int_equal(s_png(FIX "raw_input.png", &img), 0);
    int w = img.width, h = img.height;
    float *x = malloc((size_t)3 * w * h * sizeof *x);
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < w * h; i++) x[c * w * h + i] = (float)img.pixels[i * 3 + c] / 255.0f;
    float *out = NULL, *proto = NULL;
    int rows, anchors;
    assert_int_equal(lf_yolo_forward(y, x, w, h, &out, &rows, &anchors, &proto), 0);
    char path[512];
    size_t len = 0;
    snprintf(path, sizeof path, FIX "%s_raw.f32", name);
    float *ref = (float *)lf_test_slurp(path, &len);
    assert_non_null(ref);
    assert_int_equal(len, (size_t)rows * anchors * sizeof(float));
    double e = s_rel(out, ref, (size_t)rows * anchors);
    print_message("%s: raw head output [%d][%d] rel err %.3g\n", name, rows, anchors, e);
    assert_true(e <= 1e-4);
    free(ref);
    if (lf_yolo_is_seg(y)) {
        snprintf(path, sizeof path, FIX "%s_proto.f32", name);
        ref = (float *)lf_test_slurp(path, &len);
        assert_non_null(ref);
        assert_non_null(proto);
        assert_int_equal(len, (size_t)32 * (h / 4) * (w / 4) * sizeof(float));
        e = s_rel(proto, ref, len / sizeof(float));
        print_message("%s: proto rel err %.3g\n", name, e);
        assert_true(e <= 1e-4);
        free(ref);
    } else {
        assert_null(proto);
    }
    free(out), free(proto), free(x);
    lf_image_clear(&img);
}

static void test_raw_pt(void **state)
{
    (void)state;
    for (int m = 0; m < 4; m++) {
        lf_yolo_t *y = s_load(s_models[m], ".pt");
        assert_int_equal(lf_yolo_is_seg(y), strstr(s_models[m], "seg") != NULL);
        s_check_raw(y, s_models[m]);
        lf_yolo_destroy(&y);
    }
}

static void test_raw_safetensors(void **state)
{
    (void)state;
    const char *st[2] = {"v8det", "v11seg"};
    for (int m = 0; m < 2; m++) {
        lf_yolo_t *y = s_load(st[m], ".safetensors");
        s_check_raw(y, st[m]);
        lf_yolo_destroy(&y);
    }
}

static void test_names(void **state)
{
    (void)state;
    lf_yolo_t *y = s_load("v11det", ".pt");
    assert_int_equal(lf_yolo_n_classes(y), 3);
    assert_string_equal(lf_yolo_class_name(y, 0), "face");
    assert_string_equal(lf_yolo_class_name(y, 2), "eye");
    assert_string_equal(lf_yolo_class_name(y, 3), "");
    lf_yolo_destroy(&y);
    y = s_load("v11seg", ".safetensors");
    assert_string_equal(lf_yolo_class_name(y, 0), "person");
    lf_yolo_destroy(&y);
}

static void test_predict(void **state)
{
    (void)state;
    size_t len = 0;
    char *txt = (char *)lf_test_slurp(FIX "results.txt", &len);
    assert_non_null(txt);
    txt[len] = '\0';
    lf_image_t photo = {0}, synth = {0};
    int have_photo = s_png(LF_ASSETS_DIR "/images/astronaut.png", &photo) == 0;
    assert_int_equal(s_png(FIX "synth.png", &synth), 0);
    if (!have_photo) print_message("astronaut.png absent (tools/fetch_assets.sh): synthetic image only\n");
    lf_yolo_t *y = NULL;
    char cur[32] = "", *save = NULL;
    int cases = 0;
    for (char *line = strtok_r(txt, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char model[32], image[32];
        int w, h, n;
        double conf;
        if (sscanf(line, "case %31s %31s %d %d %lf %d", model, image, &w, &h, &conf, &n) != 6) continue;
        int exact = !strcmp(image, "synth");
        const lf_image_t *img = exact ? &synth : &photo;
        if (!exact && !have_photo) continue;
        assert_int_equal(img->width, w);
        assert_int_equal(img->height, h);
        if (strcmp(cur, model)) {
            lf_yolo_destroy(&y);
            y = s_load(model, ".pt");
            snprintf(cur, sizeof cur, "%s", model);
        }
        lf_yolo_det_t det[300];
        uint8_t *masks = NULL;
        int got = lf_yolo_predict(y, img->pixels, w, h, conf, det, 300, &masks);
        print_message("%s on %s: %d boxes (ultralytics %d)\n", model, image, got, n);
        assert_int_equal(got, n);
        double tol = exact ? 0.01 : 2.0, worst = 0;
        for (int k = 0; k < n; k++) {
            char *bl = strtok_r(NULL, "\n", &save);
            float r[5];
            int cls;
            assert_int_equal(sscanf(bl, "box %f %f %f %f %f %d", &r[0], &r[1], &r[2], &r[3], &r[4], &cls), 6);
            assert_int_equal(det[k].cls, cls);
            float b[4] = {det[k].x1, det[k].y1, det[k].x2, det[k].y2};
            for (int q = 0; q < 4; q++) worst = fmax(worst, fabs(b[q] - r[q]));
            assert_true(fabs(det[k].score - r[4]) <= (exact ? 1e-5 : 2e-3));
        }
        print_message("  worst box coordinate difference %.3g px\n", worst);
        assert_true(worst <= tol);
        if (lf_yolo_is_seg(y)) {
            char *ml = strtok_r(NULL, "\n", &save), fn[64], path[512];
            assert_int_equal(sscanf(ml, "masks %63s", fn), 1);
            snprintf(path, sizeof path, FIX "%s", fn);
            lf_image_t sheet;
            assert_int_equal(s_png(path, &sheet), 0);
            assert_int_equal(sheet.height, h * n);
            assert_non_null(masks);
            size_t diff = 0, total = (size_t)w * h * n;
            for (size_t i = 0; i < total; i++) diff += masks[i] != sheet.pixels[i * 3];
            print_message("  masks: %zu of %zu pixels differ\n", diff, total);
            assert_true(diff <= (exact ? total / 2000 : total / 200));
            lf_image_clear(&sheet);
        } else {
            assert_null(masks);
        }
        free(masks);
        cases++;
    }
    assert_true(cases >= 4);
    lf_yolo_destroy(&y);
    lf_image_clear(&photo);
    lf_image_clear(&synth);
    free(txt);
}

static void test_bad_files(void **state)
{
    (void)state;
    char err[512];
    assert_null(lf_yolo_new(FIX "results.txt", err, sizeof err));
    assert_non_null(strstr(err, "results.txt"));
    assert_null(lf_yolo_new(FIX "missing.pt", err, sizeof err));
    /* a torch zip that is a plain state dict, no model */
    assert_null(lf_yolo_new(LF_FIXTURE_DIR "/tiny.pt", err, sizeof err));
    assert_non_null(strstr(err, "not an ultralytics YOLO model"));
}

/* The restricted pickle reader over damaged ultralytics checkpoints: random
 * bytes changed in the pickle (an object graph of opaque classes) give an
 * error or a table, never a crash (run under ASan). */
static void test_mutated_pickle(void **state)
{
    (void)state;
    size_t len = 0;
    unsigned char *orig = lf_test_slurp(FIX "v8seg.pt", &len), *buf = malloc(len);
    assert_non_null(orig);
    /* the pickle: from "data.pkl"'s local header to the first tensor's */
    unsigned char *pk = memmem(orig, len, "data.pkl", 8), *end = pk ? memmem(pk, len - (size_t)(pk - orig), "data/0", 6) : NULL;
    assert_non_null(pk);
    assert_non_null(end);
    size_t lo = (size_t)(pk - orig), span = (size_t)(end - pk);
    uint32_t r = 12345;
    int parsed = 0;
    for (int it = 0; it < 400; it++) {
        memcpy(buf, orig, len);
        int flips = 1 + it % 4;
        for (int k = 0; k < flips; k++) {
            r = r * 1103515245u + 12345u;
            size_t at = lo + (r >> 8) % span;
            r = r * 1103515245u + 12345u;
            buf[at] = (unsigned char)(it % 3 == 0 ? buf[at] ^ (1u << (r >> 29)) : r >> 24);
        }
        lf_torchzip_t *z = NULL;
        char err[256];
        if (lf_torchzip_parse(&z, buf, len, "mutated.pt", err, sizeof err) == 0) {
            char *j = NULL;
            if (lf_torchzip_json(z, "model.yaml", &j) == 0) free(j);
            parsed++;
            lf_torchzip_destroy(&z);
        }
    }
    print_message("%d of 400 mutated checkpoints still parsed\n", parsed);
    free(orig), free(buf);
}

/* v8det.safetensors' weights under a yaml edited by the caller: every bad
 * graph is an error naming the file, never a crash. */
static void s_bad_yaml(const char *from, const char *to, const char *expect)
{
    lf_safetensors_t *st = NULL;
    char err[512];
    assert_int_equal(lf_safetensors_open(&st, FIX "v8det.safetensors", err, sizeof err), 0);
    size_t n = lf_safetensors_count(st);
    lf_tensor_info_t *t = calloc(n, sizeof *t);
    for (size_t i = 0; i < n; i++) t[i] = *lf_safetensors_at(st, i);
    const char *yaml = lf_safetensors_metadata(st, "yolo.yaml");
    assert_non_null(yaml);
    const char *at = strstr(yaml, from);
    assert_non_null(at);
    size_t yl = strlen(yaml) + strlen(to) + 1;
    char *ny = malloc(yl);
    snprintf(ny, yl, "%.*s%s%s", (int)(at - yaml), yaml, to, at + strlen(from));
    const char *meta[2] = {"yolo.yaml", ny};
    char path[] = "/tmp/lf-yolo-bad-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(lf_safetensors_write(path, t, n, meta, 1), 0);
    lf_yolo_t *y = lf_yolo_new(path, err, sizeof err);
    if (y) fail_msg("%s -> %s: loaded", from, to);
    print_message("  %s\n", err);
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, expect));
    unlink(path);
    free(ny), free(t);
    lf_safetensors_destroy(&st);
}

static void test_bad_yaml(void **state)
{
    (void)state;
    s_bad_yaml("\"Detect\"", "\"WorldDetect\"", "module 'WorldDetect' is not supported");
    s_bad_yaml("[[-1, 1, \"Conv\"", "[[[-1, -1], 1, \"Concat\"", "layer 0");
    s_bad_yaml("[[-1, 1, \"Conv\"", "[[5, 1, \"Conv\"", "layer 0");
    s_bad_yaml("\"backbone\"", "\"bone\"", "no backbone/head");
    s_bad_yaml("[[15, 18, 21], 1, \"Detect\"", "[[15, 18, 40], 1, \"Detect\"", "out of range");
    s_bad_yaml("\"nearest\"", "\"bilinear\"", "nn.Upsample");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_raw_pt),
        cmocka_unit_test(test_raw_safetensors),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_predict),
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_mutated_pickle),
        cmocka_unit_test(test_bad_yaml),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
