/* test_store_blobs: lf_store with an external image store (lf_blobstore,
 * directory backend) against a real redis-server: a result's PNGs become
 * files and Redis keeps only their names; the bytes read back are the ones
 * written; a late result fenced off leaves no files; retention (result TTL)
 * and a job dropped from history delete the files through
 * lf_store_blobs_sweep; a store that fails makes the job fail with the
 * store's sentence instead of losing it. Also the directory backend alone. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lf_blobstore.h"
#include "lf_error.h"
#include "lf_id.h"
#include "lf_store.h"
#include "lf_testredis.h"

static lf_testredis_t *g_redis;

typedef struct {
    char dir[256];
    lf_blobstore_t *blobs;
    lf_store_t *s;
} s_fix_t;

static int64_t s_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int s_setup(void **state) {
    s_fix_t *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "%s/images-XXXXXX", lf_testredis_dir(g_redis));
    assert_non_null(mkdtemp(f->dir));
    char spec[300], err[512] = "";
    snprintf(spec, sizeof spec, "dir:%s", f->dir);
    lf_blobstore_opts_t bo = {.spec = spec};
    f->blobs = lf_blobstore_new(&bo, err, sizeof err);
    assert_non_null(f->blobs);
    lf_store_opts_t o = {.port = lf_testredis_port(g_redis), .prefix = "tb:", .blobs = f->blobs};
    f->s = lf_store_new(&o, err, sizeof err);
    assert_non_null(f->s);
    assert_int_equal(lf_store_flush(f->s), 0);
    *state = f;
    return 0;
}

static int s_teardown(void **state) {
    s_fix_t *f = *state;
    lf_store_destroy(&f->s);
    lf_blobstore_destroy(&f->blobs);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

/* Files in the folder whose name contains `part` (NULL: all .png). */
static int s_count(const char *dir, const char *part) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.' && (!part || strstr(e->d_name, part))) n++;
    closedir(d);
    return n;
}

static void s_submit_claim(lf_store_t *s, int64_t now, const char *worker, char *id, uint32_t *att) {
    lf_job_params_t p = {.model = "m1", .prompt = "a cat", .width = 64, .height = 64, .steps = 4,
                         .batch_size = 1, .seed = 42, .cfg_scale = 7.0};
    lf_store_submit_t j = {.params = &p, .priority = LF_PRIO_NORMAL};
    lf_store_submitted_t out;
    assert_int_equal(lf_store_submit(s, &j, 1, now, &out), 0);
    assert_int_equal(out.code, 0);
    strcpy(id, out.id);
    lf_store_pair_t pr = {id, worker};
    lf_store_claim_t c;
    assert_int_equal(lf_store_claim(s, &pr, 1, "b1", now, &c), 0);
    assert_int_equal(c.code, 0);
    *att = c.attempt;
    lf_store_claim_clear(&c);
}

static uint8_t g_png0[] = {0x89, 'P', 'N', 'G', 0}, g_png1[] = {0x89, 'P', 'N', 'G', 1, 2};

static void test_dir_results(void **state) {
    s_fix_t *f = *state;
    lf_store_limits_t lim = {.result_ttl_s = 1};
    lf_store_set_limits(f->s, &lim);
    int64_t now = s_now();
    char id[40];
    uint32_t att;
    s_submit_claim(f->s, now, "w1", id, &att);
    lf_image_out_t imgs[2] = {{{g_png0, sizeof g_png0}, 42, 64, 64}, {{g_png1, sizeof g_png1}, 43, 64, 64}};
    lf_store_finish_t fin;
    assert_int_equal(lf_store_complete(f->s, id, "w1", att, imgs, 2, "{}", now + 10, &fin), 0);
    assert_int_equal(fin.status, LF_JOB_DONE);
    assert_int_equal(s_count(f->dir, id), 2);
    /* A late result of the same job from a worker that no longer holds it:
     * refused, and its files removed again. */
    assert_int_equal(lf_store_complete(f->s, id, "w2", 0, imgs, 2, "{}", now + 20, &fin), LF_ESTATE);
    assert_int_equal(s_count(f->dir, id), 2);
    /* Read back through the store: the same bytes. */
    uint8_t *d;
    size_t len;
    assert_int_equal(lf_store_image_get(f->s, id, 1, &d, &len), 0);
    assert_int_equal(len, sizeof g_png1);
    assert_memory_equal(d, g_png1, len);
    free(d);
    assert_int_equal(lf_store_image_get(f->s, id, 2, &d, &len), LF_ENOTFOUND);
    /* Nothing due yet; past the result TTL both files go and the URL is gone. */
    size_t n = 9, nf = 9;
    assert_int_equal(lf_store_blobs_sweep(f->s, now + 20, 16, &n, &nf), 0);
    assert_int_equal(n, 0);
    assert_int_equal(nf, 0);
    sleep(2); /* the imgref keys' Redis TTL (1 s) runs on Redis's clock */
    assert_int_equal(lf_store_blobs_sweep(f->s, s_now(), 16, &n, &nf), 0);
    assert_int_equal(n, 2);
    assert_int_equal(nf, 0);
    assert_int_equal(s_count(f->dir, id), 0);
    assert_int_equal(lf_store_image_get(f->s, id, 0, &d, &len), LF_ENOTFOUND);
}

