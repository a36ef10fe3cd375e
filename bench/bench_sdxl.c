/* bench_sdxl: a full-size SDXL base through lf_model on the CPU backend —
 * load (single SGM file or diffusers folder), text encoding of prompt +
 * negative (both encoders, pooled), ONE UNet step at 1024x1024 with CFG
 * (batch 2: x [2,4,128,128], ctx [2,77,2048], vec [2,1280+6]) and the VAE
 * decode of the 128x128 latent, whole and tiled — each with its wall time
 * and the peak RSS it reached (VmHWM reset before each phase; the load's
 * peak includes the checkpoint's mapped pages).
 *
 * Random weights (tests/reference/make_sdxl_fixtures.py --full): timing and
 * memory only, no numbers are checked. A missing checkpoint prints SKIP.
 *
 * With --torch PYTHON, the same comparison is made like for like, in one
 * run, each side in its own process so that each peak RSS is that process's
 * whole life (load included), one after the other (two SDXL models at once
 * would not fit on a 23 GiB machine; read the load averages printed):
 *   (a) the whole model as it is run: ours as the worker loads it
 *       (lf_model_load: both text encoders, UNet, VAE; f16 weights as stored,
 *       the SDXL VAE in f32), text encoding then two steps; PyTorch's
 *       StableDiffusionXLPipeline with every part from_pretrained in f32 (what
 *       CPU users run: diffusers refuses f16 pipelines on the CPU), its text
 *       encoders once, then a warm-up and a timed step
 *       (bench_unet_torch.py --diffusers DIR --pipeline);
 *   (b) the UNet alone: ours through lf_unet_new on the same file (a child
 *       forked before anything is loaded), PyTorch's UNet2DConditionModel
 *       alone in f32 (--unet-only); one step each (the first: plans), same
 *       inputs.
 * The step time ratio (second steps of (a)), both peak RSS ratios and the
 * largest output difference are printed side by side at the end.
 *
 * With --steps N (the whole-image mode, issue 20's few-step benchmark): one
 * 1024x1024 image instead — text, N Euler steps over the --schedule
 * (default trailing, SDXL-Lightning's) at --cfg (default 1: one UNet pass
 * per step, no negative prompt), the whole VAE decode — each step timed, and
 * the image time at --report-at M steps too (text + the first M steps +
 * decode, from the same run: a step costs the same whatever its sigma).
 * --torch then runs the same in diffusers (bench/bench_sdxl_image_torch.py:
 * EulerDiscreteScheduler with the same spacing, UNet, VAE, same token ids).
 *
 * Usage: bench_sdxl [--ckpt PATH] [--threads N] [--tile N] [--no-untiled] [--load-only]
 *                   [--no-vae] [--once] [--torch PYTHON [--diffusers DIR]]
 *                   [--steps N [--cfg C] [--schedule NAME] [--report-at M]]
 *   --once   one UNet step per side (the first, which plans; its peak RSS is
 *            the second's): for memory figures on a loaded machine
 *   --ckpt   default tests/reference/out/sdxl_full.safetensors (or the
 *            diffusers folder tests/reference/out/sdxl_full_diffusers)
 *   --tile   VAE tile in latent pixels for the tiled decode (default 64)
 * The machine may be shared: the load average is printed. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lf_backend.h"
#include "lf_model.h"
#include "lf_sampler.h"
#include "lf_schedule.h"
#include "lf_bench_util.h"
#include "lf_keymap.h"
#include "lf_model.h"
#include "lf_pool.h"
#include "lf_unet.h"
#include "lf_weights.h"

static void s_randn(float *x, size_t n, uint64_t seed) {
    uint64_t s = seed * 0x9E3779B97F4A7C15ULL + 1;
    for (size_t i = 0; i < n; i += 2) {
        double u[2];
        for (int k = 0; k < 2; k++) {
            s ^= s << 13, s ^= s >> 7, s ^= s << 17;
            u[k] = ((s >> 11) + 0.5) / 9007199254740992.0;
        }
        double r = sqrt(-2 * log(u[0]));
        x[i] = (float)(r * cos(2 * M_PI * u[1]));
        if (i + 1 < n) x[i + 1] = (float)(r * sin(2 * M_PI * u[1]));
    }
}

static int s_write(const char *dir, const char *name, const float *const *p, const size_t *n, int k) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    int ok = 1;
    for (int i = 0; i < k; i++) ok = ok && fwrite(p[i], 4, n[i], f) == n[i];
    return fclose(f) == 0 && ok ? 0 : -1;
}

static double s_loadavg(void) {
    double a = -1;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &a) != 1) a = -1;
        fclose(f);
    }
    return a;
}

/* A "key=value" number from a RESULT line, or -1. */
static double s_field(const char *line, const char *key) {
    const char *p = strstr(line, key);
    return p ? atof(p + strlen(key)) : -1;
}

