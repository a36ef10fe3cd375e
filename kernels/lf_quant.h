/* lf_quant: ggml's block-quantized weight types (as GGUF files store them):
 * dequantization to f32 and the matrix product y = x · Wᵀ with W quantized,
 * without widening the whole matrix.
 *
 * A row of a quantized matrix is a run of blocks; each block packs
 * lf_quant_block(q) weights (32, or 256 for the K types) with their scales
 * into lf_quant_block_bytes(q) bytes, exactly as ggml lays them out.
 * Dequantization is bit-exact with the gguf package's numpy reference
 * (gguf.quants.dequantize, the version in tests/reference/
 * requirements-gguf.txt): the same f32 operations in the same order, never
 * fused (this file is built with -ffp-contract=off).
 *
 * CPU forms: scalar (the reference), AVX2 and AVX-512 for the hot types,
 * picked at run time from the CPU's features (lf_quant_simd_detect); the
 * _at variants take the level explicitly so tests run every form.
 *
 * Pure functions over caller buffers; thread-safe. Source blocks may be
 * unaligned (they usually point into an mmap'd file). */
#ifndef LF_QUANT_H
#define LF_QUANT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    LF_QUANT_Q4_0,
    LF_QUANT_Q4_1,
    LF_QUANT_Q5_0,
    LF_QUANT_Q5_1,
    LF_QUANT_Q8_0,
    LF_QUANT_Q4_K,
    LF_QUANT_Q5_K,
    LF_QUANT_Q6_K,
    LF_QUANT_Q8_K,
    LF_QUANT_COUNT
} lf_quant_type_t;

/* Vector forms. */
typedef enum { LF_QUANT_SCALAR = 0, LF_QUANT_AVX2 = 1, LF_QUANT_AVX512 = 2 } lf_quant_simd_t;

/* Weights per block (32 or 256), bytes per block, "Q8_0"...; 0 / "?" out of range. */
size_t lf_quant_block(lf_quant_type_t q);
size_t lf_quant_block_bytes(lf_quant_type_t q);
const char *lf_quant_name(lf_quant_type_t q);
/* Bytes of a row of n weights (n a multiple of the block). */
size_t lf_quant_row_bytes(lf_quant_type_t q, int64_t n);

/* The best form this CPU runs (LF_CPU_SIMD=scalar|avx2 in the environment
 * caps it, as for the CPU backend). */
lf_quant_simd_t lf_quant_simd_detect(void);

/* Dequantizes n weights (a multiple of the block) from src into dst. The
 * _at form runs the given level (capped at what the CPU has). */
void lf_quant_dequantize(lf_quant_type_t q, const void *src, float *dst, int64_t n);
void lf_quant_dequantize_at(lf_quant_type_t q, const void *src, float *dst, int64_t n,
                            lf_quant_simd_t level);

/* Quantizes n floats (a multiple of the block) into dst's blocks. Q4_0,
 * Q4_1, Q5_0, Q5_1 and Q8_0 give the bytes gguf.quants.quantize gives (the
 * version in tests/reference/requirements-gguf.txt); Q4_K, Q5_K, Q6_K and
 * Q8_K follow ggml's reference quantizers (quantize_row_q*_K_ref: the same
 * scales; a few weights round a step apart; docs/PERFORMANCE.md); every
 * block type has one. 0, LF_EINVAL (n), or
 * LF_EUNSUPPORTED for a type without a quantizer here
 * (lf_quant_can_quantize says which). */
bool lf_quant_can_quantize(lf_quant_type_t q);
int lf_quant_quantize(lf_quant_type_t q, const float *src, void *dst, int64_t n);

/* y[m][n] = sum_k x[m][k] * W[n][k]: x is m rows of k floats (row stride
 * ldx floats), W is n rows of k quantized weights (each lf_quant_row_bytes
 * apart), y is m rows of n floats (row stride ldy). k must be a multiple of
 * the block. W is dequantized a tile of rows (a multiple of 16, at least 16)
 * at a time into a buffer of about tile_bytes (0: LF_QUANT_TILE_DEFAULT) and
 * multiplied with OpenBLAS's sgemm, so the whole f32 matrix never exists.
 * Each tile is one sgemm over the dequantized rows (OpenBLAS, threaded). 0, LF_EINVAL (k not
 * a multiple of the block, bad sizes) or LF_ENOMEM. */
#define LF_QUANT_TILE_DEFAULT (4u << 20)
int lf_quant_matmul(lf_quant_type_t q, const void *w, int64_t n, int64_t k, const float *x,
                    int64_t ldx, int64_t m, float *y, int64_t ldy, size_t tile_bytes);

/* The same product for Q8_0 weights with int8 arithmetic (ggml's way): x
 * is quantized per row to Q8_0 blocks (round to nearest) and each pair of
 * blocks is an AVX-512 VNNI dot product scaled by both blocks' scales. Not
 * equal to the f32 product: each x value moves by at most half its block's
 * step (max|x_block| / 254), so |y - x·Wᵀ| <= sum over blocks of
 * step/2 * sum|w| (plus f32 rounding). k must be a multiple of 64; the rows
 * of y are split over n_threads threads. 0, LF_EINVAL, LF_ENOMEM, or
 * LF_EUNSUPPORTED on a CPU without AVX-512 VNNI. Measured against the tiled
 * sgemm path in bench_quant (docs/PERFORMANCE.md). */
int lf_quant_matmul_q8_int8(const void *w, int64_t n, int64_t k, const float *x, int64_t ldx, int64_t m,
                            float *y, int64_t ldy, int n_threads);

#endif
