/* Tests of step caching: lf_stepcache's decisions on fixed numbers, and the
 * UNet's cached paths (lf_unet_forward_cached through lf_model) on the tiny
 * SD1.5 fixture against diffusers' reference output
 * (tests/reference/make_model_fixtures.py): a full evaluation in parts gives
 * the uncached bytes, and a reuse evaluation on unchanged inputs gives the
 * reference output while computing only the shallow blocks (counted with
 * lf_model_blocks_run, not timed); and a reuse evaluation on changed inputs
 * gives diffusers' output with WaveSpeed's / DeepCache's rules applied
 * (tests/reference/make_stepcache_fixtures.py). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lf_error.h"
#include "lf_model.h"
#include "lf_safetensors.h"
#include "lf_stepcache.h"
#include "lf_test_ref.h"
#include "lf_test_util.h"

#define TOL 1e-4

/* ---- decisions ---- */

static void test_rel_l1(void **state) {
    (void)state;
    /* sum|a-b| = 0.5 + 0 + 1 + 0 = 1.5, sum|a| = 10: 0.15. */
    const float a[4] = {1, -2, 3, -4}, b[4] = {1.5f, -2, 2, -4};
    assert_true(fabs(lf_stepcache_rel_l1(a, b, 4) - 0.15) < 1e-12);
    /* The reference is the first argument: sum|b| = 9.5, but 1.5 / 10. */
    assert_true(fabs(lf_stepcache_rel_l1(b, a, 4) - 1.5 / 9.5) < 1e-12);
    const float z[4] = {0};
    assert_true(lf_stepcache_rel_l1(z, z, 4) == 0.0);
    assert_true(isinf(lf_stepcache_rel_l1(z, a, 4)));
}

static void test_fb_decisions(void **state) {
    (void)state;
    const float a[4] = {1, -2, 3, -4}, b[4] = {1.5f, -2, 2, -4}; /* rel L1 0.15 */
    int owner1, owner2;
    lf_stepcache_opts_t o = {.kind = LF_STEPCACHE_FBCACHE, .threshold = 0.2f, .start = 1, .end = 1,
                             .interval = 1};
    lf_stepcache_t *sc = lf_stepcache_new(&o);
    assert_non_null(sc);
    /* Step 0: nothing cached (and in the warm-up): full, a kept. */
    lf_stepcache_begin(sc, 0, 10);
    assert_int_equal(lf_stepcache_fb_check(sc, &owner1, a, 4, 2), 0);
    float *rest = lf_stepcache_fb_rest(sc);
    rest[0] = 7, rest[1] = 8;
    lf_stepcache_fb_stored(sc);
    lf_stepcache_count(sc, 1);
    /* Step 1: 0.15 < 0.2: reuse; the rest residual is the stored one. */
    lf_stepcache_begin(sc, 1, 10);
    assert_int_equal(lf_stepcache_fb_check(sc, &owner1, b, 4, 2), 1);
    assert_true(lf_stepcache_fb_rest(sc)[0] == 7 && lf_stepcache_fb_rest(sc)[1] == 8);
    lf_stepcache_count(sc, 0);
    /* The reference stays the last full evaluation's (a), as WaveSpeed's. */
    lf_stepcache_begin(sc, 2, 10);
    assert_int_equal(lf_stepcache_fb_check(sc, &owner1, b, 4, 2), 1);
    /* Another network, another size: full. */
    assert_int_equal(lf_stepcache_fb_check(sc, &owner2, b, 4, 2), 0);
    lf_stepcache_fb_stored(sc);
    assert_int_equal(lf_stepcache_fb_check(sc, &owner2, b, 3, 2), 0);
    lf_stepcache_fb_stored(sc);
    /* a[0..3) against b[0..3): 1.5 / 5.5 = 0.27 > 0.2: full, a kept. */
    assert_int_equal(lf_stepcache_fb_check(sc, &owner2, a, 3, 2), 0);
    lf_stepcache_fb_stored(sc);
    /* Cool-down: the last step runs in full whatever the distance. */
    lf_stepcache_begin(sc, 9, 10);
    assert_int_equal(lf_stepcache_fb_check(sc, &owner2, a, 3, 2), 0);
    lf_stepcache_fb_stored(sc);
    lf_stepcache_begin(sc, 8, 10);
    assert_int_equal(lf_stepcache_fb_check(sc, &owner2, a, 3, 2), 1);
    /* After a reset, and while the rest residual is not stored (the rest
     * of the network failed): full. */
    lf_stepcache_reset(sc);
    assert_int_equal(lf_stepcache_fb_check(sc, &owner2, a, 3, 2), 0);
    assert_int_equal(lf_stepcache_fb_check(sc, &owner2, a, 3, 2), 0);
    assert_int_equal(lf_stepcache_full(sc), 1);
    assert_int_equal(lf_stepcache_reused(sc), 1);
    lf_stepcache_destroy(&sc);
    assert_null(sc);
    /* A threshold below the distance, and threshold 0: never. */
    o.threshold = 0.1f;
    o.start = o.end = 0;
    sc = lf_stepcache_new(&o);
    lf_stepcache_begin(sc, 0, 10);
    assert_int_equal(lf_stepcache_fb_check(sc, &owner1, a, 4, 2), 0);
    lf_stepcache_fb_stored(sc);
    lf_stepcache_begin(sc, 1, 10);
    assert_int_equal(lf_stepcache_fb_check(sc, &owner1, b, 4, 2), 0);
    lf_stepcache_fb_stored(sc);
    lf_stepcache_destroy(&sc);
    o.threshold = 0;
    sc = lf_stepcache_new(&o);
    lf_stepcache_begin(sc, 1, 10);
    assert_int_equal(lf_stepcache_fb_check(sc, &owner1, a, 4, 2), 0);
    lf_stepcache_fb_stored(sc);
    assert_int_equal(lf_stepcache_fb_check(sc, &owner1, a, 4, 2), 0);
    lf_stepcache_destroy(&sc);
}

