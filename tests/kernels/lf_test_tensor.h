/* lf_test_tensor: helpers shared by the kernels tests — host tensors with
 * random contents, element access in double, and a seeded RNG (the seed is
 * printed; LF_TEST_SEED=n repeats a run). Header-only, test code. */
#ifndef LF_TEST_TENSOR_H
#define LF_TEST_TENSOR_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lf_tensor.h"

static uint64_t lf_test_rng_state = 0;

static inline void lf_test_seed(void) {
    const char *e = getenv("LF_TEST_SEED");
    uint64_t s = e ? strtoull(e, NULL, 10) : (uint64_t)time(NULL) ^ (uint64_t)clock();
    if (!s) s = 1;
    fprintf(stderr, "kernels test seed: LF_TEST_SEED=%llu\n", (unsigned long long)s);
    lf_test_rng_state = s;
}

static inline double lf_test_uniform(void) { /* [-1, 1) */
    uint64_t x = lf_test_rng_state;
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    lf_test_rng_state = x;
    return (double)(x >> 11) / 4503599627370496.0 - 1.0;
}

/* A host tensor of the given type and shape, contiguous, with values in
 * [-amp, amp). Free with free(t.data). */
static inline lf_tensor_t lf_test_rand(lf_type_t type, int64_t n0, int64_t n1, int64_t n2,
                                       int64_t n3, double amp) {
    lf_tensor_t t = lf_tensor_4d(type, n0, n1, n2, n3, NULL);
    size_t n = (size_t)lf_tensor_nelements(&t);
    t.data = malloc(n * lf_type_size(type) + 1);
    float *tmp = malloc(n * sizeof(float) + 1);
    for (size_t i = 0; i < n; i++) tmp[i] = (float)(amp * lf_test_uniform());
    lf_type_from_f32(type, tmp, t.data, (int64_t)n);
    free(tmp);
    return t;
}

static inline lf_tensor_t lf_test_zeros(lf_type_t type, int64_t n0, int64_t n1, int64_t n2,
                                        int64_t n3) {
    lf_tensor_t t = lf_tensor_4d(type, n0, n1, n2, n3, NULL);
    t.data = calloc((size_t)lf_tensor_nelements(&t) * lf_type_size(type) + 1, 1);
    return t;
}

static inline double lf_test_get(const lf_tensor_t *t, int64_t i0, int64_t i1, int64_t i2,
                                 int64_t i3) {
    const char *p = (const char *)t->data + i0 * (int64_t)t->nb[0] + i1 * (int64_t)t->nb[1] +
                    i2 * (int64_t)t->nb[2] + i3 * (int64_t)t->nb[3];
    uint16_t h;
    float f;
    switch (t->type) {
    case LF_TYPE_F32: memcpy(&f, p, 4); return f;
    case LF_TYPE_F16: memcpy(&h, p, 2); return lf_f16_to_f32(h);
    default: memcpy(&h, p, 2); return lf_bf16_to_f32(h);
    }
}

/* Largest |got - want| / (1 + |want|) over the tensor; want is a contiguous
 * double array in the same (innermost-first) order. */
static inline double lf_test_maxerr(const lf_tensor_t *got, const double *want) {
    double worst = 0;
    int64_t k = 0;
    for (int64_t i3 = 0; i3 < got->ne[3]; i3++)
        for (int64_t i2 = 0; i2 < got->ne[2]; i2++)
            for (int64_t i1 = 0; i1 < got->ne[1]; i1++)
                for (int64_t i0 = 0; i0 < got->ne[0]; i0++, k++) {
                    double g = lf_test_get(got, i0, i1, i2, i3);
                    double e = fabs(g - want[k]) / (1.0 + fabs(want[k]));
                    if (!(e <= worst)) worst = isnan(e) ? INFINITY : e;
                }
    return worst;
}

/* A convolution in double: x (W x H x Ci x B), w (k x k x Ci x Co), bias
 * (Co, or NULL), zero padding pad, then SiLU when act. The result is
 * [B][Co][Ho][Wo], contiguous in the order lf_test_maxerr reads a dst of
 * Wo x Ho x Co x B. Caller frees; NULL when out of memory. */
static inline double *lf_test_conv2d_ref(const lf_tensor_t *x, const lf_tensor_t *w, const lf_tensor_t *bias,
                                         int64_t stride, int64_t pad, int act) {
    const int64_t W = x->ne[0], H = x->ne[1], Ci = x->ne[2], B = x->ne[3], k = w->ne[0], Co = w->ne[3];
    const int64_t Wo = (W + 2 * pad - k) / stride + 1, Ho = (H + 2 * pad - k) / stride + 1;
    double *want = calloc((size_t)(B * Co * Ho * Wo), sizeof *want);
    if (!want) return NULL;
    for (int64_t b = 0; b < B; b++)
        for (int64_t o = 0; o < Co; o++)
            for (int64_t yy = 0; yy < Ho; yy++)
                for (int64_t xx = 0; xx < Wo; xx++) {
                    double s = bias ? lf_test_get(bias, o, 0, 0, 0) : 0;
                    for (int64_t i = 0; i < Ci; i++)
                        for (int64_t ky = 0; ky < k; ky++)
                            for (int64_t kx = 0; kx < k; kx++) {
                                const int64_t iy = yy * stride + ky - pad, ix = xx * stride + kx - pad;
                                if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                                s += lf_test_get(x, ix, iy, i, b) * lf_test_get(w, kx, ky, i, o);
                            }
                    if (act) s = s / (1.0 + exp(-s));
                    want[((b * Co + o) * Ho + yy) * Wo + xx] = s;
                }
    return want;
}

#endif
