/* libFuzzer target: lf_safetensors_parse on arbitrary bytes must return a
 * code or an object whose descriptors all lie inside the buffer. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "lf_error.h"
#include "lf_safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lf_safetensors_t *st = NULL;
    char err[256];
    if (lf_safetensors_parse(&st, data, size, "fuzz", err, sizeof err) != 0) return 0;
    for (size_t i = 0; i < lf_safetensors_count(st); i++) {
        const lf_tensor_info_t *t = lf_safetensors_at(st, i);
        const uint8_t *p = t->data;
        LF_ASSERT(p >= data && p + t->nbytes <= data + size);
        LF_ASSERT(lf_safetensors_find(st, t->name) == t);
        if (t->nbytes) {
            volatile float f = lf_tensorinfo_get_f32(t, lf_tensorinfo_numel(t) - 1);
            (void)f;
        }
    }
    lf_safetensors_destroy(&st);
    return 0;
}
