/* End-to-end parity of SDXL generations with diffusers: lf_pipeline_run on
 * the real networks against StableDiffusionXLPipeline runs of the same tiny
 * SDXL checkpoint, prompt, negative prompt, seed, CFG, sampler and
 * micro-conditioning; and the refiner hand-off against diffusers' base
 * (denoising_end) + StableDiffusionXLImg2ImgPipeline (denoising_start) flow
 * (fixtures from tests/reference/make_sdxl_fixtures.py: tests/engine/
 * fixtures/sdxl/pipe_*.safetensors, pipelines.json).
 *
 * The fixture checkpoints' token embeddings (400 rows) are widened here to
 * CLIP's 49,408 (row r = row r % 400, as the script does), so the real
 * tokenizer runs on both sides. With an empty negative prompt the uncond is
 * all zeros on both sides (diffusers' force_zeros_for_empty_prompt, A1111's
 * force_zero_negative_prompt). The final latents and the VAE's float output are taken
 * from the pipeline's vae_decode call through a recording ops table over the
 * real lf_model functions. Error measure: max |ours - ref| / max |ref|.
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

#include "lf_error.h"
#include "lf_test_util.h"

#ifdef LF_HAVE_MODEL
#include "lf_clip_tokenizer.h"
#include "lf_model.h"
#include "lf_pipeline.h"
#include "lf_safetensors.h"
#include "lf_tensorinfo.h"
#include "lf_test_capture.h"
#include "lf_test_models.h"

/* Must match make_sdxl_fixtures.py. */
#define P_PROMPT "a red circle on a blue square, highly detailed"
#define P_NEGATIVE "blurry, ugly"
#define P_SEED 1234
#define P_CFG 5.0
#define P_SIZE 16 /* vae scale 2: an 8x8 latent */
#define P_LATENT (4 * (P_SIZE / 2) * (P_SIZE / 2))
#define P_IMAGE (3 * P_SIZE * P_SIZE)
#define P_TOL 1e-4

typedef struct {
    const char *file, *sampler, *scheduler;
    int steps;
    double refiner_at; /* 0: base only */
    int micro;         /* the script's MICRO micro-conditioning */
    int empty_negative; /* negative prompt "": an all-zero uncond (A1111 and diffusers) */
} s_case_t;

static const s_case_t s_cases[] = {
    {"euler", "euler", "normal", 4, 0, 0, 0},
    {"euler_a", "euler_ancestral", "normal", 4, 0, 0, 0},
    {"euler_karras", "euler", "karras", 5, 0, 0, 0},
    {"heun", "heun", "normal", 4, 0, 0, 0},
    /* sgm_uniform 9: integer timesteps (diffusers rounds DPM-Solver's, and
     * the tiny UNet's two time frequencies feel half a step). */
    {"dpmpp_2m", "dpmpp_2m", "sgm_uniform", 9, 0, 0, 0},
    {"uni_pc_f32", "uni_pc", "normal", 4, 0, 0, 0},
    {"euler_micro", "euler", "normal", 4, 0, 1, 0},
    {"refiner_euler", "euler", "normal", 4, 0.5, 0, 0},
    {"refiner_euler_a", "euler_ancestral", "normal", 4, 0.6, 0, 0},
    {"euler_empty_negative", "euler", "normal", 4, 0, 0, 1},
};
#define N_CASES (sizeof s_cases / sizeof s_cases[0])


typedef struct {
    lf_model_t *base, *refiner;
    lf_clip_tokenizer_t *tok;
    char base_path[64], refiner_path[64];
} s_env_t;

