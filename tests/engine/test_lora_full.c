/* The real SD1.5 LoRA (../shared/refdata/lora, diffusers attention-processor
 * names, rank 4) merged into a full-size random SD1.5 model through
 * lf_model_set_loras, against diffusers' LoRA loading (as
 * pipe.load_lora_weights) + fuse_lora
 * (tests/reference/make_lora_full_reference.py): three fused layers, one
 * UNet step with the LoRA, and the restore — the step after
 * lf_model_set_loras(NULL, 0) is bit-identical to the one before the LoRA;
 * and a whole generation (64x64, euler / normal, 4 steps, CFG 5, real CLIP
 * BPE) with the LoRA against diffusers' fused StableDiffusionPipeline, on the
 * model loaded as f32 (diffusers fuses in f32 and does not round the fused
 * weights to f16).
 * Needs tests/reference/out/sd15_full.safetensors (or $LF_SD15_FULL) and
 * sd15_full_lora_ref.safetensors beside it (not committed, ~2 GB); exits 77
 * (skipped) with the reason when they or the LoRA are absent. Label "slow".
 * Error: max |ours - ref| / max |ref|. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <cmocka.h>

#include "lf_clip_tokenizer.h"
#include "lf_error.h"
#include "lf_model.h"
#include "lf_pipeline.h"
#include "lf_safetensors.h"
#include "lf_test_ref.h"
#include "lf_test_capture.h"
#include "lf_test_util.h"

static char s_ck[4096], s_ref[4096], s_lora[1024], s_vocab[1024];

static double s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void test_lora_full_sd15(void **state)
{
    (void)state;
    char err[512] = "";
    lf_safetensors_t *ref = NULL;
    assert_int_equal(lf_safetensors_open(&ref, s_ref, err, sizeof err), 0);
    double t0 = s_now();
    lf_model_t *m = NULL;
    int rc = lf_model_load(s_ck, NULL, &m, err, sizeof err);
    if (rc) fail_msg("%s", err);
    printf("  load %.1f s\n", s_now() - t0);
    size_t n;
    float *x = lf_test_ref_f32(ref, "unet_x", &n), *t = lf_test_ref_f32(ref, "unet_t", NULL);
    float *ctx = lf_test_ref_f32(ref, "unet_ctx", NULL);
    float *want_plain = lf_test_ref_f32(ref, "unet_out_plain", NULL), *want = lf_test_ref_f32(ref, "unet_out", NULL);
    float *plain = malloc(n * sizeof *plain), *o = malloc(n * sizeof *o);
    assert_int_equal(lf_model_denoise(m, x, 1, 8, 8, t, ctx, 77, NULL, plain), 0);
    double e = lf_test_relerr(plain, want_plain, n);
    printf("  plain UNet step rel err %.3g\n", e);
    assert_true(e < 1e-4);

    lf_lora_use_t u = {.path = s_lora, .name = "sd15_diffusers_lora_rank4", .unet_weight = 1, .te_weight = 1};
    lf_lora_patch_info_t info;
    t0 = s_now();
    rc = lf_model_set_loras(m, &u, 1, &info, err, sizeof err);
    if (rc) fail_msg("set_loras: %s", err);
    printf("  merged into %zu tensors in %.2f s (%.1f MB kept)\n", info.layers, s_now() - t0, info.saved_bytes / 1e6);
    assert_int_equal(info.layers, 128);
    assert_null(info.warnings);
    /* The fused layers. */
    static const char *const layers[] = {
        "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight",
        "unet.mid_block.attentions.0.transformer_blocks.0.attn2.to_k.weight",
        "unet.up_blocks.3.attentions.2.transformer_blocks.0.attn1.to_out.0.weight",
    };
    for (size_t i = 0; i < 3; i++) {
        char key[200];
        snprintf(key, sizeof key, "w.%s", layers[i]);
        size_t k;
        float *w = lf_test_ref_f32(ref, key, &k), *got = malloc(k * sizeof *got);
        assert_int_equal(lf_model_weight_f32(m, layers[i], got, k), 0);
        double le = lf_test_relerr(got, w, k);
        printf("  %s rel err %.3g\n", layers[i], le);
        assert_true(le < 1e-3); /* one f16 rounding when the model keeps f16 */
        free(w), free(got);
    }
    assert_int_equal(lf_model_denoise(m, x, 1, 8, 8, t, ctx, 77, NULL, o), 0);
    e = lf_test_relerr(o, want, n);
    double moved = lf_test_relerr(want_plain, want, n);
    printf("  UNet step with the LoRA rel err %.3g (the LoRA moves it by %.3g)\n", e, moved);
    assert_true(moved > 1e-3); /* the check below can tell the two apart */
    assert_true(e < 1e-3 && e < moved / 10);
    /* The restore. */
    assert_int_equal(lf_model_set_loras(m, NULL, 0, NULL, err, sizeof err), 0);
    assert_int_equal(lf_model_denoise(m, x, 1, 8, 8, t, ctx, 77, NULL, o), 0);
    assert_memory_equal(o, plain, n * sizeof *o);
    free(x), free(t), free(ctx), free(want_plain), free(want), free(plain), free(o);
    lf_model_destroy(&m);
    lf_safetensors_destroy(&ref);
}

