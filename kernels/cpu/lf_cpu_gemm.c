/* lf_cpu_gemm: matrix products and convolution on the CPU.
 *
 * MATMUL with a 2-D weight (a linear layer) goes to oneDNN's matmul when
 * built with it and the backend computes in bf16 or chose oneDNN for f32
 * (lf_cpu_dnnl.c); otherwise it is one cblas_sgemm per batch (cblas_sbgemm
 * when the weight is bf16, the CPU has AVX512_BF16 and the OpenBLAS in use
 * exports it). CONV2D goes to oneDNN when built with it, else im2col + sgemm
 * over tiles of output pixels so the column buffer stays in cache (1x1
 * stride-1 convolutions go straight to sgemm). Operands not in the compute
 * type (f16 weights; f32 activations under bf16) are converted per call into
 * the backend's workspace, except an activation a norm already stored bf16
 * for them (lf__cpu_reads_bf16, lf_graph's bf16-activation pass). OpenBLAS
 * runs with the backend's thread count. */
#include <cblas.h>
#include <stdlib.h>
#include <string.h>

#include "lf_cpu_impl.h"
#include "lf_error.h"

static inline char *s_at(const lf_tensor_t *t, int64_t i2, int64_t i3) {
    return (char *)t->data + i2 * (int64_t)t->nb[2] + i3 * (int64_t)t->nb[3];
}

/* Row-major operand description of a (rows x cols) matrix stored with rows
 * along dimension 1 and cols along dimension 0 of t. */
typedef struct {
    enum CBLAS_TRANSPOSE trans;
    blasint ld;
} s_operand_t;

static s_operand_t s_operand(const lf_tensor_t *t, int64_t nb0, int64_t nb1, bool transpose) {
    /* Element (r, c) lies at r*nb1 + c*nb0 (in elements). */
    s_operand_t o;
    int64_t ne0 = t->ne[0], ne1 = t->ne[1];
    if (nb0 == 1 || ne0 == 1) {
        o.trans = transpose ? CblasTrans : CblasNoTrans;
        o.ld = (blasint)(nb1 > ne0 ? nb1 : ne0);
        if (ne1 == 1) o.ld = (blasint)ne0;
    } else {
        o.trans = transpose ? CblasNoTrans : CblasTrans;
        o.ld = (blasint)(nb0 > ne1 ? nb0 : ne1);
    }
    return o;
}

static void s_fill_bias(float *c, int64_t m, int64_t n, int64_t ldc, const lf_tensor_t *bias) {
    const char *bp = bias->data;
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) memcpy(&c[i * ldc + j], bp + j * (int64_t)bias->nb[0], 4);
}

/* Operand in the compute type ct: src itself when it already is, else a
 * converted copy at *work (advanced past it). */
static const void *s_as(lf__cpu_ctx_t *cpu, lf_type_t ct, const lf_tensor_t *t, char **work) {
    if (t->type == ct) return t->data;
    int64_t n = lf_tensor_nelements(t);
    void *dst = *work;
    if (ct == LF_TYPE_BF16) lf__cpu_to_bf16(cpu->pool, cpu->has_avx512_bf16, t->type, t->data, dst, n);
    else lf__cpu_to_f32(cpu->pool, t->type, t->data, dst, n);
    *work += ((size_t)n * lf_type_size(ct) + 63) & ~(size_t)63;
    return dst;
}

/* A weight's lf__cpu_wsrc_t.make: s_as into the workspace reserved. */
typedef struct {
    lf__cpu_ctx_t *cpu;
    lf_type_t ct;
    char *work;
} s_make_t;

static const void *s_make(void *arg, const lf_tensor_t *t) {
    s_make_t *m = arg;
    return s_as(m->cpu, m->ct, t, &m->work);
}

/* Workspace bytes s_as needs for t in ct. */
static size_t s_as_bytes(lf_type_t ct, const lf_tensor_t *t) {
    return t->type == ct ? 0 : ((size_t)lf_tensor_nelements(t) * lf_type_size(ct) + 63) & ~(size_t)63;
}

/* Rows of t (dims 1..3) as one matrix with a single row stride, as a linear
 * layer's input and output are: *ld the row stride in elements. */
