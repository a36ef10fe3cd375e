/* LoRAs in SDXL jobs that run a refiner, through the lf_engine.h facade on
 * the tiny SDXL base and refiner fixtures (token embeddings widened to
 * CLIP's vocabulary, lf_test_models.h): a LoRA made for the base (kohya's
 * SDXL names, tests/engine/fixtures/lora/sdxl_kohya.safetensors, whose UNet
 * layers the refiner has in other shapes or not at all) goes to the base
 * only; a LoRA whose every tensor is one of the refiner's layers (here one
 * written by the test: the OpenCLIP encoder's q_proj and fc1, which base and
 * refiner share in shape) goes to both; the job's warnings say which model
 * got each; and the refined job after them gives the bytes of the first.
 * Skips when the CLIP merges file of the reference data is absent. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "lf_engine.h"
#include "lf_error.h"
#include "lf_test_models.h"
#include "lf_test_util.h"

#ifdef LF_HAVE_MODEL
#include "lf_model.h"

typedef struct {
    char dir[64], base[128], refiner[128], te2[128], kohya[128];
    lf_engine_t *e;
} ctx_t;

/* A kohya LoRA on the OpenCLIP encoder only (hidden 24, MLP 48 in the
 * fixtures): layer 0's q_proj (a slice of the packed in_proj) and fc1. */
static int s_write_te2_lora(const char *path)
{
    static float d0[2 * 24], u0[24 * 2], d1[2 * 24], u1[48 * 2];
    float *bufs[4] = {d0, u0, d1, u1};
    size_t lens[4] = {48, 48, 48, 96};
    for (int b = 0; b < 4; b++)
        for (size_t i = 0; i < lens[b]; i++) bufs[b][i] = (float)sin(1.7 * (double)(i + 31 * b)) * 0.3f;
    const char *q = "lora_te2_text_model_encoder_layers_0_self_attn_q_proj",
               *f = "lora_te2_text_model_encoder_layers_0_mlp_fc1";
    char n[4][128];
    snprintf(n[0], sizeof n[0], "%s.lora_down.weight", q);
    snprintf(n[1], sizeof n[1], "%s.lora_up.weight", q);
    snprintf(n[2], sizeof n[2], "%s.lora_down.weight", f);
    snprintf(n[3], sizeof n[3], "%s.lora_up.weight", f);
    const int64_t shapes[4][2] = {{2, 24}, {24, 2}, {2, 24}, {48, 2}};
    lf_tensor_info_t t[4];
    for (int i = 0; i < 4; i++)
        t[i] = (lf_tensor_info_t){.name = n[i], .dtype = LF_DTYPE_F32, .ndim = 2,
                                  .shape = {shapes[i][0], shapes[i][1]},
                                  .strides = {shapes[i][1], 1}, .data = bufs[i],
                                  .nbytes = lens[i] * sizeof(float)};
    return lf_safetensors_write(path, t, 4, NULL, 0);
}

static int s_setup(void **state)
{
    *state = NULL;
    char vb[1024], src[1024], cmd[4096], err[256] = "";
    const char *vocab = lf_test_refdata(vb, sizeof vb, "tokenizers/clip/bpe_simple_vocab_16e6.txt.gz");
    if (!vocab) return 0;
    ctx_t *c = calloc(1, sizeof *c);
    snprintf(c->dir, sizeof c->dir, "/tmp/lf_lora_refXXXXXX");
    if (!mkdtemp(c->dir)) return -1;
    snprintf(cmd, sizeof cmd, "mkdir -p '%s/lora' && cp '%s' '%s/lora/'", c->dir,
             lf_test_fixture(src, sizeof src, "lora/sdxl_kohya.safetensors"), c->dir);
    if (system(cmd) != 0) return -1;
    snprintf(c->base, sizeof c->base, "%s/base.safetensors", c->dir);
    snprintf(c->refiner, sizeof c->refiner, "%s/refiner.safetensors", c->dir);
    snprintf(c->te2, sizeof c->te2, "%s/lora/te2_only.safetensors", c->dir);
    snprintf(c->kohya, sizeof c->kohya, "%s/lora/sdxl_kohya.safetensors", c->dir);
    if (lf_test_write_clip_sdxl(LF_FIXTURE_DIR, "base", NULL, c->base) ||
        lf_test_write_clip_sdxl(LF_FIXTURE_DIR, "refiner", NULL, c->refiner) || s_write_te2_lora(c->te2))
        return -1;
    char dirs[128];
    snprintf(dirs, sizeof dirs, "%s/lora", c->dir);
    lf_engine_opts_t o = {.vocab_path = vocab, .n_threads = 2, .lora_dirs = dirs};
    if (lf_engine_new(&o, &c->e, err, sizeof err) != 0) {
        fprintf(stderr, "lf_engine_new: %s\n", err);
        return -1;
    }
    lf_engine_load_opts_t lo = {.name = "sdxl_tiny"};
    if (lf_engine_load(c->e, c->base, &lo)) {
        fprintf(stderr, "load: %s\n", lf_engine_errstr(c->e));
        return -1;
    }
    *state = c;
    return 0;
}

