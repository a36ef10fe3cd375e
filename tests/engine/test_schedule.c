/* Tests for lf_schedule against the published SD1.x values in refdata. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "lf_error.h"
#include "lf_schedule.h"
#include "lf_test_util.h"

static void s_check_line(const lf_schedule_t *s, const char *line, const char *key, lf_scheduler_t kind)
{
    size_t kl = strlen(key);
    if (strncmp(line, key, kl) != 0 || line[kl] != ' ') return;
    double want[64], got[64];
    int n = 0, off = 0, k;
    const char *p = line + kl;
    while (n < 64 && sscanf(p + off, "%lf%n", &want[n], &k) == 1) {
        off += k;
        n++;
    }
    assert_true(n >= 2);
    assert_int_equal(lf_schedule_sigmas(s, kind, n - 1, got), 0);
    for (int i = 0; i < n; i++)
        if (fabs(got[i] - want[i]) > 1e-5) fail_msg("%s[%d]: got %.7f want %.7f", key, i, got[i], want[i]);
}

static void test_refdata(void **state)
{
    char path[1024];
    if (!lf_test_refdata(path, sizeof path, "schedules/sd15_sigmas.txt")) skip();
    lf_schedule_t s;
    lf_schedule_init_sd15(&s);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[4096];
    int seen = 0;
    while (fgets(line, sizeof line, f)) {
        double v;
        if (sscanf(line, "sigma_min %lf", &v) == 1) {
            assert_true(fabs(lf_schedule_sigma_min(&s) - v) < 1e-7);
            seen++;
        }
        if (sscanf(line, "sigma_max %lf", &v) == 1) {
            assert_true(fabs(lf_schedule_sigma_max(&s) - v) < 1e-5);
            seen++;
        }
        if (!strncmp(line, "discrete_20 ", 12) || !strncmp(line, "karras_20 ", 10)) seen++;
        s_check_line(&s, line, "discrete_20", LF_SCHEDULER_NORMAL);
        s_check_line(&s, line, "karras_20", LF_SCHEDULER_KARRAS);
    }
    fclose(f);
    assert_int_equal(seen, 4);
}

static void test_conversions(void **state)
{
    lf_schedule_t s;
    lf_schedule_init_sd15(&s);
    for (int t = 0; t < 1000; t += 37) {
        assert_true(fabs(lf_schedule_sigma_to_t(&s, s.sigmas[t]) - t) < 1e-4);
        assert_int_equal(lf_schedule_sigma_to_t_nearest(&s, s.sigmas[t]), t);
    }
    double t = lf_schedule_sigma_to_t(&s, lf_schedule_t_to_sigma(&s, 500.25));
    assert_true(fabs(t - 500.25) < 1e-4);
    assert_true(lf_schedule_sigma_to_t(&s, 100.0) == 999.0);
    assert_true(lf_schedule_sigma_to_t(&s, 0.001) == 0.0);
}

static void test_schedulers(void **state)
{
    lf_schedule_t s;
    lf_schedule_init_sd15(&s);
    double sig[32];
    for (int k = 0; k < LF_SCHEDULER_COUNT; k++) {
        for (int steps = 1; steps <= 30; steps += 29) {
            assert_int_equal(lf_schedule_sigmas(&s, (lf_scheduler_t)k, steps, sig), 0);
            assert_true(sig[steps] == 0.0);
            for (int i = 0; i < steps; i++) {
                assert_true(sig[i] > 0 && sig[i] <= lf_schedule_sigma_max(&s) + 1e-5);
                if (i) assert_true(sig[i] <= sig[i - 1]);
            }
        }
        lf_scheduler_t back;
        assert_int_equal(lf_scheduler_parse(lf_scheduler_name((lf_scheduler_t)k), &back), 0);
        assert_int_equal(back, k);
    }
    /* ComfyUI simple, 4 steps: training sigmas 999, 749, 499, 249. */
    lf_schedule_sigmas(&s, LF_SCHEDULER_SIMPLE, 4, sig);
    assert_true(sig[1] == s.sigmas[749] && sig[3] == s.sigmas[249]);
    /* ddim_uniform, 20 steps: indices 951, 901, ..., 1. */
    lf_schedule_sigmas(&s, LF_SCHEDULER_DDIM_UNIFORM, 20, sig);
    assert_true(sig[0] == s.sigmas[951] && sig[19] == s.sigmas[1]);
    /* sgm_uniform: the first point is sigma_max, the step smaller than normal's. */
    double nrm[5];
    lf_schedule_sigmas(&s, LF_SCHEDULER_SGM_UNIFORM, 4, sig);
    lf_schedule_sigmas(&s, LF_SCHEDULER_NORMAL, 4, nrm);
    assert_true(fabs(sig[0] - nrm[0]) < 1e-9 && sig[3] > nrm[3]);
    assert_true(fabs(sig[1] - lf_schedule_t_to_sigma(&s, 999.0 * 3 / 4)) < 1e-9);
    lf_schedule_exponential(0.1, 10, 3, sig);
    assert_true(fabs(sig[1] - 1.0) < 1e-12);
    lf_scheduler_t k;
    assert_int_equal(lf_scheduler_parse("Karras", &k), 0);
    assert_int_equal(k, LF_SCHEDULER_KARRAS);
    assert_int_equal(lf_scheduler_parse("bogus", &k), LF_ENOTFOUND);
    assert_int_equal(lf_schedule_sigmas(&s, LF_SCHEDULER_NORMAL, 0, sig), LF_EINVAL);
}

/* The ComfyUI-defined schedulers against tests/engine/fixtures/schedules.txt
 * (tests/reference/make_schedule_fixtures.py: ComfyUI's formulas in torch /
 * numpy / scipy). */
