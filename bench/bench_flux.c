/* bench_flux: Flux.1-dev transformer forwards at full width (hidden 3072,
 * 24 heads, T5 width 4096) with fewer blocks, through lf_flux (f32 weights
 * widened from the bf16 file), beside diffusers/PyTorch on the same weights
 * and inputs in the same run (bench_flux_torch.py, run as a child after the
 * engine's model is freed, so the two never share the memory). The time
 * is extrapolated to the full 19 + 38 blocks by weights per token.
 *
 * Weights and inputs live in --dir (default /tmp/lf_bench_flux), written on
 * first use by bench_flux_torch.py --write (about 1 GB for 1 + 2 blocks):
 *
 *   flock /tmp/lf-bigmem.lock build/release/bench/bench_flux [--dir D] [--double N]
 *       [--single N] [--size PX] [--tokens T] [--reps N] [--threads N] [--torch PYTHON|none] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lf_bench_util.h"
#include "lf_flux.h"
#include "lf_weights.h"

static int s_exists(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0;
}

static int s_cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double s_load1(void) {
    double l = NAN;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f && fscanf(f, "%lf", &l) != 1) l = NAN;
    if (f) fclose(f);
    return l;
}

/* Tensor name of file w as floats (caller frees), its count in *n. */
static float *s_read(const lf_weights_t *w, const char *name, size_t *n) {
    const lf_tensor_info_t *t = lf_weights_find(w, name);
    if (!t) return NULL;
    size_t k = (size_t)lf_tensorinfo_numel(t);
    float *v = malloc(k * sizeof *v);
    if (v && lf_weights_read_f32(t, v)) {
        free(v);
        return NULL;
    }
    if (n) *n = k;
    return v;
}

