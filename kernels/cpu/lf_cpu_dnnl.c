/* lf_cpu_dnnl: CONV2D and MATMUL through oneDNN, the one module that speaks
 * to it.
 *
 * Built only when oneDNN is found at configure time (LF_HAVE_DNNL); the
 * bench measured it somewhat faster than im2col + OpenBLAS at SD shapes (see
 * docs/PERFORMANCE.md). Weights stay in PyTorch's OIHW / [out, in] layout
 * (loaded as-is) and activations in NCHW / row-major. Each call computes in
 * f32 or bf16 (bf16 sources and weights, f32 accumulation, f32 result): the
 * caller hands the operands already in the compute type (lf_cpu_gemm.c
 * converts). Primitives are cached per shape and compute type, and memory
 * objects are created once per primitive and pointed at the tensors on
 * each call, so a graph allocates nothing after its first run.
 *
 * Scratchpads are ours (dnnl_scratchpad_mode_user): one buffer per backend,
 * grown to the largest primitive's need. oneDNN's default "library" mode
 * keeps a thread_local, reference-counted buffer per creating thread; a
 * primitive created on a worker's engine thread and destroyed on another
 * leaked it (LeakSanitizer: ~885 KB at every worker exit).
 *
 * Pre-packed weights: a weight mapped from its file (lf_pool_tensor_mapped,
 * buffer LF_BUFFER_WEIGHTS_MAPPED) is converted to the compute type and
 * reordered into the layout the primitive wants (blocked convolution
 * weights, the matmul's packed B) once, at its first use, and that copy is
 * used from then on; the file's pages under it are handed back to the
 * kernel (MADV_PAGEOUT: clean file pages go, pages a LoRA merge made
 * private stay), so the packed copy replaces the file copy in RSS rather
 * than adding to it. f32 products of f16 (or bf16) weights keep an f32
 * copy too, twice the stored bytes: in a file those are page cache each
 * layer gives back after it ran (lf__cpu_dnnl_release_pages), and in memory
 * they take the room the engine's budget already gives the copies (the
 * weights twice; lf_engine.c picks memory only then). Widening once instead
 * of per call, and then f32 convolutions under 64x64 pixels running blocked
 * on the packed weight (s_blocked32), took the f32 UNet step's 3x3
 * convolutions ~20 % faster (docs/PERFORMANCE.md, session 11). They are
 * capped at LF_CPU_PACK_F32 MiB in all (default a quarter of the machine's
 * memory; 0: none, f32 of f16 converted per call as before).
 * Copies are dropped when the weight's bytes change or
 * go (lf__cpu_dnnl_forget, from lf_backend_forget). Where they are kept
 * (anonymous memory, a file whose pages each layer gives back, or nowhere)
 * is the backend's pack setting (lf_backend_set_pack, lf_cpu_packstore.c);
 * LF_CPU_PREPACK=0 makes a new backend's default off instead of memory.
 *
 * f32 3x3 convolutions with large outputs (the VAE decoder, the UNet's
 * 64x64 and 32x32 levels) run as oneDNN's Winograd in row strips, their weights
 * transformed at each call: lf_cpu_wino.c (LF_CPU_CONV_ALGO). What the two
 * files share is in lf_cpu_dnnl_impl.h. */
#include <dlfcn.h>
#include <sys/mman.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lf_cpu_dnnl_impl.h"
#include "lf_error.h"
#include "lf_profile.h"

/* A convolution in oneDNN's blocked layouts: src, weights and dst are
 * reordered between ours (NCHW, OIHW) and the primitive's own (channels
 * last, NHWC `acdb`, for brgconv; nChw16c for the older jit kernels;
 * blocked weights such as AcdB64a2b) around each run, into the backend's
 * shared buffers. */
enum { S_SRC = LF__DNNL_SRC, S_WEI = LF__DNNL_WEI, S_DST = LF__DNNL_DST };

/* Which convolutions take the blocked layouts (LF_CPU_CONV=nchw: none,
 * =blocked: all). By default the bf16 ones whose output has at least 32x32
 * pixels, and the smaller bf16 ones whose weight is pre-packed (no weight
 * reorder per call): brgconv ran the UNet's 16x16 and 8x8 3x3 convolutions
 * in 0.72-0.76 of the plain layout's CPU time once its weights are packed
 * (bench_unet --precision bf16 --profile, session 10), and bench_kernels
 * measured it 1.2-1.4x oneDNN's im2col + GEMM at 64x64 and 32x32. In f32
 * (and for a small weight reordered per call, which costs as much as the
 * product at 8x8) it was no faster. LF_CPU_CONV=bf16big: the previous
 * default (blocked from 32x32 only), for comparisons. */
enum { S_BLOCKED_NONE, S_BLOCKED_BF16, S_BLOCKED_ALL, S_BLOCKED_BF16_PACKED };

/* The activation layout of a blocked convolution (LF_CPU_CONV_ACT): the one
 * oneDNN picks ("any", the default: NHWC for brgconv), or nChw16c where both
 * channel counts are multiples of 16 (=16c, for comparisons). nChw16c's
 * reorders are cheaper (64x64 320: 2.0 + 0.9 ms against NHWC's 3.4 + 2.4)
 * but its kernel (jit_bf16) was level with brgconv at 64x64 and 1.03-1.43x
 * its time at 32x32, 16x16 and 8x8; the bf16 step at 2 threads took 1.05x
 * as long (docs/PERFORMANCE.md, session 13). */
enum { S_ACT_ANY, S_ACT_16C };

/* This file's short names for the shared entry and post-op types. */
typedef lf__cpu_dnnl_entry_t s_entry_t;
typedef lf__cpu_dnnl_post_t s_post_t;

/* One pre-packed weight. */
typedef struct lf__cpu_dnnl_packed {
    const void *src; /* the weight's bytes as the model holds them (the key) */
    size_t src_bytes;
    lf_type_t ct;
    dnnl_memory_desc_t md; /* layout of data */
    void *data;            /* owned (d->store) */
    size_t bytes;
    int64_t off;  /* in d->store's file; -1: anonymous */
    bool widened; /* larger than the stored weight (f32 of f16): counts in d->widened */
} s_packed_t;


