/* Tests for lf_lora and lf_lora_targets: every format's ΔW against the
 * reference libraries (fixtures from tests/reference/make_lora_fixtures.py),
 * the unmatched-key report, bad files, and the real SD1.5 LoRA of the shared
 * reference data. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lf_backend.h"
#include "lf_error.h"
#include "lf_keymap.h"
#include "lf_lora.h"
#include "lf_pool.h"
#include "lf_safetensors.h"
#include "lf_test_util.h"
#include "lf_weights.h"

/* The tiny model of make_lora_fixtures.py. */
static const lf_unet_config_t TINY_UNET = {
    .in_ch = 4,
    .out_ch = 4,
    .levels = 2,
    .layers = 1,
    .ch = {8, 16},
    .attn = {1, 0},
    .up_attn = {0, 1},
    .heads = {2, 2},
    .mid_attn = 1,
    .mid_heads = 2,
    .groups = 4,
    .eps = 1e-5f,
    .ctx_dim = 12,
    .linear_proj = 0,
    .temb_in = 8,
    .temb_dim = 16,
};
static const lf_clip_config_t TINY_CLIP = {
    .vocab = 100,
    .hidden = 8,
    .layers = 2,
    .heads = 2,
    .inter = 16,
    .max_pos = 77,
};

static lf_lora_targets_t *s_tiny(void)
{
    lf_lora_targets_t *t = lf_lora_targets_new();
    assert_non_null(t);
    assert_int_equal(lf_lora_targets_add_unet(t, &TINY_UNET), 0);
    assert_int_equal(lf_lora_targets_add_clip(t, &TINY_CLIP, "clip.", "lora_te_", "text_encoder."),
                     0);
    return t;
}

static const lf_lora_target_t *s_lookup(const lf_lora_targets_t *t, const char *module)
{
    return lf_lora_targets_lookup(t, module);
}

static void test_targets_sd15(void **state)
{
    lf_lora_targets_t *t;
    assert_int_equal(lf_lora_targets_sd15(&t), 0);
    /* 16 transformer blocks x 10 + 16 proj + 22 resnets (conv1, conv2,
     * time_emb_proj) + 14 shortcuts (2 down, 12 up) + 3 down + 3 up
     * samplers + conv_in/out + 2 time embedding; CLIP-L 12 x 6. */
    size_t want = 16 * 10 + 16 * 2 + 22 * 3 + 14 + 6 + 2 + 2 + 12 * 6;
    assert_int_equal(lf_lora_targets_count(t), want);
    const lf_lora_target_t *g = s_lookup(t, "lora_unet_up_blocks_1_resnets_2_conv1");
    assert_non_null(g);
    assert_string_equal(g->name, "unet.up_blocks.1.resnets.2.conv1.weight");
    assert_string_equal(g->bias, "unet.up_blocks.1.resnets.2.conv1.bias");
    assert_int_equal(g->ndim, 4);
    assert_int_equal(g->shape[0], 1280);
    assert_int_equal(g->shape[1], 1920);
    /* The same layer by its LDM name and its dotted names. */
    assert_ptr_equal(s_lookup(t, "lora_unet_output_blocks_5_0_in_layers_2"), g);
    assert_ptr_equal(s_lookup(t, "unet.up_blocks.1.resnets.2.conv1"), g);
    assert_ptr_equal(s_lookup(t, "up_blocks.1.resnets.2.conv1"), g);
    assert_ptr_equal(s_lookup(t, "base_model.model.up_blocks.1.resnets.2.conv1"), g);
    assert_ptr_equal(s_lookup(t, "model.diffusion_model.output_blocks.5.0.in_layers.2"), g);
    assert_ptr_equal(s_lookup(t, "diffusion_model.output_blocks.5.0.in_layers.2"), g);
    g = s_lookup(t, "down_blocks.2.attentions.1.transformer_blocks.0.attn2.processor.to_out");
    assert_non_null(g);
    assert_string_equal(
        g->name, "unet.down_blocks.2.attentions.1.transformer_blocks.0.attn2.to_out.0.weight");
    assert_ptr_equal(s_lookup(t, "lora_unet_input_blocks_8_1_transformer_blocks_0_attn2_to_out_0"),
                     g);
    assert_int_equal(g->shape[0], 1280);
    g = s_lookup(t, "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k");
    assert_non_null(g);
    assert_int_equal(g->shape[1], 768);
    g = s_lookup(t, "lora_unet_output_blocks_2_1_conv");
    assert_non_null(g);
    assert_string_equal(g->name, "unet.up_blocks.0.upsamplers.0.conv.weight");
    g = s_lookup(t, "lora_unet_output_blocks_5_2_conv");
    assert_non_null(g);
    assert_string_equal(g->name, "unet.up_blocks.1.upsamplers.0.conv.weight");
    g = s_lookup(t, "lora_unet_middle_block_1_proj_in");
    assert_non_null(g);
    assert_int_equal(g->ndim, 4);
    /* Text encoder. */
    g = s_lookup(t, "lora_te_text_model_encoder_layers_11_mlp_fc2");
    assert_non_null(g);
    assert_string_equal(g->name, "clip.encoder.layers.11.mlp.fc2.weight");
    assert_int_equal(g->part, LF_LORA_PART_TE);
    assert_int_equal(g->shape[1], 3072);
    assert_ptr_equal(s_lookup(t, "text_encoder.text_model.encoder.layers.11.mlp.fc2"), g);
    g = s_lookup(t, "text_encoder.text_model.encoder.layers.3.self_attn.to_out");
    assert_non_null(g);
    assert_string_equal(g->name, "clip.encoder.layers.3.self_attn.out_proj.weight");
    /* SDXL-only names and nonsense match nothing. */
    assert_null(s_lookup(t, "lora_te1_text_model_encoder_layers_0_self_attn_q_proj"));
    assert_null(s_lookup(t, "lora_te2_text_model_encoder_layers_0_self_attn_q_proj"));
    assert_null(s_lookup(t, "text_encoder_2.text_model.encoder.layers.0.self_attn.q_proj"));
    assert_null(s_lookup(t, "lora_unet_down_blocks_4_resnets_0_conv1"));
    assert_null(s_lookup(t, "lora_unet_down_blocks_0_resnets_0_norm1"));
    lf_lora_targets_destroy(&t);
    assert_null(t);
    lf_lora_targets_destroy(&t);
}

