/* test_memory: the activation planner (lf_arena), the resident weight pool
 * (lf_pool) and the graph executor (lf_graph) on the CPU backend. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lf_arena.h"
#include "lf_backend.h"
#include "lf_error.h"
#include "lf_graph.h"
#include "lf_pool.h"
#include "lf_test_tensor.h"

static void test_arena_known_case(void **state) {
    (void)state;
    lf_arena_t *a = lf_arena_new(64);
    assert_non_null(a);
    /* A chain a -> b -> c -> d: only neighbours are alive together. */
    int ia = lf_arena_add(a, 1000, 0, 1);
    int ib = lf_arena_add(a, 1000, 1, 2);
    int ic = lf_arena_add(a, 1000, 2, 3);
    int id = lf_arena_add(a, 1000, 3, 4);
    assert_true(ia >= 0 && ib >= 0 && ic >= 0 && id >= 0);
    assert_int_equal(lf_arena_plan(a), 0);
    assert_int_equal(lf_arena_peak(a), 2 * 1024);
    assert_int_equal(lf_arena_total(a), 4 * 1024);
    assert_int_equal(lf_arena_offset(a, ia), lf_arena_offset(a, ic));
    assert_int_not_equal(lf_arena_offset(a, ia), lf_arena_offset(a, ib));
    assert_int_equal(lf_arena_add(a, 10, 3, 2), LF_EINVAL);
    lf_arena_destroy(&a);
    assert_null(a);
    lf_arena_destroy(&a); /* takes NULL */
}

static void test_arena_random(void **state) {
    (void)state;
    for (int round = 0; round < 20; round++) {
        lf_arena_t *a = lf_arena_new(0);
        int n = 50 + round * 10;
        size_t *sz = malloc((size_t)n * sizeof *sz);
        int *f = malloc((size_t)n * sizeof *f), *l = malloc((size_t)n * sizeof *l);
        for (int i = 0; i < n; i++) {
            sz[i] = (size_t)(1 + (lf_test_uniform() + 1) * 50000);
            f[i] = (int)((lf_test_uniform() + 1) * 50);
            l[i] = f[i] + (int)((lf_test_uniform() + 1) * 10);
            assert_int_equal(lf_arena_add(a, sz[i], f[i], l[i]), i);
        }
        assert_int_equal(lf_arena_plan(a), 0);
        size_t peak = lf_arena_peak(a), live_max = 0;
        for (int i = 0; i < n; i++) {
            size_t oi = lf_arena_offset(a, i);
            assert_true(oi % 256 == 0 && oi + sz[i] <= peak);
            for (int j = i + 1; j < n; j++) {
                if (f[i] > l[j] || f[j] > l[i]) continue; /* not alive together */
                size_t oj = lf_arena_offset(a, j);
                assert_true(oi + sz[i] <= oj || oj + sz[j] <= oi);
            }
        }
        /* The peak is at least the largest live set and at most the total. */
        for (int t = 0; t < 70; t++) {
            size_t live = 0;
            for (int i = 0; i < n; i++)
                if (f[i] <= t && t <= l[i]) live += (sz[i] + 255) & ~(size_t)255;
            if (live > live_max) live_max = live;
        }
        assert_true(peak >= live_max && peak <= lf_arena_total(a));
        free(sz), free(f), free(l);
        lf_arena_destroy(&a);
    }
}

