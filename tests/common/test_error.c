/* test_error: the code list's three views (message, C name, the snake_case
 * code APIs show) agree, and every API code is unique and snake_case. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "lf_error.h"

static const int s_codes[] = {
#define S_CODE(name, c, api, msg) c,
    LF_ERRNO_MAP(S_CODE)
#undef S_CODE
};
#define S_N (sizeof s_codes / sizeof s_codes[0])

static void test_known_names(void **state) {
    (void)state;
    assert_string_equal(lf_err_code_name(LF_ELIMIT), "limit_exceeded");
    assert_string_equal(lf_err_code_name(LF_ETIMEDOUT), "timeout");
    assert_string_equal(lf_err_code_name(LF_ECANCELED), "cancelled");
    assert_string_equal(lf_err_code_name(LF_ENOTFOUND), "not_found");
    assert_string_equal(lf_err_code_name(0), "");
    assert_string_equal(lf_err_code_name(-9999), "unknown");
    assert_string_equal(lf_err_name(LF_ELIMIT), "LF_ELIMIT");
}

static void test_api_codes_snake_case_and_unique(void **state) {
    (void)state;
    for (size_t i = 0; i < S_N; i++) {
        const char *a = lf_err_code_name(s_codes[i]);
        assert_true(a[0] >= 'a' && a[0] <= 'z');
        for (const char *c = a; *c; c++)
            if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_'))
                fail_msg("%s: '%s' is not snake_case", lf_err_name(s_codes[i]), a);
        for (size_t k = 0; k < i; k++)
            if (!strcmp(a, lf_err_code_name(s_codes[k])))
                fail_msg("%s and %s share the API code %s", lf_err_name(s_codes[i]),
                         lf_err_name(s_codes[k]), a);
        assert_string_not_equal(lf_strerror(s_codes[i]), "unknown error");
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_names),
        cmocka_unit_test(test_api_codes_snake_case_and_unique),
    };
    return cmocka_run_group_tests_name("error", tests, NULL, NULL);
}
