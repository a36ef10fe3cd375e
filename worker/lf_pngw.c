/* lf_pngw: RGB8 -> PNG in memory with libpng. See lf_pngw.h. */
#include "lf_pngw.h"

#include <png.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

#include "lf_error.h"

typedef struct {
    uint8_t *data;
    size_t len, cap;
    int oom;
} s_buf_t;

static void s_write(png_structp png, png_bytep data, png_size_t len) {
    s_buf_t *b = png_get_io_ptr(png);
    if (b->oom) return;
    if (b->len + len > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + len) cap *= 2;
        uint8_t *n = realloc(b->data, cap);
        if (!n) {
            b->oom = 1;
            return;
        }
        b->data = n;
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, len);
    b->len += len;
}

static void s_flush(png_structp png) { (void)png; }

int lf_pngw_encode_rgb(const uint8_t *rgb, uint32_t w, uint32_t h, int level, uint8_t **out,
                       size_t *out_len) {
    if (!rgb || !w || !h || !out || !out_len || w > PNG_UINT_31_MAX || h > PNG_UINT_31_MAX)
        return LF_EINVAL;
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    if (!png) return LF_ENOMEM;
    png_infop info = png_create_info_struct(png);
    if (!info) {
        png_destroy_write_struct(&png, NULL);
        return LF_ENOMEM;
    }
    /* volatile: modified between setjmp and a possible longjmp. */
    s_buf_t *volatile bp = calloc(1, sizeof(s_buf_t));
    if (!bp) {
        png_destroy_write_struct(&png, &info);
        return LF_ENOMEM;
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        free(bp->data);
        free(bp);
        return LF_EINTERNAL;
    }
    png_set_write_fn(png, bp, s_write, s_flush);
    png_set_compression_level(png, level < 0 || level > 9 ? 6 : level);
    png_set_IHDR(png, info, w, h, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (uint32_t y = 0; y < h; y++) png_write_row(png, (png_bytep)(rgb + (size_t)y * w * 3));
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    s_buf_t b = *bp;
    free(bp);
    if (b.oom) {
        free(b.data);
        return LF_ENOMEM;
    }
    *out = b.data;
    *out_len = b.len;
    return 0;
}