static void s_unmap(lf__cpu_dnnl_t *d, const s_packed_t *k) {
    d->packed_bytes -= k->bytes;
    if (k->widened) d->widened -= k->bytes;
    lf__cpu_pack_free(&d->store, k->data, k->bytes, k->off);
}

lf__cpu_dnnl_t *lf__cpu_dnnl_new(int n_threads) {
    lf__cpu_dnnl_t *d = calloc(1, sizeof *d);
    if (!d) return NULL;
    d->n_threads = n_threads;
    const char *conv = getenv("LF_CPU_CONV");
    d->blocked = !conv                      ? S_BLOCKED_BF16_PACKED
                 : !strcmp(conv, "nchw")     ? S_BLOCKED_NONE
                 : !strcmp(conv, "blocked")  ? S_BLOCKED_ALL
                 : !strcmp(conv, "bf16big")  ? S_BLOCKED_BF16
                                             : S_BLOCKED_BF16_PACKED;
    const char *act = getenv("LF_CPU_CONV_ACT");
    d->act = act && !strcmp(act, "16c") ? S_ACT_16C : S_ACT_ANY;
    lf__cpu_wino_init(d);
    const char *pp = getenv("LF_CPU_PREPACK");
    lf__cpu_pack_init(&d->store, !pp || strcmp(pp, "0") != 0 ? LF_PACK_MEMORY : LF_PACK_OFF);
    /* f32 copies are twice the f16 weights: past the cap (SDXL's UNet alone
     * would be 10 GB) the page cache holding a file's copies would be
     * evicted and read back from the disk at every step, twice the bytes
     * of the f16 file itself, so the rest convert per call. */
    const char *wd = getenv("LF_CPU_PACK_F32");
    const long pages = sysconf(_SC_PHYS_PAGES), pg = sysconf(_SC_PAGESIZE);
    d->widen_cap = wd && *wd ? (size_t)strtoull(wd, NULL, 10) << 20
                   : pages > 0 && pg > 0 ? (size_t)pages * (size_t)pg / 4
                                         : (size_t)4 << 30;
    d->omp_set_num_threads = (void (*)(int))dlsym(RTLD_DEFAULT, "omp_set_num_threads");
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

void lf__cpu_dnnl_entry_free(s_entry_t *e) {
    lf__cpu_wino_free(&e->wino);
    if (e->prim) dnnl_primitive_destroy(e->prim);
    if (e->src) dnnl_memory_destroy(e->src);
    if (e->wei) dnnl_memory_destroy(e->wei);
    if (e->bias) dnnl_memory_destroy(e->bias);
    if (e->dst) dnnl_memory_destroy(e->dst);
    if (e->res) dnnl_memory_destroy(e->res);
    if (e->scratch) dnnl_memory_destroy(e->scratch);
    for (int i = 0; i < 3; i++) {
        if (e->reorder[i]) dnnl_primitive_destroy(e->reorder[i]);
        if (e->user[i]) dnnl_memory_destroy(e->user[i]);
    }
    memset(e, 0, sizeof *e);
}

void lf__cpu_dnnl_destroy(lf__cpu_dnnl_t **d_p) {
    if (!d_p || !*d_p) return;
    lf__cpu_dnnl_t *d = *d_p;
    for (int i = 0; i < d->n; i++) lf__cpu_dnnl_entry_free(&d->cache[i]);
    dnnl_stream_destroy(d->stream);
    dnnl_engine_destroy(d->engine);
    free(d->scratch);
    for (int i = 0; i < 3; i++) free(d->blk[i]);
    for (int i = 0; i < d->n_packed; i++) s_unmap(d, &d->packed[i]);
    lf__cpu_pack_close(&d->store);
    free(d->packed);
    free(d);
    *d_p = NULL;
}

bool lf__cpu_dnnl_supports(const lf_node_t *n) {
    const lf_tensor_t *x = n->src[0], *w = n->src[1], *b = n->src[2];
    return (x->type == LF_TYPE_F32 || x->type == LF_TYPE_BF16) && lf_tensor_is_contiguous(x) && lf_tensor_is_contiguous(w) &&
           lf_tensor_is_contiguous(n->dst) &&
           (!b || (b->type == LF_TYPE_F32 && lf_tensor_is_contiguous(b)));
}

void lf__cpu_dnnl_set_profile(lf__cpu_dnnl_t *d, struct lf_profile *prof) {
    d->prof = prof;
}

double lf__cpu_dnnl_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void lf__cpu_dnnl_part(lf__cpu_dnnl_t *d, const char *part, double *t) {
    if (!d->prof) return;
    const double now = lf__cpu_dnnl_now();
    lf_profile_add_part(d->prof, part, now - *t);
    *t = now;
}

static dnnl_data_type_t s_dt(lf_type_t t) {
    return t == LF_TYPE_BF16 ? dnnl_bf16 : dnnl_f32;
}

/* *buf grown to at least size bytes, 64-byte aligned (as oneDNN's own
 * buffers are); contents not kept. */
int lf__cpu_dnnl_grow(void **buf, size_t *cap, size_t size) {
    if (size <= *cap) return 0;
    void *p = NULL;
    if (posix_memalign(&p, 64, size)) return LF_ENOMEM;
    free(*buf);
    *buf = p;
    *cap = size;
    return 0;
}

/* Whether an f32 copy of a narrower weight t (f16, bf16: twice its bytes)
 * may be kept: it has one, or one fits under d->widen_cap (the padding of a
 * blocked layout aside). */
static bool s_widen(const lf__cpu_dnnl_t *d, const lf_tensor_t *t, lf_type_t ct) {
    if (ct != LF_TYPE_F32 || lf_type_size(t->type) != 2) return false;
    if (d->widened + 2 * lf_tensor_nbytes(t) <= d->widen_cap) return true;
    for (int i = 0; i < d->n_packed; i++)
        if (d->packed[i].src == t->data && d->packed[i].ct == ct) return true;
    return false;
}

/* Whether w may be pre-packed in compute type ct: mapped from its file (so
 * its pages can be handed back) and no larger in ct than as stored, or an
 * f32 copy of a 16-bit weight (s_widen). */
static bool s_packable(const lf__cpu_dnnl_t *d, const lf__cpu_wsrc_t *w, lf_type_t ct) {
    const lf_tensor_t *t = w ? w->t : NULL;
    return d->store.mode != LF_PACK_OFF && t && t->buffer && t->buffer->usage == LF_BUFFER_WEIGHTS_MAPPED &&
           lf_tensor_is_contiguous(t) && !lf_type_is_quant(t->type) &&
           (lf_type_size(ct) <= lf_type_size(t->type) || s_widen(d, t, ct));
}

void lf__cpu_dnnl_forget(lf__cpu_dnnl_t *d, const void *p, size_t n) {
    const uintptr_t a = (uintptr_t)p, b = a + n;
    for (int i = 0; d && i < d->n_packed;) {
        const s_packed_t *k = &d->packed[i];
        if (!p || ((uintptr_t)k->src < b && a < (uintptr_t)k->src + k->src_bytes)) {
            s_unmap(d, k);
            d->packed[i] = d->packed[--d->n_packed];
        } else {
            i++;
        }
    }
}

void lf__cpu_dnnl_release(lf__cpu_dnnl_t *d, const lf_tensor_t *w, lf_type_t ct) {
    if (!d || !d->n_packed || !w->buffer || w->buffer->usage != LF_BUFFER_WEIGHTS_MAPPED) return;
    for (int i = 0; i < d->n_packed;) {
        const s_packed_t *k = &d->packed[i];
        if (k->src == w->data && k->ct != ct) {
            s_unmap(d, k);
            d->packed[i] = d->packed[--d->n_packed];
        } else {
            i++;
        }
    }
}

size_t lf__cpu_dnnl_packed_bytes(const lf__cpu_dnnl_t *d, int *count) {
    if (count) *count = d ? d->n_packed : 0;
    return d ? d->packed_bytes : 0;
}

lf_pack_t lf__cpu_dnnl_set_pack(lf__cpu_dnnl_t *d, lf_pack_t mode, const char *dir) {
    lf__cpu_dnnl_forget(d, NULL, 0);
    return lf__cpu_pack_set(&d->store, mode, dir);
}

lf_pack_t lf__cpu_dnnl_pack(const lf__cpu_dnnl_t *d) {
    return d->store.mode;
}

size_t lf__cpu_dnnl_release_pages(lf__cpu_dnnl_t *d, const void *p, size_t n, bool switched_out) {
    if (!d || !d->n_packed) return 0;
    if (switched_out && d->store.mode == LF_PACK_MEMORY) {
        lf__cpu_dnnl_forget(d, p, n);
        return 0;
    }
    const uintptr_t a = (uintptr_t)p, b = a + n;
    size_t dropped = 0;
    for (int i = 0; i < d->n_packed; i++) {
        const s_packed_t *k = &d->packed[i];
        if ((uintptr_t)k->src < b && a < (uintptr_t)k->src + k->src_bytes)
            dropped += lf__cpu_pack_drop(&d->store, k->data, k->bytes, k->off);
    }
    return dropped;
}

/* One reorder from plain (at from) to its (at to), run now. */
static int s_reorder_once(lf__cpu_dnnl_t *d, const dnnl_memory_desc_t *plain, const void *from,
                          const dnnl_memory_desc_t *its, void *to) {
    dnnl_primitive_attr_t attr;
    if (dnnl_primitive_attr_create(&attr)) return LF_ENOMEM;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_t r = NULL;
    dnnl_memory_t mf = NULL, mt = NULL;
    dnnl_status_t st = dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
    if (!st) st = dnnl_reorder_primitive_desc_create(&pd, plain, d->engine, its, d->engine, attr);
    dnnl_primitive_attr_destroy(attr);
    if (st) return LF_EUNSUPPORTED;
    const dnnl_memory_desc_t *scr = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    if (scr && dnnl_memory_desc_get_size(scr)) st = dnnl_unimplemented;
    if (!st) st = dnnl_primitive_create(&r, pd);
    dnnl_primitive_desc_destroy(pd);
    if (!st) st = dnnl_memory_create(&mf, plain, d->engine, (void *)from);
    if (!st) st = dnnl_memory_create(&mt, its, d->engine, to);
    if (!st) {
        if (d->omp_set_num_threads) d->omp_set_num_threads(d->n_threads);
        dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, mf}, {DNNL_ARG_TO, mt}};
        st = dnnl_primitive_execute(r, d->stream, 2, args);
        if (!st) st = dnnl_stream_wait(d->stream);
    }
    if (mf) dnnl_memory_destroy(mf);
    if (mt) dnnl_memory_destroy(mt);
    if (r) dnnl_primitive_destroy(r);
    return st ? LF_EINTERNAL : 0;
}

