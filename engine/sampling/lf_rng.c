/* lf_rng: MT19937 and the torch CPU normal paths; Philox4x32-10 as A1111's
 * CUDA emulation. Written from the algorithms' descriptions (torch's
 * DistributionTemplates.h / DistributionsHelper.h, A1111 rng_philox.py). */
#include "lf_rng.h"

#include <float.h>
#include <math.h>
#include <string.h>

#include "lf_error.h"

#define MT_N 624
#define MT_M 397

static void s_mt_seed(lf_rng_t *r, uint32_t s)
{
    r->mt[0] = s;
    for (uint32_t j = 1; j < MT_N; j++) r->mt[j] = 1812433253u * (r->mt[j - 1] ^ (r->mt[j - 1] >> 30)) + j;
    r->mt_next = MT_N; /* regenerate on first use */
}

static void s_mt_twist(lf_rng_t *r)
{
    for (int i = 0; i < MT_N; i++) {
        uint32_t y = (r->mt[i] & 0x80000000u) | (r->mt[(i + 1) % MT_N] & 0x7fffffffu);
        r->mt[i] = r->mt[(i + MT_M) % MT_N] ^ (y >> 1) ^ ((y & 1u) ? 0x9908b0dfu : 0u);
    }
    r->mt_next = 0;
}

