/* bench_unet: one SD1.5 UNet step at 512x512 with CFG (batch 2: x
 * [2,4,64,64], t = [500, 500], cond [2,77,768]) on the full-size
 * architecture through lf_model (CPU backend), beside
 *   - the sgemm ceiling measured in the same run (cblas_sgemm at two UNet
 *     GEMM shapes, same thread count), so GFLOP/s can be read as a fraction
 *     of what this machine's BLAS reaches right now;
 *   - the same step in diffusers/PyTorch (bench_unet_torch.py, run as a
 *     child process with the same weights and inputs, its steps alternating
 *     with ours so that both see the same load on a shared machine), for the
 *     time ratio, the peak RSS of each and the largest output difference.
 *
 * Checkpoint: --ckpt, else $LF_SD15_FULL, else tests/reference/out/
 * sd15_full.safetensors, else build/sd15-full.safetensors (random weights,
 * written by tests/reference/make_model_fixtures.py --full). Python: --torch
 * PYTHON (or $LF_BENCH_TORCH; "none" skips it), else tests/reference/.venv/
 * bin/python when present. A missing checkpoint prints SKIP and exits 0.
 *
 * FLOPs are counted analytically from the SD1.5 architecture (conv, linear,
 * attention products; multiply-add = 2, as lf_node_flops): lf_model keeps its
 * graphs private. The PyTorch side counts the same FLOPs with layer hooks,
 * printed beside it as a check.
 *
 * Usage: bench_unet [--ckpt PATH] [--reps N] [--threads N] [--torch PYTHON|none]
 *                   [--weights stored|f32|f16|bf16] [--no-ceiling] [--bf16] [--profile]
 *                   [--precision f32|bf16] [--vae] [--dump PATH]
 * --precision runs every step in that one precision (lf_model_set_precision,
 * as a job does), no alternation and no PyTorch: the steady state. The
 * alternating --bf16 mode repacks the bf16 weights at every bf16 step (an
 * f32 product of a mapped weight drops its packed copy), so only this mode
 * shows the packed bf16 step. Each step's wall and process CPU time is
 * printed; --profile adds one profiled step, its table and one
 * "PROF unet calls= s= flops= bytes= kind=" line per kind (for scripts:
 * bench_unet_openvino.py), and "PROFPART" lines for the parts of a kind's
 * time the backend reports (a convolution's conversions and layout
 * reorders: s_prof_lines). --vae times the VAE decode at 512x512 instead
 * (x's first latent, [1][4][64][64], decoded whole as the engine does at
 * that size; --precision bf16 sets the backend's bf16 compute around it, an
 * experiment: the engine keeps the VAE f32). --dump writes the last output
 * (f32, raw) to PATH. Their last line: "BENCH unet_step|vae_decode
 * precision= wall_median_s= cpu_median_s= peak_rss_kb= ...".
 * --bf16 also runs each step with the backend's bf16 compute precision
 * (lf_backend_set_precision), alternating with the f32 one, and prints the
 * time ratio and the output difference; --profile runs one more step (per
 * precision) with an lf_profile attached and prints time, FLOPs and bytes by
 * kind of op (MATMUL and CONV2D by shape) against the sgemm ceiling.
 * Weights default to "stored" (f16 in an f16 checkpoint), as lf_engine loads
 * them for the farm; --weights f32 widens them once at load (more memory,
 * no per-call widening). PyTorch runs in f32 either way (its CPU path).
 * Step time is the median of N (default 3) after one warm-up call (which
 * plans memory). The machine may be shared: the load average is printed. */
#include <cblas.h>
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
#include "lf_profile.h"
#include "lf_bench_util.h"

#ifndef LF_SOURCE_DIR
#define LF_SOURCE_DIR "."
#endif

enum { B = 2, C = 4, S = 64, L = 77, D = 768 };

static int s_exists(const char *p) {
    struct stat sb;
    return p && stat(p, &sb) == 0;
}

static long s_maxrss_kb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

static double s_tv_s(struct timeval tv) {
    return (double)tv.tv_sec + 1e-6 * (double)tv.tv_usec;
}

static void s_loadavg(char *out, size_t n) {
    FILE *f = fopen("/proc/loadavg", "r");
    double a = -1, b = -1, c = -1;
    if (f) {
        if (fscanf(f, "%lf %lf %lf", &a, &b, &c) != 3) a = b = c = -1;
        fclose(f);
    }
    snprintf(out, n, "%.2f %.2f %.2f", a, b, c);
}


static int s_cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* ---- FLOPs of the SD1.5 UNet, by its architecture ---- */

static double s_conv(double hw, int ci, int co, int k) { return 2.0 * hw * co * ci * k * k; }
static double s_lin(double rows, int ci, int co) { return 2.0 * rows * ci * co; }

static double s_resnet(double hw, int ci, int co, int temb) {
    double f = s_conv(hw, ci, co, 3) + s_conv(hw, co, co, 3) + s_lin(1, temb, co);
    if (ci != co) f += s_conv(hw, ci, co, 1);
    return f;
}

/* Spatial transformer with one block: proj_in/out 1x1, self-attention,
 * cross-attention over L tokens of width D, GEGLU feed-forward (4C). */