static bool s_flat_rows(const lf_tensor_t *t, int64_t *ld) {
    size_t es = lf_type_size(t->type);
    if (t->nb[0] != es || t->nb[1] % es) return false;
    if (t->ne[2] > 1 && t->nb[2] != t->nb[1] * (size_t)t->ne[1]) return false;
    if (t->ne[3] > 1 && t->nb[3] != t->nb[2] * (size_t)t->ne[2]) return false;
    *ld = t->ne[1] == 1 && t->ne[2] == 1 && t->ne[3] == 1 ? t->ne[0] : (int64_t)(t->nb[1] / es);
    return true;
}

/* Products with a side under 16 (a time embedding's few rows, a UNet's
 * 4-channel input and output convolutions) stay f32 under bf16: a tiny share
 * of the work, and the ones whose rounding shows most in the image. */
static bool s_small(int64_t m, int64_t n, int64_t k) {
    return m < 16 || n < 16 || k < 16;
}

typedef struct {
    s_make_t m;
    const lf_tensor_t *t;
} s_wmake_t;

static const void *s_wmake(void *arg) {
    s_wmake_t *w = arg;
    return s_make(&w->m, w->t);
}

/* Whether node's residual (src[3]) is dst's shape and contiguous, as the
 * oneDNN post-op takes it (broadcast ones are added after). */
static bool s_res_full(const lf_node_t *node) {
    const lf_tensor_t *r = node->src[3];
    return r && r->type == LF_TYPE_F32 && lf_tensor_is_contiguous(r) && !memcmp(r->ne, node->dst->ne, sizeof r->ne);
}

/* A linear layer through oneDNN: 0, or an error after which OpenBLAS runs. */
static int s_matmul_dnnl(lf__cpu_ctx_t *cpu, const lf_node_t *node) {
#ifdef LF_HAVE_DNNL
    const lf_tensor_t *a = node->src[0], *b = node->src[1], *bias = node->src[2];
    lf_type_t ct = cpu->compute;
    int64_t lda, ldc;
    if (!cpu->dnnl || (ct == LF_TYPE_F32 && !cpu->mm_dnnl) || (a->type != LF_TYPE_F32 && a->type != LF_TYPE_BF16) ||
        b->ne[2] != 1 || b->ne[3] != 1 || !lf_tensor_is_contiguous(b) || !s_flat_rows(a, &lda) ||
        !s_flat_rows(node->dst, &ldc) || (bias && (bias->nb[0] != 4)))
        return LF_EUNSUPPORTED;
    lf__cpu_mm_t m = {.M = a->ne[1] * a->ne[2] * a->ne[3], .N = b->ne[1], .K = a->ne[0],
                      .lda = lda, .ldc = ldc, .ct = ct, .bias = bias ? bias->data : NULL,
                      .c = node->dst->data};
    if (ct == LF_TYPE_BF16 && s_small(m.M, m.N, m.K)) {
        if (!cpu->mm_dnnl) return LF_EUNSUPPORTED;
        m.ct = ct = LF_TYPE_F32;
    }
    /* a stored bf16 (a norm's result) is read as it is; under f32 (not a
     * case lf__cpu_reads_bf16 asks for) OpenBLAS widens it. */
    if (a->type == LF_TYPE_BF16 && ct != LF_TYPE_BF16) return LF_EUNSUPPORTED;
    if (ct == LF_TYPE_F32) lf__cpu_dnnl_release(cpu->dnnl, b, ct);
    size_t abytes = ct == LF_TYPE_F32 || a->type == ct ? 0 : (((size_t)(m.M * m.K) * 2 + 63) & ~(size_t)63);
    size_t need = abytes + s_as_bytes(ct, b);
    char *work = need ? lf__cpu_work(cpu, need + 64) : NULL;
    if (need && !work) return LF_ENOMEM;
    if (ct == LF_TYPE_F32 || a->type == ct) m.a = a->data;
    else if (lda == m.K) { /* dense rows: one conversion */
        lf__cpu_to_bf16(cpu->pool, cpu->has_avx512_bf16, LF_TYPE_F32, a->data, (uint16_t *)work, m.M * m.K);
        m.a = work, m.lda = m.K, work += abytes;
    } else {
        for (int64_t r = 0; r < m.M; r++)
            lf__cpu_to_bf16(cpu->pool, cpu->has_avx512_bf16, LF_TYPE_F32, (const float *)a->data + r * lda,
                            (uint16_t *)work + r * m.K, m.K);
        m.a = work, m.lda = m.K, work += abytes;
    }
    s_wmake_t mk = {.m = {cpu, ct, work}, .t = b};
    lf__cpu_wsrc_t ws = {b, s_wmake, &mk};
    m.wsrc = &ws; /* converted only when not pre-packed */
    /* The post-ops when the residual is a plain matrix like dst (else all
     * of them after, in order). */
    if (!node->src[3] || (s_res_full(node) && ldc == m.N)) {
        m.silu = node->post_act == 1;
        m.res = node->src[3] ? node->src[3]->data : NULL, m.ldr = m.N;
    }
    return lf__cpu_dnnl_matmul(cpu->dnnl, &m, &cpu->post_done);
#else
    (void)cpu, (void)node;
    return LF_EUNSUPPORTED;
#endif
}