static void s_report(const char *what, double s) {
    printf("  %-34s %8.2f s   peak RSS %7.0f MiB\n", what, s, lf_bench_status_kb("VmHWM") / 1024.0);
    fflush(stdout);
}

/* (b), our side: the UNet alone, loaded from the SGM file as lf_model_load
 * loads it (same key map and config, f16 weights as stored), one step at
 * 1024x1024 with CFG on the bench's inputs (x as below; ctx, pooled random:
 * the cost does not depend on them). Runs in a child forked before anything
 * is loaded; prints "RESULT ours_unet step_s=.. peak_rss_kb=.." on fd out. */
static int s_unet_alone(const char *ckpt, int threads, FILE *out) {
    char err[1024] = "";
    lf_backend_t *be = lf_backend_cpu_new(threads);
    lf_pool_t *pool = be ? lf_pool_new(be, 0) : NULL;
    lf_weights_t *w = NULL;
    lf_unet_t *u = NULL;
    json_t *meta = NULL;
    if (!pool) return fprintf(stderr, "bench_sdxl: no CPU backend\n"), 1;
    double t0 = lf_bench_now();
    int rc = lf_weights_open(&w, ckpt, err, sizeof err);
    lf_keymap_t km = {.w = w, .kind = LF_KEYMAP_LDM_UNET, .prefix = "model.diffusion_model."};
    if (!rc && lf_keymap_probe(&km)) rc = -1, snprintf(err, sizeof err, "%s: not an SGM single file", ckpt);
    const char *ms = !rc ? lf_weights_metadata(w, "lf.config") : NULL;
    json_error_t je;
    if (ms) meta = json_loads(ms, 0, &je);
    if (!rc) rc = lf_unet_new(&u, &km, meta ? json_object_get(meta, "unet") : NULL, be, pool, -1, err, sizeof err);
    lf_weights_destroy(&w);
    json_decref(meta);
    if (rc) return fprintf(stderr, "bench_sdxl: UNet alone: %s\n", err), 1;
    double load_s = lf_bench_now() - t0;
    const lf_unet_config_t *uc = lf_unet_config(u);
    /* The base's 6 time ids; the pooled width is what the added embedding leaves. */
    const int B = 2, T = 77, S = 128, P = uc->add_in - 6 * uc->add_time_dim, K = lf_unet_time_ids(u, P);
    const size_t nx = (size_t)B * 4 * S * S, nc = (size_t)B * T * uc->ctx_dim;
    float *x = malloc(nx * 4), *y = malloc(nx * 4), *ctx = malloc(nc * 4), *vec = malloc((size_t)B * (P + K) * 4);
    float t[2] = {500.0f, 500.0f};
    if (!x || !y || !ctx || !vec || K != 6) return fprintf(stderr, "bench_sdxl: UNet alone: not SDXL\n"), 1;
    s_randn(x, nx, 11);
    s_randn(ctx, nc, 12);
    s_randn(vec, (size_t)B * (P + K), 13);
    for (int b = 0; b < B; b++)
        for (int i = 0; i < K; i++) vec[(size_t)b * (P + K) + P + i] = i == 2 || i == 3 ? 0.0f : 1024.0f;
    t0 = lf_bench_now();
    rc = lf_unet_forward(u, x, B, S, S, t, ctx, T, vec, P, y);
    double step_s = lf_bench_now() - t0;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    if (rc) return fprintf(stderr, "bench_sdxl: UNet alone: forward failed (%d)\n", rc), 1;
    fprintf(out, "RESULT ours_unet load_s=%.2f step_s=%.4f peak_rss_kb=%ld\n", load_s, step_s, ru.ru_maxrss);
    fflush(out);
    free(x), free(y), free(ctx), free(vec);
    lf_unet_destroy(&u);
    lf_pool_destroy(&pool);
    lf_backend_destroy(&be);
    return 0;
}

