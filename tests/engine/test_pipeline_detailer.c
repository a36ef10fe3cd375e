/* The ADetailer pass (lf_detailer).
 *
 * 1. The mask steps against the libraries the extension calls
 *    (tests/reference/make_detailer_fixtures.py -> fixtures/detailer/ops.json):
 *    Pillow's rectangle masks, ImageChops.offset, cv2.dilate / cv2.erode with
 *    a rectangular kernel, filter_by_ratio + filter_k_largest (numpy's
 *    argsort order), the [SEP] / [PROMPT] prompt rules.
 * 2. The infotext keys as args.py's extra_params writes them (defaults,
 *    suffixes of later units, the pops of unset options).
 * 3. The pass over the fake model (lf_fake_model.c) with a scripted
 *    detector: pixels outside the dilated, blurred box are the input's bytes
 *    and inside they changed; two units run in order on each other's output;
 *    "[SKIP]" and nothing detected leave the pixels; the progress counts on
 *    from the steps done; a detector error names the model. Skips without the
 *    CLIP merges file of the reference data. */
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lf_detailer.h"
#include "lf_error.h"
#include "lf_fake_model.h"
#include "lf_image.h"
#include "lf_pipeline.h"
#include "lf_test_util.h"

/* ---- 1. mask steps ---- */

static json_t *s_ops(void)
{
    char path[1024];
    lf_test_fixture(path, sizeof path, "detailer/ops.json");
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    if (!j) fail_msg("%s: %s", path, je.text);
    return j;
}

static uint8_t *s_hex(const char *h, size_t n)
{
    assert_int_equal(strlen(h), n * 2);
    uint8_t *b = malloc(n);
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        sscanf(h + 2 * i, "%2x", &v);
        b[i] = (uint8_t)v;
    }
    return b;
}

static void s_box(json_t *a, lf_detailer_box_t *b)
{
    *b = (lf_detailer_box_t){.score = 0.9f, .x1 = (float)json_number_value(json_array_get(a, 0)),
                             .y1 = (float)json_number_value(json_array_get(a, 1)),
                             .x2 = (float)json_number_value(json_array_get(a, 2)),
                             .y2 = (float)json_number_value(json_array_get(a, 3))};
}

static void s_expect_mask(const uint8_t *got, const uint8_t *want, int w, int h, const char *what)
{
    for (int p = 0; p < w * h; p++)
        if (got[p] != want[p]) fail_msg("%s: (%d,%d) %u vs %u", what, p % w, p / w, got[p], want[p]);
}

static void test_box_masks(void **state)
{
    (void)state;
    json_t *j = s_ops();
    int w = (int)json_integer_value(json_object_get(j, "w")), h = (int)json_integer_value(json_object_get(j, "h"));
    size_t i;
    json_t *c;
    uint8_t *m = malloc((size_t)w * h);
    json_array_foreach(json_object_get(j, "box_masks"), i, c) {
        lf_detailer_box_t b;
        s_box(json_object_get(c, "box"), &b);
        uint8_t *want = s_hex(json_string_value(json_object_get(c, "mask")), (size_t)w * h);
        lf_detailer_box_mask(&b, w, h, m);
        s_expect_mask(m, want, w, h, "box mask");
        free(want);
    }
    json_array_foreach(json_object_get(j, "offsets"), i, c) {
        uint8_t *in = s_hex(json_string_value(json_object_get(c, "in")), (size_t)w * h);
        uint8_t *want = s_hex(json_string_value(json_object_get(c, "out")), (size_t)w * h);
        assert_int_equal(lf_detailer_offset(in, w, h, (int)json_integer_value(json_object_get(c, "x")),
                                            (int)json_integer_value(json_object_get(c, "y"))),
                         0);
        s_expect_mask(in, want, w, h, "offset");
        free(in), free(want);
    }
    free(m);
    json_decref(j);
}

static void test_dilate_erode_vs_cv2(void **state)
{
    (void)state;
    json_t *j = s_ops();
    int w = (int)json_integer_value(json_object_get(j, "w")), h = (int)json_integer_value(json_object_get(j, "h"));
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(j, "morph"), i, c) {
        int v = (int)json_integer_value(json_object_get(c, "value"));
        uint8_t *in = s_hex(json_string_value(json_object_get(c, "in")), (size_t)w * h);
        uint8_t *want = s_hex(json_string_value(json_object_get(c, "out")), (size_t)w * h);
        assert_int_equal(lf_detailer_dilate_erode(in, w, h, v), 0);
        char what[32];
        snprintf(what, sizeof what, "dilate_erode %d", v);
        s_expect_mask(in, want, w, h, what);
        free(in), free(want);
    }
    assert_int_equal(lf_detailer_dilate_erode(NULL, w, h, 3), LF_EINVAL);
    json_decref(j);
}

