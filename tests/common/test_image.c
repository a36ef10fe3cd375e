/* test_image: PNG encode/decode with text chunks, header probes, limits
 * (decompression bombs), truncation, and JPEG/WebP files made here with
 * libjpeg and libwebp. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jpeglib.h>
#include <webp/encode.h>

#include "lf_error.h"
#include "lf_image.h"

/* ---------------------------------------------------------- fixtures */

static lf_image_t make_image(uint32_t w, uint32_t h, uint32_t ch) {
    lf_image_t im = {.width = w, .height = h, .channels = ch};
    im.pixels = malloc((size_t)w * h * ch);
    for (uint32_t y = 0; y < h; y++)
        for (uint32_t x = 0; x < w; x++) {
            uint8_t *p = im.pixels + ((size_t)y * w + x) * ch;
            p[0] = (uint8_t)(x * 255 / (w - 1));
            p[1] = (uint8_t)(y * 255 / (h - 1));
            p[2] = (uint8_t)((x + y) * 4);
            if (ch == 4) p[3] = (uint8_t)(x * 7 + y);
        }
    return im;
}

/* Mean absolute difference of the RGB channels (b is RGB8). */
static double mean_diff(const lf_image_t *a, const lf_image_t *b) {
    assert_int_equal(a->width, b->width);
    assert_int_equal(a->height, b->height);
    assert_int_equal(b->channels, 3);
    double sum = 0;
    size_t n = (size_t)a->width * a->height;
    for (size_t i = 0; i < n; i++)
        for (int c = 0; c < 3; c++) sum += abs(a->pixels[i * a->channels + c] - b->pixels[i * 3 + c]);
    return sum / (double)(n * 3);
}

static void encode_png(const lf_image_t *im, const lf_image_text_t *t, size_t nt, uint8_t **buf,
                       size_t *len) {
    char err[128] = "";
    int r = lf_image_png_encode(im, t, nt, -1, buf, len, err, sizeof err);
    if (r) fail_msg("png encode: %s %s", lf_err_name(r), err);
}

static void encode_jpeg(const lf_image_t *im, bool progressive, uint8_t **buf, size_t *len) {
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr e;
    c.err = jpeg_std_error(&e);
    jpeg_create_compress(&c);
    unsigned char *mem = NULL;
    unsigned long msize = 0;
    jpeg_mem_dest(&c, &mem, &msize);
    c.image_width = im->width;
    c.image_height = im->height;
    c.input_components = 3;
    c.in_color_space = JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, 95, TRUE);
    if (progressive) jpeg_simple_progression(&c);
    jpeg_start_compress(&c, TRUE);
    while (c.next_scanline < c.image_height) {
        JSAMPROW row = im->pixels + (size_t)c.next_scanline * im->width * 3;
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    *buf = malloc(msize);
    memcpy(*buf, mem, msize);
    *len = msize;
    free(mem);
}

typedef enum { WEBP_LOSSY, WEBP_LOSSLESS, WEBP_LOSSY_ALPHA } webp_kind_t;

static void encode_webp(const lf_image_t *im, webp_kind_t k, uint8_t **buf, size_t *len) {
    uint8_t *out = NULL;
    *len = 0;
    int stride = (int)(im->width * im->channels);
    switch (k) {
    case WEBP_LOSSY: *len = WebPEncodeRGB(im->pixels, (int)im->width, (int)im->height, stride, 90, &out); break;
    case WEBP_LOSSLESS:
        *len = WebPEncodeLosslessRGB(im->pixels, (int)im->width, (int)im->height, stride, &out);
        break;
    case WEBP_LOSSY_ALPHA:
        *len = WebPEncodeRGBA(im->pixels, (int)im->width, (int)im->height, stride, 90, &out);
        break;
    }
    assert_true(*len > 0);
    *buf = malloc(*len);
    memcpy(*buf, out, *len);
    WebPFree(out);
}

static uint32_t crc32_png(const uint8_t *p, size_t n) {
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1)));
    }
    return c ^ 0xffffffffu;
}