static int s_matmul(lf_backend_t *be, const lf_node_t *node) {
    if (lf_type_is_quant(node->src[1]->type)) return lf__cpu_matmul_quant(be, node);
    lf__cpu_ctx_t *cpu = be->ctx;
    if (s_matmul_dnnl(cpu, node) == 0) return 0;
    const lf_tensor_t *a = node->src[0], *b = node->src[1], *bias = node->src[2];
#ifdef LF_HAVE_DNNL
    lf__cpu_dnnl_release(cpu->dnnl, b, LF_TYPE_F32); /* read as stored below */
#endif
    lf_tensor_t *d = node->dst;
    int64_t K = a->ne[0], M = a->ne[1], N = b->ne[1];
    lf_tensor_t A = *a, B = *b;
    bool use_bf16 = b->type == LF_TYPE_BF16 && cpu->sbgemm && lf_tensor_is_contiguous(b);
    size_t a_conv = 0, b_conv = 0;
    if (use_bf16)
        a_conv = (size_t)lf_tensor_nelements(a) * 2;
    else if (a->type != LF_TYPE_F32)
        a_conv = (size_t)lf_tensor_nelements(a) * 4;
    if (!use_bf16 && b->type != LF_TYPE_F32) b_conv = (size_t)lf_tensor_nelements(b) * 4;
    char *work = NULL;
    if (a_conv + b_conv) {
        work = lf__cpu_work(cpu, a_conv + b_conv + 64);
        if (!work) return LF_ENOMEM;
    }
    if (use_bf16) {
        /* Activations to bf16 (contiguous copy); the weight is used as stored. */
        A = lf_tensor_make(LF_TYPE_BF16, 4, a->ne, work);
        int64_t rows = a->ne[1] * a->ne[2] * a->ne[3];
        for (int64_t r = 0; r < rows; r++) {
            const char *src = (const char *)a->data + (r % a->ne[1]) * (int64_t)a->nb[1] +
                              ((r / a->ne[1]) % a->ne[2]) * (int64_t)a->nb[2] +
                              (r / (a->ne[1] * a->ne[2])) * (int64_t)a->nb[3];
            uint16_t *dst = (uint16_t *)work + r * K;
            {
                for (int64_t k = 0; k < K; k++) {
                    const char *p = src + k * (int64_t)a->nb[0];
                    float f;
                    if (a->type == LF_TYPE_F32) memcpy(&f, p, 4);
                    else {
                        uint16_t h;
                        memcpy(&h, p, 2);
                        f = a->type == LF_TYPE_F16 ? lf_f16_to_f32(h) : lf_bf16_to_f32(h);
                    }
                    dst[k] = lf_f32_to_bf16(f);
                }
            }
        }
    } else {
        if (a->type != LF_TYPE_F32) { /* contiguous (supports_op) */
            A = lf_tensor_make(LF_TYPE_F32, 4, a->ne, work);
            lf_type_to_f32(a->type, a->data, A.data, lf_tensor_nelements(a));
        }
        if (b->type != LF_TYPE_F32) {
            B = lf_tensor_make(LF_TYPE_F32, 4, b->ne, work + a_conv);
            lf_type_to_f32(b->type, b->data, B.data, lf_tensor_nelements(b));
        }
    }
    size_t aes = lf_type_size(A.type), bes = lf_type_size(B.type);
    s_operand_t oa = s_operand(&A, (int64_t)(A.nb[0] / aes), (int64_t)(A.nb[1] / aes), false);
    s_operand_t ob = s_operand(&B, (int64_t)(B.nb[0] / bes), (int64_t)(B.nb[1] / bes), true);
    blasint ldc = (blasint)(d->ne[1] == 1 ? N : (int64_t)(d->nb[1] / 4));
    lf__cpu_blas_threads(cpu, cpu->n_threads);
    for (int64_t i3 = 0; i3 < d->ne[3]; i3++)
        for (int64_t i2 = 0; i2 < d->ne[2]; i2++) {
            const void *pa = s_at(&A, i2, i3);
            const void *pb = s_at(&B, B.ne[2] == 1 ? 0 : i2, B.ne[3] == 1 ? 0 : i3);
            float *pc = (float *)s_at(d, i2, i3);
            float beta = 0.0f;
            if (bias) {
                s_fill_bias(pc, M, N, ldc, bias);
                beta = 1.0f;
            }
            if (use_bf16)
                cpu->sbgemm(CblasRowMajor, oa.trans, ob.trans, (int)M, (int)N, (int)K, 1.0f, pa,
                            oa.ld, pb, ob.ld, beta, pc, ldc);
            else
                cblas_sgemm(CblasRowMajor, oa.trans, ob.trans, (blasint)M, (blasint)N, (blasint)K,
                            1.0f, pa, oa.ld, pb, ob.ld, beta, pc, ldc);
        }
    return 0;
}

