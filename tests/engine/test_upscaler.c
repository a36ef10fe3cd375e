/* Tests of the upscaler networks (lf_upscaler) against spandrel 0.4:
 * tiny random-weight ESRGAN files in the old, Real-ESRGAN and BSRGAN key
 * layouts (x4, and x2 with the pixel-unshuffle input, nested under
 * "params_ema" in a .pth) and SRVGGNetCompact (.pth and .safetensors),
 * written with spandrel's own classes by
 * tests/reference/make_upscaler_fixtures.py together with spandrel's outputs
 * and what spandrel's loader detected. Error: max |ours - ref| / max |ref|
 * at most 1e-4 in f32.
 *
 * Tiling: with overlap/4 at least the network's receptive-field radius the
 * tiled run equals the untiled one to float rounding (asserted: 1e-5
 * relative); with a small overlap the seam error is measured and printed. */
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
#include "lf_safetensors.h"
#include "lf_test_ref.h"
#include "lf_test_util.h"
#include "lf_upscaler.h"

typedef struct {
    lf_backend_t *be;
    lf_pool_t *pool;
    lf_upscaler_t *u;
} s_ctx_t;

static void s_open(s_ctx_t *c, const char *rel) {
    char p[1024], err[512] = "";
    c->be = lf_backend_cpu_new(0);
    c->pool = lf_pool_new(c->be, 0);
    c->u = NULL;
    int rc = lf_upscaler_new(&c->u, lf_test_fixture(p, sizeof p, rel), c->be, c->pool,
                             LF_TYPE_F32, err, sizeof err);
    if (rc) printf("%s\n", err);
    assert_int_equal(rc, 0);
}

static void s_close(s_ctx_t *c) {
    lf_upscaler_destroy(&c->u);
    lf_pool_destroy(&c->pool);
    lf_backend_destroy(&c->be);
}

/* Loads model, checks the detection against spandrel's and the untiled
 * output against spandrel's forward. */
static void s_parity(const char *model, const char *ref_name, lf_upscaler_layout_t layout) {
    char p[1024], rel[256], err[512] = "";
    s_ctx_t c;
    snprintf(rel, sizeof rel, "upscale/%s", model);
    s_open(&c, rel);
    const lf_upscaler_info_t *I = lf_upscaler_info(c.u);
    lf_safetensors_t *ref = NULL;
    snprintf(rel, sizeof rel, "upscale/%s.ref.safetensors", ref_name);
    assert_int_equal(
        lf_safetensors_open(&ref, lf_test_fixture(p, sizeof p, rel), err, sizeof err), 0);
    /* Detection: spandrel's arch id, scale, channels and the tags "<nf>nf",
     * "<nb>nb" (ESRGAN) / "<nc>nc" (Compact). */
    assert_string_equal(lf_upscaler_arch_name(I->arch), lf_safetensors_metadata(ref, "arch"));
    assert_int_equal(I->layout, layout);
    assert_int_equal(I->scale, atoi(lf_safetensors_metadata(ref, "scale")));
    assert_int_equal(I->in_ch, atoi(lf_safetensors_metadata(ref, "in_channels")));
    assert_int_equal(I->out_ch, atoi(lf_safetensors_metadata(ref, "out_channels")));
    char tags[64];
    snprintf(tags, sizeof tags, "[\"%dnf\", \"%d%s\"]", I->nf, I->nb,
             I->arch == LF_UPSCALER_ESRGAN ? "nb" : "nc");
    assert_string_equal(tags, lf_safetensors_metadata(ref, "tags"));
    const lf_tensor_info_t *xi = lf_safetensors_find(ref, "x");
    const int h = (int)xi->shape[2], w = (int)xi->shape[3];
    /* spandrel 0.4 crops a pixel-unshuffle model's output with the body's
     * scale (4) instead of the model's (2), so for odd sizes its y still
     * holds the reflect padding's pixels: compare the image's own region. */
    const lf_tensor_info_t *yi = lf_safetensors_find(ref, "y");
    const int H = h * I->scale, W = w * I->scale, yh = (int)yi->shape[2], yw = (int)yi->shape[3];
    assert_true(yh >= H && yw >= W && yh - H < 4 && yw - W < 4);
    const size_t n = (size_t)I->out_ch * H * W;
    float *x = lf_test_ref_f32(ref, "x", NULL), *yfull = lf_test_ref_f32(ref, "y", NULL);
    float *want = malloc(n * sizeof *want);
    for (int ch = 0; ch < I->out_ch; ch++)
        for (int y = 0; y < H; y++)
            memcpy(want + ((size_t)ch * H + y) * W, yfull + ((size_t)ch * yh + y) * yw,
                   (size_t)W * sizeof *want);
    free(yfull);
    float *o = malloc(n * sizeof *o);
    assert_int_equal(lf_upscaler_run(c.u, x, h, w, o), 0);
    double e = lf_test_relerr(o, want, n);
    printf("  %-30s %s/%s x%d nf %d nb %d gc %d shuffle %d: %dx%d, rel err %.3g\n", model,
           lf_upscaler_arch_name(I->arch), lf_upscaler_layout_name(I->layout), I->scale, I->nf,
           I->nb, I->gc, I->shuffle, w, h, e);
    assert_true(e <= 1e-4);
    /* Replay of the cached graph gives the same numbers. */
    float *o2 = malloc(n * sizeof *o2);
    assert_int_equal(lf_upscaler_run(c.u, x, h, w, o2), 0);
    assert_memory_equal(o, o2, n * sizeof *o);
    free(x), free(want), free(o), free(o2);
    lf_safetensors_destroy(&ref);
    s_close(&c);
}

