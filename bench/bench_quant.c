/* bench_quant: quantized weights (kernels/lf_quant) beside f32 sgemm on the
 * same logical matrix, in one run.
 *
 *   y[M, N] = x[M, K] · Wᵀ, W [N, K] in Q8_0 / Q4_K (Flux-like: N = K = 3072,
 *   M = 256 and 4096 tokens)
 *   - f32:      cblas_sgemm on the dequantized W (what an f32 model runs;
 *               needs the whole widened matrix: N*K*4 bytes)
 *   - tiled:    lf_quant_matmul (dequantize a tile of rows, sgemm it) at
 *               two tile sizes
 *   - widen:    dequantize all of W then sgemm (the time a load-time
 *               widening pays on every call if done per call)
 *   - int8:     Q8_0 only: x quantized to Q8_0, AVX-512 VNNI dot products
 *               (lf_quant_matmul_q8_int8, as many threads as OpenBLAS)
 * and dequantization throughput per type and vector form (GB/s of f32
 * written, and of quantized bytes read).
 *
 * Usage: bench_quant [reps]   (best of reps, default 3). Prints the load
 * average: the machine is shared, so compare ratios from one run. */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

int main(int argc, char **argv)
{
    int reps = argc > 1 ? atoi(argv[1]) : 3;
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
    const int64_t nd = 3072 * 1024; /* weights per call */
    float *dst = malloc((size_t)nd * sizeof *dst);
    printf("\ndequantize %lld weights (best of %d)\n%-6s %-7s %9s %11s %11s\n", (long long)nd, reps, "type", "form",
           "ms", "GB/s f32", "GB/s read");
    lf_quant_type_t dtypes[] = {LF_QUANT_Q8_0, LF_QUANT_Q4_0, LF_QUANT_Q4_1, LF_QUANT_Q5_0, LF_QUANT_Q5_1,
                                LF_QUANT_Q4_K, LF_QUANT_Q5_K, LF_QUANT_Q6_K};
    for (size_t ti = 0; ti < sizeof dtypes / sizeof dtypes[0]; ti++) {
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

    /* Products at Flux-like shapes. */
    const int64_t N = 3072, K = 3072;
    const int64_t Ms[] = {256, 4096};
    float *wf = malloc((size_t)(N * K) * sizeof *wf);
    float *x = malloc((size_t)(4096 * K) * sizeof *x);
    float *y = malloc((size_t)(4096 * N) * sizeof *y), *y0 = malloc((size_t)(4096 * N) * sizeof *y0);
    for (int64_t i = 0; i < 4096 * K; i++) x[i] = (float)(rand() % 2001 - 1000) / 1000.0f;
    lf_quant_type_t mtypes[] = {LF_QUANT_Q8_0, LF_QUANT_Q4_K};
    printf("\ny[M,%lld] = x[M,%lld] . W^T, W %lldx%lld (best of %d; GFLOP/s counts 2*M*N*K)\n", (long long)N,
           (long long)K, (long long)N, (long long)K, reps);
    printf("%-5s %5s %-22s %9s %9s %8s %12s\n", "type", "M", "method", "ms", "GFLOP/s", "vs f32", "W bytes");
    for (size_t ti = 0; ti < 2; ti++) {
        lf_quant_type_t q = mtypes[ti];
        size_t wb = lf_quant_row_bytes(q, K) * (size_t)N;
        unsigned char *w = malloc(wb);
        s_random_blocks(q, w, wb / lf_quant_block_bytes(q));
        lf_quant_dequantize(q, w, wf, N * K);
        for (size_t mi = 0; mi < 2; mi++) {
            int64_t M = Ms[mi];
            double flop = 2.0 * M * N * K, tf = 1e30, tt[2] = {1e30, 1e30}, tw = 1e30, ti8 = 1e30;
            size_t tiles[2] = {0, 4u << 20};
            for (int r = 0; r < reps; r++) {
                double t0 = lf_bench_now();
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)M, (int)N, (int)K, 1.0f, x, (int)K, wf,
                            (int)K, 0.0f, y0, (int)N);
                double t = lf_bench_now() - t0;
                if (t < tf) tf = t;
                for (int k = 0; k < 2; k++) {
                    t0 = lf_bench_now();
                    if (lf_quant_matmul(q, w, N, K, x, K, M, y, N, tiles[k]) != 0) return 1;
                    t = lf_bench_now() - t0;
                    if (t < tt[k]) tt[k] = t;
                }
                t0 = lf_bench_now();
                lf_quant_dequantize(q, w, wf, N * K);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)M, (int)N, (int)K, 1.0f, x, (int)K, wf,
                            (int)K, 0.0f, y, (int)N);
                t = lf_bench_now() - t0;
                if (t < tw) tw = t;
                if (q == LF_QUANT_Q8_0) {
                    t0 = lf_bench_now();
                    if (lf_quant_matmul_q8_int8(w, N, K, x, K, M, y, N, openblas_get_num_threads()) == 0) {
                        t = lf_bench_now() - t0;
                        if (t < ti8) ti8 = t;
                    }
                }
            }
            /* The tiled result against the f32 product (same W). */
            double emax = 0, amax = 0;
            if (lf_quant_matmul(q, w, N, K, x, K, M, y, N, 0) != 0) return 1;
            for (int64_t i = 0; i < M * N; i++) {
                double e = fabs((double)y[i] - y0[i]);
                if (e > emax) emax = e;
                if (fabs(y0[i]) > amax) amax = fabs(y0[i]);
            }
            printf("%-5s %5lld %-22s %9.1f %9.1f %8.2f %12zu\n", lf_quant_name(q), (long long)M, "f32 sgemm",
                   tf * 1e3, flop / tf / 1e9, 1.0, (size_t)(N * K * 4));
            printf("%-5s %5lld %-22s %9.1f %9.1f %8.2f %12zu\n", lf_quant_name(q), (long long)M,
                   "tiled (512 KiB tiles)", tt[0] * 1e3, flop / tt[0] / 1e9, tf / tt[0], wb);
            printf("%-5s %5lld %-22s %9.1f %9.1f %8.2f %12zu\n", lf_quant_name(q), (long long)M,
                   "tiled (4 MiB, default)", tt[1] * 1e3, flop / tt[1] / 1e9, tf / tt[1], wb);
            printf("%-5s %5lld %-22s %9.1f %9.1f %8.2f %12zu\n", lf_quant_name(q), (long long)M,
                   "widen all + sgemm", tw * 1e3, flop / tw / 1e9, tf / tw, wb + (size_t)(N * K * 4));
            if (ti8 < 1e30)
                printf("%-5s %5lld %-22s %9.1f %9.1f %8.2f %12zu\n", lf_quant_name(q), (long long)M,
                       "int8 VNNI (x to Q8_0)", ti8 * 1e3, flop / ti8 / 1e9, tf / ti8, wb);
            printf("      max |tiled - f32| = %.3g (max |y| %.3g)\n", emax, amax);
        }
        free(w);
    }
    free(wf);
    free(x);
    free(y);
    free(y0);
    return 0;
}
