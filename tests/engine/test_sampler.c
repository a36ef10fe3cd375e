/* Tests for lf_sampler against k-diffusion re-implemented in torch
 * (fixtures/samplers.txt from tests/reference/make_sampler_fixtures.py). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lf_error.h"
#include "lf_rng.h"
#include "lf_sampler.h"
#include "lf_schedule.h"
#include "lf_test_util.h"

#define N 64

typedef struct {
    int calls;
    float *uncond; /* CFG++ cases: where the unconditional estimate goes */
} den_ctx_t;

/* D(x, sigma) = x * (a / (sigma^2 + b)) + c_i, in float as the fixture. */
static int s_denoise(void *ctx, const float *x, float sigma, float *out, size_t n)
{
    den_ctx_t *d = ctx;
    d->calls++;
    float k = 0.8f / (sigma * sigma + 0.6f);
    for (size_t i = 0; i < n; i++) out[i] = x[i] * k + (float)((double)((int)(i % 5) - 2) * 0.1);
    return 0;
}

/* CFG++ cases: uncond U = x * (a / (sigma^2 + b)), denoised = U + 0.8 * c_i. */
static int s_denoise_cfgpp(void *ctx, const float *x, float sigma, float *out, size_t n)
{
    den_ctx_t *d = ctx;
    d->calls++;
    float k = 0.8f / (sigma * sigma + 0.6f);
    for (size_t i = 0; i < n; i++) {
        d->uncond[i] = x[i] * k;
        out[i] = d->uncond[i] + 0.8f * (float)((double)((int)(i % 5) - 2) * 0.1);
    }
    return 0;
}

static int s_read_vals(const char *p, double *v, int cap)
{
    int n = 0, k;
    while (n < cap && sscanf(p, "%lf%n", &v[n], &k) == 1) {
        p += k;
        n++;
    }
    return n;
}

static void test_fixture(void **state)
{
    char path[1024];
    FILE *f = fopen(lf_test_fixture(path, sizeof path, "samplers.txt"), "r");
    assert_non_null(f);
    static char line[16384];
    char name[64];
    int steps = 0, cases = 0, flow = 0;
    unsigned seed = 0;
    double sig[64], want[N];
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, "case %63s %d %u", name, &steps, &seed) == 3) {
            flow = strstr(line, " flow") != NULL; /* ComfyUI's CONST model sampling */
            continue;
        }
        if (!strncmp(line, "sigmas ", 7)) {
            assert_int_equal(s_read_vals(line + 7, sig, 64), steps + 1);
            continue;
        }
        if (strncmp(line, "x ", 2) != 0) continue;
        assert_int_equal(s_read_vals(line + 2, want, N), N);
        lf_sampler_kind_t kind;
        assert_int_equal(lf_sampler_parse(name, &kind), 0);
        lf_rng_t init, noise;
        lf_rng_init(&init, LF_RNG_TORCH_CPU, seed);
        lf_rng_init(&noise, LF_RNG_TORCH_CPU, seed);
        float x[N];
        lf_rng_randn(&init, x, N);
        for (int i = 0; i < N; i++) x[i] = x[i] * (float)sig[0];
        float unc[N];
        den_ctx_t dc = {.uncond = unc};
        lf_sampler_opts_t o =
            lf_sampler_opts(lf_sampler_needs_uncond(kind) ? s_denoise_cfgpp : s_denoise, &dc);
        if (lf_sampler_needs_uncond(kind)) {
            o.uncond = unc;
            /* Without the buffer the CFG++ samplers refuse to run. */
            lf_sampler_opts_t bad = o;
            bad.uncond = NULL;
            float x2[N];
            memcpy(x2, x, sizeof x2);
            assert_int_equal(lf_sampler_run(kind, &bad, sig, steps, x2, N), LF_EINVAL);
        }
        o.noise = lf_rng_noise_fn;
        o.noise_ctx = &noise;
        o.flow = flow;
        assert_int_equal(lf_sampler_run(kind, &o, sig, steps, x, N), 0);
        assert_int_equal(dc.calls, lf_sampler_model_calls(kind, sig, steps));
        double worst = 0;
        for (int i = 0; i < N; i++) {
            double rel = fabs(x[i] - want[i]) / fmax(1.0, fabs(want[i]));
            if (rel > worst) worst = rel;
            if (rel > 1e-5) fail_msg("%s [%d]: got %.9g want %.9g", name, i, x[i], want[i]);
        }
        printf("%-16s %2d steps%s: worst rel error %.2g\n", name, steps, flow ? " (flow)" : "", worst);
        cases++;
    }
    fclose(f);
    assert_true(cases >= LF_SAMPLER_COUNT); /* every sampler at least once */
}

