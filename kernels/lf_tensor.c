/* lf_tensor: descriptor helpers, views and f16/bf16 conversion. */
#include "lf_tensor.h"

#include <string.h>
#include <strings.h>

#include "lf_error.h"
#include "lf_quant.h"

/* Block types map onto lf_quant_type_t in order. */
_Static_assert(LF_TYPE_Q8_K - LF_TYPE_Q4_0 + 1 == LF_QUANT_COUNT &&
                   LF_TYPE_Q8_0 - LF_TYPE_Q4_0 == LF_QUANT_Q8_0 &&
                   LF_TYPE_Q4_K - LF_TYPE_Q4_0 == LF_QUANT_Q4_K,
               "lf_type_t's block types follow lf_quant_type_t");

static lf_quant_type_t s_q(lf_type_t type) {
    return (lf_quant_type_t)(type - LF_TYPE_Q4_0);
}

bool lf_type_is_quant(lf_type_t type) {
    return type >= LF_TYPE_Q4_0 && type < LF_TYPE_COUNT;
}

int64_t lf_type_block(lf_type_t type) {
    return lf_type_is_quant(type) ? (int64_t)lf_quant_block(s_q(type)) : 1;
}

size_t lf_type_row_bytes(lf_type_t type, int64_t n) {
    return (size_t)(n / lf_type_block(type)) * lf_type_size(type);
}

int lf_type_parse(const char *name) {
    for (int t = 0; name && t < LF_TYPE_COUNT; t++)
        if (!strcasecmp(name, lf_type_name((lf_type_t)t))) return t;
    return -1;
}

size_t lf_type_size(lf_type_t type) {
    switch (type) {
    case LF_TYPE_F32: return 4;
    case LF_TYPE_F16: return 2;
    case LF_TYPE_BF16: return 2;
    default: return lf_type_is_quant(type) ? lf_quant_block_bytes(s_q(type)) : 0;
    }
}

const char *lf_type_name(lf_type_t type) {
    switch (type) {
    case LF_TYPE_F32: return "f32";
    case LF_TYPE_F16: return "f16";
    case LF_TYPE_BF16: return "bf16";
    case LF_TYPE_Q4_0: return "q4_0";
    case LF_TYPE_Q4_1: return "q4_1";
    case LF_TYPE_Q5_0: return "q5_0";
    case LF_TYPE_Q5_1: return "q5_1";
    case LF_TYPE_Q8_0: return "q8_0";
    case LF_TYPE_Q4_K: return "q4_k";
    case LF_TYPE_Q5_K: return "q5_k";
    case LF_TYPE_Q6_K: return "q6_k";
    case LF_TYPE_Q8_K: return "q8_k";
    default: return "?";
    }
}

lf_tensor_t lf_tensor_make(lf_type_t type, int n_dims, const int64_t *ne, void *data) {
    LF_ASSERT(n_dims >= 0 && n_dims <= LF_MAX_DIMS);
    lf_tensor_t t;
    memset(&t, 0, sizeof t);
    t.type = type;
    for (int i = 0; i < LF_MAX_DIMS; i++) t.ne[i] = i < n_dims ? ne[i] : 1;
    LF_ASSERT(t.ne[0] % lf_type_block(type) == 0);
    t.nb[0] = lf_type_size(type);
    t.nb[1] = lf_type_row_bytes(type, t.ne[0]);
    for (int i = 2; i < LF_MAX_DIMS; i++) t.nb[i] = t.nb[i - 1] * (size_t)t.ne[i - 1];
    t.data = data;
    return t;
}

lf_tensor_t lf_tensor_4d(lf_type_t type, int64_t n0, int64_t n1, int64_t n2, int64_t n3,
                         void *data) {
    const int64_t ne[4] = {n0, n1, n2, n3};
    return lf_tensor_make(type, 4, ne, data);
}

int64_t lf_tensor_nelements(const lf_tensor_t *t) {
    return t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
}

size_t lf_tensor_nbytes(const lf_tensor_t *t) {
    return lf_type_row_bytes(t->type, t->ne[0]) * (size_t)(t->ne[1] * t->ne[2] * t->ne[3]);
}

bool lf_tensor_is_contiguous(const lf_tensor_t *t) {
    if (t->ne[0] != 1 && t->nb[0] != lf_type_size(t->type)) return false;
    size_t expect = lf_type_row_bytes(t->type, t->ne[0]);
    for (int i = 1; i < LF_MAX_DIMS; i++) {
        if (t->ne[i] != 1 && t->nb[i] != expect) return false;
        expect *= (size_t)t->ne[i];
    }
    return true;
}

