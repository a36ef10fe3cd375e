/* lf_pngw: the worker's PNG writer — RGB8 pixels to PNG bytes in memory.
 *
 * A stand-in until common/lf_image.h (the project's one libpng user) lands;
 * callers only see this function, so swapping it is a one-file change.
 * Output is deterministic (no time chunk): equal pixels give equal bytes.
 * Thread-safe; no state. */
#ifndef LF_PNGW_H
#define LF_PNGW_H

#include <stddef.h>
#include <stdint.h>

/* Encode w*h RGB8 pixels (row-major, 3 bytes per pixel). On success *out is
 * malloc'd (caller owns, free()) and *out_len set; outputs untouched on
 * failure. `level` is the zlib level 0..9 (-1 = default). Errors: LF_EINVAL
 * (zero size, NULL), LF_ENOMEM, LF_EINTERNAL (libpng failure). */
int lf_pngw_encode_rgb(const uint8_t *rgb, uint32_t w, uint32_t h, int level, uint8_t **out,
                       size_t *out_len);

#endif