static void test_filters(void **state)
{
    (void)state;
    json_t *j = s_ops();
    int w = (int)json_integer_value(json_object_get(j, "w")), h = (int)json_integer_value(json_object_get(j, "h"));
    size_t i, k;
    json_t *c, *b;
    json_array_foreach(json_object_get(j, "filters"), i, c) {
        lf_detailer_box_t boxes[16];
        int n = 0;
        json_array_foreach(json_object_get(c, "in"), k, b) s_box(b, &boxes[n++]);
        n = lf_detailer_filter(boxes, n, w, h, json_number_value(json_object_get(c, "min")),
                               json_number_value(json_object_get(c, "max")),
                               (int)json_integer_value(json_object_get(c, "k")));
        json_t *out = json_object_get(c, "out");
        assert_int_equal(n, (int)json_array_size(out));
        json_array_foreach(out, k, b) {
            lf_detailer_box_t e;
            s_box(b, &e);
            assert_true(boxes[k].x1 == e.x1 && boxes[k].y1 == e.y1 && boxes[k].x2 == e.x2 && boxes[k].y2 == e.y2);
        }
    }
    json_array_foreach(json_object_get(j, "prompts"), i, c) {
        char **parts = NULL;
        int n = lf_detailer_prompt_parts(json_string_value(json_object_get(c, "ad_prompt")),
                                         json_string_value(json_object_get(c, "default")), &parts);
        json_t *want = json_object_get(c, "parts");
        assert_int_equal(n, (int)json_array_size(want));
        for (int p = 0; p < n; p++) assert_string_equal(parts[p], json_string_value(json_array_get(want, (size_t)p)));
        lf_detailer_parts_free(parts, n);
    }
    json_decref(j);
}

/* ---- 2. infotext ---- */

static void test_infotext(void **state)
{
    (void)state;
    lf_detailer_unit_t u[3];
    for (int i = 0; i < 3; i++) lf_detailer_unit_defaults(&u[i]);
    char *t = NULL;
    assert_int_equal(lf_detailer_infotext(u, 3, &t), 0);
    assert_string_equal(t, ""); /* all "None" */
    free(t);
    u[0].model = "mediapipe_face_short";
    assert_int_equal(lf_detailer_infotext(u, 1, &t), 0);
    assert_string_equal(t, ", ADetailer model: mediapipe_face_short, ADetailer confidence: 0.3, "
                           "ADetailer dilate erode: 4, ADetailer mask blur: 4, ADetailer denoising strength: 0.4, "
                           "ADetailer inpaint only masked: True, ADetailer inpaint padding: 32, "
                           "ADetailer version: " LF_DETAILER_VERSION);
    free(t);
    u[2].model = "mediapipe_face_full";
    u[2].prompt = "a smiling face, detailed";
    u[2].confidence = 1;
    u[2].mask_k_largest = 2;
    u[2].inpaint_only_masked = 0;
    u[2].use_steps = 1, u[2].steps = 12;
    u[2].use_cfg = 1, u[2].cfg = 5;
    u[2].use_sampler = 1, u[2].sampler = "Euler a";
    u[2].merge_invert = LF_DETAILER_MERGE;
    assert_int_equal(lf_detailer_infotext(u, 3, &t), 0);
    assert_non_null(strstr(t, "ADetailer inpaint padding: 32, ADetailer model 3rd: mediapipe_face_full, "
                              "ADetailer prompt 3rd: \"a smiling face, detailed\", ADetailer confidence 3rd: 1.0, "
                              "ADetailer mask only top k largest 3rd: 2, ADetailer dilate erode 3rd: 4, "
                              "ADetailer mask merge invert 3rd: Merge, ADetailer mask blur 3rd: 4, "
                              "ADetailer denoising strength 3rd: 0.4, ADetailer inpaint only masked 3rd: False, "
                              "ADetailer use separate steps 3rd: True, ADetailer steps 3rd: 12, "
                              "ADetailer use separate CFG scale 3rd: True, ADetailer CFG scale 3rd: 5.0, "
                              "ADetailer use separate sampler 3rd: True, ADetailer sampler 3rd: Euler a, "
                              "ADetailer version: "));
    assert_null(strstr(t, " 2nd"));
    free(t);
}

/* ---- 3. the pass over the fake model ---- */

typedef struct {
    lf_clip_tokenizer_t *tok;
    lf_model_t *model;
    lf_pipeline_ctx_t ctx;
} s_fix_t;

