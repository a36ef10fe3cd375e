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
 * --reps N (default 3).
 *
 * --torch PYTHON: then diffusers on the same checkpoint and file, after our
 * model is released (bench/bench_lora_torch.py: set_adapters, unfuse +
 * set_adapters + fuse, unload + load + fuse), with the ratios to our switch.
 * --sdxl CK --sdxl-lora P: the same switch timings on a full-size SDXL (the
 * random one of make_sdxl_fixtures.py --full) with an SDXL LoRA
 * (make_lora_full_reference.py --sdxl-lora: rank 8, UNet and both encoders).
 * --keep-mb A,B,..: the switch timings once per LF_LORA_KEEP_MB value
 * (default "0,unlimited": plain layers read again from the checkpoint file,
 * then every original copied), each with its own model load; the RSS after
 * the first merge and after a switch is printed for each.
 * --delta RANK: no model; ΔW of a rank-RANK LoRA on SDXL-sized layers, the
 * scalar loop against the backend GEMM (s_delta_bench).
 * Usage: bench_lora [--ckpt P] [--lora P] [--reps N] [--torch PY]
 *                   [--sdxl CK --sdxl-lora P] [--keep-mb A,B,..]
 *                   [--delta RANK [--threads N]] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lf_backend.h"
#include "lf_error.h"
#include "lf_lora.h"
#include "lf_lora_patch.h"
#include "lf_model.h"
#include "lf_ops.h"
#include "lf_pool.h"
#include "lf_safetensors.h"
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

/* ---- --delta: ΔW of a big LoRA, the scalar loop against the backend GEMM ---- */

/* SDXL's UNet (the layers' shapes; no weights needed). */
static const lf_unet_config_t s_sdxl_unet = {
    .in_ch = 4, .out_ch = 4, .levels = 3, .layers = 2, .ch = {320, 640, 1280},
    .attn = {0, 2, 10}, .up_attn = {10, 2, 0}, .heads = {5, 10, 20}, .mid_attn = 10,
    .mid_heads = 20, .groups = 32, .eps = 1e-5f, .ctx_dim = 2048, .linear_proj = 1,
    .temb_in = 320, .temb_dim = 1280, .flip_sin_to_cos = 1, .freq_shift = 0, .add_in = 2816,
    .add_time_dim = 256};

/* Times ΔW for a rank-`rank` LoRA on the Linear layers of SDXL's first two
 * 1280-wide transformer blocks (down_blocks.2.attentions.0: q/k/v/out
 * 1280², cross-attention k/v 1280x2048, feed-forward 10240x1280 and
 * 1280x5120; 20 layers, 73 M weights): lf_lora_delta (the scalar f64 loop,
 * one core: how every ΔW was made before) against lf_lora_lowrank + one
 * MATMUL of the CPU backend's op table (OpenBLAS sgemm on `threads`
 * threads: what lf_lora_patch does now for plain low-rank layers), the
 * two results compared; then the whole lf_lora_patch_set of that LoRA into
 * f16 weights of those shapes. Medians of reps. */
