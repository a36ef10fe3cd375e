/* Tests of lf_device: the device strings every program accepts and the
 * sentence it refuses the others with. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "lf_device.h"
#include "lf_error.h"

static void test_parse(void **state) {
    (void)state;
    lf_device_t d = {LF_DEVICE_CUDA, 9};
    char err[200];
    assert_int_equal(lf_device_parse(NULL, &d, err, sizeof err), 0);
    assert_int_equal(d.kind, LF_DEVICE_CPU);
    assert_int_equal(lf_device_parse("cuda", &d, err, sizeof err), 0);
    assert_int_equal(d.kind, LF_DEVICE_CUDA);
    assert_int_equal(d.index, 0);
    assert_int_equal(lf_device_parse("cuda:7", &d, err, sizeof err), 0);
    assert_int_equal(d.index, 7);
    assert_int_equal(lf_device_parse("cuda:63", &d, err, sizeof err), 0);
    assert_int_equal(d.index, 63);
    assert_int_equal(lf_device_parse("cpu", &d, err, sizeof err), 0);
    assert_int_equal(d.kind, LF_DEVICE_CPU);
    const char *bad[] = {"gpu", "cuda:", "cuda:-1", "cuda:+1", "cuda: 1", "cuda:64", "cuda:007", "cuda:1x",
                         "CUDA:0", "cuda0", "cuda:0x1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        d = (lf_device_t){LF_DEVICE_CUDA, 5};
        err[0] = 0;
        assert_int_equal(lf_device_parse(bad[i], &d, err, sizeof err), LF_EINVAL);
        assert_int_equal(d.index, 5); /* untouched */
        assert_non_null(strstr(err, bad[i]));
        assert_non_null(strstr(err, "cpu, cuda or cuda:N"));
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_parse)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