static int s_setup(void **state)
{
    char buf[1024], err[256];
    const char *vocab = lf_test_refdata(buf, sizeof buf, "tokenizers/clip/bpe_simple_vocab_16e6.txt.gz");
    *state = NULL;
    if (!vocab) return 0;
    s_fix_t *f = calloc(1, sizeof *f);
    if (!f || lf_clip_tokenizer_load(&f->tok, vocab, err, sizeof err) != 0) return -1;
    if (lf_fake_model_ops.load("fake.safetensors", NULL, &f->model, err, sizeof err) != 0) return -1;
    f->ctx = (lf_pipeline_ctx_t){.ops = &lf_fake_model_ops, .model = f->model, .tokenizer = f->tok,
                                 .model_name = "fake-sd15"};
    *state = f;
    return 0;
}

static int s_teardown(void **state)
{
    s_fix_t *f = *state;
    if (!f) return 0;
    lf_fake_model_ops.destroy(&f->model);
    lf_clip_tokenizer_destroy(&f->tok);
    free(f);
    return 0;
}

/* A scripted detector: per model name a list of boxes; records calls. */
typedef struct {
    int calls;
    char models[4][32];
    double confidence[4];
    uint8_t *seg; /* "seg": the segmentation mask handed out with its box */
} s_det_t;

static int s_detect(void *ud, const char *model, const uint8_t *rgb, int w, int h, double confidence,
                    lf_detailer_box_t *out, int max)
{
    s_det_t *d = ud;
    (void)rgb, (void)w, (void)h;
    if (d->calls < 4) snprintf(d->models[d->calls], 32, "%s", model), d->confidence[d->calls] = confidence;
    d->calls++;
    if (!strcmp(model, "face")) {
        if (max > 0) out[0] = (lf_detailer_box_t){0.9f, 60.4f, 20.2f, 84.9f, 41.7f, NULL};
        return 1;
    }
    if (!strcmp(model, "person")) {
        if (max > 1) {
            out[0] = (lf_detailer_box_t){0.8f, 10, 40, 30, 70, NULL};
            out[1] = (lf_detailer_box_t){0.2f, 40, 50, 50, 60, NULL}; /* below the confidence: the detector's cut */
        }
        return confidence <= 0.2 ? 2 : 1;
    }
    if (!strcmp(model, "nothing")) return 0;
    if (!strcmp(model, "seg")) {
        /* a YOLO-seg detection: a wide box, the mask a small rectangle in it */
        free(d->seg);
        d->seg = calloc((size_t)w * h, 1);
        for (int y = 30; y < 50; y++)
            for (int x = 20; x < 40; x++) d->seg[(size_t)y * w + x] = 255;
        if (max > 0) out[0] = (lf_detailer_box_t){0.9f, 5, 5, 90, 75, d->seg};
        return 1;
    }
    return LF_ENOTFOUND;
}

static uint8_t *s_rgb(int w, int h)
{
    uint8_t *p = malloc((size_t)w * h * 3);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t *q = p + ((size_t)y * w + x) * 3;
            q[0] = (uint8_t)(x * 255 / (w - 1));
            q[1] = (uint8_t)(y * 255 / (h - 1));
            q[2] = (uint8_t)((x * 37 + y * 11) % 256);
        }
    return p;
}

static lf_pipeline_request_t s_req(void)
{
    return (lf_pipeline_request_t){.prompt = "a photo of a cat", .negative = "blurry",
                                   .sampler = LF_SAMPLER_EULER, .scheduler = LF_SCHEDULER_NORMAL,
                                   .steps = 10, .cfg = 7.0, .seed = 42, .width = 96, .height = 80,
                                   .batch = 1, .denoise = 0.75, .initial_noise_multiplier = 1,
                                   .inpainting_mask_weight = 1};
}

/* The base image as the pipeline hands it over (PNG + infotext). */
static lf_pipeline_image_t s_base(const uint8_t *rgb, int w, int h)
{
    lf_image_t im = {.pixels = (uint8_t *)rgb, .width = (uint32_t)w, .height = (uint32_t)h, .channels = 3};
    lf_pipeline_image_t img = {.infotext = strdup("a photo of a cat\nNegative prompt: blurry\nSteps: 10, Seed: 42"),
                               .seed = 42, .width = w, .height = h};
    assert_int_equal(lf_image_png_encode(&im, NULL, 0, -1, &img.png, &img.png_len, NULL, 0), 0);
    return img;
}

typedef struct {
    int last_step, last_total, calls;
} s_prog_t;

