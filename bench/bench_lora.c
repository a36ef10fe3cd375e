/* bench_lora: switching LoRA sets on a resident full-size SD1.5 model
 * (lf_model_set_loras) beside a full model reload (lf_model_destroy +
 * lf_model_load), measured in the same run, and the memory a set costs.
 *
 * Sets: A = the real rank-4 SD1.5 LoRA (../shared/refdata/lora, 128 UNet
 * attention layers) at weight 1, B = the same file at 0.7 (another set: a
 * switch restores the 128 layers, then merges again). Timed: the first merge
 * (plain -> A), switches A -> B -> A, the same set again (reused), back to
 * the plain model, and a full reload. Memory: the host bytes the kept
 * originals take (lf_lora_patch_info_t.saved_bytes) and the RSS before and
 * after the first merge (/proc/self/statm).
 *
 * Checkpoint: --ckpt, else $LF_SD15_FULL, else tests/reference/out/
 * sd15_full.safetensors (make_model_fixtures.py --full); LoRA: --lora, else
 * $LF_REFDATA_DIR (default ../shared/refdata)/lora/sd15_diffusers_lora_rank4.
 * safetensors. Missing files print SKIP and exit 0. Times are medians of
 * --reps N (default 3). Usage: bench_lora [--ckpt P] [--lora P] [--reps N] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lf_error.h"
#include "lf_model.h"
#include "lf_bench_util.h"

#ifndef LF_SOURCE_DIR
#define LF_SOURCE_DIR "."
#endif

static double s_cpu(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double s_rss_mb(void)
{
    long pages = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &rss) != 2) rss = 0;
        fclose(f);
    }
    return (double)rss * (double)sysconf(_SC_PAGESIZE) / 1e6;
}

static int s_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double s_median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, s_cmp);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static int s_exists(const char *p)
{
    struct stat sb;
    return p && stat(p, &sb) == 0;
}

/* CPU seconds of the last s_set (the machine may be shared: wall time
 * includes waiting for a core). */
static double s_last_cpu;

static double s_set(lf_model_t *m, const lf_lora_use_t *u, size_t n, lf_lora_patch_info_t *info)
{
    char err[512];
    double t0 = lf_bench_now(), c0 = s_cpu();
    int rc = lf_model_set_loras(m, u, n, info, err, sizeof err);
    double dt = lf_bench_now() - t0;
    s_last_cpu = s_cpu() - c0;
    if (rc) {
        fprintf(stderr, "set_loras: %s\n", err);
        exit(1);
    }
    free(info->warnings);
    info->warnings = NULL;
    return dt;
}

int main(int argc, char **argv)
{
    char ck[4096] = "", lora[4096] = "";
    int reps = 3;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--ckpt") && i + 1 < argc) snprintf(ck, sizeof ck, "%s", argv[++i]);
        else if (!strcmp(argv[i], "--lora") && i + 1 < argc) snprintf(lora, sizeof lora, "%s", argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_lora [--ckpt P] [--lora P] [--reps N]\n");
            return 2;
        }
    }
    if (reps < 1) reps = 1;
    if (reps > 15) reps = 15;
    const char *env = getenv("LF_SD15_FULL");
    if (!ck[0]) snprintf(ck, sizeof ck, "%s", env && *env ? env : LF_SOURCE_DIR "/tests/reference/out/sd15_full.safetensors");
    const char *rd = getenv("LF_REFDATA_DIR");
    if (!lora[0])
        snprintf(lora, sizeof lora, "%s/lora/sd15_diffusers_lora_rank4.safetensors",
                 rd && *rd ? rd : LF_SOURCE_DIR "/../shared/refdata");
    if (!s_exists(ck) || !s_exists(lora)) {
        printf("SKIP: needs %s (make_model_fixtures.py --full) and %s\n", ck, lora);
        return 0;
    }
    double la[3];
    printf("bench_lora: %s\n  LoRA %s\n  load average %.2f\n", ck, lora, getloadavg(la, 3) == 3 ? la[0] : -1.0);
    char err[512];
    double rss0 = s_rss_mb(), t0 = lf_bench_now();
    lf_model_t *m = NULL;
    if (lf_model_load(ck, NULL, &m, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    double first_load = lf_bench_now() - t0, rss_model = s_rss_mb();
    lf_lora_use_t a = {.path = lora, .name = "A", .unet_weight = 1, .te_weight = 1};
    lf_lora_use_t b = {.path = lora, .name = "B", .unet_weight = 0.7, .te_weight = 0.7};
    lf_lora_patch_info_t info = {0};
    double merge[15], ab[15], ba[15], same[15], plain[15], reload[15], ab_cpu[15], reload_cpu[15];
    double rss_before = s_rss_mb();
    size_t layers = 0, saved = 0;
    double rss_after = 0;
    for (int r = 0; r < reps; r++) {
        merge[r] = s_set(m, &a, 1, &info);
        layers = info.layers, saved = info.saved_bytes;
        if (r == 0) rss_after = s_rss_mb();
        ab[r] = s_set(m, &b, 1, &info);
        ab_cpu[r] = s_last_cpu;
        ba[r] = s_set(m, &a, 1, &info);
        same[r] = s_set(m, &a, 1, &info);
        if (!info.reused) fprintf(stderr, "the same set was not reused\n");
        plain[r] = s_set(m, NULL, 0, &info);
    }
    for (int r = 0; r < reps; r++) {
        t0 = lf_bench_now();
        double c0 = s_cpu();
        lf_model_destroy(&m);
        if (lf_model_load(ck, NULL, &m, err, sizeof err)) {
            fprintf(stderr, "%s\n", err);
            return 1;
        }
        reload[r] = lf_bench_now() - t0;
        reload_cpu[r] = s_cpu() - c0;
    }
    double tm = s_median(merge, reps), tab = s_median(ab, reps), tba = s_median(ba, reps);
    double ts = s_median(same, reps), tp = s_median(plain, reps), tr = s_median(reload, reps);
    printf("  model: first load %.2f s, RSS %.0f MB (%.0f MB before)\n", first_load, rss_model, rss0);
    printf("  set A (%zu tensors merged, %.1f MB of originals kept; RSS %.0f -> %.0f MB, +%.1f MB)\n", layers,
           saved / 1e6, rss_before, rss_after, rss_after - rss_before);
    printf("  median of %d:\n", reps);
    printf("    plain -> A (first merge)   %8.3f s\n", tm);
    printf("    A -> B (restore + merge)   %8.3f s\n", tab);
    printf("    B -> A                     %8.3f s\n", tba);
    printf("    A -> A (same set, reused)  %8.6f s\n", ts);
    printf("    A -> plain (restore)       %8.3f s\n", tp);
    printf("    full model reload          %8.3f s\n", tr);
    double cab = s_median(ab_cpu, reps), cr = s_median(reload_cpu, reps);
    printf("  CPU time (this process): A -> B %.3f s, full reload %.3f s\n", cab, cr);
    printf("  ratio: full reload / LoRA switch = %.1fx wall (reload %.2f s vs A->B %.3f s), %.1fx CPU\n", tr / tab,
           tr, tab, cr / cab);
    lf_model_destroy(&m);
    return 0;
}
