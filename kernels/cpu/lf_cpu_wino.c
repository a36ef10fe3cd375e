/* lf_cpu_wino: f32 3x3 convolutions (stride 1, padding 1) as oneDNN's
 * Winograd F(4x4, 3x3) in row strips, for the CPU backend's oneDNN module
 * (lf_cpu_dnnl.c, which owns the primitive cache and calls in here for the
 * shapes lf__cpu_wino_wanted takes; what both share: lf_cpu_dnnl_impl.h).
 *
 * The weights are transformed into Winograd's 6x6 tiles at each call, by
 * our own transform (s_wino_weights) where the primitive's layout is the
 * one it writes, else by oneDNN's reorder: an f32 copy in tiles is 8x the
 * f16 weight, so none is kept. Used from the backend's one engine thread. */
#include <immintrin.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lf_cpu_dnnl_impl.h"
#include "lf_error.h"
#include "lf_log.h"

/* This file's short names for the operands. */
enum { S_SRC = LF__DNNL_SRC, S_WEI = LF__DNNL_WEI, S_DST = LF__DNNL_DST };

/* Which f32 3x3 convolutions run as Winograd F(4x4, 3x3) (oneDNN's
 * jit_wino_4x3: 4x fewer multiplies, 2.4-3.2x the plain layout's GEMM
 * convolution at the VAE decoder's and the UNet's 64x64 / 32x32 shapes,
 * relative RMS error ~1e-6; docs/PERFORMANCE.md, sessions 11 and 12).
 * LF_CPU_CONV_ALGO=auto (default): where the output has at least
 * S_WINO_MIN_PIXELS pixels per call (LF_CPU_WINO_MIN_PIXELS), so that the
 * weight transform each call pays is won back: from the UNet's 16x16 level
 * at batch 2 (its 3x3 convolutions 0.73x the time of brgconv on packed f32
 * weights, session 12); =gemm: never; =wino: wherever oneDNN has the
 * kernel (comparisons). A bf16 job takes them in f32 from
 * S_WINO_BF16_MIN_PIXELS and unchunked only (lf__cpu_dnnl_wino): at 16x16
 * bf16 brgconv was faster (0.61x f32 Winograd's time), and the chunked
 * 32x32 ones were level with it at 1 thread and no better at 2. */
#define S_WINO_MIN_PIXELS (16 * 16 * 2)
#define S_WINO_BF16_MIN_PIXELS (32 * 32)
/* The most bytes of Winograd weight tiles (36 floats per input and output
 * channel pair, in a buffer the backend keeps) one primitive takes: 640 x
 * 640 channels. A larger weight (the UNet's 32x32 960 / 1280 / 1920 -> 640
 * and 1280 -> 1280: 88-236 MiB) runs in chunks of output channels, each
 * with its tiles within this (s_wino_chunk; LF_CPU_WINO_WIDE=0: not taken,
 * as before; LF_CPU_WINO_CHUNK_KB sets it, tests make small chunks). */
#define S_WINO_MAX_WEIGHT_BYTES ((size_t)64 << 20)
/* Bytes of one strip's blocked source, destination and oneDNN's transformed
 * tiles (its scratchpad): a whole 512x512 256-channel image would take 1.2
 * GB of scratchpad, more than the decode's activations. LF_CPU_WINO_STRIP_KB
 * sets it (tests make strips of a few rows with it). */
#define S_WINO_STRIP_BYTES ((size_t)64 << 20)

void lf__cpu_wino_init(lf__cpu_dnnl_t *d) {
    const char *algo = getenv("LF_CPU_CONV_ALGO");
    d->algo = !algo                    ? LF__DNNL_ALGO_AUTO
              : !strcmp(algo, "gemm")  ? LF__DNNL_ALGO_GEMM
              : !strcmp(algo, "wino")  ? LF__DNNL_ALGO_WINO
                                       : LF__DNNL_ALGO_AUTO;
    const char *strip = getenv("LF_CPU_WINO_STRIP_KB");
    d->wino_strip_bytes = strip && atol(strip) > 0 ? (size_t)atol(strip) << 10 : S_WINO_STRIP_BYTES;
    const char *ww = getenv("LF_CPU_WINO_WEIGHTS");
    d->wino_own = !ww || strcmp(ww, "onednn") != 0;
    const char *wide = getenv("LF_CPU_WINO_WIDE");
    d->wino_wide = !wide || strcmp(wide, "0") != 0;
    const char *batch = getenv("LF_CPU_WINO_BATCH");
    d->wino_batch = batch && !strcmp(batch, "1");
    const char *mp = getenv("LF_CPU_WINO_MIN_PIXELS");
    d->wino_min_pixels = mp && atol(mp) > 0 ? atol(mp) : S_WINO_MIN_PIXELS;
    const char *ck = getenv("LF_CPU_WINO_CHUNK_KB");
    d->wino_chunk_bytes = ck && atol(ck) > 0 ? (size_t)atol(ck) << 10 : S_WINO_MAX_WEIGHT_BYTES;
    const char *simd = getenv("LF_CPU_SIMD"); /* a cap below AVX-512 (the backend's knob) holds here too */
    d->wino_avx512 = __builtin_cpu_supports("avx512f") && !(simd && (!strcmp(simd, "avx2") || !strcmp(simd, "scalar"))) &&
                     !(ww && !strcmp(ww, "c")); /* =c: the C form from an f32 copy (session 11's, comparisons) */
}

