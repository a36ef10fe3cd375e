/* test_broker_curve: a broker with CURVE (its certificate + a directory of
 * allowed client certificates, zauth): an allowed worker joins and gets
 * jobs; a worker with a key not in the directory, or without CURVE at all,
 * cannot join and gets nothing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <stdio.h>
#include <string.h>

#include "lf_error.h"
#include "lf_testbroker.h"
#include "lf_testredis.h"

static int s_rm(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

static void test_curve_allow_deny(void **state) {
    (void)state;
    char dir[] = "/tmp/lf-curve-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char allow[128], bpath[160], cpath[160];
    snprintf(allow, sizeof allow, "%s/allowed", dir);
    assert_int_equal(zsys_dir_create("%s", allow), 0);
    snprintf(bpath, sizeof bpath, "%s/broker.cert", dir);

    zcert_t *broker = zcert_new();
    zcert_t *good = zcert_new();
    zcert_t *evil = zcert_new();
    assert_int_equal(zcert_save(broker, bpath), 0);
    snprintf(cpath, sizeof cpath, "%s/worker.cert", allow);
    assert_int_equal(zcert_save_public(good, cpath), 0);
    const char *server_key = zcert_public_txt(broker);

    lf_testredis_t *redis = lf_testredis_start(NULL);
    assert_non_null(redis);
    lf_store_t *store = tb_store(lf_testredis_port(redis));
    tb_broker_t b;
    tb_broker_init(&b, "b1", lf_testredis_port(redis));
    b.opts.curve_secret = bpath;
    b.opts.curve_allow = allow;
    tb_broker_start(&b);

    tb_gateway_t g;
    tb_gateway_open(&g, b.fe, good, server_key);
    tb_worker_t ok, bad, plain;
    tb_worker_open(&ok, "ok", b.be, "m1", good, server_key);
    tb_worker_open(&bad, "bad", b.be, "m2", evil, server_key);
    tb_worker_open(&plain, "plain", b.be, "m2", NULL, NULL);

    char id[40], id2[40];
    assert_int_equal(tb_submit(&g, "m1", LF_PRIO_NORMAL, NULL, id, NULL), 0);
    lf_msg_t a;
    assert_int_equal(tb_worker_wait(&ok, LF_MSG_ASSIGN, 5000, &a), 0);
    assert_string_equal(a.job_id, id);
    lf_msg_clear(&a);
    tb_worker_result(&ok, id);
    assert_int_equal(tb_wait_status(store, id, LF_JOB_DONE, 3000), 0);

    /* Only the refused workers could run this one: it stays queued. */
    assert_int_equal(tb_submit(&g, "m2", LF_PRIO_NORMAL, NULL, id2, NULL), 0);
    assert_int_equal(tb_worker_wait(&bad, LF_MSG_ASSIGN, 1200, NULL), -1);
    assert_int_equal(tb_worker_wait(&plain, LF_MSG_ASSIGN, 100, NULL), -1);
    assert_int_equal(tb_status(store, id2), LF_JOB_QUEUED);
    /* Not even a heartbeat reached them. */
    assert_int_equal(tb_worker_wait(&bad, LF_MSG_HEARTBEAT, 300, NULL), -1);
    tb_worker_idle(&ok, 2 * TB_HB_MS);
    lf_worker_view_t *ws;
    size_t n;
    assert_int_equal(lf_store_workers_list(store, &ws, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(ws[0].id, "ok");
    lf_worker_view_clear(&ws[0]);
    free(ws);

    tb_worker_close(&ok), tb_worker_close(&bad), tb_worker_close(&plain);
    tb_gateway_close(&g);
    tb_broker_stop(&b);
    lf_store_destroy(&store);
    lf_testredis_destroy(&redis);
    zcert_destroy(&broker), zcert_destroy(&good), zcert_destroy(&evil);
    nftw(dir, s_rm, 8, FTW_DEPTH | FTW_PHYS);
}

/* A broker with CURVE asked for but misconfigured does not start. */
static void test_curve_misconfigured(void **state) {
    (void)state;
    lf_testredis_t *redis = lf_testredis_start(NULL);
    assert_non_null(redis);
    tb_broker_t b;
    tb_broker_init(&b, "b1", lf_testredis_port(redis));
    b.opts.curve_secret = "/nonexistent/broker.cert";
    b.opts.curve_allow = "/tmp";
    char err[256] = "";
    lf_broker_t *br = lf_broker_new(&b.opts, err, sizeof err);
    assert_null(br);
    assert_non_null(strstr(err, "CURVE"));
    b.opts.curve_allow = NULL;
    br = lf_broker_new(&b.opts, err, sizeof err);
    assert_null(br);
    lf_testredis_destroy(&redis);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_curve_allow_deny),
        cmocka_unit_test(test_curve_misconfigured),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