static int s_teardown(void **state)
{
    ctx_t *c = *state;
    if (!c) return 0;
    lf_engine_destroy(&c->e);
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", c->dir);
    assert_int_equal(system(cmd), 0);
    free(c);
    return 0;
}

static lf_engine_result_t s_gen(ctx_t *c, const lf_engine_lora_t *loras, size_t n)
{
    lf_engine_request_t r = lf_engine_request_defaults();
    r.prompt = "a red circle on a blue square";
    r.negative = "blurry";
    r.width = r.height = 16;
    r.steps = 4;
    r.seed = 7;
    r.refiner_path = c->refiner;
    r.refiner_name = "sdxl_tiny_refiner";
    r.refiner_switch_at = 0.5;
    r.loras = loras;
    r.n_loras = n;
    lf_engine_result_t res = {0};
    if (lf_engine_generate(c->e, &r, NULL, NULL, NULL, &res))
        fail_msg("generate: %s", lf_engine_errstr(c->e));
    return res;
}

static void test_refiner_gets_matching_loras_only(void **state)
{
    ctx_t *c = *state;
    if (!c) skip();
    /* What lf_model_lora_fits says of the two files on each model. */
    char err[256] = "";
    lf_model_t *base = NULL, *ref = NULL;
    assert_int_equal(lf_model_load(c->base, NULL, &base, err, sizeof err), 0);
    assert_int_equal(lf_model_load(c->refiner, NULL, &ref, err, sizeof err), 0);
    assert_int_equal(lf_model_lora_fits(base, c->kohya), 1);
    assert_int_equal(lf_model_lora_fits(base, c->te2), 1);
    assert_int_equal(lf_model_lora_fits(ref, c->kohya), 0);
    assert_int_equal(lf_model_lora_fits(ref, c->te2), 1);
    lf_model_destroy(&base);
    lf_model_destroy(&ref);

    lf_engine_result_t a = s_gen(c, NULL, 0);
    assert_null(a.warnings);
    const lf_engine_lora_t loras[2] = {{.name = "sdxl_kohya", .weight = 1, .te_weight = NAN},
                                       {.name = "te2_only", .weight = 1, .te_weight = NAN}};
    lf_engine_result_t b = s_gen(c, loras, 2);
    assert_non_null(b.warnings);
    printf("  warnings: %s\n", b.warnings);
    assert_non_null(strstr(b.warnings, "LoRA sdxl_kohya applied to the base only (its layers are not "
                                       "those of the refiner sdxl_tiny_refiner)"));
    assert_non_null(strstr(b.warnings, "LoRA te2_only applied to the base and to the refiner "
                                       "sdxl_tiny_refiner"));
    assert_non_null(strstr(b.images[0].infotext, "Lora hashes"));
    assert_false(a.images[0].png_len == b.images[0].png_len &&
                 !memcmp(a.images[0].png, b.images[0].png, a.images[0].png_len));
    /* Only the te2 LoRA: the refiner keeps it, the base's kohya set goes. */
    lf_engine_result_t d = s_gen(c, loras + 1, 1);
    assert_non_null(strstr(d.warnings, "te2_only applied to the base and to the refiner"));
    assert_null(strstr(d.warnings, "sdxl_kohya"));
    /* Back to none: the first job's bytes (both models restored). */
    lf_engine_result_t a2 = s_gen(c, NULL, 0);
    assert_int_equal(a.images[0].png_len, a2.images[0].png_len);
    assert_memory_equal(a.images[0].png, a2.images[0].png, a.images[0].png_len);
    lf_engine_result_clear(&a), lf_engine_result_clear(&b), lf_engine_result_clear(&d);
    lf_engine_result_clear(&a2);
}
#endif

int main(void)
{
#ifdef LF_HAVE_MODEL
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refiner_gets_matching_loras_only),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
#else
    printf("SKIP: built without the networks\n");
    return 0;
#endif
}