static int s_setup(void **state)
{
    *state = NULL;
    char vb[1024], err[512] = "";
    const char *vocab = lf_test_refdata(vb, sizeof vb, "tokenizers/clip/bpe_simple_vocab_16e6.txt.gz");
    if (!vocab) return 0;
    s_env_t *env = calloc(1, sizeof *env);
    if (!env) return -1;
    if (lf_test_tmpfile(env->base_path, sizeof env->base_path, "lf_sdxl_parity") || lf_test_tmpfile(env->refiner_path, sizeof env->refiner_path, "lf_sdxl_parity") ||
        lf_test_write_clip_sdxl(LF_FIXTURE_DIR, "base", NULL, env->base_path) ||
        lf_test_write_clip_sdxl(LF_FIXTURE_DIR, "refiner", NULL, env->refiner_path))
        return -1;
    if (lf_clip_tokenizer_load(&env->tok, vocab, err, sizeof err) ||
        lf_model_load(env->base_path, NULL, &env->base, err, sizeof err) ||
        lf_model_load(env->refiner_path, NULL, &env->refiner, err, sizeof err)) {
        fprintf(stderr, "setup: %s\n", err);
        return -1;
    }
    *state = env;
    return 0;
}

static int s_teardown(void **state)
{
    s_env_t *env = *state;
    if (!env) return 0;
    lf_model_destroy(&env->base);
    lf_model_destroy(&env->refiner);
    lf_clip_tokenizer_destroy(&env->tok);
    unlink(env->base_path);
    unlink(env->refiner_path);
    free(env);
    return 0;
}

static void s_run_case(s_env_t *env, const s_case_t *c)
{
    char path[1024], rel[128], err[256] = "";
    snprintf(rel, sizeof rel, "sdxl/pipe_%s.safetensors", c->file);
    lf_test_fixture(path, sizeof path, rel);
    if (access(path, F_OK) != 0) {
        printf("SKIP: %s absent (see make_sdxl_fixtures.py)\n", path);
        skip();
    }
    lf_safetensors_t *st = NULL;
    if (lf_safetensors_open(&st, path, err, sizeof err) != 0) fail_msg("%s: %s", path, err);
    const lf_tensor_info_t *lat = lf_safetensors_find(st, "latent"), *img = lf_safetensors_find(st, "image");
    assert_non_null(lat);
    assert_non_null(img);

    lf_pipeline_ctx_t ctx = {.ops = &lf_test_rec_ops, .model = env->base, .tokenizer = env->tok,
                             .model_name = "sdxl_tiny",
                             .refiner = c->refiner_at > 0 ? env->refiner : NULL,
                             .refiner_name = "sdxl_tiny_refiner"};
    lf_pipeline_request_t req = {.prompt = P_PROMPT, .negative = c->empty_negative ? "" : P_NEGATIVE,
                                 .steps = c->steps,
                                 .cfg = P_CFG, .seed = P_SEED, .width = P_SIZE, .height = P_SIZE,
                                 .batch = 1, .rng = LF_RNG_TORCH_CPU, .clip_skip = 1,
                                 .refiner_switch_at = c->refiner_at};
    assert_int_equal(lf_sampler_parse(c->sampler, &req.sampler), 0);
    assert_int_equal(lf_scheduler_parse(c->scheduler, &req.scheduler), 0);
    if (c->micro) { /* diffusers original_size=(24, 40), crops=(2, 6), target_size=(32, 16): (h, w) */
        req.orig_height = 24, req.orig_width = 40;
        req.crop_top = 2, req.crop_left = 6;
        req.target_height = 32, req.target_width = 16;
    }
    lf_pipeline_result_t res = {0};
    lf_test_cap_expect(4, P_SIZE / 2, P_SIZE / 2, P_IMAGE);
    if (lf_pipeline_run(&ctx, &req, NULL, &res, err, sizeof err) != 0) fail_msg("%s: %s", c->file, err);
    assert_int_equal(res.n_images, 1);
    assert_int_equal(res.steps_run, c->steps);
    /* A1111's keys for the refiner in the parameters text. */
    const char *info = res.images[0].infotext;
    if (c->refiner_at > 0) {
        assert_non_null(strstr(info, "Refiner: sdxl_tiny_refiner"));
        assert_non_null(strstr(info, "Refiner switch at: "));
        assert_ptr_equal(lf_test_cap.decoder, env->refiner);
    } else {
        assert_null(strstr(info, "Refiner"));
        assert_ptr_equal(lf_test_cap.decoder, env->base);
    }
    lf_pipeline_result_clear(&res);
    assert_int_equal(lf_test_cap.calls, 1);
    double el = lf_test_relerr_info(lf_test_cap.latent, lat, P_LATENT), ei = lf_test_relerr_info(lf_test_cap.image, img, P_IMAGE);
    printf("sdxl parity %-16s %-16s %-7s steps %d refiner %.1f: latent rel err %.2e, image rel err %.2e\n",
           c->file, c->sampler, c->scheduler, c->steps, c->refiner_at, el, ei);
    fflush(stdout);
    lf_safetensors_destroy(&st);
    if (el >= P_TOL || ei >= P_TOL) fail_msg("%s: beyond %.0e relative", c->file, P_TOL);
}