static void s_on_progress(void *ud, int step, int steps, const uint8_t *preview, size_t len)
{
    s_prog_t *p = ud;
    (void)preview, (void)len;
    p->last_step = step, p->last_total = steps, p->calls++;
}

/* Checks pixels farther than margin from [x1, x2) x [y1, y2) (any of boxes)
 * are the original's; returns how many pixels inside the first box changed. */
static int s_check(const lf_pipeline_image_t *img, const uint8_t *orig, int w, int h, const int (*bx)[4], int nb,
                   int margin)
{
    lf_image_t im = {0};
    assert_int_equal(lf_image_decode(img->png, img->png_len, NULL, &im, NULL, 0), 0);
    assert_int_equal(im.width, (uint32_t)w);
    assert_int_equal(im.height, (uint32_t)h);
    int changed = 0;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            size_t o = ((size_t)y * w + x) * 3;
            int near = 0;
            for (int b = 0; b < nb; b++)
                near |= x >= bx[b][0] - margin && x < bx[b][2] + margin && y >= bx[b][1] - margin &&
                        y < bx[b][3] + margin;
            if (!near && memcmp(im.pixels + o, orig + o, 3))
                fail_msg("pixel (%d,%d) outside the detection changed", x, y);
            if (nb && x >= bx[0][0] && x < bx[0][2] && y >= bx[0][1] && y < bx[0][3] &&
                memcmp(im.pixels + o, orig + o, 3))
                changed++;
        }
    lf_image_clear(&im);
    return changed;
}

static void test_pass_face_only(void **state)
{
    s_fix_t *f = *state;
    if (!f) skip();
    const int w = 96, h = 80;
    uint8_t *rgb = s_rgb(w, h);
    lf_pipeline_image_t img = s_base(rgb, w, h);
    lf_pipeline_request_t job = s_req();
    lf_detailer_unit_t u;
    lf_detailer_unit_defaults(&u);
    u.model = "face";
    u.inpaint_padding = 8;
    u.use_inpaint_size = 1, u.inpaint_width = 64, u.inpaint_height = 50; /* 64x48 */
    s_det_t det = {0};
    lf_detailer_t d = {.units = &u, .n_units = 1, .detect = s_detect, .detect_ud = &det};
    s_prog_t prog = {0};
    atomic_bool cancel = false;
    lf_pipeline_hooks_t hooks = {.progress = s_on_progress, .progress_ud = &prog, .cancel = &cancel};
    int done = 10; /* the base image's steps */
    char err[256] = "";
    if (lf_detailer_run(&d, &f->ctx, &job, 0, &hooks, &img, &done, err, sizeof err)) fail_msg("%s", err);
    assert_int_equal(det.calls, 1);
    assert_true(det.confidence[0] == 0.3);
    /* Denoise 0.4 of 10 steps: int(0.4 * 10) + 1 = 5 sampler steps. */
    assert_int_equal(done, 15);
    assert_int_equal(prog.last_step, 15);
    assert_int_equal(prog.last_total, 15);
    /* Box (60.4, 20.2)-(84.9, 41.7): Pillow's [60, 84] x [20, 41]; dilate 4
     * grows it 2 right / down and 1 left / up; blur 4 reaches 10 more. */
    const int bx[1][4] = {{60, 20, 85, 42}};
    int changed = s_check(&img, rgb, w, h, bx, 1, 2 + 10);
    assert_true(changed > 25 * 22 / 2);
    assert_non_null(strstr(img.infotext, "Steps: 10, Seed: 42, ADetailer model: face, ADetailer confidence: 0.3"));
    assert_non_null(strstr(img.infotext, "ADetailer use inpaint width height: True, ADetailer inpaint width: 64"));
    char *png_text = NULL;
    assert_int_equal(lf_image_png_text_get(img.png, img.png_len, "parameters", &png_text), 0);
    assert_string_equal(png_text, img.infotext);
    free(png_text);
    free(img.png), free(img.infotext), free(rgb);
}

/* A segmentation detector's mask is the mask (ADetailer: mask_to_pil, then
 * the same dilate / blur path): pixels of the box far from it stay. */