static void put_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

/* Signature + a valid IHDR (with CRC) claiming w x h RGB, and nothing else. */
static size_t png_header_only(uint8_t out[33], uint32_t w, uint32_t h) {
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    memcpy(out, sig, 8);
    put_be32(out + 8, 13);
    memcpy(out + 12, "IHDR", 4);
    put_be32(out + 16, w);
    put_be32(out + 20, h);
    out[24] = 8, out[25] = 2, out[26] = 0, out[27] = 0, out[28] = 0;
    put_be32(out + 29, crc32_png(out + 12, 17));
    return 33;
}

/* -------------------------------------------------------------- tests */

static void test_png_round_trip_texts(void **state) {
    (void)state;
    const char *params = "a lighthouse at dusk\nNegative prompt: blurry\nSteps: 20, Sampler: Euler a, "
                         "CFG scale: 7, Seed: 42, Size: 37x23, Model: lf-diagnostic";
    lf_image_text_t texts[] = {
        {"parameters", (char *)params},
        {"Software", "lightfarm"},
        {"Comment", "\xc3\xa9t\xc3\xa9 \xe2\x98\x80"}, /* non-ASCII: written as iTXt */
    };
    for (uint32_t ch = 3; ch <= 4; ch++) {
        lf_image_t im = make_image(37, 23, ch), back = {0};
        uint8_t *buf;
        size_t len;
        encode_png(&im, texts, 3, &buf, &len);

        lf_image_info_t info;
        assert_int_equal(lf_image_probe(buf, len, &info), 0);
        assert_int_equal(info.format, LF_IMG_PNG);
        assert_int_equal(info.width, 37);
        assert_int_equal(info.height, 23);
        assert_int_equal(info.has_alpha, ch == 4);

        char err[128];
        assert_int_equal(lf_image_decode(buf, len, NULL, &back, err, sizeof err), 0);
        assert_int_equal(back.channels, 3);
        assert_true(mean_diff(&im, &back) == 0.0); /* lossless; alpha dropped */

        lf_image_text_t *got;
        size_t n;
        assert_int_equal(lf_image_png_texts(buf, len, &got, &n), 0);
        assert_int_equal(n, 3);
        for (size_t i = 0; i < 3; i++) {
            assert_string_equal(got[i].key, texts[i].key);
            assert_string_equal(got[i].value, texts[i].value);
        }
        lf_image_texts_free(got, n);

        char *v = NULL;
        assert_int_equal(lf_image_png_text_get(buf, len, "parameters", &v), 0);
        assert_string_equal(v, params);
        free(v);
        assert_int_equal(lf_image_png_text_get(buf, len, "nope", &v), LF_ENOTFOUND);

        free(buf);
        lf_image_clear(&im);
        lf_image_clear(&back);
        assert_null(back.pixels);
    }
    lf_image_clear(NULL);
}

/* Appends a tEXt chunk just before IEND (i.e. after the image data). */
static uint8_t *insert_text_before_iend(const uint8_t *png, size_t len, const char *key,
                                        const char *latin1, size_t *out_len) {
    size_t kl = strlen(key), vl = strlen(latin1), dl = kl + 1 + vl;
    size_t chunk = 12 + dl;
    uint8_t *o = malloc(len + chunk);
    size_t iend = len - 12; /* IEND is the last 12 bytes */
    memcpy(o, png, iend);
    uint8_t *c = o + iend;
    put_be32(c, (uint32_t)dl);
    memcpy(c + 4, "tEXt", 4);
    memcpy(c + 8, key, kl);
    c[8 + kl] = 0;
    memcpy(c + 9 + kl, latin1, vl);
    put_be32(c + 8 + dl, crc32_png(c + 4, 4 + dl));
    memcpy(c + chunk, png + iend, 12);
    *out_len = len + chunk;
    return o;
}