/* ---- conv2d ---- */

typedef struct {
    const float *x; /* one image [Ci][H][W] */
    float *col;     /* [K][T] */
    int64_t W, H, Wo, kw, kh, stride, pad, p0, T;
} s_im2col_t;

/* One task per input channel: fills its kh*kw rows of the column tile. */
static void s_im2col_task(void *arg, int64_t ci, int thread) {
    (void)thread;
    const s_im2col_t *j = arg;
    const float *img = j->x + ci * j->W * j->H;
    for (int64_t ky = 0; ky < j->kh; ky++)
        for (int64_t kx = 0; kx < j->kw; kx++) {
            float *row = j->col + ((ci * j->kh + ky) * j->kw + kx) * j->T;
            int64_t p = j->p0, end = j->p0 + j->T;
            while (p < end) {
                int64_t oy = p / j->Wo, ox0 = p % j->Wo;
                int64_t ox1 = j->Wo;
                if (oy * j->Wo + ox1 > end) ox1 = end - oy * j->Wo;
                int64_t iy = oy * j->stride - j->pad + ky;
                float *o = row + (p - j->p0);
                int64_t cnt = ox1 - ox0;
                if (iy < 0 || iy >= j->H) {
                    memset(o, 0, (size_t)cnt * 4);
                } else {
                    const float *in = img + iy * j->W;
                    if (j->stride == 1) {
                        /* ix = ox - pad + kx; copy the valid span, zero the edges. */
                        int64_t off = kx - j->pad;
                        int64_t lo = ox0, hi = ox1; /* valid ox: 0 <= ox+off < W */
                        if (lo < -off) lo = -off;
                        if (lo > ox1) lo = ox1;
                        if (hi > j->W - off) hi = j->W - off;
                        if (hi < lo) hi = lo;
                        for (int64_t ox = ox0; ox < lo; ox++) o[ox - ox0] = 0;
                        if (hi > lo) memcpy(o + (lo - ox0), in + lo + off, (size_t)(hi - lo) * 4);
                        for (int64_t ox = hi; ox < ox1; ox++) o[ox - ox0] = 0;
                    } else {
                        for (int64_t ox = ox0; ox < ox1; ox++) {
                            int64_t ix = ox * j->stride - j->pad + kx;
                            o[ox - ox0] = (ix >= 0 && ix < j->W) ? in[ix] : 0.0f;
                        }
                    }
                }
                p += cnt;
            }
        }
}

