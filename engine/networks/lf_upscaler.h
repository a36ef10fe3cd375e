/* lf_upscaler: super-resolution networks for Hires-Fix, "upscale then
 * refine" and the extras tab: ESRGAN / RRDBNet (the old "model.N" layout,
 * Real-ESRGAN's "conv_first/body.N.rdbK" layout and BSRGAN's "RRDB_trunk"
 * layout; x1/x2/x4/x8 bodies, with the pixel-unshuffle input of Real-ESRGAN
 * x2/x1 models) and SRVGGNetCompact (realesr-general-x4v3 and the other
 * "Compact" models), from a .pth (restricted torch-zip reader) or a
 * .safetensors file. The architecture and its sizes are read from tensor
 * names and shapes as spandrel 0.4 does; anything else is refused with an
 * error naming the file.
 *
 * Images are planar float RGB, [3][h][w] (PyTorch's NCHW with N = 1), in
 * [0, 1]; outputs are [3][h*scale][w*scale] and are not clamped (spandrel
 * returns them the same way). lf_upscaler_upscale runs any size in tiles of
 * bounded memory, blended so that the result equals the untiled run (see
 * there for the error at seams).
 *
 * Threading: one thread at a time per object. Backend and pool are borrowed
 * and must outlive the object; the weights live in the pool (names
 * "upscaler.<file name>"), so give each upscaler its own pool or destroy
 * them together. */
#ifndef LF_UPSCALER_H
#define LF_UPSCALER_H

#include <stddef.h>
#include <stdint.h>

#include "lf_pool.h"
#include "lf_weights.h"

typedef enum {
    LF_UPSCALER_ESRGAN = 0, /* RRDBNet */
    LF_UPSCALER_COMPACT,    /* SRVGGNetCompact */
} lf_upscaler_arch_t;

/* Key layouts of ESRGAN files (Compact has one). */
typedef enum {
    LF_UPSCALER_LAYOUT_OLD = 0, /* model.0, model.1.sub.N.RDBk.convj.0 (ESRGAN, A1111) */
    LF_UPSCALER_LAYOUT_NEW,     /* conv_first, body.N.rdbk.convj (Real-ESRGAN, BasicSR) */
    LF_UPSCALER_LAYOUT_BSRGAN,  /* conv_first, RRDB_trunk.N.RDBk.convj (BSRGAN, RealSR) */
    LF_UPSCALER_LAYOUT_COMPACT, /* body.N */
} lf_upscaler_layout_t;

/* What a file holds; plain data. */
typedef struct {
    lf_upscaler_arch_t arch;
    lf_upscaler_layout_t layout;
    char prefix[32];  /* stripped from every name: "", "params_ema.", "module.", ... */
    int scale;        /* output pixels per input pixel, per side */
    int in_ch, out_ch; /* image channels (after undoing the pixel-unshuffle) */
    int nf;           /* feature channels */
    int nb;           /* ESRGAN: RRDB blocks; Compact: body convolutions (num_conv) */
    int gc;           /* ESRGAN: growth channels of the dense blocks */
    int n_up;         /* ESRGAN: nearest x2 + conv stages */
    int shuffle;      /* ESRGAN: pixel-unshuffle factor of the input (1: none) */
    int64_t params;   /* number of weights */
} lf_upscaler_info_t;

/* "ESRGAN" / "Compact"; "old" / "new" / "bsrgan" / "compact". Borrowed. */
const char *lf_upscaler_arch_name(lf_upscaler_arch_t arch);
const char *lf_upscaler_layout_name(lf_upscaler_layout_t layout);

/* Detects the architecture of an open weights file from its tensor names
 * and shapes, without loading anything. 0, or LF_EFORMAT (no known
 * architecture, or inconsistent shapes) / LF_EUNSUPPORTED (a known variant
 * this engine does not run: ESRGAN+, more than 3 x2 stages, an unshuffle
 * larger than the body's scale) with a message naming the file in err;
 * *info untouched on failure. Pure; thread-safe. */
int lf_upscaler_probe(const lf_weights_t *w, lf_upscaler_info_t *info, char *err, size_t errlen);

/* One upscaler file found by lf_upscaler_scan; plain data. */
typedef struct {
    char *name; /* the file name without its extension, as A1111 names it; owned */
    char *path; /* owned */
    lf_upscaler_info_t info;
} lf_upscaler_entry_t;

/* Called for each file lf_upscaler_scan leaves out, with the reason. */
typedef void (*lf_upscaler_skip_fn)(void *user, const char *path, const char *why);