void lf__cpu_dnnl_set_pool(lf__cpu_dnnl_t *d, lf__cpu_pool_t *pool) {
    d->pool = pool;
}

/* A Winograd convolution (f32, 3x3, stride 1, padding 1) run in strips of
 * `rows` output rows, each image's rows one strip after another, so that
 * oneDNN's transformed tiles and the blocked copies stay within
 * S_WINO_STRIP_BYTES. The primitive takes a strip of rows + 2 source rows
 * (padding 1 left and right only): a strip's rows above and below come from
 * the image, and at its edges are zero rows written into the blocked copy.
 * Source strips are reordered from our NCHW into nChw16c (one reorder per
 * strip position: top, middle, bottom, or the whole image in one strip),
 * results back into NCHW; the weights are transformed into the primitive's
 * layout at each call (an f32 copy in Winograd's 6x6 tiles is 8x the f16
 * weight: not kept). */
enum { S_WINO_MID, S_WINO_TOP, S_WINO_BOTTOM, S_WINO_ONE };

struct lf__cpu_wino {
    int64_t n, c, h, w, o, rows;
    /* Images per primitive call: with LF_CPU_WINO_BATCH=1, where a whole
     * image is one strip, nb of them run in one call (oneDNN's tile
     * products then have nb times the rows for each read of the weight
     * tiles: at 16x16 an image has only 16 tiles); else 1. Not the default:
     * bench_kernels saw 0.86x at 16x16 1280 -> 1280 and 1.28x at 2560 ->
     * 1280, the UNet step no change beyond its noise (session 12). */
    int64_t nb;
    /* Output channels per chunk (o: one chunk); each chunk's weights are
     * transformed, then every strip runs with them. */
    int64_t oc;
    /* With several chunks and one strip per image, the blocked source of
     * every image is kept from the first chunk for the others (src_bytes
     * each, the images of a call one after another); otherwise each strip
     * is reordered again per chunk. */
    bool keep_src;
    size_t src_bytes;
    dnnl_primitive_t src_reorder[4]; /* NULL where the position does not occur */
    dnnl_memory_t src_user[4], src_blk[4];
    dnnl_memory_t wscratch; /* the weight transform's scratchpad (d->scratch); NULL: none */
    /* Weights transformed by s_wino_weights instead of oneDNN's reorder
     * (~50 ns per weight, scalar): where the primitive's layout is the one
     * it writes; checked against the reorder at the entry's first call. */
    bool own, checked;
    int ic2, oc2; /* the layout's ic2_block / oc2_block (16-channel blocks per chunk) */
};

void lf__cpu_wino_free(lf__cpu_wino_t **w_p) {
    lf__cpu_wino_t *w = *w_p;
    if (!w) return;
    for (int i = 0; i < 4; i++) {
        if (w->src_reorder[i]) dnnl_primitive_destroy(w->src_reorder[i]);
        if (w->src_user[i]) dnnl_memory_destroy(w->src_user[i]);
        if (w->src_blk[i]) dnnl_memory_destroy(w->src_blk[i]);
    }
    if (w->wscratch) dnnl_memory_destroy(w->wscratch);
    free(w);
    *w_p = NULL;
}

/* Output channels per chunk of a c -> o weight: o where its tiles fit
 * d->wino_chunk_bytes, else (d->wino_wide) the largest divisor of o, a
 * multiple of 16, whose tiles do; 0 where none does. */
static int64_t s_wino_chunk(const lf__cpu_dnnl_t *d, int64_t c, int64_t o) {
    const size_t per_o = (size_t)36 * sizeof(float) * (size_t)c;
    if (per_o * (size_t)o <= d->wino_chunk_bytes) return o;
    if (!d->wino_wide) return 0;
    for (int64_t oc = o - 16; oc >= 16; oc -= 16)
        if (o % oc == 0 && per_o * (size_t)oc <= d->wino_chunk_bytes) return oc;
    return 0;
}

