/* lf_detailer: the ADetailer pass (Bing-su/adetailer, the A1111 extension)
 * over the one pipeline: after an image is made, for each unit in order
 * (e.g. person then face) a detector finds boxes on the current image, the
 * boxes become masks, and each mask is re-drawn by a masked img2img of the
 * pipeline ("inpaint only masked"), the next mask starting from the last
 * result. The extension's semantics (adetailer/mask.py, scripts/!adetailer.py
 * _postprocess_image_inner, get_i2i_p, get_prompt), step by step:
 *
 *  - detections with score >= confidence (the detector's threshold);
 *  - filter_by_ratio: keep boxes whose area / image area is in [min, max];
 *  - filter_k_largest: k > 0 keeps the k largest by box area, largest first
 *    (np.argsort, ties: the later detection first); sort "None" otherwise;
 *  - box masks: Pillow's ImageDraw.rectangle(bbox, fill=255) on a black L
 *    image (coordinates truncated toward zero, both corners inclusive);
 *  - mask_preprocess: ImageChops.offset(x, -y) (wraps around), then with
 *    dilate_erode != 0 cv2.dilate (> 0) / cv2.erode (< 0) with a |v| x |v|
 *    MORPH_RECT kernel, anchor at its centre (v / 2), the border ignored,
 *    dropping all-black masks; then "Merge" (bitwise or of all) or "Merge
 *    and Invert" (or, then 255 - v);
 *  - per mask j: img2img of the current image with that mask, A1111's
 *    resize_mode 0, mask_blur = ad_mask_blur both ways, masked content
 *    "original", inpaint_full_res = ad_inpaint_only_masked with its padding,
 *    no inversion, ad_denoising_strength, size ad_inpaint_width/height when
 *    ad_use_inpaint_width_height else the job's, steps / CFG / sampler /
 *    scheduler / noise multiplier / CLIP skip the unit's when its ad_use_*
 *    flag is set else the job's, batch 1, seed = the image's seed + j;
 *  - prompts: ad_prompt split on \s*[SEP]\s*; an empty part is the job's
 *    prompt, "[PROMPT]" inside a part becomes " prompt "; mask j takes part
 *    min(j, parts - 1) (negative likewise); a part that is "[SKIP]" skips
 *    its mask.
 * The final image keeps the job's infotext with the extension's parameters
 * appended (lf_detailer_infotext).
 *
 * Where this differs from the extension: detectors are a callback (the
 * engine's BlazeFace for mediapipe_face_short / _full and lf_yolo for the
 * ultralytics .pt models; no face mesh, no YOLO-World); separate checkpoint / VAE, restore faces and ControlNet are not
 * taken; the unit's inpaint size is rounded down to a multiple of 8 (A1111
 * floors the latent likewise); A1111's "ad_bbox_sortby" option is "None".
 *
 * The mask functions are pure over caller buffers (masks [h][w] bytes,
 * 0 / 255); lf_detailer_run runs the pipeline (one run at a time per model,
 * as lf_pipeline). */
#ifndef LF_DETAILER_H
#define LF_DETAILER_H

#include <stddef.h>
#include <stdint.h>

#include "lf_pipeline.h"

#define LF_DETAILER_MAX_UNITS 8
#define LF_DETAILER_MAX_DETECTIONS 64
#define LF_DETAILER_VERSION "24.11.1" /* the extension release these semantics follow */

enum { LF_DETAILER_MERGE_NONE = 0, LF_DETAILER_MERGE = 1, LF_DETAILER_MERGE_INVERT = 2 };

/* One ADetailer unit: the extension's ADetailerArgs (args.py). Strings are
 * borrowed. lf_detailer_unit_defaults gives args.py's defaults. */
typedef struct lf_detailer_unit {
    const char *model;            /* ad_model; "None" or NULL = the unit is skipped */
    const char *prompt;           /* ad_prompt ("" = the job's) */
    const char *negative;         /* ad_negative_prompt */
    double confidence;            /* 0.3, [0, 1] */
    int mask_k_largest;           /* 0 = all */
    double mask_min_ratio;        /* 0 */
    double mask_max_ratio;        /* 1 */
    int x_offset, y_offset;       /* 0 (y up) */
    int dilate_erode;             /* 4 */
    int merge_invert;             /* LF_DETAILER_MERGE_* */
    int mask_blur;                /* 4 */
    double denoising_strength;    /* 0.4 */
    int inpaint_only_masked;      /* 1 */
    int inpaint_padding;          /* 32 */
    int use_inpaint_size;         /* 0 */
    int inpaint_width, inpaint_height; /* 512 */
    int use_steps, steps;         /* 0, 28 */
    int use_cfg;                  /* 0 */
    double cfg;                   /* 7 */
    int use_sampler;              /* 0 */
    const char *sampler;          /* "DPM++ 2M Karras" (A1111 / ComfyUI names) */
    const char *scheduler;        /* "Use same scheduler" */
    int use_noise_multiplier;     /* 0 */
    double noise_multiplier;      /* 1 */
    int use_clip_skip, clip_skip; /* 0, 1 */
} lf_detailer_unit_t;

