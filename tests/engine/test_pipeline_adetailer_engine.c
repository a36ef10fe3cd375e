/* ADetailer through the lf_engine facade: img2img of scikit-image's
 * astronaut.png on the built-in model (models/lf-tiny-shapes.safetensors)
 * with a "mediapipe_face_short" unit, against the same img2img without it:
 * BlazeFace (the real .tflite from assets/) finds the face on the plain
 * result, and every pixel farther from that box than the dilation (cv2's
 * 4x4 kernel: 2 right / down, 1 left / up) plus the mask blur's reach (sigma
 * 4: 10 pixels) is byte-identical to the plain result; inside, the face was
 * re-drawn. Also: the infotext keys, the steps counted, and an unknown
 * ad_model refused naming it. Skips without the model, the assets
 * (tools/fetch_assets.sh) or the CLIP merges file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "lf_blazeface.h"
#include "lf_detailer.h"
#include "lf_engine.h"
#include "lf_error.h"
#include "lf_image.h"

#define S_MODEL LF_SOURCE_DIR "/models/lf-tiny-shapes.safetensors"
#define S_ASSETS LF_SOURCE_DIR "/assets"

static uint8_t *s_read(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)n);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) free(b), b = NULL;
    fclose(f);
    *len = (size_t)n;
    return b;
}

static void s_decode(const lf_engine_image_t *im, lf_image_t *out)
{
    *out = (lf_image_t){0};
    assert_int_equal(lf_image_decode(im->png, im->png_len, NULL, out, NULL, 0), 0);
}

static void test_astronaut_face_only(void **state)
{
    (void)state;
    size_t alen = 0;
    uint8_t *astro = s_read(S_ASSETS "/images/astronaut.png", &alen);
    if (access(S_MODEL, R_OK) || !astro || access(S_ASSETS "/clip/bpe_simple_vocab_16e6.txt.gz", R_OK) ||
        access(S_ASSETS "/blazeface/face_detection_short_range.tflite", R_OK)) {
        printf("  skipped: the built-in model or assets/ (tools/fetch_assets.sh) is absent\n");
        free(astro);
        skip();
    }
    char err[256] = "";
    lf_engine_opts_t o = {.assets_dir = S_ASSETS, .n_threads = 2,
                          .adetailer_dir = LF_SOURCE_DIR "/tests/engine/fixtures/yolo"};
    lf_engine_t *e = NULL;
    if (lf_engine_new(&o, &e, err, sizeof err)) fail_msg("%s", err);
    if (lf_engine_load(e, S_MODEL, NULL)) fail_msg("%s", lf_engine_errstr(e));
    const char *names[4];
    /* BlazeFace, then the YOLO files of adetailer_dir, sorted (the fixtures:
     * 4 .pt, 2 .safetensors) */
    assert_int_equal(lf_engine_adetailer_models(e, names, 4), 8);
    assert_string_equal(names[0], "mediapipe_face_short");
    assert_string_equal(names[2], "v11det.pt");
    assert_string_equal(names[3], "v11seg.pt");

    lf_engine_request_t req = lf_engine_request_defaults();
    req.prompt = "a photo of a person";
    req.width = req.height = 256;
    req.steps = 8;
    req.cfg = 5;
    req.seed = 7;
    req.init_image = astro, req.init_image_len = alen;
    req.denoise = 0.3;
    lf_engine_result_t plain = {0}, ad = {0};
    if (lf_engine_generate(e, &req, NULL, NULL, NULL, &plain)) fail_msg("%s", lf_engine_errstr(e));

    lf_detailer_unit_t u;
    lf_detailer_unit_defaults(&u);
    u.model = "mediapipe_face_short";
    u.denoising_strength = 0.6;
    req.adetailer = &u, req.n_adetailer = 1;
    if (lf_engine_generate(e, &req, NULL, NULL, NULL, &ad)) fail_msg("%s", lf_engine_errstr(e));
    /* img2img 0.3 of 8: int(2.4) + 1 = 3 steps; the face 0.6 of 8: 5. */
    assert_int_equal(plain.steps_run, 3);
    assert_int_equal(ad.steps_run, 3 + 5);

    lf_image_t a = {0}, b = {0};
    s_decode(&plain.images[0], &a);
    s_decode(&ad.images[0], &b);
    assert_int_equal(b.width, 256);
    /* Where the face is on the plain result (the detailer's own input). */
    lf_blazeface_t *bf = lf_blazeface_new(S_ASSETS "/blazeface/face_detection_short_range.tflite", err, sizeof err);
    assert_non_null(bf);
    lf_blazeface_det_t det[4];
    int n = lf_blazeface_detect(bf, a.pixels, 256, 256, 0.3f, det, 4);
    lf_blazeface_destroy(&bf);
    assert_int_equal(n, 1);
    int x0 = (int)det[0].xmin, y0 = (int)det[0].ymin, x1 = (int)det[0].xmax, y1 = (int)det[0].ymax;
    printf("  face box on the plain result: (%d,%d)-(%d,%d) score %.3f\n", x0, y0, x1, y1, det[0].score);
    const int reach = 10; /* blur sigma 4 */
    int changed = 0, outside_changed = 0;
    for (int y = 0; y < 256; y++)
        for (int x = 0; x < 256; x++) {
            size_t p = ((size_t)y * 256 + x) * 3;
            int diff = memcmp(a.pixels + p, b.pixels + p, 3) != 0;
            int near = x >= x0 - 1 - reach && x <= x1 + 2 + reach && y >= y0 - 1 - reach && y <= y1 + 2 + reach;
            if (!near && diff) outside_changed++;
            if (x >= x0 && x <= x1 && y >= y0 && y <= y1 && diff) changed++;
        }
    printf("  pixels changed: inside the box %d of %d, outside the mask's reach %d\n", changed,
           (x1 - x0 + 1) * (y1 - y0 + 1), outside_changed);
    assert_int_equal(outside_changed, 0);
    assert_true(changed > (x1 - x0 + 1) * (y1 - y0 + 1) / 2);
    assert_non_null(strstr(ad.images[0].infotext, "ADetailer model: mediapipe_face_short, ADetailer confidence: 0.3, "
                                                  "ADetailer dilate erode: 4, ADetailer mask blur: 4, "
                                                  "ADetailer denoising strength: 0.6"));
    assert_non_null(strstr(ad.images[0].infotext, "ADetailer version: "));
    assert_null(strstr(plain.images[0].infotext, "ADetailer"));
    lf_image_clear(&a), lf_image_clear(&b);
    lf_engine_result_clear(&plain);
    lf_engine_result_clear(&ad);

    /* An unknown detector: refused, naming it. */
    u.model = "face_yolov8n.pt";
    lf_engine_result_t bad = {0};
    assert_int_equal(lf_engine_generate(e, &req, NULL, NULL, NULL, &bad), LF_ENOTFOUND);
    assert_non_null(strstr(lf_engine_errstr(e), "face_yolov8n.pt"));
    lf_engine_destroy(&e);
    free(astro);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_astronaut_face_only)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
