/* lf_cpu_quant: MATMUL with a block-quantized weight (lf_tensor.h's Q types)
 * on the CPU, without widening the whole matrix.
 *
 * The weight's rows are dequantized a tile at a time (lf_quant, vector forms
 * picked at run time; the rows of a tile are spread over the backend's
 * threads) into the backend's work buffer, and each tile is one
 * cblas_sgemm against all of the activations (OpenBLAS with the backend's
 * thread count). A tile is about LF_CPU_QUANT_TILE bytes of f32: large
 * enough that OpenBLAS's repacking of the activations per call stays small
 * beside the product (docs/PERFORMANCE.md, "GGUF quantized weights"), small
 * enough to stay a few MiB next to a 100+ MiB f32 matrix. */
#include <cblas.h>
#include <string.h>

#include "../lf_quant.h"
#include "lf_cpu_impl.h"
#include "lf_error.h"

#define LF_CPU_QUANT_TILE ((size_t)4 << 20)
#define S_ROWS_PER_TASK 16
/* Weights below which a tile is dequantized on the calling thread: ~0.1 ms
 * of work, less than waking the pool costs on a busy machine (the built-in
 * model's 32-256-wide layers ran 1.5x slower than f16 with every tile spread). */
#define S_SMALL_TILE ((int64_t)1 << 18)

typedef struct {
    lf_quant_type_t q;
    const char *w;  /* first row of the tile */
    size_t row_nb;  /* bytes between rows */
    int64_t k, nr;  /* row length, rows in the tile */
    float *tile;    /* nr rows of k */
    lf_quant_simd_t level;
} s_tile_job_t;

static void s_dequant_task(void *arg, int64_t task, int thread) {
    (void)thread;
    const s_tile_job_t *j = arg;
    int64_t r1 = (task + 1) * S_ROWS_PER_TASK;
    if (r1 > j->nr) r1 = j->nr;
    for (int64_t r = task * S_ROWS_PER_TASK; r < r1; r++)
        lf_quant_dequantize_at(j->q, j->w + (size_t)r * j->row_nb, j->tile + r * j->k, j->k, j->level);
}

bool lf__cpu_quant_supports(const lf_node_t *n) {
    const lf_tensor_t *a = n->src[0], *b = n->src[1];
    switch (n->op) {
    case LF_OP_MATMUL:
        /* Quantized weight (whole rows, as stored), activations in rows. */
        return !lf_type_is_quant(a->type) && lf_type_is_quant(b->type) && lf_tensor_rows_contiguous(b) &&
               b->nb[1] >= lf_type_row_bytes(b->type, b->ne[0]) && lf_tensor_rows_contiguous(a) &&
               (a->type == LF_TYPE_F32 || lf_tensor_is_contiguous(a));
    case LF_OP_CPY:
        /* To or from f32/f16/bf16, same shape, rows whole. */
        return lf_tensor_same_shape(a, n->dst) && lf_tensor_rows_contiguous(a) &&
               lf_tensor_rows_contiguous(n->dst) &&
               !(lf_type_is_quant(a->type) && lf_type_is_quant(n->dst->type) && a->type != n->dst->type) &&
               (!lf_type_is_quant(n->dst->type) ||
                lf_quant_can_quantize((lf_quant_type_t)(n->dst->type - LF_TYPE_Q4_0)));
    default: return false;
    }
}

int lf__cpu_matmul_quant(lf_backend_t *be, const lf_node_t *node) {
    lf__cpu_ctx_t *cpu = be->ctx;
    const lf_tensor_t *a = node->src[0], *b = node->src[1], *bias = node->src[2];
    lf_tensor_t *d = node->dst;
    int64_t K = a->ne[0], M = a->ne[1], N = b->ne[1];
    int64_t T = (int64_t)(LF_CPU_QUANT_TILE / ((size_t)K * sizeof(float)));
    T = T < S_ROWS_PER_TASK ? S_ROWS_PER_TASK : T / S_ROWS_PER_TASK * S_ROWS_PER_TASK;
    if (T > N) T = N;
    size_t a_conv = a->type == LF_TYPE_F32 ? 0 : (size_t)lf_tensor_nelements(a) * sizeof(float);
    char *work = lf__cpu_work(cpu, a_conv + (size_t)(T * K) * sizeof(float) + 64);
    if (!work) return LF_ENOMEM;
    lf_tensor_t A = *a;
    if (a_conv) { /* contiguous (supports_op) */
        A = lf_tensor_make(LF_TYPE_F32, 4, a->ne, work);
        lf_type_to_f32(a->type, a->data, A.data, lf_tensor_nelements(a));
    }
    s_tile_job_t j = {.q = (lf_quant_type_t)(b->type - LF_TYPE_Q4_0), .row_nb = b->nb[1], .k = K,
                      .tile = (float *)(work + a_conv), .level = lf_quant_simd_detect()};
    blasint lda = (blasint)(M == 1 ? K : (int64_t)(A.nb[1] / 4));
    blasint ldc = (blasint)(M == 1 ? N : (int64_t)(d->nb[1] / 4));
    lf__cpu_blas_threads(cpu, cpu->n_threads);
    for (int64_t i3 = 0; i3 < d->ne[3]; i3++)
        for (int64_t i2 = 0; i2 < d->ne[2]; i2++) {
            const float *pa =
                (const float *)((const char *)A.data + i2 * (int64_t)A.nb[2] + i3 * (int64_t)A.nb[3]);
            const char *pb = (const char *)b->data + (b->ne[2] == 1 ? 0 : i2 * (int64_t)b->nb[2]) +
                             (b->ne[3] == 1 ? 0 : i3 * (int64_t)b->nb[3]);
            float *pc = (float *)((char *)d->data + i2 * (int64_t)d->nb[2] + i3 * (int64_t)d->nb[3]);
            for (int64_t n0 = 0; n0 < N; n0 += T) {
                j.nr = N - n0 < T ? N - n0 : T;
                j.w = pb + (size_t)n0 * b->nb[1];
                int64_t tasks = (j.nr + S_ROWS_PER_TASK - 1) / S_ROWS_PER_TASK;
                if (j.nr * K <= S_SMALL_TILE) { /* waking the workers costs more */
                    for (int64_t t = 0; t < tasks; t++) s_dequant_task(&j, t, 0);
                } else {
                    lf__cpu_pool_run(cpu->pool, tasks, s_dequant_task, &j);
                }
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)M, (blasint)j.nr, (blasint)K, 1.0f,
                            pa, lda, j.tile, (blasint)K, 0.0f, pc + n0, ldc);
            }
            if (bias) {
                const float *bv = bias->data; /* f32, rows-contiguous (supports_op) */
                for (int64_t i = 0; i < M; i++)
                    for (int64_t c = 0; c < N; c++) pc[i * ldc + c] += bv[c];
            }
        }
    return 0;
}