/* Whether n (computed in ct) runs as Winograd: see LF__DNNL_ALGO_*. */
bool lf__cpu_wino_wanted(const lf__cpu_dnnl_t *d, lf_type_t ct, const lf_node_t *n) {
    const lf_tensor_t *x = n->src[0], *w = n->src[1], *y = n->dst;
    if (d->algo == LF__DNNL_ALGO_GEMM || ct != LF_TYPE_F32 || w->ne[0] != 3 || w->ne[1] != 3 || n->p.conv2d.stride != 1 ||
        n->p.conv2d.pad != 1 || x->ne[2] % 16 || y->ne[0] != x->ne[0] || y->ne[1] != x->ne[1])
        return false;
    return d->algo == LF__DNNL_ALGO_WINO ||
           (y->ne[0] * y->ne[1] * y->ne[3] >= d->wino_min_pixels && s_wino_chunk(d, x->ne[2], w->ne[3]) > 0);
}

bool lf__cpu_dnnl_wino(const lf__cpu_dnnl_t *d, const lf_node_t *n) {
    const lf_tensor_t *y = n->dst;
    return d && lf__cpu_wino_wanted(d, LF_TYPE_F32, n) &&
           (d->algo == LF__DNNL_ALGO_WINO || (y->ne[0] * y->ne[1] * y->ne[3] >= S_WINO_BF16_MIN_PIXELS &&
                                               s_wino_chunk(d, n->src[0]->ne[2], n->src[1]->ne[3]) == n->src[1]->ne[3]));
}

/* Output rows per strip: the largest divisor of h whose strip fits
 * d->wino_strip_bytes (blocked source and result, and ~2.25x both in
 * transformed tiles); 0 where that leaves strips under 8 rows. */
static int64_t s_wino_rows(const lf__cpu_dnnl_t *d, int64_t h, int64_t w, int64_t c, int64_t o) {
    const size_t per_row = (size_t)w * (size_t)(c + o) * sizeof(float) * 13 / 4;
    int64_t max = (int64_t)(d->wino_strip_bytes / per_row);
    for (int64_t r = max < h ? max : h; r >= 1; r--)
        if (h % r == 0) return r >= 8 || r == h ? r : 0;
    return 0;
}

/* A reorder from -> to made with our scratchpad mode; its scratchpad need
 * (bytes) into *scr (NULL: none allowed). */
static int s_wino_reorder(lf__cpu_dnnl_t *d, const dnnl_memory_desc_t *from, const dnnl_memory_desc_t *to,
                          dnnl_primitive_t *r, size_t *scr) {
    dnnl_primitive_attr_t attr;
    if (dnnl_primitive_attr_create(&attr)) return LF_ENOMEM;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_status_t st = dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
    if (!st) st = dnnl_reorder_primitive_desc_create(&pd, from, d->engine, to, d->engine, attr);
    dnnl_primitive_attr_destroy(attr);
    if (st) return LF_EUNSUPPORTED;
    const dnnl_memory_desc_t *smd = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    const size_t size = smd ? dnnl_memory_desc_get_size(smd) : 0;
    if (size && !scr) st = dnnl_unimplemented;
    if (!st) st = dnnl_primitive_create(r, pd);
    dnnl_primitive_desc_destroy(pd);
    if (st) return LF_EUNSUPPORTED;
    if (scr) *scr = size;
    return 0;
}

/* Our NCHW rows [.., .. + rows) of channels [.., .. + c) of nb images of
 * ctot x h x w, from the pointer to the first image's first row. */
static int s_wino_view(dnnl_memory_desc_t *md, int64_t nb, int64_t c, int64_t ctot, int64_t h, int64_t w,
                       int64_t rows) {
    dnnl_dims_t dims = {nb, c, rows, w}, strides = {ctot * h * w, h * w, w, 1};
    return dnnl_memory_desc_init_by_strides(md, 4, dims, dnnl_f32, strides) ? LF_EINTERNAL : 0;
}

/* oneDNN's G for F(4x4, 3x3) (jit_avx512_core_f32_wino_conv_4x3: the
 * weight transform U = G g G^T with these scaled points). */
static const float s_wino_g[6][3] = {{1.13777777777778f, 0.f, 0.f},
                                     {-0.688403361344538f, -0.430252100840336f, -0.26890756302521f},
                                     {-0.688403361344538f, 0.430252100840336f, -0.26890756302521f},
                                     {0.119514472455649f, 0.179271708683473f, 0.26890756302521f},
                                     {0.119514472455649f, -0.179271708683473f, 0.26890756302521f},
                                     {0.f, 0.f, 1.f}};

/* Whether md (the primitive's weights) is the layout s_wino_weights writes:
 * dnnl_wino_wei_OBaaIBOIio, 6x6 tiles of 16 x 16 channel blocks, no
 * padding (c x o channels). */