static void test_dc_schedule(void **state) {
    (void)state;
    int owner;
    lf_stepcache_opts_t o = {.kind = LF_STEPCACHE_DEEPCACHE, .interval = 3, .start = 1, .end = 2};
    lf_stepcache_t *sc = lf_stepcache_new(&o);
    assert_non_null(sc);
    /* 10 steps: warm-up 0, full 1, 4, 7, cool-down 8, 9. */
    const int want[10] = {0, 0, 1, 1, 0, 1, 1, 0, 0, 0};
    for (int s = 0; s < 10; s++) {
        lf_stepcache_begin(sc, s, 10);
        int reuse = lf_stepcache_dc_reuse(sc, &owner, 16);
        assert_int_equal(reuse, want[s]);
        if (!reuse) {
            assert_non_null(lf_stepcache_dc_feature(sc, &owner, 16));
            lf_stepcache_dc_stored(sc);
        }
    }
    /* Another size: nothing to reuse. */
    lf_stepcache_begin(sc, 2, 10);
    assert_int_equal(lf_stepcache_dc_reuse(sc, &owner, 17), 0);
    lf_stepcache_destroy(&sc);
}

static void test_opts(void **state) {
    (void)state;
    const char *f = NULL;
    lf_stepcache_opts_t o = {.kind = LF_STEPCACHE_FBCACHE, .threshold = 0.1f, .interval = 1};
    assert_int_equal(lf_stepcache_opts_check(&o, &f), 0);
    assert_null(f);
    o.threshold = 1.5f;
    assert_int_equal(lf_stepcache_opts_check(&o, &f), LF_EINVAL);
    assert_string_equal(f, "threshold");
    assert_null(lf_stepcache_new(&o));
    o.threshold = NAN;
    assert_int_equal(lf_stepcache_opts_check(&o, &f), LF_EINVAL);
    o.threshold = 0.1f, o.interval = 0;
    assert_int_equal(lf_stepcache_opts_check(&o, &f), LF_EINVAL);
    assert_string_equal(f, "interval");
    o.interval = 1, o.depth = -1;
    assert_int_equal(lf_stepcache_opts_check(&o, &f), LF_EINVAL);
    assert_string_equal(f, "depth");
    o.depth = 0, o.start = -1;
    assert_int_equal(lf_stepcache_opts_check(&o, &f), LF_EINVAL);
    assert_string_equal(f, "start");
    lf_stepcache_kind_t k;
    assert_int_equal(lf_stepcache_kind_parse("DeepCache", &k), 0);
    assert_int_equal(k, LF_STEPCACHE_DEEPCACHE);
    assert_int_equal(lf_stepcache_kind_parse("teacache", &k), LF_EINVAL);
    assert_string_equal(lf_stepcache_kind_name(LF_STEPCACHE_FBCACHE), "fbcache");
}

