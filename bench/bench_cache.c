/* bench_cache: step caching (FBCache, DeepCache; lf_stepcache.h) against
 * quality, and its speed.
 *
 * Quality: the built-in model (models/lf-tiny-shapes.safetensors, a real
 * trained SD1.5-architecture model) through lf_engine_generate at its 256x256
 * size, 20 steps, euler / normal, CFG 5 (the default-model test's settings),
 * on the first 20 prompt/seed pairs of tests/integration/test_default_model.c
 * (eval_shapes.py's cases). Each setting's final images are compared with the
 * uncached run's: PSNR (8-bit RGB, peak 255, over the whole image) and SSIM
 * (luma, 8x8 windows with stride 4, the standard constants), and the full
 * denoiser evaluations it ran (the engine's count) against the uncached
 * run's. One table row per FBCache threshold and per DeepCache interval /
 * depth; the goal (issue 18): >= 1.8x fewer full evaluations at mean PSNR
 * >= 30 dB.
 *
 * Speed (--speed): the full-size SD1.5 UNet (random weights,
 * tests/reference/out/sd15_full.safetensors or --ckpt / $LF_SD15_FULL) at
 * 512x512 with CFG (batch 2): one uncached step, a full FBCache step (in
 * parts), an FBCache reuse step, a DeepCache full step and its shallow step
 * per depth; the 2nd call of each is timed (the 1st records and plans its
 * graph). Run it under `flock /tmp/lf-bigmem.lock`.
 *
 * Whole images (--gen): lf_engine_generate on the full-size model at
 * 512x512, --steps Euler steps, CFG 7: uncached, then each --pick setting
 * (default "dl": FBCache 0.08 with a 2/1 window, DeepCache interval 2 depth
 * 0), seconds per image (wall and CPU) and the full / cached evaluations.
 *
 * --precision bf16: the quality table's settings run in bf16 against the
 * f32 uncached reference (with a "none, bf16" row: bf16 alone).
 *
 *   build/release/bench/bench_cache [--cases N] [--steps N] [--speed] [--ckpt PATH] [--threads N]
 *                                   [--precision f32|bf16] [--gen] [--pick LETTERS]
 *   --flops: only the compute (graph FLOPs) of each setting's full and reuse
 *   evaluation on the built-in model's UNet, relative to the uncached one.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "lf_bench_util.h"
#include "lf_engine.h"
#include "lf_error.h"
#include "lf_image.h"
#include "lf_model.h"

void openblas_set_num_threads(int n); /* OpenBLAS (the CPU backend's sgemm) */

#define N_CASES LF_BENCH_N_CASES
#define RES 256

#define s_cases lf_bench_cases

typedef struct {
    const char *label;
    lf_stepcache_opts_t o;
} s_setting_t;

/* Picked from a first pass over 2 cases (thresholds 0.05..0.30, depths
 * 0..8, intervals 2..5): the settings near the goal's edge. */
static const s_setting_t s_settings[] = {
    {"fbcache 0.06", {LF_STEPCACHE_FBCACHE, 0.06f, 0, 0, 1, 0}},
    {"fbcache 0.07", {LF_STEPCACHE_FBCACHE, 0.07f, 0, 0, 1, 0}},
    {"fbcache 0.08", {LF_STEPCACHE_FBCACHE, 0.08f, 0, 0, 1, 0}},
    {"fbcache 0.08 start 2 end 1", {LF_STEPCACHE_FBCACHE, 0.08f, 2, 1, 1, 0}},
    {"fbcache 0.10 start 2 end 1", {LF_STEPCACHE_FBCACHE, 0.10f, 2, 1, 1, 0}},
    {"deepcache interval 2 depth 8", {LF_STEPCACHE_DEEPCACHE, 0, 0, 0, 2, 8}},
    {"deepcache interval 3 depth 5", {LF_STEPCACHE_DEEPCACHE, 0, 0, 0, 3, 5}},
    {"deepcache interval 3 depth 8", {LF_STEPCACHE_DEEPCACHE, 0, 0, 0, 3, 8}},
    {"deepcache interval 3 depth 11", {LF_STEPCACHE_DEEPCACHE, 0, 0, 0, 3, 11}},
    {"deepcache interval 4 depth 11", {LF_STEPCACHE_DEEPCACHE, 0, 0, 0, 4, 11}},
    {"deepcache interval 3 depth 8 start 2 end 1", {LF_STEPCACHE_DEEPCACHE, 0, 2, 1, 3, 8}},
    /* Shallow branches (the ones that save compute on this model). */
    {"deepcache interval 2 depth 0", {LF_STEPCACHE_DEEPCACHE, 0, 0, 0, 2, 0}},
    {"deepcache interval 2 depth 2", {LF_STEPCACHE_DEEPCACHE, 0, 0, 0, 2, 2}},
    {"deepcache interval 2 depth 2 start 2 end 1", {LF_STEPCACHE_DEEPCACHE, 0, 2, 1, 2, 2}},
    {"fbcache 0.12 start 2 end 1", {LF_STEPCACHE_FBCACHE, 0.12f, 2, 1, 1, 0}},
};
#define N_SETTINGS ((int)(sizeof s_settings / sizeof s_settings[0]))

