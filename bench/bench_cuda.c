/* bench_cuda: the CUDA backend's hot ops at real UNet / DiT shapes, each in
 * the f32 precision (the reference: f32 operands, 16-bit weights widened),
 * in f32 with LF_CUDA_TF32=1 (a second backend) and in the precision auto
 * (bf16 tensor cores on sm_80+, f16 on sm_70/75), side by side in one run,
 * with each result's largest error against the f32 one
 * (|x - ref| / (1 + |ref|)), so speed and its cost in accuracy come from
 * the same run.
 *
 *   matmul     SD1.5's linear layers, CFG batch 2 (f16 weights, as
 *              checkpoints hold them)
 *   conv2d     3x3 at 64x64x320, 32x32x640 and 8x8x1280, batch 2, f16 weights
 *   attention  fused: SD1.5 4096 x 40 (8 heads), 1024 x 80, 256 x 160, SDXL
 *              4096 x 64 (10 heads), Flux 4608 x 128 (24 heads); batch 2
 *              except Flux
 *
 * Usage: bench_cuda [--reps R] [--only matmul|conv|attention]. Times are the
 * mean of R launches between two synchronisations (the stream is busy the
 * whole time), after one warm-up. Without a CUDA device (or a build without
 * CUDA) it says so and exits 0. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lf_backend.h"
#include "lf_ops.h"

static int g_reps = 20;

static double s_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* A host tensor of uniform values in [-amp, amp) stored as type. */
static lf_tensor_t s_host_rand(lf_type_t type, int64_t n0, int64_t n1, int64_t n2, int64_t n3, float amp) {
    lf_tensor_t t = lf_tensor_4d(type, n0, n1, n2, n3, NULL);
    size_t n = (size_t)lf_tensor_nelements(&t);
    float *f = malloc(n * sizeof *f);
    uint32_t x = 12345u + (uint32_t)n;
    for (size_t i = 0; i < n; i++) {
        x = x * 1664525u + 1013904223u;
        f[i] = amp * ((float)((x >> 8) & 0xFFFF) / 32768.0f - 1.0f);
    }
    t.data = malloc(n * lf_type_size(type));
    lf_type_from_f32(type, f, t.data, (int64_t)n);
    free(f);
    return t;
}

typedef struct {
    lf_backend_t *be;
    lf_buffer_t *bufs[LF_MAX_SRC + 1];
    lf_tensor_t src[LF_MAX_SRC], dst;
    lf_node_t node;
} s_dev_op_t;

/* Places node's host sources on be and a dst of the inferred shape. 0 or an error. */
static int s_dev_op(lf_backend_t *be, const lf_node_t *hn, s_dev_op_t *op) {
    memset(op, 0, sizeof *op);
    op->be = be;
    op->node = *hn;
    for (int i = 0; i < LF_MAX_SRC; i++) {
        if (!hn->src[i]) continue;
        op->src[i] = *hn->src[i];
        size_t nb = lf_tensor_nbytes(&op->src[i]);
        int rc = lf_backend_buffer_alloc(be, nb, LF_BUFFER_WEIGHTS, &op->bufs[i]);
        if (rc) return rc;
        op->src[i].data = op->bufs[i]->base;
        if ((rc = lf_backend_tensor_set(be, &op->src[i], hn->src[i]->data, nb))) return rc;
        op->node.src[i] = &op->src[i];
    }
    int64_t ne[4];
    lf_type_t type = LF_TYPE_F32;
    int rc = lf_node_infer(hn, ne, &type);
    if (rc) return rc;
    op->dst = lf_tensor_4d(type, ne[0], ne[1], ne[2], ne[3], NULL);
    if ((rc = lf_backend_buffer_alloc(be, lf_tensor_nbytes(&op->dst), LF_BUFFER_WEIGHTS, &op->bufs[LF_MAX_SRC])))
        return rc;
    op->dst.data = op->bufs[LF_MAX_SRC]->base;
    op->node.dst = &op->dst;
    return lf_backend_supports_op(be, &op->node) ? 0 : -1;
}

static void s_dev_op_free(s_dev_op_t *op) {
    for (int i = 0; i <= LF_MAX_SRC; i++) lf_backend_buffer_free(&op->bufs[i]);
}

