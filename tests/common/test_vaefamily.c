/* lf_vaefamily: a VAE's family from its latent channels, its header's
 * hint and its name; the fit rule the gateway and the listings share. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "lf_vaefamily.h"

static void s_is(const char *got, const char *want)
{
    if (!want) assert_null(got);
    else assert_string_equal(got, want);
}

static void test_guess(void **state)
{
    (void)state;
    static const struct {
        uint32_t latent;
        const char *name, *hint, *want;
    } cases[] = {
        {16, "ae", NULL, "flux"},
        {16, "sdxl_vae", "sdxl", "flux"}, /* the channels are a fact; names are hints */
        {4, "sdxl_vae", NULL, "sdxl"},
        {4, "sdxl-vae-fp16-fix", NULL, "sdxl"},
        {4, "juggernautXL_vae", NULL, "sdxl"},
        {4, "vae-ft-mse-840000-ema-pruned", NULL, "sd15"},
        {4, "sd-vae-ft-ema", NULL, "sd15"},
        {4, "v1-5-pruned-emaonly", NULL, "sd15"},
        {4, "kl-f8-anime2", NULL, "sd"},
        {4, "kl-f8-anime2", "stable-diffusion-xl-v1-base/vae", "sdxl"},
        {4, "kl-f8-anime2", "stable-diffusion-v1/vae", "sd15"},
        {4, "sdxl_named", "sd15", "sd15"}, /* the header's hint wins over the name */
        {4, NULL, NULL, "sd"},
        {0, "lf-xl-vae-probe", NULL, "sdxl"}, /* channels unknown: the name alone */
        {0, "probe", "sdxl", "sdxl"},
        {0, "probe", NULL, NULL},
        {8, "sdxl_vae", NULL, NULL}, /* of no family the engine runs */
        {3, NULL, NULL, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        s_is(lf_vaefamily_guess(cases[i].latent, cases[i].name, cases[i].hint), cases[i].want);
}

static void test_latent(void **state)
{
    (void)state;
    assert_int_equal(lf_vaefamily_latent("sd15"), 4);
    assert_int_equal(lf_vaefamily_latent("sdxl"), 4);
    assert_int_equal(lf_vaefamily_latent("sdxl_refiner"), 4);
    assert_int_equal(lf_vaefamily_latent("sd"), 4);
    assert_int_equal(lf_vaefamily_latent("flux"), 16);
    assert_int_equal(lf_vaefamily_latent("diagnostic"), 0);
    assert_int_equal(lf_vaefamily_latent(NULL), 0);
}

static void test_fits(void **state)
{
    (void)state;
    static const struct {
        const char *vae;
        uint32_t latent;
        const char *model;
        bool fits;
    } cases[] = {
        {"flux", 16, "sd15", false},  {"flux", 16, "sdxl", false},    {"flux", 16, "flux", true},
        {"sd15", 4, "sd15", true},    {"sd15", 4, "sdxl", false},     {"sd15", 4, "flux", false},
        {"sdxl", 4, "sdxl", true},    {"sdxl", 4, "sdxl_refiner", true}, {"sdxl", 4, "sd15", false},
        {"sd", 4, "sd15", true},      {"sd", 4, "sdxl", true},        {"sd", 4, "flux", false},
        {"sd", 0, "flux", false},     {NULL, 16, "sd15", false},      {NULL, 4, "flux", false},
        {NULL, 0, "sd15", true},      {NULL, 0, "flux", true},        {"sdxl", 0, "sd15", false},
        {"flux", 16, "diagnostic", true}, {"flux", 16, NULL, true},   {"weird", 0, "sd15", true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bool got = lf_vaefamily_fits(cases[i].vae, cases[i].latent, cases[i].model);
        if (got != cases[i].fits)
            fail_msg("VAE %s (%u) with model %s: %d", cases[i].vae ? cases[i].vae : "NULL", cases[i].latent,
                     cases[i].model ? cases[i].model : "NULL", got);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_guess),
        cmocka_unit_test(test_latent),
        cmocka_unit_test(test_fits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
