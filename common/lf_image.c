/* lf_image: PNG/JPEG/WebP in memory (see lf_image.h).
 *
 * libpng and libjpeg report errors by calling a function that must not
 * return; both are given one that records the message and longjmps back to
 * the setjmp in the calling function. Everything allocated between setjmp
 * and a possible longjmp lives in volatile locals or in a context struct so
 * it can be freed on the error path. */
#include "lf_image.h"

#include <limits.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <png.h>
#include <webp/decode.h>

#include "lf_error.h"

/* Decompressed-chunk cap for libpng (text, iCCP): zTXt bombs stop here. */
#define S_PNG_CHUNK_MAX (8u * 1024u * 1024u)
/* Progressive JPEGs can make the decoder loop over thousands of tiny scans. */
#define S_JPEG_MAX_SCANS 500

static void s_err(char *err, size_t errlen, const char *fmt, const char *detail) {
    if (err && errlen) snprintf(err, errlen, fmt, detail ? detail : "");
}

const char *lf_image_format_name(lf_image_format_t f) {
    switch (f) {
    case LF_IMG_PNG: return "png";
    case LF_IMG_JPEG: return "jpeg";
    case LF_IMG_WEBP: return "webp";
    default: return "unknown";
    }
}

const char *lf_image_format_mime(lf_image_format_t f) {
    switch (f) {
    case LF_IMG_PNG: return "image/png";
    case LF_IMG_JPEG: return "image/jpeg";
    case LF_IMG_WEBP: return "image/webp";
    default: return "application/octet-stream";
    }
}

void lf_image_clear(lf_image_t *img) {
    if (!img) return;
    free(img->pixels);
    memset(img, 0, sizeof *img);
}

/* ================================================================ probe */

static uint32_t s_be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static uint32_t s_be16(const uint8_t *p) { return (uint32_t)p[0] << 8 | p[1]; }
static uint32_t s_le16(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8; }
static uint32_t s_le24(const uint8_t *p) { return s_le16(p) | (uint32_t)p[2] << 16; }
static uint32_t s_le32(const uint8_t *p) { return s_le24(p) | (uint32_t)p[3] << 24; }

static const uint8_t s_png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

static int s_probe_png(const uint8_t *d, size_t len, lf_image_info_t *o) {
    /* signature, IHDR length (13) and type, then width, height, depth, color type. */
    if (len < 8 + 8 + 13 || s_be32(d + 8) != 13 || memcmp(d + 12, "IHDR", 4) != 0)
        return LF_EFORMAT;
    o->width = s_be32(d + 16);
    o->height = s_be32(d + 20);
    uint8_t color = d[25];
    o->has_alpha = color == 4 || color == 6;
    return 0;
}

static bool s_is_sof(uint8_t m) {
    /* SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC). */
    return m >= 0xc0 && m <= 0xcf && m != 0xc4 && m != 0xc8 && m != 0xcc;
}

static int s_probe_jpeg(const uint8_t *d, size_t len, lf_image_info_t *o) {
    size_t i = 2;
    for (;;) {
        /* A marker is 0xFF (possibly repeated as fill) then a code. */
        if (i >= len || d[i] != 0xff) return LF_EFORMAT;
        while (i < len && d[i] == 0xff) i++;
        if (i >= len) return LF_EFORMAT;
        uint8_t m = d[i++];
        if (m == 0x01 || (m >= 0xd0 && m <= 0xd7)) continue; /* no length */
        if (m == 0xd8 || m == 0xd9 || m == 0xda) return LF_EFORMAT; /* no SOF before scan/end */
        if (len - i < 2) return LF_EFORMAT;
        uint32_t seglen = s_be16(d + i);
        if (seglen < 2 || seglen > len - i) return LF_EFORMAT;
        if (s_is_sof(m)) {
            /* precision(1) height(2) width(2) components(1) */
            if (seglen < 8) return LF_EFORMAT;
            o->height = s_be16(d + i + 3);
            o->width = s_be16(d + i + 5);
            o->has_alpha = false;
            return 0;
        }
        i += seglen;
    }
}

