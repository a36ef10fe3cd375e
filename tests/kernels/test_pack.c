/* test_pack: where the CPU backend keeps pre-packed weights
 * (lf_backend_set_pack). A mapped f16 weight under bf16 compute, read by a
 * graph whose after-node hook gives back the weight's pages
 * (lf_pool_release_after, as a streamed UNet's layers do):
 *   - memory and file give byte-identical products (the same packed bytes),
 *     both within bf16 rounding of the weight converted per call (off);
 *   - in a file, the copy's pages leave RSS after its layer ran and come
 *     back from the file at the next run; in memory they stay;
 *   - a network switched out (lf_pool_drop_pages) drops in-memory copies and
 *     keeps file-backed ones (their pages given back);
 *   - file mode is refused (off) for a missing or tmpfs directory.
 * Skips where the CPU has no bf16 compute (AVX512_BF16, oneDNN). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "lf_backend.h"
#include "lf_error.h"
#include "lf_graph.h"
#include "lf_pool.h"

enum { K = 1024, M = 2048, R = 32 }; /* W: [M out, K in] f16 = 4 MiB; R rows of x (16 or more: oneDNN in bf16) */
enum { CI = 256, CO = 256, HW = 16 };  /* test_pack_f32's 3x3 convolution: [CO, CI, 3, 3] on 2 x [CI, HW, HW] */
#define S_CONV_W ((size_t)CO * CI * 9)

/* RssFile of this process in KiB (shared file pages: a file-backed copy's). */
static long s_rss_file_kb(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "RssFile: %ld kB", &kb) == 1) break;
    if (f) fclose(f);
    return kb;
}

static uint16_t s_f16(float v) { /* small values, exact enough for a test weight */
    _Float16 h = (_Float16)v;
    uint16_t u;
    memcpy(&u, &h, sizeof u);
    return u;
}

typedef struct {
    char path[64];
    lf_backend_t *be;
    lf_pool_t *pool;
    lf_tensor_t *W, *x, *y;
    lf_graph_t *g;
} s_fix_t;

static void s_fix_new(s_fix_t *f, const char *path) {
    snprintf(f->path, sizeof f->path, "%s", path);
    f->be = lf_backend_cpu_new(2);
    assert_non_null(f->be);
    f->pool = lf_pool_new(f->be, 0);
    const int64_t ne[2] = {K, M};
    f->W = lf_pool_tensor_mapped(f->pool, "unet.w", LF_TYPE_F16, 2, ne, path, 4096);
    assert_non_null(f->W);
    f->g = lf_graph_new(f->be);
    f->x = lf_graph_input(f->g, LF_TYPE_F32, K, R, 1, 1);
    f->y = lf_graph_output(f->g, lf_graph_matmul(f->g, f->x, f->W, NULL));
    assert_non_null(f->y);
    assert_int_equal(lf_graph_plan(f->g), 0);
    float xin[R * K];
    for (int i = 0; i < R * K; i++) xin[i] = (float)((i * 7) % 11) * 0.125f - 0.5f;
    assert_int_equal(lf_backend_tensor_set(f->be, f->x, xin, sizeof xin), 0);
}

static void s_fix_destroy(s_fix_t *f) {
    lf_graph_destroy(&f->g);
    lf_pool_destroy(&f->pool);
    lf_backend_destroy(&f->be);
}

static void s_run(s_fix_t *f, float *out) {
    assert_int_equal(lf_backend_set_precision(f->be, LF_PRECISION_BF16), LF_PRECISION_BF16);
    assert_int_equal(lf_graph_compute(f->g), 0);
    assert_int_equal(lf_backend_set_precision(f->be, LF_PRECISION_F32), LF_PRECISION_F32);
    assert_int_equal(lf_backend_tensor_get(f->be, f->y, out, (size_t)R * M * sizeof *out), 0);
}

static char s_path[] = "/tmp/lf_test_pack_XXXXXX";

static int s_setup(void **state) {
    (void)state;
    int fd = mkstemp(s_path);
    if (fd < 0) return -1;
    /* W, then test_pack_f32's convolution weight (its own bytes: copies are
     * keyed by the weight's address). */
    const size_t nw = (size_t)K * M + S_CONV_W;
    uint16_t *w = malloc(nw * sizeof *w);
    for (size_t i = 0; i < nw; i++) w[i] = s_f16((float)((i * 13) % 17) * 0.0625f - 0.5f);
    ssize_t n = pwrite(fd, w, nw * sizeof *w, 4096);
    free(w);
    close(fd);
    return n == (ssize_t)(nw * sizeof *w) ? 0 : -1;
}