/* ---- The table against the engine's own loader ---- */

/* Sizes without leading/trailing 1s. */
static int s_squeeze(const int64_t *in, int n, int64_t *out)
{
    int a = 0, b = n;
    while (a < b && in[a] == 1) a++;
    while (b > a && in[b - 1] == 1) b--;
    for (int i = a; i < b; i++) out[i - a] = in[i];
    return b - a;
}

static void s_same_shape(const lf_lora_target_t *g, const int64_t *shape, int ndim,
                         const char *what)
{
    int64_t a[8], b[8];
    int na = s_squeeze(g->shape, g->ndim, a), nb = s_squeeze(shape, ndim, b);
    int same = na == nb;
    for (int i = 0; same && i < na; i++) same = a[i] == b[i];
    if (!same) fail_msg("%s: shape differs from target %s", what, g->name);
}

/* Loads the tiny model's UNet and text encoder as lf_model does, builds the
 * table from their configs, and checks both ways: every target is a pool
 * tensor of its shape (with its bias), and every 2+-dim UNet / text-encoder
 * tensor of the file is found by its own name. */
static void s_match_loader(const char *unet_file, const char *te_file, const char *unet_cfg,
                           const char *te_cfg)
{
    char path[1024], err[512] = "";
    lf_weights_t *wu, *wt = NULL;
    assert_int_equal(
        lf_weights_open(&wu, lf_test_fixture(path, sizeof path, unet_file), err, sizeof err), 0);
    if (te_file)
        assert_int_equal(
            lf_weights_open(&wt, lf_test_fixture(path, sizeof path, te_file), err, sizeof err), 0);
    json_t *ju =
        unet_cfg ? json_load_file(lf_test_fixture(path, sizeof path, unet_cfg), 0, NULL) : NULL;
    json_t *jt =
        te_cfg ? json_load_file(lf_test_fixture(path, sizeof path, te_cfg), 0, NULL) : NULL;
    lf_keymap_t ku = {.w = wu}, kt = {.w = wt ? wt : wu};
    const char *upre, *tpre;
    if (wt) {
        upre = "";
        tpre = lf_keymap_has_prefix(wt, "text_model.") ? "text_model." : "";
    } else {
        ku.kind = LF_KEYMAP_LDM_UNET;
        strcpy(ku.prefix, "model.diffusion_model.");
        assert_int_equal(lf_keymap_probe(&ku), 0);
        upre = "model.diffusion_model.";
        tpre = lf_keymap_has_prefix(wu, "cond_stage_model.transformer.text_model.")
                   ? "cond_stage_model.transformer.text_model."
                   : "cond_stage_model.transformer.";
    }
    strcpy(kt.prefix, tpre);
    lf_backend_t *be = lf_backend_cpu_new(1);
    lf_pool_t *pool = lf_pool_new(be, 0);
    lf_unet_t *u;
    lf_clip_t *c;
    int rc = lf_unet_new(&u, &ku, ju, be, pool, -1, err, sizeof err);
    if (rc) fail_msg("unet: %s", err);
    rc = lf_clip_new(&c, &kt, jt, be, pool, -1, err, sizeof err);
    if (rc) fail_msg("clip: %s", err);
    lf_lora_targets_t *t = lf_lora_targets_new();
    assert_int_equal(lf_lora_targets_add_unet(t, lf_unet_config(u)), 0);
    assert_int_equal(
        lf_lora_targets_add_clip(t, lf_clip_config(c), "clip.", "lora_te_", "text_encoder."), 0);
    for (size_t i = 0; i < lf_lora_targets_count(t); i++) {
        const lf_lora_target_t *g = lf_lora_targets_at(t, i);
        const lf_tensor_t *pt = lf_pool_find(pool, g->name);
        if (!pt) fail_msg("target %s is not in the pool", g->name);
        int64_t sh[LF_MAX_DIMS];
        for (int d = 0; d < LF_MAX_DIMS; d++) sh[d] = pt->ne[LF_MAX_DIMS - 1 - d];
        s_same_shape(g, sh, LF_MAX_DIMS, g->name);
        if (g->bias[0] && !lf_pool_find(pool, g->bias))
            fail_msg("bias %s not in the pool", g->bias);
    }
    size_t seen = 0;
    for (int side = 0; side < 2; side++) {
        const lf_weights_t *w = side ? kt.w : wu;
        const char *pre = side ? tpre : upre;
        size_t pl = strlen(pre);
        for (size_t i = 0; i < lf_weights_count(w); i++) {
            const lf_tensor_info_t *ti = lf_weights_at(w, i);
            if (ti->ndim < 2 || strncmp(ti->name, pre, pl) != 0) continue;
            const char *rest = ti->name + pl;
            if (side && strncmp(rest, "encoder.", 8) != 0) continue; /* embeddings */
            if (!side && pl == 0 && strchr(rest, '.') == NULL) continue;
            char mod[256], flat[300];
            snprintf(mod, sizeof mod, "%s", rest);
            char *dot = strrchr(mod, '.');
            assert_string_equal(dot, ".weight");
            *dot = '\0';
            if (side)
                snprintf(flat, sizeof flat, "lora_te_text_model_%s", mod);
            else
                snprintf(flat, sizeof flat, "lora_unet_%s", mod);
            for (char *p = flat; *p; p++)
                if (*p == '.') *p = '_';
            const lf_lora_target_t *g = lf_lora_targets_lookup(t, flat);
            if (!g) fail_msg("file tensor %s (%s) has no target", ti->name, flat);
            s_same_shape(g, ti->shape, ti->ndim, ti->name);
            seen++;
        }
    }
    /* Every target was reached from the file, once. */
    assert_int_equal(seen, lf_lora_targets_count(t));
    lf_lora_targets_destroy(&t);
    lf_clip_destroy(&c);
    lf_unet_destroy(&u);
    lf_pool_destroy(&pool);
    lf_backend_destroy(&be);
    json_decref(ju);
    json_decref(jt);
    lf_weights_destroy(&wt);
    lf_weights_destroy(&wu);
}