/* Runs bench_unet_torch.py with extra args on the inputs in dir, echoing its
 * output indented; its RESULT line into result. 0 when it gave one. */
static int s_torch(const char *python, const char *folder, const char *dir, int S, int threads,
                   const char *extra, char *result, size_t rlen) {
    char cmd[8192], line[4096];
    snprintf(cmd, sizeof cmd,
             "'%s' '%s/bench/bench_unet_torch.py' --diffusers '%s' --io '%s' --size %d --threads %d "
             "--no-flops %s 2>&1",
             python, LF_SOURCE_DIR, folder, dir, S, threads, extra);
    printf("  PyTorch %s (%s), load average %.2f:\n", extra, python, s_loadavg());
    fflush(stdout);
    result[0] = 0;
    FILE *pp = popen(cmd, "r");
    while (pp && fgets(line, sizeof line, pp)) {
        printf("    %s", line);
        fflush(stdout);
        if (!strncmp(line, "RESULT torch", 12)) snprintf(result, rlen, "%s", line);
    }
    int st = pp ? pclose(pp) : -1;
    return st == 0 && result[0] ? 0 : -1;
}

/* ---- whole-image mode (--steps) ---------------------------------------- */

typedef struct {
    lf_model_t *m;
    const lf_schedule_t *sched;
    int batch; /* 1: no negative pass; 2: CFG */
    double cfg;
    const float *cond, *vec;
    float *xin, *out, t[2];
    double step_s[64];
    int calls;
} s_img_t;

static int s_img_denoise(void *ud, const float *x, float sigma, float *den, size_t n) {
    s_img_t *g = ud;
    double s = sigma, cin = 1.0 / sqrt(s * s + 1.0), t0 = lf_bench_now();
    g->t[0] = g->t[1] = (float)lf_schedule_sigma_to_t(g->sched, s);
    for (int b = 0; b < g->batch; b++)
        for (size_t k = 0; k < n; k++) g->xin[(size_t)b * n + k] = (float)(x[k] * cin);
    int rc = lf_model_denoise(g->m, g->xin, g->batch, 128, 128, g->t, g->cond, 77, g->vec, g->out);
    if (rc) return rc;
    for (size_t k = 0; k < n; k++) {
        double c = x[k] - s * g->out[k];
        if (g->batch == 2) c = (x[k] - s * g->out[n + k]) + g->cfg * (c - (x[k] - s * g->out[n + k]));
        den[k] = (float)c;
    }
    if (g->calls < 64) g->step_s[g->calls] = lf_bench_now() - t0;
    printf("  step %2d sigma %8.4f: %7.2f s\n", g->calls + 1, s, lf_bench_now() - t0);
    fflush(stdout);
    g->calls++;
    return 0;
}

/* One 1024x1024 image with `steps` Euler steps; returns 0 or 1. *text_s,
 * *dec_s and g->step_s get the phase times. */
