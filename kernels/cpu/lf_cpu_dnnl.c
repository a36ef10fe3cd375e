/* lf_cpu_dnnl: CONV2D through oneDNN, the one module that speaks to it.
 *
 * Built only when oneDNN is found at configure time (LF_HAVE_DNNL); the
 * bench measured it somewhat faster than im2col + OpenBLAS at SD shapes (see
 * docs/PERFORMANCE.md). Weights stay in PyTorch's OIHW layout (loaded as-is)
 * and activations in NCHW. Primitives are cached per shape, and memory
 * objects are created once per primitive and pointed at the tensors on
 * each call, so a graph allocates nothing after its first run.
 *
 * Scratchpads are ours (dnnl_scratchpad_mode_user): one buffer per backend,
 * grown to the largest primitive's need. oneDNN's default "library" mode
 * keeps a thread_local, reference-counted buffer per creating thread; a
 * primitive created on a worker's engine thread and destroyed on another
 * leaked it (LeakSanitizer: ~885 KB at every worker exit). */
#include <oneapi/dnnl/dnnl.h>
#include <stdlib.h>
#include <string.h>

#include "lf_cpu_impl.h"
#include "lf_error.h"

#define LF__DNNL_CACHE 64

typedef struct {
    int64_t key[10];
    dnnl_primitive_t prim;
    dnnl_memory_t src, wei, bias, dst, scratch;
} s_entry_t;

struct lf__cpu_dnnl {
    dnnl_engine_t engine;
    dnnl_stream_t stream;
    s_entry_t cache[LF__DNNL_CACHE];
    int n, next_evict;
    void *scratch; /* owned; shared by every primitive (one stream, one call at a time) */
    size_t scratch_size;
};

lf__cpu_dnnl_t *lf__cpu_dnnl_new(void) {
    lf__cpu_dnnl_t *d = calloc(1, sizeof *d);
    if (!d) return NULL;
    if (dnnl_engine_create(&d->engine, dnnl_cpu, 0) != dnnl_success) {
        free(d);
        return NULL;
    }
    if (dnnl_stream_create(&d->stream, d->engine, dnnl_stream_default_flags) != dnnl_success) {
        dnnl_engine_destroy(d->engine);
        free(d);
        return NULL;
    }
    return d;
}

static void s_entry_free(s_entry_t *e) {
    if (e->prim) dnnl_primitive_destroy(e->prim);
    if (e->src) dnnl_memory_destroy(e->src);
    if (e->wei) dnnl_memory_destroy(e->wei);
    if (e->bias) dnnl_memory_destroy(e->bias);
    if (e->dst) dnnl_memory_destroy(e->dst);
    if (e->scratch) dnnl_memory_destroy(e->scratch);
    memset(e, 0, sizeof *e);
}

void lf__cpu_dnnl_destroy(lf__cpu_dnnl_t **d_p) {
    if (!d_p || !*d_p) return;
    lf__cpu_dnnl_t *d = *d_p;
    for (int i = 0; i < d->n; i++) s_entry_free(&d->cache[i]);
    dnnl_stream_destroy(d->stream);
    dnnl_engine_destroy(d->engine);
    free(d->scratch);
    free(d);
    *d_p = NULL;
}

bool lf__cpu_dnnl_supports(const lf_node_t *n) {
    const lf_tensor_t *x = n->src[0], *w = n->src[1], *b = n->src[2];
    return x->type == LF_TYPE_F32 && w->type == LF_TYPE_F32 && lf_tensor_is_contiguous(x) &&
           lf_tensor_is_contiguous(w) && lf_tensor_is_contiguous(n->dst) &&
           (!b || (b->type == LF_TYPE_F32 && lf_tensor_is_contiguous(b)));
}

