/* test_diagnostic: the lf-diagnostic model through the runner interface —
 * deterministic cards, sizes, progress and previews, cancel, batch seeds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <png.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lf_diagnostic.h"
#include "lf_error.h"
#include "lf_image.h"
#include "lf_runner.h"

static lf_job_params_t s_params(int64_t seed, uint32_t w, uint32_t h) {
    lf_job_params_t p = {0};
    p.model = (char *)LF_DIAGNOSTIC_MODEL;
    p.seed = seed;
    p.width = w;
    p.height = h;
    p.batch_size = 1;
    return p;
}

/* Run the backend directly (load, run, unload) under env (NULL: defaults). */
static int s_run_env(const lf_runner_env_t *envp, const lf_job_params_t *p,
                     const lf_runner_job_t *tmpl, lf_runner_output_t *out) {
    const lf_runner_backend_t *be = &lf_diagnostic_backend;
    lf_runner_env_t env = envp ? *envp : (lf_runner_env_t){.device = "cpu"};
    void *state = NULL;
    assert_int_equal(be->load(&env, LF_DIAGNOSTIC_MODEL, &state, NULL, 0), 0);
    lf_runner_job_t job = tmpl ? *tmpl : (lf_runner_job_t){0};
    job.params = p;
    memset(out, 0, sizeof *out);
    int rc = be->run(state, &job, out);
    be->unload(&state);
    assert_null(state);
    return rc;
}

static int s_run(const lf_job_params_t *p, const lf_runner_job_t *tmpl, lf_runner_output_t *out) {
    return s_run_env(NULL, p, tmpl, out);
}

static void s_png_dims(const lf_bytes_t *png, uint32_t *w, uint32_t *h) {
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    assert_true(png_image_begin_read_from_memory(&img, png->data, png->len));
    img.format = PNG_FORMAT_RGB;
    size_t sz = PNG_IMAGE_SIZE(img);
    uint8_t *buf = malloc(sz);
    assert_non_null(buf);
    assert_true(png_image_finish_read(&img, NULL, buf, 0, NULL)); /* fully decodable */
    free(buf);
    *w = img.width;
    *h = img.height;
}

static void test_same_seed_same_bytes(void **st) {
    (void)st;
    lf_job_params_t p = s_params(12345, 96, 64);
    lf_runner_output_t a, b, c;
    assert_int_equal(s_run(&p, NULL, &a), 0);
    assert_int_equal(s_run(&p, NULL, &b), 0);
    p.seed = 12346;
    assert_int_equal(s_run(&p, NULL, &c), 0);
    assert_int_equal(a.n_images, 1);
    assert_int_equal(a.images[0].png.len, b.images[0].png.len);
    assert_memory_equal(a.images[0].png.data, b.images[0].png.data, a.images[0].png.len);
    assert_false(a.images[0].png.len == c.images[0].png.len &&
                 !memcmp(a.images[0].png.data, c.images[0].png.data, a.images[0].png.len));
    assert_non_null(a.info_json);
    assert_non_null(strstr(a.info_json, "\"seed\":12345"));
    /* The PNG carries A1111-style parameters, like a real generation. */
    char *params = NULL;
    assert_int_equal(lf_image_png_text_get(a.images[0].png.data, a.images[0].png.len,
                                           "parameters", &params),
                     0);
    assert_non_null(strstr(params, "Seed: 12345, Size: 96x64, Model: lf-diagnostic"));
    free(params);
    lf_runner_output_clear(&a);
    lf_runner_output_clear(&b);
    lf_runner_output_clear(&c);
    assert_null(a.images);
}