static int s_teardown(void **state) {
    (void)state;
    unlink(s_path);
    return 0;
}

/* A directory on a disk for the file mode (the test's working directory, in
 * the build tree), or NULL. */
static const char *s_disk_dir(void) {
    struct statfs fs;
    return statfs(".", &fs) == 0 && fs.f_type != 0x01021994 /* tmpfs */ ? "." : NULL;
}

static void test_pack_modes(void **state) {
    (void)state;
    s_fix_t f;
    s_fix_new(&f, s_path);
    if (lf_backend_set_precision(f.be, LF_PRECISION_BF16) != LF_PRECISION_BF16 || !s_disk_dir()) {
        fprintf(stderr, "SKIP pack modes: no bf16 compute (%s) or no disk directory\n", lf_backend_describe(f.be));
        s_fix_destroy(&f);
        skip();
    }
    lf_backend_set_precision(f.be, LF_PRECISION_F32);
    assert_int_equal(lf_backend_pack(f.be), LF_PACK_MEMORY); /* a new backend's default */
    const size_t wbytes = lf_tensor_nbytes(f.W);
    static float out[3][R * M], again[R * M];
    const lf_pack_t modes[3] = {LF_PACK_OFF, LF_PACK_MEMORY, LF_PACK_FILE};
    for (int m = 0; m < 3; m++) {
        assert_int_equal(lf_backend_set_pack(f.be, modes[m], s_disk_dir()), modes[m]);
        assert_int_equal(lf_backend_packed_bytes(f.be), 0); /* switching drops every copy */
        lf_graph_set_after(f.g, lf_pool_release_after, f.pool);
        long before = s_rss_file_kb();
        s_run(&f, out[m]);
        long after = s_rss_file_kb();
        size_t packed = lf_backend_packed_bytes(f.be);
        if (modes[m] == LF_PACK_OFF) {
            assert_int_equal(packed, 0);
            continue;
        }
        assert_int_equal(packed, wbytes); /* bf16 of f16: the same size */
        /* The layer ran and gave back its weight: in a file, the copy's pages
         * are out of RSS already; the next product reads them again. */
        fprintf(stderr, "  %s: RssFile %ld -> %ld KiB\n", lf_pack_name(modes[m]), before, after);
        assert_true(after - before < (long)(wbytes / 4096));
        lf_graph_set_after(f.g, NULL, NULL);
        before = s_rss_file_kb();
        s_run(&f, again);
        after = s_rss_file_kb();
        assert_memory_equal(again, out[m], sizeof again);
        if (modes[m] == LF_PACK_FILE) {
            /* Without the hook the copy stays mapped: back in RSS from the file. */
            assert_true(after - before >= (long)(wbytes / 1024) * 3 / 4);
            size_t given = lf_backend_release(f.be, f.W->data, wbytes, false);
            assert_true(given >= wbytes);
            assert_true(s_rss_file_kb() - before < (long)(wbytes / 4096));
        } else {
            assert_int_equal(lf_backend_release(f.be, f.W->data, wbytes, false), 0); /* anonymous: stays */
        }
        /* The network switched out: a file-backed copy stays (no repacking
         * at the next image), an in-memory one goes. */
        lf_pool_drop_pages(f.pool, "unet.");
        assert_int_equal(lf_backend_packed_bytes(f.be), modes[m] == LF_PACK_FILE ? wbytes : 0);
        s_run(&f, again);
        assert_memory_equal(again, out[m], sizeof again);
    }
    /* The same packed bytes in memory and in a file: the same products. */
    assert_memory_equal(out[1], out[2], sizeof out[1]);
    /* Converted per call (off) vs packed: bf16 rounding of the same weight. */
    for (int i = 0; i < R * M; i++) assert_true(fabsf(out[0][i] - out[1][i]) <= 1e-2f * (1.0f + fabsf(out[0][i])));
    s_fix_destroy(&f);
}

/* f32 compute of a mapped f16 weight: a 3x3 convolution and a linear layer
 * (the UNet's weight-bound shapes in small). Packed (memory, file) the
 * weight is widened to f32 once, in the primitive's layout, so the copies
 * are twice the stored bytes; the products equal the per-call conversion's
 * (off) within f32 summation-order rounding, and memory and file give the
 * same bytes. LF_CPU_PACK_F32 (MiB, read when a backend is made) caps the
 * f32 copies: 0 keeps none, 4 only the convolution's. */

