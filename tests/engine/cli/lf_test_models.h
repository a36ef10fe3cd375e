/* Test helper: a tiny SD1.5 checkpoint that takes real CLIP ids.
 *
 * The networks' tiny fixture (tests/engine/fixtures/models/tiny_a.safetensors)
 * has a 400-token text vocabulary. This copies it with the token embedding
 * widened to CLIP's 49,408 rows (row r = fixture row r % 400), so the whole
 * real path — tokenizer included — runs on it in well under a second. */
#ifndef LF_TEST_MODELS_H
#define LF_TEST_MODELS_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lf_safetensors.h"

#define LF_TEST_EMBED "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight"

/* Writes the widened checkpoint to dst. Returns 0 or a negative LF_E* code. */
static inline int lf_test_write_clip_model(const char *fixture_dir, const char *dst)
{
    char src[1024], err[256];
    snprintf(src, sizeof src, "%s/models/tiny_a.safetensors", fixture_dir);
    lf_safetensors_t *st = NULL;
    int rc = lf_safetensors_open(&st, src, err, sizeof err);
    if (rc) return rc;
    size_t n = lf_safetensors_count(st);
    lf_tensor_info_t *t = calloc(n, sizeof *t);
    uint8_t *wide = NULL;
    rc = t ? 0 : -2;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        t[i] = *lf_safetensors_at(st, i);
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
    free(t);
    lf_safetensors_destroy(&st);
    return rc;
}

#endif
