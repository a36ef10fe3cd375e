/* test_heartbeat: the Paranoid Pirate clock driven with made-up times. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "lf_heartbeat.h"

static const lf_heartbeat_cfg_t s_cfg = {1000, 3, 250, 8000};

static void test_connect_send_expire(void **st) {
    (void)st;
    lf_heartbeat_t hb;
    lf_heartbeat_init(&hb, &s_cfg, 0);
    assert_false(hb.up);
    assert_int_equal(lf_heartbeat_deadline(&hb), 0);
    assert_int_equal(lf_heartbeat_poll(&hb, 0), LF_HB_CONNECT);
    assert_int_equal(lf_heartbeat_poll(&hb, 0), LF_HB_NONE);
    assert_int_equal(lf_heartbeat_deadline(&hb), 1000);
    assert_int_equal(lf_heartbeat_poll(&hb, 999), LF_HB_NONE);
    assert_int_equal(lf_heartbeat_poll(&hb, 1000), LF_HB_SEND);
    assert_int_equal(lf_heartbeat_poll(&hb, 1000), LF_HB_NONE);
    assert_int_equal(lf_heartbeat_poll(&hb, 2000), LF_HB_SEND);
    /* No message for 3 intervals since connecting: dead at 3000. */
    assert_int_equal(lf_heartbeat_deadline(&hb), 3000);
    assert_int_equal(lf_heartbeat_poll(&hb, 3000), LF_HB_DEAD);
    assert_false(hb.up);
    assert_int_equal(hb.deaths, 1);
    assert_int_equal(lf_heartbeat_deadline(&hb), 3250);
}

static void test_received_keeps_alive(void **st) {
    (void)st;
    lf_heartbeat_t hb;
    lf_heartbeat_init(&hb, &s_cfg, 100);
    assert_int_equal(lf_heartbeat_poll(&hb, 100), LF_HB_CONNECT);
    for (int64_t t = 1100; t < 20000; t += 1000) {
        assert_int_equal(lf_heartbeat_poll(&hb, t), LF_HB_SEND);
        lf_heartbeat_received(&hb, t);
        assert_int_equal(lf_heartbeat_poll(&hb, t), LF_HB_NONE);
    }
    assert_true(hb.up);
    assert_int_equal(hb.deaths, 0);
}

static void test_backoff_doubles_and_resets(void **st) {
    (void)st;
    lf_heartbeat_t hb;
    lf_heartbeat_init(&hb, &s_cfg, 0);
    int64_t now = 0;
    const int64_t waits[] = {250, 500, 1000, 2000, 4000, 8000, 8000, 8000};
    assert_int_equal(lf_heartbeat_poll(&hb, now), LF_HB_CONNECT);
    for (size_t i = 0; i < sizeof waits / sizeof waits[0]; i++) {
        now += 3000; /* a silent peer */
        while (lf_heartbeat_poll(&hb, now) == LF_HB_SEND) {
        }
        assert_false(hb.up);
        assert_int_equal(lf_heartbeat_deadline(&hb), now + waits[i]);
        assert_int_equal(lf_heartbeat_poll(&hb, now + waits[i] - 1), LF_HB_NONE);
        now += waits[i];
        assert_int_equal(lf_heartbeat_poll(&hb, now), LF_HB_CONNECT);
    }
    /* The broker answers: the next death waits the minimum again. */
    lf_heartbeat_received(&hb, now);
    now += 3000;
    while (lf_heartbeat_poll(&hb, now) == LF_HB_SEND) {
    }
    assert_int_equal(lf_heartbeat_deadline(&hb), now + 250);
}

static void test_drop_and_clamp(void **st) {
    (void)st;
    lf_heartbeat_t hb;
    lf_heartbeat_cfg_t bad = {0, 0, 0, -5};
    lf_heartbeat_init(&hb, &bad, 0);
    assert_true(hb.cfg.interval_ms >= 10);
    assert_true(hb.cfg.liveness >= 1);
    assert_true(hb.cfg.backoff_max_ms >= hb.cfg.backoff_min_ms);
    lf_heartbeat_init(&hb, &s_cfg, 0);
    lf_heartbeat_drop(&hb, 0); /* down already: nothing */
    assert_int_equal(hb.deaths, 0);
    assert_int_equal(lf_heartbeat_poll(&hb, 0), LF_HB_CONNECT);
    lf_heartbeat_received(&hb, 1000);
    lf_heartbeat_drop(&hb, 1500);
    assert_false(hb.up);
    assert_int_equal(hb.deaths, 1);
    assert_int_equal(lf_heartbeat_deadline(&hb), 1500); /* at once, no backoff */
    assert_int_equal(hb.backoff_ms, 250);
    /* Turned away right after connecting: that one waits for the backoff. */
    assert_int_equal(lf_heartbeat_poll(&hb, 1500), LF_HB_CONNECT);
    lf_heartbeat_drop(&hb, 1600);
    assert_int_equal(lf_heartbeat_deadline(&hb), 1850);
    assert_int_equal(hb.deaths, 2);
    lf_heartbeat_received(&hb, 1700); /* late message on the closed link: ignored */
    assert_false(hb.up);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_connect_send_expire),
        cmocka_unit_test(test_received_keeps_alive),
        cmocka_unit_test(test_backoff_doubles_and_resets),
        cmocka_unit_test(test_drop_and_clamp),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
