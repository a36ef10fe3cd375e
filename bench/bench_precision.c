/* bench_precision: how far the bf16 compute precision moves the image from
 * the f32 one, over more prompt/seed pairs than test_e2e_precision's three.
 *
 * The built-in model (models/lf-tiny-shapes.safetensors, a real trained
 * SD1.5-architecture model) through lf_engine_generate with the test's
 * settings (128x128, 6 steps, CFG 5, the request's default sampler) on the
 * 20 prompt/seed pairs bench_cache uses (tests/integration/
 * test_default_model.c's cases): each pair once in f32 and once in bf16, the
 * PSNR of the bf16 image against the f32 one (8-bit RGB, peak 255, whole
 * image), then the mean and the lowest. The CPU backend's settings come from
 * the environment (LF_CPU_CONV, LF_CPU_FUSE, ...), so two runs compare two
 * kernel choices on the same pairs.
 *
 *   build/release/bench/bench_precision [--cases N] [--size N] [--steps N] [--threads N] [--test-pairs]
 * --test-pairs: test_e2e_precision's three pairs instead (its figures).
 * Last line "BENCH precision ..." is machine-readable. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lf_bench_util.h"
#include "lf_engine.h"
#include "lf_error.h"
#include "lf_image.h"

#define N_CASES LF_BENCH_N_CASES

typedef lf_bench_case_t s_case_t;

/* test_e2e_precision's three pairs (--test-pairs). */
static const s_case_t s_test_cases[3] = {
    {"a large red circle in the center on a blue background", 2000},
    {"a small green square in the top left corner on a white background", 2001},
    {"two yellow triangles on a black background", 2002},
};


static const s_case_t *s_cases = lf_bench_cases;

/* One image of case i in precision prec, decoded into *im (caller clears). */
static int s_image(lf_engine_t *e, int i, int size, int steps, const char *prec, lf_image_t *im) {
    lf_engine_request_t req = lf_engine_request_defaults();
    req.prompt = s_cases[i].prompt;
    req.seed = s_cases[i].seed;
    req.width = req.height = size;
    req.steps = steps;
    req.cfg = 5.0;
    req.precision = prec;
    lf_engine_result_t res = {0};
    int rc = lf_engine_generate(e, &req, NULL, NULL, NULL, &res);
    if (rc) {
        fprintf(stderr, "generate: %s\n", lf_engine_errstr(e));
        return rc;
    }
    if (strcmp(res.precision, prec)) {
        fprintf(stderr, "asked %s, ran %s (no bf16 compute here)\n", prec, res.precision);
        lf_engine_result_clear(&res);
        return LF_EUNSUPPORTED;
    }
    char why[128] = "";
    rc = lf_image_decode(res.images[0].png, res.images[0].png_len, NULL, im, why, sizeof why);
    lf_engine_result_clear(&res);
    if (rc || im->width != (uint32_t)size || im->height != (uint32_t)size || im->channels != 3) {
        fprintf(stderr, "decode: %s\n", why);
        return rc ? rc : LF_EFORMAT;
    }
    return 0;
}

int main(int argc, char **argv) {
    int n_cases = N_CASES, size = 128, steps = 6, threads = 2;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--cases") && i + 1 < argc) n_cases = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--size") && i + 1 < argc) size = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--steps") && i + 1 < argc) steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--test-pairs")) s_cases = s_test_cases, n_cases = 3;
        else {
            fprintf(stderr, "usage: %s [--cases N] [--size N] [--steps N] [--threads N] [--test-pairs]\n", argv[0]);
            return 2;
        }
    }
    if (n_cases < 1 || n_cases > (s_cases == s_test_cases ? 3 : N_CASES)) n_cases = s_cases == s_test_cases ? 3 : N_CASES;
    char err[512] = "";
    lf_engine_opts_t eo = {.n_threads = threads, .assets_dir = LF_SOURCE_DIR "/assets"};
    lf_engine_t *e = NULL;
    if (lf_engine_new(&eo, &e, err, sizeof err)) {
        printf("SKIP: engine: %s\n", err);
        return 0;
    }
    if (lf_engine_load(e, LF_SOURCE_DIR "/models/lf-tiny-shapes.safetensors", NULL)) {
        printf("SKIP: %s\n", lf_engine_errstr(e));
        lf_engine_destroy(&e);
        return 0;
    }
    const char *env[] = {"LF_CPU_CONV", "LF_CPU_FUSE", "LF_CPU_ATTN", "LF_CPU_PREPACK"};
    printf("bench_precision: built-in model, %dx%d, %d steps, CFG 5, bf16 vs f32 image; env:", size, size, steps);
    for (size_t i = 0; i < sizeof env / sizeof env[0]; i++)
        if (getenv(env[i])) printf(" %s=%s", env[i], getenv(env[i]));
    printf("\n");
    double sum = 0, lo = INFINITY;
    int rc = 0;
    for (int i = 0; i < n_cases && !rc; i++) {
        lf_image_t a = {0}, b = {0};
        rc = s_image(e, i, size, steps, "f32", &a);
        if (!rc) rc = s_image(e, i, size, steps, "bf16", &b);
        if (!rc) {
            double psnr = lf_bench_psnr(a.pixels, b.pixels, (size_t)size * size * 3);
            printf("  pair %2d  %5.1f dB  (%s, seed %u)\n", i + 1, psnr, s_cases[i].prompt, s_cases[i].seed);
            fflush(stdout);
            sum += psnr;
            lo = psnr < lo ? psnr : lo;
        }
        lf_image_clear(&a), lf_image_clear(&b);
    }
    if (!rc) {
        printf("  mean %.1f dB, lowest %.1f dB over %d pairs\n", sum / n_cases, lo, n_cases);
        printf("BENCH precision cases=%d size=%d steps=%d mean_db=%.2f min_db=%.2f\n", n_cases, size, steps,
               sum / n_cases, lo);
    }
    lf_engine_destroy(&e);
    return rc ? 1 : 0;
}