static void test_esrgan_old_x4(void **state) {
    (void)state;
    s_parity("esrgan_old_x4.pth", "esrgan_old_x4", LF_UPSCALER_LAYOUT_OLD);
}

static void test_esrgan_new_x4(void **state) {
    (void)state;
    s_parity("esrgan_new_x4.safetensors", "esrgan_new_x4", LF_UPSCALER_LAYOUT_NEW);
}

static void test_esrgan_bsrgan_x4(void **state) {
    (void)state;
    s_parity("esrgan_bsrgan_x4.safetensors", "esrgan_bsrgan_x4", LF_UPSCALER_LAYOUT_BSRGAN);
}

static void test_esrgan_new_x2_unshuffle(void **state) {
    (void)state;
    s_parity("esrgan_new_x2.pth", "esrgan_new_x2", LF_UPSCALER_LAYOUT_NEW);
}

static void test_compact(void **state) {
    (void)state;
    s_parity("compact_x4.pth", "compact_x4", LF_UPSCALER_LAYOUT_COMPACT);
    s_parity("compact_x4.safetensors", "compact_x4", LF_UPSCALER_LAYOUT_COMPACT);
}

static float *s_image(int C, int h, int w) {
    float *x = malloc((size_t)C * h * w * sizeof *x);
    for (int c = 0; c < C; c++)
        for (int y = 0; y < h; y++)
            for (int i = 0; i < w; i++)
                x[((size_t)c * h + y) * w + i] =
                    0.5f + 0.4f * sinf(0.37f * (float)i + 0.23f * (float)y * (float)(c + 1)) *
                               cosf(0.11f * (float)(i * y % 17));
    return x;
}

static int s_count(void *user, int done, int total) {
    int *calls = user;
    (*calls)++;
    assert_true(done >= 1 && done <= total);
    return 0;
}

/* Tiled against untiled on one model; returns the relative difference. */
static double s_tiled(const char *model, int h, int w, int tile, int overlap, int *tiles) {
    s_ctx_t c;
    char rel[256];
    snprintf(rel, sizeof rel, "upscale/%s", model);
    s_open(&c, rel);
    const lf_upscaler_info_t *I = lf_upscaler_info(c.u);
    const size_t n = (size_t)I->out_ch * h * I->scale * w * I->scale;
    float *x = s_image(I->in_ch, h, w), *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
    assert_int_equal(lf_upscaler_run(c.u, x, h, w, a), 0);
    int calls = 0;
    assert_int_equal(lf_upscaler_upscale(c.u, x, h, w, tile, overlap, b, s_count, &calls), 0);
    double e = lf_test_relerr(b, a, n);
    printf("  %-24s %dx%d tile %d overlap %d: %d tiles, tiled vs untiled rel err %.3g\n", model,
           w, h, tile, overlap, calls, e);
    *tiles = calls;
    free(x), free(a), free(b);
    s_close(&c);
    return e;
}