static void test_targets_match_loader(void **state)
{
    s_match_loader("models/tiny_a.safetensors", NULL, NULL, NULL);
    s_match_loader("models/tiny_b_diffusers/unet/diffusion_pytorch_model.safetensors",
                   "models/tiny_b_diffusers/text_encoder/model.safetensors",
                   "models/tiny_b_diffusers/unet/config.json",
                   "models/tiny_b_diffusers/text_encoder/config.json");
}

/* Checks every layer of fixture name against <name>.expected.safetensors;
 * returns the opened LoRA (caller destroys). */
static lf_lora_t *s_check_fixture(const lf_lora_targets_t *t, const char *name)
{
    char path[1024], epath[1024], rel[128], err[512] = "";
    snprintf(rel, sizeof rel, "lora/%s.safetensors", name);
    lf_test_fixture(path, sizeof path, rel);
    snprintf(rel, sizeof rel, "lora/%s.expected.safetensors", name);
    lf_test_fixture(epath, sizeof epath, rel);
    lf_lora_t *l = NULL;
    int rc = lf_lora_open(&l, path, t, err, sizeof err);
    if (rc != 0) fail_msg("%s: rc %d: %s", name, rc, err);
    lf_weights_t *ew;
    assert_int_equal(lf_weights_open(&ew, epath, err, sizeof err), 0);
    size_t weights = 0, biases = 0;
    for (size_t i = 0; i < lf_weights_count(ew); i++) {
        const lf_tensor_info_t *e = lf_weights_at(ew, i);
        int64_t n = lf_tensorinfo_numel(e);
        float *want = malloc((size_t)n * sizeof *want), *got = malloc((size_t)n * sizeof *got);
        assert_int_equal(lf_weights_read_f32(e, want), 0);
        const char *dot = strrchr(e->name, '.');
        int is_bias = strcmp(dot, ".bias") == 0;
        const lf_lora_layer_t *y = NULL;
        size_t at = 0;
        for (; at < lf_lora_count(l); at++) {
            y = lf_lora_at(l, at);
            if (strcmp(is_bias ? y->target->bias : y->target->name, e->name) == 0) break;
        }
        if (at == lf_lora_count(l)) fail_msg("%s: no layer for %s", name, e->name);
        if (is_bias) {
            assert_true(y->has_bias);
            assert_int_equal(n, y->target->shape[0]);
            rc = lf_lora_delta_bias(l, at, got, err, sizeof err);
            biases++;
        } else {
            assert_true(y->has_weight);
            assert_int_equal(n, y->numel);
            /* The expected tensor has the target's shape. */
            assert_int_equal(e->ndim, y->target->ndim);
            for (int d = 0; d < e->ndim; d++) assert_int_equal(e->shape[d], y->target->shape[d]);
            rc = lf_lora_delta(l, at, got, err, sizeof err);
            weights++;
        }
        if (rc != 0) fail_msg("%s %s: rc %d: %s", name, e->name, rc, err);
        double maxref = 0, maxdiff = 0;
        for (int64_t k = 0; k < n; k++) {
            maxref = fmax(maxref, fabs(want[k]));
            maxdiff = fmax(maxdiff, fabs((double)got[k] - want[k]));
        }
        if (maxdiff > 1e-6 * maxref + 1e-12)
            fail_msg("%s %s (%s from %s): max |diff| %g vs max |ref| %g", name, e->name,
                     lf_lora_kind_name(y->kind), y->module, maxdiff, maxref);
        free(want);
        free(got);
    }
    /* No layer beyond those the reference computed. */
    size_t have_w = 0, have_b = 0;
    for (size_t i = 0; i < lf_lora_count(l); i++) {
        have_w += lf_lora_at(l, i)->has_weight;
        have_b += lf_lora_at(l, i)->has_bias;
    }
    assert_int_equal(have_w, weights);
    assert_int_equal(have_b, biases);
    lf_weights_destroy(&ew);
    return l;
}