/* w in compute type ct and layout its (the primitive's; plain: ours), from
 * the pre-packed copies, made now (from w->make's plain copy) on the first
 * call; NULL when it is not kept (not packable, no gain, out of memory):
 * the caller converts and reorders per call. */
static const void *s_packed(lf__cpu_dnnl_t *d, const lf__cpu_wsrc_t *w, lf_type_t ct,
                            const dnnl_memory_desc_t *its, const dnnl_memory_desc_t *plain) {
    if (!s_packable(d, w, ct)) return NULL;
    const lf_tensor_t *t = w->t;
    for (int i = 0; i < d->n_packed; i++) {
        s_packed_t *k = &d->packed[i];
        if (k->src != t->data || k->ct != ct) continue;
        if (dnnl_memory_desc_equal(&k->md, its)) return k->data;
        lf__cpu_dnnl_forget(d, k->src, k->src_bytes); /* another primitive's layout: packed again */
        break;
    }
    const size_t src_bytes = lf_tensor_nbytes(t), bytes = dnnl_memory_desc_get_size(its);
    const bool same = dnnl_memory_desc_equal(its, plain);
    /* A layout larger than the weight in ct (padded), or the weight itself. */
    const size_t ct_bytes = (size_t)lf_tensor_nelements(t) * lf_type_size(ct);
    if (bytes > (ct_bytes > src_bytes ? ct_bytes : src_bytes) || (same && t->type == ct)) return NULL;
    if (d->n_packed == d->cap_packed) {
        int cap = d->cap_packed ? d->cap_packed * 2 : 256;
        s_packed_t *np = realloc(d->packed, (size_t)cap * sizeof *np);
        if (!np) return NULL;
        d->packed = np, d->cap_packed = cap;
    }
    const void *from = w->make(w->arg);
    int64_t off = -1;
    void *buf = from ? lf__cpu_pack_alloc(&d->store, bytes, &off) : NULL;
    if (!buf) return NULL;
    s_packed_t k = {.src = t->data, .src_bytes = src_bytes, .ct = ct, .md = *its, .data = buf, .bytes = bytes,
                    .off = off, .widened = bytes > src_bytes};
    d->packed_bytes += bytes;
    if (k.widened) d->widened += bytes;
    if (same) memcpy(buf, from, bytes);
    else if (s_reorder_once(d, plain, from, its, buf)) {
        s_unmap(d, &k);
        return NULL;
    }
    d->packed[d->n_packed++] = k;
    /* The file's pages under the weight: whole pages only (a neighbour's
     * bytes may share the edges). */
    const uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE);
    const uintptr_t a = ((uintptr_t)t->data + pg - 1) & ~(pg - 1),
                    b = ((uintptr_t)t->data + src_bytes) & ~(pg - 1);
    if (pg && b > a) (void)madvise((void *)a, b - a, MADV_PAGEOUT);
    return buf;
}