static int s_probe_webp(const uint8_t *d, size_t len, lf_image_info_t *o) {
    if (len < 20 || memcmp(d + 8, "WEBP", 4) != 0) return LF_EFORMAT;
    const uint8_t *c = d + 12; /* first chunk: fourcc, size, payload at c + 8 */
    if (memcmp(c, "VP8 ", 4) == 0) {
        /* frame tag (3), start code 9d 01 2a, 14-bit width and height. */
        if (len < 30 || c[11] != 0x9d || c[12] != 0x01 || c[13] != 0x2a) return LF_EFORMAT;
        if (c[8] & 1) return LF_EFORMAT; /* the first frame must be a key frame */
        o->width = s_le16(c + 14) & 0x3fff;
        o->height = s_le16(c + 16) & 0x3fff;
        o->has_alpha = false;
        return 0;
    }
    if (memcmp(c, "VP8L", 4) == 0) {
        /* signature 0x2f, then 14 bits width-1, 14 bits height-1, 1 bit alpha. */
        if (len < 25 || c[8] != 0x2f) return LF_EFORMAT;
        uint32_t bits = s_le32(c + 9);
        o->width = (bits & 0x3fff) + 1;
        o->height = ((bits >> 14) & 0x3fff) + 1;
        o->has_alpha = (bits >> 28) & 1;
        return 0;
    }
    if (memcmp(c, "VP8X", 4) == 0) {
        /* flags(1) reserved(3), canvas width-1 (24 bits), height-1 (24 bits). */
        if (len < 30) return LF_EFORMAT;
        o->has_alpha = (c[8] & 0x10) != 0;
        o->width = s_le24(c + 12) + 1;
        o->height = s_le24(c + 15) + 1;
        return 0;
    }
    return LF_EFORMAT;
}

int lf_image_probe(const uint8_t *data, size_t len, lf_image_info_t *out) {
    if (!data || !out) return LF_EINVAL;
    lf_image_info_t info = {0};
    int r;
    if (len >= 8 && memcmp(data, s_png_sig, 8) == 0) {
        info.format = LF_IMG_PNG;
        r = s_probe_png(data, len, &info);
    } else if (len >= 3 && data[0] == 0xff && data[1] == 0xd8 && data[2] == 0xff) {
        info.format = LF_IMG_JPEG;
        r = s_probe_jpeg(data, len, &info);
    } else if (len >= 12 && memcmp(data, "RIFF", 4) == 0) {
        info.format = LF_IMG_WEBP;
        r = s_probe_webp(data, len, &info);
    } else {
        return LF_EFORMAT;
    }
    if (r) return r;
    if (info.width == 0 || info.height == 0 || info.width > LF_IMAGE_MAX_DIM ||
        info.height > LF_IMAGE_MAX_DIM)
        return LF_EFORMAT;
    *out = info;
    return 0;
}

/* ============================================================ PNG encode */

typedef struct {
    uint8_t *buf;
    size_t len, cap;
    bool nomem;
    char *err;
    size_t errlen;
} s_png_io_t;

static void s_png_error(png_structp png, png_const_charp msg) {
    s_png_io_t *io = png_get_error_ptr(png);
    if (io) s_err(io->err, io->errlen, "png: %s", msg);
    png_longjmp(png, 1);
}
static void s_png_warning(png_structp png, png_const_charp msg) { (void)png, (void)msg; }

static void s_png_write(png_structp png, png_bytep data, size_t n) {
    s_png_io_t *io = png_get_io_ptr(png);
    if (n > io->cap - io->len) {
        size_t cap = io->cap ? io->cap : 64 * 1024;
        while (cap - io->len < n) {
            if (cap > SIZE_MAX / 2) cap = SIZE_MAX;
            else cap *= 2;
        }
        uint8_t *nb = realloc(io->buf, cap);
        if (!nb) {
            io->nomem = true;
            png_error(png, "out of memory");
        }
        io->buf = nb;
        io->cap = cap;
    }
    memcpy(io->buf + io->len, data, n);
    io->len += n;
}
static void s_png_flush(png_structp png) { (void)png; }

/* PNG keywords: 1..79 printable Latin-1; we allow ASCII only, no leading,
 * trailing or consecutive spaces (the spec's rules). */
static bool s_key_ok(const char *k) {
    size_t n = k ? strlen(k) : 0;
    if (n < 1 || n > 79 || k[0] == ' ' || k[n - 1] == ' ') return false;
    for (size_t i = 0; i < n; i++) {
        if (k[i] < 32 || k[i] > 126) return false;
        if (k[i] == ' ' && k[i + 1] == ' ') return false;
    }
    return true;
}