static void test_pool(void **state) {
    (void)state;
    lf_backend_t *be = lf_backend_cpu_new(2);
    lf_pool_t *p = lf_pool_new(be, 4096);
    assert_non_null(p);
    int64_t ne[2] = {10, 20};
    lf_tensor_t *w = lf_pool_tensor(p, "down.0.weight", LF_TYPE_F16, 2, ne);
    assert_non_null(w);
    assert_int_equal((uintptr_t)w->data % 256, 0);
    assert_null(lf_pool_tensor(p, "down.0.weight", LF_TYPE_F16, 2, ne)); /* duplicate */
    int64_t big[1] = {10000};
    lf_tensor_t *b = lf_pool_tensor(p, "big", LF_TYPE_F32, 1, big); /* own chunk */
    assert_non_null(b);
    char name[32];
    for (int i = 0; i < 300; i++) { /* grows the index */
        snprintf(name, sizeof name, "t%d", i);
        assert_non_null(lf_pool_tensor(p, name, LF_TYPE_F32, 2, ne));
    }
    assert_ptr_equal(lf_pool_find(p, "down.0.weight"), w);
    assert_ptr_equal(lf_pool_find(p, "big"), b);
    assert_non_null(lf_pool_find(p, "t299"));
    assert_null(lf_pool_find(p, "nope"));
    assert_int_equal(lf_pool_count(p), 302);
    assert_null(lf_pool_tensor(p, "bad", LF_TYPE_COUNT, 2, ne));
    assert_true(lf_pool_used(p) <= lf_pool_reserved(p));
    uint16_t host[200];
    for (int i = 0; i < 200; i++) host[i] = lf_f32_to_f16((float)i);
    assert_int_equal(lf_pool_load(p, w, host, sizeof host), 0);
    assert_int_equal(lf_pool_load(p, w, host, 10), LF_EINVAL);
    assert_int_equal(((uint16_t *)w->data)[7], host[7]);
    /* bf16 checkpoint bytes into an f32 tensor. */
    int64_t ne3[1] = {5000};
    lf_tensor_t *f = lf_pool_tensor(p, "conv.w.f32", LF_TYPE_F32, 1, ne3);
    uint16_t *bf = malloc(5000 * sizeof *bf);
    for (int i = 0; i < 5000; i++) bf[i] = lf_f32_to_bf16((float)i * 0.25f - 7.0f);
    assert_int_equal(lf_pool_load_as(p, f, bf, LF_TYPE_BF16, 5000 * 2), 0);
    for (int i = 0; i < 5000; i++) assert_true(((float *)f->data)[i] == lf_bf16_to_f32(bf[i]));
    assert_int_equal(lf_pool_load_as(p, f, bf, LF_TYPE_BF16, 4998 * 2), LF_EINVAL);
    free(bf);
    assert_int_equal(lf_pool_set_model(p, "sd15:abc"), 0);
    assert_string_equal(lf_pool_model(p), "sd15:abc");
    lf_pool_destroy(&p);
    assert_null(p);
    lf_backend_destroy(&be);
}

/* Weights mapped from their file: the file's bytes at the offset, written
 * copy-on-write (the file keeps its bytes), given back to the file's values
 * when their pages are dropped (only the named prefix's tensors). */
static void test_pool_mapped(void **state) {
    (void)state;
    char path[] = "/tmp/lf_test_pool_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    enum { N = 3 * 4096 }; /* f32 values: 12 pages of tensor, whole pages inside */
    const size_t off = 4096 + 64, off2 = off + N * sizeof(float);
    float *vals = malloc(2 * N * sizeof *vals), *back = malloc(N * sizeof *back);
    assert_non_null(vals);
    assert_non_null(back);
    for (int i = 0; i < 2 * N; i++) vals[i] = (float)i * 0.5f - 3.0f;
    assert_int_equal(pwrite(fd, vals, 2 * N * sizeof *vals, (off_t)off), (ssize_t)(2 * N * sizeof *vals));
    close(fd);
    lf_backend_t *be = lf_backend_cpu_new(1);
    lf_pool_t *p = lf_pool_new(be, 4096);
    const int64_t ne[2] = {N / 4, 4};
    lf_tensor_t *a = lf_pool_tensor_mapped(p, "unet.w", LF_TYPE_F32, 2, ne, path, off);
    lf_tensor_t *b = lf_pool_tensor_mapped(p, "vae.w", LF_TYPE_F32, 2, ne, path, off2);
    assert_non_null(a);
    assert_non_null(b);
    assert_ptr_equal(lf_pool_find(p, "unet.w"), a);
    assert_memory_equal(a->data, vals, N * sizeof *vals);
    assert_memory_equal(b->data, vals + N, N * sizeof *vals);
    /* Out of the file, a duplicate, a missing file: refused. */
    assert_null(lf_pool_tensor_mapped(p, "far", LF_TYPE_F32, 2, ne, path, off2 + 8));
    assert_null(lf_pool_tensor_mapped(p, "unet.w", LF_TYPE_F32, 2, ne, path, off));
    assert_null(lf_pool_tensor_mapped(p, "gone", LF_TYPE_F32, 2, ne, "/nonexistent/lf.bin", 0));
    /* Written in place (a merged LoRA): the file keeps its bytes. */
    for (int i = 0; i < N; i++) ((float *)a->data)[i] = 1.0f, ((float *)b->data)[i] = 2.0f;
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fseek(f, (long)off, SEEK_SET), 0);
    assert_int_equal(fread(back, sizeof *back, N, f), N);
    fclose(f);
    assert_memory_equal(back, vals, N * sizeof *vals);
    /* Dropping "unet." pages: whole pages inside a go back to the file's
     * values, the ends it shares with other pages stay; b is untouched. */
    size_t dropped = lf_pool_drop_pages(p, "unet.");
    assert_true(dropped >= (N - 2048) * sizeof(float) && dropped <= N * sizeof(float));
    const float *ad = a->data;
    assert_true(ad[0] == 1.0f);                       /* first page is shared with the file's head */
    assert_true(ad[N / 2] == vals[N / 2]);            /* inside: the file's value again */
    assert_true(((float *)b->data)[N / 2] == 2.0f);
    assert_int_equal(lf_pool_drop_pages(p, "clip."), 0);
    lf_pool_destroy(&p);
    lf_backend_destroy(&be);
    unlink(path);
    free(vals), free(back);
}