static void test_png_text_after_idat_latin1(void **state) {
    (void)state;
    lf_image_t im = make_image(20, 10, 3), out = {0};
    uint8_t *buf;
    size_t len, len2;
    lf_image_text_t t = {"parameters", "before"};
    encode_png(&im, &t, 1, &buf, &len);
    uint8_t *png = insert_text_before_iend(buf, len, "Comment", "caf\xe9", &len2);
    lf_image_text_t *got;
    size_t n;
    assert_int_equal(lf_image_png_texts(png, len2, &got, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(got[0].value, "before");
    assert_string_equal(got[1].key, "Comment");
    assert_string_equal(got[1].value, "caf\xc3\xa9"); /* Latin-1 e-acute as UTF-8 */
    lf_image_texts_free(got, n);
    char *v;
    assert_int_equal(lf_image_png_text_get(png, len2, "Comment", &v), 0);
    free(v);
    assert_int_equal(lf_image_decode(png, len2, NULL, &out, NULL, 0), 0);
    lf_image_clear(&out);
    free(png);
    free(buf);
    lf_image_clear(&im);
}

static void test_png_no_texts_and_levels(void **state) {
    (void)state;
    lf_image_t im = make_image(16, 16, 3), back = {0};
    uint8_t *b0, *b9;
    size_t l0, l9;
    assert_int_equal(lf_image_png_encode(&im, NULL, 0, 0, &b0, &l0, NULL, 0), 0);
    assert_int_equal(lf_image_png_encode(&im, NULL, 0, 9, &b9, &l9, NULL, 0), 0);
    assert_true(l9 < l0);
    lf_image_text_t *t = (lf_image_text_t *)1;
    size_t n = 99;
    assert_int_equal(lf_image_png_texts(b9, l9, &t, &n), 0);
    assert_int_equal(n, 0);
    lf_image_texts_free(t, n);
    assert_int_equal(lf_image_decode(b0, l0, NULL, &back, NULL, 0), 0);
    assert_true(mean_diff(&im, &back) == 0.0);
    lf_image_clear(&back);
    free(b0);
    free(b9);
    lf_image_clear(&im);
}

static void test_png_encode_errors(void **state) {
    (void)state;
    lf_image_t im = make_image(4, 4, 3);
    uint8_t *buf = NULL;
    size_t len = 0;
    char err[128];
    static const char *bad_keys[] = {"", " lead", "trail ", "two  spaces", "caf\xc3\xa9", "tab\tkey",
                                     "0123456789012345678901234567890123456789012345678901234567890123456789012345678X"};
    for (size_t i = 0; i < sizeof bad_keys / sizeof bad_keys[0]; i++) {
        lf_image_text_t t = {(char *)bad_keys[i], "v"};
        assert_int_equal(lf_image_png_encode(&im, &t, 1, -1, &buf, &len, err, sizeof err), LF_EINVAL);
    }
    lf_image_text_t nullv = {"k", NULL};
    assert_int_equal(lf_image_png_encode(&im, &nullv, 1, -1, &buf, &len, err, sizeof err), LF_EINVAL);
    assert_int_equal(lf_image_png_encode(&im, NULL, 0, 10, &buf, &len, err, sizeof err), LF_EINVAL);
    lf_image_t bad = im;
    bad.channels = 2;
    assert_int_equal(lf_image_png_encode(&bad, NULL, 0, -1, &buf, &len, err, sizeof err), LF_EINVAL);
    bad = im;
    bad.width = 0;
    assert_int_equal(lf_image_png_encode(&bad, NULL, 0, -1, &buf, &len, err, sizeof err), LF_EINVAL);
    assert_null(buf);
    lf_image_clear(&im);
}

static void test_bomb_header_refused(void **state) {
    (void)state;
    uint8_t hdr[33];
    size_t len = png_header_only(hdr, 100000, 100000);
    lf_image_info_t info;
    assert_int_equal(lf_image_probe(hdr, len, &info), 0);
    assert_int_equal(info.width, 100000);
    assert_int_equal(info.height, 100000);
    /* 10^10 pixels: refused from the header, before any decoder runs (the
     * 33-byte input has no image data, so a decoder would fail differently). */
    lf_image_t out = {0};
    char err[160];
    assert_int_equal(lf_image_decode(hdr, len, NULL, &out, err, sizeof err), LF_ELIMIT);
    assert_non_null(strstr(err, "100000x100000"));
    assert_null(out.pixels);
    lf_image_limits_t lim = {.max_pixels = 1000};
    len = png_header_only(hdr, 40, 40);
    assert_int_equal(lf_image_decode(hdr, len, &lim, &out, err, sizeof err), LF_ELIMIT);
    /* Beyond any sane dimension: not even a valid probe. */
    len = png_header_only(hdr, 2000000, 1);
    assert_int_equal(lf_image_probe(hdr, len, &info), LF_EFORMAT);
    len = png_header_only(hdr, 0, 10);
    assert_int_equal(lf_image_probe(hdr, len, &info), LF_EFORMAT);
    /* Within the limit but no image data: a clean truncation error. */
    len = png_header_only(hdr, 8, 8);
    assert_int_equal(lf_image_decode(hdr, len, NULL, &out, err, sizeof err), LF_EFORMAT);
    assert_true(strlen(err) > 0);
}

static void test_size_limit(void **state) {
    (void)state;
    lf_image_t im = make_image(32, 32, 3), out = {0};
    uint8_t *buf;
    size_t len;
    encode_png(&im, NULL, 0, &buf, &len);
    lf_image_limits_t lim = {.max_bytes = len - 1};
    assert_int_equal(lf_image_decode(buf, len, &lim, &out, NULL, 0), LF_ETOOBIG);
    lim.max_bytes = len;
    lim.max_pixels = 32 * 32;
    assert_int_equal(lf_image_decode(buf, len, &lim, &out, NULL, 0), 0);
    lf_image_clear(&out);
    lim.max_pixels = 32 * 32 - 1;
    assert_int_equal(lf_image_decode(buf, len, &lim, &out, NULL, 0), LF_ELIMIT);
    free(buf);
    lf_image_clear(&im);
}

/* Every prefix of a valid file fails cleanly, in every format. */
static void check_prefixes(const uint8_t *buf, size_t len) {
    for (size_t cut = 0; cut < len; cut++) {
        uint8_t *p = malloc(cut ? cut : 1);
        memcpy(p, buf, cut);
        lf_image_t out = {0};
        char err[128];
        int r = lf_image_decode(p, cut, NULL, &out, err, sizeof err);
        if (r == 0) fail_msg("prefix %zu of %zu decoded", cut, len);
        assert_null(out.pixels);
        free(p);
    }
}

static void test_truncated(void **state) {
    (void)state;
    lf_image_t im = make_image(24, 20, 3);
    uint8_t *buf;
    size_t len;
    lf_image_text_t t = {"parameters", "x"};
    encode_png(&im, &t, 1, &buf, &len);
    check_prefixes(buf, len);
    /* The text reader also stops cleanly. */
    for (size_t cut = 0; cut < len; cut++) {
        lf_image_text_t *got = NULL;
        size_t n = 0;
        if (lf_image_png_texts(buf, cut, &got, &n) == 0) fail_msg("texts of prefix %zu", cut);
    }
    free(buf);
    encode_jpeg(&im, false, &buf, &len);
    check_prefixes(buf, len);
    free(buf);
    encode_webp(&im, WEBP_LOSSY, &buf, &len);
    check_prefixes(buf, len);
    free(buf);
    encode_webp(&im, WEBP_LOSSLESS, &buf, &len);
    check_prefixes(buf, len);
    free(buf);
    lf_image_clear(&im);
}

/* A tiny PNG whose text chunk claims 1 GiB: refused from the chunk headers,
 * without libpng allocating the claimed size. */
static void test_png_huge_chunk_claim(void **state) {
    (void)state;
    lf_image_t im = make_image(8, 8, 3), out = {0};
    uint8_t *buf;
    size_t len;
    lf_image_text_t t = {"parameters", "x"};
    encode_png(&im, &t, 1, &buf, &len);
    assert_memory_equal(buf + 37, "tEXt", 4); /* right after IHDR */
    buf[33] = 0x40;                           /* length 0x4000000c */
    char err[128] = "";
    assert_int_equal(lf_image_decode(buf, len, NULL, &out, err, sizeof err), LF_EFORMAT);
    assert_non_null(strstr(err, "truncated"));
    lf_image_text_t *texts;
    size_t n;
    assert_int_equal(lf_image_png_texts(buf, len, &texts, &n), LF_EFORMAT);
    free(buf);
    lf_image_clear(&im);
}

static void test_corrupt_png(void **state) {
    (void)state;
    lf_image_t im = make_image(24, 20, 3), out = {0};
    uint8_t *buf;
    size_t len;
    encode_png(&im, NULL, 0, &buf, &len);
    buf[len - 20] ^= 0x55; /* inside IDAT: CRC mismatch */
    char err[128] = "";
    assert_int_equal(lf_image_decode(buf, len, NULL, &out, err, sizeof err), LF_EFORMAT);
    assert_non_null(strstr(err, "png"));
    free(buf);
    lf_image_clear(&im);
}

static void test_jpeg(void **state) {
    (void)state;
    lf_image_t im = make_image(64, 48, 3);
    for (int prog = 0; prog <= 1; prog++) {
        uint8_t *buf;
        size_t len;
        encode_jpeg(&im, prog, &buf, &len);
        lf_image_info_t info;
        assert_int_equal(lf_image_probe(buf, len, &info), 0);
        assert_int_equal(info.format, LF_IMG_JPEG);
        assert_int_equal(info.width, 64);
        assert_int_equal(info.height, 48);
        lf_image_t out = {0};
        char err[128];
        assert_int_equal(lf_image_decode(buf, len, NULL, &out, err, sizeof err), 0);
        assert_true(mean_diff(&im, &out) < 6.0);
        lf_image_clear(&out);
        lf_image_limits_t lim = {.max_pixels = 64 * 47};
        assert_int_equal(lf_image_decode(buf, len, &lim, &out, err, sizeof err), LF_ELIMIT);
        /* A PNG text read on a JPEG is a format error, not a crash. */
        lf_image_text_t *t;
        size_t n;
        assert_int_equal(lf_image_png_texts(buf, len, &t, &n), LF_EFORMAT);
        free(buf);
    }
    lf_image_clear(&im);
}

/* lf_image_decode_alpha: an RGBA PNG keeps its alpha byte for byte; RGB and
 * gray+alpha PNGs (Pillow's "RGB" / "LA") decode to RGB as lf_image_decode. */
static void test_png_alpha(void **state) {
    (void)state;
    lf_image_t rgba = make_image(33, 17, 4), rgb = make_image(33, 17, 3);
    uint8_t *buf;
    size_t len;
    assert_int_equal(lf_image_png_encode(&rgba, NULL, 0, -1, &buf, &len, NULL, 0), 0);
    lf_image_t out = {0};
    assert_int_equal(lf_image_decode_alpha(buf, len, NULL, &out, NULL, 0), 0);
    assert_int_equal(out.channels, 4);
    assert_memory_equal(out.pixels, rgba.pixels, 33 * 17 * 4);
    lf_image_clear(&out);
    assert_int_equal(lf_image_decode(buf, len, NULL, &out, NULL, 0), 0);
    assert_int_equal(out.channels, 3);
    lf_image_clear(&out);
    free(buf);
    assert_int_equal(lf_image_png_encode(&rgb, NULL, 0, -1, &buf, &len, NULL, 0), 0);
    assert_int_equal(lf_image_decode_alpha(buf, len, NULL, &out, NULL, 0), 0);
    assert_int_equal(out.channels, 3);
    assert_memory_equal(out.pixels, rgb.pixels, 33 * 17 * 3);
    lf_image_clear(&out);
    free(buf);
    lf_image_clear(&rgba);
    lf_image_clear(&rgb);
}

static void test_webp(void **state) {
    (void)state;
    lf_image_t rgb = make_image(40, 30, 3), rgba = make_image(40, 30, 4);
    static const struct {
        webp_kind_t kind;
        bool alpha;
        double max_diff;
    } cases[] = {{WEBP_LOSSY, false, 6.0}, {WEBP_LOSSLESS, false, 0.0}, {WEBP_LOSSY_ALPHA, true, 6.0}};
    for (size_t i = 0; i < 3; i++) {
        const lf_image_t *src = cases[i].kind == WEBP_LOSSY_ALPHA ? &rgba : &rgb;
        uint8_t *buf;
        size_t len;
        encode_webp(src, cases[i].kind, &buf, &len);
        lf_image_info_t info;
        assert_int_equal(lf_image_probe(buf, len, &info), 0);
        assert_int_equal(info.format, LF_IMG_WEBP);
        assert_int_equal(info.width, 40);
        assert_int_equal(info.height, 30);
        assert_int_equal(info.has_alpha, cases[i].alpha);
        lf_image_t out = {0};
        char err[128];
        assert_int_equal(lf_image_decode(buf, len, NULL, &out, err, sizeof err), 0);
        if (mean_diff(src, &out) > cases[i].max_diff) fail_msg("webp case %zu differs", i);
        lf_image_clear(&out);
        /* With the alpha kept: 4 channels only for a WebP with alpha. */
        assert_int_equal(lf_image_decode_alpha(buf, len, NULL, &out, err, sizeof err), 0);
        assert_int_equal(out.channels, cases[i].alpha ? 4 : 3);
        if (cases[i].alpha && cases[i].kind == WEBP_LOSSY_ALPHA)
            for (size_t p = 0; p < 40 * 30; p++)
                if (abs((int)out.pixels[p * 4 + 3] - (int)rgba.pixels[p * 4 + 3]) > 2) fail_msg("webp alpha %zu", p);
        lf_image_clear(&out);
        lf_image_limits_t lim = {.max_pixels = 40 * 29};
        assert_int_equal(lf_image_decode(buf, len, &lim, &out, err, sizeof err), LF_ELIMIT);
        free(buf);
    }
    lf_image_clear(&rgb);
    lf_image_clear(&rgba);
}

static void test_probe_garbage(void **state) {
    (void)state;
    lf_image_info_t info = {.width = 7};
    static const struct {
        const char *bytes;
        size_t len;
    } cases[] = {
        {"", 0},
        {"GIF89a\x01\x00\x01\x00", 10},
        {"\x89PNG\r\n\x1a\n", 8},                                  /* signature only */
        {"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIDAT", 16},            /* first chunk not IHDR */
        {"\xff\xd8\xff", 3},                                       /* SOI, nothing else */
        {"\xff\xd8\xff\xda\x00\x02", 6},                           /* scan before any SOF */
        {"\xff\xd8\xff\xe0\xff\xff", 6},                           /* segment longer than file */
        {"\xff\xd8\xff\xe0\x00\x01", 6},                           /* segment length < 2 */
        {"RIFF\x10\x00\x00\x00WEBPVP8Z\x00\x00\x00\x00", 20},      /* unknown chunk */
        {"RIFF\x10\x00\x00\x00WAVEfmt \x00\x00\x00\x00", 20},      /* not WebP */
        {"RIFF\x10\x00\x00\x00WEBPVP8L\x05\x00\x00\x00\x2e", 21}, /* bad VP8L signature, short */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (lf_image_probe((const uint8_t *)cases[i].bytes, cases[i].len, &info) != LF_EFORMAT)
            fail_msg("probe case %zu accepted", i);
        lf_image_t out = {0};
        char err[128];
        assert_int_equal(lf_image_decode((const uint8_t *)cases[i].bytes, cases[i].len, NULL, &out,
                                         err, sizeof err),
                         LF_EFORMAT);
    }
    assert_int_equal(info.width, 7); /* untouched on failure */
    /* A JPEG SOF claiming 65535x65535 is refused by the pixel limit. */
    static const uint8_t big_jpeg[] = {0xff, 0xd8, 0xff, 0xc0, 0x00, 0x11, 0x08, 0xff, 0xff, 0xff, 0xff,
                                       0x03, 0x01, 0x22, 0x00, 0x02, 0x11, 0x01, 0x03, 0x11, 0x01};
    assert_int_equal(lf_image_probe(big_jpeg, sizeof big_jpeg, &info), 0);
    assert_int_equal(info.width, 65535);
    lf_image_t out = {0};
    assert_int_equal(lf_image_decode(big_jpeg, sizeof big_jpeg, NULL, &out, NULL, 0), LF_ELIMIT);
    /* A VP8X canvas of 16M x 16M likewise (probe says it is over any dimension). */
    uint8_t vp8x[30] = "RIFF\x16\x00\x00\x00WEBPVP8X\x0a\x00\x00\x00";
    memset(vp8x + 20, 0xff, 10);
    assert_int_equal(lf_image_probe(vp8x, sizeof vp8x, &info), LF_EFORMAT);
    assert_string_equal(lf_image_format_name(LF_IMG_WEBP), "webp");
    assert_string_equal(lf_image_format_mime(LF_IMG_JPEG), "image/jpeg");
    assert_string_equal(lf_image_format_name(LF_IMG_UNKNOWN), "unknown");
}

static uint64_t s_rng = 88172645463325252ull;
static uint64_t rnd(void) {
    s_rng ^= s_rng << 13;
    s_rng ^= s_rng >> 7;
    s_rng ^= s_rng << 17;
    return s_rng;
}

/* Bounded mutation smoke test over all three formats. */
static void test_mutations(void **state) {
    (void)state;
    lf_image_t im = make_image(24, 20, 3);
    uint8_t *files[4];
    size_t lens[4];
    encode_png(&im, NULL, 0, &files[0], &lens[0]);
    encode_jpeg(&im, true, &files[1], &lens[1]);
    encode_webp(&im, WEBP_LOSSY, &files[2], &lens[2]);
    encode_webp(&im, WEBP_LOSSLESS, &files[3], &lens[3]);
    for (int f = 0; f < 4; f++) {
        uint8_t *p = malloc(lens[f]);
        for (int i = 0; i < 150; i++) {
            memcpy(p, files[f], lens[f]);
            for (int k = 0; k < 3; k++) p[rnd() % lens[f]] = (uint8_t)rnd();
            lf_image_t out = {0};
            char err[128];
            if (lf_image_decode(p, lens[f], NULL, &out, err, sizeof err) == 0) {
                /* A flip may land in pixel data (or even in a size field). */
                assert_non_null(out.pixels);
                assert_true(out.width > 0 && out.height > 0 && out.channels == 3);
            }
            lf_image_clear(&out);
            lf_image_text_t *t = NULL;
            size_t n = 0;
            if (lf_image_png_texts(p, lens[f], &t, &n) == 0) lf_image_texts_free(t, n);
        }
        free(p);
        free(files[f]);
    }
    lf_image_clear(&im);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_png_round_trip_texts),
        cmocka_unit_test(test_png_text_after_idat_latin1),
        cmocka_unit_test(test_png_no_texts_and_levels),
        cmocka_unit_test(test_png_encode_errors),
        cmocka_unit_test(test_bomb_header_refused),
        cmocka_unit_test(test_size_limit),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_png_huge_chunk_claim),
        cmocka_unit_test(test_corrupt_png),
        cmocka_unit_test(test_jpeg),
        cmocka_unit_test(test_png_alpha),
        cmocka_unit_test(test_webp),
        cmocka_unit_test(test_probe_garbage),
        cmocka_unit_test(test_mutations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