typedef struct {
    lf_backend_t *be;
    lf_pool_t *pool;
    lf_tensor_t *Wc, *Wm, *x, *xm, *y, *ym;
    lf_graph_t *g;
} s_f32_t;

static void s_f32_new(s_f32_t *f) {
    f->be = lf_backend_cpu_new(2);
    assert_non_null(f->be);
    f->pool = lf_pool_new(f->be, 0);
    const int64_t cne[4] = {3, 3, CI, CO}, mne[2] = {K, M};
    f->Wc = lf_pool_tensor_mapped(f->pool, "unet.cw", LF_TYPE_F16, 4, cne, s_path, 4096 + (uint64_t)K * M * 2);
    f->Wm = lf_pool_tensor_mapped(f->pool, "unet.mw", LF_TYPE_F16, 2, mne, s_path, 4096);
    assert_non_null(f->Wc);
    assert_non_null(f->Wm);
    f->g = lf_graph_new(f->be);
    f->x = lf_graph_input(f->g, LF_TYPE_F32, HW, HW, CI, 2);
    f->xm = lf_graph_input(f->g, LF_TYPE_F32, K, R, 1, 1);
    f->y = lf_graph_output(f->g, lf_graph_conv2d(f->g, f->x, f->Wc, NULL, 1, 1));
    f->ym = lf_graph_output(f->g, lf_graph_matmul(f->g, f->xm, f->Wm, NULL));
    assert_non_null(f->y);
    assert_non_null(f->ym);
    assert_int_equal(lf_graph_plan(f->g), 0);
    static float xin[2 * CI * HW * HW], xmin[R * K];
    for (int i = 0; i < 2 * CI * HW * HW; i++) xin[i] = (float)((i * 5) % 13) * 0.0625f - 0.375f;
    for (int i = 0; i < R * K; i++) xmin[i] = (float)((i * 7) % 11) * 0.125f - 0.5f;
    assert_int_equal(lf_backend_tensor_set(f->be, f->x, xin, sizeof xin), 0);
    assert_int_equal(lf_backend_tensor_set(f->be, f->xm, xmin, sizeof xmin), 0);
}

static void s_f32_destroy(s_f32_t *f) {
    lf_graph_destroy(&f->g);
    lf_pool_destroy(&f->pool);
    lf_backend_destroy(&f->be);
}

enum { NY = 2 * CO * HW * HW, NYM = R * M };

static void s_f32_run(s_f32_t *f, float *y, float *ym) {
    assert_int_equal(lf_backend_set_precision(f->be, LF_PRECISION_F32), LF_PRECISION_F32);
    assert_int_equal(lf_graph_compute(f->g), 0);
    assert_int_equal(lf_backend_tensor_get(f->be, f->y, y, NY * sizeof *y), 0);
    assert_int_equal(lf_backend_tensor_get(f->be, f->ym, ym, NYM * sizeof *ym), 0);
}

static void s_close(const float *a, const float *b, int n) {
    for (int i = 0; i < n; i++)
        if (!(fabsf(a[i] - b[i]) <= 1e-5f * (1.0f + fabsf(a[i])))) fail_msg("[%d] %g vs %g", i, a[i], b[i]);
}