static int s_create(lf__cpu_dnnl_t *d, const lf_node_t *n, s_entry_t *e) {
    const lf_tensor_t *x = n->src[0], *w = n->src[1], *b = n->src[2], *y = n->dst;
    dnnl_memory_desc_t src_md, w_md, b_md, dst_md;
    dnnl_dims_t sd = {x->ne[3], x->ne[2], x->ne[1], x->ne[0]};
    dnnl_dims_t wd = {w->ne[3], w->ne[2], w->ne[1], w->ne[0]};
    dnnl_dims_t bd = {w->ne[3]};
    dnnl_dims_t dd = {y->ne[3], y->ne[2], y->ne[1], y->ne[0]};
    dnnl_dims_t strides = {n->p.conv2d.stride, n->p.conv2d.stride};
    dnnl_dims_t pad = {n->p.conv2d.pad, n->p.conv2d.pad};
    /* Right padding so that the output size matches floor division. */
    dnnl_dims_t padr = {(y->ne[1] - 1) * n->p.conv2d.stride + w->ne[1] - x->ne[1] - n->p.conv2d.pad,
                        (y->ne[0] - 1) * n->p.conv2d.stride + w->ne[0] - x->ne[0] - n->p.conv2d.pad};
    if (dnnl_memory_desc_init_by_tag(&src_md, 4, sd, dnnl_f32, dnnl_nchw) ||
        dnnl_memory_desc_init_by_tag(&w_md, 4, wd, dnnl_f32, dnnl_oihw) ||
        dnnl_memory_desc_init_by_tag(&b_md, 1, bd, dnnl_f32, dnnl_x) ||
        dnnl_memory_desc_init_by_tag(&dst_md, 4, dd, dnnl_f32, dnnl_nchw))
        return LF_EINTERNAL;
    dnnl_convolution_desc_t cd;
    if (dnnl_convolution_forward_desc_init(&cd, dnnl_forward_inference, dnnl_convolution_direct, &src_md, &w_md,
                                           b ? &b_md : NULL, &dst_md, strides, pad, padr))
        return LF_EUNSUPPORTED;
    dnnl_primitive_attr_t attr;
    if (dnnl_primitive_attr_create(&attr)) return LF_ENOMEM;
    if (dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user)) {
        dnnl_primitive_attr_destroy(attr);
        return LF_EINTERNAL;
    }
    dnnl_primitive_desc_t pd;
    dnnl_status_t st = dnnl_primitive_desc_create(&pd, &cd, attr, d->engine, NULL);
    dnnl_primitive_attr_destroy(attr);
    if (st) return LF_EUNSUPPORTED;
    const dnnl_memory_desc_t *scr_md = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    const size_t scr_size = scr_md ? dnnl_memory_desc_get_size(scr_md) : 0;
    if (scr_size && dnnl_memory_create(&e->scratch, scr_md, d->engine, DNNL_MEMORY_NONE)) {
        dnnl_primitive_desc_destroy(pd);
        return LF_ENOMEM;
    }
    st = dnnl_primitive_create(&e->prim, pd);
    dnnl_primitive_desc_destroy(pd);
    if (st) {
        s_entry_free(e);
        return LF_ENOMEM;
    }
    if (scr_size > d->scratch_size) {
        /* 64-byte aligned, as oneDNN's own scratchpads are. */
        void *p = NULL;
        if (posix_memalign(&p, 64, scr_size)) {
            s_entry_free(e);
            return LF_ENOMEM;
        }
        free(d->scratch);
        d->scratch = p;
        d->scratch_size = scr_size;
    }
    if (dnnl_memory_create(&e->src, &src_md, d->engine, DNNL_MEMORY_NONE) ||
        dnnl_memory_create(&e->wei, &w_md, d->engine, DNNL_MEMORY_NONE) ||
        (b && dnnl_memory_create(&e->bias, &b_md, d->engine, DNNL_MEMORY_NONE)) ||
        dnnl_memory_create(&e->dst, &dst_md, d->engine, DNNL_MEMORY_NONE)) {
        s_entry_free(e);
        return LF_ENOMEM;
    }
    return 0;
}

int lf__cpu_dnnl_conv(lf__cpu_dnnl_t *d, const lf_node_t *n) {
    const lf_tensor_t *x = n->src[0], *w = n->src[1], *b = n->src[2];
    int64_t key[10] = {x->ne[0], x->ne[1], x->ne[2], x->ne[3], w->ne[0], w->ne[1], w->ne[3],
                       n->p.conv2d.stride, n->p.conv2d.pad, b != NULL};
    s_entry_t *e = NULL;
    for (int i = 0; i < d->n && !e; i++)
        if (!memcmp(d->cache[i].key, key, sizeof key)) e = &d->cache[i];
    if (!e) {
        if (d->n < LF__DNNL_CACHE) e = &d->cache[d->n++];
        else {
            e = &d->cache[d->next_evict];
            d->next_evict = (d->next_evict + 1) % LF__DNNL_CACHE;
            s_entry_free(e);
        }
        int rc = s_create(d, n, e);
        if (rc) {
            memset(e, 0, sizeof *e); /* slot stays, empty key never matches a shape */
            return rc;
        }
        memcpy(e->key, key, sizeof key);
    }
    dnnl_memory_set_data_handle(e->src, x->data);
    dnnl_memory_set_data_handle(e->wei, w->data);
    if (b) dnnl_memory_set_data_handle(e->bias, b->data);
    dnnl_memory_set_data_handle(e->dst, n->dst->data);
    dnnl_exec_arg_t args[5] = {{DNNL_ARG_SRC, e->src}, {DNNL_ARG_WEIGHTS, e->wei}, {DNNL_ARG_DST, e->dst}};
    int nargs = 3;
    if (b) args[nargs++] = (dnnl_exec_arg_t){DNNL_ARG_BIAS, e->bias};
    if (e->scratch) {
        dnnl_memory_set_data_handle(e->scratch, d->scratch);
        args[nargs++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, e->scratch};
    }
    if (dnnl_primitive_execute(e->prim, d->stream, nargs, args) || dnnl_stream_wait(d->stream))
        return LF_EINTERNAL;
    return 0;
}