static double s_transformer(double n, int c) {
    double f = 2 * s_conv(n, c, c, 1);
    f += 4 * s_lin(n, c, c) + 2.0 * n * n * 2 * c;               /* attn1 q k v o + QK^T, PV */
    f += 2 * s_lin(n, c, c) + 2 * s_lin(L, D, c) + 2.0 * n * L * 2 * c; /* attn2 */
    f += s_lin(n, c, 8 * c) + s_lin(n, 4 * c, c);                /* GEGLU FF */
    return f;
}

/* Per sample at an s x s latent: channels 320/640/1280/1280, 2 resnets per
 * down level, 3 per up level, attention on the three finest levels. */
static double s_unet_flops(int s) {
    static const int ch[4] = {320, 640, 1280, 1280}, attn[4] = {1, 1, 1, 0};
    const int temb = 1280;
    int skip[16], ns = 0, r = s, cur = ch[0];
    double f = s_lin(1, 320, temb) + s_lin(1, temb, temb) + s_conv((double)r * r, C, ch[0], 3);
    skip[ns++] = cur;
    for (int l = 0; l < 4; l++) {
        for (int j = 0; j < 2; j++) {
            f += s_resnet((double)r * r, cur, ch[l], temb);
            cur = ch[l];
            if (attn[l]) f += s_transformer((double)r * r, cur);
            skip[ns++] = cur;
        }
        if (l < 3) {
            r /= 2;
            f += s_conv((double)r * r, cur, cur, 3); /* stride-2 conv: output pixels */
            skip[ns++] = cur;
        }
    }
    f += 2 * s_resnet((double)r * r, cur, cur, temb) + s_transformer((double)r * r, cur);
    for (int i = 0; i < 4; i++) {
        int l = 3 - i;
        for (int j = 0; j < 3; j++) {
            f += s_resnet((double)r * r, cur + skip[--ns], ch[l], temb);
            cur = ch[l];
            if (attn[l]) f += s_transformer((double)r * r, cur);
        }
        if (i < 3) {
            r *= 2;
            f += s_conv((double)r * r, cur, cur, 3);
        }
    }
    return f + s_conv((double)s * s, ch[0], C, 3);
}

/* ---- the sgemm ceiling ---- */

typedef struct {
    int M, N, K;
    double gflops;
} s_shape_t;

/* Best of reps sgemm calls, A[M][K] . B[N][K]^T as lf_op_matmul computes
 * it; GFLOP/s. */
static double s_sgemm_gflops(int M, int N, int K, int reps) {
    float *a = malloc((size_t)M * K * 4), *b = malloc((size_t)N * K * 4),
          *c = malloc((size_t)M * N * 4);
    if (!a || !b || !c) {
        free(a), free(b), free(c);
        return 0;
    }
    lf_bench_randn(a, (size_t)M * K, 1), lf_bench_randn(b, (size_t)N * K, 2);
    double best = 1e30;
    for (int r = 0; r <= reps; r++) {
        double t0 = lf_bench_now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, a, K, b, K, 0.0f, c, N);
        double t = lf_bench_now() - t0;
        if (r > 0 && t < best) best = t; /* r == 0 warms up */
    }
    free(a), free(b), free(c);
    return 2.0 * M * N * K / best * 1e-9;
}

static double s_ceiling(s_shape_t *sh, int n, const char *when) {
    double best = 0;
    for (int i = 0; i < n; i++) {
        double g = s_sgemm_gflops(sh[i].M, sh[i].N, sh[i].K, 3);
        if (g > sh[i].gflops) sh[i].gflops = g;
        printf("  sgemm %-6s M=%-5d N=%-5d K=%-5d %7.1f GFLOP/s\n", when, sh[i].M, sh[i].N, sh[i].K,
               g);
        if (sh[i].gflops > best) best = sh[i].gflops;
    }
    return best;
}

/* ---- the PyTorch side ---- */

typedef struct {
    int ok;
    double median_s, min_s, load_s, flops, max_abs, rel_err;
    long rss_load_kb, peak_rss_kb, step_hwm_kb;
} s_torch_t;

static double s_field(const char *line, const char *key) {
    char k[64];
    snprintf(k, sizeof k, " %s=", key);
    const char *p = strstr(line, k);
    return p ? atof(p + strlen(k)) : -1;
}

/* The PyTorch child, driven over two pipes: it loads, warms up and prints
 * READY; each "step" line we send runs one step and answers "STEP secs";
 * closing its stdin ends it with the RESULT line. Our steps and its steps
 * alternate, so both see the same machine load. */
typedef struct {
    pid_t pid;
    FILE *to, *from;
} s_child_t;

/* Echoes the child's lines until one starts with prefix (copied to line);
 * -1 at EOF. RESULT lines are parsed into r on the way. */