/* Flow models: the samplers whose noise assumes x = x0 + sigma noise are refused. */
static void test_flow_refuses(void **state)
{
    (void)state;
    den_ctx_t dc = {0};
    lf_sampler_opts_t o = lf_sampler_opts(s_denoise, &dc);
    lf_rng_t noise;
    lf_rng_init(&noise, LF_RNG_TORCH_CPU, 1);
    o.noise = lf_rng_noise_fn, o.noise_ctx = &noise, o.flow = 1;
    float x[N] = {0}, unc[N];
    o.uncond = unc;
    const double sig[3] = {1.0, 0.5, 0.0};
    static const lf_sampler_kind_t no[] = {LF_SAMPLER_DPMPP_2M_SDE, LF_SAMPLER_DPMPP_SDE, LF_SAMPLER_EULER_CFG_PP,
                                           LF_SAMPLER_DPMPP_2M_CFG_PP};
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
        assert_int_equal(lf_sampler_run(no[i], &o, sig, 2, x, N), LF_EUNSUPPORTED);
    assert_int_equal(dc.calls, 0);
}

static int s_cancel_at_2(void *ctx, int step, int steps, float sigma, const float *x,
                         const float *den, size_t n)
{
    (*(int *)ctx)++;
    return step == 2;
}

static int s_fail_denoise(void *ctx, const float *x, float sigma, float *out, size_t n)
{
    return LF_EIO;
}

static void test_cancel_and_errors(void **state)
{
    double sig[5] = {10, 5, 2, 1, 0};
    float x[N], orig[N];
    for (int i = 0; i < N; i++) x[i] = orig[i] = (float)i;
    den_ctx_t dc = {0};
    int seen = 0;
    lf_sampler_opts_t o = lf_sampler_opts(s_denoise, &dc);
    o.step = s_cancel_at_2;
    o.step_ctx = &seen;
    assert_int_equal(lf_sampler_run(LF_SAMPLER_EULER, &o, sig, 4, x, N), LF_ECANCELED);
    assert_int_equal(seen, 3);
    assert_memory_equal(x, orig, sizeof x); /* untouched on failure */
    o.step = NULL;
    assert_int_equal(lf_sampler_run(LF_SAMPLER_EULER_ANCESTRAL, &o, sig, 4, x, N), LF_EINVAL); /* no noise */
    o.denoise = s_fail_denoise;
    assert_int_equal(lf_sampler_run(LF_SAMPLER_HEUN, &o, sig, 4, x, N), LF_EIO);
    double bad[3] = {1, -1, 0};
    o.denoise = s_denoise;
    assert_int_equal(lf_sampler_run(LF_SAMPLER_EULER, &o, bad, 2, x, N), LF_EINVAL);
    assert_int_equal(lf_sampler_run(LF_SAMPLER_EULER, &o, sig, 0, x, N), 0);
    lf_sampler_kind_t k;
    assert_int_equal(lf_sampler_parse("Euler a", &k), 0);
    assert_int_equal(k, LF_SAMPLER_EULER_ANCESTRAL);
    assert_string_equal(lf_sampler_a1111_name(LF_SAMPLER_DPMPP_2M), "DPM++ 2M");
    assert_int_equal(lf_sampler_parse("nope", &k), LF_ENOTFOUND);
    /* tcd (checked against diffusers' TCDScheduler end to end in
     * test_pipeline_fewstep.c): it needs the model's schedule, a gamma in
     * [0, 1], and noise when gamma > 0; gamma 0 draws none and ends, like
     * gamma 0.3, at timestep 0: x = sqrt(a0) x0 + sqrt(1 - a0) eps. */
    assert_int_equal(lf_sampler_parse("TCD", &k), 0);
    assert_int_equal(k, LF_SAMPLER_TCD);
    lf_schedule_t sc;
    lf_schedule_init_sd15(&sc);
    double ts[3];
    assert_int_equal(lf_schedule_sigmas(&sc, LF_SCHEDULER_TRAILING, 2, ts), 0);
    assert_int_equal(lf_sampler_run(LF_SAMPLER_TCD, &o, ts, 2, x, N), LF_EINVAL); /* no schedule */
    o.schedule = &sc;
    assert_int_equal(lf_sampler_run(LF_SAMPLER_TCD, &o, ts, 2, x, N), LF_EINVAL); /* no noise */
    o.gamma = 1.5;
    assert_int_equal(lf_sampler_run(LF_SAMPLER_TCD, &o, ts, 2, x, N), LF_EINVAL);
    o.gamma = 0.0;
    double one[2] = {ts[0], 0};
    for (int i = 0; i < N; i++) x[i] = (float)(orig[i] * ts[0]);
    assert_int_equal(lf_sampler_run(LF_SAMPLER_TCD, &o, one, 1, x, N), 0);
    double a0 = (float)sc.alphas_cumprod[0];
    for (int i = 0; i < N; i++) {
        double xi = orig[i] * ts[0], s = ts[0];
        double den = (float)(xi * (0.8f / (float)(s * s + 0.6)) + ((int)(i % 5) - 2) * 0.1);
        double want = sqrt(a0) * den + sqrt(1 - a0) * (xi - den) / s;
        assert_true(fabs(x[i] - want) <= 1e-5 * fmax(1.0, fabs(want)));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixture),
        cmocka_unit_test(test_flow_refuses),
        cmocka_unit_test(test_cancel_and_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