static void test_tiled_exact(void **state) {
    (void)state;
    int t;
    /* Compact, 2 convs: receptive-field radius 4 (+1 for the pixel an
     * output pixel lies in): overlap 24 -> 6. */
    assert_true(s_tiled("compact_x4.safetensors", 61, 70, 32, 24, &t) <= 1e-5);
    assert_true(t >= 9);
    /* ESRGAN x4, 1 block: radius 17 input pixels + the HR convs (< 1):
     * overlap 80 -> 20. */
    assert_true(s_tiled("esrgan_old_x4.pth", 150, 170, 120, 80, &t) <= 1e-5);
    assert_true(t >= 4);
    /* x2 with the unshuffle (odd sizes: reflect padding; tiles on even
     * pixels): 17 convs at half resolution, radius 36: overlap 152 -> 38. */
    assert_true(s_tiled("esrgan_new_x2.pth", 321, 309, 304, 152, &t) <= 1e-5);
    assert_true(t >= 4);
}

static void test_tiled_seams(void **state) {
    (void)state;
    int t;
    /* Overlaps smaller than the receptive field: the seam error the default
     * settings would have on these (random, so unusually sensitive) nets. */
    double e1 = s_tiled("compact_x4.safetensors", 61, 70, 32, 8, &t);
    double e2 = s_tiled("esrgan_old_x4.pth", 150, 170, 64, 32, &t);
    assert_true(isfinite(e1) && isfinite(e2));
    /* A tile larger than the image is one run, bit for bit. */
    assert_true(s_tiled("esrgan_new_x4.safetensors", 20, 24, 256, 32, &t) == 0);
    assert_int_equal(t, 1);
}

/* Degenerate tilings: one-pixel tiles without overlap, an overlap larger
 * than the tile, tiles cut in one axis only, the smallest images: finite
 * output of the right size, every tile reported. */
static void s_edge(const char *model, int h, int w, int tile, int overlap, int want_tiles) {
    s_ctx_t c;
    char rel[256];
    snprintf(rel, sizeof rel, "upscale/%s", model);
    s_open(&c, rel);
    const lf_upscaler_info_t *I = lf_upscaler_info(c.u);
    const size_t n = (size_t)I->out_ch * h * I->scale * w * I->scale;
    float *x = s_image(I->in_ch, h, w), *y = malloc(n * sizeof *y);
    int calls = 0;
    assert_int_equal(lf_upscaler_upscale(c.u, x, h, w, tile, overlap, y, s_count, &calls), 0);
    for (size_t i = 0; i < n; i++) assert_true(isfinite(y[i]));
    assert_int_equal(calls, want_tiles);
    free(x), free(y);
    s_close(&c);
}

static int s_stop(void *user, int done, int total) {
    (void)user, (void)total;
    return done >= 2;
}

static void test_tiled_edges(void **state) {
    (void)state;
    s_edge("compact_x4.pth", 3, 5, 1, 0, 15);
    s_edge("compact_x4.pth", 1, 1, 0, 0, 1);
    s_edge("compact_x4.pth", 9, 40, 16, 30, 4);  /* overlap clamped to 8; one row of 4 tiles */
    s_edge("esrgan_new_x2.pth", 3, 2, 2, 2, 2);      /* padded to 4x2: 2 tiles of 2 */
    s_edge("esrgan_new_x2.pth", 2, 2, 0, 0, 1);
    s_edge("esrgan_new_x2.pth", 7, 9, 3, 1, 4 * 5);  /* odd tile: 2; padded 8x10 */
    /* A progress callback that stops: LF_ECANCELED. */
    s_ctx_t c;
    s_open(&c, "upscale/compact_x4.pth");
    float *x = s_image(3, 20, 20), *y = malloc((size_t)3 * 80 * 80 * sizeof *y);
    assert_int_equal(lf_upscaler_upscale(c.u, x, 20, 20, 8, 2, y, s_stop, NULL), LF_ECANCELED);
    free(x), free(y);
    s_close(&c);
}