const void *lf__cpu_dnnl_plain(lf__cpu_dnnl_t *d, const lf__cpu_wsrc_t *w, lf_type_t ct) {
    const lf_tensor_t *t = w->t;
    dnnl_memory_desc_t md;
    dnnl_dims_t dims = {lf_tensor_nelements(t)};
    const void *p = NULL;
    if (!dnnl_memory_desc_init_by_tag(&md, 1, dims, s_dt(ct), dnnl_x)) p = s_packed(d, w, ct, &md, &md);
    return p ? p : w->make(w->arg);
}

/* The primitive descriptor made with our scratchpad mode, then the entry's
 * primitive and scratchpad memory; takes pd. */
int lf__cpu_dnnl_finish(lf__cpu_dnnl_t *d, dnnl_primitive_desc_t pd, s_entry_t *e) {
    const dnnl_memory_desc_t *scr_md = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    const size_t scr_size = scr_md ? dnnl_memory_desc_get_size(scr_md) : 0;
    if (scr_size && dnnl_memory_create(&e->scratch, scr_md, d->engine, DNNL_MEMORY_NONE)) {
        dnnl_primitive_desc_destroy(pd);
        return LF_ENOMEM;
    }
    dnnl_status_t st = dnnl_primitive_create(&e->prim, pd);
    dnnl_primitive_desc_destroy(pd);
    if (st) return LF_ENOMEM;
    return lf__cpu_dnnl_grow(&d->scratch, &d->scratch_size, scr_size);
}

/* post: the primitive's post-ops (NULL: none). */
int lf__cpu_dnnl_pd(lf__cpu_dnnl_t *d, const void *op_desc, const s_post_t *post, dnnl_primitive_desc_t *pd) {
    dnnl_primitive_attr_t attr;
    if (dnnl_primitive_attr_create(&attr)) return LF_ENOMEM;
    dnnl_post_ops_t po = NULL;
    dnnl_status_t pst = dnnl_success;
    if (post && (post->bias1 || post->silu || post->res)) {
        pst = dnnl_post_ops_create(&po);
        if (!pst && post->bias1) pst = dnnl_post_ops_append_binary(po, dnnl_binary_add, post->bias1);
        if (!pst && post->silu) pst = dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_swish, 1.0f, 0.0f);
        if (!pst && post->res) pst = dnnl_post_ops_append_binary(po, dnnl_binary_add, post->res);
        if (!pst) pst = dnnl_primitive_attr_set_post_ops(attr, po);
        if (po) dnnl_post_ops_destroy(po);
    }
    if (pst || dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user)) {
        dnnl_primitive_attr_destroy(attr);
        return LF_EINTERNAL;
    }
    dnnl_status_t st = dnnl_primitive_desc_create(pd, op_desc, attr, d->engine, NULL);
    dnnl_primitive_attr_destroy(attr);
    if (st) return LF_EUNSUPPORTED;
    /* oneDNN's reference kernels ("ref:any": plain loops, e.g. a matmul with a
     * per-row bias) are many times slower than OpenBLAS: refused, so the caller
     * takes its BLAS / im2col path. */
    const char *impl = NULL;
    if (dnnl_primitive_desc_query(*pd, dnnl_query_impl_info_str, 0, &impl) || !impl || !strncmp(impl, "ref", 3)) {
        dnnl_primitive_desc_destroy(*pd);
        *pd = NULL;
        return LF_EUNSUPPORTED;
    }
    return 0;
}

/* post: the post-ops the primitive was made with (its residual's memory). */
int lf__cpu_dnnl_memories(lf__cpu_dnnl_t *d, s_entry_t *e, const dnnl_memory_desc_t *src_md,
                      const dnnl_memory_desc_t *w_md, const dnnl_memory_desc_t *b_md,
                      const dnnl_memory_desc_t *dst_md, const s_post_t *post) {
    if (dnnl_memory_create(&e->src, src_md, d->engine, DNNL_MEMORY_NONE) ||
        dnnl_memory_create(&e->wei, w_md, d->engine, DNNL_MEMORY_NONE) ||
        (b_md && dnnl_memory_create(&e->bias, b_md, d->engine, DNNL_MEMORY_NONE)) ||
        dnnl_memory_create(&e->dst, dst_md, d->engine, DNNL_MEMORY_NONE) ||
        (post && post->res && dnnl_memory_create(&e->res, post->res, d->engine, DNNL_MEMORY_NONE)))
        return LF_ENOMEM;
    e->post = post && (post->silu || post->res);
    e->res_idx = post ? (post->bias1 != NULL) + post->silu : 0;
    return 0;
}

/* packed: the weight is pre-packed, so no per-call weight reorder counts
 * against the blocked layout at small sizes (the default blocks those too;
 * LF_CPU_CONV=bf16big does not: docs/PERFORMANCE.md, session 10). */
static bool s_blocked(const lf__cpu_dnnl_t *d, lf_type_t ct, const lf_node_t *n, bool packed) {
    const bool big = n->dst->ne[0] * n->dst->ne[1] >= 32 * 32;
    return d->blocked == S_BLOCKED_ALL ||
           (d->blocked == S_BLOCKED_BF16 && ct == LF_TYPE_BF16 && big) ||
           (d->blocked == S_BLOCKED_BF16_PACKED && ct == LF_TYPE_BF16 && (big || packed));
}