/* Mean seconds per run of op on its backend in precision p; the result
 * downloaded into out (host f32, may be NULL). Negative on failure. */
static double s_time(s_dev_op_t *op, lf_precision_t p, float *out) {
    lf_backend_set_precision(op->be, p);
    if (lf_op_run(op->be, &op->node) || lf_backend_sync(op->be)) return -1;
    double t0 = s_now();
    for (int r = 0; r < g_reps; r++)
        if (lf_op_run(op->be, &op->node)) return -1;
    if (lf_backend_sync(op->be)) return -1;
    double t = (s_now() - t0) / g_reps;
    if (out && lf_backend_tensor_get(op->be, &op->dst, out, lf_tensor_nbytes(&op->dst))) return -1;
    lf_backend_set_precision(op->be, LF_PRECISION_F32);
    return t;
}

static double s_maxerr(const float *x, const float *ref, size_t n) {
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)x[i] - ref[i]) / (1.0 + fabs(ref[i]));
        if (!(e <= worst)) worst = isnan(e) ? INFINITY : e;
    }
    return worst;
}

/* One line: the op in f32, f32 + TF32 and auto, with GFLOP/s and errors. */
static void s_bench(lf_backend_t *be, lf_backend_t *tf32, const char *what, const lf_node_t *hn, double flops) {
    s_dev_op_t op, opt;
    memset(&opt, 0, sizeof opt);
    if (s_dev_op(be, hn, &op) || s_dev_op(tf32, hn, &opt)) {
        printf("  %-34s cannot run: %s\n", what, lf_backend_errstr(be));
        s_dev_op_free(&op), s_dev_op_free(&opt);
        return;
    }
    size_t n = (size_t)lf_tensor_nelements(&op.dst);
    float *ref = malloc(n * sizeof *ref), *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y);
    double t32 = s_time(&op, LF_PRECISION_F32, ref);
    double ttf = s_time(&opt, LF_PRECISION_F32, x);
    lf_backend_set_precision(be, LF_PRECISION_AUTO);
    const char *in = lf_precision_name(lf_backend_precision(be));
    double t16 = s_time(&op, LF_PRECISION_AUTO, y);
    if (t32 <= 0 || ttf <= 0 || t16 <= 0) {
        printf("  %-34s failed: %s\n", what, lf_backend_errstr(be));
    } else {
        printf("  %-34s f32 %8.3f ms (%6.1f TFLOP/s) | tf32 %8.3f ms (%6.1f, err %.1e) | %s %8.3f ms (%6.1f, "
               "err %.1e) | f32/%s %.2fx\n",
               what, t32 * 1e3, flops / t32 * 1e-12, ttf * 1e3, flops / ttf * 1e-12, s_maxerr(x, ref, n), in,
               t16 * 1e3, flops / t16 * 1e-12, s_maxerr(y, ref, n), in, t32 / t16);
    }
    free(ref), free(x), free(y);
    s_dev_op_free(&op), s_dev_op_free(&opt);
}

static lf_node_t s_node(lf_op_t op, const lf_tensor_t *a, const lf_tensor_t *b, const lf_tensor_t *c) {
    lf_node_t n;
    memset(&n, 0, sizeof n);
    n.op = op;
    n.src[0] = a, n.src[1] = b, n.src[2] = c;
    return n;
}

static void s_matmul(lf_backend_t *be, lf_backend_t *tf32, int64_t M, int64_t K, int64_t N) {
    lf_tensor_t a = s_host_rand(LF_TYPE_F32, K, M, 1, 2, 1.0f), w = s_host_rand(LF_TYPE_F16, K, N, 1, 1, 0.05f);
    lf_tensor_t b = s_host_rand(LF_TYPE_F32, N, 1, 1, 1, 0.1f);
    lf_node_t n = s_node(LF_OP_MATMUL, &a, &w, &b);
    char what[64];
    snprintf(what, sizeof what, "matmul %lldx%lld . %lldx%lld x2", (long long)M, (long long)K, (long long)K,
             (long long)N);
    s_bench(be, tf32, what, &n, 2.0 * 2 * (double)M * (double)K * (double)N);
    free(a.data), free(w.data), free(b.data);
}