static bool s_wino_own_layout(const dnnl_memory_desc_t *md, int64_t c, int64_t o) {
    const dnnl_wino_desc_t *w = &md->format_desc.wino_desc;
    return md->format_kind == dnnl_format_kind_wino && w->wino_format == dnnl_wino_wei_OBaaIBOIio && w->r == 3 &&
           w->alpha == 6 && w->adj_scale == 1.0f && w->ic == c && w->oc == o && w->ic_block == 16 &&
           w->oc_block == 16 && w->ic2_block > 0 && w->oc2_block > 0 && c % (16 * w->ic2_block) == 0 &&
           o % (16 * w->oc2_block) == 0 && w->size == (size_t)36 * c * o * sizeof(float);
}

/* w (o x c x 3 x 3, f32) -> out in dnnl_wino_wei_OBaaIBOIio: element
 * [occ][a][b][icc][ob][ib][i][oo] of output channel (occ * oc2 + ob) * 16 +
 * oo and input channel (icc * ic2 + ib) * 16 + i, tile point (a, b) of
 * G g G^T. 16 output channels at a time along the vector lanes; output
 * channels [o0, o1) and input channels [i0, i1) of it (multiples of 16). */
static void s_wino_weights_c(const float *w, float *out, int64_t c, int ic2, int oc2, int64_t o0_, int64_t o1,
                             int64_t i0, int64_t i1) {
    const int64_t icc_n = c / (16 * ic2);
    for (int64_t o0 = o0_; o0 < o1; o0 += 16) {
        const int64_t occ = o0 / (16 * oc2), ob = (o0 / 16) % oc2;
        for (int64_t i = i0; i < i1; i++) {
            const int64_t icc = i / (16 * ic2), ib = (i / 16) % ic2, ii = i % 16;
            float g[9][16], m[6][3][16];
            for (int k = 0; k < 9; k++)
                for (int l = 0; l < 16; l++) g[k][l] = w[((o0 + l) * c + i) * 9 + k];
            for (int a = 0; a < 6; a++)
                for (int kw = 0; kw < 3; kw++)
                    for (int l = 0; l < 16; l++)
                        m[a][kw][l] = s_wino_g[a][0] * g[kw][l] + s_wino_g[a][1] * g[3 + kw][l] +
                                      s_wino_g[a][2] * g[6 + kw][l];
            for (int a = 0; a < 6; a++)
                for (int b = 0; b < 6; b++) {
                    float *dst = out + ((((((occ * 6 + a) * 6 + b) * icc_n + icc) * oc2 + ob) * ic2 + ib) * 16 + ii) * 16;
                    for (int l = 0; l < 16; l++)
                        dst[l] = m[a][0][l] * s_wino_g[b][0] + m[a][1][l] * s_wino_g[b][1] + m[a][2][l] * s_wino_g[b][2];
                }
        }
    }
}

/* The same with AVX-512, from w as stored (f32, f16 or bf16: type): for
 * each 16 output x 16 input channels, their 16 x 144 weights widened into
 * an f32 block in L1 (contiguous loads), each input channel's 9 taps
 * gathered from it along the output lanes. */
__attribute__((target("avx512f"))) static void s_wino_weights_avx512(const void *w, lf_type_t type, float *out,
                                                                     int64_t c, int ic2, int oc2, int64_t o0_,
                                                                     int64_t o1, int64_t i0, int64_t i1) {
    const int64_t icc_n = c / (16 * ic2);
    float blk[16 * 144] __attribute__((aligned(64)));
    const __m512i lanes = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                             _mm512_set1_epi32(144));
    __m512 G[6][3];
    for (int a = 0; a < 6; a++)
        for (int k = 0; k < 3; k++) G[a][k] = _mm512_set1_ps(s_wino_g[a][k]);
    for (int64_t o0 = o0_; o0 < o1; o0 += 16) {
        const int64_t occ = o0 / (16 * oc2), ob = (o0 / 16) % oc2;
        for (int64_t is = i0; is < i1; is += 16) {
            for (int l = 0; l < 16; l++) {
                const int64_t at = ((o0 + l) * c + is) * 9;
                for (int v = 0; v < 9; v++) {
                    __m512 x;
                    if (type == LF_TYPE_F32) x = _mm512_loadu_ps((const float *)w + at + v * 16);
                    else {
                        const __m256i h = _mm256_loadu_si256((const __m256i *)((const uint16_t *)w + at + v * 16));
                        x = type == LF_TYPE_F16 ? _mm512_cvtph_ps(h)
                                                : _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
                    }
                    _mm512_store_ps(blk + l * 144 + v * 16, x);
                }
            }
            for (int64_t i = is; i < is + 16; i++) {
                const int64_t icc = i / (16 * ic2), ib = (i / 16) % ic2, ii = i % 16;
                __m512 g[9], m[6][3];
                for (int k = 0; k < 9; k++) g[k] = _mm512_i32gather_ps(lanes, blk + ii * 9 + k, 4);
                for (int a = 0; a < 6; a++)
                    for (int kw = 0; kw < 3; kw++)
                        m[a][kw] = _mm512_fmadd_ps(G[a][2], g[6 + kw],
                                                   _mm512_fmadd_ps(G[a][1], g[3 + kw], _mm512_mul_ps(G[a][0], g[kw])));
                for (int a = 0; a < 6; a++)
                    for (int b = 0; b < 6; b++) {
                        float *dst = out + ((((((occ * 6 + a) * 6 + b) * icc_n + icc) * oc2 + ob) * ic2 + ib) * 16 + ii) * 16;
                        _mm512_storeu_ps(dst, _mm512_fmadd_ps(m[a][2], G[b][2],
                                                             _mm512_fmadd_ps(m[a][1], G[b][1], _mm512_mul_ps(m[a][0], G[b][0]))));
                    }
            }
        }
    }
}