static int s_image(lf_model_t *m, int steps, double cfg, lf_scheduler_t sk, double *text_s, double *dec_s,
                   double *step_s) {
    const lf_model_desc_t *d = lf_model_desc(m);
    const int B = cfg == 1.0 || cfg == 0.0 ? 1 : 2, T = 77, D = d->text_dim, P = d->pooled_dim,
              K = d->n_time_ids, S = 128;
    int32_t ids[2 * 77];
    /* The same ids as the CFG step above (prompt first, then the negative). */
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) ids[b * T + t] = t == 0 ? 49406 : t < 9 + b ? 320 + 37 * t + b : 49407;
    const size_t n = (size_t)4 * S * S;
    float *cond = malloc((size_t)B * T * D * 4), pooled[2 * 1280], *vec = malloc((size_t)B * (P + K) * 4);
    float *x = malloc(n * 4), *xin = malloc(B * n * 4), *out = malloc(B * n * 4);
    float *img = malloc((size_t)3 * 1024 * 1024 * 4);
    double *sig = malloc(((size_t)steps + 1) * sizeof *sig);
    if (!cond || !vec || !x || !xin || !out || !img || !sig || P > 1280 || steps > 64) return 1;
    double t0 = lf_bench_now();
    if (lf_model_encode_text(m, ids, NULL, B, 1, cond, pooled)) return 1;
    *text_s = lf_bench_now() - t0;
    s_report("text (both encoders)", *text_s);
    /* The conditional row first: s_img_denoise's out[0..n) is the cond pass. */
    for (int b = 0; b < B; b++) {
        memcpy(vec + (size_t)b * (P + K), pooled + (size_t)b * P, (size_t)P * 4);
        for (int i = 0; i < K; i++) vec[(size_t)b * (P + K) + P + i] = i == 2 || i == 3 ? 0.0f : 1024.0f;
    }
    lf_schedule_t sched;
    lf_schedule_init_sd15(&sched);
    if (lf_schedule_sigmas(&sched, sk, steps, sig)) return 1;
    s_randn(x, n, 5);
    for (size_t k = 0; k < n; k++) x[k] = (float)(x[k] * sig[0]);
    s_img_t g = {.m = m, .sched = &sched, .batch = B, .cfg = cfg, .cond = cond, .vec = vec, .xin = xin, .out = out};
    lf_sampler_opts_t so = lf_sampler_opts(s_img_denoise, &g);
    lf_bench_reset_hwm();
    int rc = lf_sampler_run(LF_SAMPLER_EULER, &so, sig, steps, x, n);
    if (rc) return fprintf(stderr, "bench_sdxl: sampling failed (%d)\n", rc), 1;
    memcpy(step_s, g.step_s, sizeof g.step_s);
    for (size_t k = 0; k < n; k++) x[k] /= d->scaling_factor;
    t0 = lf_bench_now();
    rc = lf_model_vae_decode(m, x, 1, S, S, 0, img);
    if (rc) return fprintf(stderr, "bench_sdxl: VAE decode failed (%d)\n", rc), 1;
    *dec_s = lf_bench_now() - t0;
    s_report("VAE decode 1024x1024, whole", *dec_s);
    free(cond), free(vec), free(x), free(xin), free(out), free(img), free(sig);
    return 0;
}