/* ---- the UNet's cached paths ---- */

typedef struct {
    lf_model_t *m;
    lf_safetensors_t *ref;
    float *x, *t, *ctx, *want, *full, *o;
    size_t n;
} fix_t;

static void s_open(fix_t *f) {
    char path[1024], err[512] = "";
    memset(f, 0, sizeof *f);
    int rc = lf_model_load(lf_test_fixture(path, sizeof path, "models/tiny_a.safetensors"), NULL,
                           &f->m, err, sizeof err);
    if (rc) printf("load: %s\n", err);
    assert_int_equal(rc, 0);
    assert_int_equal(lf_safetensors_open(&f->ref,
                                         lf_test_fixture(path, sizeof path,
                                                         "models/tiny_a_ref.safetensors"),
                                         err, sizeof err),
                     0);
    f->x = lf_test_ref_f32(f->ref, "unet_x", &f->n);
    f->t = lf_test_ref_f32(f->ref, "unet_t", NULL);
    f->ctx = lf_test_ref_f32(f->ref, "unet_ctx", NULL);
    f->want = lf_test_ref_f32(f->ref, "unet_out", NULL);
    f->full = malloc(f->n * sizeof *f->full);
    f->o = malloc(f->n * sizeof *f->o);
    /* The uncached output (checked against diffusers here too). */
    assert_int_equal(lf_model_denoise(f->m, f->x, 2, 8, 8, f->t, f->ctx, 77, NULL, f->full), 0);
    assert_true(lf_test_relerr(f->full, f->want, f->n) < TOL);
}

static void s_close(fix_t *f) {
    free(f->x), free(f->t), free(f->ctx), free(f->want), free(f->full), free(f->o);
    lf_safetensors_destroy(&f->ref);
    lf_model_destroy(&f->m);
}

static int s_eval(fix_t *f, lf_stepcache_t *sc, int step, unsigned long *blocks) {
    unsigned long b0 = lf_model_blocks_run(f->m);
    lf_stepcache_begin(sc, step, 10);
    int rc = lf_model_denoise_cached(f->m, sc, f->x, 2, 8, 8, f->t, f->ctx, 77, NULL, f->o);
    *blocks = lf_model_blocks_run(f->m) - b0;
    return rc;
}

/* Blocks of the whole tiny_a UNet (resnets + transformers), from its shape:
 * per down level `layers` resnets (+ attentions), the middle (2 + 1), per up
 * level layers + 1 resnets (+ attentions). */
static unsigned long s_blocks_full(const lf_model_t *m, unsigned long *first) {
    (void)m;
    /* tiny_a (make_model_fixtures.py): 2 levels (CrossAttnDown, Down), 1
     * resnet per block, attention depth 1; up: Up, CrossAttnUp. */
    *first = 2; /* down_blocks.0.resnets.0 + attentions.0 */
    return (1 + 1) + 1 + 3 + (2 + 0) + (2 + 2);
}

