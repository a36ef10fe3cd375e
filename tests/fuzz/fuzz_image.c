/* libFuzzer target for lf_image: probe, bounded decode and PNG text reading
 * on arbitrary bytes never crash, hang or leak; a successful decode agrees
 * with the header probe, and its pixels survive a PNG round trip. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lf_error.h"
#include "lf_image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    lf_image_info_t info;
    int probed = lf_image_probe(data, size, &info);

    /* A small pixel budget keeps the fuzzer's memory flat. */
    lf_image_limits_t lim = {.max_pixels = 1u << 18};
    lf_image_t img = {0};
    char err[256];
    if (lf_image_decode(data, size, &lim, &img, err, sizeof err) == 0) {
        LF_ASSERT(probed == 0);
        LF_ASSERT(img.width == info.width && img.height == info.height && img.channels == 3);
        uint8_t *png = NULL;
        size_t len = 0;
        LF_ASSERT(lf_image_png_encode(&img, NULL, 0, 1, &png, &len, err, sizeof err) == 0);
        lf_image_t back = {0};
        LF_ASSERT(lf_image_decode(png, len, &lim, &back, err, sizeof err) == 0);
        LF_ASSERT(memcmp(back.pixels, img.pixels, (size_t)img.width * img.height * 3) == 0);
        lf_image_clear(&back);
        free(png);
    }
    lf_image_clear(&img);

    if (probed == 0 && info.format == LF_IMG_PNG && (uint64_t)info.width * info.height <= (1u << 18)) {
        lf_image_text_t *t = NULL;
        size_t n = 0;
        if (lf_image_png_texts(data, size, &t, &n) == 0) lf_image_texts_free(t, n);
    }
    return 0;
}