static void s_loadavg(char *out, size_t n) {
    FILE *f = fopen("/proc/loadavg", "r");
    if (!f || !fgets(out, (int)n, f)) snprintf(out, n, "?");
    if (f) fclose(f);
    out[strcspn(out, "\n")] = 0;
}

static void s_randn(float *p, size_t n, uint32_t seed);

/* ---- SD1.5's compute per path, counted analytically (bench_unet's count:
 * conv, linear and the two attention products, multiply-add = 2; norms
 * and element-wise ops left out) ---- */
static double s_conv(double hw, int ci, int co, int k) { return 2.0 * hw * co * ci * k * k; }
static double s_lin(double rows, int ci, int co) { return 2.0 * rows * ci * co; }
static double s_res(double hw, int ci, int co) {
    double f = s_conv(hw, ci, co, 3) + s_conv(hw, co, co, 3) + s_lin(1, 1280, co);
    return ci != co ? f + s_conv(hw, ci, co, 1) : f;
}
static double s_tf(double n, int c) { /* one transformer block, 77 context tokens of 768 */
    return 2 * s_conv(n, c, c, 1) + 4 * s_lin(n, c, c) + 4.0 * n * n * c + 2 * s_lin(n, c, c) +
           2 * s_lin(77, 768, c) + 4.0 * n * 77 * c + s_lin(n, c, 8 * c) + s_lin(n, 4 * c, c);
}
/* Per sample at an s x s latent. fb: FBCache's reuse path (conv_in, the first
 * block, conv_out); else DeepCache's shallow path at depth (< 0: the whole
 * UNet), as lf_unet records them. */
static double s_sd15_flops(int s, int fb, int depth) {
    static const int ch[4] = {320, 640, 1280, 1280}, attn[4] = {1, 1, 1, 0};
    int skip[16], ns = 0, r = s, cur = ch[0], k = 1;
    const int down_end = fb ? 2 : depth < 0 ? 12 : depth + 1;
    double f = s_lin(1, 320, 1280) + s_lin(1, 1280, 1280) + s_conv((double)r * r, 4, ch[0], 3);
    skip[ns++] = cur;
    for (int l = 0; l < 4; l++) {
        for (int j = 0; j < 2; j++, k++) {
            if (k < down_end) f += s_res((double)r * r, cur, ch[l]) + (attn[l] ? s_tf((double)r * r, ch[l]) : 0);
            cur = ch[l];
            skip[ns++] = cur;
        }
        if (l < 3) {
            r /= 2;
            if (k++ < down_end) f += s_conv((double)r * r, cur, cur, 3);
            skip[ns++] = cur;
        }
    }
    if (fb) return f + s_conv((double)s * s, ch[0], 4, 3);
    if (depth < 0) f += 2 * s_res((double)r * r, cur, cur) + s_tf((double)r * r, cur);
    for (int i = 0; i < 4; i++) {
        int l = 3 - i, last = 0;
        for (int j = 0; j < 3; j++) {
            --ns;
            last = ns;
            if (depth < 0 || ns <= depth)
                f += s_res((double)r * r, cur + skip[ns], ch[l]) + (attn[l] ? s_tf((double)r * r, ch[l]) : 0);
            cur = ch[l];
        }
        if (i < 3) {
            r *= 2;
            if (depth < 0 || last <= depth) f += s_conv((double)r * r, cur, cur, 3);
        }
    }
    return f + s_conv((double)s * s, ch[0], 4, 3);
}