static int s_child_until(s_child_t *c, const char *prefix, char *line, size_t n, s_torch_t *r) {
    while (fgets(line, (int)n, c->from)) {
        if (strncmp(line, "STEP ", 5)) printf("  | %s", line);
        if (!strncmp(line, "RESULT torch ", 13)) {
            r->ok = 1;
            r->median_s = s_field(line, "median_s"), r->min_s = s_field(line, "min_s");
            r->load_s = s_field(line, "load_s"), r->flops = s_field(line, "flops");
            r->max_abs = s_field(line, "max_abs"), r->rel_err = s_field(line, "rel_err");
            r->rss_load_kb = (long)s_field(line, "rss_load_kb");
            r->peak_rss_kb = (long)s_field(line, "peak_rss_kb");
            r->step_hwm_kb = (long)s_field(line, "step_hwm_kb");
        }
        fflush(stdout);
        if (prefix && !strncmp(line, prefix, strlen(prefix))) return 0;
    }
    return -1;
}

static int s_child_start(s_child_t *c, const char *python, const char *ckpt, const char *dir,
                         int threads) {
    int in[2], out[2];
    if (pipe(in)) return -1;
    if (pipe(out)) {
        close(in[0]), close(in[1]);
        return -1;
    }
    fflush(stdout);
    c->pid = fork();
    if (c->pid < 0) return -1;
    if (c->pid == 0) {
        dup2(in[0], 0), dup2(out[1], 1), dup2(out[1], 2);
        close(in[0]), close(in[1]), close(out[0]), close(out[1]);
        char nt[16];
        snprintf(nt, sizeof nt, "%d", threads);
        execl(python, python, LF_SOURCE_DIR "/bench/bench_unet_torch.py", "--ckpt", ckpt, "--io",
              dir, "--threads", nt, "--interleave", (char *)NULL);
        _exit(127);
    }
    close(in[0]), close(out[1]);
    c->to = fdopen(in[1], "w");
    c->from = fdopen(out[0], "r");
    return c->to && c->from ? 0 : -1;
}

