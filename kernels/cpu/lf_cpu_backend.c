/* lf_cpu_backend: the reference backend. Host memory, OpenBLAS for matrix
 * products, a small pthread pool for the rest, CPU features detected at run
 * time (AVX2, AVX-512, AVX512_BF16). */
#include <cblas.h>
#include <dlfcn.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "lf_cpu_impl.h"
#include "lf_error.h"

static const lf__op_fn s_ops[LF_OP_COUNT] = {
#define LF__CPU_OP_ENTRY(name, nsrc) [LF_OP_##name] = lf__cpu_op_##name,
    LF_OP_LIST(LF__CPU_OP_ENTRY)
#undef LF__CPU_OP_ENTRY
};

float *lf__cpu_scratch(lf__cpu_ctx_t *c, int t, size_t n) {
    if (c->scratch_size[t] < n) {
        size_t want = n < 4096 ? 4096 : n;
        float *p = realloc(c->scratch[t], want * sizeof(float));
        if (!p) return NULL;
        c->scratch[t] = p;
        c->scratch_size[t] = want;
    }
    return c->scratch[t];
}

void *lf__cpu_work(lf__cpu_ctx_t *c, size_t bytes) {
    if (c->work_size < bytes) {
        void *p = realloc(c->work, bytes);
        if (!p) return NULL;
        c->work = p;
        c->work_size = bytes;
    }
    return c->work;
}

void lf__cpu_blas_threads(lf__cpu_ctx_t *c, int n) {
    (void)c;
    openblas_set_num_threads(n);
}

static bool s_is_f32(const lf_tensor_t *t) {
    return t == NULL || t->type == LF_TYPE_F32;
}

static bool s_rows(const lf_tensor_t *t) {
    return t == NULL || lf_tensor_rows_contiguous(t);
}

/* A GEMM operand: rows or columns contiguous. */
static bool s_gemm_operand(const lf_tensor_t *t) {
    size_t es = lf_type_size(t->type);
    return t->nb[0] == es || t->nb[1] == es || t->ne[0] == 1;
}

static bool s_supports_op(lf_backend_t *be, const lf_node_t *n) {
    (void)be;
    const lf_tensor_t *a = n->src[0], *b = n->src[1], *c = n->src[2];
    /* Block-quantized tensors: only where lf_cpu_quant.c takes them. */
    bool quant = lf_type_is_quant(n->dst->type);
    for (int i = 0; i < LF_MAX_SRC; i++) quant |= n->src[i] && lf_type_is_quant(n->src[i]->type);
    if (quant)
        return lf__cpu_quant_supports(n) &&
               (n->op != LF_OP_MATMUL || (s_is_f32(n->dst) && s_rows(n->dst) && s_is_f32(c) && s_rows(c)));
    switch (n->op) {
    case LF_OP_MATMUL:
        return s_is_f32(n->dst) && s_rows(n->dst) && s_gemm_operand(a) && s_gemm_operand(b) &&
               s_is_f32(c) && s_rows(c) && (a->type == LF_TYPE_F32 || lf_tensor_is_contiguous(a)) &&
               (b->type == LF_TYPE_F32 || lf_tensor_is_contiguous(b));
    case LF_OP_CONV2D: /* x f32, or bf16 (a norm's result stored bf16: lf__cpu_reads_bf16) */
        return s_is_f32(n->dst) && lf_tensor_is_contiguous(n->dst) && (s_is_f32(a) || a->type == LF_TYPE_BF16) &&
               lf_tensor_is_contiguous(a) && lf_tensor_is_contiguous(b) && s_is_f32(c) && s_rows(c);
    case LF_OP_ATTENTION:
        for (int i = 0; i < 4; i++)
            if (!s_is_f32(n->src[i]) || !s_rows(n->src[i])) return false;
        return s_is_f32(n->dst) && s_rows(n->dst);
    case LF_OP_TIMESTEP_EMBED:
        return s_is_f32(n->dst) && s_rows(n->dst);
    case LF_OP_ADD_LOWRANK:
        return lf__cpu_lowrank_supports(n);
    case LF_OP_CONCAT:
    case LF_OP_SPLIT:
    case LF_OP_PERMUTE:
    case LF_OP_CPY:
        return true; /* any types, any strides */
    default:
        /* Elementwise, norms, layout: any storage type and strides, with the
         * small parameter vectors (gamma, beta, pe) rows-contiguous. */
        for (int i = 1; i < LF_MAX_SRC; i++)
            if (n->src[i] && !s_rows(n->src[i])) return false;
        return true;
    }
}