/* The compute of one evaluation of each path on the built-in model's UNet
 * (lf_model_flops_run, the graphs' FLOPs: independent of the machine's
 * load): *full the uncached forward, *fpath a full evaluation with the
 * setting (FBCache runs it in parts), *reuse a reuse evaluation. */
static int s_setting_flops(lf_model_t *m, const lf_stepcache_opts_t *o, double *full, double *fpath,
                           double *reuse) {
    const lf_model_desc_t *d = lf_model_desc(m);
    const int hw = RES / d->vae_scale;
    const size_t nx = (size_t)2 * d->latent_channels * hw * hw, nc = (size_t)2 * 77 * d->text_dim;
    float *x = malloc(nx * sizeof *x), *ctx = malloc(nc * sizeof *ctx), *out = malloc(nx * sizeof *out);
    const float t[2] = {500, 500};
    int rc = x && ctx && out ? 0 : LF_ENOMEM;
    if (!rc) s_randn(x, nx, 3), s_randn(ctx, nc, 4);
    double f0 = lf_model_flops_run(m);
    if (!rc) rc = lf_model_denoise(m, x, 2, hw, hw, t, ctx, 77, NULL, out);
    *full = lf_model_flops_run(m) - f0;
    /* Same inputs twice: the 2nd reuses (FBCache: distance 0 < threshold 1;
     * DeepCache: interval past the steps). */
    lf_stepcache_opts_t oo = *o;
    if (oo.kind == LF_STEPCACHE_FBCACHE) oo.threshold = 1;
    oo.interval = LF_STEPCACHE_MAX_INTERVAL, oo.start = oo.end = 0;
    lf_stepcache_t *sc = rc ? NULL : lf_stepcache_new(&oo);
    for (int k = 0; sc && k < 2 && !rc; k++) {
        f0 = lf_model_flops_run(m);
        lf_stepcache_begin(sc, k, 1000);
        rc = lf_model_denoise_cached(m, sc, x, 2, hw, hw, t, ctx, 77, NULL, out);
        *(k ? reuse : fpath) = lf_model_flops_run(m) - f0;
    }
    if (!rc && (!sc || lf_stepcache_reused(sc) != 1)) rc = LF_ESTATE;
    lf_stepcache_destroy(&sc);
    free(x), free(ctx), free(out);
    return rc;
}

/* Runs every case with one setting: RGB images into rgb[case], and the
 * full / cached evaluations summed. */
static int s_run(lf_engine_t *e, int n_cases, int steps, const lf_stepcache_opts_t *o,
                 uint8_t **rgb, long *full, long *cached, double *secs) {
    *full = *cached = 0;
    double t0 = lf_bench_now();
    for (int i = 0; i < n_cases; i++) {
        lf_engine_request_t req = lf_engine_request_defaults();
        req.prompt = s_cases[i].prompt;
        req.seed = s_cases[i].seed;
        req.width = req.height = RES;
        req.steps = steps;
        req.cfg = 5.0;
        req.sampler = "euler";
        req.scheduler = "normal";
        if (o) req.cache = *o;
        lf_engine_result_t res = {0};
        int rc = lf_engine_generate(e, &req, NULL, NULL, NULL, &res);
        if (rc) {
            fprintf(stderr, "generate: %s\n", lf_engine_errstr(e));
            return rc;
        }
        lf_image_t im = {0};
        char why[128] = "";
        rc = lf_image_decode(res.images[0].png, res.images[0].png_len, NULL, &im, why, sizeof why);
        if (rc || im.width != RES || im.height != RES || im.channels != 3) {
            fprintf(stderr, "decode: %s\n", why);
            lf_engine_result_clear(&res);
            return rc ? rc : LF_EFORMAT;
        }
        if (!rgb[i]) rgb[i] = malloc((size_t)RES * RES * 3);
        memcpy(rgb[i], im.pixels, (size_t)RES * RES * 3);
        lf_image_clear(&im);
        *full += res.model_calls_full;
        *cached += res.model_calls_cached;
        lf_engine_result_clear(&res);
    }
    *secs = lf_bench_now() - t0;
    return 0;
}