static void test_dir_history_drop(void **state) {
    s_fix_t *f = *state;
    lf_store_limits_t lim = {.history_max = 1, .result_ttl_s = 3600};
    lf_store_set_limits(f->s, &lim);
    int64_t now = s_now();
    char a[40], b[40];
    uint32_t att;
    lf_image_out_t img = {{g_png0, sizeof g_png0}, 42, 64, 64};
    lf_store_finish_t fin;
    s_submit_claim(f->s, now, "w1", a, &att);
    assert_int_equal(lf_store_complete(f->s, a, "w1", att, &img, 1, "{}", now + 1, &fin), 0);
    s_submit_claim(f->s, now + 2, "w1", b, &att);
    assert_int_equal(lf_store_complete(f->s, b, "w1", att, &img, 1, "{}", now + 3, &fin), 0);
    /* history_max 1: job a was dropped, its file scheduled for deletion now. */
    size_t n = 0;
    assert_int_equal(lf_store_blobs_sweep(f->s, now + 4, 16, &n, NULL), 0);
    assert_int_equal(n, 1);
    assert_int_equal(s_count(f->dir, a), 0);
    assert_int_equal(s_count(f->dir, b), 1);
}

static void test_store_failure_fails_job(void **state) {
    s_fix_t *f = *state;
    int64_t now = s_now();
    char id[40];
    uint32_t att;
    s_submit_claim(f->s, now, "w1", id, &att);
    /* The folder disappears (an unmounted volume): the job fails, clearly. */
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
    char err[512] = "";
    assert_int_not_equal(lf_blobstore_check(f->blobs, err, sizeof err), 0);
    assert_non_null(strstr(err, f->dir));
    lf_image_out_t img = {{g_png0, sizeof g_png0}, 42, 64, 64};
    lf_store_finish_t fin;
    assert_int_equal(lf_store_complete(f->s, id, "w1", att, &img, 1, "{}", now + 10, &fin), 0);
    assert_int_equal(fin.status, LF_JOB_FAILED);
    assert_non_null(strstr(fin.message, "image store dir:"));
    lf_job_view_t v;
    assert_int_equal(lf_store_job_get(f->s, id, &v), 0);
    assert_int_equal(v.status, LF_JOB_FAILED);
    assert_int_equal(v.code, LF_EIO);
    assert_non_null(strstr(v.message, "cannot write"));
    lf_job_view_clear(&v);
    assert_int_equal(mkdir(f->dir, 0755), 0); /* for the teardown */
}

static void test_blobstore_alone(void **state) {
    (void)state;
    char err[512] = "", dir[300];
    snprintf(dir, sizeof dir, "%s/alone/a/b", lf_testredis_dir(g_redis));
    char spec[320];
    snprintf(spec, sizeof spec, "dir:%s/", dir);
    lf_blobstore_opts_t bo = {.spec = spec};
    lf_blobstore_t *b = lf_blobstore_new(&bo, err, sizeof err); /* makes the folders */
    assert_non_null(b);
    spec[strlen(spec) - 1] = '\0'; /* described without the trailing '/' */
    assert_string_equal(lf_blobstore_describe(b), spec);
    assert_int_equal(lf_blobstore_check(b, err, sizeof err), 0);
    assert_int_equal(lf_blobstore_put(b, "x-0.png", "abc", 3, "image/png", err, sizeof err), 0);
    uint8_t *d;
    size_t len;
    assert_int_equal(lf_blobstore_get(b, "x-0.png", &d, &len, err, sizeof err), 0);
    assert_int_equal(len, 3);
    assert_memory_equal(d, "abc", 3);
    free(d);
    assert_int_equal(lf_blobstore_del(b, "x-0.png", err, sizeof err), 0);
    assert_int_equal(lf_blobstore_del(b, "x-0.png", err, sizeof err), 0); /* absent: fine */
    assert_int_equal(lf_blobstore_get(b, "x-0.png", &d, &len, err, sizeof err), LF_ENOTFOUND);
    /* Names that could leave the folder are refused. */
    assert_int_equal(lf_blobstore_put(b, "../x", "a", 1, NULL, err, sizeof err), LF_EINVAL);
    assert_int_equal(lf_blobstore_put(b, ".hidden", "a", 1, NULL, err, sizeof err), LF_EINVAL);
    assert_int_equal(lf_blobstore_put(b, "a/b", "a", 1, NULL, err, sizeof err), LF_EINVAL);
    lf_blobstore_destroy(&b);
    assert_null(b);
    /* Bad settings, named. */
    const char *bad[] = {"dir:relative", "s3://", "s3://ab", "ftp://x", "s3://bucket/p"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        bo = (lf_blobstore_opts_t){.spec = bad[i]};
        err[0] = 0;
        assert_null(lf_blobstore_new(&bo, err, sizeof err));
        assert_true(err[0] != 0);
    }
    assert_non_null(strstr(err, "LF_S3_ACCESS_KEY_ID")); /* the last: no keys */
    bo = (lf_blobstore_opts_t){.spec = "s3://bucket", .endpoint = "minio:9000", .access_key = "a",
                               .secret_key = "b"};
    assert_null(lf_blobstore_new(&bo, err, sizeof err));
    assert_non_null(strstr(err, "http(s)://host[:port]"));
    assert_true(lf_blobstore_spec_is_redis("redis"));
    assert_true(lf_blobstore_spec_is_redis(NULL));
    assert_false(lf_blobstore_spec_is_redis("dir:/x"));
}

int main(void) {
    g_redis = lf_testredis_start(NULL);
    if (!g_redis) return 1;
#define T(f) cmocka_unit_test_setup_teardown(f, s_setup, s_teardown)
    const struct CMUnitTest tests[] = {
        T(test_dir_results),
        T(test_dir_history_drop),
        T(test_store_failure_fails_job),
        cmocka_unit_test(test_blobstore_alone),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    lf_testredis_destroy(&g_redis);
    return rc;
}