static void test_published_schedulers(void **state)
{
    FILE *f = fopen(LF_FIXTURE_DIR "/schedules.txt", "r");
    assert_non_null(f);
    static char line[16384];
    int cases = 0, seen[LF_SCHEDULER_COUNT] = {0};
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#') continue;
        char name[32];
        int steps, off = 0;
        assert_int_equal(sscanf(line, "%31s %d%n", name, &steps, &off), 2);
        lf_schedule_t s;
        lf_schedule_init_sd15(&s);
        lf_scheduler_t kind;
        if (!strcmp(name, "ays_sdxl")) {
            kind = LF_SCHEDULER_AYS;
            s.ays = LF_AYS_SDXL;
        } else {
            assert_int_equal(lf_scheduler_parse(name, &kind), 0);
        }
        double want[160], got[160];
        assert_true(steps >= 1 && steps < 159);
        const char *p = line + off;
        for (int i = 0; i <= steps; i++) {
            int used = 0;
            assert_int_equal(sscanf(p, "%lf%n", &want[i], &used), 1);
            p += used;
        }
        assert_int_equal(lf_schedule_sigmas(&s, kind, steps, got), 0);
        /* diffusers' schedules (trailing, lcm) come from its float32 betas
         * and cumprod, a few 1e-7 from the LDM table lightfarm uses. */
        const int diffusers = kind == LF_SCHEDULER_TRAILING || kind == LF_SCHEDULER_LCM;
        for (int i = 0; i <= steps; i++) {
            double tol = (diffusers ? 2e-5 : 2e-6) * fabs(want[i]) + 1e-9;
            if (fabs(got[i] - want[i]) > tol)
                fail_msg("%s %d steps: sigma %d is %.9g, ComfyUI's %.9g", name, steps, i, got[i], want[i]);
        }
        seen[kind] = 1;
        cases++;
    }
    fclose(f);
    assert_true(cases >= 60);
    assert_true(seen[LF_SCHEDULER_BETA] && seen[LF_SCHEDULER_KL_OPTIMAL] &&
                seen[LF_SCHEDULER_LINEAR_QUADRATIC] && seen[LF_SCHEDULER_AYS] &&
                seen[LF_SCHEDULER_TRAILING] && seen[LF_SCHEDULER_LCM]);
    /* Beyond the fixture: beta at 150 steps (ComfyUI would drop a repeated
     * timestep) keeps 150 distinct, descending sigmas. */
    lf_schedule_t s;
    lf_schedule_init_sd15(&s);
    double sig[151];
    assert_int_equal(lf_schedule_sigmas(&s, LF_SCHEDULER_BETA, 150, sig), 0);
    for (int i = 1; i < 150; i++) assert_true(sig[i] < sig[i - 1]);
    /* trailing: integer timesteps; equal to "simple" when n divides 1000,
     * one timestep apart at 3 steps (round against floor); sgm_uniform's
     * continuous t is never below it. lcm refuses more than 50 steps. */
    double tr[9], si[9], sg[9];
    for (int n = 1; n <= 8; n++) {
        assert_int_equal(lf_schedule_sigmas(&s, LF_SCHEDULER_TRAILING, n, tr), 0);
        assert_int_equal(lf_schedule_sigmas(&s, LF_SCHEDULER_SIMPLE, n, si), 0);
        assert_int_equal(lf_schedule_sigmas(&s, LF_SCHEDULER_SGM_UNIFORM, n, sg), 0);
        for (int i = 0; i <= n; i++) {
            if (1000 % n == 0) assert_true(tr[i] == si[i]);
            if (i > 0 && i < n) assert_true(sg[i] >= tr[i] * (1 - 1e-6)); /* float log sigmas */
        }
    }
    assert_int_equal(lf_schedule_sigmas(&s, LF_SCHEDULER_TRAILING, 3, tr), 0);
    assert_true(tr[1] == s.sigmas[666] && tr[2] == s.sigmas[332]);
    assert_int_equal(lf_schedule_sigmas(&s, LF_SCHEDULER_TRAILING, 4, tr), 0);
    assert_true(tr[0] == s.sigmas[999] && tr[1] == s.sigmas[749] && tr[2] == s.sigmas[499] &&
                tr[3] == s.sigmas[249]); /* DMD2's four timesteps */
    assert_int_equal(lf_schedule_sigmas(&s, LF_SCHEDULER_LCM, 51, sig), LF_EINVAL);
    assert_int_equal(lf_schedule_sigmas(&s, LF_SCHEDULER_LCM, 50, sig), 0);
    assert_true(sig[49] == s.sigmas[19]);
    /* A1111's labels parse. */
    lf_scheduler_t k;
    assert_int_equal(lf_scheduler_parse("Align Your Steps", &k), 0);
    assert_int_equal(k, LF_SCHEDULER_AYS);
    assert_int_equal(lf_scheduler_parse("KL Optimal", &k), 0);
    assert_int_equal(k, LF_SCHEDULER_KL_OPTIMAL);
    assert_int_equal(lf_scheduler_parse("Beta", &k), 0);
    assert_int_equal(k, LF_SCHEDULER_BETA);
    assert_int_equal(lf_scheduler_parse("Trailing", &k), 0);
    assert_int_equal(k, LF_SCHEDULER_TRAILING);
    assert_int_equal(lf_scheduler_parse("LCM", &k), 0);
    assert_int_equal(k, LF_SCHEDULER_LCM);
    assert_string_equal(lf_scheduler_name(LF_SCHEDULER_TRAILING), "trailing");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refdata),
        cmocka_unit_test(test_conversions),
        cmocka_unit_test(test_schedulers),
        cmocka_unit_test(test_published_schedulers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