static void test_fbcache_unet(void **state) {
    (void)state;
    fix_t f;
    s_open(&f);
    unsigned long first = 0, all = s_blocks_full(f.m, &first), blocks = 0;
    /* Threshold 0: every evaluation in parts, bytes as uncached. */
    lf_stepcache_opts_t o = {.kind = LF_STEPCACHE_FBCACHE, .threshold = 0, .interval = 1};
    lf_stepcache_t *sc = lf_stepcache_new(&o);
    for (int s = 0; s < 3; s++) {
        assert_int_equal(s_eval(&f, sc, s, &blocks), 0);
        assert_memory_equal(f.o, f.full, f.n * sizeof *f.o);
        assert_int_equal(blocks, all);
    }
    assert_int_equal(lf_stepcache_full(sc), 3);
    lf_stepcache_destroy(&sc);
    /* Threshold 0.05 and the same inputs again (first-block residual
     * unchanged): the second evaluation reuses the rest; its output is
     * conv_out(h1 + (h_end - h1)) = diffusers' output, with only the first
     * block computed. */
    o.threshold = 0.05f;
    sc = lf_stepcache_new(&o);
    assert_int_equal(s_eval(&f, sc, 0, &blocks), 0);
    assert_int_equal(blocks, all);
    assert_int_equal(s_eval(&f, sc, 1, &blocks), 0);
    printf("  fbcache reuse: %lu of %lu blocks, rel err %.3g\n", blocks, all,
           lf_test_relerr(f.o, f.want, f.n));
    assert_int_equal(blocks, first);
    assert_true(lf_test_relerr(f.o, f.want, f.n) < TOL);
    assert_int_equal(lf_stepcache_full(sc), 1);
    assert_int_equal(lf_stepcache_reused(sc), 1);
    /* A changed input far enough: full again. */
    for (size_t i = 0; i < f.n; i++) f.x[i] = -f.x[i];
    assert_int_equal(s_eval(&f, sc, 2, &blocks), 0);
    assert_int_equal(blocks, all);
    lf_stepcache_destroy(&sc);
    s_close(&f);
}

static void test_deepcache_unet(void **state) {
    (void)state;
    fix_t f;
    s_open(&f);
    unsigned long first = 0, all = s_blocks_full(f.m, &first), blocks = 0;
    /* tiny_a's branches: skips conv_in, d0r0(+attn), ds0, d1r0: 4. The
     * shallow blocks computed for depth D: the down elements 1..D and the up
     * resnets (+ attentions) taking skips 0..D; depth 4 is taken as 3. */
    const unsigned long shallow[4] = {
        2,         /* depth 0: up_blocks.1.resnets.1 + attn */
        2 + 4,     /* 1: d0r0 + attn; up1 resnets 0, 1 + attns */
        2 + 5,     /* 2: + ds0 (no block); + up0 resnet 1 */
        3 + 6,     /* 3 (the deepest): + d1r0; + up0 resnet 0: all but the middle */
    };
    for (int depth = 0; depth < 5; depth++) {
        /* Interval 1: always full, bytes as uncached. */
        lf_stepcache_opts_t o = {.kind = LF_STEPCACHE_DEEPCACHE, .interval = 1, .depth = depth};
        lf_stepcache_t *sc = lf_stepcache_new(&o);
        for (int s = 0; s < 2; s++) {
            assert_int_equal(s_eval(&f, sc, s, &blocks), 0);
            assert_memory_equal(f.o, f.full, f.n * sizeof *f.o);
            assert_int_equal(blocks, all);
        }
        lf_stepcache_destroy(&sc);
        /* Interval 2 on unchanged inputs: the reuse step recomputes the
         * shallow blocks around the cached deep feature, same bytes. */
        o.interval = 2;
        sc = lf_stepcache_new(&o);
        assert_int_equal(s_eval(&f, sc, 0, &blocks), 0);
        assert_memory_equal(f.o, f.full, f.n * sizeof *f.o);
        assert_int_equal(s_eval(&f, sc, 1, &blocks), 0);
        printf("  deepcache depth %d reuse: %lu of %lu blocks\n", depth, blocks, all);
        assert_memory_equal(f.o, f.full, f.n * sizeof *f.o);
        assert_int_equal(blocks, shallow[depth < 4 ? depth : 3]);
        assert_int_equal(lf_stepcache_reused(sc), 1);
        lf_stepcache_destroy(&sc);
    }
    s_close(&f);
}

/* Two evaluations, A then B (other x and t), against diffusers' outputs
 * with WaveSpeed's and DeepCache's rules applied there
 * (tests/reference/make_stepcache_fixtures.py). */
typedef struct {
    lf_model_t *m;
    lf_safetensors_t *ref;
    float *xa, *ta, *xb, *tb, *ctx, *o;
    size_t n;
} s_ab_t;

