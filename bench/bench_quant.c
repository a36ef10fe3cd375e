/* bench_quant: quantized weights (kernels/lf_quant) beside f32 sgemm on the
 * same logical matrix, and beside ggml's (stable-diffusion.cpp's) CPU
 * mul_mat, in one run.
 *
 *   y[M, N] = x[M, K] · Wᵀ, W [N, K] in Q8_0 / Q4_K (Flux shapes: K = 3072,
 *   N = 3072 or 12288, M = 1024 or 4096 tokens with --flux; else N = 3072,
 *   M = 256 and 4096)
 *   - f32:       cblas_sgemm on the dequantized W (what an f32 model runs;
 *                needs the whole widened matrix: N*K*4 bytes)
 *   - op table:  lf_op_matmul on the CPU backend with W as a pool tensor of
 *                the block type (what a model runs: tiles dequantized on the
 *                backend's threads, sgemm per tile)
 *   - tiled:     lf_quant_matmul (the same idea, single-threaded dequant)
 *   - int8:      Q8_0 only: x quantized to Q8_0, AVX-512 VNNI dot products
 *                (lf_quant_matmul_q8_int8, as many threads as OpenBLAS)
 *   - ggml:      with --ggml PATH, a driver linking ggml (built by hand
 *                outside the repo; docs/PERFORMANCE.md has it) run as a child
 *                for the same type and shape with as many threads
 * and dequantization throughput per type and vector form (GB/s of f32
 * written, and of quantized bytes read; --no-dequant skips it).
 *
 * Usage: bench_quant [reps] [--flux] [--ggml PATH] [--no-dequant | --dequant-only] (best of
 * reps, default 3). Prints the load average: the machine is shared, so
 * compare ratios from one run. */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lf_backend.h"
#include "lf_pool.h"
#include "lf_quant.h"
#include "lf_tensor.h"
#include "lf_bench_util.h"

/* OpenBLAS extras (declared by its cblas.h too on most builds). */
char *openblas_get_corename(void);
char *openblas_get_config(void);
int openblas_get_num_threads(void);

static void s_random_blocks(lf_quant_type_t q, unsigned char *b, size_t nblocks)
{
    size_t bb = lf_quant_block_bytes(q);
    for (size_t i = 0; i < nblocks * bb; i++) b[i] = (unsigned char)(rand() & 0xff);
    for (size_t i = 0; i < nblocks; i++) {
        unsigned char *blk = b + i * bb;
        uint16_t d = lf_f32_to_f16(((float)(rand() % 2001) - 1000.0f) * 1e-5f);
        uint16_t m = lf_f32_to_f16(((float)(rand() % 2001) - 1000.0f) * 1e-5f);
        size_t at = q == LF_QUANT_Q6_K ? 208 : 0;
        blk[at] = (unsigned char)d, blk[at + 1] = (unsigned char)(d >> 8);
        if (q == LF_QUANT_Q4_K || q == LF_QUANT_Q5_K || q == LF_QUANT_Q4_1 || q == LF_QUANT_Q5_1)
            blk[2] = (unsigned char)m, blk[3] = (unsigned char)(m >> 8);
    }
}

/* Runs the ggml driver (built by hand outside the repo, docs/PERFORMANCE.md)
 * and returns its best time in ms, or -1. */
static double s_ggml_ms(const char *path, const char *type, int64_t M, int64_t N, int64_t K, int reps, int threads)
{
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "'%s' %s %lld %lld %lld %d %d", path, type, (long long)M, (long long)N, (long long)K,
             reps, threads);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    char line[256], t[16];
    double ms = -1;
    long long a, b, c;
    while (fgets(line, sizeof line, p))
        if (sscanf(line, "ggml_mm %15s %lld %lld %lld %lf", t, &a, &b, &c, &ms) == 5) break;
    pclose(p);
    return ms;
}

static void s_row(const char *q, int64_t M, int64_t N, int64_t K, const char *method, double t, double flop,
                  double tf, size_t wbytes)
{
    printf("%-5s %5lld %6lld %5lld %-24s %9.1f %9.1f %8.2f %12zu\n", q, (long long)M, (long long)N, (long long)K,
           method, t * 1e3, flop / t / 1e9, tf / t, wbytes);
}