static void test_pass_seg_mask(void **state)
{
    s_fix_t *f = *state;
    if (!f) skip();
    const int w = 96, h = 80;
    uint8_t *rgb = s_rgb(w, h);
    lf_pipeline_image_t img = s_base(rgb, w, h);
    lf_pipeline_request_t job = s_req();
    lf_detailer_unit_t u;
    lf_detailer_unit_defaults(&u);
    u.model = "seg";
    u.inpaint_padding = 8;
    u.use_inpaint_size = 1, u.inpaint_width = 64, u.inpaint_height = 48;
    s_det_t det = {0};
    lf_detailer_t d = {.units = &u, .n_units = 1, .detect = s_detect, .detect_ud = &det};
    int done = 10;
    char err[256] = "";
    if (lf_detailer_run(&d, &f->ctx, &job, 0, NULL, &img, &done, err, sizeof err)) fail_msg("%s", err);
    assert_int_equal(det.calls, 1);
    /* The mask [20, 40) x [30, 50); dilate 4 and blur 4 reach 12 more. The
     * box (5, 5)-(90, 75) would have changed nearly the whole image. */
    const int bx[1][4] = {{20, 30, 40, 50}};
    int changed = s_check(&img, rgb, w, h, bx, 1, 2 + 10);
    assert_true(changed > 20 * 20 / 2);
    free(det.seg);
    free(img.png), free(img.infotext), free(rgb);
}

static void test_pass_two_units_skip_nothing(void **state)
{
    s_fix_t *f = *state;
    if (!f) skip();
    const int w = 96, h = 80;
    uint8_t *rgb = s_rgb(w, h);
    lf_pipeline_request_t job = s_req();
    lf_detailer_unit_t u[3];
    for (int i = 0; i < 3; i++) lf_detailer_unit_defaults(&u[i]);
    u[0].model = "person", u[0].dilate_erode = -2, u[0].mask_blur = 2, u[0].inpaint_padding = 4;
    u[0].confidence = 0.2;
    u[0].prompt = "a person [SEP] [SKIP]"; /* the second person is skipped */
    u[1].model = "nothing";
    u[2].model = "face", u[2].mask_blur = 2;
    u[2].use_steps = 1, u[2].steps = 4, u[2].denoising_strength = 0.5;
    s_det_t det = {0};
    lf_detailer_t d = {.units = u, .n_units = 3, .detect = s_detect, .detect_ud = &det};
    lf_pipeline_image_t img = s_base(rgb, w, h);
    int done = 0;
    char err[256] = "";
    if (lf_detailer_run(&d, &f->ctx, &job, 1, NULL, &img, &done, err, sizeof err)) fail_msg("%s", err);
    assert_int_equal(det.calls, 3);
    assert_string_equal(det.models[0], "person");
    assert_string_equal(det.models[2], "face");
    /* person: int(0.4 * 10) + 1 = 5 (one mask run, the other skipped); face: int(0.5 * 4) + 1 = 3. */
    assert_int_equal(done, 8);
    const int bx[2][4] = {{10, 40, 31, 71}, {60, 20, 85, 42}};
    /* dilate 4 (cv2's anchor 2: the mask grows 2 right / down, 1 left / up),
     * blur 2 (radius 5); the person eroded: inside its box. */
    assert_true(s_check(&img, rgb, w, h, bx, 2, 2 + 5) > 0);
    /* the skipped person's box (40..50, 50..60) is outside both: checked unchanged above. */
    assert_non_null(strstr(img.infotext, "ADetailer model: person, ADetailer prompt: a person [SEP] [SKIP], ADetailer confidence: 0.2"));
    assert_non_null(strstr(img.infotext, "ADetailer model 2nd: nothing"));
    assert_non_null(strstr(img.infotext, "ADetailer model 3rd: face"));
    free(img.png), free(img.infotext);

    /* Nothing detected: the pixels stay, the infotext says what ran. */
    u[0].model = "nothing";
    lf_detailer_t d1 = {.units = u, .n_units = 1, .detect = s_detect, .detect_ud = &det};
    img = s_base(rgb, w, h);
    assert_int_equal(lf_detailer_run(&d1, &f->ctx, &job, 0, NULL, &img, &done, err, sizeof err), 0);
    assert_int_equal(s_check(&img, rgb, w, h, NULL, 0, 0), 0);
    assert_non_null(strstr(img.infotext, "ADetailer model: nothing"));

    /* A model the detector lacks: its error, naming the model; img unchanged. */
    u[0].model = "yolo_unknown.pt";
    uint8_t *before = img.png;
    assert_int_equal(lf_detailer_run(&d1, &f->ctx, &job, 0, NULL, &img, &done, err, sizeof err), LF_ENOTFOUND);
    assert_non_null(strstr(err, "yolo_unknown.pt"));
    assert_ptr_equal(img.png, before);
    free(img.png), free(img.infotext), free(rgb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_box_masks),
        cmocka_unit_test(test_dilate_erode_vs_cv2),
        cmocka_unit_test(test_filters),
        cmocka_unit_test(test_infotext),
        cmocka_unit_test_setup_teardown(test_pass_seg_mask, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_pass_face_only, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_pass_two_units_skip_nothing, s_setup, s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
