/* bench_weights: quantize-on-load (lf_engine_opts_t.weights, CLI --weights)
 * against the weights as stored, on whole generations.
 *
 * The built-in model (models/lf-tiny-shapes.safetensors: a trained
 * SD1.5-architecture model, f16 weights) through lf_engine_generate at its
 * 256x256 size, 20 steps, euler / normal, CFG 5, on a few prompt/seed pairs;
 * each quantized setting's images against the as-stored (f16) run's: PSNR
 * (8-bit RGB, peak 255) and SSIM (luma, 8x8 windows, stride 4), the time per
 * image, and the process's peak RSS after that setting's load and run (the
 * settings run in that order in one process: a later peak covers earlier
 * ones only if it is larger, so the load's own figure is printed too).
 *
 *   build/rel/bench/bench_weights [--cases N] [--threads N] [--types q8_0,q4_0,...]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lf_bench_util.h"
#include "lf_engine.h"
#include "lf_error.h"
#include "lf_image.h"

#define RES 256
#define MAX_CASES 8

static const struct {
    const char *prompt;
    unsigned seed;
} s_cases[MAX_CASES] = {
    {"a red circle on a blue background", 11},        {"a large yellow square on a green background", 12},
    {"a small white star at the top on a black background", 13}, {"a pink triangle on a gray background", 14},
    {"a medium blue circle on the left on a yellow background", 15}, {"a green star on a red background", 16},
    {"a black square in the bottom right on a white background", 17}, {"a cyan triangle on a brown background", 18},
};

/* Generates the cases with engine e into rgb (allocated here). */
static int s_images(lf_engine_t *e, int n, uint8_t **rgb, double *secs)
{
    double t0 = lf_bench_now();
    for (int i = 0; i < n; i++) {
        lf_engine_request_t req = lf_engine_request_defaults();
        req.prompt = s_cases[i].prompt;
        req.seed = s_cases[i].seed;
        req.width = req.height = RES;
        req.steps = 20;
        req.cfg = 5.0;
        req.sampler = "euler";
        req.scheduler = "normal";
        lf_engine_result_t res = {0};
        int rc = lf_engine_generate(e, &req, NULL, NULL, NULL, &res);
        if (rc) {
            fprintf(stderr, "generate: %s\n", lf_engine_errstr(e));
            return rc;
        }
        lf_image_t im = {0};
        char why[128] = "";
        rc = lf_image_decode(res.images[0].png, res.images[0].png_len, NULL, &im, why, sizeof why);
        lf_engine_result_clear(&res);
        if (rc || im.width != RES || im.height != RES || im.channels != 3) {
            fprintf(stderr, "decode: %s\n", why);
            lf_image_clear(&im);
            return rc ? rc : LF_EFORMAT;
        }
        rgb[i] = malloc((size_t)RES * RES * 3);
        memcpy(rgb[i], im.pixels, (size_t)RES * RES * 3);
        lf_image_clear(&im);
    }
    *secs = (lf_bench_now() - t0) / n;
    return 0;
}

int main(int argc, char **argv)
{
    int n = 4, threads = 0;
    char types[256] = "q8_0,q5_1,q4_0";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--cases")) n = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--types")) snprintf(types, sizeof types, "%s", argv[i + 1]);
    }
    if (n < 1 || n > MAX_CASES) n = MAX_CASES;
    char la[128] = "?";
    FILE *f = fopen("/proc/loadavg", "r");
    if (f && fgets(la, sizeof la, f)) la[strcspn(la, "\n")] = 0;
    if (f) fclose(f);
    printf("bench_weights: lf-tiny-shapes %dx%d, 20 steps, euler/normal, CFG 5, %d prompt/seed pairs, "
           "%d threads; load %s\n\n| weights | mean PSNR dB vs as stored | min PSNR dB | mean SSIM | s / image | "
           "RSS after load MB | peak RSS MB |\n|---|---|---|---|---|---|---|\n",
           RES, RES, n, threads, la);
    uint8_t *ref[MAX_CASES] = {0}, *img[MAX_CASES] = {0};
    int rc = 0;
    char *save = NULL;
    for (char *w = "none"; w && !rc; w = strtok_r(save ? NULL : types, ",", &save)) {
        char err[512] = "";
        lf_engine_opts_t eo = {.n_threads = threads, .assets_dir = LF_SOURCE_DIR "/assets", .weights = w};
        lf_engine_t *e = NULL;
        if ((rc = lf_engine_new(&eo, &e, err, sizeof err))) {
            fprintf(stderr, "engine: %s\n", err);
            break;
        }
        lf_bench_reset_hwm();
        if ((rc = lf_engine_load(e, LF_SOURCE_DIR "/models/lf-tiny-shapes.safetensors", NULL))) {
            fprintf(stderr, "load: %s\n", lf_engine_errstr(e));
            lf_engine_destroy(&e);
            break;
        }
        long rss_load = lf_bench_status_kb("VmRSS");
        double secs = 0;
        uint8_t **out = strcmp(w, "none") ? img : ref;
        rc = s_images(e, n, out, &secs);
        lf_engine_destroy(&e);
        if (rc) break;
        double ps = 0, pmin = 1e9, ss = 0;
        for (int i = 0; i < n && out == img; i++) {
            double p = lf_bench_psnr(ref[i], img[i], (size_t)RES * RES * 3);
            ps += p, pmin = p < pmin ? p : pmin;
            ss += lf_bench_ssim(ref[i], img[i], RES, RES);
        }
        if (out == ref)
            printf("| as stored (f16) | - | - | - | %.2f | %.0f | %.0f |\n", secs, rss_load / 1024.0,
                   lf_bench_status_kb("VmHWM") / 1024.0);
        else
            printf("| %s | %.2f | %.2f | %.4f | %.2f | %.0f | %.0f |\n", w, ps / n, pmin, ss / n, secs,
                   rss_load / 1024.0, lf_bench_status_kb("VmHWM") / 1024.0);
        fflush(stdout);
        for (int i = 0; i < n && out == img; i++) free(img[i]), img[i] = NULL;
    }
    for (int i = 0; i < n; i++) free(ref[i]);
    return rc ? 1 : 0;
}
