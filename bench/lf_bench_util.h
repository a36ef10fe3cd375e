/* lf_bench_util: what every benchmark in bench/ measures with — a monotonic
 * clock, this process's memory figures from /proc/self/status and image
 * distances (PSNR, SSIM), fixed inputs (normal deviates, the quality
 * benches' prompt/seed pairs). Header
 * only; each bench is one translation unit. */
#ifndef LF_BENCH_UTIL_H
#define LF_BENCH_UTIL_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Seconds on the monotonic clock. */
static inline double lf_bench_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* A "Field:   N kB" line of /proc/self/status (VmRSS, VmHWM), or -1. */
static inline long lf_bench_status_kb(const char *field) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    size_t n = strlen(field);
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, field, n) && line[n] == ':') v = atol(line + n + 1);
    if (f) fclose(f);
    return v;
}

/* Resets VmHWM to the current RSS, so a later VmHWM is the peak of what ran
 * in between. 0 on success. */
static inline int lf_bench_reset_hwm(void) {
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (!f) return -1;
    int ok = fputs("5", f) >= 0;
    return fclose(f) == 0 && ok ? 0 : -1;
}

/* One line for a phase that began at t0: its wall time, GFLOP/s when
 * flops > 0, the peak RSS since the last lf_bench_reset_hwm and the RSS now. */
static inline void lf_bench_phase(const char *what, double t0, double flops) {
    double s = lf_bench_now() - t0;
    printf("%-22s %8.2f s", what, s);
    if (flops > 0) printf("  %7.1f GFLOP/s", flops / s * 1e-9);
    printf("  peak RSS %6.2f GiB  (RSS now %.2f GiB)\n", lf_bench_status_kb("VmHWM") / 1048576.0,
           lf_bench_status_kb("VmRSS") / 1048576.0);
}

/* PSNR of two 8-bit images of n bytes (peak 255); identical: 99 dB. */
static inline double lf_bench_psnr(const uint8_t *a, const uint8_t *b, size_t n) {
    double se = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - b[i];
        se += d * d;
    }
    if (se == 0) return 99.0; /* identical: reported as 99 dB */
    return 10.0 * log10(255.0 * 255.0 / (se / (double)n));
}

/* Mean SSIM of the luma (BT.601) over 8x8 windows, stride 4. */
static inline double lf_bench_ssim(const uint8_t *a, const uint8_t *b, int w, int h) {
    const double c1 = (0.01 * 255) * (0.01 * 255), c2 = (0.03 * 255) * (0.03 * 255);
    double sum = 0;
    int nw = 0;
    for (int y0 = 0; y0 + 8 <= h; y0 += 4)
        for (int x0 = 0; x0 + 8 <= w; x0 += 4) {
            double ma = 0, mb = 0, va = 0, vb = 0, cov = 0;
            for (int y = y0; y < y0 + 8; y++)
                for (int x = x0; x < x0 + 8; x++) {
                    const uint8_t *p = a + ((size_t)y * w + x) * 3, *q = b + ((size_t)y * w + x) * 3;
                    double la = 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2];
                    double lb = 0.299 * q[0] + 0.587 * q[1] + 0.114 * q[2];
                    ma += la, mb += lb, va += la * la, vb += lb * lb, cov += la * lb;
                }
            ma /= 64, mb /= 64;
            va = va / 64 - ma * ma, vb = vb / 64 - mb * mb, cov = cov / 64 - ma * mb;
            sum += ((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma * ma + mb * mb + c1) * (va + vb + c2));
            nw++;
        }
    return nw ? sum / nw : 1.0;
}

/* The 20 prompt/seed pairs the built-in model's quality benches use
 * (bench_cache, bench_precision; eval_shapes.py's). */
#define LF_BENCH_N_CASES 20
typedef struct {
    const char *prompt;
    unsigned seed;
} lf_bench_case_t;
static const lf_bench_case_t lf_bench_cases[LF_BENCH_N_CASES] = {
    {"a medium cyan star in the center on an orange background", 2000},
    {"an orange triangle on a pink background", 2001},
    {"a large green triangle at the bottom on a cyan background", 2002},
    {"an orange triangle on a brown background", 2003},
    {"a small yellow star in the bottom left on a cyan background", 2004},
    {"a blue star on a gray background", 2005},
    {"a small green circle in the bottom right on a pink background", 2006},
    {"a gray circle on a green background", 2007},
    {"a large white circle on the right on a yellow background", 2008},
    {"a white star on a gray background", 2009},
    {"a large white square in the bottom left on a black background", 2010},
    {"a cyan star on a black background", 2011},
    {"a small brown star in the bottom left on a red background", 2012},
    {"a brown circle on a blue background", 2013},
    {"a medium black star on the left on a green background", 2014},
    {"an orange circle on a brown background", 2015},
    {"a small yellow circle at the top on a pink background", 2016},
    {"a red square on a cyan background", 2017},
    {"a medium green square on the left on an orange background", 2018},
    {"a cyan circle on a yellow background", 2019},
};

/* Normal deviates from a fixed LCG (Box-Muller): the same inputs every run. */
static inline void lf_bench_randn(float *p, size_t n, uint32_t seed) {
    uint32_t x = seed;
    for (size_t i = 0; i < n; i += 2) {
        x = x * 1664525u + 1013904223u;
        double u1 = ((x >> 8) + 1.0) / 16777217.0;
        x = x * 1664525u + 1013904223u;
        double u2 = (x >> 8) / 16777216.0;
        double r = sqrt(-2.0 * log(u1));
        p[i] = (float)(r * cos(2 * M_PI * u2));
        if (i + 1 < n) p[i + 1] = (float)(r * sin(2 * M_PI * u2));
    }
}

#endif