/* Bytes of column buffer per tile; LF_CONV_TILE_BYTES overrides (benchmarks). */
static size_t s_tile_bytes(void) {
    const char *e = getenv("LF_CONV_TILE_BYTES");
    long v = e ? atol(e) : 0;
    return v > 0 ? (size_t)v : (size_t)32 << 20;
}

#ifdef LF_HAVE_DNNL
/* s_wmake, remembered: the 1x1 path and the convolution after it (when
 * the matmul was refused) share one conversion. */
typedef struct {
    s_wmake_t *mk;
    const void *w;
} s_once_t;

static const void *s_once(void *arg) {
    s_once_t *o = arg;
    if (!o->w) o->w = s_wmake(o->mk);
    return o->w;
}

/* A 1x1 stride-1 convolution as one oneDNN matmul per image, Y[Co][P] =
 * W[Co][Ci] . X[Ci][P] + bias[Co]: oneDNN's convolution on plain NCHW ran
 * these at a quarter of its 3x3 rate (bench_unet --profile). x and w are in
 * compute type ct. */
static int s_conv1x1_dnnl(lf__cpu_ctx_t *cpu, const lf_node_t *node, lf_type_t ct, const void *x,
                          const lf__cpu_wsrc_t *ws) {
    const lf_tensor_t *xt = node->src[0], *wt = node->src[1], *bias = node->src[2];
    const void *w = lf__cpu_dnnl_plain(cpu->dnnl, ws, ct);
    if (!w) return LF_ENOMEM;
    int64_t P = xt->ne[0] * xt->ne[1], Ci = xt->ne[2], Co = wt->ne[3];
    size_t es = lf_type_size(ct);
    /* The bias as the matmul's per-row add post-op (cpu->fuse; else a pass
     * after, as when oneDNN refuses the post-op). oneDNN's matmul bias would
     * be its reference kernel for a per-row bias, which sent every 1x1
     * convolution with a bias (proj_in, proj_out, skip connections) back to
     * its plain-layout convolution. */
    bool fused = cpu->fuse && bias && bias->nb[0] == 4;
    /* The node's post-ops (a residual of dst's shape only) come after the
     * bias: in the product only with the bias there too (or none). */
    const bool post = (node->post_act || node->src[3]) && (!node->src[3] || s_res_full(node));
    for (int64_t n = 0; n < xt->ne[3]; n++) {
        float *y = (float *)node->dst->data + n * Co * P;
        const float *r = node->src[3] ? (const float *)node->src[3]->data + n * Co * P : NULL;
        lf__cpu_mm_t m = {.M = Co, .N = P, .K = Ci, .lda = Ci, .ldc = P, .w_kn = true, .ct = ct, .a = w,
                          .w = (const char *)x + (size_t)(n * Ci * P) * es, .c = y,
                          .bias = fused ? bias->data : NULL, .bias_m = fused};
        if (post && (fused || !bias)) m.silu = node->post_act == 1, m.res = r, m.ldr = P;
        bool done = false;
        int rc = lf__cpu_dnnl_matmul(cpu->dnnl, &m, &done);
        if (rc && fused) { /* no fast kernel with the post-op */
            fused = false;
            m.bias = NULL, m.bias_m = false, m.silu = false, m.res = NULL;
            rc = lf__cpu_dnnl_matmul(cpu->dnnl, &m, &done);
        }
        if (rc) return rc;
        for (int64_t c = 0; bias && !fused && c < Co; c++) {
            float b;
            memcpy(&b, (const char *)bias->data + c * (int64_t)bias->nb[0], 4);
            for (int64_t p = 0; p < P; p++) y[c * P + p] += b;
        }
        /* This image's post-ops where the product had none. */
        if (post && !done) {
            if (node->post_act) cpu->simd.silu(y, y, Co * P);
            for (int64_t i = 0; r && i < Co * P; i++) y[i] += r[i];
        }
    }
    cpu->post_done = post;
    return 0;
}
#endif

