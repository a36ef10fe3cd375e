/* lf_batch: the batch key walks the parameter table — every row but the
 * per-job ones (prompt, negative prompt, seed, batch size, prompt
 * enhancement) changes the key or makes the job unbatchable; the per-job
 * ones and a prompt that keeps its LoRA tags leave it as it is. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lf_batch.h"
#include "lf_error.h"

static void s_base(lf_job_params_t *p)
{
    memset(p, 0, sizeof *p);
    assert_int_equal(lf_params_defaults(p), 0);
    const lf_param_def_t *t = lf_params_table();
    assert_int_equal(lf_param_set_str(p, &t[LF_P_model], "m1"), 0);
    assert_int_equal(lf_param_set_str(p, &t[LF_P_prompt], "a cat <lora:x:0.5>"), 0);
    assert_int_equal(lf_param_set_num(p, &t[LF_P_seed], 7), 0);
}

static int s_per_job(int id)
{
    return id == LF_P_prompt || id == LF_P_negative_prompt || id == LF_P_seed || id == LF_P_batch_size ||
           id == LF_P_prompt_original || id == LF_P_enhance_prompt || id == LF_P_enhance_instruction ||
           id == LF_P_enhance_error;
}

/* Give row d of p another valid value; 0 when the row has none to give. */
static int s_change(lf_job_params_t *p, const lf_param_def_t *d)
{
    switch (d->type) {
    case LF_PT_ENUM: {
        const char *cur = lf_param_cstr(p, d);
        for (const lf_param_enum_t *v = d->values; v->name; v++)
            if (!cur || strcmp(cur, v->name)) return lf_param_set_str(p, d, v->name) == 0;
        return 0;
    }
    case LF_PT_STR:
        return lf_param_set_str(p, d, d->flags & LF_PF_ID ? "0123456789abcdef" : "other") == 0;
    case LF_PT_JSON:
        return lf_param_set_str(p, d, "[{\"ad_model\":\"mediapipe_face_short\"}]") == 0;
    case LF_PT_LORAS:
        return lf_param_loras_add(p, d, "y", 0.5, 0.5) == 0;
    default: {
        double cur = lf_param_num(p, d);
        double v = cur != d->hi ? d->hi : d->lo;
        if (d->flags & LF_PF_MULTIPLE) v = cur != 256 ? 256 : 512;
        return lf_param_set_num(p, d, v) == 0;
    }
    }
}

static void test_table_walk(void **state)
{
    (void)state;
    lf_job_params_t p;
    s_base(&p);
    char k0[LF_BATCH_KEY_LEN + 1], k[LF_BATCH_KEY_LEN + 1];
    assert_int_equal(lf_batch_key(&p, k0), 0);
    assert_int_equal(strlen(k0), LF_BATCH_KEY_LEN);
    const lf_param_def_t *t = lf_params_table();
    for (int i = 0; i < LF_P__COUNT; i++) {
        lf_job_params_t q;
        s_base(&q);
        if (!s_change(&q, &t[i])) {
            lf_params_clear(&q);
            fail_msg("row %s: no other value to try", t[i].name);
        }
        assert_int_equal(lf_batch_key(&q, k), 0);
        if (s_per_job(i) && i != LF_P_prompt) {
            if (strcmp(k, k0)) fail_msg("row %s changed the key", t[i].name);
        } else if (!strcmp(k, k0)) {
            fail_msg("row %s left the key as it was", t[i].name);
        }
        lf_params_clear(&q);
    }
    lf_params_clear(&p);
}

static void test_prompts(void **state)
{
    (void)state;
    lf_job_params_t p, q;
    s_base(&p);
    s_base(&q);
    const lf_param_def_t *t = lf_params_table();
    char a[LF_BATCH_KEY_LEN + 1], b[LF_BATCH_KEY_LEN + 1];
    assert_int_equal(lf_batch_key(&p, a), 0);
    /* Another prompt with the same LoRA set batches. */
    assert_int_equal(lf_param_set_str(&q, &t[LF_P_prompt], "<lora:x:0.5> a dog, in the snow"), 0);
    assert_int_equal(lf_batch_key(&q, b), 0);
    assert_string_equal(a, b);
    /* Another LoRA weight does not. */
    assert_int_equal(lf_param_set_str(&q, &t[LF_P_prompt], "a cat <lora:x:0.6>"), 0);
    assert_int_equal(lf_batch_key(&q, b), 0);
    assert_string_not_equal(a, b);
    /* Never batched: img2img, Hires-Fix, step caching. */
    assert_int_equal(lf_param_set_str(&q, &t[LF_P_init_image], "0123456789abcdef"), 0);
    assert_int_equal(lf_batch_key(&q, b), 0);
    assert_string_equal(b, "");
    lf_params_clear(&q);
    s_base(&q);
    q.enable_hr = true;
    assert_int_equal(lf_batch_key(&q, b), 0);
    assert_string_equal(b, "");
    lf_params_clear(&q);
    s_base(&q);
    assert_int_equal(lf_param_set_str(&q, &t[LF_P_cache_kind], "fbcache"), 0);
    assert_int_equal(lf_batch_key(&q, b), 0);
    assert_string_equal(b, "");
    assert_int_equal(lf_batch_key(NULL, b), LF_EINVAL);
    lf_params_clear(&q);
    lf_params_clear(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_walk),
        cmocka_unit_test(test_prompts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