/* One weight transform on the pool: tasks of 16 output x 64 input channels. */
typedef struct {
    const void *w; /* the chunk's first output channel */
    lf_type_t type;
    float *out;
    int64_t c, o;
    int ic2, oc2;
    bool avx512;
} s_wino_job_t;

#define S_WINO_TASK_IC 64

static void s_wino_task(void *ctx, int64_t task, int thread) {
    (void)thread;
    const s_wino_job_t *j = ctx;
    const int64_t per_o = (j->c + S_WINO_TASK_IC - 1) / S_WINO_TASK_IC;
    const int64_t o0 = task / per_o * 16, i0 = task % per_o * S_WINO_TASK_IC;
    const int64_t i1 = i0 + S_WINO_TASK_IC < j->c ? i0 + S_WINO_TASK_IC : j->c;
    if (j->avx512) s_wino_weights_avx512(j->w, j->type, j->out, j->c, j->ic2, j->oc2, o0, o0 + 16, i0, i1);
    else s_wino_weights_c(j->w, j->out, j->c, j->ic2, j->oc2, o0, o0 + 16, i0, i1);
}

/* w (o x c x 3 x 3 of type: f32, or f16 / bf16 with the AVX-512 form) into
 * out, on d's pool. */
static void s_wino_weights(lf__cpu_dnnl_t *d, const void *w, lf_type_t type, float *out, int64_t c, int64_t o,
                           int ic2, int oc2) {
    s_wino_job_t j = {w, type, out, c, o, ic2, oc2, d->wino_avx512};
    const int64_t n = o / 16 * ((c + S_WINO_TASK_IC - 1) / S_WINO_TASK_IC);
    if (d->pool) lf__cpu_pool_run(d->pool, n, s_wino_task, &j);
    else
        for (int64_t t = 0; t < n; t++) s_wino_task(&j, t, 0);
}