#ifdef LF_HAVE_DNNL
/* The compute type of a oneDNN convolution (one call's node): f32 where
 * bf16 gains nothing: small products, and the shapes Winograd takes (f32
 * Winograd 0.xx the time of bf16 brgconv there, docs/PERFORMANCE.md session
 * 11; f32 also rounds less). */
static lf_type_t s_conv_ct(const lf__cpu_ctx_t *cpu, const lf_node_t *node) {
    const lf_tensor_t *xt = node->src[0], *wt = node->src[1];
    return s_small(xt->ne[0] * xt->ne[1], wt->ne[3], xt->ne[2]) || lf__cpu_dnnl_wino(cpu->dnnl, node) ? LF_TYPE_F32
                                                                                                      : cpu->compute;
}
#endif

static int s_conv2d(lf_backend_t *be, const lf_node_t *node) {
    lf__cpu_ctx_t *cpu = be->ctx;
#ifdef LF_HAVE_DNNL
    if (cpu->dnnl && lf__cpu_dnnl_supports(node)) {
        const lf_tensor_t *wt = node->src[1];
        lf_type_t ct = s_conv_ct(cpu, node);
        if (ct == LF_TYPE_F32) lf__cpu_dnnl_release(cpu->dnnl, wt, ct);
        bool pointwise = wt->ne[0] == 1 && wt->ne[1] == 1 && node->p.conv2d.stride == 1 &&
                         node->p.conv2d.pad == 0 && (ct == LF_TYPE_BF16 || cpu->mm_dnnl);
        size_t need = s_as_bytes(ct, node->src[0]) + s_as_bytes(ct, node->src[1]);
        char *work = need ? lf__cpu_work(cpu, need + 64) : NULL;
        if (!need || work) {
            /* The activations converted once per call (a oneDNN reorder from
             * f32 straight into the blocked bf16 layout measured slower than
             * our conversion then the bf16 reorder: docs/PERFORMANCE.md); the
             * weight at most once, and only when oneDNN keeps no pre-packed
             * copy of it. */
            s_wmake_t xmk = {.m = {cpu, ct, work}, .t = node->src[0]};
            s_once_t xonce = {.mk = &xmk};
            lf__cpu_wsrc_t xs = {node->src[0], s_once, &xonce};
            s_wmake_t mk = {.m = {cpu, ct, work + s_as_bytes(ct, node->src[0])}, .t = node->src[1]};
            s_once_t once = {.mk = &mk};
            lf__cpu_wsrc_t ws = {node->src[1], s_once, &once};
            const void *x = pointwise ? s_once(&xonce) : NULL;
            if (pointwise && !x) return LF_ENOMEM;
            if (pointwise && s_conv1x1_dnnl(cpu, node, ct, x, &ws) == 0) return 0;
            if (lf__cpu_dnnl_conv(cpu->dnnl, node, ct, &xs, &ws, &cpu->post_done) == 0) return 0;
        }
    }
#endif
    const lf_tensor_t *x = node->src[0], *w = node->src[1], *bias = node->src[2];
    lf_tensor_t *d = node->dst;
    int64_t W = x->ne[0], H = x->ne[1], Ci = x->ne[2];
    int64_t kw = w->ne[0], kh = w->ne[1], Co = w->ne[3];
    int64_t Wo = d->ne[0], P = Wo * d->ne[1], K = Ci * kh * kw;
    int stride = node->p.conv2d.stride, pad = node->p.conv2d.pad;
    bool direct = kw == 1 && kh == 1 && stride == 1 && pad == 0;
    size_t wconv = w->type == LF_TYPE_F32 ? 0 : (size_t)(K * Co) * 4;
    /* x stored bf16 (lf__cpu_reads_bf16) where oneDNN refused the node. */
    size_t xconv = x->type == LF_TYPE_F32 ? 0 : (((size_t)lf_tensor_nelements(x) * 4 + 63) & ~(size_t)63);
    int64_t T = P;
    if (!direct) {
        T = (int64_t)(s_tile_bytes() / ((size_t)K * 4));
        T = T < 64 ? 64 : (T / 16) * 16;
        if (T > P) T = P;
    }
    size_t colb = direct ? 0 : (size_t)(K * T) * 4;
    char *work = NULL;
    if (wconv + colb + xconv) {
        work = lf__cpu_work(cpu, xconv + wconv + colb + 64);
        if (!work) return LF_ENOMEM;
    }
    const float *xf = x->data;
    if (xconv) {
        lf__cpu_to_f32(cpu->pool, x->type, x->data, (float *)work, lf_tensor_nelements(x));
        xf = (const float *)work, work += xconv;
    }
    const float *wf = w->data;
    if (wconv) {
        lf_type_to_f32(w->type, w->data, (float *)work, K * Co);
        wf = (const float *)work;
    }
    float *col = (float *)(work + wconv);
    lf__cpu_blas_threads(cpu, cpu->n_threads);
    for (int64_t n = 0; n < x->ne[3]; n++) {
        const float *xn = xf + n * Ci * W * H;
        float *yn = (float *)d->data + n * Co * P;
        float beta = 0.0f;
        if (bias) {
            const char *bp = bias->data;
            for (int64_t c = 0; c < Co; c++) {
                float v;
                memcpy(&v, bp + c * (int64_t)bias->nb[0], 4);
                for (int64_t p = 0; p < P; p++) yn[c * P + p] = v;
            }
            beta = 1.0f;
        }
        if (direct) {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (blasint)Co, (blasint)P,
                        (blasint)Ci, 1.0f, wf, (blasint)Ci, xn, (blasint)P, beta, yn, (blasint)P);
            continue;
        }
        for (int64_t p0 = 0; p0 < P; p0 += T) {
            int64_t t = P - p0 < T ? P - p0 : T;
            s_im2col_t j = {.x = xn, .col = col, .W = W, .H = H, .Wo = Wo, .kw = kw, .kh = kh,
                            .stride = stride, .pad = pad, .p0 = p0, .T = t};
            /* im2col on the calling thread only: OpenBLAS's workers spin for a
             * while after each sgemm, and pool threads would fight them for
             * the cores; one thread fills a tile in a small fraction of the
             * tile's GEMM time. */
            for (int64_t ci = 0; ci < Ci; ci++) s_im2col_task(&j, ci, 0);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (blasint)Co, (blasint)t,
                        (blasint)K, 1.0f, wf, (blasint)K, col, (blasint)t, beta, yn + p0,
                        (blasint)P);
        }
    }
    return 0;
}

