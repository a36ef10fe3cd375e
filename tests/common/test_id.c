/* test_id: format, validation, time order and uniqueness of lf_id. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "lf_id.h"

static void test_make_known(void **state) {
    (void)state;
    const uint8_t rnd[LF_ID_RANDOM_BYTES] = {0x00, 0x01, 0x23, 0x45, 0x67,
                                             0x89, 0xab, 0xcd, 0xef, 0xff};
    char id[LF_ID_SIZE];
    lf_id_make(0x0190a1b2c3d4ull, rnd, id);
    assert_string_equal(id, "0190a1b2c3d4000123456789abcdefff");
    assert_true(lf_id_valid(id));
    assert_int_equal(lf_id_time_ms(id), 0x0190a1b2c3d4ll);
    lf_id_make(0xffff000000000001ull, rnd, id); /* only 48 bits of time kept */
    assert_int_equal(lf_id_time_ms(id), 1);
}

static void test_valid(void **state) {
    (void)state;
    static const struct {
        const char *s;
        bool ok;
    } cases[] = {
        {"0190a1b2c3d4e5f60718293a4b5c6d7e", true},
        {"00000000000000000000000000000000", true},
        {"ffffffffffffffffffffffffffffffff", true},
        {"0190A1B2C3D4E5F60718293A4B5C6D7E", false}, /* uppercase */
        {"0190a1b2c3d4e5f60718293a4b5c6d7", false},  /* 31 */
        {"0190a1b2c3d4e5f60718293a4b5c6d7e0", false}, /* 33 */
        {"0190a1b2c3d4e5f60718293a4b5c6d7g", false},
        {"../../etc/passwd000000000000000", false},
        {"0190a1b2c3d4-5f60718293a4b5c6d7e", false},
        {"", false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (lf_id_valid(cases[i].s) != cases[i].ok) fail_msg("case %zu '%s'", i, cases[i].s);
        assert_int_equal(lf_id_time_ms(cases[i].s) >= 0, cases[i].ok);
    }
    assert_false(lf_id_valid(NULL));
    assert_int_equal(lf_id_time_ms(NULL), -1);
    char embedded[40] = "0190a1b2c3d4";
    assert_false(lf_id_valid(embedded)); /* stops at the NUL, no over-read */
}

static void test_new_now_and_unique(void **state) {
    (void)state;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    enum { N = 2000 };
    char (*ids)[LF_ID_SIZE] = malloc(N * sizeof *ids);
    for (int i = 0; i < N; i++) {
        assert_int_equal(lf_id_new(ids[i]), 0);
        assert_true(lf_id_valid(ids[i]));
    }
    int64_t t0 = lf_id_time_ms(ids[0]);
    assert_true(t0 >= now - 1000 && t0 <= now + 60000);
    for (int i = 1; i < N; i++) {
        /* Time prefixes never go backwards (unless the wall clock is stepped). */
        assert_true(memcmp(ids[i - 1], ids[i], 12) <= 0);
        for (int j = 0; j < i; j++) assert_string_not_equal(ids[i], ids[j]);
    }
    free(ids);
}

static void test_order(void **state) {
    (void)state;
    const uint8_t hi[LF_ID_RANDOM_BYTES] = {0xff, 0xff, 0xff, 0xff, 0xff,
                                            0xff, 0xff, 0xff, 0xff, 0xff};
    const uint8_t lo[LF_ID_RANDOM_BYTES] = {0};
    char a[LF_ID_SIZE], b[LF_ID_SIZE];
    lf_id_make(1000, hi, a);
    lf_id_make(1001, lo, b);
    assert_true(strcmp(a, b) < 0); /* a later millisecond sorts after, whatever the random part */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_make_known),
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_new_now_and_unique),
        cmocka_unit_test(test_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