static void s_ab_open(s_ab_t *f) {
    char path[1024], err[512] = "";
    memset(f, 0, sizeof *f);
    assert_int_equal(lf_model_load(lf_test_fixture(path, sizeof path, "models/tiny_a.safetensors"),
                                   NULL, &f->m, err, sizeof err),
                     0);
    assert_int_equal(lf_safetensors_open(&f->ref,
                                         lf_test_fixture(path, sizeof path,
                                                         "models/stepcache_ref.safetensors"),
                                         err, sizeof err),
                     0);
    f->xa = lf_test_ref_f32(f->ref, "x_a", &f->n);
    f->ta = lf_test_ref_f32(f->ref, "t_a", NULL);
    f->xb = lf_test_ref_f32(f->ref, "x_b", NULL);
    f->tb = lf_test_ref_f32(f->ref, "t_b", NULL);
    f->ctx = lf_test_ref_f32(f->ref, "ctx", NULL);
    f->o = malloc(f->n * sizeof *f->o);
}

static void s_ab_close(s_ab_t *f) {
    free(f->xa), free(f->ta), free(f->xb), free(f->tb), free(f->ctx), free(f->o);
    lf_safetensors_destroy(&f->ref);
    lf_model_destroy(&f->m);
}

/* Runs A (full) then B through sc; checks B's output against ref key. */
static void s_ab_run(s_ab_t *f, lf_stepcache_t *sc, const char *want_key, int want_reuse) {
    float *oa = lf_test_ref_f32(f->ref, "out_a", NULL), *want = lf_test_ref_f32(f->ref, want_key, NULL);
    lf_stepcache_begin(sc, 0, 10);
    assert_int_equal(lf_model_denoise_cached(f->m, sc, f->xa, 2, 8, 8, f->ta, f->ctx, 77, NULL, f->o), 0);
    assert_true(lf_test_relerr(f->o, oa, f->n) < TOL);
    lf_stepcache_begin(sc, 1, 10);
    assert_int_equal(lf_model_denoise_cached(f->m, sc, f->xb, 2, 8, 8, f->tb, f->ctx, 77, NULL, f->o), 0);
    double e = lf_test_relerr(f->o, want, f->n);
    printf("  B vs %-14s rel err %.3g (%s)\n", want_key, e, want_reuse ? "reused" : "full");
    assert_true(e < TOL);
    assert_int_equal(lf_stepcache_reused(sc), want_reuse);
    free(oa), free(want);
}

static void test_fbcache_reference(void **state) {
    (void)state;
    s_ab_t f;
    s_ab_open(&f);
    float *rel = lf_test_ref_f32(f.ref, "fb_rel_l1", NULL);
    /* Just above the first-block residual's relative L1 (0.13): B reuses,
     * and gets conv_out(h1_B + (h_end_A - h1_A)); just below: B is full. */
    lf_stepcache_opts_t o = {.kind = LF_STEPCACHE_FBCACHE, .threshold = rel[0] * 1.001f, .interval = 1};
    lf_stepcache_t *sc = lf_stepcache_new(&o);
    s_ab_run(&f, sc, "fb_reuse_out", 1);
    lf_stepcache_destroy(&sc);
    o.threshold = rel[0] * 0.999f;
    sc = lf_stepcache_new(&o);
    s_ab_run(&f, sc, "out_b", 0);
    lf_stepcache_destroy(&sc);
    free(rel);
    s_ab_close(&f);
}

static void test_deepcache_reference(void **state) {
    (void)state;
    s_ab_t f;
    s_ab_open(&f);
    for (int depth = 0; depth < 4; depth++) {
        lf_stepcache_opts_t o = {.kind = LF_STEPCACHE_DEEPCACHE, .interval = 2, .depth = depth};
        lf_stepcache_t *sc = lf_stepcache_new(&o);
        char key[32];
        snprintf(key, sizeof key, "dc_out_%d", depth);
        s_ab_run(&f, sc, key, 1);
        lf_stepcache_destroy(&sc);
    }
    s_ab_close(&f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rel_l1),       cmocka_unit_test(test_fb_decisions),
        cmocka_unit_test(test_dc_schedule),  cmocka_unit_test(test_opts),
        cmocka_unit_test(test_fbcache_unet), cmocka_unit_test(test_deepcache_unet),
        cmocka_unit_test(test_fbcache_reference), cmocka_unit_test(test_deepcache_reference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