uint32_t lf_rng_u32(lf_rng_t *r)
{
    if (r->mt_next >= MT_N) s_mt_twist(r);
    uint32_t y = r->mt[r->mt_next++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    y ^= y >> 18;
    return y;
}

static float s_uniform_f32(lf_rng_t *r)
{
    return (float)((lf_rng_u32(r) & ((1u << 24) - 1)) * (1.0 / (1u << 24)));
}

static double s_uniform_f64(lf_rng_t *r)
{
    uint64_t hi = lf_rng_u32(r), lo = lf_rng_u32(r);
    return (double)(((hi << 32) | lo) & ((1ull << 53) - 1)) * (1.0 / (double)(1ull << 53));
}

/* torch's normal_distribution<double>: pairs, sin half cached. */
static double s_normal_f64(lf_rng_t *r)
{
    if (r->has_normal) {
        r->has_normal = 0;
        return r->next_normal;
    }
    double u1 = s_uniform_f64(r), u2 = s_uniform_f64(r);
    double rad = sqrt(-2.0 * log(1.0 - u2)), theta = 2.0 * M_PI * u1;
    r->has_normal = 1;
    r->next_normal = rad * sin(theta);
    return rad * cos(theta);
}

/* Scalar ports of the cephes-based log256_ps and sincos256_ps of torch's
 * aten/src/ATen/native/cpu/avx_mathfun.h (after sse_mathfun by J. Pommier and
 * G. Garberoglio, zlib licence), operation for operation in float, so this
 * file reproduces torch's AVX2 normal_fill bit for bit. The file is built
 * with -ffp-contract=off so no multiply-add is fused. */
static float s_bits_f(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static uint32_t s_f_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float s_cephes_logf(float x)
{
    if (!(x > 0.0f)) return NAN;
    if (x < FLT_MIN) x = FLT_MIN;
    uint32_t b = s_f_bits(x);
    float e = (float)((int32_t)(b >> 23) - 0x7f);
    x = s_bits_f((b & ~0x7f800000u) | s_f_bits(0.5f));
    e = e + 1.0f;
    int lt = x < (float)0.707106781186547524;
    float tmp = lt ? x : 0.0f;
    x = x - 1.0f;
    e = e - (lt ? 1.0f : 0.0f);
    x = x + tmp;
    float z = x * x;
    static const float p[9] = {7.0376836292E-2f, -1.1514610310E-1f, 1.1676998740E-1f,
                               -1.2420140846E-1f, 1.4249322787E-1f, -1.6668057665E-1f,
                               2.0000714765E-1f, -2.4999993993E-1f, 3.3333331174E-1f};
    float y = p[0];
    for (int i = 1; i < 9; i++) {
        y = y * x;
        y = y + p[i];
    }
    y = y * x;
    y = y * z;
    y = y + e * -2.12194440e-4f;
    y = y - z * 0.5f;
    x = x + y;
    return x + e * 0.693359375f;
}

static void s_cephes_sincosf(float x, float *s, float *c)
{
    uint32_t sign_sin = s_f_bits(x) & 0x80000000u;
    x = fabsf(x);
    float y = x * (float)1.27323954473516;
    int32_t j = (int32_t)y;
    j = (j + 1) & ~1;
    y = (float)j;
    uint32_t swap_sin = ((uint32_t)j & 4u) << 29;
    int poly = (j & 2) == 0;
    x = x + y * -0.78515625f;
    x = x + y * -2.4187564849853515625e-4f;
    x = x + y * (float)-3.77489497744594108e-8;
    uint32_t sign_cos = (~(uint32_t)(j - 2) & 4u) << 29;
    sign_sin ^= swap_sin;
    float z = x * x;
    float yc = (float)2.443315711809948E-005;
    yc = yc * z;
    yc = yc + (float)-1.388731625493765E-003;
    yc = yc * z;
    yc = yc + (float)4.166664568298827E-002;
    yc = yc * z;
    yc = yc * z;
    yc = yc - z * 0.5f;
    yc = yc + 1.0f;
    float ys = -1.9515295891E-4f;
    ys = ys * z;
    ys = ys + 8.3321608736E-3f;
    ys = ys * z;
    ys = ys + -1.6666654611E-1f;
    ys = ys * z;
    ys = ys * x;
    ys = ys + x;
    float sv = poly ? ys : yc, cv = poly ? yc : ys;
    *s = s_bits_f(s_f_bits(sv) ^ sign_sin);
    *c = s_bits_f(s_f_bits(cv) ^ sign_cos);
}

/* Box-Muller over 16 uniforms in place, as torch's normal_fill_16_AVX2. */
static void s_normal_16(float *d)
{
    const float two_pi = (float)(2.0 * M_PI);
    for (int j = 0; j < 8; j++) {
        float u1 = 1.0f - d[j], u2 = d[j + 8];
        float rad = sqrtf(-2.0f * s_cephes_logf(u1));
        float sn, cs;
        s_cephes_sincosf(two_pi * u2, &sn, &cs);
        d[j] = rad * cs;
        d[j + 8] = rad * sn;
    }
}

static void s_philox(uint64_t seed, uint32_t offset, uint32_t index, uint32_t out[2])
{
    uint32_t c0 = offset, c1 = 0, c2 = index, c3 = 0;
    uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
    for (int round = 0; round < 10; round++) {
        uint64_t p0 = (uint64_t)c0 * 0xD2511F53u, p1 = (uint64_t)c2 * 0xCD9E8D57u;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0, n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        c1 = (uint32_t)p1;
        c3 = (uint32_t)p0;
        c0 = n0;
        c2 = n2;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    out[0] = c0;
    out[1] = c1;
}

void lf_rng_init(lf_rng_t *r, lf_rng_kind_t kind, uint64_t seed)
{
    r->kind = kind;
    r->seed = seed;
    r->has_normal = 0;
    r->next_normal = 0.0;
    r->offset = 0;
    s_mt_seed(r, (uint32_t)seed);
}

void lf_rng_randn(lf_rng_t *r, float *out, size_t n)
{
    if (r->kind == LF_RNG_PHILOX) {
        LF_ASSERT(n <= UINT32_MAX);
        const double inv32 = 1.0 / 4294967296.0, inv32_2pi = 2.0 * M_PI / 4294967296.0;
        for (size_t i = 0; i < n; i++) {
            uint32_t w[2];
            s_philox(r->seed, r->offset, (uint32_t)i, w);
            double u = w[0] * inv32 + inv32 / 2, v = w[1] * inv32_2pi + inv32_2pi / 2;
            out[i] = (float)(sqrt(-2.0 * log(u)) * sin(v));
        }
        r->offset++;
        return;
    }
    if (n < 16) {
        for (size_t i = 0; i < n; i++) out[i] = (float)s_normal_f64(r);
        return;
    }
    for (size_t i = 0; i < n; i++) out[i] = s_uniform_f32(r);
    for (size_t i = 0; i + 16 <= n; i += 16) s_normal_16(out + i);
    if (n % 16 != 0) {
        float *tail = out + n - 16;
        for (int i = 0; i < 16; i++) tail[i] = s_uniform_f32(r);
        s_normal_16(tail);
    }
}

void lf_rng_rand(lf_rng_t *r, float *out, size_t n)
{
    LF_ASSERT(r->kind == LF_RNG_TORCH_CPU);
    for (size_t i = 0; i < n; i++) out[i] = s_uniform_f32(r);
}

int lf_rng_noise_fn(void *ctx, float *out, size_t n)
{
    lf_rng_randn(ctx, out, n);
    return 0;
}