int main(int argc, char **argv)
{
    int reps = 3, flux_shapes = 0, dequant = 1;
    const char *ggml = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--ggml") && i + 1 < argc) ggml = argv[++i];
        else if (!strcmp(argv[i], "--flux")) flux_shapes = 1;
        else if (!strcmp(argv[i], "--no-dequant")) dequant = 0;
        else if (!strcmp(argv[i], "--dequant-only")) dequant = 2;
        else reps = atoi(argv[i]);
    }
    if (reps < 1) reps = 1;
    double la[3] = {0};
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf %lf %lf", &la[0], &la[1], &la[2]) != 3) la[0] = -1;
        fclose(f);
    }
    const char *simd[] = {"scalar", "avx2", "avx512"};
    printf("bench_quant: load average %.2f %.2f %.2f (shared machine: compare ratios within this run)\n", la[0],
           la[1], la[2]);
    printf("OpenBLAS: core %s, threads %d, config %s; lf_quant vector form: %s\n", openblas_get_corename(),
           openblas_get_num_threads(), openblas_get_config(), simd[lf_quant_simd_detect()]);
    srand(42);

    /* Dequantization throughput. */
    const int64_t nd = dequant ? 3072 * 1024 : 0; /* weights per call */
    float *dst = malloc((size_t)nd * sizeof *dst);
    printf("\ndequantize %lld weights (best of %d)\n%-6s %-7s %9s %11s %11s\n", (long long)nd, reps, "type", "form",
           "ms", "GB/s f32", "GB/s read");
    lf_quant_type_t dtypes[] = {LF_QUANT_Q8_0, LF_QUANT_Q4_0, LF_QUANT_Q4_1, LF_QUANT_Q5_0, LF_QUANT_Q5_1,
                                LF_QUANT_Q4_K, LF_QUANT_Q5_K, LF_QUANT_Q6_K};
    for (size_t ti = 0; dequant && ti < sizeof dtypes / sizeof dtypes[0]; ti++) {
        lf_quant_type_t q = dtypes[ti];
        size_t bytes = lf_quant_row_bytes(q, nd);
        unsigned char *src = malloc(bytes);
        s_random_blocks(q, src, bytes / lf_quant_block_bytes(q));
        for (int lv = LF_QUANT_SCALAR; lv <= (int)lf_quant_simd_detect(); lv++) {
            double best = 1e30;
            for (int r = 0; r < reps; r++) {
                double t0 = lf_bench_now();
                lf_quant_dequantize_at(q, src, dst, nd, (lf_quant_simd_t)lv);
                double t = lf_bench_now() - t0;
                if (t < best) best = t;
            }
            printf("%-6s %-7s %9.2f %11.2f %11.2f\n", lf_quant_name(q), simd[lv], best * 1e3,
                   nd * 4.0 / best / 1e9, bytes / best / 1e9);
        }
        free(src);
    }
    free(dst);
    if (dequant == 2) return 0;

    /* Products at Flux shapes (attention projections 3072 -> 3072, MLP
     * 3072 -> 12288; 1024 tokens = 512x512, 4096 = 1024x1024). */
    typedef struct { int64_t M, N, K; } s_shape_t;
    static const s_shape_t small[] = {{256, 3072, 3072}, {4096, 3072, 3072}};
    static const s_shape_t flux[] = {{1024, 3072, 3072}, {4096, 3072, 3072}, {1024, 12288, 3072},
                                     {4096, 12288, 3072}};
    const s_shape_t *shapes = flux_shapes ? flux : small;
    size_t n_shapes = flux_shapes ? sizeof flux / sizeof flux[0] : sizeof small / sizeof small[0];
    int64_t maxM = 4096, maxN = flux_shapes ? 12288 : 3072, K = 3072;
    float *wf = malloc((size_t)(maxN * K) * sizeof *wf);
    float *x = malloc((size_t)(maxM * K) * sizeof *x);
    float *y = malloc((size_t)(maxM * maxN) * sizeof *y), *y0 = malloc((size_t)(maxM * maxN) * sizeof *y0);
    for (int64_t i = 0; i < maxM * K; i++) x[i] = (float)(rand() % 2001 - 1000) / 1000.0f;
    lf_backend_t *be = lf_backend_cpu_new(openblas_get_num_threads());
    lf_quant_type_t mtypes[] = {LF_QUANT_Q8_0, LF_QUANT_Q4_K};
    printf("\ny[M,N] = x[M,K] . W^T (best of %d; GFLOP/s counts 2*M*N*K; vs f32 = f32 time / time)\n", reps);
    if (ggml) printf("ggml: %s, %d threads (its own random W of the same type, quantized by ggml)\n", ggml,
                     openblas_get_num_threads());
    printf("%-5s %5s %6s %5s %-24s %9s %9s %8s %12s\n", "type", "M", "N", "K", "method", "ms", "GFLOP/s", "vs f32",
           "W bytes");
    for (size_t ti = 0; ti < 2; ti++) {
        lf_quant_type_t q = mtypes[ti];
        for (size_t si = 0; si < n_shapes; si++) {
            int64_t M = shapes[si].M, N = shapes[si].N;
            size_t wb = lf_quant_row_bytes(q, K) * (size_t)N;
            unsigned char *w = malloc(wb);
            s_random_blocks(q, w, wb / lf_quant_block_bytes(q));
            lf_quant_dequantize(q, w, wf, N * K);
            /* The weight in a pool, as a model holds it. */
            lf_pool_t *pool = lf_pool_new(be, 0);
            const int64_t wne[2] = {K, N};
            lf_tensor_t *wt = lf_pool_tensor(pool, "w", (lf_type_t)(LF_TYPE_Q4_0 + q), 2, wne);
            if (!wt || lf_pool_load(pool, wt, w, wb)) return 1;
            lf_tensor_t xt = lf_tensor_4d(LF_TYPE_F32, K, M, 1, 1, x), yt = lf_tensor_4d(LF_TYPE_F32, N, M, 1, 1, y);
            double flop = 2.0 * M * N * K, tf = 1e30, to = 1e30, tt = 1e30, ti8 = 1e30, tg = -1;
            for (int r = 0; r < reps; r++) {
                double t0 = lf_bench_now();
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)M, (int)N, (int)K, 1.0f, x, (int)K, wf,
                            (int)K, 0.0f, y0, (int)N);
                double t = lf_bench_now() - t0;
                if (t < tf) tf = t;
                t0 = lf_bench_now();
                if (lf_op_matmul(be, &yt, &xt, wt, NULL) != 0) return 1;
                t = lf_bench_now() - t0;
                if (t < to) to = t;
                t0 = lf_bench_now();
                if (lf_quant_matmul(q, w, N, K, x, K, M, y, N, 0) != 0) return 1;
                t = lf_bench_now() - t0;
                if (t < tt) tt = t;
                if (q == LF_QUANT_Q8_0) {
                    t0 = lf_bench_now();
                    if (lf_quant_matmul_q8_int8(w, N, K, x, K, M, y, N, openblas_get_num_threads()) == 0) {
                        t = lf_bench_now() - t0;
                        if (t < ti8) ti8 = t;
                    }
                }
                /* ggml in the same repetition (its child times 2 calls: the
                 * first warms its buffers), so load changes hit both. */
                if (ggml) {
                    t = s_ggml_ms(ggml, q == LF_QUANT_Q8_0 ? "q8_0" : "q4_k", M, N, K, 2,
                                  openblas_get_num_threads()) / 1e3;
                    if (t > 0 && (tg < 0 || t < tg)) tg = t;
                }
            }
            /* The op-table result against the f32 product (same W). */
            double emax = 0, amax = 0;
            if (lf_op_matmul(be, &yt, &xt, wt, NULL) != 0) return 1;
            for (int64_t i = 0; i < M * N; i++) {
                double e = fabs((double)y[i] - y0[i]);
                if (e > emax) emax = e;
                if (fabs(y0[i]) > amax) amax = fabs(y0[i]);
            }
            const char *qn = lf_quant_name(q);
            s_row(qn, M, N, K, "f32 sgemm", tf, flop, tf, (size_t)(N * K * 4));
            s_row(qn, M, N, K, "op table MATMUL (tiled)", to, flop, tf, wb);
            s_row(qn, M, N, K, "lf_quant_matmul (tiled)", tt, flop, tf, wb);
            if (ti8 < 1e30) s_row(qn, M, N, K, "int8 VNNI (x to Q8_0)", ti8, flop, tf, wb);
            if (tg > 0) s_row(qn, M, N, K, "ggml mul_mat", tg, flop, tf, wb);
            else if (ggml) printf("      ggml driver failed\n");
            printf("      max |op table - f32| = %.3g (max |y| %.3g)\n", emax, amax);
            lf_pool_destroy(&pool);
            free(w);
        }
    }
    lf_backend_destroy(&be);
    free(wf);
    free(x);
    free(y);
    free(y0);
    return 0;
}