static void test_pack_f32(void **state) {
    (void)state;
    const char *was = getenv("LF_CPU_PACK_F32");
    unsetenv("LF_CPU_PACK_F32");
    /* The convolution on the GEMM / brgconv path, which packs f32 copies:
     * since session 12 Winograd takes 16x16 at batch 2 in f32, and keeps
     * no copy (its weights are transformed per call). */
    setenv("LF_CPU_CONV_ALGO", "gemm", 1);
    s_f32_t f;
    s_f32_new(&f);
    if (lf_backend_pack(f.be) == LF_PACK_OFF || !s_disk_dir()) {
        s_f32_destroy(&f);
        unsetenv("LF_CPU_CONV_ALGO");
        skip(); /* built without oneDNN, or no disk directory */
    }
    const size_t wbytes = lf_tensor_nbytes(f.Wc) + lf_tensor_nbytes(f.Wm);
    static float y[3][NY], ym[3][NYM], again[NY], againm[NYM];
    const lf_pack_t modes[3] = {LF_PACK_OFF, LF_PACK_MEMORY, LF_PACK_FILE};
    for (int m = 0; m < 3; m++) {
        assert_int_equal(lf_backend_set_pack(f.be, modes[m], s_disk_dir()), modes[m]);
        lf_graph_set_after(f.g, lf_pool_release_after, f.pool);
        s_f32_run(&f, y[m], ym[m]);
        const size_t packed = lf_backend_packed_bytes(f.be);
        fprintf(stderr, "  f32 %s: %zu bytes packed (weights %zu as stored)\n", lf_pack_name(modes[m]), packed, wbytes);
        /* f32 copies of both f16 weights: twice their bytes (a padded layout
         * may add a little). */
        if (modes[m] == LF_PACK_OFF) assert_int_equal(packed, 0);
        else assert_true(packed >= 2 * wbytes && packed <= 2 * wbytes + wbytes / 8);
        /* Run again from the copies (file: their pages read back). */
        s_f32_run(&f, again, againm);
        assert_memory_equal(again, y[m], sizeof again);
        assert_memory_equal(againm, ym[m], sizeof againm);
    }
    assert_memory_equal(y[1], y[2], sizeof y[1]);
    assert_memory_equal(ym[1], ym[2], sizeof ym[1]);
    s_close(y[0], y[1], NY);
    s_close(ym[0], ym[1], NYM);
    s_f32_destroy(&f);
    /* Off by the knob: the products as converted per call. */
    setenv("LF_CPU_PACK_F32", "0", 1);
    s_f32_new(&f);
    assert_int_equal(lf_backend_set_pack(f.be, LF_PACK_MEMORY, NULL), LF_PACK_MEMORY);
    s_f32_run(&f, again, againm);
    assert_int_equal(lf_backend_packed_bytes(f.be), 0);
    assert_memory_equal(again, y[0], sizeof again);
    assert_memory_equal(againm, ym[0], sizeof againm);
    s_f32_destroy(&f);
    /* A cap of 4 MiB (LF_CPU_PACK_F32 in MiB): the convolution's 2.25 MiB
     * f32 copy is made, the linear layer's 8 MiB one is not (the product
     * as converted per call); the products unchanged. */
    setenv("LF_CPU_PACK_F32", "4", 1);
    s_f32_new(&f);
    assert_int_equal(lf_backend_set_pack(f.be, LF_PACK_MEMORY, NULL), LF_PACK_MEMORY);
    s_f32_run(&f, again, againm);
    assert_int_equal(lf_backend_packed_bytes(f.be), 2 * lf_tensor_nbytes(f.Wc));
    assert_memory_equal(again, y[1], sizeof again);
    assert_memory_equal(againm, ym[0], sizeof againm);
    s_f32_destroy(&f);
    if (was) setenv("LF_CPU_PACK_F32", was, 1);
    else unsetenv("LF_CPU_PACK_F32");
    unsetenv("LF_CPU_CONV_ALGO");
}

static void test_pack_dir_refused(void **state) {
    (void)state;
    lf_backend_t *be = lf_backend_cpu_new(1);
    assert_non_null(be);
    if (lf_backend_pack(be) == LF_PACK_OFF && lf_backend_set_pack(be, LF_PACK_MEMORY, NULL) == LF_PACK_OFF) {
        lf_backend_destroy(&be);
        skip(); /* built without oneDNN: nothing is packed */
    }
    assert_int_equal(lf_backend_set_pack(be, LF_PACK_FILE, "/nonexistent/lf-pack"), LF_PACK_OFF);
    struct statfs fs;
    if (statfs("/dev/shm", &fs) == 0 && fs.f_type == 0x01021994)
        assert_int_equal(lf_backend_set_pack(be, LF_PACK_FILE, "/dev/shm"), LF_PACK_OFF);
    assert_int_equal(lf_backend_pack(be), LF_PACK_OFF);
    lf_pack_t p = LF_PACK_OFF;
    assert_int_equal(lf_pack_parse("file", &p), 0);
    assert_int_equal(p, LF_PACK_FILE);
    assert_int_equal(lf_pack_parse("auto", &p), LF_EINVAL);
    assert_string_equal(lf_pack_name(LF_PACK_MEMORY), "memory");
    lf_backend_destroy(&be);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pack_modes),
        cmocka_unit_test(test_pack_f32),
        cmocka_unit_test(test_pack_dir_refused),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
