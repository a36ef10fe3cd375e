/* Few-step distilled models against diffusers: lf_pipeline_run on the real
 * networks of the tiny SDXL base (tests/engine/fixtures/sdxl/base.safetensors)
 * against StableDiffusionXLPipeline runs with the schedulers those models
 * ship with (tests/reference/make_fewstep_fixtures.py: tests/engine/
 * fixtures/fewstep/<case>.safetensors, cases.json):
 *   SDXL-Lightning: euler + trailing at cfg 1 (no negative pass) for an eps
 *     model and for an x0 ("sample") model, 1, 2, 4 and 8 steps;
 *   SDXL-Turbo: euler_ancestral + trailing at cfg 0 (no guidance);
 *   LCM: lcm + lcm (LCMScheduler's own timesteps); DMD2: lcm + trailing
 *     (its fixed 999 749 499 249) at cfg 0; TCD / Hyper-SD: tcd + lcm
 *     (TCDScheduler, gamma 0.3, and the request's gamma 0 and 0.7); Hyper-SD
 *     1-step: tcd at the explicit timestep 800, gamma 1 (TCDScheduler,
 *     timesteps=[800], eta 1); euler over explicit timesteps 999 850 500
 *     (EulerDiscreteScheduler, timesteps=); and trailing at cfg 2 with a
 *     negative prompt;
 *   a Lightning-style UNet LoRA (kohya names, every attention/projection
 *     Linear and resnet conv, rank 4) merged by lf_model_set_loras into
 *     f32 weights against diffusers' load_lora_weights + fuse_lora.
 * The x0 model is the same UNet file with modelspec.prediction_type =
 * "sample" in its metadata (the detection path); lf_model_opts_t.prediction
 * is checked separately. Error measure: max |ours - ref| / max |ref| of the
 * final latent and of the VAE's float output. Skips when the CLIP merges
 * file of the reference data is absent. */
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
#include "lf_tensor.h"
#include "lf_tensorinfo.h"
#include "lf_test_capture.h"
#include "lf_test_models.h"

/* Must match make_pipeline_fixtures.py (prompt, negative, seed, size). */
#define P_PROMPT "a red circle on a blue square, highly detailed"
#define P_NEGATIVE "blurry, ugly"
#define P_SEED 1234
#define P_SIZE 16 /* vae scale 2: an 8x8 latent */
#define P_LATENT (4 * (P_SIZE / 2) * (P_SIZE / 2))
#define P_IMAGE (3 * P_SIZE * P_SIZE)
#define P_TOL 1e-4

typedef struct {
    const char *file, *sampler, *scheduler;
    int steps;
    double cfg;
    int x0; /* the "sample"-prediction model */
    int has_gamma;   /* tcd: the request's gamma (else the default 0.3) */
    double gamma;
    const int *timesteps; /* explicit timesteps (steps of them), or NULL */
} s_case_t;

static const int s_ts_hyper[] = {800};
static const int s_ts_euler[] = {999, 850, 500};

static const s_case_t s_cases[] = {
    {"lightning_eps_1", "euler", "trailing", 1, 1.0, 0, 0, 0.0, NULL},
    {"lightning_eps_2", "euler", "trailing", 2, 1.0, 0, 0, 0.0, NULL},
    {"lightning_eps_4", "euler", "trailing", 4, 1.0, 0, 0, 0.0, NULL},
    {"lightning_eps_8", "euler", "trailing", 8, 1.0, 0, 0, 0.0, NULL},
    {"lightning_x0_1", "euler", "trailing", 1, 1.0, 1, 0, 0.0, NULL},
    {"lightning_x0_2", "euler", "trailing", 2, 1.0, 1, 0, 0.0, NULL},
    {"lightning_x0_4", "euler", "trailing", 4, 1.0, 1, 0, 0.0, NULL},
    {"lightning_x0_8", "euler", "trailing", 8, 1.0, 1, 0, 0.0, NULL},
    {"turbo_1", "euler_ancestral", "trailing", 1, 0.0, 0, 0, 0.0, NULL},
    {"turbo_2", "euler_ancestral", "trailing", 2, 0.0, 0, 0, 0.0, NULL},
    {"turbo_4", "euler_ancestral", "trailing", 4, 0.0, 0, 0, 0.0, NULL},
    {"lcm_4", "lcm", "lcm", 4, 1.0, 0, 0, 0.0, NULL},
    {"dmd2_4", "lcm", "trailing", 4, 0.0, 0, 0, 0.0, NULL},
    {"tcd_4", "tcd", "lcm", 4, 1.0, 0, 0, 0.0, NULL},
    {"tcd_2", "tcd", "lcm", 2, 1.0, 0, 0, 0.0, NULL},
    {"lightning_cfg_4", "euler", "trailing", 4, 2.0, 0, 0, 0.0, NULL},
    /* TCD's gamma as a request sets it; Hyper-SD 1-step (TCD at timestep 800,
     * gamma 1); Euler over explicit timesteps (diffusers' timesteps=). */
    {"tcd_g0_4", "tcd", "lcm", 4, 1.0, 0, 1, 0.0, NULL},
    {"tcd_g07_4", "tcd", "lcm", 4, 1.0, 0, 1, 0.7, NULL},
    {"hyper_1", "tcd", "trailing", 1, 1.0, 0, 1, 1.0, s_ts_hyper},
    {"euler_ts_3", "euler", "trailing", 3, 1.0, 0, 0, 0.0, s_ts_euler},
};
#define N_CASES (sizeof s_cases / sizeof s_cases[0])