static void test_kohya(void **state)
{
    lf_lora_targets_t *t = s_tiny();
    lf_lora_t *l = s_check_fixture(t, "kohya");
    assert_int_equal(lf_lora_count(l), 9);
    const lf_lora_layer_t *y =
        lf_lora_find(l, "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight");
    assert_non_null(y);
    assert_int_equal(y->kind, LF_LORA_KIND_LORA);
    assert_int_equal(y->rank, 4);
    assert_true(y->alpha == 2.0f);
    assert_true(y->scale == 0.5);
    assert_int_equal(y->target->part, LF_LORA_PART_UNET);
    /* The LDM-named module reaches the diffusers-named layer. */
    y = lf_lora_find(l, "unet.up_blocks.0.resnets.0.conv1.weight");
    assert_non_null(y);
    assert_string_equal(y->module, "lora_unet_output_blocks_0_0_in_layers_2");
    y = lf_lora_find(l, "clip.encoder.layers.1.mlp.fc1.weight");
    assert_non_null(y);
    assert_int_equal(y->target->part, LF_LORA_PART_TE);
    /* Everything that was not used, by name and why. */
    static const char *const un[][2] = {
        {"lora_te2_text_model_encoder_layers_0_self_attn_q_proj.alpha",
         "no such layer in the model"},
        {"lora_te2_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight",
         "no such layer in the model"},
        {"lora_unet_down_blocks_0_resnets_0_norm1.w_norm", "unsupported tensor kind"},
        {"lora_unet_down_blocks_7_resnets_0_conv1.lora_down.weight", "no such layer in the model"},
        {"lora_unet_down_blocks_7_resnets_0_conv1.lora_up.weight", "no such layer in the model"},
    };
    assert_int_equal(lf_lora_unmatched_count(l), sizeof un / sizeof un[0]);
    for (size_t i = 0; i < sizeof un / sizeof un[0]; i++) {
        assert_string_equal(lf_lora_unmatched_name(l, i), un[i][0]);
        assert_string_equal(lf_lora_unmatched_reason(l, i), un[i][1]);
    }
    assert_null(lf_lora_unmatched_name(l, 99));
    /* The low-rank factors multiply to the same ΔW. */
    for (size_t i = 0; i < lf_lora_count(l); i++) {
        const lf_lora_layer_t *z = lf_lora_at(l, i);
        int64_t O = z->target->shape[0], C = z->numel / O, R = z->rank;
        float *up = malloc((size_t)(O * R) * sizeof *up), *down = malloc((size_t)(R * C) * 4);
        float *d = malloc((size_t)z->numel * sizeof *d);
        char err[256];
        assert_int_equal(lf_lora_lowrank(l, i, up, down), 0);
        assert_int_equal(lf_lora_delta(l, i, d, err, sizeof err), 0);
        for (int64_t o = 0; o < O; o++)
            for (int64_t x = 0; x < C; x++) {
                double v = 0;
                for (int64_t r = 0; r < R; r++) v += (double)up[o * R + r] * down[r * C + x];
                assert_true(fabs(v - d[o * C + x]) <= 1e-6 * (fabs(v) + 1e-3));
            }
        free(up), free(down), free(d);
    }
    lf_lora_destroy(&l);
    assert_null(l);
    lf_lora_destroy(&l);
    lf_lora_targets_destroy(&t);
}