/* Post-ops on MATMUL and CONV2D (lf_cpu_gemm.c: in the oneDNN primitive
 * where it has them, else passes after): SiLU and an f32 residual, when
 * fusing is on (LF_CPU_FUSE, with oneDNN). */
static bool s_supports_fused(lf_backend_t *be, const lf_node_t *n) {
    const lf__cpu_ctx_t *c = be->ctx;
    const lf_tensor_t *r = n->src[3];
    return c->fuse_graph && (n->op == LF_OP_MATMUL || n->op == LF_OP_CONV2D) && n->post_act >= 0 && n->post_act <= 1 &&
           (!r || (r->type == LF_TYPE_F32 && s_rows(r)));
}

static int s_buffer_alloc(lf_backend_t *be, size_t size, lf_buffer_usage_t usage, lf_buffer_t *buf) {
    (void)be, (void)usage;
    /* 64-byte alignment for vector loads; round size up as aligned_alloc asks. */
    size_t sz = (size + 63) & ~(size_t)63;
    buf->base = aligned_alloc(64, sz ? sz : 64);
    return buf->base ? 0 : LF_ENOMEM;
}

static void s_buffer_free(lf_backend_t *be, lf_buffer_t *buf) {
    (void)be;
    free(buf->base);
    buf->base = NULL;
}

static void *s_host_alloc(lf_backend_t *be, size_t size) {
    (void)be;
    return malloc(size ? size : 1);
}

static void s_host_free(lf_backend_t *be, void *p) {
    (void)be;
    free(p);
}

static int s_copy(lf_backend_t *be, void *dst, const void *src, size_t n) {
    (void)be;
    memcpy(dst, src, n);
    return 0;
}

static size_t s_workspace_bytes(const lf_backend_t *be) {
    const lf__cpu_ctx_t *c = be->ctx;
    size_t n = c->work_size;
    for (int i = 0; i < 64; i++) n += c->scratch_size[i] * sizeof(float);
    return n;
}

static void s_destroy(lf_backend_t *be) {
    lf__cpu_ctx_t *c = be->ctx;
    if (!c) return;
    lf__cpu_pool_destroy(&c->pool);
#ifdef LF_HAVE_DNNL
    lf__cpu_dnnl_destroy(&c->dnnl);
#endif
    for (int i = 0; i < 64; i++) free(c->scratch[i]);
    free(c->work);
    free(c);
    be->ctx = NULL;
}

static lf_precision_t s_set_precision(lf_backend_t *be, lf_precision_t p) {
    lf__cpu_ctx_t *c = be->ctx;
    bool bf16 = p != LF_PRECISION_F32 && c->dnnl && c->has_avx512_bf16;
    c->compute = bf16 ? LF_TYPE_BF16 : LF_TYPE_F32;
    return bf16 ? LF_PRECISION_BF16 : LF_PRECISION_F32;
}

static void s_forget(lf_backend_t *be, const void *p, size_t n) {
#ifdef LF_HAVE_DNNL
    lf__cpu_ctx_t *c = be->ctx;
    lf__cpu_dnnl_forget(c->dnnl, p, n);
#else
    (void)be, (void)p, (void)n;
#endif
}

static lf_pack_t s_set_pack(lf_backend_t *be, lf_pack_t mode, const char *dir) {
#ifdef LF_HAVE_DNNL
    lf__cpu_ctx_t *c = be->ctx;
    return c->dnnl ? lf__cpu_dnnl_set_pack(c->dnnl, mode, dir) : LF_PACK_OFF;
#else
    (void)be, (void)mode, (void)dir;
    return LF_PACK_OFF;
#endif
}

static lf_pack_t s_pack(const lf_backend_t *be) {
#ifdef LF_HAVE_DNNL
    const lf__cpu_ctx_t *c = be->ctx;
    return c->dnnl ? lf__cpu_dnnl_pack(c->dnnl) : LF_PACK_OFF;
#else
    (void)be;
    return LF_PACK_OFF;
#endif
}

static size_t s_release(lf_backend_t *be, const void *p, size_t n, bool switched_out) {
#ifdef LF_HAVE_DNNL
    lf__cpu_ctx_t *c = be->ctx;
    return lf__cpu_dnnl_release_pages(c->dnnl, p, n, switched_out);
#else
    (void)be, (void)p, (void)n, (void)switched_out;
    return 0;
#endif
}

