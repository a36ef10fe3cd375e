/* Test helpers: tiny checkpoints that take real CLIP ids.
 *
 * The networks' tiny fixtures (tests/engine/fixtures/models/tiny_a.safetensors,
 * tests/engine/fixtures/sdxl/{base,refiner}.safetensors) have a 400-token
 * text vocabulary. These copy them with every token embedding widened to
 * CLIP's 49,408 rows (row r = fixture row r % 400), so the whole real path —
 * tokenizer included — runs on them in well under a second.
 *
 * The tiny SDXL VAE has two levels (an image is twice its latent), so a
 * 1024x1024 image would mean a 512x512 latent and attention over 65,536
 * tokens. For full-size images (the farm's SDXL default) the SDXL copies can
 * take another checkpoint's VAE instead: first_stage_model.* and lf.config's
 * "vae" entry from vae_src (the built-in lf-tiny-shapes has a trained 8x VAE
 * with 4 latent channels, as SDXL's). */
#ifndef LF_TEST_MODELS_H
#define LF_TEST_MODELS_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "lf_safetensors.h"

#define LF_TEST_EMBED "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight"

#define LF_TEST_CONV_IN "model.diffusion_model.input_blocks.0.0.weight"

/* The first conv widened to an inpainting UNet's 9 inputs ([o][4][3][3] ->
 * [o][9][3][3], f16 or f32): inputs 4..8 are input 0 negated, then inputs
 * 3, 2, 1, 0 — exact in any float type, and what make_inpaint_fixtures.py's
 * widen_conv_in does. *out malloc'd (t's data left alone). 0 or -2. */
static inline int lf_test__conv_in9(lf_tensor_info_t *t, uint8_t **out)
{
    const size_t o = (size_t)t->shape[0], es = t->nbytes / (o * 4 * 9), k = 9 * es; /* 3x3 taps */
    uint8_t *w = malloc(o * 9 * k);
    if (!w) return -2;
    const uint8_t *src = t->data;
    static const int from[9] = {0, 1, 2, 3, 0, 3, 2, 1, 0};
    for (size_t a = 0; a < o; a++)
        for (int i = 0; i < 9; i++) {
            uint8_t *d = w + (a * 9 + (size_t)i) * k;
            memcpy(d, src + (a * 4 + (size_t)from[i]) * k, k);
            if (i == 4)
                for (size_t b = es - 1; b < k; b += es) d[b] ^= 0x80; /* the sign bit (little-endian) */
        }
    t->shape[1] = 9;
    t->data = w;
    t->nbytes = o * 9 * k;
    *out = w;
    return 0;
}

/* Writes the widened checkpoint to dst; inpaint: with the 9-input first conv
 * (lf_test__conv_in9). Returns 0 or a negative LF_E* code. */
static inline int lf_test_write_clip_model_ex(const char *fixture_dir, const char *dst, int inpaint);
static inline int lf_test_write_clip_model(const char *fixture_dir, const char *dst)
{
    return lf_test_write_clip_model_ex(fixture_dir, dst, 0);
}

static inline int lf_test_write_clip_model_ex(const char *fixture_dir, const char *dst, int inpaint)
{
    char src[1024], err[256];
    snprintf(src, sizeof src, "%s/models/tiny_a.safetensors", fixture_dir);
    lf_safetensors_t *st = NULL;
    int rc = lf_safetensors_open(&st, src, err, sizeof err);
    if (rc) return rc;
    size_t n = lf_safetensors_count(st);
    lf_tensor_info_t *t = calloc(n, sizeof *t);
    uint8_t *wide = NULL, *conv9 = NULL;
    rc = t ? 0 : -2;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        t[i] = *lf_safetensors_at(st, i);
        if (inpaint && strcmp(t[i].name, LF_TEST_CONV_IN) == 0 && t[i].shape[1] == 4) {
            rc = lf_test__conv_in9(&t[i], &conv9);
            continue;
        }
        if (strcmp(t[i].name, LF_TEST_EMBED) != 0) continue;
        size_t rows = (size_t)t[i].shape[0], row = t[i].nbytes / rows;
        wide = malloc(49408 * row);
        if (!wide) {
            rc = -2;
            break;
        }
        for (size_t r = 0; r < 49408; r++) memcpy(wide + r * row, (const uint8_t *)t[i].data + (r % rows) * row, row);
        t[i].shape[0] = 49408;
        t[i].data = wide;
        t[i].nbytes = 49408 * row;
    }
    if (rc == 0) rc = lf_safetensors_write(dst, t, n, NULL, 0);
    free(wide);
    free(conv9);
    free(t);
    lf_safetensors_destroy(&st);
    return rc;
}

/* Is name one of the fixture's token embeddings (CLIP-L's or OpenCLIP's)? */
static inline int lf_test__is_token_embedding(const char *name)
{
    const char *suf = "token_embedding.weight";
    size_t ln = strlen(name), ls = strlen(suf);
    return ln >= ls && strcmp(name + ln - ls, suf) == 0;
}

/* lf.config of src with its "vae" entry replaced by vae_src's (malloc'd), or
 * NULL when either has none. */
