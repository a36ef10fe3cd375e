/* bench_pack: the UNet step's process CPU time and RSS with the pre-packed
 * weights in a file, in memory, and off (lf_engine_opts_t.pack), side by
 * side in one process, on a whole-model generation through lf_engine (text
 * encoder, N Euler steps with CFG 7: UNet batch 2). bf16 by default;
 * --precision f32: the f16 weights widened once into f32 copies (file,
 * memory) or per call (off).
 *
 * For each round and each mode, in turn: a new engine with that pack mode,
 * the model loaded, one warm-up generation (graphs planned, weights packed)
 * and one measured generation, both cancelled after their last step (the VAE
 * decode is not what this measures: bench_gen_mem covers the whole image).
 * Per mode it prints the median CPU time (user + system, getrusage) of steps
 * 2..N of the measured generations, their wall time, the RSS after the last
 * step (anon / file) and the steps' peak RSS (VmHWM, reset after step 1),
 * and the packed bytes' mode in effect. Rounds interleave the modes so that
 * a change of the machine's load falls on all of them.
 *
 * Usage: bench_pack [--ckpt PATH] [--steps N (4)] [--threads N (1)] [--size N (512)]
 *                   [--rounds N (1)] [--modes file,memory,off] [--pack-dir DIR]
 *                   [--precision bf16|f32 (bf16)]
 * Checkpoint: --ckpt, else $LF_SD15_FULL; missing: SKIP, exit 0. */
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "lf_bench_util.h"
#include "lf_engine.h"
#include "lf_error.h"
#include "lf_log.h"

#define S_MODES 3
#define S_MAX_SAMPLES 256

typedef struct {
    int steps;
    double cpu_prev, wall_prev;
    double cpu[64], wall[64];
    long anon_kb, file_kb, hwm_kb;
    atomic_bool cancel;
} s_trace_t;

static double s_cpu(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_sec +
           1e-6 * (double)ru.ru_stime.tv_usec;
}

static void s_progress(void *ud, int step, int steps, const uint8_t *preview, size_t preview_len) {
    (void)preview, (void)preview_len;
    s_trace_t *tr = ud;
    const double c = s_cpu(), w = lf_bench_now();
    if (step >= 1 && step <= 64) tr->cpu[step - 1] = c - tr->cpu_prev, tr->wall[step - 1] = w - tr->wall_prev;
    tr->cpu_prev = c, tr->wall_prev = w;
    if (step == 1) lf_bench_reset_hwm();
    if (step == steps) {
        tr->anon_kb = lf_bench_status_kb("RssAnon");
        tr->file_kb = lf_bench_status_kb("RssFile");
        tr->hwm_kb = lf_bench_status_kb("VmHWM");
        atomic_store(&tr->cancel, true); /* no decode */
    }
}

static int s_cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double s_median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, s_cmp);
    return n ? (n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2])) : 0;
}

static double s_loadavg(void) {
    double l = -1;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f && fscanf(f, "%lf", &l) != 1) l = -1;
    if (f) fclose(f);
    return l;
}

/* One generation cancelled after its last step; 0 or an error. */
static int s_generate(lf_engine_t *e, int steps, int size, const char *prec, s_trace_t *tr) {
    lf_engine_request_t req = lf_engine_request_defaults();
    req.prompt = "a photograph of an astronaut riding a horse";
    req.negative = "blurry";
    req.steps = steps;
    req.seed = 5;
    req.width = req.height = size;
    req.precision = prec;
    memset(tr, 0, sizeof *tr);
    tr->steps = steps;
    tr->cpu_prev = s_cpu(), tr->wall_prev = lf_bench_now();
    lf_engine_result_t res = {0};
    int rc = lf_engine_generate(e, &req, s_progress, tr, &tr->cancel, &res);
    lf_engine_result_clear(&res);
    return rc == LF_ECANCELED ? 0 : rc ? rc : LF_EINTERNAL;
}