static bool s_ascii(const char *s) {
    for (; *s; s++)
        if ((unsigned char)*s > 126 || ((unsigned char)*s < 32 && *s != '\n' && *s != '\t' && *s != '\r'))
            return false;
    return true;
}

int lf_image_png_encode(const lf_image_t *img, const lf_image_text_t *texts, size_t n_texts,
                        int level, uint8_t **out, size_t *out_len, char *err, size_t errlen) {
    if (!img || !out || !out_len || !img->pixels || (img->channels != 3 && img->channels != 4) ||
        img->width == 0 || img->height == 0 || img->width > LF_IMAGE_MAX_DIM ||
        img->height > LF_IMAGE_MAX_DIM || level < -1 || level > 9 || (n_texts && !texts)) {
        s_err(err, errlen, "png: invalid image or options%s", NULL);
        return LF_EINVAL;
    }
    if ((uint64_t)img->width * img->height * img->channels > SIZE_MAX / 2) return LF_ETOOBIG;
    for (size_t i = 0; i < n_texts; i++)
        if (!s_key_ok(texts[i].key) || !texts[i].value) {
            s_err(err, errlen, "png: invalid text key '%s'", texts[i].key);
            return LF_EINVAL;
        }

    s_png_io_t io = {.err = err, .errlen = errlen};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &io, s_png_error, s_png_warning);
    if (!png) return LF_ENOMEM;
    png_infop info = png_create_info_struct(png);
    png_textp volatile tx = NULL;
    png_bytep *volatile rows = NULL;
    if (!info) {
        png_destroy_write_struct(&png, NULL);
        return LF_ENOMEM;
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        free(tx);
        free(rows);
        free(io.buf);
        return io.nomem ? LF_ENOMEM : LF_EFORMAT;
    }
    png_set_write_fn(png, &io, s_png_write, s_png_flush);
    if (level >= 0) png_set_compression_level(png, level);
    if (level == 0 || level == 1) png_set_filter(png, PNG_FILTER_TYPE_BASE, PNG_FILTER_UP);
    png_set_IHDR(png, info, img->width, img->height, 8,
                 img->channels == 4 ? PNG_COLOR_TYPE_RGB_ALPHA : PNG_COLOR_TYPE_RGB,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (n_texts) {
        tx = calloc(n_texts, sizeof *tx);
        if (!tx) {
            io.nomem = true;
            png_error(png, "out of memory");
        }
        for (size_t i = 0; i < n_texts; i++) {
            tx[i].key = texts[i].key;
            tx[i].text = texts[i].value;
            if (s_ascii(texts[i].value)) {
                tx[i].compression = PNG_TEXT_COMPRESSION_NONE;
                tx[i].text_length = strlen(texts[i].value);
            } else {
                tx[i].compression = PNG_ITXT_COMPRESSION_NONE;
                tx[i].itxt_length = strlen(texts[i].value);
                tx[i].lang = (char *)"";
                tx[i].lang_key = (char *)"";
            }
        }
        png_set_text(png, info, tx, (int)n_texts);
    }
    rows = malloc(img->height * sizeof *rows);
    if (!rows) {
        io.nomem = true;
        png_error(png, "out of memory");
    }
    size_t stride = (size_t)img->width * img->channels;
    for (uint32_t y = 0; y < img->height; y++) rows[y] = img->pixels + y * stride;
    png_set_rows(png, info, rows);
    png_write_png(png, info, PNG_TRANSFORM_IDENTITY, NULL);
    png_destroy_write_struct(&png, &info);
    free(tx);
    free(rows);
    *out = io.buf;
    *out_len = io.len;
    return 0;
}

/* ============================================================ PNG read */

typedef struct {
    const uint8_t *data;
    size_t len, off;
    char *err;
    size_t errlen;
} s_png_src_t;

static void s_png_read_error(png_structp png, png_const_charp msg) {
    s_png_src_t *src = png_get_error_ptr(png);
    s_err(src->err, src->errlen, "png: %s", msg);
    png_longjmp(png, 1);
}

static void s_png_read(png_structp png, png_bytep out, size_t n) {
    s_png_src_t *src = png_get_io_ptr(png);
    if (n > src->len - src->off) png_error(png, "truncated file");
    memcpy(out, src->data + src->off, n);
    src->off += n;
}