/* ---- post-ops and one image per call ---- */

/* node's post-ops as passes over dst (what a kernel left undone): SiLU,
 * then the residual (broadcast as ADD does). */
static int s_post_pass(lf_backend_t *be, const lf_node_t *node) {
    lf_node_t op = {.op = LF_OP_SILU, .dst = node->dst, .src = {node->dst}};
    int rc = node->post_act ? lf__cpu_op_SILU(be, &op) : 0;
    op = (lf_node_t){.op = LF_OP_ADD, .dst = node->dst, .src = {node->dst, node->src[3]}};
    if (!rc && node->src[3]) rc = lf__cpu_op_ADD(be, &op);
    return rc;
}

/* One call of op (s_matmul, s_conv2d), then the post-ops it left. */
static int s_one(lf_backend_t *be, const lf_node_t *node, int (*op)(lf_backend_t *, const lf_node_t *)) {
    lf__cpu_ctx_t *cpu = be->ctx;
    cpu->post_done = false;
    int rc = op(be, node);
    if (rc || cpu->post_done || (!node->post_act && !node->src[3])) return rc;
    return s_post_pass(be, node);
}

/* The dimension s_per_image cuts node's batch along (one call per image),
 * or -1 when it runs node whole. */
static int s_image_dim(const lf__cpu_ctx_t *cpu, const lf_node_t *node) {
    const lf_tensor_t *a = node->src[0];
    int d = LF_MAX_DIMS - 1;
    while (d > 0 && a->ne[d] == 1) d--;
    int64_t n = node->images;
    return !cpu->per_image || n <= 1 || d == 0 || a->ne[d] != n || node->dst->ne[d] != n ? -1 : d;
}

