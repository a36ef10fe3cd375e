/* LoRAs in whole generations against diffusers: lf_model_set_loras +
 * lf_pipeline_run on the tiny SD1.5 fixture (tiny_a) and the tiny SDXL base
 * against diffusers' load_lora_weights + fuse_lora + StableDiffusion(XL)
 * Pipeline on the same checkpoint, prompt, negative prompt, seed, CFG and
 * sampler (euler, normal, 4 steps, 16x16), with LoRA files written from
 * known factors by tests/reference/make_lora_pipeline_fixtures.py
 * (tests/engine/fixtures/lora/{sd15_diffusers,sdxl_diffusers,sdxl_kohya}):
 * the diffusers format (PEFT lora_A/B and lora.down/up names under unet.,
 * text_encoder., text_encoder_2.) and kohya's SDXL names (lora_unet_ + SGM
 * paths, lora_te1_, lora_te2_), reaching the UNet, CLIP-L and OpenCLIP
 * (whose q/k/v sit packed in one in_proj here and separately in the files);
 * and LyCORIS' LoHa / LoKr on those packed slices (sdxl_lycoris, weights
 * only).
 *
 * Per file: every merged layer equals W0 + multiplier · ΔW (the lycoris /
 * PEFT math the script checked diffusers' fused weights against), read back
 * through lf_model_weight_f32; the final latents and the VAE's float output
 * equal the fused diffusers pipeline's; the plain model comes back. The
 * parity runs load the weights as f32 (as diffusers runs them), so the merge
 * is compared without a storage rounding; the restore property (plain →
 * LoRA → plain, byte-identical latents) runs on the f16 weights the
 * checkpoints hold. Error measure: max |ours - ref| / max |ref|. Skips when
 * the CLIP merges file of the reference data is absent. */
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
#include "lf_test_models.h"
#include "lf_test_util.h"

#ifdef LF_HAVE_MODEL
#include "lf_clip_tokenizer.h"
#include "lf_model.h"
#include "lf_pipeline.h"
#include "lf_safetensors.h"
#include "lf_tensorinfo.h"
#include "lf_test_capture.h"

/* Must match make_lora_pipeline_fixtures.py. */
#define P_PROMPT "a red circle on a blue square, highly detailed"
#define P_NEGATIVE "blurry, ugly"
#define P_SEED 1234
#define P_CFG 5.0
#define P_STEPS 4
#define P_SIZE 16 /* vae scale 2: an 8x8 latent */
#define P_LATENT (4 * (P_SIZE / 2) * (P_SIZE / 2))
#define P_IMAGE (3 * P_SIZE * P_SIZE)
#define P_TOL 1e-4
#define W_TOL 1e-6 /* a merged layer, f32 */


typedef struct {
    lf_model_t *sd15, *sdxl;         /* f32 weights: the parity runs */
    lf_model_t *sd15_f16, *sdxl_f16; /* as stored: the restore runs */
    lf_clip_tokenizer_t *tok;
    char sd15_path[64], sdxl_path[64];
} s_env_t;