static inline char *lf_test__merge_vae_config(lf_safetensors_t *st, lf_safetensors_t *vst)
{
    const char *a = lf_safetensors_metadata(st, "lf.config"), *b = lf_safetensors_metadata(vst, "lf.config");
    json_t *ja = a ? json_loads(a, 0, NULL) : NULL, *jb = b ? json_loads(b, 0, NULL) : NULL;
    char *out = NULL;
    if (ja && json_object_get(jb, "vae")) {
        json_object_set(ja, "vae", json_object_get(jb, "vae"));
        out = json_dumps(ja, JSON_COMPACT);
    }
    json_decref(ja);
    json_decref(jb);
    return out;
}

/* Writes the SDXL fixture `which` ("base" or "refiner", from
 * <fixture_dir>/sdxl/) to dst with both text encoders' token embeddings
 * (conditioner.embedders.{0,1}.…token_embedding.weight) widened to 49,408
 * rows and lf.config kept. vae_src (may be NULL) names a checkpoint whose
 * first_stage_model.* tensors and lf.config "vae" replace the fixture's.
 * Returns 0 or a negative LF_E* code. */
static inline int lf_test__write_sdxl(const char *fixture_dir, const char *which, const char *vae_src,
                                      const char *dst, int inpaint, const char *prediction);
static inline int lf_test_write_clip_sdxl(const char *fixture_dir, const char *which, const char *vae_src,
                                          const char *dst)
{
    return lf_test__write_sdxl(fixture_dir, which, vae_src, dst, 0, NULL);
}

/* The same; inpaint: with the 9-input first conv (lf_test__conv_in9). */
static inline int lf_test_write_clip_sdxl_ex(const char *fixture_dir, const char *which, const char *vae_src,
                                             const char *dst, int inpaint)
{
    return lf_test__write_sdxl(fixture_dir, which, vae_src, dst, inpaint, NULL);
}

/* The same with the fixture's own VAE and a prediction type written as the
 * SAI model spec's modelspec.prediction_type ("epsilon", "v", "sample"). */
static inline int lf_test_write_clip_sdxl_pred(const char *fixture_dir, const char *which, const char *dst,
                                               const char *prediction)
{
    return lf_test__write_sdxl(fixture_dir, which, NULL, dst, 0, prediction);
}

static inline int lf_test__write_sdxl(const char *fixture_dir, const char *which, const char *vae_src,
                                      const char *dst, int inpaint, const char *prediction)
{
    char src[1024], err[256];
    snprintf(src, sizeof src, "%s/sdxl/%s.safetensors", fixture_dir, which);
    lf_safetensors_t *st = NULL, *vst = NULL;
    int rc = lf_safetensors_open(&st, src, err, sizeof err);
    if (rc) return rc;
    if (vae_src && (rc = lf_safetensors_open(&vst, vae_src, err, sizeof err)) != 0) {
        lf_safetensors_destroy(&st);
        return rc;
    }
    size_t n = lf_safetensors_count(st), nv = vst ? lf_safetensors_count(vst) : 0, k = 0;
    lf_tensor_info_t *t = calloc(n + nv, sizeof *t);
    uint8_t *wide[2] = {NULL, NULL}, *conv9 = NULL;
    int nw = 0;
    rc = t ? 0 : -2;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const lf_tensor_info_t *in = lf_safetensors_at(st, i);
        if (vst && !strncmp(in->name, "first_stage_model.", 18)) continue;
        t[k] = *in;
        if (inpaint && !strcmp(in->name, LF_TEST_CONV_IN) && in->shape[1] == 4) {
            rc = lf_test__conv_in9(&t[k++], &conv9);
            continue;
        }
        if (!lf_test__is_token_embedding(in->name)) {
            k++;
            continue;
        }
        size_t rows = (size_t)in->shape[0], row = in->nbytes / rows;
        if (nw == 2 || !(wide[nw] = malloc(49408 * row))) {
            rc = -2;
            break;
        }
        for (size_t r = 0; r < 49408; r++)
            memcpy(wide[nw] + r * row, (const uint8_t *)in->data + (r % rows) * row, row);
        t[k].shape[0] = 49408;
        t[k].data = wide[nw++];
        t[k++].nbytes = 49408 * row;
    }
    for (size_t i = 0; rc == 0 && i < nv; i++)
        if (!strncmp(lf_safetensors_at(vst, i)->name, "first_stage_model.", 18)) t[k++] = *lf_safetensors_at(vst, i);
    char *merged = vst ? lf_test__merge_vae_config(st, vst) : NULL;
    const char *meta[4] = {"lf.config", merged ? merged : lf_safetensors_metadata(st, "lf.config"),
                           "modelspec.prediction_type", prediction};
    size_t nm = 0;
    if (!meta[1]) meta[0] = meta[2], meta[1] = meta[3]; /* no lf.config: the prediction alone (or nothing) */
    else nm = 1;
    if (meta[nm * 2 + 1]) nm++;
    if (rc == 0) rc = lf_safetensors_write(dst, t, k, meta, nm);
    free(merged);
    free(conv9);
    free(wide[0]), free(wide[1]);
    free(t);
    lf_safetensors_destroy(&vst);
    lf_safetensors_destroy(&st);
    return rc;
}

#endif