static void s_plain(const char *name, size_t layers, lf_lora_kind_t kind)
{
    lf_lora_targets_t *t = s_tiny();
    lf_lora_t *l = s_check_fixture(t, name);
    assert_int_equal(lf_lora_count(l), layers);
    for (size_t i = 0; i < layers; i++) assert_int_equal(lf_lora_at(l, i)->kind, kind);
    assert_int_equal(lf_lora_unmatched_count(l), 0);
    lf_lora_destroy(&l);
    lf_lora_targets_destroy(&t);
}

static void test_locon_tucker(void **state)
{
    s_plain("locon_tucker", 3, LF_LORA_KIND_LORA);
    lf_lora_targets_t *t = s_tiny();
    lf_lora_t *l = s_check_fixture(t, "locon_tucker");
    const lf_lora_layer_t *y = lf_lora_find(l, "unet.mid_block.resnets.0.conv2.weight");
    assert_non_null(y);
    assert_true(y->tucker);
    assert_true(y->scale == 2.0);
    for (size_t i = 0; i < lf_lora_count(l); i++)
        if (lf_lora_at(l, i) == y) assert_int_equal(lf_lora_lowrank(l, i, NULL, NULL), LF_EINVAL);
    lf_lora_destroy(&l);
    lf_lora_targets_destroy(&t);
}

static void test_loha(void **state) { s_plain("loha", 4, LF_LORA_KIND_LOHA); }

static void test_lokr(void **state)
{
    s_plain("lokr", 6, LF_LORA_KIND_LOKR);
    lf_lora_targets_t *t = s_tiny();
    lf_lora_t *l = s_check_fixture(t, "lokr");
    /* Both sides whole: alpha is ignored. */
    const lf_lora_layer_t *y = lf_lora_find(l, "unet.down_blocks.1.resnets.0.conv1.weight");
    assert_non_null(y);
    assert_int_equal(y->rank, 0);
    assert_true(y->scale == 1.0);
    y = lf_lora_find(l, "unet.up_blocks.0.resnets.0.conv1.weight");
    assert_true(y->tucker);
    lf_lora_destroy(&l);
    lf_lora_targets_destroy(&t);
}

static void test_full(void **state)
{
    s_plain("full", 3, LF_LORA_KIND_FULL);
    lf_lora_targets_t *t = s_tiny();
    lf_lora_t *l = s_check_fixture(t, "full");
    const lf_lora_layer_t *y = lf_lora_find(l, "clip.encoder.layers.1.mlp.fc1.weight");
    assert_non_null(y);
    assert_false(y->has_weight);
    assert_true(y->has_bias);
    float dummy[1];
    char err[64];
    for (size_t i = 0; i < lf_lora_count(l); i++)
        if (lf_lora_at(l, i) == y)
            assert_int_equal(lf_lora_delta(l, i, dummy, err, sizeof err), LF_EINVAL);
    lf_lora_destroy(&l);
    lf_lora_targets_destroy(&t);
}

static void test_peft(void **state) { s_plain("peft", 10, LF_LORA_KIND_LORA); }

/* ---- Bad files ---- */

typedef struct {
    const char *name;
    int ndim;
    int64_t shape[4];
    float fill;    /* every element */
    float special; /* element 0, when nonzero */
} s_spec_t;

/* Writes the tensors into dir/file and returns the path in buf. */
static const char *s_write(char *buf, size_t len, const char *dir, const char *file,
                           const s_spec_t *spec, size_t n)
{
    lf_tensor_info_t ts[8];
    void *data[8];
    assert_true(n <= 8);
    for (size_t i = 0; i < n; i++) {
        int64_t numel = 1;
        for (int d = 0; d < spec[i].ndim; d++) numel *= spec[i].shape[d];
        float *f = malloc((size_t)numel * sizeof *f);
        for (int64_t k = 0; k < numel; k++) f[k] = spec[i].fill;
        if (spec[i].special != 0) f[0] = spec[i].special;
        data[i] = f;
        ts[i] = (lf_tensor_info_t){.name = spec[i].name,
                                   .dtype = LF_DTYPE_F32,
                                   .ndim = spec[i].ndim,
                                   .data = f,
                                   .nbytes = (size_t)numel * 4};
        memcpy(ts[i].shape, spec[i].shape, sizeof spec[i].shape);
    }
    snprintf(buf, len, "%s/%s", dir, file);
    assert_int_equal(lf_safetensors_write(buf, ts, n, NULL, 0), 0);
    for (size_t i = 0; i < n; i++) free(data[i]);
    return buf;
}

#define Q "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q"