bool lf_tensor_rows_contiguous(const lf_tensor_t *t) {
    return t->ne[0] == 1 || t->nb[0] == lf_type_size(t->type);
}

bool lf_tensor_same_shape(const lf_tensor_t *a, const lf_tensor_t *b) {
    for (int i = 0; i < LF_MAX_DIMS; i++)
        if (a->ne[i] != b->ne[i]) return false;
    return true;
}

lf_tensor_t lf_tensor_permute(const lf_tensor_t *t, const int axes[LF_MAX_DIMS]) {
    lf_tensor_t r = *t;
    int seen = 0;
    for (int i = 0; i < LF_MAX_DIMS; i++) {
        LF_ASSERT(axes[i] >= 0 && axes[i] < LF_MAX_DIMS);
        seen |= 1 << axes[i];
        LF_ASSERT(i != 0 || axes[0] == 0 || !lf_type_is_quant(t->type)); /* rows stay whole */
        r.ne[i] = t->ne[axes[i]];
        r.nb[i] = t->nb[axes[i]];
    }
    LF_ASSERT(seen == 0xF);
    return r;
}

lf_tensor_t lf_tensor_transpose(const lf_tensor_t *t) {
    static const int axes[4] = {1, 0, 2, 3};
    return lf_tensor_permute(t, axes);
}

lf_tensor_t lf_tensor_slice(const lf_tensor_t *t, int dim, int64_t begin, int64_t len) {
    LF_ASSERT(dim >= 0 && dim < LF_MAX_DIMS && begin >= 0 && len >= 0 &&
              begin + len <= t->ne[dim]);
    lf_tensor_t r = *t;
    r.ne[dim] = len;
    /* Block rows are cut at whole blocks only (nb[0] is a block's bytes). */
    int64_t unit = dim == 0 ? lf_type_block(t->type) : 1;
    LF_ASSERT(begin % unit == 0 && len % unit == 0);
    /* Integer arithmetic so that views of not-yet-placed graph tensors (data
     * NULL) carry their byte offset. */
    r.data = (void *)((uintptr_t)t->data + (uintptr_t)(begin / unit) * t->nb[dim]);
    return r;
}

lf_tensor_t lf_tensor_reshape(const lf_tensor_t *t, int64_t n0, int64_t n1, int64_t n2,
                              int64_t n3) {
    LF_ASSERT(lf_tensor_is_contiguous(t));
    LF_ASSERT(n0 * n1 * n2 * n3 == lf_tensor_nelements(t) && n0 % lf_type_block(t->type) == 0);
    lf_tensor_t r = lf_tensor_4d(t->type, n0, n1, n2, n3, t->data);
    r.buffer = t->buffer;
    r.name = t->name;
    return r;
}

static uint32_t s_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float s_float(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t lf_f32_to_f16(float f) {
    /* Branchy but exact: round to nearest even, subnormals, overflow to Inf. */
    uint32_t x = s_bits(f);
    uint32_t sign = (x >> 16) & 0x8000u;
    uint32_t absx = x & 0x7FFFFFFFu;
    if (absx >= 0x7F800000u) /* Inf or NaN */
        return (uint16_t)(sign | 0x7C00u | (absx > 0x7F800000u ? 0x200u : 0));
    if (absx >= 0x477FF000u) return (uint16_t)(sign | 0x7C00u); /* rounds to Inf */
    if (absx < 0x38800000u) {                                   /* f16 subnormal or zero */
        if (absx < 0x33000000u) return (uint16_t)sign;          /* below half the min */
        /* value = m * 2^(e-150) and one f16 subnormal step is 2^-24. */
        uint32_t m = (absx & 0x7FFFFFu) | 0x800000u;
        uint32_t shift = 126u - (absx >> 23); /* 14..24 */
        uint32_t q = m >> shift;
        uint32_t rem = m & ((1u << shift) - 1);
        uint32_t half = 1u << (shift - 1);
        if (rem > half || (rem == half && (q & 1))) q++;
        return (uint16_t)(sign | q);
    }
    uint32_t e = ((absx >> 23) - 112) << 10;
    uint32_t m = (absx >> 13) & 0x3FFu;
    uint32_t h = e | m;
    uint32_t rem = absx & 0x1FFFu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1))) h++;
    return (uint16_t)(sign | h);
}