int lf__cpu_wino_create(lf__cpu_dnnl_t *d, const lf_node_t *n, const lf__cpu_dnnl_post_t *post,
                        lf__cpu_dnnl_entry_t *e) {
    const lf_tensor_t *x = n->src[0], *wt = n->src[1], *b = n->src[2];
    const int64_t N = x->ne[3], C = x->ne[2], H = x->ne[1], W = x->ne[0], O = wt->ne[3];
    const int64_t chunk = s_wino_chunk(d, C, O), Oc = chunk ? chunk : O; /* =wino: any size, whole */
    const int64_t rows = s_wino_rows(d, H, W, C, Oc);
    if (!rows) return LF_EUNSUPPORTED;
    /* Whole images batched while they fit twice the strip budget. */
    int64_t nb = 1;
    const size_t per_image = (size_t)H * (size_t)W * (size_t)(C + Oc) * sizeof(float) * 13 / 4;
    for (int64_t k = N; k > 1 && rows == H && d->wino_batch; k--)
        if (N % k == 0 && (size_t)k * per_image <= 2 * d->wino_strip_bytes) {
            nb = k;
            break;
        }
    dnnl_dims_t sd = {nb, C, rows + 2, W}, wd = {Oc, C, 3, 3}, bd = {Oc}, dd = {nb, Oc, rows, W};
    dnnl_dims_t strides = {1, 1}, pad = {0, 1};
    dnnl_memory_desc_t s_any, w_any, d_any, w_md, b_md, s16;
    if (dnnl_memory_desc_init_by_tag(&s_any, 4, sd, dnnl_f32, dnnl_format_tag_any) ||
        dnnl_memory_desc_init_by_tag(&w_any, 4, wd, dnnl_f32, dnnl_format_tag_any) ||
        dnnl_memory_desc_init_by_tag(&d_any, 4, dd, dnnl_f32, dnnl_format_tag_any) ||
        dnnl_memory_desc_init_by_tag(&w_md, 4, wd, dnnl_f32, dnnl_oihw) ||
        dnnl_memory_desc_init_by_tag(&b_md, 1, bd, dnnl_f32, dnnl_x) ||
        dnnl_memory_desc_init_by_tag(&s16, 4, sd, dnnl_f32, dnnl_nChw16c))
        return LF_EINTERNAL;
    dnnl_convolution_desc_t cd;
    if (dnnl_convolution_forward_desc_init(&cd, dnnl_forward_inference, dnnl_convolution_winograd, &s_any, &w_any,
                                           b ? &b_md : NULL, &d_any, strides, pad, pad))
        return LF_EUNSUPPORTED;
    dnnl_primitive_desc_t pd;
    int rc = lf__cpu_dnnl_pd(d, &cd, post, &pd);
    if (rc) return rc;
    const dnnl_memory_desc_t its_s = *dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0),
                             its_w = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0),
                             its_d = *dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
    if (!dnnl_memory_desc_equal(&its_s, &s16)) { /* the zero rows are written for nChw16c */
        dnnl_primitive_desc_destroy(pd);
        return LF_EUNSUPPORTED;
    }
    rc = lf__cpu_dnnl_finish(d, pd, e);
    lf__cpu_wino_t *w = rc ? NULL : calloc(1, sizeof *w);
    if (!rc && !w) rc = LF_ENOMEM;
    if (rc) {
        lf__cpu_dnnl_entry_free(e);
        return rc;
    }
    e->wino = w;
    *w = (lf__cpu_wino_t){.n = N, .c = C, .h = H, .w = W, .o = O, .rows = rows, .nb = nb, .oc = Oc};
    w->keep_src = Oc < O && rows == H;
    w->src_bytes = dnnl_memory_desc_get_size(&its_s) / (size_t)nb;
    w->own = d->wino_own && s_wino_own_layout(&its_w, C, Oc);
    w->ic2 = its_w.format_desc.wino_desc.ic2_block, w->oc2 = its_w.format_desc.wino_desc.oc2_block;
    e->wmd = its_w, e->wplain = w_md;
    /* Weights: oihw -> Winograd tiles, with a scratchpad from d->scratch. */
    size_t wscr = 0;
    rc = s_wino_reorder(d, &w_md, &its_w, &e->reorder[S_WEI], &wscr);
    if (!rc && dnnl_memory_create(&e->user[S_WEI], &w_md, d->engine, DNNL_MEMORY_NONE)) rc = LF_ENOMEM;
    if (!rc && wscr) {
        const dnnl_memory_desc_t *smd = NULL;
        dnnl_primitive_desc_t rpd;
        if (dnnl_primitive_get_primitive_desc(e->reorder[S_WEI], (const_dnnl_primitive_desc_t *)&rpd) ||
            !(smd = dnnl_primitive_desc_query_md(rpd, dnnl_query_scratchpad_md, 0)) ||
            dnnl_memory_create(&w->wscratch, smd, d->engine, DNNL_MEMORY_NONE))
            rc = LF_ENOMEM;
        if (!rc) rc = lf__cpu_dnnl_grow(&d->scratch, &d->scratch_size, wscr);
    }
    if (!rc) rc = lf__cpu_dnnl_grow(&d->blk[S_WEI], &d->blk_size[S_WEI], dnnl_memory_desc_get_size(&its_w));
    /* Results: the primitive's strip -> our rows. */
    dnnl_memory_desc_t view;
    if (!rc) rc = s_wino_view(&view, nb, Oc, O, H, W, rows);
    if (!rc) rc = s_wino_reorder(d, &its_d, &view, &e->reorder[S_DST], NULL);
    if (!rc && dnnl_memory_create(&e->user[S_DST], &view, d->engine, DNNL_MEMORY_NONE)) rc = LF_ENOMEM;
    if (!rc) rc = lf__cpu_dnnl_grow(&d->blk[S_DST], &d->blk_size[S_DST], dnnl_memory_desc_get_size(&its_d));
    /* Sources: each strip position's rows of ours -> the strip's rows of
     * its, below the zero row at the top (TOP, ONE). */
    for (int v = 0; v < 4 && !rc; v++) {
        const bool one = rows == H;
        if (one != (v == S_WINO_ONE) || (v == S_WINO_MID && H / rows < 3)) continue;
        const int64_t nr = v == S_WINO_MID ? rows + 2 : v == S_WINO_ONE ? rows : rows + 1;
        const int64_t off = v == S_WINO_TOP || v == S_WINO_ONE;
        dnnl_dims_t sub = {nb, C, nr, W}, offs = {0, 0, off, 0};
        dnnl_memory_desc_t user, blk;
        rc = s_wino_view(&user, nb, C, C, H, W, nr);
        if (!rc && dnnl_memory_desc_init_submemory(&blk, &its_s, sub, offs)) rc = LF_EINTERNAL;
        if (!rc) rc = s_wino_reorder(d, &user, &blk, &w->src_reorder[v], NULL);
        if (!rc && (dnnl_memory_create(&w->src_user[v], &user, d->engine, DNNL_MEMORY_NONE) ||
                    dnnl_memory_create(&w->src_blk[v], &blk, d->engine, DNNL_MEMORY_NONE)))
            rc = LF_ENOMEM;
    }
    if (!rc) rc = lf__cpu_dnnl_grow(&d->blk[S_SRC], &d->blk_size[S_SRC], w->src_bytes * (size_t)(w->keep_src ? N : nb));
    if (!rc) rc = lf__cpu_dnnl_memories(d, e, &its_s, &its_w, b ? &b_md : NULL, &its_d, post);
    if (rc) lf__cpu_dnnl_entry_free(e);
    return rc;
}

