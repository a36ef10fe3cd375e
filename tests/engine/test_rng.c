/* Tests for lf_rng against values from torch (CPU) and the A1111 Philox
 * algorithm, in fixtures/randn.txt (tests/reference/make_rng_fixtures.py). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lf_rng.h"
#include "lf_test_util.h"

#ifndef LF_TEST_RNG_TOL
#define LF_TEST_RNG_TOL 1e-6
#endif

static void test_fixture(void **state)
{
    char path[1024];
    FILE *f = fopen(lf_test_fixture(path, sizeof path, "randn.txt"), "r");
    assert_non_null(f);
    static char line[1 << 16];
    lf_rng_t rng;
    int calls = 0, seeded = 0, inexact = 0, total = 0;
    double worst = 0;
    while (fgets(line, sizeof line, f)) {
        char kind[16];
        unsigned long long seed;
        if (sscanf(line, "seed %15s %llu", kind, &seed) == 2) {
            lf_rng_init(&rng, strcmp(kind, "philox") == 0 ? LF_RNG_PHILOX : LF_RNG_TORCH_CPU, seed);
            seeded = 1;
            continue;
        }
        size_t n;
        int off;
        if (sscanf(line, "randn %zu%n", &n, &off) != 1) continue;
        assert_true(seeded);
        float *got = malloc(n * sizeof *got);
        lf_rng_randn(&rng, got, n);
        char *p = line + off;
        for (size_t i = 0; i < n; i++) {
            double want = strtod(p, &p);
            double err = fabs(got[i] - want);
            if (err > worst) worst = err;
            if ((float)want != got[i]) inexact++;
            if (err > LF_TEST_RNG_TOL)
                fail_msg("seed %llu %s call %d: [%zu] got %.9g want %.9g", seed,
                         rng.kind ? "philox" : "cpu", calls, i, got[i], want);
        }
        free(got);
        calls++;
        total += (int)n;
    }
    fclose(f);
    assert_true(calls >= 10);
    printf("rng: %d calls, %d values, %d not bit-exact, worst abs error %.3g\n", calls, total,
           inexact, worst);
}

static void test_mt19937(void **state)
{
    /* The 10000th output of the standard mt19937 seeded with 5489. */
    lf_rng_t rng;
    lf_rng_init(&rng, LF_RNG_TORCH_CPU, 5489);
    uint32_t v = 0;
    for (int i = 0; i < 10000; i++) v = lf_rng_u32(&rng);
    assert_int_equal(v, 4123659995u);
    float u[64];
    lf_rng_rand(&rng, u, 64);
    for (int i = 0; i < 64; i++) assert_true(u[i] >= 0.0f && u[i] < 1.0f);
    lf_rng_init(&rng, LF_RNG_PHILOX, 7);
    assert_int_equal(lf_rng_noise_fn(&rng, u, 4), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mt19937),
        cmocka_unit_test(test_fixture),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