static size_t s_packed_bytes(const lf_backend_t *be) {
#ifdef LF_HAVE_DNNL
    const lf__cpu_ctx_t *c = be->ctx;
    return lf__cpu_dnnl_packed_bytes(c->dnnl, NULL);
#else
    (void)be;
    return 0;
#endif
}

static void s_set_profile(lf_backend_t *be, struct lf_profile *prof) {
#ifdef LF_HAVE_DNNL
    lf__cpu_ctx_t *c = be->ctx;
    if (c->dnnl) lf__cpu_dnnl_set_profile(c->dnnl, prof);
#else
    (void)be, (void)prof;
#endif
}

static const lf__backend_iface_t s_iface = {
    .name = "cpu",
    .host_memory = true,
    .supports_op = s_supports_op,
    .supports_fused = s_supports_fused,
    .reads_bf16 = lf__cpu_reads_bf16,
    .buffer_alloc = s_buffer_alloc,
    .buffer_free = s_buffer_free,
    .host_alloc = s_host_alloc,
    .host_free = s_host_free,
    .upload = s_copy,
    .download = s_copy,
    .sync = NULL,
    .graph_compute = NULL,
    .workspace_bytes = s_workspace_bytes,
    .set_precision = s_set_precision,
    .forget = s_forget,
    .set_pack = s_set_pack,
    .pack = s_pack,
    .release = s_release,
    .packed_bytes = s_packed_bytes,
    .set_profile = s_set_profile,
    .destroy = s_destroy,
    .ops = s_ops,
};