/* Whether an f32 convolution runs blocked: with the default setting, when
 * its weight is pre-packed (widened from f16 once, in the primitive's
 * layout) and its output is under 64x64 pixels. brgconv then ran the UNet's
 * 32x32, 16x16 and 8x8 3x3 convolutions at 104-113 GFLOP/s, 0.72-0.95 of
 * the plain layout's time with its weight packed too (bench_unet --precision
 * f32 --profile, session 11); at 64x64 the two were level (the 320-output
 * ones with a residual slower blocked), and with the weight reordered per
 * call blocked was no faster anywhere (session 10). */
static bool s_blocked32(const lf__cpu_dnnl_t *d, lf_type_t ct, const lf_node_t *n, bool packed) {
    return d->blocked == S_BLOCKED_BF16_PACKED && ct == LF_TYPE_F32 && packed &&
           n->dst->ne[0] * n->dst->ne[1] < 64 * 64 && n->src[0]->ne[2] >= 16 && n->dst->ne[2] >= 16;
}

/* The reorder between user (our layout) and its (the primitive's) of one
 * operand, into e->reorder[i] / e->user[i], and the shared buffer i grown to
 * the blocked size; nothing when the layouts are the same. */
static int s_reorder_make(lf__cpu_dnnl_t *d, s_entry_t *e, int i, const dnnl_memory_desc_t *user,
                          const dnnl_memory_desc_t *its) {
    if (dnnl_memory_desc_equal(user, its)) return 0;
    dnnl_primitive_attr_t attr;
    if (dnnl_primitive_attr_create(&attr)) return LF_ENOMEM;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_status_t st = dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
    if (!st)
        st = i == S_DST ? dnnl_reorder_primitive_desc_create(&pd, its, d->engine, user, d->engine, attr)
                        : dnnl_reorder_primitive_desc_create(&pd, user, d->engine, its, d->engine, attr);
    dnnl_primitive_attr_destroy(attr);
    if (st) return LF_EUNSUPPORTED;
    const dnnl_memory_desc_t *scr = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    if (scr && dnnl_memory_desc_get_size(scr)) st = dnnl_unimplemented; /* not one we can feed */
    if (!st) st = dnnl_primitive_create(&e->reorder[i], pd);
    dnnl_primitive_desc_destroy(pd);
    if (st) return LF_EUNSUPPORTED;
    if (dnnl_memory_create(&e->user[i], user, d->engine, DNNL_MEMORY_NONE)) return LF_ENOMEM;
    return lf__cpu_dnnl_grow(&d->blk[i], &d->blk_size[i], dnnl_memory_desc_get_size(its));
}

/* Whether a blocked convolution from src_md to dst_md (ours, NCHW) takes
 * nChw16c for its source and result (LF_CPU_CONV_ACT=16c). */
static bool s_act16(const lf__cpu_dnnl_t *d, const dnnl_memory_desc_t *src_md, const dnnl_memory_desc_t *dst_md) {
    return d->act == S_ACT_16C && src_md->dims[1] % 16 == 0 && dst_md->dims[1] % 16 == 0;
}

/* cd with the layouts left to oneDNN ("any"), or with nChw16c activations
 * where try16 and s_act16 (then "any" again where oneDNN has no fast kernel
 * for them): its fast direct kernels want blocked channels; on plain NCHW it
 * takes its im2col + GEMM path. 0, or an error after which the caller makes
 * the plain-layout primitive. */
static int s_create_blocked(lf__cpu_dnnl_t *d, const dnnl_convolution_desc_t *plain, const dnnl_memory_desc_t *src_md,
                            const dnnl_memory_desc_t *w_md, const dnnl_memory_desc_t *b_md,
                            const dnnl_memory_desc_t *dst_md, const s_post_t *post, s_entry_t *e, bool try16) {
    dnnl_memory_desc_t any[3];
    const dnnl_memory_desc_t *user[3] = {src_md, w_md, dst_md};
    const bool c16 = try16 && s_act16(d, src_md, dst_md);
    for (int i = 0; i < 3; i++)
        if (dnnl_memory_desc_init_by_tag(&any[i], user[i]->ndims, user[i]->dims, user[i]->data_type,
                                         c16 && i != S_WEI ? dnnl_nChw16c : dnnl_format_tag_any))
            return LF_EINTERNAL;
    dnnl_convolution_desc_t cd;
    if (dnnl_convolution_forward_desc_init(&cd, dnnl_forward_inference, dnnl_convolution_direct, &any[S_SRC],
                                           &any[S_WEI], b_md, &any[S_DST], plain->strides, plain->padding[0],
                                           plain->padding[1]))
        return LF_EUNSUPPORTED;
    dnnl_primitive_desc_t pd;
    int rc = lf__cpu_dnnl_pd(d, &cd, post, &pd);
    if (rc && c16) return s_create_blocked(d, plain, src_md, w_md, b_md, dst_md, post, e, false);
    if (rc) return rc;
    const char *impl = NULL;
    if (dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) || !impl || strstr(impl, "gemm")) {
        dnnl_primitive_desc_destroy(pd); /* no better than the plain layout's */
        return c16 ? s_create_blocked(d, plain, src_md, w_md, b_md, dst_md, post, e, false) : LF_EUNSUPPORTED;
    }
    dnnl_memory_desc_t its[3] = {*dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0),
                                 *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0),
                                 *dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0)};
    rc = lf__cpu_dnnl_finish(d, pd, e);
    e->wmd = its[S_WEI], e->wplain = *w_md;
    for (int i = 0; i < 3 && !rc; i++) rc = s_reorder_make(d, e, i, user[i], &its[i]);
    if (!rc) rc = lf__cpu_dnnl_memories(d, e, &its[S_SRC], &its[S_WEI], b_md, &its[S_DST], post);
    if (rc) lf__cpu_dnnl_entry_free(e);
    return rc;
}

/* post: 0 none, else S_POST_* of n's post-ops to make the primitive's. */
enum { S_POST_SILU = 1, S_POST_RES = 2 };

