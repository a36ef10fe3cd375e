/* Tests of lf_lora_patch: LoRA sets merged into a pool's weights and
 * restored. The expected ΔW are the reference fixtures of
 * tests/reference/make_lora_fixtures.py (lycoris-lora's functional math and
 * PEFT's get_delta_weight in float64, over the tiny model's layers); the
 * weights are random numbers the test puts in a pool, so every merged value
 * is checked against W0 + Σ weight · ΔW_expected computed here in double.
 * With the argument "cuda" the same tests run with the pool on the CUDA
 * backend (ctest test_engine_lora_patch_cuda, label gpu; exit 77 without a
 * device): the merge reads and writes the weights through the backend. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "lf_backend.h"
#include "lf_error.h"
#include "lf_lora_patch.h"
#include "lf_lora_targets.h"
#include "lf_pool.h"
#include "lf_test_util.h"
#include "lf_weights.h"

/* The tiny model of make_lora_fixtures.py (as in test_lora.c). */
static const lf_unet_config_t TINY_UNET = {
    .in_ch = 4, .out_ch = 4, .levels = 2, .layers = 1, .ch = {8, 16}, .attn = {1, 0},
    .up_attn = {0, 1}, .heads = {2, 2}, .mid_attn = 1, .mid_heads = 2, .groups = 4,
    .eps = 1e-5f, .ctx_dim = 12, .linear_proj = 0, .temb_in = 8, .temb_dim = 16,
};
static const lf_clip_config_t TINY_CLIP = {
    .vocab = 100, .hidden = 8, .layers = 2, .heads = 2, .inter = 16, .max_pos = 77,
};

/* A pool holding every target (and bias) of the tiny model in one type,
 * filled with seeded uniform numbers in [-1, 1), and a host copy of its
 * bytes. */
typedef struct {
    lf_backend_t *be;
    lf_pool_t *pool;
    lf_lora_targets_t *t;
    lf_type_t type;
    size_t n;
    lf_tensor_t **ts;
    void **orig;
} ctx_t;

static uint64_t s_lcg(uint64_t *s)
{
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return *s >> 11;
}

static void s_add(ctx_t *c, const char *name, int ndim, const int64_t *shape, uint64_t *seed)
{
    int64_t ne[4] = {1, 1, 1, 1};
    for (int d = 0; d < ndim; d++) ne[d] = shape[ndim - 1 - d]; /* innermost first */
    lf_tensor_t *t = lf_pool_tensor(c->pool, name, c->type, ndim, ne);
    assert_non_null(t);
    int64_t n = lf_tensor_nelements(t);
    float *f = malloc((size_t)n * sizeof *f);
    for (int64_t i = 0; i < n; i++) f[i] = (float)((double)s_lcg(seed) / (1ULL << 53) * 2 - 1);
    size_t nb = lf_tensor_nbytes(t);
    void *b = malloc(nb);
    lf_type_from_f32(c->type, f, b, n);
    assert_int_equal(lf_backend_tensor_set(c->be, t, b, nb), 0);
    c->ts = realloc(c->ts, (c->n + 1) * sizeof *c->ts);
    c->orig = realloc(c->orig, (c->n + 1) * sizeof *c->orig);
    c->ts[c->n] = t;
    c->orig[c->n++] = b;
    free(f);
}

static int s_cuda; /* run on the CUDA backend */

static ctx_t *s_ctx(lf_type_t type)
{
    ctx_t *c = calloc(1, sizeof *c);
    c->type = type;
    c->be = s_cuda ? lf_backend_cuda_new(0, 0) : lf_backend_cpu_new(1);
    assert_non_null(c->be);
    c->pool = lf_pool_new(c->be, 0);
    c->t = lf_lora_targets_new();
    assert_int_equal(lf_lora_targets_add_unet(c->t, &TINY_UNET), 0);
    assert_int_equal(lf_lora_targets_add_clip(c->t, &TINY_CLIP, "clip.", "lora_te_", "text_encoder."), 0);
    uint64_t seed = 1234;
    for (size_t i = 0; i < lf_lora_targets_count(c->t); i++) {
        const lf_lora_target_t *g = lf_lora_targets_at(c->t, i);
        s_add(c, g->name, g->ndim, g->shape, &seed);
        if (g->bias[0]) s_add(c, g->bias, 1, g->shape, &seed);
    }
    return c;
}