/* The after-node hook (lf_graph_set_after) with lf_pool_drop_tensor_pages:
 * called once per node, in order; it gives back the pages of the mapped
 * weight a node read (a page written in place goes back to the file's value:
 * the sign that it was dropped), nothing for activations or copied weights;
 * the next compute reads the weight again from the file. */
typedef struct {
    const lf_pool_t *pool;
    int calls, order_ok;
    size_t dropped[4];
    const lf_node_t *first;
} s_after_t;

static void s_after(void *ud, const lf_node_t *node) {
    s_after_t *a = ud;
    if (!a->first) a->first = node;
    a->order_ok &= node == a->first + a->calls;
    size_t d = 0;
    for (int i = 0; i < LF_MAX_SRC; i++)
        if (node->src[i]) d += lf_pool_drop_tensor_pages(a->pool, node->src[i]);
    if (a->calls < 4) a->dropped[a->calls] = d;
    a->calls++;
}

static void test_graph_release(void **state) {
    (void)state;
    char path[] = "/tmp/lf_test_release_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    enum { K = 512, M = 64 }; /* W: [K, M] f32 = 32 pages from offset 4096 */
    float *w = malloc(K * M * sizeof *w);
    assert_non_null(w);
    for (int i = 0; i < K * M; i++) w[i] = (float)(i % 7) * 0.25f - 0.5f;
    assert_int_equal(pwrite(fd, w, K * M * sizeof *w, 4096), (ssize_t)(K * M * sizeof *w));
    close(fd);
    /* This test writes W's page behind the backend's back; a packed copy of W
     * (LF_CPU_PREPACK, made at first use) would keep the written value, which
     * is what lf_backend_forget is for. Here only the page drop is under test. */
    setenv("LF_CPU_PREPACK", "0", 1);
    lf_backend_t *be = lf_backend_cpu_new(1);
    unsetenv("LF_CPU_PREPACK");
    lf_pool_t *pool = lf_pool_new(be, 0);
    const int64_t ne[2] = {K, M}, nc[1] = {K};
    lf_tensor_t *W = lf_pool_tensor_mapped(pool, "unet.w", LF_TYPE_F32, 2, ne, path, 4096);
    lf_tensor_t *c = lf_pool_tensor(pool, "unet.c", LF_TYPE_F32, 1, nc); /* copied, not mapped */
    assert_non_null(W);
    assert_non_null(c);
    float ones[K];
    for (int i = 0; i < K; i++) ones[i] = 1.0f;
    assert_int_equal(lf_pool_load(pool, c, ones, sizeof ones), 0);
    lf_graph_t *g = lf_graph_new(be);
    lf_tensor_t *x = lf_graph_input(g, LF_TYPE_F32, K, 2, 1, 1);
    lf_tensor_t *h = lf_graph_add(g, x, c);            /* node 0: no mapped weight */
    lf_tensor_t *y = lf_graph_matmul(g, h, W, NULL);   /* node 1: reads W */
    y = lf_graph_output(g, lf_graph_scale(g, y, 1.0f, 0.0f)); /* node 2 */
    assert_non_null(y);
    s_after_t a = {.pool = pool, .order_ok = 1};
    lf_graph_set_after(g, s_after, &a);
    float xin[2 * K], out[2 * M];
    for (int i = 0; i < 2 * K; i++) xin[i] = (float)(i % 5) - 2.0f;
    assert_int_equal(lf_graph_plan(g), 0);
    assert_int_equal(lf_backend_tensor_set(be, x, xin, sizeof xin), 0);
    /* A page of W written in place: dropped, it reads as the file again. */
    ((float *)W->data)[K * M / 2] = 100.0f;
    assert_int_equal(lf_graph_compute(g), 0);
    assert_int_equal(a.calls, 3);
    assert_true(a.order_ok);
    assert_int_equal(a.dropped[0], 0);
    assert_int_equal(a.dropped[1], K * M * sizeof(float)); /* W is page-aligned: all of it */
    assert_int_equal(a.dropped[2], 0);
    assert_true(((float *)W->data)[K * M / 2] == w[K * M / 2]);
    /* Computed again from the file's pages: y = (x + 1) W. */
    assert_int_equal(lf_graph_compute(g), 0);
    assert_int_equal(lf_backend_tensor_get(be, y, out, sizeof out), 0);
    for (int r = 0; r < 2; r++)
        for (int m = 0; m < M; m++) {
            double e = 0;
            for (int k = 0; k < K; k++) e += (double)(xin[r * K + k] + 1.0f) * w[m * K + k];
            assert_true(fabs(out[r * M + m] - e) <= 1e-3 * (1 + fabs(e)));
        }
    /* Removed: no more calls. */
    lf_graph_set_after(g, NULL, &a);
    assert_int_equal(lf_graph_compute(g), 0);
    assert_int_equal(a.calls, 6);
    lf_graph_destroy(&g);
    lf_pool_destroy(&pool);
    lf_backend_destroy(&be);
    unlink(path);
    free(w);
}