static int s_create(lf__cpu_dnnl_t *d, const lf_node_t *n, lf_type_t ct, bool packed, int post, s_entry_t *e) {
    const lf_tensor_t *x = n->src[0], *w = n->src[1], *b = n->src[2], *y = n->dst, *r = n->src[3];
    dnnl_memory_desc_t src_md, w_md, b_md, dst_md, r_md;
    dnnl_dims_t sd = {x->ne[3], x->ne[2], x->ne[1], x->ne[0]};
    dnnl_dims_t wd = {w->ne[3], w->ne[2], w->ne[1], w->ne[0]};
    dnnl_dims_t bd = {w->ne[3]};
    dnnl_dims_t dd = {y->ne[3], y->ne[2], y->ne[1], y->ne[0]};
    dnnl_dims_t strides = {n->p.conv2d.stride, n->p.conv2d.stride};
    dnnl_dims_t pad = {n->p.conv2d.pad, n->p.conv2d.pad};
    /* Right padding so that the output size matches floor division. */
    dnnl_dims_t padr = {(y->ne[1] - 1) * n->p.conv2d.stride + w->ne[1] - x->ne[1] - n->p.conv2d.pad,
                        (y->ne[0] - 1) * n->p.conv2d.stride + w->ne[0] - x->ne[0] - n->p.conv2d.pad};
    if (dnnl_memory_desc_init_by_tag(&src_md, 4, sd, s_dt(ct), dnnl_nchw) ||
        dnnl_memory_desc_init_by_tag(&w_md, 4, wd, s_dt(ct), dnnl_oihw) ||
        dnnl_memory_desc_init_by_tag(&b_md, 1, bd, dnnl_f32, dnnl_x) ||
        dnnl_memory_desc_init_by_tag(&dst_md, 4, dd, dnnl_f32, dnnl_nchw))
        return LF_EINTERNAL;
    /* The residual (NCHW, broadcast where its size is 1). */
    dnnl_dims_t rd = {r ? r->ne[3] : 1, r ? r->ne[2] : 1, r ? r->ne[1] : 1, r ? r->ne[0] : 1};
    if ((post & S_POST_RES) && dnnl_memory_desc_init_by_tag(&r_md, 4, rd, dnnl_f32, dnnl_nchw)) return LF_EINTERNAL;
    const s_post_t po = {.silu = post & S_POST_SILU, .res = post & S_POST_RES ? &r_md : NULL};
    dnnl_convolution_desc_t cd;
    if (dnnl_convolution_forward_desc_init(&cd, dnnl_forward_inference, dnnl_convolution_direct, &src_md, &w_md,
                                           b ? &b_md : NULL, &dst_md, strides, pad, padr))
        return LF_EUNSUPPORTED;
    /* The blocked kernels (brgconv) take no residual in our layout: such a
     * convolution runs blocked and adds it after (s_post_pass), faster
     * than the plain-layout kernel with the add fused. The f32 plain one
     * (gemm:jit) applies a binary post-op element by element: the 64x64
     * 320-channel 3x3 took 2.2x as long with the residual in it (bench_unet
     * --profile); its bf16 form has a vector one. */
    if ((post & S_POST_RES) && (ct == LF_TYPE_F32 || s_blocked(d, ct, n, packed))) return LF_EUNSUPPORTED;
    /* oneDNN's Winograd has no SiLU post-op: without it (the caller applies
     * it after), rather than the GEMM convolution with it. */
    if (lf__cpu_wino_wanted(d, ct, n)) {
        if (!lf__cpu_wino_create(d, n, &po, e)) return 0;
        if (post) return LF_EUNSUPPORTED;
    }
    if ((s_blocked(d, ct, n, packed) || s_blocked32(d, ct, n, packed)) &&
        !s_create_blocked(d, &cd, &src_md, &w_md, b ? &b_md : NULL, &dst_md, &po, e, true))
        return 0;
    dnnl_primitive_desc_t pd;
    int rc = lf__cpu_dnnl_pd(d, &cd, &po, &pd);
    e->wmd = e->wplain = w_md;
    if (!rc) rc = lf__cpu_dnnl_finish(d, pd, e);
    if (!rc) rc = lf__cpu_dnnl_memories(d, e, &src_md, &w_md, b ? &b_md : NULL, &dst_md, &po);
    if (rc) lf__cpu_dnnl_entry_free(e);
    return rc;
}

/* The cache entry for key, made by create on a miss; NULL on failure (rc). */
static s_entry_t *s_lookup(lf__cpu_dnnl_t *d, const int64_t key[12], int *rc,
                           int (*create)(lf__cpu_dnnl_t *, const void *, s_entry_t *), const void *arg) {
    for (int i = 0; i < d->n; i++)
        if (!memcmp(d->cache[i].key, key, sizeof d->cache[i].key)) {
            if (!d->cache[i].refused) return &d->cache[i];
            *rc = LF_EUNSUPPORTED;
            return NULL;
        }
    s_entry_t *e;
    if (d->n < LF__DNNL_CACHE) e = &d->cache[d->n++];
    else {
        e = &d->cache[d->next_evict];
        d->next_evict = (d->next_evict + 1) % LF__DNNL_CACHE;
        lf__cpu_dnnl_entry_free(e);
    }
    /* Some primitives size their thread partition when made (the f32 GEMM
     * convolution: omp_get_max_threads), so the team's count is set before
     * too, not only before each run: the first one made on a thread took
     * every core (bench_kernels --cputime counted half its work). */
    if (d->omp_set_num_threads) d->omp_set_num_threads(d->n_threads);
    *rc = create(d, arg, e);
    if (*rc) {
        memset(e, 0, sizeof *e); /* slot stays, empty key never matches a shape */
        if (*rc == LF_EUNSUPPORTED) { /* remembered: not asked again per call */
            memcpy(e->key, key, sizeof e->key);
            e->refused = true;
        }
        return NULL;
    }
    memcpy(e->key, key, sizeof e->key);
    return e;
}

/* One reorder of e (i: S_SRC, S_WEI, S_DST) between ptr, in our layout, and
 * the shared blocked buffer. */
static int s_reorder_run(lf__cpu_dnnl_t *d, s_entry_t *e, int i, dnnl_memory_t blocked) {
    dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, i == S_DST ? blocked : e->user[i]},
                               {DNNL_ARG_TO, i == S_DST ? e->user[i] : blocked}};
    return dnnl_primitive_execute(e->reorder[i], d->stream, 2, args) ? LF_EINTERNAL : 0;
}