/* An engine with the built-in model loaded, or NULL (SKIP printed). */
static lf_engine_t *s_tiny_engine(int threads, const char *precision) {
    char err[512] = "";
    lf_engine_opts_t eo = {.n_threads = threads, .assets_dir = LF_SOURCE_DIR "/assets", .precision = precision};
    lf_engine_t *e = NULL;
    if (lf_engine_new(&eo, &e, err, sizeof err)) {
        printf("SKIP: engine: %s\n", err);
        return NULL;
    }
    if (lf_engine_load(e, LF_SOURCE_DIR "/models/lf-tiny-shapes.safetensors", NULL)) {
        printf("SKIP: %s\n", lf_engine_errstr(e));
        lf_engine_destroy(&e);
    }
    return e;
}

/* PSNR (mean, min) and mean SSIM of img against ref over n cases. */
static void s_compare(uint8_t *const *ref, uint8_t *const *img, int n, double *ps, double *pmin, double *ss) {
    *ps = *ss = 0, *pmin = 1e9;
    for (int i = 0; i < n; i++) {
        double p = lf_bench_psnr(ref[i], img[i], (size_t)RES * RES * 3);
        *ps += p;
        *pmin = p < *pmin ? p : *pmin;
        *ss += lf_bench_ssim(ref[i], img[i], RES, RES);
    }
    *ps /= n, *ss /= n;
}

/* precision: the settings' engine ("bf16": each setting's images against
 * the f32 uncached reference, with a "none" row for bf16 alone). */
static int s_quality(int n_cases, int steps, int threads, int flops_only, const char *pick, const char *precision) {
    char la[128];
    lf_engine_t *e = s_tiny_engine(threads, NULL), *eset = NULL;
    if (!e) return 0;
    const int ns = N_SETTINGS;
    uint8_t *ref[N_CASES] = {0}, *img[N_CASES] = {0};
    lf_model_t *m = NULL;
    long full0, cached0;
    double secs0;
    s_loadavg(la, sizeof la);
    printf("bench_cache: lf-tiny-shapes %dx%d, %d steps, euler/normal, CFG 5, %d prompt/seed pairs, "
           "%d threads; load %s\n",
           RES, RES, steps, n_cases, threads, la);
    int rc = 0;
    if (flops_only) {
        /* The compute of each path alone, relative to the uncached forward. */
        lf_model_opts_t fo = {.weight_type = -1};
        if ((rc = lf_model_load(LF_SOURCE_DIR "/models/lf-tiny-shapes.safetensors", &fo, &m, la, sizeof la)))
            goto out;
        printf("\n| setting | full evaluation / uncached | reuse evaluation / uncached |\n|---|---|---|\n");
        for (int s = 0; s < ns && !rc; s++) {
            double ff = 0, fp = 0, fr = 0;
            rc = s_setting_flops(m, &s_settings[s].o, &ff, &fp, &fr);
            if (!rc) printf("| %s | %.4f | %.4f |\n", s_settings[s].label, fp / ff, fr / ff);
        }
        const double full = s_sd15_flops(64, 0, -1);
        printf("\nSD1.5 at 512x512 (analytic: %.1f GFLOP per step with CFG): a reuse evaluation over a full one\n"
               "| path | GFLOP (CFG batch 2) | vs full |\n|---|---|---|\n",
               2 * full / 1e9);
        printf("| fbcache reuse | %.1f | %.4f |\n", 2 * s_sd15_flops(64, 1, 0) / 1e9, s_sd15_flops(64, 1, 0) / full);
        for (int d = 0; d < 12; d++)
            printf("| deepcache depth %d | %.1f | %.4f |\n", d, 2 * s_sd15_flops(64, 0, d) / 1e9,
                   s_sd15_flops(64, 0, d) / full);
        goto out;
    }
    rc = s_run(e, n_cases, steps, NULL, ref, &full0, &cached0, &secs0);
    if (rc) goto out;
    /* The same UNet alone, for the compute each path takes. */
    lf_model_opts_t mo = {.weight_type = -1};
    if ((rc = lf_model_load(LF_SOURCE_DIR "/models/lf-tiny-shapes.safetensors", &mo, &m, la, sizeof la)))
        goto out;
    printf("\n| setting | full evals | cached evals | fewer full evals | UNet compute vs none | mean PSNR dB | "
           "min PSNR dB | mean SSIM | time s |\n|---|---|---|---|---|---|---|---|---|\n");
    printf("| none | %ld | %ld | 1.00x | 1.000 | - | - | - | %.1f |\n", full0, cached0, secs0);
    double best_x = 0, ps, pmin, ss;
    const char *best = NULL;
    if (precision && strcmp(precision, "f32")) {
        /* The settings in another precision against the f32 reference. */
        if (!(eset = s_tiny_engine(threads, precision))) goto out;
        long full, cached;
        double secs;
        if ((rc = s_run(eset, n_cases, steps, NULL, img, &full, &cached, &secs))) goto out;
        s_compare(ref, img, n_cases, &ps, &pmin, &ss);
        printf("| none, %s | %ld | %ld | %.2fx | 1.000 | %.2f | %.2f | %.4f | %.1f |\n", precision, full, cached,
               full ? (double)full0 / full : 0, ps, pmin, ss, secs);
        fflush(stdout);
    }
    for (int s = 0; s < ns; s++) {
        if (pick && !strstr(pick, (char[]){(char)('a' + s), 0})) continue;
        long full, cached;
        double secs;
        rc = s_run(eset ? eset : e, n_cases, steps, &s_settings[s].o, img, &full, &cached, &secs);
        if (rc) goto out;
        s_compare(ref, img, n_cases, &ps, &pmin, &ss);
        double x = full ? (double)full0 / full : 0, ff = 0, fp = 0, fr = 0;
        if ((rc = s_setting_flops(m, &s_settings[s].o, &ff, &fp, &fr))) {
            fprintf(stderr, "compute of %s: %s\n", s_settings[s].label, lf_strerror(rc));
            goto out;
        }
        /* Compute of the setting's evaluations over the uncached run's. */
        double comp = ((double)full * fp + (double)cached * fr) / ((double)full0 * ff);
        printf("| %s%s%s | %ld | %ld | %.2fx | %.3f | %.2f | %.2f | %.4f | %.1f |\n", s_settings[s].label,
               eset ? ", " : "", eset ? precision : "", full, cached, x, comp, ps, pmin, ss, secs);
        fflush(stdout);
        if (ps >= 30.0 && x > best_x) best_x = x, best = s_settings[s].label;
    }
    printf("\ngoal >= 1.80x fewer full evaluations at mean PSNR >= 30 dB: %s (best: %s, %.2fx)\n",
           best_x >= 1.8 ? "MET" : "NOT MET", best ? best : "none", best_x);
    printf("BENCH cache_quality best=\"%s\" fewer=%.2f\n", best ? best : "none", best_x);
out:
    for (int i = 0; i < N_CASES; i++) free(ref[i]), free(img[i]);
    lf_model_destroy(&m);
    lf_engine_destroy(&eset);
    lf_engine_destroy(&e);
    return rc;
}