static void test_render_pure(void **st) {
    (void)st;
    /* The hue comes from the seed: two seeds differ in the background even
     * where no text is drawn (bottom right, above the bars). */
    uint32_t w = 200, h = 120;
    uint8_t *a = malloc(w * h * 3), *b = malloc(w * h * 3), *g = malloc(w * h * 3);
    lf_diagnostic_render(1, w, h, h, a);
    lf_diagnostic_render(2, w, h, h, b);
    size_t at = ((size_t)(h / 2 + 7) * w + (w - 9)) * 3;
    assert_memory_not_equal(a + at, b + at, 3);
    /* reveal = 0: all grey; reveal = h/2: top half identical to the full card. */
    lf_diagnostic_render(1, w, h, h / 2, g);
    assert_memory_equal(a, g, (size_t)(h / 2) * w * 3);
    size_t low = ((size_t)(h - 2) * w + w / 3) * 3;
    assert_int_equal(g[low], g[low + 1]);
    assert_int_equal(g[low + 1], g[low + 2]);
    /* Tiny sizes draw without touching memory outside the buffer (ASan). */
    uint8_t one[3], strip[7 * 3 * 3];
    lf_diagnostic_render(5, 1, 1, 1, one);
    lf_diagnostic_render(5, 7, 3, 3, strip);
    lf_diagnostic_render(5, 3, 7, 0, strip);
    free(a);
    free(b);
    free(g);
}

static void test_size_honoured(void **st) {
    (void)st;
    static const uint32_t sizes[][2] = {{64, 64}, {320, 200}, {72, 400}, {1, 1}, {13, 7}};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        lf_job_params_t p = s_params(-7, sizes[i][0], sizes[i][1]);
        lf_runner_output_t o;
        assert_int_equal(s_run(&p, NULL, &o), 0);
        uint32_t w = 0, h = 0;
        s_png_dims(&o.images[0].png, &w, &h);
        assert_int_equal(w, sizes[i][0]);
        assert_int_equal(h, sizes[i][1]);
        assert_int_equal(o.images[0].width, sizes[i][0]);
        assert_int_equal(o.images[0].height, sizes[i][1]);
        lf_runner_output_clear(&o);
    }
}

typedef struct {
    uint32_t calls, last_step, steps, previews;
    uint32_t cancel_at;
    atomic_bool *cancel;
    int bad_preview;
} s_progress_t;

static void s_on_progress(void *ud, uint32_t step, uint32_t steps, const uint8_t *pv, size_t len) {
    s_progress_t *pr = ud;
    pr->calls++;
    if (step != pr->last_step + 1) pr->bad_preview = 1; /* steps in order, none skipped */
    pr->last_step = step;
    pr->steps = steps;
    if (pv) {
        lf_bytes_t b = {(uint8_t *)pv, len};
        uint32_t w, h;
        s_png_dims(&b, &w, &h);
        if (w > LF_DIAGNOSTIC_PREVIEW_SIDE || h > LF_DIAGNOSTIC_PREVIEW_SIDE) pr->bad_preview = 1;
        pr->previews++;
    }
    if (pr->cancel_at && step == pr->cancel_at) atomic_store(pr->cancel, true);
}

static void test_progress_every_step(void **st) {
    (void)st;
    lf_job_params_t p = s_params(3, 512, 256);
    p.steps = 20;
    p.step_delay_ms = 1;
    s_progress_t pr = {0};
    lf_runner_job_t job = {.progress = s_on_progress, .progress_ud = &pr};
    lf_runner_output_t o;
    assert_int_equal(s_run(&p, &job, &o), 0);
    assert_int_equal(pr.calls, 20);
    assert_int_equal(pr.last_step, 20);
    assert_int_equal(pr.steps, 20);
    assert_int_equal(pr.bad_preview, 0);
    assert_int_equal(pr.previews, 0); /* previews are off by default */
    lf_runner_output_clear(&o);
    /* Every 5th step (not the last: the result follows). */
    lf_runner_env_t env = {.device = "cpu", .preview_every = 5};
    memset(&pr, 0, sizeof pr);
    assert_int_equal(s_run_env(&env, &p, &job, &o), 0);
    assert_int_equal(pr.calls, 20);
    assert_int_equal(pr.bad_preview, 0);
    assert_int_equal(pr.previews, 3);
    lf_runner_output_clear(&o);
}

