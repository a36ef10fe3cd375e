/* libFuzzer target: lf_tflite_parse on arbitrary bytes must return a code or
 * an object whose tensors' data lie inside the buffer and whose operand
 * indices are valid. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "lf_error.h"
#include "lf_tflite.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lf_tflite_t *m = NULL;
    char err[256];
    if (lf_tflite_parse(&m, data, size, "fuzz", err, sizeof err) != 0) return 0;
    size_t nt = lf_tflite_tensor_count(m);
    for (size_t i = 0; i < nt; i++) {
        const lf_tflite_tensor_t *t = lf_tflite_tensor_at(m, i);
        if (!t->data) continue;
        const uint8_t *p = t->data;
        LF_ASSERT(p >= data && p + t->nbytes <= data + size);
        LF_ASSERT((size_t)t->numel * lf_tflite_type_size(t->type) == t->nbytes);
        if ((t->type == LF_TFLITE_FLOAT32 || t->type == LF_TFLITE_FLOAT16) && t->numel < 4096) {
            float *f = malloc((size_t)t->numel * sizeof *f + 1);
            if (f) LF_ASSERT(lf_tflite_tensor_f32(t, f) == 0);
            free(f);
        }
    }
    for (size_t i = 0; i < lf_tflite_op_count(m); i++) {
        const lf_tflite_op_t *op = lf_tflite_op_at(m, i);
        for (int k = 0; k < op->n_in; k++) LF_ASSERT(op->in[k] >= -1 && (size_t)op->in[k] + 1 <= nt);
        for (int k = 0; k < op->n_out; k++) LF_ASSERT(op->out[k] >= 0 && (size_t)op->out[k] < nt);
    }
    lf_tflite_destroy(&m);
    return 0;
}