static int s_child_finish(s_child_t *c, s_torch_t *r) {
    char line[4096];
    if (c->to) fclose(c->to);
    c->to = NULL;
    if (c->from) s_child_until(c, NULL, line, sizeof line, r), fclose(c->from);
    c->from = NULL;
    int st = 0;
    if (c->pid > 0) waitpid(c->pid, &st, 0);
    return r->ok && WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

static int s_write(const char *dir, const char *name, const float *a, size_t na, const float *b,
                   size_t nb, const float *c, size_t nc) {
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    if (!f) return -1;
    int ok = fwrite(a, 4, na, f) == na && (!b || fwrite(b, 4, nb, f) == nb) &&
             (!c || fwrite(c, 4, nc, f) == nc);
    return fclose(f) == 0 && ok ? 0 : -1;
}

static void s_rm_io(const char *dir) {
    char p[4096];
    snprintf(p, sizeof p, "%s/unet_in.bin", dir), unlink(p);
    snprintf(p, sizeof p, "%s/unet_out.bin", dir), unlink(p);
    rmdir(dir);
}

static double s_cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- the steady-state single-precision modes (--precision, --vae) ---- */

static double s_median(double *v, int n) {
    double w[64];
    if (n < 1) return 0;
    if (n > 64) n = 64;
    memcpy(w, v, (size_t)n * sizeof w[0]);
    qsort(w, (size_t)n, sizeof w[0], s_cmp);
    return n % 2 ? w[n / 2] : 0.5 * (w[n / 2 - 1] + w[n / 2]);
}

/* One line per profile row, for scripts (bench_unet_openvino.py groups
 * them beside OpenVINO's per-layer counters):
 *   PROF <tag> calls=N s=SECONDS flops=F bytes=B kind=<the row's kind>
 * and one per part of a kind (a convolution's conversions and layout
 * reorders, inside its PROF line's seconds; no "PROF " prefix, so scripts
 * that sum PROF lines count them once):
 *   PROFPART <tag> part=<name, spaces as _> calls=N s=SECONDS kind=<kind> */
static void s_prof_lines(lf_profile_t *prof, const char *tag) {
    const lf_profile_row_t *rows;
    int n = lf_profile_rows(prof, &rows);
    for (int i = 0; i < n; i++) {
        if (!rows[i].part[0]) {
            printf("PROF %s calls=%ld s=%.6f flops=%.6g bytes=%.6g kind=%s\n", tag, rows[i].calls,
                   rows[i].seconds, rows[i].flops, rows[i].bytes, rows[i].kind);
            continue;
        }
        char part[sizeof rows[i].part];
        memcpy(part, rows[i].part, sizeof part);
        for (char *c = part; *c; c++)
            if (*c == ' ') *c = '_';
        printf("PROFPART %s part=%s calls=%ld s=%.6f kind=%s\n", tag, part, rows[i].calls, rows[i].seconds,
               rows[i].kind);
    }
}

/* Runs fn(arg) once with an lf_profile attached to be and prints the table
 * and the PROF lines; the call's wall time, or -1. */
static double s_profiled(lf_backend_t *be, int (*fn)(void *), void *arg, const char *what,
                         const char *tag, double ceil_gf) {
    lf_profile_t *prof = lf_profile_new();
    if (!prof) return -1;
    lf_backend_set_profile(be, prof);
    double t0 = lf_bench_now();
    int rc = fn(arg);
    double tp = lf_bench_now() - t0;
    lf_backend_set_profile(be, NULL);
    if (rc) printf("  profiled %s failed (%d)\n", what, rc);
    else {
        printf("\n== per-op profile, one %s (%.2f s wall) ==\n", what, tp);
        lf_profile_print(prof, stdout, ceil_gf);
        s_prof_lines(prof, tag);
    }
    lf_profile_destroy(&prof);
    return rc ? -1 : tp;
}

typedef struct {
    lf_model_t *m;
    lf_backend_t *be;
    const float *x, *t, *cond, *vec;
    float *out;
    int bf16_vae; /* --vae --precision bf16: the backend's bf16 around the decode */
} s_call_t;

static int s_call_step(void *p) {
    s_call_t *c = p;
    return lf_model_denoise(c->m, c->x, B, S, S, c->t, c->cond, L, c->vec, c->out);
}

/* The 512x512 decode: one latent [1][4][64][64] (unscaled), whole (no
 * tiles: the engine decodes 512x512 whole). The engine keeps the VAE f32;
 * bf16_vae sets the backend's bf16 compute for the call (an experiment). */
static int s_call_vae(void *p) {
    s_call_t *c = p;
    if (c->bf16_vae) lf_backend_set_precision(c->be, LF_PRECISION_BF16);
    int rc = lf_model_vae_decode(c->m, c->x, 1, S, S, 0, c->out);
    if (c->bf16_vae) lf_backend_set_precision(c->be, LF_PRECISION_F32);
    return rc;
}

static int s_dump(const char *path, const float *a, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    int ok = fwrite(a, 4, n, f) == n;
    return fclose(f) == 0 && ok ? 0 : -1;
}

/* --precision f32|bf16 (UNet step) or --vae: the warm-up call, then reps
 * calls in that one precision with each call's wall and process CPU time,
 * then (with --profile) one more with the profile. No alternation: a job
 * stays in one precision, and an f32 product of a mapped weight drops its
 * packed bf16 copy (lf__cpu_dnnl_release), so alternating repacks at every
 * bf16 step. Last line: BENCH unet_step|vae_decode ... */
static int s_steady(s_call_t *c, int vae, const char *prec, int reps, int profile, double ceil_gf,
                    double flops, int threads, long rss_load, const char *dump, size_t nout) {
    int (*fn)(void *) = vae ? s_call_vae : s_call_step;
    const char *what = vae ? "VAE decode, 64x64 latent -> 512x512" : "UNet step, 512x512 CFG batch 2";
    double t0 = lf_bench_now(), c0 = s_cpu_s();
    int rc = fn(c);
    printf("  warm-up (%s, plans memory%s) %.2f s (cpu %.2f s)\n", prec,
           !strcmp(prec, "bf16") && !vae ? ", packs the bf16 weights" : "", lf_bench_now() - t0,
           s_cpu_s() - c0);
    if (rc) return fprintf(stderr, "bench_unet: %s failed (%d)\n", what, rc), rc;
    int hwm_ok = lf_bench_reset_hwm() == 0;
    double ws[64], cs[64];
    if (reps > 64) reps = 64;
    for (int i = 0; i < reps && !rc; i++) {
        struct rusage r0, r1;
        getrusage(RUSAGE_SELF, &r0);
        t0 = lf_bench_now(), c0 = s_cpu_s();
        rc = fn(c);
        ws[i] = lf_bench_now() - t0, cs[i] = s_cpu_s() - c0;
        getrusage(RUSAGE_SELF, &r1);
        /* Where the CPU time went besides the ops: system time, page faults
         * (fresh pages touched) and context switches (threads that slept). */
        printf("  %s %d/%d  %s %.2f s (cpu %.2f s: user %.2f, sys %.2f; %ld minor faults, %ld+%ld "
               "voluntary+involuntary switches)\n",
               vae ? "decode" : "step", i + 1, reps, prec, ws[i], cs[i],
               s_tv_s(r1.ru_utime) - s_tv_s(r0.ru_utime), s_tv_s(r1.ru_stime) - s_tv_s(r0.ru_stime),
               r1.ru_minflt - r0.ru_minflt, r1.ru_nvcsw - r0.ru_nvcsw, r1.ru_nivcsw - r0.ru_nivcsw);
        fflush(stdout);
    }
    if (rc) return fprintf(stderr, "bench_unet: %s failed (%d)\n", what, rc), rc;
    long step_hwm = hwm_ok ? lf_bench_status_kb("VmHWM") : -1;
    size_t nonfinite = 0;
    double omax = 0;
    for (size_t i = 0; i < nout; i++) {
        if (!isfinite(c->out[i])) nonfinite++;
        else omax = fmax(omax, fabs(c->out[i]));
    }
    if (dump && s_dump(dump, c->out, nout)) printf("  cannot write %s\n", dump);
    double tprof = profile ? s_profiled(c->be, fn, c, what, vae ? "vae" : "unet", ceil_gf) : 0;
    long peak = s_maxrss_kb();
    double wmed = s_median(ws, reps), cmed = s_median(cs, reps), wmin = ws[0], cmin = cs[0];
    for (int i = 1; i < reps; i++) wmin = fmin(wmin, ws[i]), cmin = fmin(cmin, cs[i]);
    char la[64];
    s_loadavg(la, sizeof la);
    printf("\n== %s, %s, %d threads, load average now %s ==\n", what, prec, threads, la);
    printf("  wall median %.2f s (min %.2f), process cpu median %.2f s (min %.2f)", wmed, wmin, cmed,
           cmin);
    if (flops > 0) printf(", %.1f GFLOP/s by wall", flops / wmed * 1e-9);
    printf("\n  peak RSS %.0f MiB (after load %.0f, calls' high-water %.0f), max |out| %.3g%s\n",
           peak / 1024.0, rss_load / 1024.0, step_hwm / 1024.0, omax,
           nonfinite ? "  NON-FINITE OUTPUT" : "");
    printf("BENCH %s precision=%s threads=%d reps=%d wall_median_s=%.4f wall_min_s=%.4f "
           "cpu_median_s=%.4f cpu_min_s=%.4f peak_rss_kb=%ld rss_load_kb=%ld step_hwm_kb=%ld "
           "profiled_s=%.4f max_abs_out=%.4g loadavg=\"%s\"\n",
           vae ? "vae_decode" : "unet_step", prec, threads, reps, wmed, wmin, cmed, cmin, peak,
           rss_load, step_hwm, tprof, omax, la);
    return nonfinite ? 1 : 0;
}

int main(int argc, char **argv) {
    const char *ckpt = getenv("LF_SD15_FULL"), *python = getenv("LF_BENCH_TORCH"), *wt = "stored";
    const char *prec = NULL, *dump = NULL;
    int reps = 3, threads = 2, ceiling = 1, bf16 = 0, profile = 0, vae = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--ckpt") && i + 1 < argc) ckpt = argv[++i];
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--torch") && i + 1 < argc) python = argv[++i];
        else if (!strcmp(argv[i], "--weights") && i + 1 < argc) wt = argv[++i];
        else if (!strcmp(argv[i], "--no-ceiling")) ceiling = 0;
        else if (!strcmp(argv[i], "--bf16")) bf16 = 1;
        else if (!strcmp(argv[i], "--profile")) profile = 1;
        else if (!strcmp(argv[i], "--precision") && i + 1 < argc) prec = argv[++i];
        else if (!strcmp(argv[i], "--vae")) vae = 1;
        else if (!strcmp(argv[i], "--dump") && i + 1 < argc) dump = argv[++i];
        else if (!strcmp(argv[i], "--quick")) reps = 1; /* as bench_kernels --quick */
        else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: %s [--ckpt PATH] [--reps N] [--threads N] [--torch PYTHON|none] "
                   "[--weights stored|f32|f16|bf16] [--no-ceiling] [--bf16] [--profile]\n"
                   "       [--precision f32|bf16] [--vae] [--dump PATH]\n",
                   argv[0]);
            return 0;
        }
        /* Other flags belong to the other benchmarks (deploy/lightfarm bench
         * passes its arguments to each): ignored. */
    }
    if (reps < 1) reps = 1;
    if (vae && !prec) prec = "f32";
    if (prec && strcmp(prec, "f32") && strcmp(prec, "bf16"))
        return fprintf(stderr, "bench_unet: --precision f32 or bf16, not %s\n", prec), 2;
    if (prec && bf16)
        return fprintf(stderr, "bench_unet: --precision runs one precision; --bf16 alternates: "
                               "one or the other\n"), 2;
    if (prec) python = "none"; /* the PyTorch pairing is the alternating mode's */
    static const char *defaults[] = {LF_SOURCE_DIR "/tests/reference/out/sd15_full.safetensors",
                                     LF_SOURCE_DIR "/build/sd15-full.safetensors"};
    for (int i = 0; i < 2 && !(ckpt && *ckpt); i++)
        if (s_exists(defaults[i])) ckpt = defaults[i];
    if (!(ckpt && *ckpt) || !s_exists(ckpt)) {
        printf("SKIP bench_unet: no full-size SD1.5 checkpoint (%s; write one with "
               "tests/reference/.venv/bin/python tests/reference/make_model_fixtures.py --full, "
               "or set LF_SD15_FULL / --ckpt)\n",
               ckpt && *ckpt ? ckpt : defaults[0]);
        return 0;
    }
    static const char *venv = LF_SOURCE_DIR "/tests/reference/.venv/bin/python";
    if (!python || !*python) python = s_exists(venv) ? venv : "none";
    int with_torch = strcmp(python, "none") != 0;
    int type = !strcmp(wt, "f16")    ? LF_TYPE_F16
               : !strcmp(wt, "bf16") ? LF_TYPE_BF16
               : !strcmp(wt, "f32")  ? LF_TYPE_F32
                                     : -1;

    char la[64];
    s_loadavg(la, sizeof la);
    printf("bench_unet: SD1.5 UNet, one 512x512 CFG step (x [%d,%d,%d,%d], cond [%d,%d,%d]), %d "
           "threads, weights %s\n  checkpoint %s\n  load average %s\n",
           B, C, S, S, B, L, D, threads, type < 0 ? "as stored" : wt, ckpt, la);
    openblas_set_num_threads(threads);
    printf("  OpenBLAS core %s (%s)\n", openblas_get_corename(), openblas_get_config());

    s_shape_t sh[2] = {{4096, 320, 2880, 0}, {1024, 1280, 11520, 0}};
    double ceil_gf = ceiling ? s_ceiling(sh, 2, "before") : 0;

    lf_backend_t *be = lf_backend_cpu_new(threads);
    if (!be) return fprintf(stderr, "bench_unet: no CPU backend\n"), 1;
    printf("  %s\n", lf_backend_describe(be));
    lf_model_opts_t opts = {.backend = be, .weight_type = type};
    char err[1024] = "";
    lf_model_t *m = NULL;
    double t0 = lf_bench_now();
    int rc = lf_model_load(ckpt, &opts, &m, err, sizeof err);
    double load_s = lf_bench_now() - t0;
    if (rc) {
        fprintf(stderr, "bench_unet: %s\n", err);
        lf_backend_destroy(&be);
        return 1;
    }
    long rss_load = lf_bench_status_kb("VmRSS");
    printf("  load %.1f s, RSS after load %.0f MiB\n", load_s, rss_load / 1024.0);

    const size_t nx = (size_t)B * C * S * S, nc = (size_t)B * L * D;
    float *x = malloc(nx * 4), *cond = malloc(nc * 4), *out = malloc(nx * 4), *outb = malloc(nx * 4);
    float t[B] = {500.0f, 500.0f};
    if (!x || !cond || !out || !outb) return fprintf(stderr, "bench_unet: out of memory\n"), 1;
    lf_bench_randn(x, nx, 11), lf_bench_randn(cond, nc, 12);
    /* SDXL's vector conditioning: a random pooled embedding and 1024x1024
     * micro-conditioning (NULL for SD1.x). */
    const lf_model_desc_t *md = lf_model_desc(m);
    const int V = md->pooled_dim + md->n_time_ids;
    float *vec = md->n_time_ids ? malloc((size_t)B * V * 4) : NULL;
    if (md->n_time_ids && !vec) return fprintf(stderr, "bench_unet: out of memory\n"), 1;
    for (int b = 0; vec && b < B; b++) {
        lf_bench_randn(vec + (size_t)b * V, (size_t)md->pooled_dim, 13);
        for (int i = 0; i < md->n_time_ids; i++)
            vec[(size_t)b * V + md->pooled_dim + i] = i == 2 || i == 3 ? 0.0f : 1024.0f;
    }

    if (prec) {
        lf_precision_t want = strcmp(prec, "bf16") ? LF_PRECISION_F32 : LF_PRECISION_BF16;
        s_call_t c = {.m = m, .be = be, .x = x, .t = t, .cond = cond, .vec = vec, .out = out};
        size_t nout = nx;
        float *img = NULL;
        int ok = 1;
        if (vae) { /* the first latent of x: [1][4][64][64] */
            nout = (size_t)3 * (8 * S) * (8 * S);
            if (!(img = malloc(nout * 4))) return fprintf(stderr, "bench_unet: out of memory\n"), 1;
            c.out = img;
            if (want == LF_PRECISION_BF16) {
                ok = lf_backend_set_precision(be, want) == want;
                lf_backend_set_precision(be, LF_PRECISION_F32);
                c.bf16_vae = 1;
                printf("  VAE in bf16: the backend's bf16 compute set around the decode (an experiment: "
                       "the engine keeps the VAE f32)\n");
            }
        } else ok = lf_model_set_precision(m, want) == want;
        if (!ok) printf("SKIP bench_unet: no %s compute on this backend (%s)\n", prec, lf_backend_describe(be));
        else
            rc = s_steady(&c, vae, prec, reps, profile, ceil_gf, vae ? 0 : B * s_unet_flops(S), threads,
                          rss_load, dump, nout);
        free(img), free(x), free(cond), free(out), free(outb), free(vec);
        lf_model_destroy(&m);
        lf_backend_destroy(&be);
        return rc ? 1 : 0;
    }

    t0 = lf_bench_now();
    rc = lf_model_denoise(m, x, B, S, S, t, cond, L, vec, out);
    double warm_s = lf_bench_now() - t0;
    if (rc) return fprintf(stderr, "bench_unet: denoise failed (%d)\n", rc), 1;
    printf("  warm-up (plans memory) %.2f s\n", warm_s);
    if (bf16 && lf_backend_set_precision(be, LF_PRECISION_BF16) != LF_PRECISION_BF16) {
        printf("  no bf16 compute on this backend (%s): --bf16 ignored\n", lf_backend_describe(be));
        bf16 = 0;
    }
    if (bf16) { /* warm the bf16 primitives too */
        rc = lf_model_denoise(m, x, B, S, S, t, cond, L, vec, outb);
        lf_backend_set_precision(be, LF_PRECISION_F32);
        if (rc) return fprintf(stderr, "bench_unet: bf16 denoise failed (%d)\n", rc), 1;
    }
    s_torch_t tr = {0};
    s_child_t child = {0};
    char dir[] = "/tmp/lf_bench_unet.XXXXXX", line[4096];
    int dir_made = 0;
    if (with_torch) {
        if (!s_exists(python)) {
            printf("SKIP torch side: %s not found (create tests/reference/.venv, see "
                   "tests/reference/requirements.txt, or pass --torch PYTHON)\n",
                   python);
            with_torch = 0;
        } else if (!(dir_made = mkdtemp(dir) != NULL) ||
                   s_write(dir, "unet_in.bin", x, nx, t, B, cond, nc) ||
                   s_write(dir, "unet_out.bin", out, nx, NULL, 0, NULL, 0)) {
            fprintf(stderr, "bench_unet: cannot write inputs under /tmp\n");
            with_torch = 0;
        } else {
            printf("  PyTorch (%s), its steps alternating with ours:\n", python);
            if (s_child_start(&child, python, ckpt, dir, threads) ||
                s_child_until(&child, "READY", line, sizeof line, &tr)) {
                printf("  PyTorch side failed (see its output above)\n");
                s_child_finish(&child, &tr);
                with_torch = 0;
            }
        }
    }
    int hwm_ok = lf_bench_reset_hwm() == 0;
    double ts[64], tt[64], tb[64];
    if (reps > 64) reps = 64;
    for (int i = 0; i < reps && !rc; i++) {
        /* Process CPU time beside the wall time: on a loaded machine, with
         * --threads 1, the figure that compares runtimes fairly. */
        t0 = lf_bench_now();
        double c0 = s_cpu_s();
        rc = lf_model_denoise(m, x, B, S, S, t, cond, L, vec, out);
        ts[i] = lf_bench_now() - t0;
        printf("  step %d/%d  lightfarm %.2f s (cpu %.2f s)", i + 1, reps, ts[i], s_cpu_s() - c0);
        fflush(stdout);
        if (bf16) {
            lf_backend_set_precision(be, LF_PRECISION_BF16);
            t0 = lf_bench_now();
            c0 = s_cpu_s();
            rc = lf_model_denoise(m, x, B, S, S, t, cond, L, vec, outb);
            tb[i] = lf_bench_now() - t0;
            lf_backend_set_precision(be, LF_PRECISION_F32);
            printf("  bf16 %.2f s (cpu %.2f s)", tb[i], s_cpu_s() - c0);
            fflush(stdout);
        }
        if (with_torch) {
            fprintf(child.to, "step\n");
            fflush(child.to);
            if (s_child_until(&child, "STEP ", line, sizeof line, &tr)) {
                printf("\n  PyTorch side failed\n");
                with_torch = 0;
            } else {
                tt[i] = atof(line + 5);
                printf("  PyTorch %.2f s", tt[i]);
            }
        }
        printf("\n");
        fflush(stdout);
    }
    if (rc) return fprintf(stderr, "bench_unet: denoise failed (%d)\n", rc), 1;
    long step_hwm = hwm_ok ? lf_bench_status_kb("VmHWM") : -1, peak = s_maxrss_kb();
    if (child.pid > 0 && s_child_finish(&child, &tr)) printf("  PyTorch side failed\n");
    if (dir_made) s_rm_io(dir);
    /* Each of our steps ran next to one of PyTorch's: the median of the
     * pairs' ratios is the figure least moved by load that comes and goes. */
    double pr[64];
    int npr = 0;
    for (int i = 0; with_torch && i < reps; i++) pr[npr++] = tt[i] / ts[i];
    qsort(pr, (size_t)npr, sizeof pr[0], s_cmp);
    double pair_ratio = npr ? (npr % 2 ? pr[npr / 2] : 0.5 * (pr[npr / 2 - 1] + pr[npr / 2])) : 0;
    size_t work = lf_backend_workspace_bytes(be);
    double tmin = ts[0];
    for (int i = 1; i < reps; i++) tmin = fmin(tmin, ts[i]);
    qsort(ts, (size_t)reps, sizeof ts[0], s_cmp);
    double med = reps % 2 ? ts[reps / 2] : 0.5 * (ts[reps / 2 - 1] + ts[reps / 2]);
    double flops = B * s_unet_flops(S);
    double nan_out = 0, bmax = 0, omax = 0;
    for (size_t i = 0; i < nx; i++) {
        if (!isfinite(out[i]) || (bf16 && !isfinite(outb[i]))) nan_out++;
        if (bf16) bmax = fmax(bmax, fabs(outb[i] - out[i])), omax = fmax(omax, fabs(out[i]));
    }
    double bmed = 0, bpair = 0;
    if (bf16) {
        double pb[64];
        for (int i = 0; i < reps; i++) pb[i] = ts[i] / tb[i];
        qsort(pb, (size_t)reps, sizeof pb[0], s_cmp);
        bpair = reps % 2 ? pb[reps / 2] : 0.5 * (pb[reps / 2 - 1] + pb[reps / 2]);
        qsort(tb, (size_t)reps, sizeof tb[0], s_cmp);
        bmed = reps % 2 ? tb[reps / 2] : 0.5 * (tb[reps / 2 - 1] + tb[reps / 2]);
    }
    if (profile) {
        lf_profile_t *prof = lf_profile_new();
        for (int pi = 0; prof && pi <= bf16; pi++) {
            lf_backend_set_precision(be, pi ? LF_PRECISION_BF16 : LF_PRECISION_F32);
            lf_profile_reset(prof);
            lf_backend_set_profile(be, prof);
            t0 = lf_bench_now();
            if (lf_model_denoise(m, x, B, S, S, t, cond, L, vec, outb)) printf("  profiled step failed\n");
            double tp = lf_bench_now() - t0;
            lf_backend_set_profile(be, NULL);
            printf("\n== per-op profile, one step, %s compute (%.2f s wall) ==\n", pi ? "bf16" : "f32", tp);
            lf_profile_print(prof, stdout, ceil_gf);
        }
        lf_backend_set_precision(be, LF_PRECISION_F32);
        lf_profile_destroy(&prof);
    }
    lf_model_destroy(&m);
    lf_backend_destroy(&be);
    if (ceiling) {
        double c2 = s_ceiling(sh, 2, "after");
        if (c2 > ceil_gf) ceil_gf = c2;
    }
    s_loadavg(la, sizeof la);

    double gf = flops / med * 1e-9;
    printf("\n== SD1.5 UNet step, 512x512 CFG (batch 2), %d threads, load average now %s ==\n",
           threads, la);
    printf("  FLOPs per step        %.1f GFLOP (analytic: conv, linear, attention)", flops * 1e-9);
    if (tr.ok && tr.flops > 0) printf("; PyTorch hooks count %.1f", tr.flops * 1e-9);
    printf("\n  lightfarm             median %.2f s (min %.2f)  %6.1f GFLOP/s", med, tmin, gf);
    if (ceil_gf > 0)
        printf("  = %.0f %% of the sgemm ceiling %.1f GFLOP/s (best step: %.0f %%)", 100 * gf / ceil_gf,
               ceil_gf, 100 * flops / tmin * 1e-9 / ceil_gf);
    printf("\n                        peak RSS %.0f MiB (after load %.0f, steps' high-water %.0f), "
           "backend workspace %.0f MiB%s\n",
           peak / 1024.0, rss_load / 1024.0, step_hwm / 1024.0, work / 1048576.0,
           nan_out ? "  NON-FINITE OUTPUT" : "");
    if (bf16)
        printf("  lightfarm bf16        median %.2f s  %6.1f GFLOP/s; f32 / bf16 %.2fx (medians), %.2fx "
               "(median of the alternating pairs); max |bf16 - f32| %.3g, relative to max |f32| %.3g\n",
               bmed, flops / bmed * 1e-9, med / bmed, bpair, bmax, omax > 0 ? bmax / omax : 0);
    if (tr.ok) {
        printf("  PyTorch               median %.2f s (min %.2f)  %6.1f GFLOP/s\n"
               "                        peak RSS %.0f MiB (after load %.0f, steps' high-water "
               "%.0f)\n",
               tr.median_s, tr.min_s, flops / tr.median_s * 1e-9, tr.peak_rss_kb / 1024.0,
               tr.rss_load_kb / 1024.0, tr.step_hwm_kb / 1024.0);
        printf("  lightfarm / PyTorch   %.2fx faster (medians; median of the alternating pairs' "
               "ratios %.2fx), peak RSS %.2f of PyTorch's\n",
               tr.median_s / med, pair_ratio, (double)peak / (double)tr.peak_rss_kb);
        printf("  outputs               max |lf - torch| %.3g, relative to max |torch| %.3g\n",
               tr.max_abs, tr.rel_err);
        printf("  targets               faster than PyTorch: %s; >= 50 %% of ceiling: %s; "
               "lower peak RSS: %s\n",
               med < tr.median_s ? "yes" : "NO", gf >= 0.5 * ceil_gf ? "yes" : "NO",
               peak < tr.peak_rss_kb ? "yes" : "NO");
    }
    printf("BENCH unet_sd15 threads=%d weights=%s lf_median_s=%.4f lf_gflops=%.1f ceiling_gflops=%.1f "
           "ceiling_frac=%.3f lf_peak_rss_kb=%ld",
           threads, wt, med, gf, ceil_gf, ceil_gf > 0 ? gf / ceil_gf : 0, peak);
    if (tr.ok)
        printf(" torch_median_s=%.4f speedup=%.3f pair_speedup=%.3f torch_peak_rss_kb=%ld max_abs=%.4g "
               "rel_err=%.4g",
               tr.median_s, tr.median_s / med, pair_ratio, tr.peak_rss_kb, tr.max_abs, tr.rel_err);
    if (bf16) printf(" bf16_median_s=%.4f bf16_speedup=%.3f bf16_pair_speedup=%.3f bf16_rel_err=%.4g", bmed,
                     med / bmed, bpair, omax > 0 ? bmax / omax : 0);
    printf(" openblas_core=%s loadavg=\"%s\"\n", openblas_get_corename(), la);
    free(x), free(cond), free(out), free(outb), free(vec);
    return nan_out ? 1 : 0;
}