static void s_randn(float *p, size_t n, uint32_t seed) { /* Box-Muller over an LCG */
    uint32_t s = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i += 2) {
        s = s * 1664525u + 1013904223u;
        double u1 = ((s >> 8) + 1.0) / 16777217.0;
        s = s * 1664525u + 1013904223u;
        double u2 = (s >> 8) / 16777216.0;
        double r = sqrt(-2 * log(u1));
        p[i] = (float)(r * cos(6.283185307179586 * u2));
        if (i + 1 < n) p[i + 1] = (float)(r * sin(6.283185307179586 * u2));
    }
}

/* GFLOP of the last timed call (lf_model_flops_run). */
static double s_gflop;

/* Times the 2nd of two calls (the 1st records and plans the graph). */
static double s_time2(lf_model_t *m, lf_stepcache_t *sc, int step0, const float *x, const float *t,
                      const float *ctx, float *out, int *rc) {
    double dt = 0;
    for (int k = 0; k < 2 && !*rc; k++) {
        double f0 = lf_model_flops_run(m);
        if (sc) lf_stepcache_begin(sc, step0 + k, 1000);
        double t0 = lf_bench_now();
        *rc = sc ? lf_model_denoise_cached(m, sc, x, 2, 64, 64, t, ctx, 77, NULL, out)
                 : lf_model_denoise(m, x, 2, 64, 64, t, ctx, 77, NULL, out);
        dt = lf_bench_now() - t0;
        s_gflop = (lf_model_flops_run(m) - f0) / 1e9;
    }
    return dt;
}