static void s_ctx_free(ctx_t *c)
{
    for (size_t i = 0; i < c->n; i++) free(c->orig[i]);
    free(c->orig);
    free(c->ts);
    lf_lora_targets_destroy(&c->t);
    lf_pool_destroy(&c->pool);
    lf_backend_destroy(&c->be);
    free(c);
}

/* Every tensor's bytes equal the originals. */
static void s_assert_plain(const ctx_t *c)
{
    for (size_t i = 0; i < c->n; i++) {
        size_t nb = lf_tensor_nbytes(c->ts[i]);
        void *b = malloc(nb);
        assert_int_equal(lf_backend_tensor_get(c->be, c->ts[i], b, nb), 0);
        if (memcmp(b, c->orig[i], nb) != 0) fail_msg("%s differs from the plain model", c->ts[i]->name);
        free(b);
    }
}

static const char *s_fix(char *buf, size_t len, const char *name, const char *suffix)
{
    char rel[128];
    snprintf(rel, sizeof rel, "lora/%s%s.safetensors", name, suffix);
    return lf_test_fixture(buf, len, rel);
}

typedef struct {
    const char *fixture;
    double unet, te;
} use_t;

/* Applies uses[0..n) and checks every tensor: those an expected file names
 * equal W0 + Σ w · ΔW (to tol of the largest |value|, after rounding to the
 * storage type), all others are untouched. Returns the info's layer count. */
static size_t s_apply_check(ctx_t *c, lf_lora_patch_t *p, const use_t *uses, size_t n, double tol)
{
    char paths[8][1024], err[512] = "";
    lf_lora_use_t u[8];
    for (size_t k = 0; k < n; k++) {
        u[k] = (lf_lora_use_t){.path = s_fix(paths[k], sizeof paths[k], uses[k].fixture, ""),
                               .name = uses[k].fixture, .unet_weight = uses[k].unet,
                               .te_weight = uses[k].te};
    }
    lf_lora_patch_info_t info;
    int rc = lf_lora_patch_set(p, u, n, &info, err, sizeof err);
    if (rc) fail_msg("set: %s (%s)", err, lf_strerror(rc));
    assert_int_equal(info.reused, 0);
    free(info.warnings);
    lf_weights_t *ew[8];
    for (size_t k = 0; k < n; k++) {
        char ep[1024];
        assert_int_equal(lf_weights_open(&ew[k], s_fix(ep, sizeof ep, uses[k].fixture, ".expected"), err, sizeof err), 0);
    }
    size_t changed = 0;
    for (size_t i = 0; i < c->n; i++) {
        lf_tensor_t *t = c->ts[i];
        int64_t ne = lf_tensor_nelements(t);
        double *want = calloc((size_t)ne, sizeof *want);
        float *f = malloc((size_t)ne * sizeof *f), *d = malloc((size_t)ne * sizeof *d);
        lf_type_to_f32(c->type, c->orig[i], f, ne);
        for (int64_t j = 0; j < ne; j++) want[j] = f[j];
        int touched = 0;
        for (size_t k = 0; k < n; k++) {
            const lf_tensor_info_t *e = lf_weights_find(ew[k], t->name);
            if (!e) continue;
            int is_te = strncmp(t->name, "clip.", 5) == 0;
            double w = is_te ? uses[k].te : uses[k].unet;
            if (w == 0) continue;
            assert_int_equal(lf_tensorinfo_numel(e), ne);
            assert_int_equal(lf_weights_read_f32(e, d), 0);
            for (int64_t j = 0; j < ne; j++) want[j] += w * d[j];
            touched = 1;
        }
        changed += touched;
        size_t nb = lf_tensor_nbytes(t);
        void *b = malloc(nb);
        assert_int_equal(lf_backend_tensor_get(c->be, t, b, nb), 0);
        if (!touched) {
            if (memcmp(b, c->orig[i], nb) != 0) fail_msg("%s changed but no LoRA touches it", t->name);
        } else {
            lf_type_to_f32(c->type, b, f, ne);
            double maxref = 0, maxdiff = 0;
            for (int64_t j = 0; j < ne; j++) {
                maxref = fmax(maxref, fabs(want[j]));
                maxdiff = fmax(maxdiff, fabs(f[j] - want[j]));
            }
            if (maxdiff > tol * maxref) fail_msg("%s: max |diff| %g vs max |ref| %g", t->name, maxdiff, maxref);
        }
        free(b), free(want), free(f), free(d);
    }
    for (size_t k = 0; k < n; k++) lf_weights_destroy(&ew[k]);
    assert_int_equal(lf_lora_patch_layers(p), changed);
    return changed;
}