static void s_conv(lf_backend_t *be, lf_backend_t *tf32, int64_t S, int64_t C) {
    lf_tensor_t x = s_host_rand(LF_TYPE_F32, S, S, C, 2, 1.0f), w = s_host_rand(LF_TYPE_F16, 3, 3, C, C, 0.02f);
    lf_tensor_t b = s_host_rand(LF_TYPE_F32, C, 1, 1, 1, 0.1f);
    lf_node_t n = s_node(LF_OP_CONV2D, &x, &w, &b);
    n.p.conv2d.stride = 1, n.p.conv2d.pad = 1;
    char what[64];
    snprintf(what, sizeof what, "conv2d 3x3 %lldx%lldx%lld x2", (long long)S, (long long)S, (long long)C);
    s_bench(be, tf32, what, &n, 2.0 * 2 * (double)(S * S) * (double)C * (double)(C * 9));
    free(x.data), free(w.data), free(b.data);
}

static void s_attention(lf_backend_t *be, lf_backend_t *tf32, const char *model, int64_t N, int64_t D, int64_t H,
                        int64_t B) {
    lf_tensor_t q = s_host_rand(LF_TYPE_F32, D, N, H, B, 1.0f), k = s_host_rand(LF_TYPE_F32, D, N, H, B, 1.0f);
    lf_tensor_t v = s_host_rand(LF_TYPE_F32, D, N, H, B, 1.0f);
    lf_node_t n = s_node(LF_OP_ATTENTION, &q, &k, &v);
    n.p.attention.scale = 1.0f / sqrtf((float)D);
    char what[64];
    snprintf(what, sizeof what, "attention %s %lld x %lld, %lld heads x%lld", model, (long long)N, (long long)D,
             (long long)H, (long long)B);
    s_bench(be, tf32, what, &n, 4.0 * (double)N * (double)N * (double)D * (double)(H * B));
    free(q.data), free(k.data), free(v.data);
}

int main(int argc, char **argv) {
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--reps") && i + 1 < argc) g_reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--only") && i + 1 < argc) only = argv[++i];
        else {
            fprintf(stderr, "usage: bench_cuda [--reps R] [--only matmul|conv|attention]\n");
            return 2;
        }
    }
    if (g_reps < 1) g_reps = 1;
    if (!lf_backend_cuda_available()) {
        printf("bench_cuda: no CUDA device (or a build without CUDA): nothing to measure\n");
        return 0;
    }
    lf_backend_t *be = lf_backend_cuda_new(0, (size_t)256 << 20);
    setenv("LF_CUDA_TF32", "1", 1);
    lf_backend_t *tf32 = lf_backend_cuda_new(0, (size_t)256 << 20);
    unsetenv("LF_CUDA_TF32");
    if (!be || !tf32) {
        fprintf(stderr, "bench_cuda: cannot start the CUDA backend\n");
        lf_backend_destroy(&be), lf_backend_destroy(&tf32);
        return 1;
    }
    printf("%s; auto = %s; mean of %d runs\n", lf_backend_describe(be),
           lf_precision_name(lf_backend_cuda_precision(0, LF_PRECISION_AUTO)), g_reps);
    if (!only || !strcmp(only, "matmul")) {
        s_matmul(be, tf32, 4096, 320, 320);
        s_matmul(be, tf32, 4096, 320, 2560);
        s_matmul(be, tf32, 1024, 640, 5120);
        s_matmul(be, tf32, 256, 1280, 10240);
        s_matmul(be, tf32, 77, 768, 320);
    }
    if (!only || !strcmp(only, "conv")) {
        s_conv(be, tf32, 64, 320);
        s_conv(be, tf32, 32, 640);
        s_conv(be, tf32, 8, 1280);
    }
    if (!only || !strcmp(only, "attention")) {
        s_attention(be, tf32, "SD1.5", 4096, 40, 8, 2);
        s_attention(be, tf32, "SD1.5", 1024, 80, 8, 2);
        s_attention(be, tf32, "SD1.5", 256, 160, 8, 2);
        s_attention(be, tf32, "SDXL", 4096, 64, 10, 2);
        s_attention(be, tf32, "Flux", 4608, 128, 24, 1);
    }
    lf_backend_destroy(&tf32);
    lf_backend_destroy(&be);
    return 0;
}