/* Walks the chunk headers up to IEND before libpng sees the file. libpng
 * (1.6.39 at least) allocates a tEXt/iTXt chunk's declared length before
 * reading it, whatever png_set_chunk_malloc_max says, so a 300-byte file
 * claiming a 1 GiB chunk costs 1 GiB. Here the whole file is in memory: a
 * chunk longer than what is left is a truncation, refused up front, and no
 * chunk libpng reads can be larger than the input. */
static int s_png_walk(const uint8_t *d, size_t len, char *err, size_t errlen) {
    size_t off = 8;
    for (;;) {
        if (len - off < 12) break;
        uint32_t n = s_be32(d + off);
        if (n > 0x7fffffffu || n > len - off - 12) break;
        if (memcmp(d + off + 4, "IEND", 4) == 0) return 0;
        if (n > S_PNG_CHUNK_MAX && memcmp(d + off + 4, "IDAT", 4) != 0) {
            s_err(err, errlen, "png: %s", "ancillary chunk over 8 MiB");
            return LF_EFORMAT;
        }
        off += 12 + (size_t)n;
    }
    s_err(err, errlen, "png: %s", "truncated file (a chunk runs past the end, or no IEND)");
    return LF_EFORMAT;
}

static png_structp s_png_reader(s_png_src_t *src, png_infop *info) {
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, src, s_png_read_error,
                                             s_png_warning);
    if (!png) return NULL;
    *info = png_create_info_struct(png);
    if (!*info) {
        png_destroy_read_struct(&png, NULL, NULL);
        return NULL;
    }
    png_set_read_fn(png, src, s_png_read);
    png_set_user_limits(png, LF_IMAGE_MAX_DIM, LF_IMAGE_MAX_DIM);
    png_set_chunk_malloc_max(png, S_PNG_CHUNK_MAX);
    return png;
}

static int s_decode_png(const uint8_t *data, size_t len, uint64_t max_pixels, int keep_alpha, lf_image_t *out,
                        char *err, size_t errlen) {
    int wr = s_png_walk(data, len, err, errlen);
    if (wr) return wr;
    s_png_src_t src = {.data = data, .len = len, .err = err, .errlen = errlen};
    png_infop info = NULL;
    png_structp png = s_png_reader(&src, &info);
    if (!png) return LF_ENOMEM;
    uint8_t *volatile pixels = NULL;
    png_bytep *volatile rows = NULL;
    volatile int rc = LF_EFORMAT;
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, NULL);
        free(pixels);
        free(rows);
        return rc;
    }
    png_read_info(png, info);
    uint32_t w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    if ((uint64_t)w * h > max_pixels) {
        rc = LF_ELIMIT;
        s_err(err, errlen, "png: %s pixels over the limit", "image has more");
        png_longjmp(png, 1);
    }
    /* Whatever the source (palette, gray, 16-bit, alpha, tRNS): 8-bit RGB; an
     * RGBA file (what Pillow opens as mode "RGBA") keeps its alpha when asked. */
    const size_t ch = keep_alpha && png_get_color_type(png, info) == PNG_COLOR_TYPE_RGB_ALPHA ? 4 : 3;
    png_set_expand(png);
    png_set_strip_16(png);
    png_set_gray_to_rgb(png);
    if (ch == 3) png_set_strip_alpha(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    if (png_get_rowbytes(png, info) != (size_t)w * ch) png_error(png, "unexpected row size");
    pixels = malloc((size_t)w * h * ch);
    rows = malloc(h * sizeof *rows);
    if (!pixels || !rows) {
        rc = LF_ENOMEM;
        png_error(png, "out of memory");
    }
    for (uint32_t y = 0; y < h; y++) rows[y] = pixels + (size_t)y * w * ch;
    png_read_image(png, rows);
    png_read_end(png, NULL);
    png_destroy_read_struct(&png, &info, NULL);
    free(rows);
    *out = (lf_image_t){.pixels = pixels, .width = w, .height = h, .channels = (uint32_t)ch};
    return 0;
}

/* =========================================================== JPEG read */

typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf jb;
    char msg[JMSG_LENGTH_MAX];
} s_jpeg_err_t;

static void s_jpeg_error_exit(j_common_ptr c) {
    s_jpeg_err_t *e = (s_jpeg_err_t *)c->err;
    c->err->format_message(c, e->msg);
    longjmp(e->jb, 1);
}

