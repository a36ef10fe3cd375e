/* Writes the seed corpus of fuzz_tflite: small, valid TFLite FlatBuffers
 * built by hand (the real BlazeFace files are fetched, never committed):
 * a DEQUANTIZE of float16 weights feeding a CONV_2D with its options, then
 * an ADD, a MAX_POOL_2D, a PAD with int32 paddings, a RESHAPE, a
 * CONCATENATION and a RESIZE_BILINEAR, in three sizes of graph.
 *
 * The builder lays tables out front to back: a table's offset fields are
 * patched once their targets (always later in the buffer) are written.
 * Usage: gen_tflite_corpus DIR */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    uint8_t b[1 << 16];
    size_t n;
} s_buf_t;

static void s_align(s_buf_t *f, size_t a)
{
    while (f->n % a) f->b[f->n++] = 0;
}

static size_t s_put32(s_buf_t *f, uint32_t v)
{
    size_t at = f->n;
    memcpy(f->b + f->n, &v, 4);
    f->n += 4;
    return at;
}

static void s_patch(s_buf_t *f, size_t field, size_t target)
{
    uint32_t v = (uint32_t)(target - field);
    memcpy(f->b + field, &v, 4);
}

/* A table of nf 4-byte fields (all present); fields[i] receives each slot's
 * position, to be filled with s_set or s_patch. */
static size_t s_table(s_buf_t *f, int nf, size_t *fields)
{
    s_align(f, 4);
    size_t vt = f->n;
    uint16_t h[2] = {(uint16_t)(4 + 2 * nf), (uint16_t)(4 + 4 * nf)};
    memcpy(f->b + f->n, h, 4);
    f->n += 4;
    for (int i = 0; i < nf; i++) {
        uint16_t off = (uint16_t)(4 + 4 * i);
        memcpy(f->b + f->n, &off, 2);
        f->n += 2;
    }
    s_align(f, 4);
    size_t t = f->n;
    int32_t so = (int32_t)(t - vt);
    memcpy(f->b + f->n, &so, 4);
    f->n += 4;
    for (int i = 0; i < nf; i++) fields[i] = s_put32(f, 0);
    return t;
}

static void s_set(s_buf_t *f, size_t field, uint32_t v) { memcpy(f->b + field, &v, 4); }

/* Marks field id of the table at t absent (its vtable entry 0). */
static void s_absent(s_buf_t *f, size_t t, int id)
{
    int32_t so;
    memcpy(&so, f->b + t, 4);
    memset(f->b + (size_t)((int64_t)t - so) + 4 + 2 * id, 0, 2);
}

/* A vector of int32 at the end; patches field to it. */
static void s_ivec(s_buf_t *f, size_t field, const int32_t *v, int n)
{
    s_align(f, 4);
    s_patch(f, field, f->n);
    s_put32(f, (uint32_t)n);
    for (int i = 0; i < n; i++) s_put32(f, (uint32_t)v[i]);
}

static void s_bytes(s_buf_t *f, size_t field, const void *p, size_t n)
{
    s_align(f, 4);
    s_patch(f, field, f->n);
    s_put32(f, (uint32_t)n);
    memcpy(f->b + f->n, p, n);
    f->n += n;
    f->b[f->n++] = 0;
}

/* A vector of n table offsets; slots[i] receives each slot's position. */
static void s_tvec(s_buf_t *f, size_t field, int n, size_t *slots)
{
    s_align(f, 4);
    s_patch(f, field, f->n);
    s_put32(f, (uint32_t)n);
    for (int i = 0; i < n; i++) slots[i] = s_put32(f, 0);
}

typedef struct {
    const char *name;
    int rank, shape[4], type, buffer;
} s_tensor_t;

typedef struct {
    int code_index, n_in, n_out, in[3], out[1], opt_type, opt[6], n_opt;
} s_op_t;

