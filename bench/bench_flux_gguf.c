/* bench_flux_gguf: a whole Flux transformer from a file through lf_flux on
 * the CPU backend, as the engine loads it: GGUF block types kept as stored
 * (MATMUL on the blocks), or an f16/bf16 file quantized on load with
 * --weights q8_0|q4_k|...; then --steps denoiser evaluations (one Euler step
 * each at CFG 1) of a --size image with --tokens T5 tokens, on random
 * inputs (prompt embeddings of T5's width, CLIP's pooled width, guidance 3.5
 * when the model has its embedding). Prints the load and each step with
 * its wall time, GFLOP/s (matrix products and attention) and peak RSS
 * (VmHWM reset before each phase; the file's pages are released after the
 * load). Timing and memory only: nothing is checked beyond a finite output.
 * The full-size file comes from tests/reference/make_flux_full_gguf.py;
 * bench_flux_sdcpp.sh runs this beside stable-diffusion.cpp on the same file.
 *
 * Usage: bench_flux_gguf --file PATH [--size PX] [--tokens N] [--steps N]
 *                        [--threads N] [--weights q8_0|q4_k|...] */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lf_bench_util.h"
#include "lf_error.h"
#include "lf_flux.h"

char *openblas_get_corename(void);

int main(int argc, char **argv) {
    const char *file = NULL;
    int size = 512, tokens = 256, steps = 1, threads = 0, type = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) goto usage;
        if (!strcmp(a, "--file")) file = v;
        else if (!strcmp(a, "--size")) size = atoi(v);
        else if (!strcmp(a, "--tokens")) tokens = atoi(v);
        else if (!strcmp(a, "--steps")) steps = atoi(v);
        else if (!strcmp(a, "--threads")) threads = atoi(v);
        else if (!strcmp(a, "--weights") && (type = lf_type_parse(v)) >= 0 && lf_type_is_quant((lf_type_t)type)) {
        } else goto usage;
        i++;
    }
    if (!file || size < 16 || size % 16 || tokens < 1 || steps < 1) goto usage;
    struct stat sb;
    if (stat(file, &sb) != 0) {
        printf("SKIP: %s absent (tests/reference/make_flux_full_gguf.py)\n", file);
        return 0;
    }
    char err[512] = "";
    lf_backend_t *be = lf_backend_cpu_new(threads);
    lf_pool_t *pool = lf_pool_new(be, 0);
    lf_weights_t *w = NULL;
    lf_flux_t *f = NULL;
    lf_bench_reset_hwm();
    double t0 = lf_bench_now();
    int rc = lf_weights_open(&w, file, err, sizeof err);
    lf_keymap_t km = {.w = w, .kind = LF_KEYMAP_DIFFUSERS};
    if (!rc && lf_keymap_has_prefix(w, "model.diffusion_model.")) strcpy(km.prefix, "model.diffusion_model.");
    /* A file's own "lf.config" (the tiny fixtures' RoPE axes), else Flux.1's defaults. */
    const char *ms = w ? lf_weights_metadata(w, "lf.config") : NULL;
    json_t *meta = ms ? json_loads(ms, 0, NULL) : NULL;
    if (!rc) rc = lf_flux_new(&f, &km, json_object_get(meta, "transformer"), be, pool, type, err, sizeof err);
    json_decref(meta);
    lf_weights_destroy(&w);
    if (rc) {
        fprintf(stderr, "%s: %s (%s)\n", file, err, lf_strerror(rc));
        lf_pool_destroy(&pool);
        lf_backend_destroy(&be);
        return 1;
    }
    const lf_flux_config_t *c = lf_flux_config(f);
    const int lh = size / 8, ni = (lh / 2) * (lh / 2), n = ni + tokens;
    printf("Flux transformer: hidden %d, %d heads, MLP %d, %d double + %d single blocks, guidance %s; "
           "%s, %d + %d tokens; weights %s, %.2f GiB in the pool\n",
           c->hidden, c->heads, c->mlp, c->n_double, c->n_single, c->guidance ? "yes" : "no", file, ni,
           tokens, type < 0 ? "as stored" : lf_type_name((lf_type_t)type), lf_pool_used(pool) / 1073741824.0);
    printf("OpenBLAS core: %s\n", openblas_get_corename());
    lf_bench_phase("load", t0, 0);
    /* Matrix products (2 * rows * cols per token) and attention (4 N^2 D per block). */
    const double D = c->hidden, M = c->mlp;
    double flops = 2.0 * n * c->n_double * (12 * D * D + 2 * D * M) + 2.0 * n * c->n_single * (4 * D * D + 2 * D * M) +
                   4.0 * n * n * D * (c->n_double + c->n_single) + 2.0 * ni * D * c->in_ch + 2.0 * tokens * D * c->txt_dim;
    size_t nx = (size_t)ni * c->in_ch, nt = (size_t)tokens * c->txt_dim;
    float *x = malloc(nx * sizeof *x), *txt = malloc(nt * sizeof *txt), *vec = malloc((size_t)c->vec_dim * 4);
    float *ids = malloc((size_t)ni * 3 * sizeof *ids), *out = malloc((size_t)ni * c->out_ch * sizeof *out);
    uint32_t s = 7;
    for (size_t i = 0; i < nx + nt + (size_t)c->vec_dim; i++) {
        s = s * 1664525u + 1013904223u;
        float r = (float)(s >> 8) / 16777216.0f * 2.0f - 1.0f;
        if (i < nx) x[i] = r;
        else if (i < nx + nt) txt[i - nx] = 0.5f * r;
        else vec[i - nx - nt] = r;
    }
    lf_flux_image_ids(lh, lh, ids);
    const float t = 1.0f, g = 3.5f;
    for (int k = 0; k < steps && !rc; k++) {
        char what[32];
        snprintf(what, sizeof what, "step %d%s", k + 1, k ? "" : " (plans)");
        lf_bench_reset_hwm();
        t0 = lf_bench_now();
        rc = lf_flux_forward(f, 1, ni, tokens, x, txt, vec, &t, &g, ids, NULL, out);
        lf_bench_phase(what, t0, flops);
    }
    double sum = 0;
    for (size_t i = 0; i < (size_t)ni * c->out_ch; i++) sum += out[i];
    printf("output sum %.6g (finite: %s)%s%s\n", sum, sum == sum && sum - sum == 0 ? "yes" : "no", rc ? "; " : "",
           rc ? lf_strerror(rc) : "");
    free(x), free(txt), free(vec), free(ids), free(out);
    lf_flux_destroy(&f);
    lf_pool_destroy(&pool);
    lf_backend_destroy(&be);
    return rc ? 1 : 0;
usage:
    fprintf(stderr, "usage: %s --file PATH [--size PX (multiple of 16)] [--tokens N] [--steps N] [--threads N] "
                    "[--weights q8_0|q6_k|q5_k|q5_1|q5_0|q4_k|q4_1|q4_0]\n", argv[0]);
    return 2;
}
