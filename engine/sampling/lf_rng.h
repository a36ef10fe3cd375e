/* lf_rng: seeded noise, bit-compatible with the two generators SD front ends
 * use, so a seed gives the same image as elsewhere.
 *
 * LF_RNG_TORCH_CPU reproduces torch.manual_seed(seed); torch.randn(n) on the
 * CPU (float32): MT19937 seeded with the low 32 bits of the seed; for
 * n >= 16 torch fills n uniform floats (24-bit) and turns each group of 16
 * into normals by Box-Muller (first 8 as radii, last 8 as angles), redrawing
 * 16 fresh uniforms for the last, overlapping group when n % 16 != 0; for
 * n < 16 it draws double-precision normals in pairs (two 53-bit uniforms,
 * cos first, the sin value cached in the generator for the next draw, even
 * across calls). Successive calls continue the stream exactly as successive
 * torch.randn calls on one generator do.
 *
 * LF_RNG_PHILOX reproduces torch.randn on a CUDA generator as A1111 emulates
 * it (modules/rng_philox.py): element i of the k-th call is Philox4x32-10 of
 * counter (k, 0, i, 0) and key (seed lo, seed hi), turned into a normal by
 * Box-Muller (sin branch) from the first two words, in double, then float.
 *
 * Results agree with torch to float rounding of log/sin/cos (torch's AVX2
 * path uses its own vector approximations). A generator is plain data with
 * no allocations; not thread-safe (one owner). */
#ifndef LF_RNG_H
#define LF_RNG_H

#include <stddef.h>
#include <stdint.h>

typedef enum { LF_RNG_TORCH_CPU = 0, LF_RNG_PHILOX = 1 } lf_rng_kind_t;

/* Fields are private; the struct is public so it can live on the stack. */
typedef struct {
    lf_rng_kind_t kind;
    uint64_t seed;
    uint32_t mt[624];
    int mt_next;
    int has_normal;     /* torch's cached double normal sample */
    double next_normal;
    uint32_t offset;    /* Philox: calls made so far */
} lf_rng_t;

/* Seeds the generator (torch.manual_seed / a new A1111 Philox generator). */
void lf_rng_init(lf_rng_t *rng, lf_rng_kind_t kind, uint64_t seed);
/* Fills out[0..n) with standard normals, as torch.randn(n) (or any shape of n
 * elements) would. Philox: n is limited to 2^32. */
void lf_rng_randn(lf_rng_t *rng, float *out, size_t n);
/* Fills out[0..n) with uniforms in [0, 1) as torch.rand(n) does on the CPU
 * generator (24-bit floats). Only for LF_RNG_TORCH_CPU. */
void lf_rng_rand(lf_rng_t *rng, float *out, size_t n);
/* The next raw 32-bit MT19937 output (LF_RNG_TORCH_CPU). */
uint32_t lf_rng_u32(lf_rng_t *rng);

/* Adapter with the signature samplers take for noise (ctx is an lf_rng_t).
 * Always returns 0. */
int lf_rng_noise_fn(void *ctx, float *out, size_t n);

#endif