int main(int argc, char **argv) {
    const char *ckpt = LF_SOURCE_DIR "/tests/reference/out/sdxl_full.safetensors";
    const char *python = NULL, *folder = LF_SOURCE_DIR "/tests/reference/out/sdxl_full_diffusers";
    int threads = 0, tile = 64, untiled = 1, load_only = 0, vae = 1, once = 0, steps = 0, report_at = 0;
    double cfg = 1.0;
    const char *schedule = "trailing";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--ckpt") && i + 1 < argc) ckpt = argv[++i];
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--tile") && i + 1 < argc) tile = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--no-untiled")) untiled = 0;
        else if (!strcmp(argv[i], "--load-only")) load_only = 1;
        else if (!strcmp(argv[i], "--no-vae")) vae = 0;
        else if (!strcmp(argv[i], "--once")) once = 1;
        else if (!strcmp(argv[i], "--torch") && i + 1 < argc) python = argv[++i];
        else if (!strcmp(argv[i], "--diffusers") && i + 1 < argc) folder = argv[++i];
        else if (!strcmp(argv[i], "--steps") && i + 1 < argc) steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--cfg") && i + 1 < argc) cfg = atof(argv[++i]);
        else if (!strcmp(argv[i], "--schedule") && i + 1 < argc) schedule = argv[++i];
        else if (!strcmp(argv[i], "--report-at") && i + 1 < argc) report_at = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--ckpt PATH] [--threads N] [--tile N] [--no-untiled] [--load-only] "
                    "[--no-vae] [--once] [--torch PYTHON [--diffusers DIR]] [--steps N [--cfg C] [--schedule S] "
                    "[--report-at M]]\n",
                    argv[0]);
            return 2;
        }
    }
    struct stat sb;
    if (stat(ckpt, &sb) != 0) {
        printf("SKIP: %s absent (tests/reference/make_sdxl_fixtures.py --full)\n", ckpt);
        return 0;
    }
    double la[3] = {0};
    FILE *lf = fopen("/proc/loadavg", "r");
    if (lf) {
        if (fscanf(lf, "%lf %lf %lf", &la[0], &la[1], &la[2]) != 3) la[0] = -1;
        fclose(lf);
    }
    printf("bench_sdxl: %s, load average %.2f\n", ckpt, la[0]);
    /* (b) ours, the UNet alone: a child forked while this process holds
     * nothing, so that its peak RSS is the UNet's alone. */
    char unet_result[512] = "";
    if (python && *python && strcmp(python, "none") != 0) {
        int fd[2];
        fflush(stdout);
        if (S_ISDIR(sb.st_mode) || pipe(fd) != 0) {
            printf("  UNet alone: needs the single SGM file (--ckpt)\n");
        } else {
            pid_t pid = fork();
            if (pid == 0) {
                close(fd[0]);
                FILE *o = fdopen(fd[1], "w");
                _exit(o ? s_unet_alone(ckpt, threads, o) : 1);
            }
            close(fd[1]);
            FILE *in = fdopen(fd[0], "r");
            char line[512];
            while (in && fgets(line, sizeof line, in))
                if (!strncmp(line, "RESULT ours_unet", 16)) snprintf(unet_result, sizeof unet_result, "%s", line);
            if (in) fclose(in);
            int st = 0;
            if (pid > 0) waitpid(pid, &st, 0);
            if (unet_result[0])
                printf("  UNet alone (lf_unet_new, own process): load %.1f s, step (1st: plans) %.2f s, "
                       "peak RSS %.0f MiB, load average %.2f\n",
                       s_field(unet_result, "load_s="), s_field(unet_result, "step_s="),
                       s_field(unet_result, "peak_rss_kb=") / 1024.0, s_loadavg());
            else printf("  UNet alone: failed (status %d)\n", st);
        }
    }
    lf_backend_t *be = lf_backend_cpu_new(threads);
    if (!be) return fprintf(stderr, "bench_sdxl: no CPU backend\n"), 1;
    printf("  %s\n", lf_backend_describe(be));
    lf_model_opts_t opts = {.backend = be, .weight_type = -1};
    char err[1024] = "";
    lf_model_t *m = NULL;
    lf_bench_reset_hwm();
    double t0 = lf_bench_now();
    if (lf_model_load(ckpt, &opts, &m, err, sizeof err)) return fprintf(stderr, "bench_sdxl: %s\n", err), 1;
    s_report("load (f16 weights as stored)", lf_bench_now() - t0);
    printf("  RSS after load %.0f MiB\n", lf_bench_status_kb("VmRSS") / 1024.0);
    const lf_model_desc_t *d = lf_model_desc(m);
    printf("  family %s, text %d, pooled %d, time ids %d, VAE factor %g\n", lf_family_name(d->family),
           d->text_dim, d->pooled_dim, d->n_time_ids, d->scaling_factor);
    if (d->family != LF_FAMILY_SDXL) return fprintf(stderr, "bench_sdxl: not an SDXL checkpoint\n"), 1;
    if (load_only) {
        lf_model_destroy(&m);
        lf_backend_destroy(&be);
        return 0;
    }
    if (steps > 0) {
        lf_scheduler_t sk;
        if (steps > 64 || report_at > steps || lf_scheduler_parse(schedule, &sk))
            return fprintf(stderr, "bench_sdxl: --steps 1..64, --report-at <= steps, a known --schedule\n"), 2;
        double ts = 0, ds = 0, ss[64] = {0}, sum = 0, sum_at = 0;
        printf("  one 1024x1024 image: %d euler steps, %s, cfg %g, load average %.2f\n", steps, schedule, cfg,
               s_loadavg());
        if (s_image(m, steps, cfg, sk, &ts, &ds, ss)) return 1;
        for (int i = 0; i < steps; i++) sum += ss[i], sum_at += i < report_at ? ss[i] : 0;
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        long ours_peak = ru.ru_maxrss;
        lf_model_destroy(&m);
        lf_backend_destroy(&be);
        printf("RESULT ours steps=%d text_s=%.2f steps_s=%.2f decode_s=%.2f image_s=%.2f at=%d image_at_s=%.2f "
               "peak_rss_kb=%ld\n",
               steps, ts, sum, ds, ts + sum + ds, report_at, ts + sum_at + ds, ours_peak);
        fflush(stdout);
        if (!python || !*python || !strcmp(python, "none")) return 0;
        if (stat(folder, &sb) != 0) return printf("  SKIP PyTorch side: %s absent\n", folder), 0;
        char cmd[8192], line[4096], result[4096] = "";
        snprintf(cmd, sizeof cmd,
                 "'%s' '%s/bench/bench_sdxl_image_torch.py' --diffusers '%s' --steps %d --cfg %g "
                 "--spacing %s --threads %d --report-at %d 2>&1",
                 python, LF_SOURCE_DIR, folder, steps, cfg, sk == LF_SCHEDULER_TRAILING ? "trailing" : "linspace",
                 threads > 0 ? threads : (int)sysconf(_SC_NPROCESSORS_ONLN), report_at);
        printf("  PyTorch (%s), load average %.2f:\n", python, s_loadavg());
        fflush(stdout);
        FILE *pp = popen(cmd, "r");
        while (pp && fgets(line, sizeof line, pp)) {
            printf("    %s", line);
            fflush(stdout);
            if (!strncmp(line, "RESULT torch", 12)) snprintf(result, sizeof result, "%s", line);
        }
        int st = pp ? pclose(pp) : -1;
        if (st != 0 || !result[0]) return printf("  PyTorch side failed\n"), 1;
        double ti = s_field(result, "image_s="), tia = s_field(result, "image_at_s="),
               tsteps = s_field(result, "steps_s="), tp = s_field(result, "peak_rss_kb=");
        printf("\n== SDXL 1024x1024 image, euler %s cfg %g, lightfarm vs PyTorch, load average now %.2f ==\n",
               schedule, cfg, s_loadavg());
        printf("  %d steps: lightfarm %.1f s, PyTorch %.1f s: PyTorch / lightfarm = %.2f\n", steps,
               ts + sum + ds, ti, ti / (ts + sum + ds));
        if (report_at > 0)
            printf("  %d steps: lightfarm %.1f s, PyTorch %.1f s: PyTorch / lightfarm = %.2f\n", report_at,
                   ts + sum_at + ds, tia, tia / (ts + sum_at + ds));
        printf("  UNet steps alone: lightfarm %.1f s, PyTorch %.1f s (%.2f)\n", sum, tsteps, tsteps / sum);
        printf("  peak RSS: lightfarm %.0f MiB (f16 weights), PyTorch %.0f MiB (f32)\n", ours_peak / 1024.0,
               tp / 1024.0);
        return 0;
    }

    /* Text: prompt and negative chunks in one call (ids: BOS, words, EOS pad). */
    const int B = 2, T = 77, D = d->text_dim, P = d->pooled_dim, K = d->n_time_ids;
    int32_t ids[2 * 77];
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) ids[b * T + t] = t == 0 ? 49406 : t < 9 + b ? 320 + 37 * t + b : 49407;
    float *cond = malloc((size_t)B * T * D * 4), pooled[2 * 1280];
    if (!cond || P > 1280) return 1;
    lf_bench_reset_hwm();
    t0 = lf_bench_now();
    int rc = lf_model_encode_text(m, ids, NULL, B, 1, cond, pooled);
    if (rc) return fprintf(stderr, "bench_sdxl: text failed (%d)\n", rc), 1;
    s_report("text (2 chunks, both encoders)", lf_bench_now() - t0);

    /* One UNet step with CFG at 1024x1024. */
    const int S = 128;
    const size_t nx = (size_t)B * 4 * S * S;
    float *x = malloc(nx * 4), *out = malloc(nx * 4), *vec = malloc((size_t)B * (P + K) * 4);
    float t[2] = {500.0f, 500.0f};
    if (!x || !out || !vec) return 1;
    s_randn(x, nx, 11);
    for (int b = 0; b < B; b++) {
        memcpy(vec + (size_t)b * (P + K), pooled + (size_t)b * P, (size_t)P * 4);
        for (int i = 0; i < K; i++) vec[(size_t)b * (P + K) + P + i] = i == 2 || i == 3 ? 0.0f : 1024.0f;
    }
    lf_bench_reset_hwm();
    t0 = lf_bench_now();
    rc = lf_model_denoise(m, x, B, S, S, t, cond, T, vec, out);
    if (rc) return fprintf(stderr, "bench_sdxl: denoise failed (%d)\n", rc), 1;
    double our_step = lf_bench_now() - t0;
    s_report("UNet step 1024x1024, CFG (1st: plans)", our_step);
    if (!once) {
        t0 = lf_bench_now();
        rc = lf_model_denoise(m, x, B, S, S, t, cond, T, vec, out);
        if (rc) return fprintf(stderr, "bench_sdxl: denoise failed (%d)\n", rc), 1;
        our_step = lf_bench_now() - t0;
        s_report("UNet step 1024x1024, CFG (2nd)", our_step);
    }
    long our_step_hwm = lf_bench_status_kb("VmHWM");
    /* The PyTorch side's inputs and our output, for after our model is gone. */
    char dir[] = "/tmp/lf_bench_sdxl.XXXXXX";
    int with_torch = python && *python && strcmp(python, "none") != 0;
    if (with_torch && stat(folder, &sb) != 0) {
        printf("  SKIP PyTorch side: %s absent (make_sdxl_fixtures.py --full writes it)\n", folder);
        with_torch = 0;
    }
    if (with_torch) {
        float *pl = malloc((size_t)B * P * 4), *tid = malloc((size_t)B * 6 * 4);
        if (!pl || !tid || K != 6) return 1;
        for (int b = 0; b < B; b++) {
            memcpy(pl + (size_t)b * P, vec + (size_t)b * (P + K), (size_t)P * 4);
            memcpy(tid + (size_t)b * 6, vec + (size_t)b * (P + K) + P, 6 * 4);
        }
        const float *in[] = {x, t, cond, pl, tid};
        size_t nin[] = {nx, (size_t)B, (size_t)B * T * D, (size_t)B * P, (size_t)B * 6};
        const float *o1[] = {out};
        size_t no1[] = {nx};
        if (!mkdtemp(dir) || s_write(dir, "unet_in.bin", in, nin, 5) || s_write(dir, "unet_out.bin", o1, no1, 1)) {
            printf("  PyTorch side: cannot write its inputs under /tmp\n");
            with_torch = 0;
        }
        free(pl), free(tid);
    }

    /* VAE decode of one 128x128 latent: tiled, then (optionally) whole. */
    float *img = malloc((size_t)3 * 1024 * 1024 * 4);
    if (!img) return 1;
    for (size_t i = 0; i < (size_t)4 * S * S; i++) x[i] = x[i] / d->scaling_factor * 0.5f;
    lf_bench_reset_hwm();
    t0 = lf_bench_now();
    rc = vae ? lf_model_vae_decode(m, x, 1, S, S, tile, img) : 0;
    char what[64];
    snprintf(what, sizeof what, "VAE decode 1024x1024, tile %d", tile);
    if (rc) printf("  %s: failed (%d)\n", what, rc);
    else if (vae) s_report(what, lf_bench_now() - t0);
    if (vae && untiled) {
        lf_bench_reset_hwm();
        t0 = lf_bench_now();
        rc = lf_model_vae_decode(m, x, 1, S, S, 0, img);
        if (rc) printf("  VAE decode whole: failed (%d)\n", rc);
        else s_report("VAE decode 1024x1024, whole", lf_bench_now() - t0);
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("  whole run: peak RSS %.0f MiB (getrusage)\n", ru.ru_maxrss / 1024.0);
    free(cond), free(x), free(out), free(vec), free(img);
    lf_model_destroy(&m);
    lf_backend_destroy(&be);
    if (!with_torch) return 0;

    /* (a) and (b), PyTorch's side: each in its own process after ours. */
    const int nth = threads > 0 ? threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    char rp[4096], ru_[4096];
    int okp = s_torch(python, folder, dir, S, nth, once ? "--pipeline --reps 0" : "--pipeline --reps 1", rp, sizeof rp) == 0;
    int oku = s_torch(python, folder, dir, S, nth, "--unet-only --reps 0", ru_, sizeof ru_) == 0;
    char p2[4200];
    snprintf(p2, sizeof p2, "%s/unet_in.bin", dir), unlink(p2);
    snprintf(p2, sizeof p2, "%s/unet_out.bin", dir), unlink(p2);
    rmdir(dir);
    printf("\n== SDXL 1024x1024 UNet step with CFG, lightfarm vs PyTorch, like for like; load average now %.2f ==\n",
           s_loadavg());
    printf("  %-44s %14s %14s %8s\n", "", "lightfarm", "PyTorch", "ratio");
    if (okp) {
        double tt = s_field(rp, "median_s="), peak = s_field(rp, "peak_rss_kb=");
        printf("  %-44s %12.1f s %12.1f s %8.2f  (PyTorch / lightfarm)\n", once ? "(a) whole model: step (1st, plans)" : "(a) whole model: step (2nd)", our_step, tt,
               tt / our_step);
        printf("  %-44s %10.0f MiB %10.0f MiB %7.0f %%  (lightfarm / PyTorch)\n",
               "(a) whole model: peak RSS of the process", ru.ru_maxrss / 1024.0, peak / 1024.0,
               100.0 * ru.ru_maxrss / peak);
        printf("  %-44s %10.0f MiB %10.0f MiB\n", "(a) during the step (VmHWM)", our_step_hwm / 1024.0,
               s_field(rp, "step_hwm_kb=") / 1024.0);
        printf("  %-44s %.3g\n", "(a) output: max |diff| / max |output|", s_field(rp, "rel_err="));
    } else printf("  (a) PyTorch pipeline failed\n");
    if (oku && unet_result[0]) {
        double us = s_field(unet_result, "step_s="), uk = s_field(unet_result, "peak_rss_kb=");
        double tt = s_field(ru_, "median_s="), peak = s_field(ru_, "peak_rss_kb=");
        printf("  %-44s %12.1f s %12.1f s %8.2f  (PyTorch / lightfarm)\n", "(b) UNet alone: step (1st, plans)", us, tt,
               tt / us);
        printf("  %-44s %10.0f MiB %10.0f MiB %7.0f %%  (lightfarm / PyTorch)\n",
               "(b) UNet alone: peak RSS of the process", uk / 1024.0, peak / 1024.0, 100.0 * uk / peak);
        printf("  %-44s %.3g\n", "(b) output (ours whole model's step): rel.", s_field(ru_, "rel_err="));
    } else printf("  (b) UNet alone failed (ours %s, PyTorch %s)\n", unet_result[0] ? "ok" : "failed",
                  oku ? "ok" : "failed");
    return okp && oku && unet_result[0] ? 0 : 1;
}