static void test_bad_files(void **state) {
    (void)state;
    char p[1024], err[512] = "";
    lf_backend_t *be = lf_backend_cpu_new(1);
    lf_pool_t *pool = lf_pool_new(be, 0);
    lf_upscaler_t *u = NULL;
    int rc = lf_upscaler_new(&u,
                             lf_test_fixture(p, sizeof p, "upscale/not_an_upscaler.safetensors"),
                             be, pool, LF_TYPE_F32, err, sizeof err);
    printf("  unknown: %s (%s)\n", err, lf_strerror(rc));
    assert_int_equal(rc, LF_EFORMAT);
    assert_null(u);
    assert_non_null(strstr(err, "not_an_upscaler.safetensors"));
    /* A TAESD decoder is not an upscaler either. */
    rc = lf_upscaler_new(&u, lf_test_fixture(p, sizeof p, "models/taesd_tiny_sd.safetensors"), be,
                         pool, LF_TYPE_F32, err, sizeof err);
    assert_int_equal(rc, LF_EFORMAT);
    assert_non_null(strstr(err, "taesd_tiny_sd.safetensors"));
    /* A missing file names itself. */
    rc = lf_upscaler_new(&u, "/nonexistent/4x.pth", be, pool, LF_TYPE_F32, err, sizeof err);
    assert_true(rc < 0);
    assert_non_null(strstr(err, "/nonexistent/4x.pth"));
    /* Bad arguments. */
    s_ctx_t c;
    s_open(&c, "upscale/compact_x4.pth");
    float x[12] = {0}, y[12 * 16];
    assert_int_equal(lf_upscaler_run(c.u, x, 0, 4, y), LF_EINVAL);
    assert_int_equal(lf_upscaler_run(c.u, NULL, 2, 2, y), LF_EINVAL);
    s_close(&c);
    lf_pool_destroy(&pool);
    lf_backend_destroy(&be);
}

/* Writes a safetensors file of zero-filled f32 tensors: names[i] with the
 * PyTorch shape shapes[i] (up to 4 dims, trailing 0s ignored). */
static void s_write_file(const char *path, const char *const *names, const int64_t (*shapes)[4],
                         size_t n) {
    lf_tensor_info_t t[16];
    void *bufs[16];
    assert_true(n <= 16);
    for (size_t i = 0; i < n; i++) {
        memset(&t[i], 0, sizeof t[i]);
        t[i].name = names[i];
        t[i].dtype = LF_DTYPE_F32;
        int64_t numel = 1;
        for (int d = 0; d < 4 && shapes[i][d]; d++) {
            t[i].shape[t[i].ndim++] = shapes[i][d];
            numel *= shapes[i][d];
        }
        bufs[i] = calloc((size_t)numel, 4);
        t[i].data = bufs[i];
        t[i].nbytes = (size_t)numel * 4;
    }
    assert_int_equal(lf_safetensors_write(path, t, n, NULL, 0), 0);
    for (size_t i = 0; i < n; i++) free(bufs[i]);
}

static int s_load_err(const char *path, char *err, size_t errlen) {
    lf_backend_t *be = lf_backend_cpu_new(1);
    lf_pool_t *pool = lf_pool_new(be, 0);
    lf_upscaler_t *u = NULL;
    int rc = lf_upscaler_new(&u, path, be, pool, LF_TYPE_F32, err, errlen);
    printf("  %s -> %s: %s\n", strrchr(path, '/') + 1, lf_strerror(rc), err);
    assert_null(u);
    lf_pool_destroy(&pool);
    lf_backend_destroy(&be);
    return rc;
}