int main(int argc, char **argv) {
    const char *ckpt = getenv("LF_SD15_FULL"), *modes_arg = "file,memory,off", *dir = NULL, *prec = "bf16";
    int steps = 4, threads = 1, size = 512, rounds = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--ckpt") && v) ckpt = v, i++;
        else if (!strcmp(a, "--steps") && v) steps = atoi(v), i++;
        else if (!strcmp(a, "--threads") && v) threads = atoi(v), i++;
        else if (!strcmp(a, "--size") && v) size = atoi(v), i++;
        else if (!strcmp(a, "--rounds") && v) rounds = atoi(v), i++;
        else if (!strcmp(a, "--modes") && v) modes_arg = v, i++;
        else if (!strcmp(a, "--pack-dir") && v) dir = v, i++;
        else if (!strcmp(a, "--precision") && v && (!strcmp(v, "f32") || !strcmp(v, "bf16"))) prec = v, i++;
        else {
            fprintf(stderr, "usage: bench_pack [--ckpt PATH] [--steps N] [--threads N] [--size N] [--rounds N] "
                            "[--modes file,memory,off] [--pack-dir DIR] [--precision bf16|f32]\n");
            return 2;
        }
    }
    if (!ckpt || access(ckpt, R_OK)) {
        printf("SKIP bench_pack: no checkpoint (--ckpt or $LF_SD15_FULL)\n");
        return 0;
    }
    if (steps < 2 || steps > 64 || rounds < 1 || rounds > 16) return fprintf(stderr, "bench_pack: bad --steps/--rounds\n"), 2;
    char modes[S_MODES][8];
    int n_modes = 0;
    for (const char *p = modes_arg; *p && n_modes < S_MODES;) {
        size_t n = strcspn(p, ",");
        snprintf(modes[n_modes++], sizeof modes[0], "%.*s", (int)(n < 7 ? n : 7), p);
        p += n + (p[n] == ',');
    }
    printf("bench_pack: %s, %dx%d, %d steps (%s, CFG 7), %d threads, %d round(s), load average %.2f\n", ckpt,
           size, size, steps, prec, threads, rounds, s_loadavg());
    static double cpu[S_MODES][S_MAX_SAMPLES], wall[S_MODES][S_MAX_SAMPLES];
    int n[S_MODES] = {0};
    long anon[S_MODES] = {0}, file[S_MODES] = {0}, hwm[S_MODES] = {0};
    char in_effect[S_MODES][8] = {{0}};
    for (int r = 0; r < rounds; r++)
        for (int m = 0; m < n_modes; m++) {
            char err[256] = "";
            lf_engine_opts_t eo = {.n_threads = threads, .precision = prec, .pack = modes[m], .pack_dir = dir};
            lf_engine_t *e = NULL;
            if (lf_engine_new(&eo, &e, err, sizeof err)) return fprintf(stderr, "bench_pack: %s\n", err), 1;
            if (lf_engine_load(e, ckpt, NULL)) return fprintf(stderr, "bench_pack: %s\n", lf_engine_errstr(e)), 1;
            snprintf(in_effect[m], sizeof in_effect[m], "%s", lf_engine_pack(e));
            s_trace_t tr;
            if (s_generate(e, steps, size, prec, &tr) || s_generate(e, steps, size, prec, &tr))
                return fprintf(stderr, "bench_pack: %s\n", lf_engine_errstr(e)), 1;
            double c[64], w[64];
            memcpy(c, tr.cpu + 1, (size_t)(steps - 1) * sizeof *c);
            memcpy(w, tr.wall + 1, (size_t)(steps - 1) * sizeof *w);
            printf("  round %d %-6s (in effect %-6s): step CPU %.2f s, wall %.2f s (medians of %d); RSS after the "
                   "steps %.0f MiB (anon %.0f, file %.0f), steps' peak %.0f MiB; load %.2f\n",
                   r + 1, modes[m], in_effect[m], s_median(c, steps - 1), s_median(w, steps - 1), steps - 1,
                   (double)(tr.anon_kb + tr.file_kb) / 1024, (double)tr.anon_kb / 1024, (double)tr.file_kb / 1024,
                   (double)tr.hwm_kb / 1024, s_loadavg());
            fflush(stdout);
            for (int s = 1; s < steps && n[m] < S_MAX_SAMPLES; s++, n[m]++)
                cpu[m][n[m]] = tr.cpu[s], wall[m][n[m]] = tr.wall[s];
            if (tr.anon_kb + tr.file_kb > anon[m] + file[m]) anon[m] = tr.anon_kb, file[m] = tr.file_kb;
            if (tr.hwm_kb > hwm[m]) hwm[m] = tr.hwm_kb;
            lf_engine_destroy(&e);
        }
    for (int m = 0; m < n_modes; m++)
        printf("RESULT pack=%s in_effect=%s step_cpu_s=%.3f step_wall_s=%.3f samples=%d rss_steps_anon_mib=%.0f "
               "rss_steps_file_mib=%.0f hwm_steps_mib=%.0f\n",
               modes[m], in_effect[m], s_median(cpu[m], n[m]), s_median(wall[m], n[m]), n[m],
               (double)anon[m] / 1024, (double)file[m] / 1024, (double)hwm[m] / 1024);
    printf("bench_pack: done, load average %.2f\n", s_loadavg());
    return 0;
}