/* Without the refiner's share (switch at 1) the base runs every step; the
 * A1111 defaults of the micro-conditioning equal the explicit image size. */
static void test_defaults(void **state)
{
    s_env_t *env = *state;
    if (!env) skip();
    lf_pipeline_ctx_t ctx = {.ops = &lf_test_rec_ops, .model = env->base, .tokenizer = env->tok,
                             .refiner = env->refiner};
    lf_pipeline_request_t req = {.prompt = P_PROMPT, .negative = P_NEGATIVE, .steps = 4, .cfg = P_CFG,
                                 .seed = P_SEED, .width = P_SIZE, .height = P_SIZE, .batch = 1,
                                 .refiner_switch_at = 1.0};
    lf_pipeline_result_t res = {0};
    char err[256] = "";
    lf_test_cap_expect(4, P_SIZE / 2, P_SIZE / 2, P_IMAGE);
    assert_int_equal(lf_pipeline_run(&ctx, &req, NULL, &res, err, sizeof err), 0);
    assert_ptr_equal(lf_test_cap.decoder, env->base);
    assert_null(strstr(res.images[0].infotext, "Refiner"));
    float a[P_LATENT];
    memcpy(a, lf_test_cap.latent, sizeof a);
    lf_pipeline_result_clear(&res);
    req.orig_width = req.target_width = P_SIZE, req.orig_height = req.target_height = P_SIZE;
    assert_int_equal(lf_pipeline_run(&ctx, &req, NULL, &res, err, sizeof err), 0);
    lf_pipeline_result_clear(&res);
    assert_memory_equal(a, lf_test_cap.latent, sizeof a);
    /* A bad switch point is refused with a message. */
    req.refiner_switch_at = 1.5;
    assert_int_equal(lf_pipeline_run(&ctx, &req, NULL, &res, err, sizeof err), LF_EINVAL);
    assert_non_null(strstr(err, "refiner"));
}

#define S_TEST(i)                                                                                  \
    static void test_sdxl_##i(void **state)                                                        \
    {                                                                                              \
        if (!*state) skip();                                                                       \
        s_run_case(*state, &s_cases[i]);                                                           \
    }
S_TEST(0)
S_TEST(1)
S_TEST(2)
S_TEST(3)
S_TEST(4)
S_TEST(5)
S_TEST(6)
S_TEST(7)
S_TEST(8)
S_TEST(9)
_Static_assert(N_CASES == 10, "one test function per case");
#endif

int main(void)
{
#ifdef LF_HAVE_MODEL
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sdxl_0), cmocka_unit_test(test_sdxl_1), cmocka_unit_test(test_sdxl_2),
        cmocka_unit_test(test_sdxl_3), cmocka_unit_test(test_sdxl_4), cmocka_unit_test(test_sdxl_5),
        cmocka_unit_test(test_sdxl_6), cmocka_unit_test(test_sdxl_7), cmocka_unit_test(test_sdxl_8),
        cmocka_unit_test(test_sdxl_9), cmocka_unit_test(test_defaults),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
#else
    printf("SKIP: built without the networks\n");
    return 0;
#endif
}