static int s_speed(const char *ckpt, int threads) {
    char la[128], err[512] = "";
    FILE *f = fopen(ckpt, "rb");
    if (!f) {
        printf("SKIP speed: no %s (tests/reference/make_model_fixtures.py --full)\n", ckpt);
        return 0;
    }
    fclose(f);
    lf_model_opts_t mo = {.weight_type = -1}; /* as stored (f16), as lf_engine loads it */
    openblas_set_num_threads(threads);
    lf_model_t *m = NULL;
    int rc = lf_model_load(ckpt, &mo, &m, err, sizeof err);
    if (rc) {
        printf("load: %s\n", err);
        return rc;
    }
    const size_t nx = 2 * 4 * 64 * 64, nc = 2 * 77 * 768;
    float *x = malloc(nx * sizeof *x), *ctx = malloc(nc * sizeof *ctx), *out = malloc(nx * sizeof *out);
    const float t[2] = {500, 500};
    s_randn(x, nx, 1);
    s_randn(ctx, nc, 2);
    s_loadavg(la, sizeof la);
    printf("\nspeed: full-size SD1.5 UNet (random weights), 512x512 CFG batch 2, %d threads; load %s\n",
           threads, la);
    printf("| step | s (2nd call) | vs uncached | GFLOP | vs uncached |\n|---|---|---|---|---|\n");
    double full = s_time2(m, NULL, 0, x, t, ctx, out, &rc), gfull = s_gflop;
    printf("| uncached (lf_unet_forward) | %.2f | 1.00 | %.1f | 1.00 |\n", full, gfull);
    const long hwm_full = lf_bench_status_kb("VmHWM");
    /* FBCache: threshold 1 reuses every step after a full one. The same
     * inputs twice: step 0 full (in parts), then reuse. */
    lf_stepcache_opts_t o = {.kind = LF_STEPCACHE_FBCACHE, .threshold = 0.f, .interval = 1};
    lf_stepcache_t *sc = lf_stepcache_new(&o);
    double fbf = rc ? 0 : s_time2(m, sc, 0, x, t, ctx, out, &rc);
    lf_stepcache_destroy(&sc);
    if (!rc)
        printf("| fbcache full (head + rest) | %.2f | %.2f | %.1f | %.3f |\n", fbf, fbf / full, s_gflop,
               s_gflop / gfull);
    o.threshold = 1.f;
    sc = lf_stepcache_new(&o);
    double fbr = rc ? 0 : s_time2(m, sc, 1, x, t, ctx, out, &rc); /* 1st full, 2nd reuse */
    if (!rc)
        printf("| fbcache reuse (head + tail) | %.2f | %.2f | %.1f | %.3f |\n", fbr, fbr / full, s_gflop,
               s_gflop / gfull);
    lf_stepcache_destroy(&sc);
    static const int depths[] = {0, 2, 5, 8, 11};
    for (size_t d = 0; d < sizeof depths / sizeof depths[0] && !rc; d++) {
        lf_stepcache_opts_t od = {.kind = LF_STEPCACHE_DEEPCACHE, .interval = LF_STEPCACHE_MAX_INTERVAL, .depth = depths[d]};
        sc = lf_stepcache_new(&od);
        if (!sc) {
            rc = LF_ENOMEM;
            break;
        }
        /* Step 0 full; steps 1, 2 reuse: the 2nd reuse is timed. */
        lf_stepcache_begin(sc, 0, 1000);
        double t0 = lf_bench_now();
        rc = lf_model_denoise_cached(m, sc, x, 2, 64, 64, t, ctx, 77, NULL, out);
        double dcf = lf_bench_now() - t0;
        double dcr = rc ? 0 : s_time2(m, sc, 1, x, t, ctx, out, &rc);
        if (!rc)
            printf("| deepcache depth %d: full (1st call) / shallow | %.2f / %.2f | %.2f / %.2f | %.1f | "
                   "%.3f |\n",
                   depths[d], dcf, dcr, dcf / full, dcr / full, s_gflop, s_gflop / gfull);
        lf_stepcache_destroy(&sc);
    }
    /* Each part is its own graph with its own activation arena. */
    printf("peak RSS (VmHWM): %.2f GB after the uncached steps, %.2f GB with every cached graph "
           "recorded\n",
           hwm_full / 1048576.0, lf_bench_status_kb("VmHWM") / 1048576.0);
    printf("BENCH cache_speed full=%.2f fb_reuse=%.2f\n", full, fbr);
    free(x), free(ctx), free(out);
    lf_model_destroy(&m);
    return rc;
}