/* The generation's size: 64x64, an 8x8 latent. */
#define G_SIZE 64
#define G_LATENT (4 * 8 * 8)
#define G_IMAGE (3 * G_SIZE * G_SIZE)

static void s_generate(lf_model_t *m, lf_clip_tokenizer_t *tok)
{
    lf_pipeline_ctx_t ctx = {.ops = &lf_test_rec_ops, .model = m, .tokenizer = tok, .model_name = "sd15_full"};
    lf_pipeline_request_t req = {.prompt = "a red circle on a blue square, highly detailed",
                                 .negative = "blurry, ugly", .steps = 4, .cfg = 5.0, .seed = 1234,
                                 .width = G_SIZE, .height = G_SIZE, .batch = 1,
                                 .rng = LF_RNG_TORCH_CPU, .clip_skip = 1};
    assert_int_equal(lf_sampler_parse("euler", &req.sampler), 0);
    assert_int_equal(lf_scheduler_parse("normal", &req.scheduler), 0);
    lf_pipeline_result_t res = {0};
    char err[256] = "";
    lf_test_cap_expect(4, 8, 8, G_IMAGE);
    if (lf_pipeline_run(&ctx, &req, NULL, &res, err, sizeof err) != 0) fail_msg("pipeline: %s", err);
    lf_pipeline_result_clear(&res);
    assert_int_equal(lf_test_cap.calls, 1);
}

static void test_lora_full_generation(void **state)
{
    (void)state;
    char err[512] = "";
    lf_safetensors_t *ref = NULL;
    assert_int_equal(lf_safetensors_open(&ref, s_ref, err, sizeof err), 0);
    if (!lf_safetensors_find(ref, "pipe_latent")) {
        printf("SKIP: %s predates the generation reference (rerun make_lora_full_reference.py)\n", s_ref);
        lf_safetensors_destroy(&ref);
        skip();
    }
    lf_clip_tokenizer_t *tok = NULL;
    if (lf_clip_tokenizer_load(&tok, s_vocab, err, sizeof err)) fail_msg("%s", err);
    lf_model_opts_t f32 = {.weight_type = LF_TYPE_F32};
    lf_model_t *m = NULL;
    double t0 = s_now();
    if (lf_model_load(s_ck, &f32, &m, err, sizeof err)) fail_msg("%s", err);
    printf("  load (f32) %.1f s\n", s_now() - t0);
    float *want = lf_test_ref_f32(ref, "pipe_latent", NULL), *img = lf_test_ref_f32(ref, "pipe_image", NULL);
    float *want_plain = lf_test_ref_f32(ref, "pipe_latent_plain", NULL);
    t0 = s_now();
    s_generate(m, tok);
    double ep = lf_test_relerr(lf_test_cap.latent, want_plain, G_LATENT);
    printf("  plain 64x64 generation %.1f s: latent rel err %.3g\n", s_now() - t0, ep);
    lf_lora_use_t u = {.path = s_lora, .name = "sd15_diffusers_lora_rank4", .unet_weight = 1, .te_weight = 1};
    if (lf_model_set_loras(m, &u, 1, NULL, err, sizeof err)) fail_msg("set_loras: %s", err);
    t0 = s_now();
    s_generate(m, tok);
    double el = lf_test_relerr(lf_test_cap.latent, want, G_LATENT), ei = lf_test_relerr(lf_test_cap.image, img, G_IMAGE);
    double moved = lf_test_relerr(want_plain, want, G_LATENT);
    printf("  with the LoRA %.1f s: latent rel err %.3g, image rel err %.3g (the LoRA moves the latent by "
           "%.3g)\n", s_now() - t0, el, ei, moved);
    assert_true(ep < 1e-4);
    assert_true(moved > 1e-3);
    assert_true(el < 1e-4 && ei < 1e-4 && el < moved / 10);
    free(want), free(img), free(want_plain);
    lf_model_destroy(&m);
    lf_clip_tokenizer_destroy(&tok);
    lf_safetensors_destroy(&ref);
}

int main(void)
{
    const char *ck = getenv("LF_SD15_FULL");
    snprintf(s_ck, sizeof s_ck, "%s", ck && *ck ? ck : LF_SD15_FULL_DEFAULT);
    snprintf(s_ref, sizeof s_ref, "%s", s_ck);
    char *slash = strrchr(s_ref, '/');
    snprintf(slash ? slash + 1 : s_ref, sizeof s_ref - (size_t)(slash ? slash + 1 - s_ref : 0),
             "sd15_full_lora_ref.safetensors");
    struct stat sb;
    if (!lf_test_refdata(s_lora, sizeof s_lora, "lora/sd15_diffusers_lora_rank4.safetensors") ||
        stat(s_ck, &sb) != 0 || stat(s_ref, &sb) != 0) {
        printf("SKIP: needs %s, %s (tests/reference/make_lora_full_reference.py) and the refdata LoRA\n", s_ck, s_ref);
        return 77;
    }
    if (!lf_test_refdata(s_vocab, sizeof s_vocab, "tokenizers/clip/bpe_simple_vocab_16e6.txt.gz")) {
        printf("SKIP: needs the reference data's CLIP merges file\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_lora_full_sd15),
                                       cmocka_unit_test(test_lora_full_generation)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
