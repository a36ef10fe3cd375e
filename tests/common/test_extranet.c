/* Tests of lf_extranet's job-level helpers (the tag parser itself is tested
 * through lf_prompt_extract in tests/engine/test_prompt.c). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lf_extranet.h"

static void test_job_loras(void **state)
{
    (void)state;
    lf_job_params_t p = {0};
    assert_int_equal(lf_params_defaults(&p), 0);
    const lf_param_def_t *d = &lf_params_table()[LF_P_loras];
    free(p.prompt);
    p.prompt = strdup("a <lora:x:0.5> b <lyco:y:1:2> <hypernet:h> <lora:bad:q> c");
    assert_int_equal(lf_param_loras_add(&p, d, "z", 1.5, NAN), 0);
    assert_int_equal(lf_param_loras_add(&p, d, "w", 1, 0), 0);
    char set[256];
    /* A tag that does not read makes the whole prompt's tags unread (the
     * engine refuses the job): only the list is left. */
    assert_int_equal(lf_extranet_lora_set(&p, set, sizeof set), 0);
    assert_string_equal(set, "z:1.5:1.5|w:1:0");
    free(p.prompt);
    p.prompt = strdup("a <lora:x:0.5> b <lyco:y:1:2> <hypernet:h> c");
    lf_param_lora_t *v = NULL;
    size_t n = 0;
    assert_int_equal(lf_extranet_loras(&p, &v, &n), 0);
    assert_int_equal(n, 4);
    assert_string_equal(v[0].name, "x");
    assert_true(v[0].weight == 0.5 && v[0].te_weight == 0.5);
    assert_string_equal(v[1].name, "y");
    assert_true(v[1].weight == 2 && v[1].te_weight == 1); /* <lyco:name:te:unet> */
    assert_string_equal(v[2].name, "z");
    assert_true(v[2].te_weight == 1.5);
    lf_extranet_loras_free(&v, n);
    assert_int_equal(lf_extranet_lora_set(&p, set, sizeof set), 0);
    assert_string_equal(set, "x:0.5:0.5|y:2:1|z:1.5:1.5|w:1:0");
    lf_params_clear(&p);
    /* None. */
    lf_job_params_t q = {0};
    assert_int_equal(lf_extranet_lora_set(&q, set, sizeof set), 0);
    assert_string_equal(set, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_job_loras)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
