/* bench_t5: a full-size T5-XXL encoder (Flux's text encoder; random f16
 * weights from tests/reference/make_t5_fixtures.py --full; a .gguf of them
 * with --q8_0) through lf_t5 on
 * the CPU backend: load (weights as stored, or --type f32|bf16), then one
 * encode of --tokens N (256: schnell, 512: dev) and a second one (the
 * recorded graph replayed), each with its wall time, GFLOP/s and the peak
 * RSS it reached (VmHWM reset before each phase; the file's mapped pages are
 * released after the load). Timing and memory only: nothing is checked. A
 * missing file prints SKIP.
 *
 * Usage: bench_t5 [--file PATH] [--tokens N] [--threads N] [--type f16|bf16|f32] */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lf_bench_util.h"
#include "lf_error.h"
#include "lf_t5.h"

int main(int argc, char **argv) {
    const char *file = LF_SOURCE_DIR "/tests/reference/out/t5xxl_full_f16.safetensors";
    int tokens = 256, threads = 0, type = -1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--file") && i + 1 < argc) file = argv[++i];
        else if (!strcmp(argv[i], "--tokens") && i + 1 < argc) tokens = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--type") && i + 1 < argc) {
            const char *t = argv[++i];
            type = !strcmp(t, "f32") ? LF_TYPE_F32 : !strcmp(t, "bf16") ? LF_TYPE_BF16 : LF_TYPE_F16;
        } else {
            fprintf(stderr, "usage: %s [--file PATH] [--tokens N] [--threads N] [--type f16|bf16|f32]\n",
                    argv[0]);
            return 2;
        }
    }
    struct stat sb;
    if (stat(file, &sb) != 0) {
        printf("SKIP: %s absent (tests/reference/make_t5_fixtures.py --full)\n", file);
        return 0;
    }
    if (tokens < 1) tokens = 256;
    char err[512] = "";
    lf_backend_t *be = lf_backend_cpu_new(threads);
    lf_pool_t *pool = lf_pool_new(be, 0);
    lf_weights_t *w = NULL;
    lf_t5_t *t5 = NULL;
    lf_bench_reset_hwm();
    double t0 = lf_bench_now();
    int rc = lf_weights_open(&w, file, err, sizeof err);
    lf_keymap_t km;
    if (!rc && lf_t5_keymap(&km, w)) rc = LF_ENOTFOUND, snprintf(err, sizeof err, "no T5 encoder");
    if (!rc) rc = lf_t5_new(&t5, &km, NULL, be, pool, type, err, sizeof err);
    lf_weights_destroy(&w);
    if (rc) {
        fprintf(stderr, "%s: %s (%s)\n", file, err, lf_strerror(rc));
        return 1;
    }
    const lf_t5_config_t *k = lf_t5_config(t5);
    printf("T5 encoder: d_model %d, %d heads of %d, d_ff %d, %d blocks, vocab %d; %d tokens\n",
           k->d_model, k->heads, k->d_kv, k->d_ff, k->layers, k->vocab, tokens);
    lf_bench_phase("load", t0, 0);
    /* Matrix products only: 2 * params-per-token * tokens + attention. */
    double per_tok = (double)k->layers * (4.0 * k->d_model * k->heads * k->d_kv +
                                          3.0 * k->d_model * k->d_ff);
    double flops = 2 * per_tok * tokens +
                   (double)k->layers * 4.0 * tokens * tokens * k->heads * k->d_kv;
    int32_t *ids = malloc((size_t)tokens * sizeof *ids);
    float *out = malloc((size_t)tokens * k->d_model * sizeof *out);
    for (int i = 0; i < tokens; i++) ids[i] = i < tokens / 4 ? 3 + (i * 7919) % 30000 : i == tokens / 4 ? 1 : 0;
    for (int pass = 0; pass < 2 && !rc; pass++) {
        lf_bench_reset_hwm();
        t0 = lf_bench_now();
        rc = lf_t5_encode(t5, ids, tokens, out);
        lf_bench_phase(pass ? "encode (replay)" : "encode (first: plans)", t0, flops);
    }
    double sum = 0;
    for (size_t i = 0; i < (size_t)tokens * k->d_model; i++) sum += out[i];
    printf("output sum %.6g (finite: %s)\n", sum, sum == sum && sum - sum == 0 ? "yes" : "no");
    free(ids), free(out);
    lf_t5_destroy(&t5);
    lf_pool_destroy(&pool);
    lf_backend_destroy(&be);
    return rc ? 1 : 0;
}