/* A small UNet-like block recorded once, run twice, compared with the same
 * ops run eagerly. */
static void test_graph(void **state) {
    (void)state;
    lf_backend_t *be = lf_backend_cpu_new(2);
    lf_pool_t *pool = lf_pool_new(be, 0);
    int64_t C = 8, W = 6, H = 5, heads = 2;
    int64_t wc[4] = {3, 3, C, C}, vc[1] = {C}, lin[2] = {C, C};
    lf_tensor_t *cw = lf_pool_tensor(pool, "conv.w", LF_TYPE_F32, 4, wc);
    lf_tensor_t *cb = lf_pool_tensor(pool, "conv.b", LF_TYPE_F32, 1, vc);
    lf_tensor_t *gg = lf_pool_tensor(pool, "gn.g", LF_TYPE_F32, 1, vc);
    lf_tensor_t *gb = lf_pool_tensor(pool, "gn.b", LF_TYPE_F32, 1, vc);
    lf_tensor_t *wq = lf_pool_tensor(pool, "q.w", LF_TYPE_F16, 2, lin);
    lf_tensor_t *ws[5] = {cw, cb, gg, gb, wq};
    for (int i = 0; i < 5; i++) {
        lf_tensor_t r = lf_test_rand(ws[i]->type, ws[i]->ne[0], ws[i]->ne[1], ws[i]->ne[2], ws[i]->ne[3], 0.5);
        assert_int_equal(lf_pool_load(pool, ws[i], r.data, lf_tensor_nbytes(&r)), 0);
        free(r.data);
    }
    lf_graph_t *g = lf_graph_new(be);
    lf_tensor_t *x = lf_graph_input(g, LF_TYPE_F32, W, H, C, 1);
    lf_tensor_t *h = lf_graph_group_norm(g, x, gg, gb, 4, 1e-5f, 1);
    h = lf_graph_conv2d(g, h, cw, cb, 1, 1);
    h = lf_graph_add(g, h, x);
    /* tokens: [C, W*H] from [W*H, C] */
    lf_tensor_t flat = lf_tensor_reshape(h, W * H, C, 1, 1);
    lf_tensor_t *hv = lf_graph_view(g, h, flat);
    const int tr[4] = {1, 0, 2, 3};
    lf_tensor_t *tok = lf_graph_permute(g, hv, tr);
    lf_tensor_t *q = lf_graph_matmul(g, tok, wq, NULL);
    lf_tensor_t *att = lf_graph_mha(g, q, tok, tok, NULL, (int)heads);
    lf_tensor_t *out = lf_graph_output(g, lf_graph_scale(g, att, 2.0f, 0.0f));
    assert_non_null(out);
    assert_int_equal(lf_graph_plan(g), 0);
    assert_true(lf_graph_peak_bytes(g) > 0);
    assert_true(lf_graph_peak_bytes(g) < lf_graph_unplanned_bytes(g));
    char *dump = NULL;
    size_t dump_len = 0;
    FILE *mem = open_memstream(&dump, &dump_len);
    lf_graph_print(g, mem);
    fclose(mem);
    assert_non_null(strstr(dump, "ATTENTION"));
    assert_non_null(strstr(dump, "GROUP_NORM"));
    free(dump);

    lf_tensor_t xin = lf_test_rand(LF_TYPE_F32, W, H, C, 1, 1);
    assert_int_equal(lf_backend_tensor_set(be, x, xin.data, lf_tensor_nbytes(&xin)), 0);
    assert_int_equal(lf_graph_compute(g), 0);
    float *got = malloc(lf_tensor_nbytes(out));
    assert_int_equal(lf_backend_tensor_get(be, out, got, lf_tensor_nbytes(out)), 0);

    /* Eager reference over the same weights. */
    lf_tensor_t e1 = lf_test_zeros(LF_TYPE_F32, W, H, C, 1), e2 = lf_test_zeros(LF_TYPE_F32, W, H, C, 1);
    assert_int_equal(lf_op_group_norm(be, &e1, &xin, gg, gb, 4, 1e-5f, 1), 0);
    assert_int_equal(lf_op_conv2d(be, &e2, &e1, cw, cb, 1, 1), 0);
    assert_int_equal(lf_op_add(be, &e2, &e2, &xin), 0);
    lf_tensor_t e2f = lf_tensor_reshape(&e2, W * H, C, 1, 1);
    lf_tensor_t et = lf_test_zeros(LF_TYPE_F32, C, W * H, 1, 1);
    assert_int_equal(lf_op_permute(be, &et, &e2f, tr), 0);
    lf_tensor_t eq = lf_test_zeros(LF_TYPE_F32, C, W * H, 1, 1);
    assert_int_equal(lf_op_matmul(be, &eq, &et, wq, NULL), 0);
    lf_tensor_t eo = lf_test_zeros(LF_TYPE_F32, C, W * H, 1, 1);
    lf_tensor_t vq = eq, vk = et, vo = eo;
    lf_tensor_t *vs[3] = {&vq, &vk, &vo};
    for (int i = 0; i < 3; i++) {
        lf_tensor_t *t = vs[i];
        t->ne[0] = C / heads, t->ne[1] = W * H, t->ne[2] = heads, t->ne[3] = 1;
        t->nb[2] = (size_t)(C / heads) * 4, t->nb[3] = (size_t)(C * W * H) * 4;
    }
    assert_int_equal(lf_op_attention(be, &vo, &vq, &vk, &vk, NULL, 1.0f / sqrtf((float)(C / heads))), 0);
    for (int64_t i = 0; i < C * W * H; i++)
        assert_true(fabsf(got[i] - 2.0f * ((float *)eo.data)[i]) <= 1e-5f * (1 + fabsf(got[i])));

    /* A second run gives the same answer (nothing stale in reused memory)
     * and needs no new memory: scratch and the arena stay as they were. */
    float first = got[3];
    size_t scratch = lf_backend_workspace_bytes(be), peak = lf_graph_peak_bytes(g);
    assert_true(scratch > 0);
    assert_int_equal(lf_graph_compute(g), 0);
    assert_int_equal(lf_backend_workspace_bytes(be), scratch);
    assert_int_equal(lf_graph_peak_bytes(g), peak);
    assert_int_equal(lf_backend_tensor_get(be, out, got, lf_tensor_nbytes(out)), 0);
    assert_true(got[3] == first);

    /* Errors are sticky and reported by plan. */
    lf_graph_t *bad = lf_graph_new(be);
    lf_tensor_t *bx = lf_graph_input(bad, LF_TYPE_F32, 4, 4, 3, 1);
    lf_tensor_t *by = lf_graph_conv2d(bad, bx, cw, NULL, 1, 1); /* 3 channels vs 8 */
    assert_null(by);
    assert_null(lf_graph_silu(bad, by));
    assert_int_equal(lf_graph_plan(bad), LF_EINVAL);
    assert_true(strlen(lf_graph_errstr(bad)) > 0);
    lf_graph_destroy(&bad);

    free(got), free(xin.data), free(e1.data), free(e2.data), free(et.data), free(eq.data), free(eo.data);
    lf_graph_destroy(&g);
    assert_null(g);
    lf_pool_destroy(&pool);
    lf_backend_destroy(&be);
}

int main(void) {
    lf_test_seed();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_arena_known_case),
        cmocka_unit_test(test_arena_random),
        cmocka_unit_test(test_pool),
        cmocka_unit_test(test_pool_mapped),
        cmocka_unit_test(test_graph_release),
        cmocka_unit_test(test_graph),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