static size_t s_model(s_buf_t *f, int variant)
{
    /* Tensors: 0 input [1,4,4,3]; 1 f16 weights [2,1,1,3]; 2 f32 weights;
     * 3 bias [2]; 4 conv out [1,4,4,2]; 5 add out; 6 pool out [1,2,2,2];
     * 7 paddings int32 [4,2]; 8 pad out [1,2,2,4]; 9 reshape [1,4,4];
     * 10 concat [1,8,4]; 11 resize size [2]; 12 resize out [1,4,4,2]. */
    static const s_tensor_t tens[] = {
        {"input", 4, {1, 4, 4, 3}, 0, 0},  {"w16", 4, {2, 1, 1, 3}, 1, 1},
        {"w", 4, {2, 1, 1, 3}, 0, 0},      {"bias", 1, {2}, 0, 2},
        {"conv", 4, {1, 4, 4, 2}, 0, 0},   {"add", 4, {1, 4, 4, 2}, 0, 0},
        {"pool", 4, {1, 2, 2, 2}, 0, 0},   {"paddings", 2, {4, 2}, 2, 3},
        {"pad", 4, {1, 2, 2, 4}, 0, 0},    {"reshape", 3, {1, 4, 4}, 0, 0},
        {"concat", 3, {1, 8, 4}, 0, 0},    {"size", 1, {2}, 2, 4},
        {"resized", 4, {1, 4, 4, 2}, 0, 0},
    };
    static const s_op_t ops[] = {
        {0, 1, 1, {1}, {2}, 0, {0}, 0},                                   /* DEQUANTIZE */
        {1, 3, 1, {0, 2, 3}, {4}, 1, {0, 1, 1, 1, 1, 1}, 6},             /* CONV_2D */
        {2, 2, 1, {4, 4}, {5}, 11, {0}, 1},                               /* ADD */
        {3, 1, 1, {5}, {6}, 5, {0, 2, 2, 2, 2, 0}, 6},                   /* MAX_POOL_2D */
        {4, 2, 1, {6, 7}, {8}, 0, {0}, 0},                                /* PAD */
        {5, 1, 1, {8}, {9}, 0, {0}, 0},                                   /* RESHAPE */
        {6, 2, 1, {9, 9}, {10}, 10, {1, 0}, 2},                           /* CONCATENATION */
        {7, 2, 1, {5, 11}, {12}, 15, {0, 0, 0, 1}, 4},                    /* RESIZE_BILINEAR */
    };
    static const int codes[] = {6, 3, 0, 17, 34, 22, 2, 23};
    int n_ops = variant == 0 ? 2 : variant == 1 ? 5 : 8;
    int n_tens = 13;
    memset(f, 0, sizeof *f);
    size_t root = s_put32(f, 0);
    memcpy(f->b + 4, "TFL3", 4);
    f->n = 8;
    size_t mf[5];
    size_t model = s_table(f, 5, mf);
    s_patch(f, root, model);
    s_set(f, mf[0], 3);
    s_bytes(f, mf[3], "lightfarm fuzz seed", 19);
    size_t slots[16];
    s_tvec(f, mf[1], 8, slots);
    size_t cslots[8];
    memcpy(cslots, slots, sizeof cslots);
    for (int i = 0; i < 8; i++) {
        size_t cf[4];
        size_t t = s_table(f, 4, cf);
        s_patch(f, cslots[i], t);
        s_set(f, cf[0], (uint32_t)(codes[i] < 127 ? codes[i] : 127));
        s_set(f, cf[2], 1);
        s_set(f, cf[3], (uint32_t)codes[i]);
    }
    /* Buffers: 0 empty, 1 f16 weights, 2 bias, 3 paddings, 4 resize size. */
    size_t bslots[5];
    s_tvec(f, mf[4], 5, bslots);
    const uint16_t w16[6] = {0x3c00, 0xbc00, 0x3800, 0x0001, 0x7bff, 0x8000};
    const float bias[2] = {0.5f, -0.25f};
    const int32_t pads[8] = {0, 0, 0, 0, 0, 0, 1, 1};
    const int32_t size[2] = {4, 4};
    const void *bdata[5] = {NULL, w16, bias, pads, size};
    const size_t blen[5] = {0, sizeof w16, sizeof bias, sizeof pads, sizeof size};
    for (int i = 0; i < 5; i++) {
        size_t bf[1];
        size_t t = s_table(f, 1, bf);
        s_patch(f, bslots[i], t);
        if (blen[i]) s_bytes(f, bf[0], bdata[i], blen[i]);
        else s_absent(f, t, 0); /* buffer 0: the schema's empty sentinel */
    }
    size_t sgslot[1];
    s_tvec(f, mf[2], 1, sgslot);
    size_t sf[5];
    size_t sg = s_table(f, 5, sf);
    s_patch(f, sgslot[0], sg);
    s_bytes(f, sf[4], "main", 4);
    int32_t in[1] = {0}, out[1] = {ops[n_ops - 1].out[0]};
    s_ivec(f, sf[1], in, 1);
    s_ivec(f, sf[2], out, 1);
    size_t tslots[16];
    s_tvec(f, sf[0], n_tens, tslots);
    for (int i = 0; i < n_tens; i++) {
        size_t tf[4];
        size_t t = s_table(f, 4, tf);
        s_patch(f, tslots[i], t);
        s_set(f, tf[1], (uint32_t)tens[i].type);
        s_set(f, tf[2], (uint32_t)tens[i].buffer);
        s_ivec(f, tf[0], tens[i].shape, tens[i].rank);
        s_bytes(f, tf[3], tens[i].name, strlen(tens[i].name));
    }
    size_t oslots[8];
    s_tvec(f, sf[3], n_ops, oslots);
    for (int i = 0; i < n_ops; i++) {
        const s_op_t *o = &ops[i];
        size_t of[5];
        size_t t = s_table(f, 5, of);
        s_patch(f, oslots[i], t);
        s_set(f, of[0], (uint32_t)o->code_index);
        s_set(f, of[3], (uint32_t)o->opt_type);
        s_ivec(f, of[1], o->in, o->n_in);
        s_ivec(f, of[2], o->out, o->n_out);
        if (o->n_opt) {
            size_t pf[6];
            size_t pt = s_table(f, o->n_opt, pf);
            s_patch(f, of[4], pt);
            for (int k = 0; k < o->n_opt; k++) s_set(f, pf[k], (uint32_t)o->opt[k]);
        } else {
            s_absent(f, t, 4);
        }
    }
    return f->n;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    static s_buf_t f;
    for (int v = 0; v < 3; v++) {
        size_t n = s_model(&f, v);
        char path[4096];
        snprintf(path, sizeof path, "%s/graph%d.tflite", argv[1], v);
        FILE *o = fopen(path, "wb");
        if (!o || fwrite(f.b, 1, n, o) != n || fclose(o) != 0) {
            fprintf(stderr, "cannot write %s\n", path);
            return 1;
        }
    }
    return 0;
}
