/* bench_upscale: a full-size RealESRGAN x4plus (RRDBNet, 64 features, 23
 * blocks, growth 32, x4; random weights in Real-ESRGAN's .pth layout)
 * through lf_upscaler on the CPU backend, beside spandrel 0.4 on PyTorch
 * (bench_upscale_torch.py, run as a child in the same run on the same
 * weights and inputs):
 *   - 64x64 -> 256x256 in one run: median of --reps after a warm-up;
 *   - 256x256 -> 1024x1024 in tiles (--tile 160, --overlap 32: 2x2 tiles),
 *     one run; PyTorch runs it untiled, so the difference printed is what
 *     the seams cost on this (random) network. --size 512 makes it
 *     512x512 -> 2048x2048 (issue 15's benchmark; PyTorch needs ~8 GB
 *     untiled there: run it under flock /tmp/lf-bigmem.lock).
 * Printed: times, the ratio PyTorch / lightfarm, peak RSS of each process
 * (ru_maxrss, load included), the largest relative output difference, and
 * the load average before and after.
 *
 * Weights: --weights PATH, else bench_upscale_x4plus.pth in the current
 * folder, written on first use by bench_upscale_torch.py --write. Python:
 * --torch PYTHON (or $LF_BENCH_TORCH; "none" skips the comparison), else
 * tests/reference/.venv-upscale/bin/python when present, else
 * /work/venv-ref/bin/python. Without weights and without Python it prints
 * SKIP and exits 0.
 *
 * Usage: bench_upscale [--weights PATH] [--reps N] [--threads N]
 *                      [--tile N] [--overlap N] [--size N] [--torch PYTHON|none] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lf_backend.h"
#include "lf_upscaler.h"
#include "lf_bench_util.h"

#ifndef LF_SOURCE_DIR
#define LF_SOURCE_DIR "."
#endif

static int s_exists(const char *p) {
    struct stat sb;
    return p && stat(p, &sb) == 0;
}

static double s_load1(void) {
    double l = -1;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f && fscanf(f, "%lf", &l) != 1) l = -1;
    if (f) fclose(f);
    return l;
}

static int s_cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void s_image(float *x, int h, int w, unsigned seed) {
    for (int i = 0; i < 3 * h * w; i++) {
        seed = seed * 1664525u + 1013904223u;
        x[i] = (float)(seed >> 8) / 16777216.0f;
    }
}

static int s_write(const char *dir, const char *name, const float *v, size_t n) {
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    if (!f) return -1;
    size_t k = fwrite(v, sizeof *v, n, f);
    return fclose(f) == 0 && k == n ? 0 : -1;
}

int main(int argc, char **argv) {
    const char *weights = NULL, *py = getenv("LF_BENCH_TORCH");
    setvbuf(stdout, NULL, _IOLBF, 0);
    int reps = 3, threads = 0, tile = 160, overlap = 32, S = 256;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--weights") && v) weights = v, i++;
        else if (!strcmp(a, "--reps") && v) reps = atoi(v), i++;
        else if (!strcmp(a, "--threads") && v) threads = atoi(v), i++;
        else if (!strcmp(a, "--tile") && v) tile = atoi(v), i++;
        else if (!strcmp(a, "--overlap") && v) overlap = atoi(v), i++;
        else if (!strcmp(a, "--torch") && v) py = v, i++;
        else if (!strcmp(a, "--size") && v) S = atoi(v), i++;
        else {
            fprintf(stderr, "usage: %s [--weights PATH] [--reps N] [--threads N] [--tile N] "
                            "[--overlap N] [--size N] [--torch PYTHON|none]\n", argv[0]);
            return 2;
        }
    }
    if (reps < 1) reps = 1;
    if (S < 16 || S > 4096) S = 256;
    const int S4 = 4 * S;
    if (!py) {
        py = LF_SOURCE_DIR "/tests/reference/.venv-upscale/bin/python";
        if (!s_exists(py)) py = "/work/venv-ref/bin/python";
        if (!s_exists(py)) py = "none";
    }
    const int use_torch = strcmp(py, "none") != 0;
    char cmd[4096];
    if (!weights) {
        weights = "bench_upscale_x4plus.pth";
        if (!s_exists(weights)) {
            if (!use_torch) {
                printf("SKIP: no %s and no Python to write it\n", weights);
                return 0;
            }
            snprintf(cmd, sizeof cmd, "'%s' '%s/bench/bench_upscale_torch.py' --write '%s'", py,
                     LF_SOURCE_DIR, weights);
            if (system(cmd) != 0 || !s_exists(weights)) {
                printf("SKIP: could not write %s\n", weights);
                return 0;
            }
        }
    }
    const double load0 = s_load1();
    lf_backend_t *be = lf_backend_cpu_new(threads);
    lf_pool_t *pool = be ? lf_pool_new(be, 0) : NULL;
    lf_upscaler_t *u = NULL;
    char err[512] = "";
    double t0 = lf_bench_now();
    int rc = pool ? lf_upscaler_new(&u, weights, be, pool, 0 /* f32 */, err, sizeof err) : -1;
    if (rc) {
        fprintf(stderr, "load: %s\n", err);
        return 1;
    }
    const double load_s = lf_bench_now() - t0;
    const lf_upscaler_info_t *I = lf_upscaler_info(u);
    printf("model: %s/%s x%d nf %d nb %d gc %d, %lld weights, loaded in %.2f s; backend %s\n",
           lf_upscaler_arch_name(I->arch), lf_upscaler_layout_name(I->layout), I->scale, I->nf,
           I->nb, I->gc, (long long)I->params, load_s, lf_backend_describe(be));
    float *x64 = malloc(3 * 64 * 64 * sizeof *x64), *y64 = malloc(3 * 256 * 256 * sizeof *y64);
    float *x256 = malloc(3 * (size_t)S * S * sizeof *x256);
    float *y256 = malloc(3 * (size_t)S4 * S4 * sizeof *y256);
    s_image(x64, 64, 64, 1);
    s_image(x256, S, S, 2);
    double *ts = calloc((size_t)reps, sizeof *ts);
    rc = lf_upscaler_run(u, x64, 64, 64, y64); /* warm-up: plans the graph */
    for (int r = 0; r < reps && !rc; r++) {
        t0 = lf_bench_now();
        rc = lf_upscaler_run(u, x64, 64, 64, y64);
        ts[r] = lf_bench_now() - t0;
    }
    const size_t peak64 = lf_upscaler_peak_bytes(u);
    t0 = lf_bench_now();
    if (!rc) rc = lf_upscaler_upscale(u, x256, S, S, tile, overlap, y256, NULL, NULL);
    const double s256 = lf_bench_now() - t0;
    const size_t peak256 = lf_upscaler_peak_bytes(u);
    if (rc) {
        fprintf(stderr, "run: error %d: %s\n", rc, lf_backend_errstr(be));
        return 1;
    }
    qsort(ts, (size_t)reps, sizeof *ts, s_cmp);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    const long our_rss = ru.ru_maxrss;
    const double gflop64 = 146.86; /* analytic: conv MACs x 2 (docs/PERFORMANCE.md) */
    printf("lightfarm 64->256: median %.3f s (min %.3f, %d reps), %.1f GFLOP/s; graph %.0f MiB\n",
           ts[reps / 2], ts[0], reps, gflop64 / ts[reps / 2], (double)peak64 / 1048576.0);
    printf("lightfarm %d->%d (tile %d, overlap %d; 0: one run): %.2f s; graph %.0f MiB; "
           "peak RSS %ld MiB\n",
           S, S4, tile, overlap, s256, (double)peak256 / 1048576.0, our_rss / 1024);
    lf_upscaler_destroy(&u);
    lf_pool_destroy(&pool);
    lf_backend_destroy(&be);
    double tm = NAN, tmin = NAN, t256 = NAN, r64 = NAN, r256 = NAN;
    long trss = 0;
    if (use_torch) {
        char dir[] = "/tmp/bench_upscale.XXXXXX";
        if (!mkdtemp(dir) || s_write(dir, "x64.bin", x64, 3 * 64 * 64) ||
            s_write(dir, "x256.bin", x256, 3 * (size_t)S * S) ||
            s_write(dir, "y64.bin", y64, 3 * 256 * 256) ||
            s_write(dir, "y256.bin", y256, 3 * (size_t)S4 * S4)) {
            fprintf(stderr, "cannot write inputs to %s\n", dir);
            return 1;
        }
        snprintf(cmd, sizeof cmd,
                 "'%s' '%s/bench/bench_upscale_torch.py' --weights '%s' --io '%s' --reps %d "
                 "--threads %d --size %d",
                 py, LF_SOURCE_DIR, weights, dir, reps,
                 threads > 0 ? threads : (int)sysconf(_SC_NPROCESSORS_ONLN), S);
        FILE *p = popen(cmd, "r");
        char line[1024];
        while (p && fgets(line, sizeof line, p)) {
            fputs(line, stdout);
            if (!strncmp(line, "RESULT torch", 12))
                sscanf(line, "RESULT torch s64_median=%lf s64_min=%lf s256=%lf load_s=%*f "
                             "peak_rss_kb=%ld rel64=%lf rel256=%lf",
                       &tm, &tmin, &t256, &trss, &r64, &r256);
        }
        if (p) pclose(p);
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
        printf("PyTorch (spandrel) 64->256: median %.3f s (min %.3f); %d->%d untiled: %.2f s; "
               "peak RSS %ld MiB\n", tm, tmin, S, S4, t256, trss / 1024);
        printf("speed-up (PyTorch / lightfarm): 64->256 %.2fx, %d->%d %.2fx\n",
               tm / ts[reps / 2], S, S4, t256 / s256);
        printf("difference (max |d| / max |ref|): 64->256 %.3g, %d->%d ours (tiled) vs "
               "untiled %.3g\n",
               r64, S, S4, r256);
    }
    printf("load average %.2f -> %.2f\n", load0, s_load1());
    printf("BENCH upscale_x4plus size=%d s64=%.4f s256=%.3f tile=%d torch_s64=%.4f torch_s256=%.3f "
           "rss_mib=%ld torch_rss_mib=%ld rel64=%.3g rel256=%.3g\n",
           S, ts[reps / 2], s256, tile, tm, t256, our_rss / 1024, trss / 1024, r64, r256);
    free(x64), free(y64), free(x256), free(y256), free(ts);
    return 0;
}
