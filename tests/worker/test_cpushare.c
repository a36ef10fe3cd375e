/* test_cpushare: the split of a machine's cores between local workers
 * (pure), and pinning this process to a slice. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <sched.h>

#include "lf_cpushare.h"
#include "lf_error.h"

/* Every worker's slice on (cores, workers): slices cover the cores once, in
 * order, sizes differ by at most one. */
static void s_check_cover(int cores, int workers) {
    int next = 0, lo = cores, hi = 0;
    for (int i = 0; i < workers; i++) {
        lf_cpushare_t s;
        assert_int_equal(lf_cpushare_split(cores, workers, i, &s), 0);
        assert_int_equal(s.first, next);
        next += s.count;
        if (s.count < lo) lo = s.count;
        if (s.count > hi) hi = s.count;
    }
    assert_int_equal(next, cores);
    assert_true(hi - lo <= 1 && lo >= 1);
}

static void test_split(void **st) {
    (void)st;
    lf_cpushare_t s;
    assert_int_equal(lf_cpushare_split(16, 1, 0, &s), 0);
    assert_int_equal(s.first, 0);
    assert_int_equal(s.count, 16);
    /* 10 cores, 3 workers: 4 + 3 + 3. */
    assert_int_equal(lf_cpushare_split(10, 3, 0, &s), 0);
    assert_int_equal(s.first, 0);
    assert_int_equal(s.count, 4);
    assert_int_equal(lf_cpushare_split(10, 3, 1, &s), 0);
    assert_int_equal(s.first, 4);
    assert_int_equal(s.count, 3);
    assert_int_equal(lf_cpushare_split(10, 3, 2, &s), 0);
    assert_int_equal(s.first, 7);
    assert_int_equal(s.count, 3);
    for (int cores = 1; cores <= 33; cores++)
        for (int workers = 1; workers <= cores; workers++) s_check_cover(cores, workers);
    /* More workers than cores: one core each, round robin. */
    assert_int_equal(lf_cpushare_split(2, 5, 3, &s), 0);
    assert_int_equal(s.first, 1);
    assert_int_equal(s.count, 1);
    assert_int_equal(lf_cpushare_split(0, 1, 0, &s), LF_EINVAL);
    assert_int_equal(lf_cpushare_split(4, 0, 0, &s), LF_EINVAL);
    assert_int_equal(lf_cpushare_split(4, 2, 2, &s), LF_EINVAL);
    assert_int_equal(lf_cpushare_split(4, 2, -1, &s), LF_EINVAL);
    assert_int_equal(lf_cpushare_split(4, 2, 0, NULL), LF_EINVAL);
}

static void test_threads(void **st) {
    (void)st;
    lf_cpushare_t s = {.first = 4, .count = 3};
    assert_int_equal(lf_cpushare_threads(&s, 0), 3);
    assert_int_equal(lf_cpushare_threads(&s, 8), 8);
}

/* Pinning to the last core of the mask leaves this process on that core only
 * (the mask is restored after). */
static void test_pin(void **st) {
    (void)st;
    cpu_set_t before, after;
    assert_int_equal(sched_getaffinity(0, sizeof before, &before), 0);
    int cores = lf_cpushare_cores();
    assert_int_equal(cores, CPU_COUNT(&before));
    lf_cpushare_t s = {.first = cores - 1, .count = 1};
    assert_int_equal(lf_cpushare_pin(&s), 0);
    assert_int_equal(sched_getaffinity(0, sizeof after, &after), 0);
    assert_int_equal(CPU_COUNT(&after), 1);
    int last = -1;
    for (int c = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, &before)) last = c;
    assert_true(CPU_ISSET(last, &after));
    assert_int_equal(sched_setaffinity(0, sizeof before, &before), 0);
    lf_cpushare_t none = {.first = cores, .count = 1};
    assert_int_equal(lf_cpushare_pin(&none), LF_EINVAL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_pin),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