/* The profile's names of e's reorders (lf__cpu_dnnl_part). */
static const char *const s_reorder_part[3] = {"reorder src", "reorder wei", "reorder dst"};

/* wei: in the primitive's layout when packed, else in ours; res: the
 * residual when e has that post-op. With a profile attached each reorder's
 * time is reported as a part of the node (oneDNN's CPU stream runs each
 * primitive to its end before execute returns, so the clock between two
 * executes is that of the one between). */
static int s_run(lf__cpu_dnnl_t *d, s_entry_t *e, const void *src, const void *wei, bool packed,
                 const void *bias, const void *res, void *dst) {
    if (d->omp_set_num_threads) d->omp_set_num_threads(d->n_threads);
    void *ptr[3] = {(void *)src, (void *)wei, dst};
    dnnl_memory_t mem[3] = {e->src, e->wei, e->dst};
    double t = d->prof ? lf__cpu_dnnl_now() : 0;
    for (int i = 0; i < 3; i++) {
        if (!e->reorder[i] || (i == S_WEI && packed)) {
            dnnl_memory_set_data_handle(mem[i], ptr[i]);
            continue;
        }
        dnnl_memory_set_data_handle(e->user[i], ptr[i]);
        dnnl_memory_set_data_handle(mem[i], d->blk[i]);
        if (i != S_DST && s_reorder_run(d, e, i, mem[i])) return LF_EINTERNAL;
        if (i != S_DST) lf__cpu_dnnl_part(d, s_reorder_part[i], &t);
    }
    if (e->bias) dnnl_memory_set_data_handle(e->bias, (void *)bias);
    dnnl_exec_arg_t args[6] = {{DNNL_ARG_SRC, e->src}, {DNNL_ARG_WEIGHTS, e->wei}, {DNNL_ARG_DST, e->dst}};
    int nargs = 3;
    if (e->bias)
        args[nargs++] = (dnnl_exec_arg_t){e->bias_post ? DNNL_ARG_ATTR_MULTIPLE_POST_OP(0) | DNNL_ARG_SRC_1 : DNNL_ARG_BIAS,
                                          e->bias};
    if (e->res) {
        dnnl_memory_set_data_handle(e->res, (void *)res);
        args[nargs++] = (dnnl_exec_arg_t){DNNL_ARG_ATTR_MULTIPLE_POST_OP(e->res_idx) | DNNL_ARG_SRC_1, e->res};
    }
    if (e->scratch) {
        dnnl_memory_set_data_handle(e->scratch, d->scratch);
        args[nargs++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, e->scratch};
    }
    if (dnnl_primitive_execute(e->prim, d->stream, nargs, args)) return LF_EINTERNAL;
    if (e->reorder[S_DST]) {
        if (d->prof && dnnl_stream_wait(d->stream)) return LF_EINTERNAL;
        t = d->prof ? lf__cpu_dnnl_now() : 0;
        if (s_reorder_run(d, e, S_DST, e->dst)) return LF_EINTERNAL;
    }
    if (dnnl_stream_wait(d->stream)) return LF_EINTERNAL;
    if (e->reorder[S_DST]) lf__cpu_dnnl_part(d, s_reorder_part[S_DST], &t);
    return 0;
}

typedef struct {
    const lf_node_t *n;
    lf_type_t ct;
    bool packed;
    int post; /* S_POST_* */
} s_conv_arg_t;

static int s_create_conv(lf__cpu_dnnl_t *d, const void *arg, s_entry_t *e) {
    const s_conv_arg_t *a = arg;
    return s_create(d, a->n, a->ct, a->packed, a->post, e);
}

int lf__cpu_dnnl_conv(lf__cpu_dnnl_t *d, const lf_node_t *n, lf_type_t ct, const lf__cpu_wsrc_t *x,
                      const lf__cpu_wsrc_t *w, bool *post_done) {
    const lf_tensor_t *xt = n->src[0], *wt = n->src[1], *b = n->src[2], *r = n->src[3];
    const bool packable = s_packable(d, w, ct);
    /* The residual's shape is part of the key: full, or broadcast (per
     * image and channel: a time embedding's add). */
    const int64_t rshape = !r ? 0 : r->ne[0] | r->ne[1] << 16 | r->ne[2] << 32 | r->ne[3] << 48;
    int post = (n->post_act ? S_POST_SILU : 0) | (r ? S_POST_RES : 0);
    int64_t key[12] = {1,         ct,        xt->ne[0], xt->ne[1],          xt->ne[2],       xt->ne[3],
                       wt->ne[0], wt->ne[1], wt->ne[3], n->p.conv2d.stride, n->p.conv2d.pad, 0};
    int rc = 0;
    s_entry_t *e = NULL;
    /* With the post-ops as the primitive's first; without them (no fast
     * kernel has them) the caller applies them after. */
    for (;;) {
        key[11] = (b != NULL) | packable << 1 | post << 2 | (post & S_POST_RES ? rshape << 4 : 0);
        s_conv_arg_t arg = {n, ct, packable, post};
        if ((e = s_lookup(d, key, &rc, s_create_conv, &arg))) break;
        if (!post || rc != LF_EUNSUPPORTED) return rc;
        post = 0;
    }
    /* A Winograd entry transforms its weights at each call, from the
     * weight as stored where it can (lf__cpu_wino_run). */
    const void *wp = packable && !e->wino ? s_packed(d, w, ct, &e->wmd, &e->wplain) : NULL;
    /* The conversions (to the compute type) reported where they ran: a
     * make that hands back the tensor's own bytes converted nothing. */
    double t = d->prof ? lf__cpu_dnnl_now() : 0;
    const void *wu = wp ? wp : e->wino ? NULL : w->make(w->arg);
    if (wu && wu != wt->data && !wp) lf__cpu_dnnl_part(d, "convert wei", &t);
    t = d->prof ? lf__cpu_dnnl_now() : 0;
    const void *xu = x->make(x->arg);
    if (xu && xu != xt->data) lf__cpu_dnnl_part(d, "convert src", &t);
    if ((!wu && !e->wino) || !xu) return LF_ENOMEM;
    rc = e->wino ? lf__cpu_wino_run(d, e, xu, w, b ? b->data : NULL, n->dst->data)
                 : s_run(d, e, xu, wu, wp != NULL, b ? b->data : NULL, r ? r->data : NULL, n->dst->data);
    *post_done = !rc && e->post;
    return rc;
}