/* Each format alone, with different multipliers for the UNet and the text
 * encoder, then restored: f32 weights to 1e-6. */
static void test_each_format(void **state)
{
    (void)state;
    ctx_t *c = s_ctx(LF_TYPE_F32);
    lf_lora_patch_t *p = lf_lora_patch_new(c->pool, c->be, c->t);
    const char *names[] = {"kohya", "locon_tucker", "loha", "lokr", "full", "peft"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        use_t u = {names[i], 0.7, -1.3};
        size_t changed = s_apply_check(c, p, &u, 1, 1e-6);
        printf("  %-13s %zu tensors merged\n", names[i], changed);
        assert_true(changed > 0);
        assert_int_equal(lf_lora_patch_restore(p), 0);
        s_assert_plain(c);
    }
    lf_lora_patch_destroy(&p);
    s_ctx_free(c);
}

/* Several LoRAs stack, each with its own multipliers; a te weight of 0
 * leaves the text encoder alone. f16 storage: one rounding to f16 of the
 * f32 sum (the tolerance is f16's half ulp, relative). */
static void test_stack_f16(void **state)
{
    (void)state;
    ctx_t *c = s_ctx(LF_TYPE_F16);
    lf_lora_patch_t *p = lf_lora_patch_new(c->pool, c->be, c->t);
    use_t u[] = {{"kohya", 0.5, 1.0}, {"peft", 1.0, 0.0}, {"lokr", -0.25, 2.0}, {"full", 1, 1}};
    s_apply_check(c, p, u, 4, 1.0 / 1024);
    /* Another set: restored first, so the result is the new set alone. */
    use_t v[] = {{"loha", 1.5, 0.5}};
    s_apply_check(c, p, v, 1, 1.0 / 1024);
    /* The empty set is the plain model, bit for bit. */
    lf_lora_patch_info_t info;
    char err[256];
    assert_int_equal(lf_lora_patch_set(p, NULL, 0, &info, err, sizeof err), 0);
    assert_int_equal(info.layers, 0);
    assert_null(info.warnings);
    s_assert_plain(c);
    assert_int_equal(lf_lora_patch_saved_bytes(p), 0);
    lf_lora_patch_destroy(&p);
    s_ctx_free(c);
}

/* The same set again writes nothing; the same file with another multiplier
 * or a newer modification time is another set. */