static void test_cancel_stops_at_next_step(void **st) {
    (void)st;
    atomic_bool cancel = false;
    lf_job_params_t p = s_params(3, 32, 32);
    p.steps = 100;
    p.step_delay_ms = 1;
    s_progress_t pr = {.cancel_at = 3, .cancel = &cancel};
    lf_runner_job_t job = {.progress = s_on_progress, .progress_ud = &pr, .cancel = &cancel};
    lf_runner_output_t o;
    assert_int_equal(s_run(&p, &job, &o), LF_ECANCELED);
    assert_int_equal(pr.calls, 3);
    assert_null(o.images); /* outputs untouched on failure */
}

static void *s_cancel_later(void *arg) {
    struct timespec ts = {0, 100 * 1000000L};
    nanosleep(&ts, NULL);
    atomic_store((atomic_bool *)arg, true);
    return NULL;
}

static void test_cancel_interrupts_delay(void **st) {
    (void)st;
    atomic_bool cancel = false;
    lf_job_params_t p = s_params(3, 32, 32);
    p.steps = 2;
    p.step_delay_ms = 30000; /* would take a minute without cancel */
    lf_runner_job_t job = {.cancel = &cancel};
    pthread_t t;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(pthread_create(&t, NULL, s_cancel_later, &cancel), 0);
    lf_runner_output_t o;
    assert_int_equal(s_run(&p, &job, &o), LF_ECANCELED);
    pthread_join(t, NULL);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
    assert_true(s < 2.0);
}

static void test_batch_seeds(void **st) {
    (void)st;
    lf_job_params_t p = s_params(1000, 48, 40);
    p.batch_size = 3;
    lf_runner_output_t o;
    assert_int_equal(s_run(&p, NULL, &o), 0);
    assert_int_equal(o.n_images, 3);
    for (uint32_t i = 0; i < 3; i++) {
        assert_int_equal(o.images[i].seed, 1000 + i);
        lf_job_params_t q = s_params(1000 + i, 48, 40);
        lf_runner_output_t one;
        assert_int_equal(s_run(&q, NULL, &one), 0);
        assert_int_equal(one.images[0].png.len, o.images[i].png.len);
        assert_memory_equal(one.images[0].png.data, o.images[i].png.data, one.images[0].png.len);
        lf_runner_output_clear(&one);
    }
    assert_non_null(strstr(o.info_json, "\"seeds\":[1000,1001,1002]"));
    lf_runner_output_clear(&o);
}

static void test_limits(void **st) {
    (void)st;
    lf_runner_output_t o;
    lf_job_params_t p = s_params(1, 0, 64);
    assert_int_equal(s_run(&p, NULL, &o), LF_EINVAL);
    p = s_params(1, LF_DIAGNOSTIC_MAX_SIDE + 1, 64);
    assert_int_equal(s_run(&p, NULL, &o), LF_EINVAL);
    p = s_params(1, 8, 8);
    p.batch_size = LF_DIAGNOSTIC_MAX_BATCH + 1;
    assert_int_equal(s_run(&p, NULL, &o), LF_ELIMIT);
    p.batch_size = 1;
    /* Zero steps: no progress, still an image. */
    assert_int_equal(s_run(&p, NULL, &o), 0);
    assert_int_equal(o.n_images, 1);
    lf_runner_output_clear(&o);
    /* The delay is capped by the env, not refused. */
    lf_runner_env_t env = {.device = "cpu", .step_delay_max_ms = 5};
    p.steps = 4;
    p.step_delay_ms = 100000;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(s_run_env(&env, &p, NULL, &o), 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    assert_true(t1.tv_sec - t0.tv_sec < 2);
    assert_non_null(strstr(o.info_json, "\"step_delay_ms\":5"));
    lf_runner_output_clear(&o);
    /* Only the one model. */
    void *state = NULL;
    assert_int_equal(lf_diagnostic_backend.load(&env, "sd15-foo", &state, NULL, 0), LF_ENOTFOUND);
    assert_null(state);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_seed_same_bytes),
        cmocka_unit_test(test_render_pure),
        cmocka_unit_test(test_size_honoured),
        cmocka_unit_test(test_progress_every_step),
        cmocka_unit_test(test_cancel_stops_at_next_step),
        cmocka_unit_test(test_cancel_interrupts_delay),
        cmocka_unit_test(test_batch_seeds),
        cmocka_unit_test(test_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