int main(int argc, char **argv) {
    const char *dir = "/tmp/lf_bench_flux", *py = getenv("LF_BENCH_TORCH");
    int nd = 1, ns = 2, size = 512, tokens = 256, reps = 2, threads = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) goto usage;
        if (!strcmp(a, "--dir")) dir = v;
        else if (!strcmp(a, "--double")) nd = atoi(v);
        else if (!strcmp(a, "--single")) ns = atoi(v);
        else if (!strcmp(a, "--size")) size = atoi(v);
        else if (!strcmp(a, "--tokens")) tokens = atoi(v);
        else if (!strcmp(a, "--reps")) reps = atoi(v);
        else if (!strcmp(a, "--threads")) threads = atoi(v);
        else if (!strcmp(a, "--torch")) py = v;
        else goto usage;
        i++;
    }
    if (nd < 0 || ns < 0 || nd + ns < 1 || size < 16 || size % 16 || tokens < 1 || reps < 1) goto usage;
    if (!py || !*py) py = s_exists("/work/venv-torch2/bin/python") ? "/work/venv-torch2/bin/python" : "none";
    const int use_torch = strcmp(py, "none") != 0;
    char wpath[4200], ipath[4200], opath[4200], cmd[9000];
    snprintf(wpath, sizeof wpath, "%s/flux.safetensors", dir);
    snprintf(ipath, sizeof ipath, "%s/inputs.safetensors", dir);
    snprintf(opath, sizeof opath, "%s/torch_out.safetensors", dir);
    const char *fmt = "'%s' '%s/bench/bench_flux_torch.py' --%s '%s' --double %d --single %d --size %d "
                      "--tokens %d --reps %d --threads %d";
    const int nthreads = threads > 0 ? threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    char dpath[4200];
    snprintf(dpath, sizeof dpath, "%s/diffusers.safetensors", dir);
    if (!s_exists(wpath) || !s_exists(ipath) || !s_exists(dpath)) {
        if (!use_torch) {
            printf("SKIP: no %s and no Python to write it\n", wpath);
            return 0;
        }
        snprintf(cmd, sizeof cmd, fmt, py, LF_SOURCE_DIR, "write", dir, nd, ns, size, tokens, reps, nthreads);
        if (system(cmd) != 0 || !s_exists(wpath)) {
            printf("SKIP: could not write %s\n", wpath);
            return 0;
        }
    }
    const double load0 = s_load1();
    char err[512] = "";
    lf_weights_t *w = NULL, *in = NULL;
    lf_backend_t *be = lf_backend_cpu_new(threads);
    lf_pool_t *pool = be ? lf_pool_new(be, 0) : NULL;
    lf_flux_t *f = NULL;
    double t0 = lf_bench_now();
    int rc = pool ? lf_weights_open(&w, wpath, err, sizeof err) : -1;
    lf_keymap_t km = {.w = w, .kind = LF_KEYMAP_DIFFUSERS};
    if (!rc) rc = lf_flux_new(&f, &km, NULL, be, pool, LF_TYPE_F32, err, sizeof err);
    if (!rc) rc = lf_weights_open(&in, ipath, err, sizeof err);
    if (rc) {
        fprintf(stderr, "load: %s\n", err);
        return 1;
    }
    const double load_s = lf_bench_now() - t0;
    const lf_flux_config_t *c = lf_flux_config(f);
    if (c->n_double != nd || c->n_single != ns) {
        fprintf(stderr, "%s holds %d + %d blocks, not %d + %d: remove %s to rewrite it\n", wpath,
                c->n_double, c->n_single, nd, ns, dir);
        return 1;
    }
    size_t nx = 0, nt = 0;
    float *x = s_read(in, "x", &nx), *txt = s_read(in, "txt", &nt), *vec = s_read(in, "vec", NULL);
    float *t = s_read(in, "t", NULL), *gd = s_read(in, "guidance", NULL);
    float *ii = s_read(in, "img_ids", NULL), *ti = s_read(in, "txt_ids", NULL);
    if (!x || !txt || !vec || !t || !gd || !ii || !ti) {
        fprintf(stderr, "%s: inputs missing\n", ipath);
        return 1;
    }
    const int ni = (int)(nx / 64), nt5 = (int)(nt / 4096);
    float *out = malloc(nx * sizeof *out);
    double *ts = calloc((size_t)reps, sizeof *ts);
    printf("model: hidden %d, %d heads, %d double + %d single blocks, %d img + %d txt tokens; "
           "loaded in %.1f s; backend %s\n",
           c->hidden, c->heads, c->n_double, c->n_single, ni, nt5, load_s, lf_backend_describe(be));
    rc = lf_flux_forward(f, 1, ni, nt5, x, txt, vec, t, gd, ii, ti, out); /* warm-up: plans */
    for (int r = 0; r < reps && !rc; r++) {
        t0 = lf_bench_now();
        rc = lf_flux_forward(f, 1, ni, nt5, x, txt, vec, t, gd, ii, ti, out);
        ts[r] = lf_bench_now() - t0;
    }
    if (rc) {
        fprintf(stderr, "forward: error %d: %s\n", rc, lf_backend_errstr(be));
        return 1;
    }
    qsort(ts, (size_t)reps, sizeof *ts, s_cmp);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    const long our_rss = ru.ru_maxrss;
    lf_flux_destroy(&f);
    lf_pool_destroy(&pool);
    lf_weights_destroy(&w);
    const double ours = ts[reps / 2];
    printf("lightfarm: median %.2f s (min %.2f, %d reps); peak RSS %ld MiB\n", ours, ts[0], reps,
           our_rss / 1024);
    double tm = NAN, rel = NAN;
    long trss = 0;
    if (use_torch) {
        snprintf(cmd, sizeof cmd, fmt, py, LF_SOURCE_DIR, "run", dir, nd, ns, size, tokens, reps, nthreads);
        FILE *p = popen(cmd, "r");
        char line[1024];
        while (p && fgets(line, sizeof line, p)) {
            fputs(line, stdout);
            if (!strncmp(line, "RESULT torch", 12))
                sscanf(line, "RESULT torch s_median=%lf s_min=%*f load_s=%*f peak_rss_kb=%ld", &tm, &trss);
        }
        if (p) pclose(p);
        lf_weights_t *tw = NULL;
        float *ref = lf_weights_open(&tw, opath, err, sizeof err) ? NULL : s_read(tw, "out", NULL);
        if (ref) {
            double m = 0, e = 0;
            for (size_t k = 0; k < nx; k++) {
                m = fmax(m, fabs(ref[k]));
                e = fmax(e, fabs((double)out[k] - ref[k]));
            }
            rel = e / m;
        }
        free(ref);
        lf_weights_destroy(&tw);
        printf("PyTorch (diffusers, f32): median %.2f s; peak RSS %ld MiB\n", tm, trss / 1024);
        printf("speed-up (PyTorch / lightfarm): %.2fx; difference (max |d| / max |ref|): %.3g\n",
               tm / ours, rel);
    }
    /* By weights per token (a double block 18 D^2, a single 15 D^2; the
     * embeddings and the final layer are small at full size). */
    printf("extrapolated to Flux.1's 19 + 38 blocks: ~%.0f s per step (lightfarm)\n",
           ours * (19.0 * 1.2 + 38.0) / (nd * 1.2 + ns));
    printf("load average %.2f -> %.2f\n", load0, s_load1());
    printf("BENCH flux_blocks double=%d single=%d img_tokens=%d txt_tokens=%d s=%.3f torch_s=%.3f "
           "rss_mib=%ld torch_rss_mib=%ld rel=%.3g\n",
           nd, ns, ni, nt5, ours, tm, our_rss / 1024, trss / 1024, rel);
    free(x), free(txt), free(vec), free(t), free(gd), free(ii), free(ti), free(out), free(ts);
    lf_weights_destroy(&in);
    lf_backend_destroy(&be);
    return 0;
usage:
    fprintf(stderr, "usage: %s [--dir D] [--double N] [--single N] [--size PX (multiple of 16)] "
                    "[--tokens T] [--reps N] [--threads N] [--torch PYTHON|none]\n", argv[0]);
    return 2;
}