typedef struct {
    const lf__cpu_mm_t *m;
    bool packed; /* the weight's layout left to the primitive (pre-packed) */
    bool post;   /* m's SiLU and residual as the primitive's post-ops */
} s_mm_arg_t;

static int s_create_matmul(lf__cpu_dnnl_t *d, const void *arg, s_entry_t *e) {
    const lf__cpu_mm_t *m = ((const s_mm_arg_t *)arg)->m;
    const bool packable = ((const s_mm_arg_t *)arg)->packed, post = ((const s_mm_arg_t *)arg)->post;
    dnnl_memory_desc_t src_md, w_md, b_md, dst_md, r_md;
    /* 3-D with a batch of one for a per-row bias post-op (a broadcast along
     * the last dimension that 2-D products only have in the reference
     * kernel). */
    const int nd = m->bias_m ? 3 : 2, o = nd - 2;
    dnnl_dims_t sd = {1, 1, 1}, ss = {m->M * m->lda, m->M * m->lda, 1};
    dnnl_dims_t wd = {1, 1, 1}, ws = {m->K * m->N, m->K * m->N, 1};
    dnnl_dims_t bd = {1, 1, 1}, dd = {1, 1, 1}, ds = {m->M * m->ldc, m->M * m->ldc, 1};
    sd[o] = m->M, sd[o + 1] = m->K, ss[o] = m->lda, ss[o + 1] = 1;
    wd[o] = m->K, wd[o + 1] = m->N; /* PyTorch's [out, in] row-major, or [in, out] (w_kn) */
    ws[o] = m->w_kn ? m->N : 1, ws[o + 1] = m->w_kn ? 1 : m->K;
    bd[o] = m->bias_m ? m->M : 1, bd[o + 1] = m->bias_m ? 1 : m->N;
    dd[o] = m->M, dd[o + 1] = m->N, ds[o] = m->ldc, ds[o + 1] = 1;
    dnnl_dims_t rs = {m->M * m->ldr, m->M * m->ldr, 1};
    rs[o] = m->ldr, rs[o + 1] = 1;
    if ((post && m->res && dnnl_memory_desc_init_by_strides(&r_md, nd, dd, dnnl_f32, rs)) ||
        dnnl_memory_desc_init_by_strides(&src_md, nd, sd, s_dt(m->ct), ss) ||
        dnnl_memory_desc_init_by_strides(&w_md, nd, wd, s_dt(m->ct), ws) ||
        dnnl_memory_desc_init_by_tag(&b_md, nd, bd, dnnl_f32, nd == 3 ? dnnl_abc : dnnl_ab) ||
        dnnl_memory_desc_init_by_strides(&dst_md, nd, dd, dnnl_f32, ds))
        return LF_EINTERNAL;
    /* A pre-packed weight takes the layout the primitive prefers (its
     * packed B); any other stays in ours. */
    dnnl_memory_desc_t w_any;
    if (packable && dnnl_memory_desc_init_by_tag(&w_any, nd, wd, s_dt(m->ct), dnnl_format_tag_any))
        return LF_EINTERNAL;
    /* A per-row bias (a 1x1 convolution's, Y = W . X): oneDNN has only its
     * reference kernel for that as a matmul bias, so it is a binary add
     * post-op, fused into the product's output pass. */
    dnnl_matmul_desc_t md;
    if (dnnl_matmul_desc_init(&md, &src_md, packable ? &w_any : &w_md, m->bias && !m->bias_m ? &b_md : NULL,
                              &dst_md))
        return LF_EUNSUPPORTED;
    dnnl_primitive_desc_t pd;
    const s_post_t po = {.bias1 = m->bias && m->bias_m ? &b_md : NULL,
                         .silu = post && m->silu,
                         .res = post && m->res ? &r_md : NULL};
    int rc = lf__cpu_dnnl_pd(d, &md, &po, &pd);
    e->bias_post = m->bias && m->bias_m;
    e->wplain = w_md;
    e->wmd = rc ? w_md : *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    if (!rc) rc = lf__cpu_dnnl_finish(d, pd, e);
    if (!rc) rc = lf__cpu_dnnl_memories(d, e, &src_md, &e->wmd, m->bias ? &b_md : NULL, &dst_md, &po);
    if (rc) lf__cpu_dnnl_entry_free(e);
    return rc;
}

/* m with the post-ops (post) or without: 0, or an error. */
static int s_matmul(lf__cpu_dnnl_t *d, const lf__cpu_mm_t *m, bool post) {
    post = post && (m->silu || m->res);
    int64_t key[12] = {2,      m->ct,    m->M,      m->N, m->K, m->lda, m->ldc, m->bias != NULL, m->w_kn, m->bias_m, 1,
                       post ? (int64_t)m->silu | (m->res != NULL) << 1 | m->ldr << 2 : 0};
    int rc = 0;
    s_entry_t *e;
    if (s_packable(d, m->wsrc, m->ct)) {
        /* The primitive's packed B, kept; without it (a padded layout larger
         * than the weight, out of memory) the plain-layout primitive runs. */
        s_mm_arg_t arg = {m, true, post};
        e = s_lookup(d, key, &rc, s_create_matmul, &arg);
        const void *w = e ? s_packed(d, m->wsrc, m->ct, &e->wmd, &e->wplain) : NULL;
        if (w) return s_run(d, e, m->a, w, false, m->bias, m->res, m->c);
    }
    key[10] = 0;
    s_mm_arg_t arg = {m, false, post};
    e = s_lookup(d, key, &rc, s_create_matmul, &arg);
    if (!e) return rc;
    const void *w = m->w ? m->w : m->wsrc->make(m->wsrc->arg);
    return w ? s_run(d, e, m->a, w, false, m->bias, m->res, m->c) : LF_ENOMEM;
}

int lf__cpu_dnnl_matmul(lf__cpu_dnnl_t *d, const lf__cpu_mm_t *m, bool *post_done) {
    *post_done = false;
    if ((m->silu || m->res) && s_matmul(d, m, true) == 0) return *post_done = true, 0;
    return s_matmul(d, m, false);
}