float lf_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t e = (h >> 10) & 0x1Fu;
    uint32_t m = h & 0x3FFu;
    if (e == 0) {
        /* zero or subnormal: m * 2^-24 */
        float v = (float)m * 5.9604644775390625e-8f;
        return sign ? -v : v;
    }
    if (e == 31) return s_float(sign | 0x7F800000u | (m << 13));
    return s_float(sign | ((e + 112) << 23) | (m << 13));
}

uint16_t lf_f32_to_bf16(float f) {
    uint32_t x = s_bits(f);
    if ((x & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)((x >> 16) | 0x40u); /* quiet NaN */
    x += 0x7FFFu + ((x >> 16) & 1u);
    return (uint16_t)(x >> 16);
}

float lf_bf16_to_f32(uint16_t b) {
    return s_float((uint32_t)b << 16);
}

#if defined(__x86_64__)
#include <immintrin.h>
/* f16 -> f32 eight at a time with F16C (exact, as the scalar version; only a
 * signalling NaN comes out quiet). The CPU backend widens f16 weights with
 * this on every call, so the scalar loop cost ~9 % of an SD1.5 UNet step. */
__attribute__((target("avx,f16c"))) static void s_f16_to_f32_f16c(const uint16_t *s, float *d,
                                                                  int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(d + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(s + i))));
    for (; i < n; i++) d[i] = lf_f16_to_f32(s[i]);
}

/* f32 -> f16 eight at a time with F16C, rounding to nearest even as the
 * scalar version does; a block holding a NaN goes through the scalar code
 * (whose NaN encoding it keeps). Merging a LoRA into f16 weights stores
 * through this: the scalar loop was a fifth of a merge's time. */
__attribute__((target("avx,f16c"))) static void s_f32_to_f16_f16c(const float *s, uint16_t *d,
                                                                  int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 x = _mm256_loadu_ps(s + i);
        if (_mm256_movemask_ps(_mm256_cmp_ps(x, x, _CMP_UNORD_Q))) {
            for (int k = 0; k < 8; k++) d[i + k] = lf_f32_to_f16(s[i + k]);
            continue;
        }
        _mm_storeu_si128((__m128i *)(d + i),
                         _mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    }
    for (; i < n; i++) d[i] = lf_f32_to_f16(s[i]);
}
#endif

void lf_type_to_f32(lf_type_t type, const void *src, float *dst, int64_t n) {
    switch (type) {
    case LF_TYPE_F32: memcpy(dst, src, (size_t)n * 4); break;
    case LF_TYPE_F16: {
        const uint16_t *s = src;
#if defined(__x86_64__)
        if (__builtin_cpu_supports("f16c")) {
            s_f16_to_f32_f16c(s, dst, n);
            break;
        }
#endif
        for (int64_t i = 0; i < n; i++) dst[i] = lf_f16_to_f32(s[i]);
        break;
    }
    case LF_TYPE_BF16: {
        const uint16_t *s = src;
        for (int64_t i = 0; i < n; i++) dst[i] = lf_bf16_to_f32(s[i]);
        break;
    }
    default:
        LF_ASSERT(lf_type_is_quant(type) && n % lf_type_block(type) == 0);
        lf_quant_dequantize(s_q(type), src, dst, n);
    }
}

void lf_type_from_f32(lf_type_t type, const float *src, void *dst, int64_t n) {
    switch (type) {
    case LF_TYPE_F32: memcpy(dst, src, (size_t)n * 4); break;
    case LF_TYPE_F16: {
        uint16_t *d = dst;
#if defined(__x86_64__)
        if (__builtin_cpu_supports("f16c")) {
            s_f32_to_f16_f16c(src, d, n);
            break;
        }
#endif
        for (int64_t i = 0; i < n; i++) d[i] = lf_f32_to_f16(src[i]);
        break;
    }
    case LF_TYPE_BF16: {
        uint16_t *d = dst;
        for (int64_t i = 0; i < n; i++) d[i] = lf_f32_to_bf16(src[i]);
        break;
    }
    default:
        LF_ASSERT(lf_type_is_quant(type) && n % lf_type_block(type) == 0);
        LF_ASSERT(lf_quant_quantize(s_q(type), src, dst, n) == 0); /* lf_quant_can_quantize */
    }
}