/* Warnings (corrupt data, premature end) are errors here: libjpeg would
 * otherwise hand back a half-gray picture of a truncated upload. */
static void s_jpeg_emit(j_common_ptr c, int level) {
    if (level < 0) s_jpeg_error_exit(c);
}

static void s_jpeg_progress(j_common_ptr c) {
    j_decompress_ptr d = (j_decompress_ptr)c;
    if (c->is_decompressor && d->input_scan_number > S_JPEG_MAX_SCANS) {
        s_jpeg_err_t *e = (s_jpeg_err_t *)c->err;
        snprintf(e->msg, sizeof e->msg, "more than %d scans", S_JPEG_MAX_SCANS);
        longjmp(e->jb, 1);
    }
}

static int s_decode_jpeg(const uint8_t *data, size_t len, uint64_t max_pixels, lf_image_t *out,
                         char *err, size_t errlen) {
    struct jpeg_decompress_struct cinfo;
    s_jpeg_err_t jerr;
    struct jpeg_progress_mgr prog = {.progress_monitor = s_jpeg_progress};
    uint8_t *volatile pixels = NULL;
    volatile int rc = LF_EFORMAT;
    memset(&cinfo, 0, sizeof cinfo);
    cinfo.err = jpeg_std_error(&jerr.pub);
    jerr.pub.error_exit = s_jpeg_error_exit;
    jerr.pub.emit_message = s_jpeg_emit;
    jerr.msg[0] = '\0';
    if (setjmp(jerr.jb)) {
        if (rc == LF_EFORMAT) s_err(err, errlen, "jpeg: %s", jerr.msg);
        jpeg_destroy_decompress(&cinfo);
        free(pixels);
        return rc;
    }
    jpeg_create_decompress(&cinfo);
    cinfo.progress = &prog;
    cinfo.mem->max_memory_to_use = 512L * 1024 * 1024;
    jpeg_mem_src(&cinfo, (unsigned char *)data, (unsigned long)len); /* const in newer libjpeg */
    jpeg_read_header(&cinfo, TRUE);
    if ((uint64_t)cinfo.image_width * cinfo.image_height > max_pixels) {
        rc = LF_ELIMIT;
        s_err(err, errlen, "jpeg: %s pixels over the limit", "image has more");
        longjmp(jerr.jb, 1);
    }
    cinfo.out_color_space = JCS_RGB;
    jpeg_start_decompress(&cinfo);
    uint32_t w = cinfo.output_width, h = cinfo.output_height;
    if (cinfo.output_components != 3 || (uint64_t)w * h > max_pixels) {
        snprintf(jerr.msg, sizeof jerr.msg, "unexpected output shape");
        longjmp(jerr.jb, 1);
    }
    pixels = malloc((size_t)w * h * 3);
    if (!pixels) {
        rc = LF_ENOMEM;
        longjmp(jerr.jb, 1);
    }
    while (cinfo.output_scanline < h) {
        JSAMPROW row = pixels + (size_t)cinfo.output_scanline * w * 3;
        if (jpeg_read_scanlines(&cinfo, &row, 1) != 1) {
            snprintf(jerr.msg, sizeof jerr.msg, "truncated file");
            longjmp(jerr.jb, 1);
        }
    }
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    *out = (lf_image_t){.pixels = pixels, .width = w, .height = h, .channels = 3};
    return 0;
}

/* =========================================================== WebP read */

static int s_decode_webp(const uint8_t *data, size_t len, uint64_t max_pixels, int keep_alpha, lf_image_t *out,
                         char *err, size_t errlen) {
    WebPBitstreamFeatures f;
    if (WebPGetFeatures(data, len, &f) != VP8_STATUS_OK) {
        s_err(err, errlen, "webp: %s", "bad or truncated header");
        return LF_EFORMAT;
    }
    if (f.has_animation) {
        s_err(err, errlen, "webp: %s", "animated images are not supported");
        return LF_EFORMAT;
    }
    if (f.width <= 0 || f.height <= 0) return LF_EFORMAT;
    if ((uint64_t)f.width * (uint64_t)f.height > max_pixels) {
        s_err(err, errlen, "webp: %s pixels over the limit", "image has more");
        return LF_ELIMIT;
    }
    const int ch = keep_alpha && f.has_alpha ? 4 : 3;
    size_t stride = (size_t)f.width * ch, size = stride * (size_t)f.height;
    uint8_t *pixels = malloc(size);
    if (!pixels) return LF_ENOMEM;
    /* The Into variant decodes into our malloc'd buffer, so callers free()
     * every lf_image_t the same way. */
    if (!(ch == 4 ? WebPDecodeRGBAInto(data, len, pixels, size, (int)stride) != NULL
                  : WebPDecodeRGBInto(data, len, pixels, size, (int)stride) != NULL)) {
        free(pixels);
        s_err(err, errlen, "webp: %s", "corrupt or truncated data");
        return LF_EFORMAT;
    }
    *out = (lf_image_t){.pixels = pixels, .width = (uint32_t)f.width,
                        .height = (uint32_t)f.height, .channels = (uint32_t)ch};
    return 0;
}

