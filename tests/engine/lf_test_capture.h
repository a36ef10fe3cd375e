/* Whole-pipeline tests: what the pipeline handed the VAE decoder, and what it
 * got back.
 *
 * lf_test_rec_ops is an lf_model_ops_t over the real lf_model functions whose
 * vae_decode also records, for the one batch-1 decode of the latent size set
 * by lf_test_cap_expect, the latent in the model's own space ((z - shift) *
 * scale: what diffusers' pipelines hand their VAE before unscaling) and the
 * float image before clamping. The record is a test-only global: the ops
 * table has no user pointer. Include after <cmocka.h>, lf_model.h and
 * lf_safetensors.h (lf_test_relerr_info asserts). */
#ifndef LF_TEST_CAPTURE_H
#define LF_TEST_CAPTURE_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#define LF_TEST_CAP_LATENT 4096       /* floats: e.g. 16 x 16 x 16 */
#define LF_TEST_CAP_IMAGE (3 * 64 * 64) /* floats: a 64 x 64 image */

static struct {
    float latent[LF_TEST_CAP_LATENT], image[LF_TEST_CAP_IMAGE];
    int c, h, w;          /* the latent to record: c channels, h x w */
    size_t n_image;       /* floats of its decoded image (3 x H x W) */
    lf_model_t *decoder;  /* the model whose VAE decoded it */
    int calls;            /* recorded decodes since lf_test_cap_expect */
} lf_test_cap __attribute__((unused));

/* Records the next batch-1 decodes of a c x h x w latent into an image of
 * n_image floats; clears the count. */
static inline void lf_test_cap_expect(int c, int h, int w, size_t n_image)
{
    assert_true((size_t)c * h * w <= LF_TEST_CAP_LATENT);
    assert_true(n_image <= LF_TEST_CAP_IMAGE);
    lf_test_cap.c = c, lf_test_cap.h = h, lf_test_cap.w = w;
    lf_test_cap.n_image = n_image;
    lf_test_cap.decoder = NULL;
    lf_test_cap.calls = 0;
}

static inline int lf_test__decode_rec(lf_model_t *m, const float *z, int batch, int h, int w, int tile, float *img)
{
    int rc = lf_model_vae_decode(m, z, batch, h, w, tile, img);
    const lf_model_desc_t *d = lf_model_desc(m);
    if (rc == 0 && batch == 1 && h == lf_test_cap.h && w == lf_test_cap.w && d->latent_channels == lf_test_cap.c) {
        size_t nl = (size_t)lf_test_cap.c * h * w;
        for (size_t k = 0; k < nl; k++) lf_test_cap.latent[k] = (z[k] - d->shift_factor) * d->scaling_factor;
        memcpy(lf_test_cap.image, img, lf_test_cap.n_image * sizeof(float));
        lf_test_cap.decoder = m;
        lf_test_cap.calls++;
    }
    return rc;
}

static const lf_model_ops_t lf_test_rec_ops __attribute__((unused)) = {
    .name = "real networks, VAE decoder input and output recorded",
    .load = lf_model_load,
    .destroy = lf_model_destroy,
    .desc = lf_model_desc,
    .encode_text = lf_model_encode_text,
    .encode_t5 = lf_model_encode_t5,
    .denoise = lf_model_denoise,
    .vae_decode = lf_test__decode_rec,
    .vae_encode = lf_model_vae_encode,
    .preview = lf_model_preview,
};

/* max |a - ref| / max |ref| over the n floats of a fixture tensor (INFINITY
 * when a has a non-finite value). */
static inline double lf_test_relerr_info(const float *a, const lf_tensor_info_t *ref, size_t n)
{
    assert_int_equal(lf_tensorinfo_numel(ref), (int64_t)n);
    double d = 0, m = 0;
    for (size_t k = 0; k < n; k++) {
        double r = lf_tensorinfo_get_f32(ref, (int64_t)k);
        if (!isfinite(a[k])) return INFINITY;
        d = fmax(d, fabs(a[k] - r));
        m = fmax(m, fabs(r));
    }
    return m > 0 ? d / m : d;
}

#endif