/* Source row r (0 .. rows + 1) of the blocked strip at blk set to zero. */
static void s_wino_zero_row(float *blk, const lf__cpu_wino_t *w, int64_t r) {
    for (int64_t cb = 0; cb < w->c / 16; cb++)
        memset(blk + ((cb * (w->rows + 2) + r) * w->w) * 16, 0, (size_t)w->w * 16 * sizeof(float));
}

/* The weights of output channels [o0, o0 + w->oc) (f32 OIHW at wei, or as
 * stored in ws) into e->wei's tiles (d->blk[S_WEI]): ours, or oneDNN's
 * reorder (the first call of an entry runs both and keeps oneDNN's if they
 * differ). */
static int s_wino_chunk_weights(lf__cpu_dnnl_t *d, lf__cpu_dnnl_entry_t *e, const lf__cpu_wsrc_t *ws,
                                const float **wei, int64_t o0) {
    lf__cpu_wino_t *w = e->wino;
    const lf_tensor_t *t = ws->t;
    const size_t per_o = (size_t)w->c * 9;
    /* The stored weight read directly (no f32 copy of it made first) where
     * the AVX-512 form reads its type. */
    if (w->own && w->checked && d->wino_avx512 && lf_tensor_is_contiguous(t) &&
        (t->type == LF_TYPE_F32 || t->type == LF_TYPE_F16 || t->type == LF_TYPE_BF16)) {
        s_wino_weights(d, (const char *)t->data + (size_t)o0 * per_o * lf_type_size(t->type), t->type, d->blk[S_WEI],
                       w->c, w->oc, w->ic2, w->oc2);
        return 0;
    }
    if (!*wei && !(*wei = ws->make(ws->arg))) return LF_ENOMEM;
    const float *wc = *wei + (size_t)o0 * per_o;
    if (w->own && w->checked) {
        s_wino_weights(d, wc, LF_TYPE_F32, d->blk[S_WEI], w->c, w->oc, w->ic2, w->oc2);
        return 0;
    }
    dnnl_memory_set_data_handle(e->user[S_WEI], (void *)wc);
    dnnl_memory_set_data_handle(e->wei, d->blk[S_WEI]);
    dnnl_exec_arg_t wargs[3] = {{DNNL_ARG_FROM, e->user[S_WEI]}, {DNNL_ARG_TO, e->wei}, {DNNL_ARG_SCRATCHPAD, w->wscratch}};
    if (w->wscratch) dnnl_memory_set_data_handle(w->wscratch, d->scratch);
    if (dnnl_primitive_execute(e->reorder[S_WEI], d->stream, w->wscratch ? 3 : 2, wargs) || dnnl_stream_wait(d->stream))
        return LF_EINTERNAL;
    if (w->own && !w->checked) {
        /* Ours against oneDNN's once: a layout or constant it changed
         * would show here, and the entry keeps oneDNN's transform. */
        const size_t nw = (size_t)36 * w->c * w->oc;
        float *mine = malloc(nw * sizeof *mine);
        if (!mine) return LF_ENOMEM;
        s_wino_weights(d, wc, LF_TYPE_F32, mine, w->c, w->oc, w->ic2, w->oc2);
        float *ref = d->blk[S_WEI];
        float diff = 0, max = 0;
        for (size_t i = 0; i < nw; i++) diff = fmaxf(diff, fabsf(mine[i] - ref[i])), max = fmaxf(max, fabsf(ref[i]));
        w->checked = true;
        w->own = diff <= 1e-5f * max;
        /* Kept: ours from the first call on, so every call gives the same bits. */
        if (w->own) memcpy(ref, mine, nw * sizeof *mine);
        free(mine);
        if (!w->own)
            lf_log(LF_LOG_WARN, "cpu: Winograd weight transform differs from oneDNN's (%g of %g): oneDNN's kept",
                   (double)diff, (double)max);
    }
    return 0;
}