static int s_setup(void **state)
{
    *state = NULL;
    char vb[1024], err[512] = "";
    const char *vocab = lf_test_refdata(vb, sizeof vb, "tokenizers/clip/bpe_simple_vocab_16e6.txt.gz");
    if (!vocab) return 0;
    s_env_t *env = calloc(1, sizeof *env);
    if (!env) return -1;
    if (lf_test_tmpfile(env->sd15_path, sizeof env->sd15_path, "lf_lora_parity") || lf_test_tmpfile(env->sdxl_path, sizeof env->sdxl_path, "lf_lora_parity") ||
        lf_test_write_clip_model(LF_FIXTURE_DIR, env->sd15_path) ||
        lf_test_write_clip_sdxl(LF_FIXTURE_DIR, "base", NULL, env->sdxl_path))
        return -1;
    lf_model_opts_t f32 = {.weight_type = LF_TYPE_F32};
    if (lf_clip_tokenizer_load(&env->tok, vocab, err, sizeof err) ||
        lf_model_load(env->sd15_path, &f32, &env->sd15, err, sizeof err) ||
        lf_model_load(env->sdxl_path, &f32, &env->sdxl, err, sizeof err) ||
        lf_model_load(env->sd15_path, NULL, &env->sd15_f16, err, sizeof err) ||
        lf_model_load(env->sdxl_path, NULL, &env->sdxl_f16, err, sizeof err)) {
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
    lf_model_destroy(&env->sd15);
    lf_model_destroy(&env->sdxl);
    lf_model_destroy(&env->sd15_f16);
    lf_model_destroy(&env->sdxl_f16);
    lf_clip_tokenizer_destroy(&env->tok);
    unlink(env->sd15_path);
    unlink(env->sdxl_path);
    free(env);
    return 0;
}

/* One euler generation of the fixtures' request; the latents and image land
 * in lf_test_cap. */
static void s_generate(s_env_t *env, lf_model_t *model)
{
    lf_pipeline_ctx_t ctx = {.ops = &lf_test_rec_ops, .model = model, .tokenizer = env->tok,
                             .model_name = "tiny"};
    lf_pipeline_request_t req = {.prompt = P_PROMPT, .negative = P_NEGATIVE, .steps = P_STEPS,
                                 .cfg = P_CFG, .seed = P_SEED, .width = P_SIZE, .height = P_SIZE,
                                 .batch = 1, .rng = LF_RNG_TORCH_CPU, .clip_skip = 1};
    assert_int_equal(lf_sampler_parse("euler", &req.sampler), 0);
    assert_int_equal(lf_scheduler_parse("normal", &req.scheduler), 0);
    lf_pipeline_result_t res = {0};
    char err[256] = "";
    lf_test_cap_expect(4, P_SIZE / 2, P_SIZE / 2, P_IMAGE);
    if (lf_pipeline_run(&ctx, &req, NULL, &res, err, sizeof err) != 0) fail_msg("pipeline: %s", err);
    assert_int_equal(res.n_images, 1);
    lf_pipeline_result_clear(&res);
    assert_int_equal(lf_test_cap.calls, 1);
}

static void s_use(const char *file, double mult, char *path, size_t len, lf_lora_use_t *u)
{
    char rel[128];
    snprintf(rel, sizeof rel, "lora/%s.safetensors", file);
    lf_test_fixture(path, len, rel);
    *u = (lf_lora_use_t){.path = path, .name = file, .unet_weight = mult, .te_weight = mult};
}

/* Sets LoRA file (multiplier mult) on model and checks every layer it
 * touches ("w.<pool name>" of ref: W0 + mult · ΔW by the reference math)
 * to tol; returns their count, *worst the largest error. */
static size_t s_merged_weights(lf_model_t *model, const char *file, double mult,
                               const lf_safetensors_t *ref, double *worst, double tol)
{
    char path[1024], err[512] = "";
    lf_lora_use_t u;
    s_use(file, mult, path, sizeof path, &u);
    lf_lora_patch_info_t info;
    if (lf_model_set_loras(model, &u, 1, &info, err, sizeof err)) fail_msg("set_loras: %s", err);
    if (info.warnings) fail_msg("%s: unexpected warnings: %s", file, info.warnings);
    size_t n_w = 0;
    for (size_t i = 0; i < lf_safetensors_count(ref); i++) {
        const lf_tensor_info_t *t = lf_safetensors_at(ref, i);
        if (strncmp(t->name, "w.", 2) != 0) continue;
        size_t n = (size_t)lf_tensorinfo_numel(t);
        float *got = malloc(n * sizeof *got);
        assert_non_null(got);
        int rc = lf_model_weight_f32(model, t->name + 2, got, n);
        if (rc) fail_msg("%s: %s: %s", file, t->name + 2, lf_strerror(rc));
        double e = lf_test_relerr_info(got, t, n);
        if (e > *worst) *worst = e;
        if (e >= tol) fail_msg("%s: layer %s: rel err %.3g", file, t->name + 2, e);
        free(got);
        n_w++;
    }
    assert_int_equal(info.layers, n_w);
    return n_w;
}

/* Merged layers and the whole generation of LoRA file (multiplier mult) on
 * model, against file.ref.safetensors; plain: the plain model's reference
 * generation (how far the LoRA moves it). */
static void s_parity(s_env_t *env, lf_model_t *model, const char *file, double mult,
                     const char *plain_rel)
{
    char path[1024], ref_path[1024], rel[128], err[512] = "";
    snprintf(rel, sizeof rel, "lora/%s.ref.safetensors", file);
    lf_test_fixture(ref_path, sizeof ref_path, rel);
    if (access(ref_path, F_OK) != 0) {
        printf("SKIP: %s absent (see make_lora_pipeline_fixtures.py)\n", ref_path);
        skip();
    }
    lf_safetensors_t *ref = NULL, *plain = NULL;
    lf_test_fixture(path, sizeof path, plain_rel);
    if (lf_safetensors_open(&ref, ref_path, err, sizeof err) ||
        lf_safetensors_open(&plain, path, err, sizeof err))
        fail_msg("%s", err);
    double worst = 0;
    size_t n_w = s_merged_weights(model, file, mult, ref, &worst, W_TOL);
    s_generate(env, model);
    const lf_tensor_info_t *lat = lf_safetensors_find(ref, "latent"), *img = lf_safetensors_find(ref, "image");
    assert_non_null(lat);
    assert_non_null(img);
    double el = lf_test_relerr_info(lf_test_cap.latent, lat, P_LATENT), ei = lf_test_relerr_info(lf_test_cap.image, img, P_IMAGE);
    double moved = lf_test_relerr_info(lf_test_cap.latent, lf_safetensors_find(plain, "latent"), P_LATENT);
    printf("lora parity %-15s x%.2f: %zu layers (worst rel err %.2e), latent rel err %.2e, image rel "
           "err %.2e (the LoRA moves the latent by %.2e)\n",
           file, mult, n_w, worst, el, ei, moved);
    fflush(stdout);
    if (el >= P_TOL || ei >= P_TOL) fail_msg("%s: beyond %.0e relative", file, P_TOL);
    assert_true(moved > 100 * P_TOL);
    /* The plain model again: diffusers' plain generation. */
    assert_int_equal(lf_model_set_loras(model, NULL, 0, NULL, err, sizeof err), 0);
    s_generate(env, model);
    el = lf_test_relerr_info(lf_test_cap.latent, lf_safetensors_find(plain, "latent"), P_LATENT);
    if (el >= P_TOL) fail_msg("%s: the plain model after the LoRA: rel err %.2e", file, el);
    lf_safetensors_destroy(&ref);
    lf_safetensors_destroy(&plain);
}

static void test_sd15_diffusers(void **state)
{
    if (!*state) skip();
    s_env_t *env = *state;
    s_parity(env, env->sd15, "sd15_diffusers", 0.75, "pipeline/euler.safetensors");
}

static void test_sdxl_diffusers(void **state)
{
    if (!*state) skip();
    s_env_t *env = *state;
    s_parity(env, env->sdxl, "sdxl_diffusers", 1.0, "sdxl/pipe_euler.safetensors");
}

static void test_sdxl_kohya(void **state)
{
    if (!*state) skip();
    s_env_t *env = *state;
    s_parity(env, env->sdxl, "sdxl_kohya", 1.0, "sdxl/pipe_euler.safetensors");
}

/* plain → LoRA → plain on the f16 weights: the last generation's latents are
 * the first's, bit for bit (also through a switch between two LoRAs, one of
 * them touching OpenCLIP's packed in_proj). */
static void s_restore(s_env_t *env, lf_model_t *m, const char *a, const char *b)
{
    float first[P_LATENT], with[P_LATENT];
    char pa[1024], pb[1024], err[512] = "";
    s_generate(env, m);
    memcpy(first, lf_test_cap.latent, sizeof first);
    lf_lora_use_t u[2];
    s_use(a, 1.0, pa, sizeof pa, &u[0]);
    if (lf_model_set_loras(m, u, 1, NULL, err, sizeof err)) fail_msg("%s", err);
    s_generate(env, m);
    memcpy(with, lf_test_cap.latent, sizeof with);
    assert_true(memcmp(first, with, sizeof first) != 0);
    if (b) {
        s_use(b, 0.5, pb, sizeof pb, &u[1]);
        if (lf_model_set_loras(m, u + 1, 1, NULL, err, sizeof err)) fail_msg("%s", err);
        s_generate(env, m);
        /* Back to a alone: its generation again, bit for bit. */
        if (lf_model_set_loras(m, u, 1, NULL, err, sizeof err)) fail_msg("%s", err);
        s_generate(env, m);
        assert_memory_equal(with, lf_test_cap.latent, sizeof with);
    }
    assert_int_equal(lf_model_set_loras(m, NULL, 0, NULL, err, sizeof err), 0);
    s_generate(env, m);
    assert_memory_equal(first, lf_test_cap.latent, sizeof first);
}

/* LyCORIS' full diff on OpenCLIP's packed in_proj: a k_proj ΔW lands in
 * rows D..2D of the weight, a v_proj Δbias in entries 2D..3D of the bias,
 * W0 + ΔW exactly (f32), every other row untouched; then restored. */
static void test_sdxl_te2_slices_full_diff(void **state)
{
    if (!*state) skip();
    s_env_t *env = *state;
    enum { D = 24 }; /* the fixture's OpenCLIP width */
    static float dk[D * D], db[D];
    for (int i = 0; i < D * D; i++) dk[i] = (float)(i % 7) - 3.0f;
    for (int i = 0; i < D; i++) db[i] = 0.25f * (float)(i + 1);
    lf_tensor_info_t t[2] = {
        {.name = "lora_te2_text_model_encoder_layers_1_self_attn_k_proj.diff", .dtype = LF_DTYPE_F32,
         .ndim = 2, .shape = {D, D}, .strides = {D, 1}, .data = dk, .nbytes = sizeof dk},
        {.name = "lora_te2_text_model_encoder_layers_1_self_attn_v_proj.diff_b", .dtype = LF_DTYPE_F32,
         .ndim = 1, .shape = {D}, .strides = {1}, .data = db, .nbytes = sizeof db},
    };
    char path[] = "/tmp/lf_lora_te2_XXXXXX", err[512] = "";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(lf_safetensors_write(path, t, 2, NULL, 0), 0);
    const char *wn = "clip2.encoder.layers.1.self_attn.in_proj.weight",
               *bn = "clip2.encoder.layers.1.self_attn.in_proj.bias";
    float w0[3 * D * D], b0[3 * D], w1[3 * D * D], b1[3 * D];
    assert_int_equal(lf_model_weight_f32(env->sdxl, wn, w0, 3 * D * D), 0);
    assert_int_equal(lf_model_weight_f32(env->sdxl, bn, b0, 3 * D), 0);
    lf_lora_use_t u = {.path = path, .name = "te2_diff", .unet_weight = 1, .te_weight = 0.5};
    lf_lora_patch_info_t info;
    if (lf_model_set_loras(env->sdxl, &u, 1, &info, err, sizeof err)) fail_msg("%s", err);
    assert_null(info.warnings);
    assert_int_equal(info.layers, 2);
    assert_int_equal(lf_model_weight_f32(env->sdxl, wn, w1, 3 * D * D), 0);
    assert_int_equal(lf_model_weight_f32(env->sdxl, bn, b1, 3 * D), 0);
    for (int r = 0; r < 3 * D; r++) {
        for (int c = 0; c < D; c++) {
            float want = w0[r * D + c] + (r >= D && r < 2 * D ? 0.5f * dk[(r - D) * D + c] : 0.0f);
            assert_float_equal(w1[r * D + c], want, 0);
        }
        assert_float_equal(b1[r], b0[r] + (r >= 2 * D ? 0.5f * db[r - 2 * D] : 0.0f), 0);
    }
    assert_int_equal(lf_model_set_loras(env->sdxl, NULL, 0, NULL, err, sizeof err), 0);
    assert_int_equal(lf_model_weight_f32(env->sdxl, wn, w1, 3 * D * D), 0);
    assert_memory_equal(w0, w1, sizeof w0);
    unlink(path);
}

/* LoHa, LoKr and a plain LoRA on OpenCLIP's q/k/v (three slices of one
 * packed in_proj, one slice left alone) against lycoris' math, on the f32
 * and the f16 weights; then the plain tensors come back bit for bit. */
static void test_sdxl_te2_lycoris(void **state)
{
    if (!*state) skip();
    s_env_t *env = *state;
    char ref_path[1024], err[512] = "";
    lf_test_fixture(ref_path, sizeof ref_path, "lora/sdxl_lycoris.ref.safetensors");
    lf_safetensors_t *ref = NULL;
    if (lf_safetensors_open(&ref, ref_path, err, sizeof err)) fail_msg("%s", err);
    lf_model_t *models[2] = {env->sdxl, env->sdxl_f16};
    for (int k = 0; k < 2; k++) {
        /* The plain bytes of the tensors, before. */
        size_t n = lf_safetensors_count(ref);
        float **plain = calloc(n, sizeof *plain);
        for (size_t i = 0; i < n; i++) {
            const lf_tensor_info_t *t = lf_safetensors_at(ref, i);
            size_t ne = (size_t)lf_tensorinfo_numel(t);
            plain[i] = malloc(ne * sizeof **plain);
            assert_int_equal(lf_model_weight_f32(models[k], t->name + 2, plain[i], ne), 0);
        }
        /* f32: W_TOL; f16 storage rounds the merge once (within f16's step). */
        double worst = 0;
        size_t n_w = s_merged_weights(models[k], "sdxl_lycoris", 0.6, ref, &worst, k ? 1e-3 : W_TOL);
        printf("lora te2 lycoris %s: %zu packed tensors, worst rel err %.2e\n", k ? "f16" : "f32", n_w,
               worst);
        assert_int_equal(lf_model_set_loras(models[k], NULL, 0, NULL, err, sizeof err), 0);
        for (size_t i = 0; i < n; i++) {
            const lf_tensor_info_t *t = lf_safetensors_at(ref, i);
            size_t ne = (size_t)lf_tensorinfo_numel(t);
            float *got = malloc(ne * sizeof *got);
            assert_int_equal(lf_model_weight_f32(models[k], t->name + 2, got, ne), 0);
            assert_memory_equal(got, plain[i], ne * sizeof *got);
            free(got), free(plain[i]);
        }
        free(plain);
    }
    lf_safetensors_destroy(&ref);
}

/* The plain layers come back from the model's file (LF_LORA_KEEP_MB=0), from
 * copies (unlimited) or both (a small cap): after kohya → diffusers → plain
 * on a model of its own, every touched tensor holds the bytes of a model
 * that never saw a LoRA (env->sdxl_f16, plain here), even with another file
 * renamed over the checkpoint meanwhile (the model keeps its mapping). */
static void test_restore_modes(void **state)
{
    if (!*state) skip();
    s_env_t *env = *state;
    static const char *const keeps[] = {"0", "1e12", "0.002"};
    char ref_path[1024], pa[1024], pb[1024], copy[80], err[512] = "";
    lf_test_fixture(ref_path, sizeof ref_path, "lora/sdxl_kohya.ref.safetensors");
    lf_safetensors_t *ref = NULL;
    if (lf_safetensors_open(&ref, ref_path, err, sizeof err)) fail_msg("%s", err);
    for (int k = 0; k < 3; k++) {
        snprintf(copy, sizeof copy, "%s.k%d", env->sdxl_path, k);
        char cmd[1024];
        snprintf(cmd, sizeof cmd, "cp '%s' '%s'", env->sdxl_path, copy);
        assert_int_equal(system(cmd), 0);
        setenv("LF_LORA_KEEP_MB", keeps[k], 1);
        lf_model_t *m = NULL;
        if (lf_model_load(copy, NULL, &m, err, sizeof err)) fail_msg("%s", err);
        lf_lora_use_t u[2];
        s_use("sdxl_kohya", 1.0, pa, sizeof pa, &u[0]);
        s_use("sdxl_diffusers", 0.5, pb, sizeof pb, &u[1]);
        lf_lora_patch_info_t info;
        if (lf_model_set_loras(m, u, 1, &info, err, sizeof err)) fail_msg("%s", err);
        free(info.warnings);
        printf("LF_LORA_KEEP_MB=%s: %zu layers, %zu bytes copied\n", keeps[k], info.layers,
               info.saved_bytes);
        if (k == 0) assert_int_equal(info.saved_bytes, 0);
        if (k == 1) assert_true(info.saved_bytes > 0);
        /* Another checkpoint renamed over the file: restores still read
         * the one loaded. */
        snprintf(cmd, sizeof cmd, "cp '%s' '%s.new' && truncate -s 4096 '%s.new' && mv '%s.new' '%s'",
                 copy, copy, copy, copy, copy);
        assert_int_equal(system(cmd), 0);
        if (lf_model_set_loras(m, u + 1, 1, &info, err, sizeof err)) fail_msg("%s", err);
        free(info.warnings);
        assert_int_equal(lf_model_set_loras(m, NULL, 0, NULL, err, sizeof err), 0);
        for (size_t i = 0; i < lf_safetensors_count(ref); i++) {
            const lf_tensor_info_t *t = lf_safetensors_at(ref, i);
            if (strncmp(t->name, "w.", 2) != 0) continue;
            size_t n = (size_t)lf_tensorinfo_numel(t);
            float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
            assert_int_equal(lf_model_weight_f32(m, t->name + 2, a, n), 0);
            assert_int_equal(lf_model_weight_f32(env->sdxl_f16, t->name + 2, b, n), 0);
            if (memcmp(a, b, n * sizeof *a)) fail_msg("keep %s: %s not restored", keeps[k], t->name + 2);
            free(a), free(b);
        }
        lf_model_destroy(&m);
        unlink(copy);
    }
    unsetenv("LF_LORA_KEEP_MB");
    lf_safetensors_destroy(&ref);
}

/* A LoRA on a model whose UNet linear layers were quantized on load (Q8_0,
 * --weights): the merge is stored back in Q8_0 (within the type's step of
 * the reference W0 + m·ΔW: ~1/254 of a block's largest weight, measured
 * 8e-3 relative at worst; a wrong row or scale would be O(1)), and plain again gives
 * back the quantized bytes exactly, whether restored from copies or by
 * quantizing the file's weights again. */
static void test_quantized_model(void **state)
{
    if (!*state) skip();
    s_env_t *env = *state;
    static const char *const keeps[] = {"0", "1e12"};
    char ref_path[1024], err[512] = "";
    lf_test_fixture(ref_path, sizeof ref_path, "lora/sd15_diffusers.ref.safetensors");
    lf_safetensors_t *ref = NULL;
    if (lf_safetensors_open(&ref, ref_path, err, sizeof err)) fail_msg("%s", err);
    for (int k = 0; k < 2; k++) {
        setenv("LF_LORA_KEEP_MB", keeps[k], 1);
        lf_model_opts_t o = {.weight_type = LF_TYPE_F32, .weight_quant = LF_TYPE_Q8_0};
        lf_model_t *m = NULL;
        if (lf_model_load(env->sd15_path, &o, &m, err, sizeof err)) fail_msg("%s", err);
        size_t nt = lf_safetensors_count(ref), total = 0;
        float **plain = calloc(nt, sizeof *plain);
        for (size_t i = 0; i < nt; i++) {
            const lf_tensor_info_t *t = lf_safetensors_at(ref, i);
            if (strncmp(t->name, "w.", 2) != 0) continue;
            size_t n = (size_t)lf_tensorinfo_numel(t);
            plain[i] = malloc(n * sizeof **plain);
            assert_int_equal(lf_model_weight_f32(m, t->name + 2, plain[i], n), 0);
            total += n;
        }
        assert_true(total > 0);
        double worst = 0;
        size_t n_w = s_merged_weights(m, "sd15_diffusers", 0.75, ref, &worst, 2e-2);
        printf("Q8_0 UNet, LF_LORA_KEEP_MB=%s: %zu layers merged, worst rel err %.2e\n", keeps[k], n_w, worst);
        assert_int_equal(lf_model_set_loras(m, NULL, 0, NULL, err, sizeof err), 0);
        for (size_t i = 0; i < nt; i++) {
            if (!plain[i]) continue;
            const lf_tensor_info_t *t = lf_safetensors_at(ref, i);
            size_t n = (size_t)lf_tensorinfo_numel(t);
            float *a = malloc(n * sizeof *a);
            assert_int_equal(lf_model_weight_f32(m, t->name + 2, a, n), 0);
            if (memcmp(a, plain[i], n * sizeof *a)) fail_msg("keep %s: %s not restored", keeps[k], t->name + 2);
            free(a), free(plain[i]);
        }
        free(plain);
        lf_model_destroy(&m);
    }
    unsetenv("LF_LORA_KEEP_MB");
    lf_safetensors_destroy(&ref);
}

static void test_restore(void **state)
{
    if (!*state) skip();
    s_env_t *env = *state;
    s_restore(env, env->sdxl_f16, "sdxl_kohya", "sdxl_diffusers");
    s_restore(env, env->sd15_f16, "sd15_diffusers", NULL);
}
#endif

int main(void)
{
#ifdef LF_HAVE_MODEL
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sd15_diffusers),
        cmocka_unit_test(test_quantized_model),
        cmocka_unit_test(test_sdxl_diffusers),
        cmocka_unit_test(test_sdxl_kohya),
        cmocka_unit_test(test_sdxl_te2_slices_full_diff),
        cmocka_unit_test(test_sdxl_te2_lycoris),
        cmocka_unit_test(test_restore_modes),
        cmocka_unit_test(test_restore),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
#else
    printf("SKIP: built without the networks\n");
    return 0;
#endif
}