typedef struct {
    lf_model_t *eps, *x0;
    lf_clip_tokenizer_t *tok;
    char eps_path[64], x0_path[64];
    int text_calls; /* encoder calls of the last run: 1 whatever the cfg */
} s_env_t;

static int s_setup(void **state)
{
    *state = NULL;
    char vb[1024], err[512] = "";
    const char *vocab = lf_test_refdata(vb, sizeof vb, "tokenizers/clip/bpe_simple_vocab_16e6.txt.gz");
    if (!vocab) return 0;
    s_env_t *env = calloc(1, sizeof *env);
    if (!env) return -1;
    if (lf_test_tmpfile(env->eps_path, sizeof env->eps_path, "lf_fewstep") || lf_test_tmpfile(env->x0_path, sizeof env->x0_path, "lf_fewstep") ||
        lf_test_write_clip_sdxl(LF_FIXTURE_DIR, "base", NULL, env->eps_path) ||
        lf_test_write_clip_sdxl_pred(LF_FIXTURE_DIR, "base", env->x0_path, "sample"))
        return -1;
    if (lf_clip_tokenizer_load(&env->tok, vocab, err, sizeof err) ||
        lf_model_load(env->eps_path, NULL, &env->eps, err, sizeof err) ||
        lf_model_load(env->x0_path, NULL, &env->x0, err, sizeof err)) {
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
    lf_model_destroy(&env->eps);
    lf_model_destroy(&env->x0);
    lf_clip_tokenizer_destroy(&env->tok);
    unlink(env->eps_path);
    unlink(env->x0_path);
    free(env);
    return 0;
}

/* Batch of the denoiser's calls in the last run: 1 without a negative pass. */
static int s_denoise_batch;
static int s_denoise_rec(lf_model_t *m, const float *x, int batch, int h, int w, const float *t,
                         const float *cond, int cond_len, const float *vec, float *out)
{
    if (batch > s_denoise_batch) s_denoise_batch = batch;
    return lf_model_denoise(m, x, batch, h, w, t, cond, cond_len, vec, out);
}

static void s_run_case_on(s_env_t *env, const s_case_t *c, lf_model_t *model)
{
    char path[1024], rel[128], err[256] = "";
    snprintf(rel, sizeof rel, "fewstep/%s.safetensors", c->file);
    lf_test_fixture(path, sizeof path, rel);
    if (access(path, F_OK) != 0) {
        printf("SKIP: %s absent (see make_fewstep_fixtures.py)\n", path);
        skip();
    }
    lf_safetensors_t *st = NULL;
    if (lf_safetensors_open(&st, path, err, sizeof err) != 0) fail_msg("%s: %s", path, err);
    const lf_tensor_info_t *lat = lf_safetensors_find(st, "latent"), *img = lf_safetensors_find(st, "image");
    assert_non_null(lat);
    assert_non_null(img);

    lf_model_ops_t ops = lf_test_rec_ops;
    ops.denoise = s_denoise_rec;
    lf_model_t *m = model ? model : c->x0 ? env->x0 : env->eps;
    assert_int_equal(lf_model_desc(m)->prediction, c->x0 ? LF_PRED_SAMPLE : LF_PRED_EPS);
    lf_pipeline_ctx_t ctx = {.ops = &ops, .model = m, .tokenizer = env->tok, .model_name = "sdxl_tiny"};
    lf_pipeline_request_t req = {.prompt = P_PROMPT, .negative = P_NEGATIVE, .steps = c->steps,
                                 .cfg = c->cfg, .seed = P_SEED, .width = P_SIZE, .height = P_SIZE,
                                 .batch = 1, .rng = LF_RNG_TORCH_CPU, .clip_skip = 1};
    assert_int_equal(lf_sampler_parse(c->sampler, &req.sampler), 0);
    assert_int_equal(lf_scheduler_parse(c->scheduler, &req.scheduler), 0);
    req.has_tcd_gamma = c->has_gamma;
    req.tcd_gamma = c->gamma;
    req.timesteps = c->timesteps;
    req.n_timesteps = c->timesteps ? c->steps : 0;
    lf_pipeline_result_t res = {0};
    lf_test_cap_expect(4, P_SIZE / 2, P_SIZE / 2, P_IMAGE);
    s_denoise_batch = 0;
    if (lf_pipeline_run(&ctx, &req, NULL, &res, err, sizeof err) != 0) fail_msg("%s: %s", c->file, err);
    assert_int_equal(res.n_images, 1);
    assert_int_equal(res.steps_run, c->steps);
    /* cfg 1 and cfg 0: one pass (no negative prompt); else two. */
    assert_int_equal(s_denoise_batch, c->cfg == 1.0 || c->cfg == 0.0 ? 1 : 2);
    /* The infotext names the sampler and schedule as A1111 reads them back. */
    const char *info = res.images[0].infotext;
    char want[96];
    snprintf(want, sizeof want, "Sampler: %s, Schedule type: %s", lf_sampler_a1111_name(req.sampler),
             strcmp(c->scheduler, "lcm") ? "Trailing" : "LCM");
    if (!strstr(info, want)) fail_msg("%s: infotext without \"%s\": %s", c->file, want, info);
    /* TCD's gamma (A1111's Eta) and explicit timesteps are written. */
    if (!strcmp(c->sampler, "tcd")) {
        snprintf(want, sizeof want, "Eta: %g", c->has_gamma ? c->gamma : 0.3);
        if (!strstr(info, want)) fail_msg("%s: infotext without \"%s\": %s", c->file, want, info);
    }
    if (c->timesteps) {
        snprintf(want, sizeof want, "Timesteps: %d", c->timesteps[0]);
        if (!strstr(info, want) && !strstr(info, "Timesteps: \"")) fail_msg("%s: infotext without timesteps: %s", c->file, info);
    }
    lf_pipeline_result_clear(&res);
    assert_int_equal(lf_test_cap.calls, 1);
    double el = lf_test_relerr_info(lf_test_cap.latent, lat, P_LATENT), ei = lf_test_relerr_info(lf_test_cap.image, img, P_IMAGE);
    printf("fewstep parity %-16s %-16s %-8s steps %d cfg %.0f %s: latent rel err %.2e, image rel err %.2e\n",
           c->file, c->sampler, c->scheduler, c->steps, c->cfg, c->x0 ? "x0 " : "eps", el, ei);
    fflush(stdout);
    lf_safetensors_destroy(&st);
    if (el >= P_TOL || ei >= P_TOL) fail_msg("%s: beyond %.0e relative", c->file, P_TOL);
}

static void s_run_case(s_env_t *env, const s_case_t *c) { s_run_case_on(env, c, NULL); }

/* The LoRA merged into f32 weights (diffusers fuses in f32: f16 storage
 * would round the merged weights by ~1e-3), then the plain model back. */
static void test_lora(void **state)
{
    s_env_t *env = *state;
    if (!env) skip();
    char lora[1024], err[512] = "";
    lf_test_fixture(lora, sizeof lora, "fewstep/lora_lightning.safetensors");
    lf_model_t *m = NULL;
    lf_model_opts_t o = {.weight_type = LF_TYPE_F32};
    if (lf_model_load(env->eps_path, &o, &m, err, sizeof err)) fail_msg("%s", err);
    lf_lora_use_t use = {.path = lora, .name = "lora_lightning", .unet_weight = 1.0, .te_weight = 1.0};
    lf_lora_patch_info_t info = {0};
    if (lf_model_set_loras(m, &use, 1, &info, err, sizeof err)) fail_msg("%s", err);
    if (info.warnings) fail_msg("tensors not applied: %s", info.warnings);
    assert_int_equal(info.layers, 146); /* every layer diffusers' fuse_lora changed */
    const s_case_t c = {"lora_lightning_4", "euler", "trailing", 4, 1.0, 0, 0, 0.0, NULL};
    s_run_case_on(env, &c, m);
    /* Without the LoRA: lightning_eps_4 again, from the same (restored) model. */
    assert_int_equal(lf_model_set_loras(m, NULL, 0, NULL, err, sizeof err), 0);
    s_run_case_on(env, &s_cases[2], m);
    lf_model_destroy(&m);
}

/* Timesteps the schedule cannot take are refused before any model call:
 * not descending, out of range, a count other than steps. */
static void test_timesteps_refused(void **state)
{
    s_env_t *env = *state;
    if (!env) skip();
    static const int up[] = {500, 800}, big[] = {1000, 500}, one[] = {800};
    const struct {
        const int *ts;
        int n, steps;
    } bad[] = {{up, 2, 2}, {big, 2, 2}, {one, 1, 2}};
    lf_pipeline_ctx_t ctx = {.ops = &lf_test_rec_ops, .model = env->eps, .tokenizer = env->tok, .model_name = "t"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        lf_pipeline_request_t req = {.prompt = P_PROMPT, .steps = bad[i].steps, .cfg = 1, .seed = 1,
                                     .width = P_SIZE, .height = P_SIZE, .batch = 1, .clip_skip = 1,
                                     .timesteps = bad[i].ts, .n_timesteps = bad[i].n};
        lf_pipeline_result_t res = {0};
        char err[256] = "";
        assert_int_equal(lf_pipeline_run(&ctx, &req, NULL, &res, err, sizeof err), LF_EINVAL);
        assert_non_null(strstr(err, "timesteps"));
    }
}

static void test_cases(void **state)
{
    s_env_t *env = *state;
    if (!env) skip();
    for (size_t i = 0; i < N_CASES; i++) s_run_case(env, &s_cases[i]);
}

/* The prediction type: the caller's when the file says nothing, the file's
 * metadata over the caller's; the names parse. */
static void test_prediction(void **state)
{
    lf_prediction_t p = LF_PRED_EPS;
    assert_int_equal(lf_prediction_parse("x0", &p), 0);
    assert_int_equal(p, LF_PRED_SAMPLE);
    assert_int_equal(lf_prediction_parse("V_PREDICTION", &p), 0);
    assert_int_equal(p, LF_PRED_V);
    assert_int_equal(lf_prediction_parse("epsilon", &p), 0);
    assert_int_equal(p, LF_PRED_EPS);
    assert_int_equal(lf_prediction_parse("rectified", &p), LF_ENOTFOUND);
    assert_int_equal(p, LF_PRED_EPS);
    assert_int_equal(lf_prediction_parse("CONST", &p), 0); /* ComfyUI's flow model sampling */
    assert_int_equal(p, LF_PRED_FLOW);
    assert_string_equal(lf_prediction_name(LF_PRED_FLOW), "flow");
    p = LF_PRED_EPS;
    assert_string_equal(lf_prediction_name(LF_PRED_SAMPLE), "sample");
    s_env_t *env = *state;
    if (!env) skip();
    char err[256] = "";
    lf_model_t *m = NULL;
    lf_model_opts_t o = {.weight_type = -1, .prediction = LF_PRED_SAMPLE};
    assert_int_equal(lf_model_load(env->eps_path, &o, &m, err, sizeof err), 0);
    assert_int_equal(lf_model_desc(m)->prediction, LF_PRED_SAMPLE);
    lf_model_destroy(&m);
    o.prediction = LF_PRED_V;
    assert_int_equal(lf_model_load(env->x0_path, &o, &m, err, sizeof err), 0);
    assert_int_equal(lf_model_desc(m)->prediction, LF_PRED_SAMPLE);
    lf_model_destroy(&m);
}
#endif

int main(void)
{
#ifdef LF_HAVE_MODEL
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prediction),
        cmocka_unit_test(test_timesteps_refused),
        cmocka_unit_test(test_cases),
        cmocka_unit_test(test_lora),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
#else
    printf("SKIP: built without the networks\n");
    return 0;
#endif
}