static double s_cpu_now(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_sec +
           1e-6 * (double)ru.ru_stime.tv_usec;
}

/* Process CPU seconds at the start, after step 1 (text encoder + step 1)
 * and after the last step (then the VAE decode and the PNG follow). */
typedef struct {
    double cpu0, cpu1, cpu_last;
} s_phases_t;

static void s_gen_progress(void *ud, int step, int steps, const uint8_t *preview, size_t preview_len) {
    (void)preview, (void)preview_len;
    s_phases_t *ph = ud;
    if (step == 1) ph->cpu1 = s_cpu_now();
    if (step == steps) ph->cpu_last = s_cpu_now();
}

/* One whole image on the full-size model: its RGB pixels into *rgb (caller
 * owns), wall and CPU seconds, the CPU seconds of steps 2..N alone, the full
 * and cached evaluations. */
static int s_gen_one(lf_engine_t *e, int steps, int size, const lf_stepcache_opts_t *o, uint8_t **rgb,
                     double *wall, double *cpu, double *steps_cpu, int *full, int *cached) {
    lf_engine_request_t req = lf_engine_request_defaults();
    req.prompt = "a photograph of an astronaut riding a horse";
    req.negative = "blurry";
    req.seed = 5;
    req.width = req.height = size;
    req.steps = steps;
    req.cfg = 7.0;
    req.sampler = "euler";
    req.scheduler = "normal";
    if (o) req.cache = *o;
    lf_engine_result_t res = {0};
    s_phases_t ph = {0};
    const double t0 = lf_bench_now(), c0 = s_cpu_now();
    int rc = lf_engine_generate(e, &req, s_gen_progress, &ph, NULL, &res);
    *wall = lf_bench_now() - t0, *cpu = s_cpu_now() - c0, *steps_cpu = ph.cpu_last - ph.cpu1;
    if (rc) {
        fprintf(stderr, "generate: %s\n", lf_engine_errstr(e));
        return rc;
    }
    *full = res.model_calls_full, *cached = res.model_calls_cached;
    lf_image_t im = {0};
    char why[128] = "";
    rc = lf_image_decode(res.images[0].png, res.images[0].png_len, NULL, &im, why, sizeof why);
    if (!rc && (im.width != (uint32_t)size || im.height != (uint32_t)size || im.channels != 3)) rc = LF_EFORMAT;
    if (!rc && !(*rgb = malloc((size_t)size * size * 3))) rc = LF_ENOMEM;
    if (!rc) memcpy(*rgb, im.pixels, (size_t)size * size * 3);
    if (rc) fprintf(stderr, "decode: %s\n", why);
    lf_image_clear(&im);
    lf_engine_result_clear(&res);
    return rc;
}

/* Timed whole generations with step caching on the full-size SD1.5 (issue
 * 18's speed of caching, measured rather than estimated from step times):
 * lf_engine_generate at 512x512, `steps` Euler steps, CFG 7, one image per
 * setting after a 2-step warm-up image (library and page-cache warm-up; each
 * job plans its graphs again, as a worker's would), uncached first. Wall and
 * process CPU seconds per image, the full / cached evaluations the engine
 * counted, speed-up against the uncached image and the PSNR against it (a
 * random model: the images are noise-like, so PSNR says how far the cached
 * path moved the pixels, not what a trained model's images would lose). */