/* In the batch-invariant mode (cpu->per_image, LF_CPU_PER_IMAGE=1):
 * a batch of node->images independent images along src[0]'s outermost
 * dimension of size > 1 (and dst's, and a batched product's second operand) runs one call
 * of op per image on views of that image: the kernels see the same shapes
 * whatever the batch size, so an image's bytes are those it has alone
 * (oneDNN's matmul picks its blocking from M, OpenBLAS its path for small
 * matrices). Any other node runs as is. */
static int s_per_image(lf_backend_t *be, const lf_node_t *node,
                       int (*op)(lf_backend_t *, const lf_node_t *)) {
    const lf_tensor_t *a = node->src[0];
    const lf__cpu_ctx_t *cpu = be->ctx;
    const int d = s_image_dim(cpu, node);
    const int64_t n = node->images;
    lf__cpu_pool_enter(cpu->pool); /* oneDNN's OpenMP team pinned before its first run */
    if (d < 0) return s_one(be, node, op);
    const lf_tensor_t *b = node->src[1];
    bool slice_b = node->op == LF_OP_MATMUL && b && d >= 2 && b->ne[d] == n; /* not a conv's weight */
    for (int64_t i = 0; i < n; i++) {
        lf_tensor_t sa = *a, sd = *node->dst, sb = slice_b ? *b : (lf_tensor_t){0};
        sa.ne[d] = sd.ne[d] = 1;
        sa.data = (char *)a->data + i * (int64_t)a->nb[d];
        sd.data = (char *)node->dst->data + i * (int64_t)node->dst->nb[d];
        lf_node_t one = *node;
        one.images = 1;
        one.src[0] = &sa, one.dst = &sd;
        const lf_tensor_t *r = node->src[3];
        lf_tensor_t sr = r ? *r : (lf_tensor_t){0};
        if (r && r->ne[d] == n) { /* the residual's image (else broadcast) */
            sr.ne[d] = 1;
            sr.data = (char *)r->data + i * (int64_t)r->nb[d];
            one.src[3] = &sr;
        }
        if (slice_b) {
            sb.ne[d] = 1;
            sb.data = (char *)b->data + i * (int64_t)b->nb[d];
            one.src[1] = &sb;
        }
        int rc = s_one(be, &one, op);
        if (rc) return rc;
    }
    return 0;
}

int lf__cpu_op_MATMUL(lf_backend_t *be, const lf_node_t *node) { return s_per_image(be, node, s_matmul); }

int lf__cpu_op_CONV2D(lf_backend_t *be, const lf_node_t *node) { return s_per_image(be, node, s_conv2d); }

bool lf__cpu_reads_bf16(lf_backend_t *be, const lf_node_t *node, int j) {
#ifdef LF_HAVE_DNNL
    const lf__cpu_ctx_t *cpu = be->ctx;
    const lf_tensor_t *b = node->src[1], *bias = node->src[2];
    if (j != 0 || !cpu->bf16_act || !cpu->dnnl || cpu->compute != LF_TYPE_BF16 || node->src[0]->type != LF_TYPE_F32 ||
        !b || lf_type_is_quant(b->type) || (node->op != LF_OP_MATMUL && node->op != LF_OP_CONV2D))
        return false;
    /* The node as one kernel call sees it (one image's, s_per_image). */
    lf_node_t one = *node;
    lf_tensor_t a = *node->src[0], y = *node->dst;
    const int d = s_image_dim(cpu, node);
    if (d >= 0) a.ne[d] = y.ne[d] = 1;
    one.src[0] = &a, one.dst = &y;
    int64_t lda, ldc;
    if (node->op == LF_OP_MATMUL) /* s_matmul_dnnl's bf16 product */
        return b->ne[2] == 1 && b->ne[3] == 1 && lf_tensor_is_contiguous(b) && s_flat_rows(&a, &lda) &&
               s_flat_rows(&y, &ldc) && (!bias || bias->nb[0] == 4) &&
               !s_small(a.ne[1] * a.ne[2] * a.ne[3], b->ne[1], a.ne[0]);
    return lf__cpu_dnnl_supports(&one) && s_conv_ct(cpu, &one) == LF_TYPE_BF16; /* s_conv2d's oneDNN paths */
#else
    (void)be, (void)node, (void)j;
    return false;
#endif
}
