/* The real SD1.5 LoRA (../shared/refdata/lora, diffusers attention-processor
 * names, rank 4) merged into a full-size random SD1.5 model through
 * lf_model_set_loras, against diffusers' LoRA loading (as
 * pipe.load_lora_weights) + fuse_lora
 * (tests/reference/make_lora_full_reference.py): three fused layers, one
 * UNet step with the LoRA, and the restore — the step after
 * lf_model_set_loras(NULL, 0) is bit-identical to the one before the LoRA.
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

#include "lf_error.h"
#include "lf_model.h"
#include "lf_safetensors.h"
#include "lf_test_ref.h"
#include "lf_test_util.h"

static char s_ck[4096], s_ref[4096], s_lora[1024];

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
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_lora_full_sd15)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