/* Lists the upscalers in the folders dirs[0..ndirs) (a worker passes
 * models/upscale_models and A1111's models/ESRGAN): every .pth, .pt and
 * .safetensors file, probed (lf_upscaler_probe; nothing is loaded), sorted
 * by name within a folder. Files that are not upscalers, and a name already
 * given by an earlier file or folder, are left out and passed to skip (may
 * be NULL). A missing folder lists nothing. *out: caller owns (free with
 * lf_upscaler_entries_free); NULL when none. 0 or LF_ENOMEM. */
int lf_upscaler_scan(const char *const *dirs, size_t ndirs, lf_upscaler_entry_t **out, size_t *n,
                     lf_upscaler_skip_fn skip, void *user);
/* Takes NULL. */
void lf_upscaler_entries_free(lf_upscaler_entry_t *entries, size_t n);

typedef struct lf_upscaler lf_upscaler_t;

/* Opens path, detects the architecture and uploads the weights into pool
 * (convolution kernels as weight_type, an lf_type_t: LF_TYPE_F32 for the CPU
 * backend; biases and slopes in f32). Caller owns *out. 0, or the errors of
 * lf_weights_open / lf_upscaler_probe, LF_ENOTFOUND / LF_EFORMAT (a missing
 * or misshapen tensor, named), LF_ENOMEM; err names the file. */
int lf_upscaler_new(lf_upscaler_t **out, const char *path, lf_backend_t *be, lf_pool_t *pool,
                    int weight_type, char *err, size_t errlen);
/* Takes NULL; nulls *self_p. The pool's tensors stay until the pool goes. */
void lf_upscaler_destroy(lf_upscaler_t **self_p);

/* Borrowed; valid while the object lives. */
const lf_upscaler_info_t *lf_upscaler_info(const lf_upscaler_t *self);

/* The whole image in one run (what spandrel's forward computes). rgb
 * [in_ch][h][w] -> out [out_ch][h*scale][w*scale]. The network's graph is
 * kept for the last size run. 0, LF_EINVAL, LF_ENOMEM, or a backend error. */
int lf_upscaler_run(lf_upscaler_t *self, const float *rgb, int h, int w, float *out);

/* Called after each tile with tiles done and the total; a nonzero return
 * stops the run with LF_ECANCELED. */
typedef int (*lf_upscaler_progress_fn)(void *user, int done, int total);

/* Tiled run: tiles of tile x tile input pixels (0, or a tile covering the
 * image: one run) placed on a grid with at least `overlap` pixels shared by
 * neighbours; one graph serves every tile. Each output pixel is the
 * weighted mean of the tiles covering it, with weights that are 0 within
 * overlap/4 of a tile's inner edge and ramp linearly to 1 at 3*overlap/4,
 * so no pixel is taken from near the zero padding a tile sees at a cut.
 * Error at seams: none (float rounding, ~1e-6 relative) when overlap/4 is at
 * least the network's receptive-field radius in input pixels (Compact:
 * num_conv + 2; ESRGAN: 15 nb + 2 + a few, larger than any practical
 * overlap); beyond that the difference is what the network's output owes to
 * pixels further away than overlap/4, small for trained models and measured
 * in tests/engine/test_upscaler.c. overlap must be < tile (it is clamped to
 * tile/2). Memory: one tile's planned activations, growing with tile^2
 * (RealESRGAN x4plus, f32: 48 MiB at 64, 300 MiB at 160, 769 MiB at 256
 * input pixels; docs/PERFORMANCE.md), plus an output-sized accumulator.
 * Same errors as lf_upscaler_run, and LF_ECANCELED. */
int lf_upscaler_upscale(lf_upscaler_t *self, const float *rgb, int h, int w, int tile, int overlap,
                        float *out, lf_upscaler_progress_fn progress, void *user);

/* 8-bit interleaved images: src [h][w][3] -> dst [h*scale][w*scale][3],
 * through lf_upscaler_upscale on v / 255 and back as round(clamp(y, 0, 1) *
 * 255), as A1111's upscaler_utils does. bgr != 0 feeds the network B, G, R
 * (A1111 hands every model BGR, a legacy of the original ESRGAN's OpenCV
 * training; Real-ESRGAN / BasicSR models were trained on RGB). Models with
 * other than 3 input and output channels are refused (LF_EUNSUPPORTED).
 * Same errors as lf_upscaler_upscale otherwise. */
int lf_upscaler_upscale_rgb8(lf_upscaler_t *self, const uint8_t *src, int w, int h, int tile,
                             int overlap, int bgr, uint8_t *dst, lf_upscaler_progress_fn progress,
                             void *user);

/* Activation bytes of the graph last planned (0 before the first run). */
size_t lf_upscaler_peak_bytes(const lf_upscaler_t *self);

#endif