static int s_delta_bench(int rank, int threads, int reps)
{
    lf_lora_targets_t *tg = lf_lora_targets_new();
    if (!tg || lf_lora_targets_add_unet(tg, &s_sdxl_unet)) return 1;
    char path[] = "/tmp/bench_lora_delta_XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) return 1;
    close(fd);
    /* The LoRA file: kohya names, f16 factors, alpha = rank. */
    enum { MAXL = 32 };
    lf_tensor_info_t ti[3 * MAXL];
    char names[3 * MAXL][192]; /* mod (< 160) + ".lora_down.weight" */
    uint16_t *bufs[2 * MAXL];
    uint16_t alpha_h[MAXL];
    size_t nt = 0, nl = 0;
    int64_t macs = 0;
    uint32_t seed = 12345;
    for (size_t i = 0; i < lf_lora_targets_count(tg) && nl < MAXL; i++) {
        const lf_lora_target_t *g = lf_lora_targets_at(tg, i);
        if (g->ndim != 2 || !strstr(g->name, "down_blocks.2.attentions.0.transformer_blocks.") ||
            (!strstr(g->name, "blocks.0.") && !strstr(g->name, "blocks.1.")))
            continue;
        char mod[160];
        snprintf(mod, sizeof mod, "lora_unet_%s", g->name + 5);
        mod[strlen(mod) - 7] = '\0'; /* ".weight" */
        for (char *c = mod; *c; c++)
            if (*c == '.') *c = '_';
        const int64_t O = g->shape[0], I = g->shape[1];
        for (int k = 0; k < 2; k++) {
            int64_t n = k ? O * rank : rank * I;
            uint16_t *b = bufs[2 * nl + k] = malloc((size_t)n * 2);
            float f;
            for (int64_t j = 0; j < n; j++) {
                seed = seed * 1664525u + 1013904223u;
                f = ((float)(seed >> 8) / 16777216.0f - 0.5f) * 0.02f;
                lf_type_from_f32(LF_TYPE_F16, &f, &b[j], 1);
            }
            snprintf(names[nt], sizeof names[nt], "%s.%s", mod, k ? "lora_up.weight" : "lora_down.weight");
            ti[nt] = (lf_tensor_info_t){.name = names[nt], .dtype = LF_DTYPE_F16, .ndim = 2,
                                        .shape = {k ? O : rank, k ? rank : I},
                                        .strides = {k ? rank : I, 1}, .data = b, .nbytes = (size_t)n * 2};
            nt++;
        }
        float a = (float)rank;
        lf_type_from_f32(LF_TYPE_F16, &a, &alpha_h[nl], 1);
        snprintf(names[nt], sizeof names[nt], "%s.alpha", mod);
        ti[nt] = (lf_tensor_info_t){.name = names[nt], .dtype = LF_DTYPE_F16, .ndim = 0,
                                    .data = &alpha_h[nl], .nbytes = 2};
        nt++;
        macs += O * I * rank;
        nl++;
    }
    int rc = lf_safetensors_write(path, ti, nt, NULL, 0);
    for (size_t i = 0; i < 2 * nl; i++) free(bufs[i]);
    char err[512] = "";
    lf_lora_t *l = NULL;
    if (rc || lf_lora_open(&l, path, tg, err, sizeof err)) {
        fprintf(stderr, "delta bench: %s %s\n", lf_strerror(rc), err);
        return 1;
    }
    lf_backend_t *be = lf_backend_cpu_new(threads);
    int64_t maxn = 0, maxr = 0;
    for (size_t i = 0; i < lf_lora_count(l); i++) {
        const lf_lora_layer_t *y = lf_lora_at(l, i);
        if (y->numel > maxn) maxn = y->numel;
        int64_t rr = (y->target->shape[0] + y->numel / y->target->shape[0]) * rank;
        if (rr > maxr) maxr = rr;
    }
    float *d0 = malloc((size_t)maxn * 4), *d1 = malloc((size_t)maxn * 4), *fac = malloc((size_t)maxr * 4);
    double t_scalar[15], t_gemm[15], t_patch[15], c_patch[15], worst = 0;
    for (int r = 0; r < reps; r++) {
        t_scalar[r] = t_gemm[r] = 0;
        for (size_t i = 0; i < lf_lora_count(l); i++) {
            const lf_lora_layer_t *y = lf_lora_at(l, i);
            const int64_t O = y->target->shape[0], C = y->numel / O;
            double t0 = lf_bench_now();
            if (lf_lora_delta(l, i, d0, err, sizeof err)) return 1;
            double t1 = lf_bench_now();
            float *up = fac, *down = fac + O * rank;
            if (lf_lora_lowrank(l, i, up, down)) return 1;
            lf_tensor_t a = lf_tensor_make(LF_TYPE_F32, 2, (const int64_t[]){rank, O}, up);
            lf_tensor_t bd = lf_tensor_make(LF_TYPE_F32, 2, (const int64_t[]){C, rank}, down);
            lf_tensor_t b = lf_tensor_transpose(&bd);
            lf_tensor_t d = lf_tensor_make(LF_TYPE_F32, 2, (const int64_t[]){C, O}, d1);
            if (lf_op_matmul(be, &d, &a, &b, NULL) || lf_backend_sync(be)) return 1;
            double t2 = lf_bench_now();
            t_scalar[r] += t1 - t0, t_gemm[r] += t2 - t1;
            double m = 0, e = 0;
            for (int64_t k = 0; k < y->numel; k++) {
                m = fmax(m, fabs(d0[k]));
                e = fmax(e, fabs(d0[k] - d1[k]));
            }
            worst = fmax(worst, m > 0 ? e / m : e);
        }
        /* The whole merge into f16 weights of those shapes (a pool of its own). */
        lf_pool_t *pool = lf_pool_new(be, 0);
        for (size_t i = 0; i < lf_lora_count(l); i++) {
            const lf_lora_target_t *g = lf_lora_at(l, i)->target;
            lf_tensor_t *w = lf_pool_tensor(pool, g->name, LF_TYPE_F16, 2, (const int64_t[]){g->shape[1], g->shape[0]});
            uint16_t *z = calloc((size_t)lf_lora_at(l, i)->numel, 2);
            lf_pool_load(pool, w, z, lf_tensor_nbytes(w));
            free(z);
        }
        lf_lora_patch_t *p = lf_lora_patch_new(pool, be, tg);
        lf_lora_use_t u = {.path = path, .name = "delta", .unet_weight = 1, .te_weight = 1};
        lf_lora_patch_info_t info = {0};
        double t0 = lf_bench_now(), c0 = s_cpu();
        if (lf_lora_patch_set(p, &u, 1, &info, err, sizeof err)) {
            fprintf(stderr, "patch: %s\n", err);
            return 1;
        }
        t_patch[r] = lf_bench_now() - t0;
        c_patch[r] = s_cpu() - c0;
        free(info.warnings);
        lf_lora_patch_destroy(&p);
        lf_pool_destroy(&pool);
    }
    double ts = s_median(t_scalar, reps), tg2 = s_median(t_gemm, reps), tp = s_median(t_patch, reps);
    double la[3];
    printf("bench_lora --delta: rank %d, %zu SDXL layers (down_blocks.2.attentions.0, 2 blocks), %.1f G multiply-adds; "
           "load average %.2f; %s\n",
           rank, lf_lora_count(l), (double)macs / 1e9, getloadavg(la, 3) == 3 ? la[0] : -1.0,
           lf_backend_describe(be));
    printf("  ΔW, scalar loop (lf_lora_delta, one core, f64 sums)  %8.3f s  %6.2f GMAC/s\n", ts, macs / ts / 1e9);
    printf("  ΔW, backend GEMM (lowrank + MATMUL, %d threads)       %8.3f s  %6.2f GMAC/s\n", threads, tg2,
           macs / tg2 / 1e9);
    printf("  ratio scalar / GEMM = %.1fx; max |difference| / max |ΔW| = %.2g\n", ts / tg2, worst);
    printf("  lf_lora_patch_set of the file into f16 weights (open, ADD_LOWRANK merge) %.3f s (%.3f s CPU)\n", tp,
           s_median(c_patch, reps));
    free(d0), free(d1), free(fac);
    lf_lora_destroy(&l);
    lf_lora_targets_destroy(&tg);
    lf_backend_destroy(&be);
    unlink(path);
    return 0;
}