/* Damaged files: refused with an error naming the file and the tensor. */
static void test_bad_shapes(void **state) {
    (void)state;
    char dir[] = "/tmp/lf_upscaler_test.XXXXXX", p[256], err[512];
    assert_non_null(mkdtemp(dir));
    /* Compact, 0 body convs, x4: valid; then a PReLU of the wrong size. */
    const char *cn[] = {"body.0.weight", "body.0.bias", "body.1.weight", "body.2.weight",
                        "body.2.bias"};
    const int64_t cs[][4] = {{8, 3, 3, 3}, {8}, {8}, {48, 8, 3, 3}, {48}};
    snprintf(p, sizeof p, "%s/ok.safetensors", dir);
    s_write_file(p, cn, cs, 5);
    lf_backend_t *be = lf_backend_cpu_new(1);
    lf_pool_t *pool = lf_pool_new(be, 0);
    lf_upscaler_t *u = NULL;
    assert_int_equal(lf_upscaler_new(&u, p, be, pool, LF_TYPE_F32, err, sizeof err), 0);
    assert_int_equal(lf_upscaler_info(u)->scale, 4);
    assert_int_equal(lf_upscaler_info(u)->nb, 0);
    lf_upscaler_destroy(&u);
    lf_pool_destroy(&pool);
    lf_backend_destroy(&be);
    const int64_t cs2[][4] = {{8, 3, 3, 3}, {8}, {5}, {48, 8, 3, 3}, {48}};
    snprintf(p, sizeof p, "%s/prelu.safetensors", dir);
    s_write_file(p, cn, cs2, 5);
    assert_int_equal(s_load_err(p, err, sizeof err), LF_EFORMAT);
    assert_non_null(strstr(err, "prelu.safetensors"));
    assert_non_null(strstr(err, "body.1.weight"));
    /* Compact whose last conv has 7 outputs: no scale^2 * channels. */
    const int64_t cs3[][4] = {{8, 3, 3, 3}, {8}, {8}, {7, 8, 3, 3}, {7}};
    snprintf(p, sizeof p, "%s/last.safetensors", dir);
    s_write_file(p, cn, cs3, 5);
    assert_int_equal(s_load_err(p, err, sizeof err), LF_EFORMAT);
    assert_non_null(strstr(err, "last.safetensors"));
    /* ESRGAN (Real-ESRGAN names) with one dense conv of the wrong width. */
    const char *en[] = {"conv_first.weight", "conv_first.bias", "body.0.rdb1.conv1.weight",
                        "conv_body.weight", "conv_last.weight"};
    const int64_t es[][4] = {{8, 3, 3, 3}, {8}, {4, 9, 3, 3}, {8, 8, 3, 3}, {3, 8, 3, 3}};
    snprintf(p, sizeof p, "%s/esrgan.safetensors", dir);
    s_write_file(p, en, es, 5);
    assert_int_equal(s_load_err(p, err, sizeof err), LF_EFORMAT);
    assert_non_null(strstr(err, "esrgan.safetensors"));
    assert_non_null(strstr(err, "body.0.rdb1.conv1.weight"));
    /* ESRGAN whose first conv is not 3x3. */
    const int64_t es2[][4] = {{8, 3}, {8}, {4, 8, 3, 3}, {8, 8, 3, 3}, {3, 8, 3, 3}};
    snprintf(p, sizeof p, "%s/first.safetensors", dir);
    s_write_file(p, en, es2, 5);
    assert_int_equal(s_load_err(p, err, sizeof err), LF_EFORMAT);
    assert_non_null(strstr(err, "first.safetensors"));
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static void test_probe(void **state) {
    (void)state;
    char p[1024], err[512] = "";
    lf_weights_t *w = NULL;
    assert_int_equal(
        lf_weights_open(&w, lf_test_fixture(p, sizeof p, "upscale/esrgan_new_x2.pth"), err,
                        sizeof err),
        0);
    lf_upscaler_info_t I;
    assert_int_equal(lf_upscaler_probe(w, &I, err, sizeof err), 0);
    assert_string_equal(I.prefix, "params_ema.");
    assert_int_equal(I.shuffle, 2);
    assert_int_equal(I.n_up, 2);
    assert_int_equal(I.scale, 2);
    assert_int_equal(I.gc, 4);
    assert_true(I.params > 10000);
    lf_weights_destroy(&w);
}

/* The 8-bit path is the float path on v / 255, rounded and clamped, and
 * bgr swaps the channels on the way in and out. */
static void test_rgb8(void **state) {
    (void)state;
    s_ctx_t c;
    s_open(&c, "upscale/compact_x4.safetensors");
    const int w = 9, h = 7, s = 4, n = w * h, N = n * s * s;
    uint8_t src[9 * 7 * 3], swp[9 * 7 * 3], *a = malloc((size_t)N * 3), *b = malloc((size_t)N * 3);
    for (int i = 0; i < n * 3; i++) src[i] = (uint8_t)((i * 37 + i / 3 * 11) & 255);
    for (int i = 0; i < n; i++)
        for (int k = 0; k < 3; k++) swp[i * 3 + k] = src[i * 3 + 2 - k];
    float *x = malloc((size_t)3 * n * sizeof *x), *y = malloc((size_t)3 * N * sizeof *y);
    for (int i = 0; i < n; i++)
        for (int k = 0; k < 3; k++) x[k * n + i] = (float)src[i * 3 + k] / 255.0f;
    assert_int_equal(lf_upscaler_run(c.u, x, h, w, y), 0);
    assert_int_equal(lf_upscaler_upscale_rgb8(c.u, src, w, h, 0, 0, 0, a, NULL, NULL), 0);
    int clamped = 0;
    for (int i = 0; i < N; i++)
        for (int k = 0; k < 3; k++) {
            float v = y[k * N + i];
            clamped += v < 0.0f || v > 1.0f;
            v = v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
            assert_int_equal(a[i * 3 + k], (int)lrintf(v * 255.0f));
        }
    printf("  rgb8: %d of %d values clamped\n", clamped, 3 * N);
    /* bgr on src == rgb on the swapped image, swapped back. */
    assert_int_equal(lf_upscaler_upscale_rgb8(c.u, src, w, h, 0, 0, 1, a, NULL, NULL), 0);
    assert_int_equal(lf_upscaler_upscale_rgb8(c.u, swp, w, h, 0, 0, 0, b, NULL, NULL), 0);
    for (int i = 0; i < N; i++)
        for (int k = 0; k < 3; k++) assert_int_equal(a[i * 3 + k], b[i * 3 + 2 - k]);
    free(a), free(b), free(x), free(y);
    s_close(&c);
}

static void s_skipped(void *user, const char *path, const char *why) {
    int *k = user;
    (*k)++;
    printf("  skipped %s: %s\n", strrchr(path, '/') + 1, why);
}

/* The fixture folder as a models/upscale_models: five upscalers, the second
 * compact_x4 file left out as a duplicate name, the reference outputs and
 * the stray file left out as not upscalers; a missing folder adds nothing. */
static void test_scan(void **state) {
    (void)state;
    char d[1024];
    const char *dirs[2] = {lf_test_fixture(d, sizeof d, "upscale"), "/nonexistent/ESRGAN"};
    lf_upscaler_entry_t *e = NULL;
    size_t n = 0;
    int skipped = 0;
    assert_int_equal(lf_upscaler_scan(dirs, 2, &e, &n, s_skipped, &skipped), 0);
    assert_int_equal(n, 5);
    assert_int_equal(skipped, 7);
    const char *names[5] = {"compact_x4", "esrgan_bsrgan_x4", "esrgan_new_x2", "esrgan_new_x4",
                            "esrgan_old_x4"};
    const int scales[5] = {4, 4, 2, 4, 4};
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(e[i].name, names[i]);
        assert_int_equal(e[i].info.scale, scales[i]);
        assert_non_null(strstr(e[i].path, "/upscale/"));
    }
    assert_int_equal(e[0].info.arch, LF_UPSCALER_COMPACT);
    assert_non_null(strstr(e[0].path, "compact_x4.pth"));
    lf_upscaler_entries_free(e, n);
    e = NULL;
    assert_int_equal(lf_upscaler_scan(dirs + 1, 1, &e, &n, NULL, NULL), 0);
    assert_int_equal(n, 0);
    assert_null(e);
    lf_upscaler_entries_free(NULL, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_esrgan_old_x4),
        cmocka_unit_test(test_esrgan_new_x4),
        cmocka_unit_test(test_esrgan_bsrgan_x4),
        cmocka_unit_test(test_esrgan_new_x2_unshuffle),
        cmocka_unit_test(test_compact),
        cmocka_unit_test(test_probe),
        cmocka_unit_test(test_tiled_exact),
        cmocka_unit_test(test_tiled_seams),
        cmocka_unit_test(test_tiled_edges),
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_rgb8),
        cmocka_unit_test(test_scan),
        cmocka_unit_test(test_bad_shapes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