static void s_expect_fail(const lf_lora_targets_t *t, const char *path, int want_rc,
                          const char *key, const char *what)
{
    char err[512] = "";
    lf_lora_t *l = (lf_lora_t *)&err; /* must stay untouched */
    int rc = lf_lora_open(&l, path, t, err, sizeof err);
    if (rc != want_rc) fail_msg("%s: rc %d, want %d (%s)", path, rc, want_rc, err);
    assert_ptr_equal(l, (lf_lora_t *)&err);
    if (!strstr(err, path)) fail_msg("error '%s' does not name the file %s", err, path);
    if (key && !strstr(err, key)) fail_msg("error '%s' does not name %s", err, key);
    if (what && !strstr(err, what)) fail_msg("error '%s' does not say '%s'", err, what);
}

static void test_bad_files(void **state)
{
    char dir[] = "/tmp/lf_test_lora_XXXXXX", path[1200];
    assert_non_null(mkdtemp(dir));
    lf_lora_targets_t *t = s_tiny();

    /* Truncated: half of a good file. */
    char good[1024];
    lf_test_fixture(good, sizeof good, "lora/kohya.safetensors");
    FILE *f = fopen(good, "rb");
    assert_non_null(f);
    char buf[16384];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    snprintf(path, sizeof path, "%s/truncated.safetensors", dir);
    f = fopen(path, "wb");
    fwrite(buf, 1, n / 2, f);
    fclose(f);
    char err[512] = "";
    lf_lora_t *l = NULL;
    assert_true(lf_lora_open(&l, path, t, err, sizeof err) < 0);
    assert_null(l);
    if (!strstr(err, path)) fail_msg("truncated: '%s' does not name the file", err);
    s_expect_fail(t, "/nonexistent/lora.safetensors", LF_EIO, NULL, NULL);

    /* Shapes that do not give the layer's [8, 8]. */
    const s_spec_t in7[] = {{Q ".lora_down.weight", 2, {2, 7}, 0.1f, 0},
                            {Q ".lora_up.weight", 2, {8, 2}, 0.1f, 0}};
    s_expect_fail(t, s_write(path, sizeof path, dir, "in7.safetensors", in7, 2), LF_EFORMAT,
                  Q ".lora_down.weight", "input size");
    const s_spec_t out9[] = {{Q ".lora_down.weight", 2, {2, 8}, 0.1f, 0},
                             {Q ".lora_up.weight", 2, {9, 2}, 0.1f, 0}};
    s_expect_fail(t, s_write(path, sizeof path, dir, "out9.safetensors", out9, 2), LF_EFORMAT,
                  Q ".lora_up.weight", "[8, 8]");
    const s_spec_t rank[] = {{Q ".lora_down.weight", 2, {2, 8}, 0.1f, 0},
                             {Q ".lora_up.weight", 2, {8, 3}, 0.1f, 0}};
    s_expect_fail(t, s_write(path, sizeof path, dir, "rank.safetensors", rank, 2), LF_EFORMAT,
                  Q ".lora_up.weight", "rank");
    const s_spec_t kr[] = {{Q ".lokr_w1", 2, {2, 2}, 0.1f, 0}, {Q ".lokr_w2", 2, {4, 3}, 0.1f, 0}};
    s_expect_fail(t, s_write(path, sizeof path, dir, "lokr.safetensors", kr, 2), LF_EFORMAT,
                  Q ".lokr_w2", "c*d*k");
    const s_spec_t dif[] = {{Q ".diff", 2, {8, 4}, 0.1f, 0}};
    s_expect_fail(t, s_write(path, sizeof path, dir, "diff.safetensors", dif, 1), LF_EFORMAT,
                  Q ".diff", "full diff");
    const s_spec_t difb[] = {{Q ".diff_b", 1, {8}, 0.1f, 0}};
    s_expect_fail(t, s_write(path, sizeof path, dir, "diffb.safetensors", difb, 1), LF_EFORMAT,
                  Q ".diff_b", "has no bias");

    /* NaN and Inf. */
    const s_spec_t nan[] = {{Q ".lora_down.weight", 2, {2, 8}, 0.1f, NAN},
                            {Q ".lora_up.weight", 2, {8, 2}, 0.1f, 0}};
    s_expect_fail(t, s_write(path, sizeof path, dir, "nan.safetensors", nan, 2), LF_EFORMAT,
                  Q ".lora_down.weight", "NaN");
    const s_spec_t inf[] = {{Q ".lora_down.weight", 2, {2, 8}, 0.1f, 0},
                            {Q ".lora_up.weight", 2, {8, 2}, 0.1f, -INFINITY},
                            {Q ".alpha", 0, {0}, 1.0f, 0}};
    s_expect_fail(t, s_write(path, sizeof path, dir, "inf.safetensors", inf, 3), LF_EFORMAT,
                  Q ".lora_up.weight", "Inf");
    const s_spec_t nana[] = {{Q ".lora_down.weight", 2, {2, 8}, 0.1f, 0},
                             {Q ".lora_up.weight", 2, {8, 2}, 0.1f, 0},
                             {Q ".alpha", 0, {0}, NAN, 0}};
    s_expect_fail(t, s_write(path, sizeof path, dir, "nanalpha.safetensors", nana, 3), LF_EFORMAT,
                  Q ".alpha", "NaN");

    /* Incomplete, mixed, doubled, unsupported. */
    const s_spec_t noup[] = {{Q ".lora_down.weight", 2, {2, 8}, 0.1f, 0}};
    s_expect_fail(t, s_write(path, sizeof path, dir, "noup.safetensors", noup, 1), LF_EFORMAT,
                  Q ".lora_down.weight", "lacks its up");
    const s_spec_t mixed[] = {{Q ".lora_down.weight", 2, {2, 8}, 0.1f, 0},
                              {Q ".lora_up.weight", 2, {8, 2}, 0.1f, 0},
                              {Q ".hada_w1_a", 2, {8, 2}, 0.1f, 0}};
    s_expect_fail(t, s_write(path, sizeof path, dir, "mixed.safetensors", mixed, 3), LF_EFORMAT, Q,
                  "mixes");
    const s_spec_t loha[] = {{Q ".hada_w1_a", 2, {8, 2}, 0.1f, 0},
                             {Q ".hada_w1_b", 2, {2, 8}, 0.1f, 0},
                             {Q ".hada_w2_a", 2, {8, 2}, 0.1f, 0}};
    s_expect_fail(t, s_write(path, sizeof path, dir, "loha3.safetensors", loha, 3), LF_EFORMAT, Q,
                  "lacks hada_w2_b");
    const s_spec_t twice[] = {
        {Q ".lora_down.weight", 2, {2, 8}, 0.1f, 0},
        {Q ".lora_up.weight", 2, {8, 2}, 0.1f, 0},
        {"lora_unet_input_blocks_1_1_transformer_blocks_0_attn1_to_q.lora_down.weight",
         2,
         {2, 8},
         0.1f,
         0}};
    s_expect_fail(t, s_write(path, sizeof path, dir, "twice.safetensors", twice, 3), LF_EFORMAT,
                  "input_blocks_1_1", "both change");
    const s_spec_t dora[] = {{Q ".lora_down.weight", 2, {2, 8}, 0.1f, 0},
                             {Q ".lora_up.weight", 2, {8, 2}, 0.1f, 0},
                             {Q ".dora_scale", 2, {8, 1}, 1.0f, 0}};
    s_expect_fail(t, s_write(path, sizeof path, dir, "dora.safetensors", dora, 3), LF_EUNSUPPORTED,
                  Q ".dora_scale", "DoRA");

    /* A module of a network not read here (OFT) keeps its alpha: both are
     * reported, the rest of the file is used. */
    const s_spec_t oft[] = {
        {Q ".lora_down.weight", 2, {2, 8}, 0.1f, 0},
        {Q ".lora_up.weight", 2, {8, 2}, 0.1f, 0},
        {"lora_unet_down_blocks_0_resnets_0_conv1.alpha", 0, {0}, 1.0f, 0},
        {"lora_unet_down_blocks_0_resnets_0_conv1.oft_blocks", 3, {2, 4, 4}, 0.1f, 0}};
    s_write(path, sizeof path, dir, "oft.safetensors", oft, 4);
    assert_int_equal(lf_lora_open(&l, path, t, err, sizeof err), 0);
    assert_int_equal(lf_lora_count(l), 1);
    assert_string_equal(lf_lora_at(l, 0)->module, Q);
    assert_int_equal(lf_lora_unmatched_count(l), 2);
    assert_string_equal(lf_lora_unmatched_name(l, 0),
                        "lora_unet_down_blocks_0_resnets_0_conv1.alpha");
    assert_string_equal(lf_lora_unmatched_reason(l, 0), "alpha without weights read here");
    assert_string_equal(lf_lora_unmatched_name(l, 1),
                        "lora_unet_down_blocks_0_resnets_0_conv1.oft_blocks");
    lf_lora_destroy(&l);

    /* LoKr whose whole w2 has another kernel than the layer. */
    const s_spec_t kk[] = {
        {"lora_unet_down_blocks_0_resnets_0_conv1.lokr_w1", 2, {2, 2}, 0.1f, 0},
        {"lora_unet_down_blocks_0_resnets_0_conv1.lokr_w2", 4, {4, 4, 1, 9}, 0.1f, 0}};
    s_expect_fail(t, s_write(path, sizeof path, dir, "kk.safetensors", kk, 2), LF_EFORMAT,
                  "conv1.lokr_w2", "kernel size");

    /* Finite factors whose product overflows: found when ΔW is computed. */
    const s_spec_t big[] = {{Q ".lora_down.weight", 2, {2, 8}, 1e30f, 0},
                            {Q ".lora_up.weight", 2, {8, 2}, 1e30f, 0}};
    s_write(path, sizeof path, dir, "big.safetensors", big, 2);
    assert_int_equal(lf_lora_open(&l, path, t, err, sizeof err), 0);
    float *d = malloc(64 * sizeof *d);
    assert_int_equal(lf_lora_delta(l, 0, d, err, sizeof err), LF_EFORMAT);
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, "overflows"));
    free(d);
    lf_lora_destroy(&l);

    lf_lora_targets_destroy(&t);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