lf_backend_t *lf_backend_cpu_new(int n_threads) {
    if (n_threads <= 0) { /* the cores this process may use (a pinned worker's slice) */
        cpu_set_t set;
        n_threads = sched_getaffinity(0, sizeof set, &set) ? (int)sysconf(_SC_NPROCESSORS_ONLN) : CPU_COUNT(&set);
    }
    if (n_threads < 1) n_threads = 1;
    if (n_threads > 64) n_threads = 64;
    lf__cpu_ctx_t *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->n_threads = n_threads;
    /* LF_PIN_THREADS=1: each helper thread on its own core of this process's
     * mask (docs/PERFORMANCE.md, session 10: measured, so not the default). */
    const char *pin = getenv("LF_PIN_THREADS");
    int cpus[64];
    cpu_set_t allowed;
    bool pinned = pin && !strcmp(pin, "1") && !sched_getaffinity(0, sizeof allowed, &allowed) &&
                  !lf__cpu_pin_plan(&allowed, n_threads, cpus);
    /* LF_CPU_POOL=threads|omp: the backend's own ops on helper threads of
     * their own or on oneDNN's OpenMP team (where libgomp is loaded). The
     * default follows libgomp's wait (lf__cpu_pool_default_kind;
     * docs/PERFORMANCE.md, session 12, h-gap, and session 13): where its
     * threads spin between regions (libgomp's default, or a GOMP_SPINCOUNT
     * above 0: what deploy/lightfarm gives workers on cores of their own) a
     * helper of our own competes with a spinning team member for the cores,
     * and the team wins; where they sleep at once (OMP_WAIT_POLICY=PASSIVE:
     * workers that share cores) each region waits at its barrier for the
     * member to wake, and our pool, whose late wakers skip a job the caller
     * already finished, is 4-6 % faster on the built-in model. */
    lf__cpu_pool_kind_t kind =
        lf__cpu_pool_default_kind(getenv("LF_CPU_POOL"), getenv("OMP_WAIT_POLICY"), getenv("GOMP_SPINCOUNT"));
    c->pool = lf__cpu_pool_new_kind(n_threads, pinned ? cpus : NULL, kind);
    __builtin_cpu_init();
    c->has_avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    c->has_avx512 = __builtin_cpu_supports("avx512f");
    /* GCC 12 has no __builtin_cpu_supports("avx512bf16"): ask CPUID leaf 7.1. */
    {
        unsigned eax = 7, ebx = 0, ecx = 1, edx = 0;
        __asm__ volatile("cpuid" : "+a"(eax), "=b"(ebx), "+c"(ecx), "=d"(edx));
        c->has_avx512_bf16 = c->has_avx512 && (eax & (1u << 5));
    }
    if (getenv("LF_CPU_NO_BF16")) c->has_avx512_bf16 = false;
    if (c->has_avx512_bf16) c->sbgemm = (lf__sbgemm_fn)dlsym(RTLD_DEFAULT, "cblas_sbgemm");
    /* LF_CPU_SIMD=avx2|scalar caps the vector level (tests cover each form). */
    const char *simd = getenv("LF_CPU_SIMD");
    bool cap512 = simd && (!strcmp(simd, "avx2") || !strcmp(simd, "scalar"));
    bool cap2 = simd && !strcmp(simd, "scalar");
    lf__cpu_simd_init(&c->simd, c->has_avx512 && !cap512, c->has_avx2 && !cap2);
    lf__cpu_simd_bf16(&c->simd, c->has_avx512_bf16);
    /* bf16 activations between norms and products, on unless
     * LF_CPU_BF16_ACT=0: same bytes; the bf16 step at 2 threads 0.955x
     * (ten alternated pairs), level within the noise at 1 thread
     * (docs/PERFORMANCE.md, session 13). */
    const char *act = getenv("LF_CPU_BF16_ACT");
    c->bf16_act = !act || strcmp(act, "0") != 0;
    const char *attn = getenv("LF_CPU_ATTN");
    c->attn_bf16 = !attn || strcmp(attn, "f32") != 0; /* sgemm: the f32 form only */
    /* The register-blocked f32 form is opt-in (LF_CPU_ATTN=blocked) until the
     * built-in model's bf16-vs-f32 pipeline check is settled for it
     * (docs/PERFORMANCE.md, session 10). */
    c->attn_sgemm = !attn || strcmp(attn, "blocked") != 0;
    c->attn_dpbf16 = c->has_avx512_bf16 && !cap512;
#ifdef LF_HAVE_DNNL
    const char *conv = getenv("LF_CPU_CONV");
    if (!conv || strcmp(conv, "im2col") != 0) c->dnnl = lf__cpu_dnnl_new(n_threads);
    if (c->dnnl) lf__cpu_dnnl_set_pool(c->dnnl, c->pool);
    const char *mm = getenv("LF_CPU_MATMUL");
    c->mm_dnnl = mm ? !strcmp(mm, "dnnl") : true;
    const char *fuse = getenv("LF_CPU_FUSE");
    c->fuse = !fuse || strcmp(fuse, "0") != 0;
    c->fuse_graph = c->fuse && (!fuse || strcmp(fuse, "bias") != 0);
#endif
    const char *pi = getenv("LF_CPU_PER_IMAGE");
    c->per_image = pi && !strcmp(pi, "1");
    c->compute = LF_TYPE_F32;
    lf_backend_t *be = c->pool ? lf__backend_new(&s_iface, c) : NULL;
    if (!be) {
        lf__cpu_pool_destroy(&c->pool);
        free(c);
        return NULL;
    }
    lf__cpu_blas_threads(c, n_threads);
    char pins[96] = "not pinned";
    if (pinned) { /* "pinned to cores 0-3,8": runs of consecutive cores */
        int len = snprintf(pins, sizeof pins, "pinned to cores ");
        for (int i = 0, j; i < n_threads && len < (int)sizeof pins; i = j) {
            for (j = i + 1; j < n_threads && cpus[j] == cpus[j - 1] + 1;) j++;
            len += j - i > 1 ? snprintf(pins + len, sizeof pins - (size_t)len, "%s%d-%d", i ? "," : "", cpus[i], cpus[j - 1])
                             : snprintf(pins + len, sizeof pins - (size_t)len, "%s%d", i ? "," : "", cpus[i]);
        }
    }
    snprintf(be->describe, sizeof be->describe,
             "cpu: %d threads (%s), pool %s, simd %s, avx512_bf16 %s, sbgemm %s, conv %s, linear %s, bf16 "
             "compute %s; OpenBLAS core %s (%s)",
             n_threads, pins, lf__cpu_pool_kind(c->pool) == LF__CPU_POOL_OMP ? "OpenMP" : "threads",
             c->simd.name, c->has_avx512_bf16 ? "yes" : "no", c->sbgemm ? "yes" : "no",
             c->dnnl ? "oneDNN" : "im2col+sgemm", c->dnnl && c->mm_dnnl ? "oneDNN" : "sgemm",
             c->dnnl && c->has_avx512_bf16 ? "available" : "no", openblas_get_corename(),
             openblas_get_config());
    return be;
}
