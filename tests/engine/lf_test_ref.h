/* Helpers for the engine tests that compare against reference tensors in a
 * safetensors fixture. Include after <cmocka.h> (the helpers assert). */
#ifndef LF_TEST_REF_H
#define LF_TEST_REF_H

#include <math.h>
#include <stdlib.h>

#include "lf_safetensors.h"

/* Tensor `name` of ref as floats; caller owns (free()). */
static inline float *lf_test_ref_f32(lf_safetensors_t *ref, const char *name, size_t *n)
{
    const lf_tensor_info_t *t = lf_safetensors_find(ref, name);
    assert_non_null(t);
    size_t k = (size_t)lf_tensorinfo_numel(t);
    float *v = malloc(k * sizeof *v);
    assert_non_null(v);
    for (size_t i = 0; i < k; i++) v[i] = lf_tensorinfo_get_f32(t, (int64_t)i);
    if (n) *n = k;
    return v;
}

/* max |a - ref| / max |ref| (the absolute error when ref is all zero). */
static inline double lf_test_relerr(const float *a, const float *ref, size_t n)
{
    double m = 0, e = 0;
    for (size_t i = 0; i < n; i++) {
        m = fmax(m, fabs(ref[i]));
        e = fmax(e, fabs((double)a[i] - ref[i]));
    }
    return m > 0 ? e / m : e;
}

#endif