static int s_gen(const char *ckpt, int threads, int steps, const char *precision, const char *pick) {
    char la[128], err[512] = "";
    FILE *f = fopen(ckpt, "rb");
    if (!f) {
        printf("SKIP gen: no %s (tests/reference/make_model_fixtures.py --full-f16)\n", ckpt);
        return 0;
    }
    fclose(f);
    lf_engine_opts_t eo = {.n_threads = threads, .precision = precision};
    lf_engine_t *e = NULL;
    if (lf_engine_new(&eo, &e, err, sizeof err)) return fprintf(stderr, "engine: %s\n", err), 1;
    if (lf_engine_load(e, ckpt, NULL)) {
        fprintf(stderr, "load: %s\n", lf_engine_errstr(e));
        lf_engine_destroy(&e);
        return 1;
    }
    const int size = 512;
    uint8_t *ref = NULL, *img = NULL;
    double wall, cpu, scpu, wall0 = 0, cpu0 = 0, scpu0 = 0;
    int full, cached, rc = s_gen_one(e, 2, size, NULL, &img, &wall, &cpu, &scpu, &full, &cached);
    free(img), img = NULL;
    s_loadavg(la, sizeof la);
    printf("\ngen: full-size SD1.5 (random weights) %s, %dx%d, %d steps euler/normal, CFG 7, %d threads, "
           "precision %s; warm-up (2 steps) %.1f s; load %s\n",
           ckpt, size, size, steps, threads, precision ? precision : "f32", wall, la);
    printf("| setting | full evals | cached evals | s per image (wall) | CPU s | CPU s, steps 2..N | vs none (wall) | "
           "vs none (CPU) | vs none (CPU, steps 2..N) | PSNR vs none dB | load after |\n"
           "|---|---|---|---|---|---|---|---|---|---|---|\n");
    fflush(stdout);
    for (int s = -1; s < N_SETTINGS && !rc; s++) {
        if (s >= 0 && !strstr(pick, (char[]){(char)('a' + s), 0})) continue;
        rc = s_gen_one(e, steps, size, s < 0 ? NULL : &s_settings[s].o, s < 0 ? &ref : &img, &wall, &cpu, &scpu,
                       &full, &cached);
        if (rc) break;
        if (s < 0) wall0 = wall, cpu0 = cpu, scpu0 = scpu;
        s_loadavg(la, sizeof la);
        char psnr[32] = "-";
        if (s >= 0) snprintf(psnr, sizeof psnr, "%.2f", lf_bench_psnr(ref, img, (size_t)size * size * 3));
        printf("| %s | %d | %d | %.1f | %.1f | %.1f | %.2fx | %.2fx | %.2fx | %s | %.*s |\n",
               s < 0 ? "none" : s_settings[s].label, full, cached, wall, cpu, scpu, wall0 / wall, cpu0 / cpu,
               scpu0 / scpu, psnr, 14, la);
        printf("BENCH cache_gen setting=\"%s\" full=%d cached=%d wall_s=%.2f cpu_s=%.2f steps_cpu_s=%.2f\n",
               s < 0 ? "none" : s_settings[s].label, full, cached, wall, cpu, scpu);
        fflush(stdout);
        free(img), img = NULL;
    }
    free(ref);
    lf_engine_destroy(&e);
    return rc;
}

int main(int argc, char **argv) {
    int n_cases = N_CASES, steps = 20, speed = 0, threads = 2, quality = 1, flops_only = 0, gen = 0;
    const char *pick = NULL; /* --pick LETTERS: only the settings a, b, ... of the list */
    const char *precision = NULL;
    const char *ckpt = getenv("LF_SD15_FULL");
    if (!ckpt) ckpt = LF_SOURCE_DIR "/tests/reference/out/sd15_full.safetensors";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--cases") && i + 1 < argc)
            n_cases = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--steps") && i + 1 < argc)
            steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--ckpt") && i + 1 < argc)
            ckpt = argv[++i];
        else if (!strcmp(argv[i], "--speed"))
            speed = 1;
        else if (!strcmp(argv[i], "--speed-only"))
            speed = 1, quality = 0;
        else if (!strcmp(argv[i], "--flops"))
            flops_only = 1;
        else if (!strcmp(argv[i], "--pick") && i + 1 < argc)
            pick = argv[++i];
        else if (!strcmp(argv[i], "--precision") && i + 1 < argc)
            precision = argv[++i];
        else if (!strcmp(argv[i], "--gen"))
            gen = 1, quality = 0;
        else {
            fprintf(stderr,
                    "usage: bench_cache [--cases N] [--steps N] [--threads N] [--flops] [--pick LETTERS] "
                    "[--precision f32|bf16] [--speed | --speed-only | --gen] [--ckpt PATH]\n");
            return 2;
        }
    }
    if (n_cases < 1 || n_cases > N_CASES) n_cases = N_CASES;
    int rc = quality ? s_quality(n_cases, steps, threads, flops_only, pick, precision) : 0;
    if (!rc && speed) rc = s_speed(ckpt, threads);
    /* Default: FBCache 0.08 with its 2/1 window and DeepCache interval 2
     * depth 0, the best of each kind at >= 30 dB in the quality table. */
    if (!rc && gen) rc = s_gen(ckpt, threads, steps, precision, pick ? pick : "dl");
    return rc ? 1 : 0;
}