int lf__cpu_wino_run(lf__cpu_dnnl_t *d, lf__cpu_dnnl_entry_t *e, const float *src, const lf__cpu_wsrc_t *ws,
                     const void *bias, float *dst) {
    lf__cpu_wino_t *w = e->wino;
    const float *wei = NULL; /* the f32 OIHW copy (ws->make), made only where needed */
    dnnl_memory_set_data_handle(e->wei, d->blk[S_WEI]);
    dnnl_memory_set_data_handle(e->dst, d->blk[S_DST]);
    dnnl_exec_arg_t args[5] = {{DNNL_ARG_SRC, e->src}, {DNNL_ARG_WEIGHTS, e->wei}, {DNNL_ARG_DST, e->dst}};
    int nargs = 3;
    if (e->bias) args[nargs++] = (dnnl_exec_arg_t){DNNL_ARG_BIAS, e->bias};
    if (e->scratch) {
        dnnl_memory_set_data_handle(e->scratch, d->scratch);
        args[nargs++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, e->scratch};
    }
    /* With a profile attached, the weight transform and the layout reorders
     * are reported as parts of the node, each waited for (lf__cpu_dnnl_part). */
    const bool prof = d->prof != NULL;
    double t = prof ? lf__cpu_dnnl_now() : 0;
    for (int64_t o0 = 0; o0 < w->o; o0 += w->oc) {
        int rc = s_wino_chunk_weights(d, e, ws, &wei, o0);
        if (rc) return rc;
        lf__cpu_dnnl_part(d, "wino weights", &t);
        if (d->omp_set_num_threads) d->omp_set_num_threads(d->n_threads);
        if (e->bias) dnnl_memory_set_data_handle(e->bias, (void *)((const float *)bias + o0));
        for (int64_t i = 0; i < w->n; i += w->nb)
            for (int64_t r0 = 0; r0 < w->h; r0 += w->rows) {
                const int v = w->rows == w->h           ? S_WINO_ONE
                              : r0 == 0                 ? S_WINO_TOP
                              : r0 + w->rows == w->h    ? S_WINO_BOTTOM
                                                        : S_WINO_MID;
                float *blk = (float *)d->blk[S_SRC] + (w->keep_src ? (size_t)i * w->src_bytes / sizeof(float) : 0);
                const bool fill = !w->keep_src || o0 == 0;
                for (int64_t k = 0; fill && k < w->nb; k++) {
                    float *bk = blk + (size_t)k * w->src_bytes / sizeof(float);
                    if (v == S_WINO_TOP || v == S_WINO_ONE) s_wino_zero_row(bk, w, 0);
                    if (v == S_WINO_BOTTOM || v == S_WINO_ONE) s_wino_zero_row(bk, w, w->rows + 1);
                }
                const int64_t first = v == S_WINO_TOP || v == S_WINO_ONE ? r0 : r0 - 1;
                dnnl_memory_set_data_handle(w->src_user[v], (void *)(src + (i * w->c * w->h + first) * w->w));
                dnnl_memory_set_data_handle(w->src_blk[v], blk);
                dnnl_memory_set_data_handle(e->src, blk);
                dnnl_exec_arg_t sargs[2] = {{DNNL_ARG_FROM, w->src_user[v]}, {DNNL_ARG_TO, w->src_blk[v]}};
                dnnl_memory_set_data_handle(e->user[S_DST], dst + ((i * w->o + o0) * w->h + r0) * w->w);
                dnnl_exec_arg_t dargs[2] = {{DNNL_ARG_FROM, e->dst}, {DNNL_ARG_TO, e->user[S_DST]}};
                if (prof) {
                    t = lf__cpu_dnnl_now();
                    if ((fill && dnnl_primitive_execute(w->src_reorder[v], d->stream, 2, sargs)) ||
                        dnnl_stream_wait(d->stream))
                        return LF_EINTERNAL;
                    if (fill) lf__cpu_dnnl_part(d, "reorder src", &t);
                    if (dnnl_primitive_execute(e->prim, d->stream, nargs, args) || dnnl_stream_wait(d->stream))
                        return LF_EINTERNAL;
                    t = lf__cpu_dnnl_now();
                    if (dnnl_primitive_execute(e->reorder[S_DST], d->stream, 2, dargs) || dnnl_stream_wait(d->stream))
                        return LF_EINTERNAL;
                    lf__cpu_dnnl_part(d, "reorder dst", &t);
                    continue;
                }
                if ((fill && dnnl_primitive_execute(w->src_reorder[v], d->stream, 2, sargs)) ||
                    dnnl_primitive_execute(e->prim, d->stream, nargs, args) ||
                    dnnl_primitive_execute(e->reorder[S_DST], d->stream, 2, dargs) || dnnl_stream_wait(d->stream))
                    return LF_EINTERNAL;
            }
    }
    return 0;
}