static int s_decode(const uint8_t *data, size_t len, const lf_image_limits_t *lim, int keep_alpha,
                    lf_image_t *out, char *err, size_t errlen);

int lf_image_decode(const uint8_t *data, size_t len, const lf_image_limits_t *lim,
                    lf_image_t *out, char *err, size_t errlen) {
    return s_decode(data, len, lim, 0, out, err, errlen);
}

int lf_image_decode_alpha(const uint8_t *data, size_t len, const lf_image_limits_t *lim,
                          lf_image_t *out, char *err, size_t errlen) {
    return s_decode(data, len, lim, 1, out, err, errlen);
}

static int s_decode(const uint8_t *data, size_t len, const lf_image_limits_t *lim, int keep_alpha,
                    lf_image_t *out, char *err, size_t errlen) {
    if (err && errlen) err[0] = '\0';
    if (!data || !out) return LF_EINVAL;
    size_t max_bytes = lim && lim->max_bytes ? lim->max_bytes : LF_IMAGE_DEFAULT_MAX_BYTES;
    uint64_t max_pixels = lim && lim->max_pixels ? lim->max_pixels : LF_IMAGE_DEFAULT_MAX_PIXELS;
    if (len > max_bytes) {
        s_err(err, errlen, "image: %s", "file over the size limit");
        return LF_ETOOBIG;
    }
    lf_image_info_t info;
    if (lf_image_probe(data, len, &info) != 0) {
        s_err(err, errlen, "image: %s", "not a PNG, JPEG or WebP file, or a bad header");
        return LF_EFORMAT;
    }
    /* Refused from the header alone, before any decoder allocates. */
    if ((uint64_t)info.width * info.height > max_pixels) {
        if (err && errlen)
            snprintf(err, errlen, "%s: %ux%u is over the limit of %llu pixels",
                     lf_image_format_name(info.format), info.width, info.height,
                     (unsigned long long)max_pixels);
        return LF_ELIMIT;
    }
    switch (info.format) {
    case LF_IMG_PNG: return s_decode_png(data, len, max_pixels, keep_alpha, out, err, errlen);
    case LF_IMG_JPEG: return s_decode_jpeg(data, len, max_pixels, out, err, errlen);
    case LF_IMG_WEBP: return s_decode_webp(data, len, max_pixels, keep_alpha, out, err, errlen);
    default: return LF_EFORMAT;
    }
}

/* =========================================================== PNG texts */

static bool s_utf8_valid(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        int k = c < 0x80 ? 0 : (c & 0xe0) == 0xc0 ? 1 : (c & 0xf0) == 0xe0 ? 2 : (c & 0xf8) == 0xf0 ? 3 : -1;
        if (k < 0 || (k == 1 && c < 0xc2) || n - i - 1 < (size_t)k) return false;
        for (int j = 1; j <= k; j++)
            if ((s[i + j] & 0xc0) != 0x80) return false;
        i += (size_t)k + 1;
    }
    return true;
}

/* A copy as UTF-8: tEXt/zTXt are Latin-1 by the spec, but many writers put
 * UTF-8 there; valid UTF-8 is kept, anything else is converted. */
static char *s_text_utf8(const char *s, size_t n, bool latin1) {
    if (!latin1 || s_utf8_valid((const unsigned char *)s, n)) return strndup(s, n);
    char *o = malloc(2 * n + 1), *p = o;
    if (!o) return NULL;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x80) *p++ = (char)c;
        else *p++ = (char)(0xc0 | (c >> 6)), *p++ = (char)(0x80 | (c & 0x3f));
    }
    *p = '\0';
    return o;
}