static void test_reuse(void **state)
{
    (void)state;
    ctx_t *c = s_ctx(LF_TYPE_BF16);
    lf_lora_patch_t *p = lf_lora_patch_new(c->pool, c->be, c->t);
    char dir[] = "/tmp/lf_lora_patchXXXXXX", path[1100], src[1024], cmd[2300], err[512];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/k.safetensors", dir);
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", s_fix(src, sizeof src, "kohya", ""), path);
    assert_int_equal(system(cmd), 0);
    lf_lora_use_t u = {.path = path, .name = "k", .unet_weight = 1, .te_weight = 1};
    lf_lora_patch_info_t info;
    assert_int_equal(lf_lora_patch_set(p, &u, 1, &info, err, sizeof err), 0);
    assert_int_equal(info.reused, 0);
    assert_int_equal(info.layers, 9);
    assert_true(info.saved_bytes > 0);
    free(info.warnings);
    assert_int_equal(lf_lora_patch_set(p, &u, 1, &info, err, sizeof err), 0);
    assert_int_equal(info.reused, 1);
    assert_int_equal(info.layers, 9);
    free(info.warnings);
    u.te_weight = 0.5;
    assert_int_equal(lf_lora_patch_set(p, &u, 1, &info, err, sizeof err), 0);
    assert_int_equal(info.reused, 0);
    free(info.warnings);
    struct timespec ts[2] = {{.tv_sec = time(NULL) + 100}, {.tv_sec = time(NULL) + 100}};
    assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
    assert_int_equal(lf_lora_patch_set(p, &u, 1, &info, err, sizeof err), 0);
    assert_int_equal(info.reused, 0);
    free(info.warnings);
    assert_int_equal(lf_lora_patch_restore(p), 0);
    s_assert_plain(c);
    lf_lora_patch_destroy(&p);
    s_ctx_free(c);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

/* Bad files and layers: the error names the file (and the layer), and the
 * plain model is resident afterwards even when a good set was before. */
static void test_bad(void **state)
{
    (void)state;
    ctx_t *c = s_ctx(LF_TYPE_F32);
    lf_lora_patch_t *p = lf_lora_patch_new(c->pool, c->be, c->t);
    char dir[] = "/tmp/lf_lora_patchXXXXXX", good[1024], trunc[1100], cmd[2400], err[512];
    assert_non_null(mkdtemp(dir));
    s_fix(good, sizeof good, "kohya", "");
    snprintf(trunc, sizeof trunc, "%s/cut.safetensors", dir);
    snprintf(cmd, sizeof cmd, "head -c 3000 '%s' > '%s'", good, trunc);
    assert_int_equal(system(cmd), 0);
    lf_lora_use_t ok = {.path = good, .name = "kohya", .unet_weight = 1, .te_weight = 1};
    lf_lora_use_t set[2] = {ok, {.path = trunc, .name = "cut", .unet_weight = 1, .te_weight = 1}};
    lf_lora_patch_info_t info = {.layers = 77};
    assert_int_equal(lf_lora_patch_set(p, &ok, 1, NULL, err, sizeof err), 0);
    int rc = lf_lora_patch_set(p, set, 2, &info, err, sizeof err);
    printf("  truncated: %s\n", err);
    assert_true(rc < 0);
    assert_non_null(strstr(err, "cut.safetensors"));
    assert_int_equal(info.layers, 77); /* untouched */
    assert_int_equal(lf_lora_patch_layers(p), 0);
    s_assert_plain(c);
    /* A file that is not there. */
    set[1].path = "/nonexistent/x.safetensors";
    rc = lf_lora_patch_set(p, set, 2, NULL, err, sizeof err);
    assert_int_equal(rc, LF_EIO);
    assert_non_null(strstr(err, "/nonexistent/x.safetensors"));
    s_assert_plain(c);
    /* A NaN multiplier. */
    ok.unet_weight = NAN;
    assert_int_equal(lf_lora_patch_set(p, &ok, 1, NULL, err, sizeof err), LF_EINVAL);
    assert_non_null(strstr(err, "kohya"));
    ok.unet_weight = 1;
    /* A model whose layer has another size than the table says: the merge
     * stops at that layer, names it, and restores what it wrote. */
    lf_pool_t *odd = lf_pool_new(c->be, 0);
    for (size_t i = 0; i < lf_lora_targets_count(c->t); i++) {
        const lf_lora_target_t *g = lf_lora_targets_at(c->t, i);
        int64_t ne[4] = {1, 1, 1, 1};
        for (int d = 0; d < g->ndim; d++) ne[d] = g->shape[g->ndim - 1 - d];
        if (strcmp(g->name, "clip.encoder.layers.1.mlp.fc1.weight") == 0) ne[0] += 1;
        lf_tensor_t *t = lf_pool_tensor(odd, g->name, LF_TYPE_F32, g->ndim, ne);
        assert_non_null(t);
        void *z = calloc(1, lf_tensor_nbytes(t));
        assert_int_equal(lf_backend_tensor_set(c->be, t, z, lf_tensor_nbytes(t)), 0);
        free(z);
    }
    lf_lora_patch_t *q = lf_lora_patch_new(odd, c->be, c->t);
    rc = lf_lora_patch_set(q, &ok, 1, NULL, err, sizeof err);
    printf("  wrong shape: %s\n", err);
    assert_int_equal(rc, LF_EFORMAT);
    assert_non_null(strstr(err, "clip.encoder.layers.1.mlp.fc1.weight"));
    assert_non_null(strstr(err, "kohya"));
    assert_int_equal(lf_lora_patch_layers(q), 0);
    for (size_t i = 0; i < lf_lora_targets_count(c->t); i++) {
        lf_tensor_t *t = lf_pool_find(odd, lf_lora_targets_at(c->t, i)->name);
        size_t nb = lf_tensor_nbytes(t);
        float *b = malloc(nb);
        assert_int_equal(lf_backend_tensor_get(c->be, t, b, nb), 0);
        for (size_t j = 0; j < nb / sizeof *b; j++)
            if (b[j] != 0.0f) fail_msg("%s was not restored", t->name);
        free(b);
    }
    lf_lora_patch_destroy(&q);
    lf_pool_destroy(&odd);
    lf_lora_patch_destroy(&p);
    s_ctx_free(c);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

/* A merged value beyond f16's range is an error naming the layer. */
static void test_overflow_f16(void **state)
{
    (void)state;
    ctx_t *c = s_ctx(LF_TYPE_F16);
    lf_lora_patch_t *p = lf_lora_patch_new(c->pool, c->be, c->t);
    char good[1024], err[512];
    lf_lora_use_t u = {.path = s_fix(good, sizeof good, "kohya", ""), .name = "kohya",
                       .unet_weight = 1e9, .te_weight = 1};
    int rc = lf_lora_patch_set(p, &u, 1, NULL, err, sizeof err);
    printf("  overflow: %s\n", err);
    assert_int_equal(rc, LF_EFORMAT);
    assert_non_null(strstr(err, "f16"));
    assert_non_null(strstr(err, "unet."));
    s_assert_plain(c);
    lf_lora_patch_destroy(&p);
    s_ctx_free(c);
}

/* Merged f16 weights are stored through lf_type_from_f32 (F16C where the CPU
 * has it): it must round exactly as the scalar lf_f32_to_f16, for every
 * class of value — a sweep of f32 bit patterns (every 1009th, both signs,
 * normals, subnormals, the overflow edge, Inf and NaN). */
static void test_f16_store_equals_scalar(void **state)
{
    (void)state;
    enum { N = 1 << 16 };
    float *f = malloc(N * sizeof *f);
    uint16_t *v = malloc(N * sizeof *v);
    size_t k = 0, checked = 0;
    for (uint64_t b = 0; b <= 0xFFFFFFFFull; b += 1009) {
        uint32_t u = (uint32_t)b;
        memcpy(&f[k++], &u, 4);
        if (k == N || b + 1009 > 0xFFFFFFFFull) {
            lf_type_from_f32(LF_TYPE_F16, f, v, (int64_t)k);
            for (size_t i = 0; i < k; i++)
                if (v[i] != lf_f32_to_f16(f[i])) {
                    uint32_t x;
                    memcpy(&x, &f[i], 4);
                    fail_msg("f32 0x%08x: stored 0x%04x, scalar 0x%04x", x, v[i], lf_f32_to_f16(f[i]));
                }
            checked += k;
            k = 0;
        }
    }
    static const float edge[] = {65504.0f, 65519.99f, 65520.0f, -65520.0f, 5.96e-8f, 2.98e-8f, 2.9802326e-8f, 0.0f, -0.0f};
    uint16_t e[9];
    lf_type_from_f32(LF_TYPE_F16, edge, e, 9);
    for (int i = 0; i < 9; i++) assert_int_equal(e[i], lf_f32_to_f16(edge[i]));
    printf("  %zu values\n", checked);
    free(f), free(v);
}

int main(int argc, char **argv)
{
    s_cuda = argc > 1 && strcmp(argv[1], "cuda") == 0;
    if (s_cuda && !lf_backend_cuda_available()) {
        printf("SKIP: no CUDA device\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_each_format), cmocka_unit_test(test_stack_f16),
        cmocka_unit_test(test_reuse),       cmocka_unit_test(test_bad),
        cmocka_unit_test(test_overflow_f16), cmocka_unit_test(test_f16_store_equals_scalar),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
