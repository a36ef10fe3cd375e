/* lf_upscaler_set: the upscaler models a worker can name — the files of
 * its upscaler folders (lf_upscaler_scan: models/upscale_models and
 * A1111's models/ESRGAN), found by A1111's name (the file stem), with one
 * model resident at a time (loaded on first use, kept for the next job
 * naming it, replaced by the next name). What Hires-Fix's model upscalers
 * (lf_pipeline's ctx->upscale) and the extras upscale run through.
 *
 * Runs are tiled (192 input pixels, overlap 32: bounded memory at any
 * size) and fed BGR, as A1111's upscaler_utils does.
 *
 * Threading: one thread at a time per set. Ownership: the set owns its
 * model, pool and (when none is given) its CPU backend; a given backend
 * is borrowed and must outlive the set. */
#ifndef LF_UPSCALER_SET_H
#define LF_UPSCALER_SET_H

#include <stddef.h>
#include <stdint.h>

#include "lf_backend.h"

typedef struct lf_upscaler_set lf_upscaler_set_t;

/* dirs: ':'-separated folders (copied; NULL = none). be: borrowed, or NULL
 * for a CPU backend of n_threads (0 = all cores) made on first use. Caller
 * owns the result; NULL on out of memory. Scans nothing yet. */
lf_upscaler_set_t *lf_upscaler_set_new(const char *dirs, lf_backend_t *be, int n_threads);
/* Takes NULL; nulls *self_p. */
void lf_upscaler_set_destroy(lf_upscaler_set_t **self_p);

/* Makes the model called name resident (a scan of the folders when the
 * name is not in the last one). 0, LF_ENOTFOUND (no such upscaler: err
 * names it), or lf_upscaler_new's errors (err names the file). */
int lf_upscaler_set_use(lf_upscaler_set_t *self, const char *name, char *err, size_t errlen);

/* The resident model's scale (0 when none). */
int lf_upscaler_set_scale(const lf_upscaler_set_t *self);

/* One run of the resident model on RGB8 src (sw x sh) -> *dst (malloc'd,
 * caller frees) of sw*scale x sh*scale: lf_hires_model_fn's shape, ud =
 * the set. 0, LF_ESTATE (none resident), LF_ENOMEM, or the run's error. */
int lf_upscaler_set_run_rgb8(void *self, const uint8_t *src, int sw, int sh, uint8_t **dst, int *dw,
                             int *dh);

#endif
