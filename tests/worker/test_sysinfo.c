/* test_sysinfo: the /proc parsers fed with strings, and a live probe. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>
#include <unistd.h>

#include "lf_error.h"
#include "lf_sysinfo.h"

static void test_cpu_name(void **st) {
    (void)st;
    char out[64];
    const char *x86 = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel\t\t: 85\n"
                      "model name\t: Intel(R) Xeon(R) Gold 6130 CPU @ 2.10GHz  \nflags\t: fpu\n"
                      "processor\t: 1\nmodel name\t: second\n";
    assert_int_equal(lf_sysinfo_cpu_name(x86, out, sizeof out), 0);
    assert_string_equal(out, "Intel(R) Xeon(R) Gold 6130 CPU @ 2.10GHz");
    const char *arm = "processor : 0\nBogoMIPS : 50.00\nFeatures : fp asimd\n\n"
                      "Hardware : BCM2835\nModel : Raspberry Pi 4 Model B Rev 1.4\n";
    assert_int_equal(lf_sysinfo_cpu_name(arm, out, sizeof out), 0);
    assert_string_equal(out, "Raspberry Pi 4 Model B Rev 1.4");
    assert_int_equal(lf_sysinfo_cpu_name("processor : 0\nmodel name :   \n", out, sizeof out),
                     LF_ENOTFOUND);
    assert_int_equal(lf_sysinfo_cpu_name("", out, sizeof out), LF_ENOTFOUND);
    char tiny[5];
    assert_int_equal(lf_sysinfo_cpu_name(x86, tiny, sizeof tiny), 0);
    assert_string_equal(tiny, "Inte");
    assert_int_equal(lf_sysinfo_cpu_name(NULL, out, sizeof out), LF_EINVAL);
}

static void test_mem_total(void **st) {
    (void)st;
    assert_int_equal(lf_sysinfo_mem_total("MemTotal:       16315284 kB\nMemFree: 1 kB\n"),
                     16315284ull * 1024);
    assert_int_equal(lf_sysinfo_mem_total("MemFree: 1 kB\nMemTotal: 2048 kB"), 2048ull * 1024);
    assert_int_equal(lf_sysinfo_mem_total("MemTotal: lots\n"), 0);
    assert_int_equal(lf_sysinfo_mem_total("MemTotal: 12 MB\n"), 0);
    assert_int_equal(lf_sysinfo_mem_total("MemTotalX: 12 kB\n"), 0);
    assert_int_equal(lf_sysinfo_mem_total(NULL), 0);
}

static void test_probe(void **st) {
    (void)st;
    lf_sysinfo_t s;
    lf_sysinfo_probe(&s);
    assert_true(strlen(s.host) > 0);
    assert_int_equal(s.pid, getpid());
    assert_true(strlen(s.cpu_name) > 0);
    assert_true(s.memory_bytes > 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cpu_name),
        cmocka_unit_test(test_mem_total),
        cmocka_unit_test(test_probe),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