/* Appends info's texts not yet taken (libpng keeps them all in one list). */
static int s_collect(png_structp png, png_infop info, lf_image_text_t **arr, size_t *n, size_t *cap) {
    png_textp t = NULL;
    int count = png_get_text(png, info, &t, NULL);
    for (int i = (int)*n; i < count; i++) {
        if (*n == *cap) {
            size_t nc = *cap ? *cap * 2 : 8;
            lf_image_text_t *na = realloc(*arr, nc * sizeof *na);
            if (!na) return LF_ENOMEM;
            *arr = na;
            *cap = nc;
        }
        bool latin1 = t[i].compression == PNG_TEXT_COMPRESSION_NONE ||
                      t[i].compression == PNG_TEXT_COMPRESSION_zTXt;
        size_t tl = latin1 ? t[i].text_length : t[i].itxt_length;
        lf_image_text_t *e = &(*arr)[*n];
        e->key = s_text_utf8(t[i].key, strlen(t[i].key), true);
        e->value = t[i].text ? s_text_utf8(t[i].text, tl, latin1) : strdup("");
        (*n)++;
        if (!e->key || !e->value) return LF_ENOMEM;
    }
    return 0;
}

void lf_image_texts_free(lf_image_text_t *texts, size_t n) {
    for (size_t i = 0; texts && i < n; i++) {
        free(texts[i].key);
        free(texts[i].value);
    }
    free(texts);
}

int lf_image_png_texts(const uint8_t *data, size_t len, lf_image_text_t **texts, size_t *n) {
    if (!data || !texts || !n) return LF_EINVAL;
    if (len < 8 || memcmp(data, s_png_sig, 8) != 0) return LF_EFORMAT;
    char err[128];
    int wr = s_png_walk(data, len, err, sizeof err);
    if (wr) return wr;
    s_png_src_t src = {.data = data, .len = len, .err = err, .errlen = sizeof err};
    png_infop info = NULL;
    png_structp png = s_png_reader(&src, &info);
    if (!png) return LF_ENOMEM;
    lf_image_text_t *volatile arr = NULL;
    volatile size_t cnt = 0;
    uint8_t *volatile row = NULL;
    volatile int rc = LF_EFORMAT;
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, NULL);
        lf_image_texts_free(arr, cnt);
        free(row);
        return rc;
    }
    lf_image_text_t *a = NULL;
    size_t nn = 0, cc = 0;
    png_read_info(png, info);
    int r = s_collect(png, info, &a, &nn, &cc);
    arr = a, cnt = nn;
    if (r) {
        rc = r;
        png_error(png, "out of memory");
    }
    /* Texts after IDAT: walk the rows through one row buffer, then read the end. */
    uint32_t w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    if ((uint64_t)w * h > LF_IMAGE_DEFAULT_MAX_PIXELS) {
        rc = LF_ELIMIT;
        png_error(png, "image too large to read past");
    }
    int passes = png_set_interlace_handling(png);
    png_read_update_info(png, info);
    row = malloc(png_get_rowbytes(png, info));
    if (!row) {
        rc = LF_ENOMEM;
        png_error(png, "out of memory");
    }
    for (int p = 0; p < passes; p++)
        for (uint32_t y = 0; y < h; y++) png_read_row(png, row, NULL);
    png_read_end(png, info);
    r = s_collect(png, info, &a, &nn, &cc);
    arr = a, cnt = nn;
    if (r) {
        rc = r;
        png_error(png, "out of memory");
    }
    png_destroy_read_struct(&png, &info, NULL);
    free(row);
    *texts = a;
    *n = nn;
    return 0;
}

int lf_image_png_text_get(const uint8_t *data, size_t len, const char *key, char **value) {
    if (!key || !value) return LF_EINVAL;
    lf_image_text_t *t = NULL;
    size_t n = 0;
    int r = lf_image_png_texts(data, len, &t, &n);
    if (r) return r;
    r = LF_ENOTFOUND;
    for (size_t i = 0; i < n; i++)
        if (strcmp(t[i].key, key) == 0) {
            *value = t[i].value;
            t[i].value = NULL;
            r = 0;
            break;
        }
    lf_image_texts_free(t, n);
    return r;
}
