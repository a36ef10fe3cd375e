/* libFuzzer target: lf_gguf_parse on arbitrary bytes must return a code or
 * an object whose tensors all lie inside the buffer, with row sizes that
 * match their block types, and whose metadata reads back without faults. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "lf_error.h"
#include "lf_gguf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lf_gguf_t *g = NULL;
    char err[256];
    if (lf_gguf_parse(&g, data, size, "fuzz", err, sizeof err) != 0) return 0;
    for (size_t i = 0; i < lf_gguf_count(g); i++) {
        const lf_tensor_info_t *t = lf_gguf_at(g, i);
        const uint8_t *p = t->data;
        LF_ASSERT(p >= data && p <= data + size && t->nbytes <= (size_t)(data + size - p));
        LF_ASSERT(lf_gguf_find(g, t->name) == t);
        int64_t numel = lf_tensorinfo_numel(t);
        size_t blck = lf_dtype_block(t->dtype);
        LF_ASSERT(blck > 0 && numel % (int64_t)blck == 0);
        LF_ASSERT(t->nbytes == (size_t)numel / blck * lf_dtype_block_bytes(t->dtype));
        if (t->nbytes) {
            volatile uint8_t first = p[0], last = p[t->nbytes - 1];
            (void)first, (void)last;
        }
    }
    for (size_t i = 0; i < lf_gguf_kv_count(g); i++) {
        const char *k = lf_gguf_kv_key(g, i);
        LF_ASSERT(k && lf_gguf_kv_find(g, k) == (long)i);
        int64_t v;
        double f;
        (void)lf_gguf_kv_int(g, i, &v);
        (void)lf_gguf_kv_float(g, i, &f);
        const char *s = lf_gguf_kv_str(g, i);
        if (s) (void)strlen(s);
        lf_gguf_vtype_t et;
        uint64_t n;
        if (lf_gguf_kv_array(g, i, &et, &n) == 0 && et == LF_GGUF_STRING)
            for (uint64_t j = 0; j < n; j++) LF_ASSERT(lf_gguf_kv_array_str(g, i, j) != NULL);
    }
    lf_gguf_destroy(&g);
    return 0;
}
