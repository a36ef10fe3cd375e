/* gen_image_corpus: writes the seed corpus for fuzz_image.
 *
 * Usage: gen_image_corpus DIR   (tests/fuzz/corpus/image in the source tree)
 * Small PNG (RGB, RGBA + text chunks), JPEG (baseline, progressive) and WebP
 * (lossy, lossless, lossy with alpha = VP8X) files. Deterministic output for
 * a given libjpeg/libwebp version. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <webp/encode.h>

#include "lf_image.h"

static int s_write(const char *dir, const char *name, const uint8_t *p, size_t n) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n || fclose(f) != 0) {
        perror(path);
        return 1;
    }
    return 0;
}

static lf_image_t s_image(uint32_t w, uint32_t h, uint32_t ch) {
    lf_image_t im = {.width = w, .height = h, .channels = ch};
    im.pixels = malloc((size_t)w * h * ch);
    for (uint32_t i = 0; i < w * h; i++)
        for (uint32_t c = 0; c < ch; c++) im.pixels[i * ch + c] = (uint8_t)(i * (c + 3) + c * 40);
    return im;
}

static int s_jpeg(const char *dir, const char *name, const lf_image_t *im, int progressive) {
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr e;
    c.err = jpeg_std_error(&e);
    jpeg_create_compress(&c);
    unsigned char *mem = NULL;
    unsigned long size = 0;
    jpeg_mem_dest(&c, &mem, &size);
    c.image_width = im->width;
    c.image_height = im->height;
    c.input_components = 3;
    c.in_color_space = JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, 80, TRUE);
    if (progressive) jpeg_simple_progression(&c);
    jpeg_start_compress(&c, TRUE);
    while (c.next_scanline < c.image_height) {
        JSAMPROW row = im->pixels + (size_t)c.next_scanline * im->width * 3;
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    int rc = s_write(dir, name, mem, size);
    free(mem);
    return rc;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    const char *dir = argv[1];
    int rc = 0;
    lf_image_t rgb = s_image(16, 12, 3), rgba = s_image(16, 12, 4);
    uint8_t *buf;
    size_t len;
    lf_image_text_t texts[] = {{"parameters", "a cat\nSteps: 4, Sampler: Euler a, Seed: 1"},
                               {"Comment", "\xc3\xa9t\xc3\xa9"}};
    if (lf_image_png_encode(&rgb, NULL, 0, 6, &buf, &len, NULL, 0)) return 1;
    rc |= s_write(dir, "rgb.png", buf, len);
    free(buf);
    if (lf_image_png_encode(&rgba, texts, 2, 6, &buf, &len, NULL, 0)) return 1;
    rc |= s_write(dir, "rgba-text.png", buf, len);
    free(buf);
    rc |= s_jpeg(dir, "baseline.jpg", &rgb, 0);
    rc |= s_jpeg(dir, "progressive.jpg", &rgb, 1);
    uint8_t *w = NULL;
    len = WebPEncodeRGB(rgb.pixels, 16, 12, 16 * 3, 80, &w);
    rc |= !len || s_write(dir, "lossy.webp", w, len);
    WebPFree(w);
    len = WebPEncodeLosslessRGB(rgb.pixels, 16, 12, 16 * 3, &w);
    rc |= !len || s_write(dir, "lossless.webp", w, len);
    WebPFree(w);
    len = WebPEncodeRGBA(rgba.pixels, 16, 12, 16 * 4, 80, &w);
    rc |= !len || s_write(dir, "alpha.webp", w, len);
    WebPFree(w);
    lf_image_clear(&rgb);
    lf_image_clear(&rgba);
    return rc;
}
