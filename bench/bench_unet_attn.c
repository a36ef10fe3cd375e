/* bench_unet_attn: the full-size SD1.5 UNet step (512x512, CFG batch 2, the
 * inputs bench_unet uses) with the f32 attention's two forms side by side in
 * one process: one model on a backend made with LF_CPU_ATTN=sgemm (two
 * sgemm calls per query block and key tile), one on a default backend (the
 * register-blocked form), their steps alternating so that both see the same
 * load. Prints each step's wall and process CPU time, the median CPU-time
 * ratio and the largest difference between the two outputs (absolute, and
 * relative to the output's largest magnitude), so the new form is checked
 * against the old reference on the real network.
 *
 * Usage: bench_unet_attn --ckpt PATH [--reps N] [--threads N]
 * Weights as stored (f16 in an f16 checkpoint, mapped once by the page
 * cache for both models). Run with --threads 1 on a shared machine and read
 * CPU time. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lf_backend.h"
#include "lf_model.h"
#include "lf_bench_util.h"

enum { B = 2, C = 4, S = 64, L = 77, D = 768 };


static double s_cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int s_cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* A backend with LF_CPU_ATTN set to attn (NULL: unset) while it is made. */
static lf_backend_t *s_backend(int threads, const char *attn) {
    const char *was = getenv("LF_CPU_ATTN");
    char *saved = was ? strdup(was) : NULL;
    if (attn) setenv("LF_CPU_ATTN", attn, 1);
    else unsetenv("LF_CPU_ATTN");
    lf_backend_t *be = lf_backend_cpu_new(threads);
    if (saved) setenv("LF_CPU_ATTN", saved, 1);
    else unsetenv("LF_CPU_ATTN");
    free(saved);
    return be;
}

int main(int argc, char **argv) {
    const char *ckpt = getenv("LF_SD15_FULL");
    int reps = 2, threads = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--ckpt") && i + 1 < argc) ckpt = argv[++i];
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else return fprintf(stderr, "usage: %s --ckpt PATH [--reps N] [--threads N]\n", argv[0]), 2;
    }
    if (!ckpt) {
        printf("SKIP bench_unet_attn: no --ckpt (full-size SD1.5)\n");
        return 0;
    }
    if (reps < 1) reps = 1;
    if (reps > 32) reps = 32;
    FILE *la = fopen("/proc/loadavg", "r");
    char load[64] = "?";
    if (la && fgets(load, sizeof load, la)) load[strcspn(load, "\n")] = 0;
    if (la) fclose(la);
    printf("bench_unet_attn: SD1.5 UNet 512x512 CFG step, f32 attention sgemm form vs register-blocked form, "
           "%d threads\n  checkpoint %s\n  load average %s\n",
           threads, ckpt, load);
    const char *names[2] = {"sgemm form", "blocked form"};
    lf_backend_t *be[2] = {s_backend(threads, "sgemm"), s_backend(threads, "blocked")};
    lf_model_t *m[2] = {NULL, NULL};
    char err[1024] = "";
    for (int i = 0; i < 2; i++) {
        lf_model_opts_t opts = {.backend = be[i], .weight_type = -1};
        if (!be[i] || lf_model_load(ckpt, &opts, &m[i], err, sizeof err))
            return fprintf(stderr, "bench_unet_attn: %s\n", err), 1;
    }
    const size_t nx = (size_t)B * C * S * S, nc = (size_t)B * L * D;
    float *x = malloc(nx * 4), *cond = malloc(nc * 4), *out[2] = {malloc(nx * 4), malloc(nx * 4)};
    float t[B] = {500.0f, 500.0f};
    if (!x || !cond || !out[0] || !out[1]) return fprintf(stderr, "bench_unet_attn: out of memory\n"), 1;
    lf_bench_randn(x, nx, 11), lf_bench_randn(cond, nc, 12);
    for (int i = 0; i < 2; i++) /* warm-up: plans memory */
        if (lf_model_denoise(m[i], x, B, S, S, t, cond, L, NULL, out[i]))
            return fprintf(stderr, "bench_unet_attn: denoise failed\n"), 1;
    double cpu[2][32], ratio[32];
    for (int r = 0; r < reps; r++) {
        printf("  step %d/%d", r + 1, reps);
        for (int i = 0; i < 2; i++) {
            double w0 = lf_bench_now(), c0 = s_cpu_s();
            if (lf_model_denoise(m[i], x, B, S, S, t, cond, L, NULL, out[i]))
                return fprintf(stderr, "bench_unet_attn: denoise failed\n"), 1;
            cpu[i][r] = s_cpu_s() - c0;
            printf("  %s %.2f s (cpu %.2f s)", names[i], lf_bench_now() - w0, cpu[i][r]);
            fflush(stdout);
        }
        ratio[r] = cpu[0][r] / cpu[1][r];
        printf("\n");
    }
    double dmax = 0, omax = 0;
    for (size_t i = 0; i < nx; i++)
        dmax = fmax(dmax, fabs((double)out[1][i] - out[0][i])), omax = fmax(omax, fabs((double)out[0][i]));
    for (int i = 0; i < 2; i++) qsort(cpu[i], (size_t)reps, sizeof cpu[i][0], s_cmp);
    qsort(ratio, (size_t)reps, sizeof ratio[0], s_cmp);
    int h = reps / 2;
    double med0 = reps % 2 ? cpu[0][h] : 0.5 * (cpu[0][h - 1] + cpu[0][h]);
    double med1 = reps % 2 ? cpu[1][h] : 0.5 * (cpu[1][h - 1] + cpu[1][h]);
    double mr = reps % 2 ? ratio[h] : 0.5 * (ratio[h - 1] + ratio[h]);
    la = fopen("/proc/loadavg", "r");
    if (la && fgets(load, sizeof load, la)) load[strcspn(load, "\n")] = 0;
    if (la) fclose(la);
    printf("  median step CPU time: sgemm form %.2f s, blocked form %.2f s; pairwise ratio %.3f\n", med0, med1, mr);
    printf("  output: max |blocked - sgemm| %.3e, max |sgemm| %.3e, relative %.3e\n", dmax, omax,
           omax > 0 ? dmax / omax : 0.0);
    printf("  load average after %s\n", load);
    for (int i = 0; i < 2; i++) lf_model_destroy(&m[i]), lf_backend_destroy(&be[i]);
    free(x), free(cond), free(out[0]), free(out[1]);
    return 0;
}