void lf_detailer_unit_defaults(lf_detailer_unit_t *u);

/* A detection in image pixels (x right, y down). mask: a segmentation
 * model's mask for it (w x h bytes, 0 / 255, as ADetailer's mask_to_pil
 * gives it), borrowed from the detector until its next call; NULL = the
 * box's rectangle (create_mask_from_bbox). */
typedef struct {
    float score;
    float x1, y1, x2, y2;
    const uint8_t *mask;
} lf_detailer_box_t;

/* A detector: boxes of `model` on an RGB8 image with score >= confidence,
 * at most max written; returns how many were found, or a negative LF_E*
 * code (LF_ENOTFOUND for a model it does not have). */
typedef int (*lf_detailer_detect_fn)(void *ud, const char *model, const uint8_t *rgb, int w, int h,
                                     double confidence, lf_detailer_box_t *out, int max);

/* ---- the mask steps (pure) ---- */

/* filter_by_ratio then filter_k_largest, in place: returns the new count. */
int lf_detailer_filter(lf_detailer_box_t *boxes, int n, int w, int h, double min_ratio,
                       double max_ratio, int k_largest);

/* create_mask_from_bbox: m (w x h) zeroed, then the box filled with 255. */
void lf_detailer_box_mask(const lf_detailer_box_t *b, int w, int h, uint8_t *m);

/* ImageChops.offset(m, x, -y), in place (wrap-around). 0 or LF_ENOMEM. */
int lf_detailer_offset(uint8_t *m, int w, int h, int x, int y);

/* cv2.dilate (value > 0) / cv2.erode (value < 0) with a |value|-square
 * MORPH_RECT kernel, in place. 0, LF_EINVAL, LF_ENOMEM. */
int lf_detailer_dilate_erode(uint8_t *m, int w, int h, int value);

/* 1 when every byte is 0. */
int lf_detailer_all_black(const uint8_t *m, int w, int h);

/* ad_prompt's parts for image prompt `dflt` ([SEP], [PROMPT], empty parts):
 * *parts caller owns (lf_detailer_parts_free); returns the count (>= 1) or
 * LF_ENOMEM. */
int lf_detailer_prompt_parts(const char *ad_prompt, const char *dflt, char ***parts);
void lf_detailer_parts_free(char **parts, int n);

/* The extension's infotext parameters for the units (extra_params: keys
 * with " 2nd", " 3rd"... for later units, then "ADetailer version"), as
 * ", key: value" pairs to append to the parameters line; A1111's quoting.
 * Units whose model is "None" write nothing; with none enabled *out is "".
 * *out caller owns. 0 or LF_ENOMEM. */
int lf_detailer_infotext(const lf_detailer_unit_t *units, size_t n, char **out);

/* ---- the pass ---- */

typedef struct {
    const lf_detailer_unit_t *units;
    size_t n_units;
    lf_detailer_detect_fn detect;
    void *detect_ud;
} lf_detailer_t;

/* Runs the units on image `index` of job (the request lf_pipeline_run made
 * it with): img->png is replaced by the re-drawn image (same size) with
 * img->infotext + lf_detailer_infotext as its parameters (img->infotext is
 * replaced likewise, also when nothing was detected). hooks' progress gets
 * step counts offset by *steps_done, which grows by the steps each masked
 * run took; cancel is honoured. Returns 0, LF_EINVAL (a bad unit, reason
 * in err), LF_ENOTFOUND (a detector without that model), LF_ECANCELED,
 * LF_ENOMEM or the pipeline's code; on failure img is unchanged. */
int lf_detailer_run(const lf_detailer_t *d, const lf_pipeline_ctx_t *ctx,
                    const lf_pipeline_request_t *job, int index, const lf_pipeline_hooks_t *hooks,
                    lf_pipeline_image_t *img, int *steps_done, char *err, size_t errlen);

#endif
