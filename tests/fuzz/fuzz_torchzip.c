/* libFuzzer target: lf_torchzip_parse on arbitrary bytes (zip directory and
 * restricted pickle) must return a code or an object whose tensors all lie
 * inside the buffer or an inflated copy, and whose pickled values convert to
 * JSON (lf_torchzip_json: an ultralytics model's yaml). Seed corpus: the
 * fixtures tests/engine/fixtures/tiny.pt, tiny_deflate.pt and yolo/v8det.pt
 * (a pickled object graph). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "lf_error.h"
#include "lf_torchzip.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lf_torchzip_t *z = NULL;
    char err[256];
    if (lf_torchzip_parse(&z, data, size, "fuzz", err, sizeof err) != 0) return 0;
    for (size_t i = 0; i < lf_torchzip_count(z); i++) {
        const lf_tensor_info_t *t = lf_torchzip_at(z, i);
        LF_ASSERT(lf_torchzip_find(z, t->name) == t);
        if (t->nbytes) {
            volatile float f = lf_tensorinfo_get_f32(t, lf_tensorinfo_numel(t) - 1);
            (void)f;
        }
    }
    static const char *const paths[] = {"model.yaml", "model.names", "model", "train_args", "version"};
    for (size_t i = 0; i < sizeof paths / sizeof *paths; i++) {
        char *j = NULL;
        if (lf_torchzip_json(z, paths[i], &j) == 0) free(j);
    }
    lf_torchzip_destroy(&z);
    return 0;
}