/* The real rank-4 SD1.5 LoRA (diffusers attention-processor names). */
static void test_refdata_sd15(void **state)
{
    char path[1024], err[512] = "";
    if (!lf_test_refdata(path, sizeof path, "lora/sd15_diffusers_lora_rank4.safetensors")) skip();
    lf_lora_targets_t *t;
    assert_int_equal(lf_lora_targets_sd15(&t), 0);
    lf_lora_t *l;
    int rc = lf_lora_open(&l, path, t, err, sizeof err);
    if (rc != 0) fail_msg("rc %d: %s", rc, err);
    assert_int_equal(lf_lora_unmatched_count(l), 0);
    /* 256 tensors: down + up for q, k, v, out of attn1 and attn2 in 16
     * transformer blocks. */
    assert_int_equal(lf_lora_count(l), 128);
    lf_weights_t *w;
    assert_int_equal(lf_weights_open(&w, path, err, sizeof err), 0);
    assert_int_equal(lf_weights_count(w), 256);
    size_t attn2_kv = 0;
    float *d = NULL;
    for (size_t i = 0; i < lf_lora_count(l); i++) {
        const lf_lora_layer_t *y = lf_lora_at(l, i);
        assert_int_equal(y->kind, LF_LORA_KIND_LORA);
        assert_int_equal(y->rank, 4);
        assert_true(y->scale == 1.0);
        assert_int_equal(y->target->part, LF_LORA_PART_UNET);
        assert_int_equal(y->target->ndim, 2);
        assert_int_equal(strncmp(y->target->name, "unet.", 5), 0);
        assert_non_null(strstr(y->module, ".processor.to_"));
        int64_t C = y->target->shape[0];
        assert_true(C == 320 || C == 640 || C == 1280);
        if (strstr(y->target->name, "attn2.to_k") || strstr(y->target->name, "attn2.to_v")) {
            assert_int_equal(y->target->shape[1], 768);
            attn2_kv++;
        } else {
            assert_int_equal(y->target->shape[1], C);
        }
        /* Each file module names its own layer. */
        char want[256];
        snprintf(want, sizeof want, "unet.%s", y->module);
        char *p = strstr(want, "processor.");
        memmove(p, p + 10, strlen(p + 10) + 1);
        if (strstr(want, "to_out")) strcat(want, ".0");
        strcat(want, ".weight");
        assert_string_equal(y->target->name, want);
        d = realloc(d, (size_t)y->numel * sizeof *d);
        assert_int_equal(lf_lora_delta(l, i, d, err, sizeof err), 0);
        /* ΔW = up · down straight from the file's tensors. */
        char dn[300], un[300];
        snprintf(dn, sizeof dn, "%s_lora.down.weight", y->module);
        snprintf(un, sizeof un, "%s_lora.up.weight", y->module);
        const lf_tensor_info_t *td = lf_weights_find(w, dn), *tu = lf_weights_find(w, un);
        assert_non_null(td);
        assert_non_null(tu);
        int64_t O = tu->shape[0], I = td->shape[1];
        assert_int_equal(O * I, y->numel);
        for (int64_t o = 0; o < O; o += 37)
            for (int64_t x = 0; x < I; x += 11) {
                double want = 0;
                for (int r = 0; r < 4; r++)
                    want += (double)lf_tensorinfo_get_f32(tu, o * 4 + r) *
                            lf_tensorinfo_get_f32(td, r * I + x);
                if (fabs(d[o * I + x] - want) > 1e-6 * (fabs(want) + 1e-3))
                    fail_msg("%s [%lld, %lld]: %g want %g", y->module, (long long)o, (long long)x,
                             d[o * I + x], want);
            }
    }
    assert_int_equal(attn2_kv, 32);
    lf_weights_destroy(&w);
    free(d);
    lf_lora_destroy(&l);
    lf_lora_targets_destroy(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_targets_sd15), cmocka_unit_test(test_targets_match_loader),
        cmocka_unit_test(test_kohya),        cmocka_unit_test(test_locon_tucker),
        cmocka_unit_test(test_loha),         cmocka_unit_test(test_lokr),
        cmocka_unit_test(test_full),         cmocka_unit_test(test_peft),
        cmocka_unit_test(test_bad_files),    cmocka_unit_test(test_refdata_sd15),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
