/* lf_image: image files in memory — PNG encode with text chunks, a
 * header-only probe, bounded PNG/JPEG/WebP decode, PNG text read-back.
 *
 * The only module that speaks libpng, libjpeg(-turbo) and libwebp. Results
 * are PNG (with the A1111 "parameters" text chunk); uploads for img2img come
 * in any of the three formats and are untrusted, so the intended order is:
 * lf_image_probe() on the raw bytes (reads headers only: no allocation, no
 * decoding), refuse what is too large, then lf_image_decode() with limits,
 * which probes again itself and checks the decoder's view of the size before
 * allocating pixels. Every library error becomes a code plus a sentence in
 * the caller's err buffer; nothing is printed, nothing aborts.
 *
 * Threading: every function is reentrant (no shared state). Ownership: an
 * lf_image_t owns its pixels (free with lf_image_clear); encoded buffers and
 * text arrays returned through out-pointers are caller-owned. */
#ifndef LF_IMAGE_H
#define LF_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    LF_IMG_UNKNOWN = 0,
    LF_IMG_PNG,
    LF_IMG_JPEG,
    LF_IMG_WEBP,
} lf_image_format_t;

/* Plain data: 8-bit pixels, rows packed top to bottom (stride = width *
 * channels). channels is 3 (RGB) or 4 (RGBA). pixels owned (malloc). */
typedef struct {
    uint8_t *pixels;
    uint32_t width, height;
    uint32_t channels;
} lf_image_t;

/* What the header says. */
typedef struct {
    lf_image_format_t format;
    uint32_t width, height;
    bool has_alpha; /* PNG color type or tRNS-free alpha; WebP VP8X/VP8L alpha flag */
} lf_image_info_t;

/* A text chunk. Borrowed when passed to lf_image_png_encode; owned (both
 * strings, malloc) when returned by lf_image_png_texts. */
typedef struct {
    char *key;
    char *value;
} lf_image_text_t;

/* Decoding limits. A zero field means the default below. */
typedef struct {
    size_t max_bytes;    /* encoded size; default LF_IMAGE_DEFAULT_MAX_BYTES */
    uint64_t max_pixels; /* width*height; default LF_IMAGE_DEFAULT_MAX_PIXELS */
} lf_image_limits_t;

#define LF_IMAGE_DEFAULT_MAX_BYTES (32u * 1024u * 1024u)
#define LF_IMAGE_DEFAULT_MAX_PIXELS (4096ull * 4096ull)
/* The largest dimension any function accepts (libpng's own default cap). */
#define LF_IMAGE_MAX_DIM 1000000u

/* "png" | "jpeg" | "webp" | "unknown" and the MIME type; borrowed, static. */
const char *lf_image_format_name(lf_image_format_t f);
const char *lf_image_format_mime(lf_image_format_t f);

/* Encodes img (channels 3 or 4) as an 8-bit PNG into a new buffer (*out
 * caller owns, free()). texts[0..n_texts) become text chunks in that order,
 * before the image data: tEXt when the value is ASCII, iTXt (UTF-8)
 * otherwise. Keys: 1..79 printable ASCII characters, no leading, trailing or
 * double spaces. level: zlib level 0..9, or -1 for the default (6). Levels
 * 0 and 1 mean speed first (previews, test cards): rows use the "Up" filter
 * only instead of libpng's per-row choice among all five, which costs 2-3x
 * the time of a small image's whole encode.
 * Errors: LF_EINVAL (bad image, key or level), LF_ENOMEM, LF_EFORMAT (libpng
 * refused; reason in err). err may be NULL. */
int lf_image_png_encode(const lf_image_t *img, const lf_image_text_t *texts, size_t n_texts,
                        int level, uint8_t **out, size_t *out_len, char *err, size_t errlen);

/* Reads format and dimensions from the first bytes only (PNG IHDR, JPEG SOFn
 * marker, WebP VP8/VP8L/VP8X). Never allocates, never decodes pixels. *out
 * is set on success. Errors: LF_EFORMAT (not one of the three formats, or a
 * header that is truncated, inconsistent, or has a zero/over-LF_IMAGE_MAX_DIM
 * dimension). */
int lf_image_probe(const uint8_t *data, size_t len, lf_image_info_t *out);

/* Decodes data to RGB8 (channels = 3; alpha is dropped, as PIL's
 * convert("RGB") does). *out must be zeroed; it is filled only on success.
 * lim may be NULL (defaults). Errors: LF_ETOOBIG (len over max_bytes),
 * LF_ELIMIT (width*height over max_pixels, refused before any pixel memory
 * is allocated), LF_EFORMAT (unknown format, corrupt or truncated data,
 * unsupported variant such as animated WebP or CMYK JPEG; reason in err),
 * LF_ENOMEM. err may be NULL. */
int lf_image_decode(const uint8_t *data, size_t len, const lf_image_limits_t *lim,
                    lf_image_t *out, char *err, size_t errlen);

/* lf_image_decode, except that an RGBA file — a PNG of colour type RGBA or a
 * WebP with alpha, what Pillow opens as mode "RGBA" — keeps its (straight)
 * alpha: channels = 4; other files decode to RGB (channels = 3) as above.
 * For inpainting masks, where A1111 reads such a file's alpha. */
int lf_image_decode_alpha(const uint8_t *data, size_t len, const lf_image_limits_t *lim,
                          lf_image_t *out, char *err, size_t errlen);

/* Frees the pixels and zeroes the struct. Accepts NULL. */
void lf_image_clear(lf_image_t *img);

/* All text chunks (tEXt, zTXt, iTXt) of a PNG, before and after the image
 * data, as UTF-8 (Latin-1 tEXt is converted). *texts caller owns: release
 * with lf_image_texts_free. Reading chunks that follow the image data means
 * decompressing it row by row (one row of memory); the LF_IMAGE_MAX_DIM and
 * default pixel limit apply. Errors: LF_EFORMAT (not a PNG, corrupt),
 * LF_ELIMIT, LF_ENOMEM. */
int lf_image_png_texts(const uint8_t *data, size_t len, lf_image_text_t **texts, size_t *n);
void lf_image_texts_free(lf_image_text_t *texts, size_t n);

/* The value of the first text chunk named key (e.g. "parameters"), *value
 * caller owns (free()). LF_ENOTFOUND when there is none; else as above. */
int lf_image_png_text_get(const uint8_t *data, size_t len, const char *key, char **value);

#endif