/* The switch timings of one model and LoRA file (see the top comment);
 * *ab: the median A -> B switch (wall). 0, or 1 on an error (printed). */
static int s_switch_bench(const char *label, const char *ck, const char *lora, int reps, double *ab_out)
{
    double la[3];
    printf("bench_lora %s: %s\n  LoRA %s\n  load average %.2f\n", label, ck, lora,
           getloadavg(la, 3) == 3 ? la[0] : -1.0);
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
    double rss_after = 0, rss_switch = 0;
    for (int r = 0; r < reps; r++) {
        merge[r] = s_set(m, &a, 1, &info);
        layers = info.layers, saved = info.saved_bytes;
        if (r == 0) rss_after = s_rss_mb();
        ab[r] = s_set(m, &b, 1, &info);
        ab_cpu[r] = s_last_cpu;
        if (r == 0) rss_switch = s_rss_mb();
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
    const char *keep = getenv("LF_LORA_KEEP_MB");
    printf("  LF_LORA_KEEP_MB=%s: set A (%zu tensors merged, %.1f MB of originals kept, the rest read again "
           "from the model's file; RSS %.0f -> %.0f MB, +%.1f MB; after A -> B %.0f MB, +%.1f MB)\n",
           keep ? keep : "(default)", layers, saved / 1e6, rss_before, rss_after, rss_after - rss_before,
           rss_switch, rss_switch - rss_before);
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
    *ab_out = tab;
    return 0;
}

/* s_switch_bench once per LF_LORA_KEEP_MB value of the comma-separated
 * list ("unlimited": every original copied); *ab: the last one's A -> B. */
static int s_switch_modes(const char *label, const char *ck, const char *lora, int reps,
                          const char *keeps, double *ab)
{
    char list[256], *save = NULL;
    snprintf(list, sizeof list, "%s", keeps);
    for (char *k = strtok_r(list, ",", &save); k; k = strtok_r(NULL, ",", &save)) {
        setenv("LF_LORA_KEEP_MB", strcmp(k, "unlimited") ? k : "1e12", 1);
        if (s_switch_bench(label, ck, lora, reps, ab)) return 1;
    }
    return 0;
}

/* A "key=value" number of the torch script's RESULT line; NAN if absent. */
static double s_field(const char *line, const char *key)
{
    char k[64];
    snprintf(k, sizeof k, " %s=", key);
    const char *p = strstr(line, k);
    return p ? atof(p + strlen(k)) : NAN;
}

/* diffusers on the same checkpoint and file, after our model is released
 * (bench_lora_torch.py), printed beside our A -> B switch. */
static int s_torch(const char *py, const char *ck, const char *lora, int reps, int threads, double ours_ab)
{
    char cmd[12288], line[1024] = "", buf[1024];
    snprintf(cmd, sizeof cmd, "'%s' '%s/bench/bench_lora_torch.py' --ckpt '%s' --lora '%s' --reps %d --threads %d",
             py, LF_SOURCE_DIR, ck, lora, reps, threads);
    printf("diffusers: %s\n", cmd);
    fflush(stdout);
    FILE *f = popen(cmd, "r");
    if (!f) return 1;
    while (fgets(buf, sizeof buf, f)) {
        if (!strncmp(buf, "RESULT torch", 12)) snprintf(line, sizeof line, "%s", buf);
        else fputs(buf, stdout);
    }
    int st = pclose(f);
    if (!line[0]) {
        fprintf(stderr, "diffusers run failed (status %d)\n", st);
        return 1;
    }
    double load = s_field(line, "load_s"), sa = s_field(line, "set_adapters_s"),
           fs = s_field(line, "fused_switch_s"), rf = s_field(line, "reload_fuse_s"),
           sp = s_field(line, "step_plain_s"), sl = s_field(line, "step_lora_s"),
           rm = s_field(line, "rss_model_mb"), ra = s_field(line, "rss_adapters_mb");
    printf("  diffusers (same checkpoint, f32, same file as two adapters a / b), medians:\n");
    printf("    load_lora_weights (one adapter)                    %8.3f s\n", load);
    printf("    set_adapters switch (unfused)                       %8.4f s\n", sa);
    printf("    unfuse + set_adapters + fuse (merged switch)        %8.3f s\n", fs);
    printf("    unload + load_lora_weights + fuse (from the file)   %8.3f s\n", rf);
    printf("    UNet call (2x8x8) plain %.3f s, with an unfused adapter %.3f s (+%.0f %%)\n", sp, sl,
           100 * (sl / sp - 1));
    printf("    RSS: model %.0f MB, +%.0f MB for the two adapters\n", rm, ra - rm);
    printf("  ratios to our A -> B switch (%.3f s): diffusers merged switch %.1fx, from the file %.1fx, "
           "unfused set_adapters %.3fx\n", ours_ab, fs / ours_ab, rf / ours_ab, sa / ours_ab);
    return 0;
}

int main(int argc, char **argv)
{
    char ck[4096] = "", lora[4096] = "", sdxl[4096] = "", sdxl_lora[4096] = "", py[4096] = "";
    char keeps[256] = "0,unlimited";
    int reps = 3, delta_rank = 0, threads = 2;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--ckpt") && i + 1 < argc) snprintf(ck, sizeof ck, "%s", argv[++i]);
        else if (!strcmp(argv[i], "--lora") && i + 1 < argc) snprintf(lora, sizeof lora, "%s", argv[++i]);
        else if (!strcmp(argv[i], "--sdxl") && i + 1 < argc) snprintf(sdxl, sizeof sdxl, "%s", argv[++i]);
        else if (!strcmp(argv[i], "--sdxl-lora") && i + 1 < argc)
            snprintf(sdxl_lora, sizeof sdxl_lora, "%s", argv[++i]);
        else if (!strcmp(argv[i], "--torch") && i + 1 < argc) snprintf(py, sizeof py, "%s", argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--delta") && i + 1 < argc) delta_rank = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--keep-mb") && i + 1 < argc) snprintf(keeps, sizeof keeps, "%s", argv[++i]);
        else {
            fprintf(stderr, "usage: bench_lora [--ckpt P] [--lora P] [--reps N] [--torch PYTHON] "
                            "[--sdxl CK --sdxl-lora P] [--keep-mb A,B,..] [--delta RANK [--threads N]]\n");
            return 2;
        }
    }
    if (reps < 1) reps = 1;
    if (reps > 15) reps = 15;
    if (delta_rank > 0) return s_delta_bench(delta_rank, threads, reps);
    const char *env = getenv("LF_SD15_FULL");
    if (!ck[0]) snprintf(ck, sizeof ck, "%s", env && *env ? env : LF_SOURCE_DIR "/tests/reference/out/sd15_full.safetensors");
    const char *rd = getenv("LF_REFDATA_DIR");
    if (!lora[0])
        snprintf(lora, sizeof lora, "%s/lora/sd15_diffusers_lora_rank4.safetensors",
                 rd && *rd ? rd : LF_SOURCE_DIR "/../shared/refdata");
    int rc = 0;
    double ab = 0;
    if (!s_exists(ck) || !s_exists(lora)) {
        printf("SKIP: needs %s (make_model_fixtures.py --full) and %s\n", ck, lora);
    } else {
        rc = s_switch_modes("sd15", ck, lora, reps, keeps, &ab);
        if (!rc && py[0]) rc = s_torch(py, ck, lora, reps, threads, ab);
    }
    if (!rc && sdxl[0]) {
        if (!s_exists(sdxl) || !s_exists(sdxl_lora))
            printf("SKIP: needs %s and %s (make_lora_full_reference.py --sdxl-lora)\n", sdxl, sdxl_lora);
        else
            rc = s_switch_modes("sdxl", sdxl, sdxl_lora, reps, keeps, &ab);
    }
    return rc;
}
