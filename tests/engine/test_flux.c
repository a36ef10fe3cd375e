/* Tests of the Flux parts against diffusers 0.31 (fixtures written by
 * tests/reference/make_flux_fixtures.py): the transformer in f32 for a dev
 * config (guidance embedding, batch 2) in both key layouts (diffusers names,
 * BFL names under model.diffusion_model.) and a schnell config (BFL names),
 * the 16-channel VAE, the flow-matching schedule and whole generations.
 * Error: max |ours - ref| / max |ref| below 1e-4. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "lf_engine.h"
#include "lf_error.h"
#include "lf_clip.h"
#include "lf_flux.h"
#include "lf_manifest.h"
#include "lf_model.h"
#include "lf_pipeline.h"
#include "lf_safetensors.h"
#include "lf_sampler.h"
#include "lf_schedule.h"
#include "lf_weights.h"
#include "lf_test_ref.h"
#include "lf_test_capture.h"
#include "lf_test_util.h"
#include "lf_vae.h"

typedef struct {
    lf_backend_t *be;
    lf_pool_t *pool;
    lf_weights_t *w;
    json_t *meta;
} s_env_t;

/* Opens fixture file rel; *km gets prefix. The "lf.config" metadata in e->meta. */
static void s_open(s_env_t *e, const char *rel, const char *prefix, lf_keymap_t *km) {
    char p[1024], err[512] = "";
    memset(e, 0, sizeof *e);
    e->be = lf_backend_cpu_new(0);
    e->pool = lf_pool_new(e->be, 0);
    int rc = lf_weights_open(&e->w, lf_test_fixture(p, sizeof p, rel), err, sizeof err);
    if (rc) printf("%s\n", err);
    assert_int_equal(rc, 0);
    const char *m = lf_weights_metadata(e->w, "lf.config");
    e->meta = m ? json_loads(m, 0, NULL) : NULL;
    memset(km, 0, sizeof *km);
    km->w = e->w;
    km->kind = LF_KEYMAP_DIFFUSERS;
    snprintf(km->prefix, sizeof km->prefix, "%s", prefix);
}

static void s_close(s_env_t *e) {
    json_decref(e->meta);
    lf_weights_destroy(&e->w);
    lf_pool_destroy(&e->pool);
    lf_backend_destroy(&e->be);
}

/* The type a weight has in the pool after a load (pool name "flux." + the
 * file's name). */
static void s_expect_type(const lf_pool_t *pool, const char *name, lf_type_t want) {
    char n[200];
    snprintf(n, sizeof n, "flux.%s", name);
    const lf_tensor_t *t = lf_pool_find(pool, n);
    assert_non_null(t);
    if (t->type != want)
        fail_msg("%s is %s in the pool, expected %s", n, lf_type_name(t->type), lf_type_name(want));
}

/* qkv_type: the type BFL's double_blocks.0.img_attn.qkv.weight must have
 * in the pool, or -1 (unchecked). */
static void s_transformer_type(const char *weights, const char *prefix, const char *ref_path, int bfl,
                               int guidance, int type, double tol, int qkv_type) {
    s_env_t e;
    lf_keymap_t km;
    s_open(&e, weights, prefix, &km);
    char err[512] = "", p[1024];
    lf_flux_t *f = NULL;
    assert_true(lf_flux_detect(e.w, prefix));
    int rc = lf_flux_new(&f, &km, json_object_get(e.meta, "transformer"), e.be, e.pool, type, err,
                         sizeof err);
    if (rc) printf("%s\n", err);
    assert_int_equal(rc, 0);
    if (qkv_type >= 0) s_expect_type(e.pool, "double_blocks.0.img_attn.qkv.weight", (lf_type_t)qkv_type);
    const lf_flux_config_t *c = lf_flux_config(f);
    assert_int_equal(c->bfl, bfl);
    assert_int_equal(c->guidance, guidance);
    assert_int_equal(c->hidden, 32);
    assert_int_equal(c->heads, 2);
    assert_int_equal(c->in_ch, 64);
    lf_safetensors_t *ref = NULL;
    assert_int_equal(lf_safetensors_open(&ref, lf_test_fixture(p, sizeof p, ref_path), err, sizeof err), 0);
    size_t nx, nt, n;
    float *x = lf_test_ref_f32(ref, "x", &nx), *txt = lf_test_ref_f32(ref, "txt", &nt);
    float *vec = lf_test_ref_f32(ref, "pooled", NULL), *t = lf_test_ref_f32(ref, "t", NULL);
    float *gd = guidance ? lf_test_ref_f32(ref, "guidance", NULL) : NULL;
    float *ii = lf_test_ref_f32(ref, "img_ids", NULL), *ti = lf_test_ref_f32(ref, "txt_ids", NULL);
    float *want = lf_test_ref_f32(ref, "out", &n);
    const lf_tensor_info_t *xi = lf_safetensors_find(ref, "x"), *tt = lf_safetensors_find(ref, "txt");
    const int B = (int)xi->shape[0], Ni = (int)xi->shape[1], Nt = (int)tt->shape[1];
    float *o = calloc(n, sizeof *o);
    for (int run = 0; run < 2; run++) { /* the second run replays the cached graph */
        rc = lf_flux_forward(f, B, Ni, Nt, x, txt, vec, t, gd, ii, ti, o);
        assert_int_equal(rc, 0);
        double r = lf_test_relerr(o, want, n);
        printf("  %s (%s): rel err %.3g\n", weights, type < 0 ? "as stored" : lf_type_name((lf_type_t)type), r);
        assert_true(r < tol);
    }
    /* Guidance matters for dev (a different value moves the output). */
    if (guidance) {
        float g2[2] = {gd[0] + 1.0f, gd[1] + 1.0f};
        assert_int_equal(lf_flux_forward(f, B, Ni, Nt, x, txt, vec, t, g2, ii, ti, o), 0);
        assert_true(lf_test_relerr(o, want, n) > 1e-3);
    }
    assert_int_equal(lf_flux_forward(f, 0, Ni, Nt, x, txt, vec, t, gd, ii, ti, o), LF_EINVAL);
    free(x), free(txt), free(vec), free(t), free(gd), free(ii), free(ti), free(want), free(o);
    lf_safetensors_destroy(&ref);
    lf_flux_destroy(&f);
    s_close(&e);
}

/* In f32, and with the weights as stored (f16: the fused BFL tensors' row
 * views in f16 too; the CPU backend widens them exactly). The dev error,
 * ~1.5e-5, is torch's: its sinusoidal embedding rounds guidance * 1000 *
 * freq to float32 (arguments up to 3500 rad), lf's op computes it in double. */
static void s_transformer(const char *weights, const char *prefix, const char *ref_path, int bfl,
                          int guidance) {
    s_transformer_type(weights, prefix, ref_path, bfl, guidance, LF_TYPE_F32, 1e-4, -1);
    s_transformer_type(weights, prefix, ref_path, bfl, guidance, -1, 1e-4, -1);
}

static void test_transformer_dev_diffusers(void **state) {
    (void)state;
    s_transformer("flux/flux_dev_diffusers.safetensors", "", "flux/flux_dev_ref.safetensors", 0, 1);
}

static void test_transformer_dev_bfl(void **state) {
    (void)state;
    s_transformer("flux/flux_dev_bfl.safetensors", "model.diffusion_model.",
                  "flux/flux_dev_ref.safetensors", 1, 1);
}

static void test_transformer_schnell_bfl(void **state) {
    (void)state;
    s_transformer("flux/flux_schnell_bfl.safetensors", "", "flux/flux_schnell_ref.safetensors", 1, 0);
}

/* GGUF as ComfyUI-GGUF / stable-diffusion.cpp files hold Flux (BFL names),
 * Q8_0 matrices (the gguf package's quantizer), within 3e-2 of the f32 run
 * (tests/reference/make_flux_gguf_fixture.py): as stored, the matrices stay
 * Q8_0 in the pool and MATMUL runs on the blocks; with LF_TYPE_F32 they are
 * widened on load (1.1e-2 measured both ways: the same values). */
static void test_transformer_schnell_gguf_q8_0(void **state) {
    (void)state;
    const char *q8 = "flux/flux_schnell_q8_0.gguf", *ref = "flux/flux_schnell_ref.safetensors";
    s_transformer_type(q8, "", ref, 1, 0, -1, 3e-2, LF_TYPE_Q8_0);
    s_transformer_type(q8, "", ref, 1, 0, LF_TYPE_F32, 3e-2, LF_TYPE_F32);
}

/* Quantize-on-load (--weights) of an f16 transformer: with Q8_0 every
 * matrix whose rows are whole blocks (32) is quantized as the gguf package
 * does (the same bytes: test_quant), so the output stays within the GGUF
 * file's 3e-2 of the f32 run (1.1e-2 measured); txt_in's 24 columns stay f16.
 * With Q4_K only time_in.in_layer has rows of 256. */
static void test_transformer_quantize_on_load(void **state) {
    (void)state;
    const char *w = "flux/flux_schnell_bfl.safetensors", *ref = "flux/flux_schnell_ref.safetensors";
    s_transformer_type(w, "", ref, 1, 0, LF_TYPE_Q8_0, 3e-2, LF_TYPE_Q8_0);
    s_env_t e;
    lf_keymap_t km;
    s_open(&e, w, "", &km);
    char err[512] = "";
    lf_flux_t *f = NULL;
    assert_int_equal(lf_flux_new(&f, &km, json_object_get(e.meta, "transformer"), e.be, e.pool, LF_TYPE_Q4_K,
                                 err, sizeof err), 0);
    s_expect_type(e.pool, "time_in.in_layer.weight", LF_TYPE_Q4_K);
    s_expect_type(e.pool, "double_blocks.0.img_attn.qkv.weight", LF_TYPE_F16);
    s_expect_type(e.pool, "txt_in.weight", LF_TYPE_F16);
    lf_flux_destroy(&f);
    s_close(&e);
}

/* flux_schnell_k.gguf (make_flux_gguf_fixture.py): random Q4_K, Q5_K and
 * Q6_K blocks (time_in.in_layer, txt_in, vector_in.in_layer, 256 columns)
 * beside Q8_0 matrices. As stored, each stays its type in the pool and
 * MATMUL runs on the blocks; the output equals the run with the same file
 * widened to f32 on load (the gguf package's dequantization, test_quant)
 * within 1e-5 relative (float sums in another order). */
static void test_transformer_schnell_gguf_k(void **state) {
    (void)state;
    enum { NI = 16, NT = 8, C = 64, W = 256 };
    static float x[NI * C], txt[NT * W], vec[W], ii[NI * 3], out[2][NI * C];
    const float t = 0.7f;
    uint32_t s = 12345;
    float *all[3] = {x, txt, vec};
    const int len[3] = {NI * C, NT * W, W};
    for (int a = 0; a < 3; a++)
        for (int i = 0; i < len[a]; i++) {
            s = s * 1664525u + 1013904223u;
            all[a][i] = (float)(s >> 8) / 16777216.0f * 2.0f - 1.0f;
        }
    lf_flux_image_ids(8, 8, ii);
    for (int k = 0; k < 2; k++) {
        s_env_t e;
        lf_keymap_t km;
        s_open(&e, "flux/flux_schnell_k.gguf", "", &km);
        char err[512] = "";
        lf_flux_t *f = NULL;
        int rc = lf_flux_new(&f, &km, json_object_get(e.meta, "transformer"), e.be, e.pool,
                             k ? LF_TYPE_F32 : -1, err, sizeof err);
        if (rc) printf("%s\n", err);
        assert_int_equal(rc, 0);
        assert_int_equal(lf_flux_config(f)->txt_dim, W);
        s_expect_type(e.pool, "time_in.in_layer.weight", k ? LF_TYPE_F32 : LF_TYPE_Q4_K);
        s_expect_type(e.pool, "txt_in.weight", k ? LF_TYPE_F32 : LF_TYPE_Q5_K);
        s_expect_type(e.pool, "vector_in.in_layer.weight", k ? LF_TYPE_F32 : LF_TYPE_Q6_K);
        s_expect_type(e.pool, "single_blocks.0.linear1.weight", k ? LF_TYPE_F32 : LF_TYPE_Q8_0);
        assert_int_equal(lf_flux_forward(f, 1, NI, NT, x, txt, vec, &t, NULL, ii, NULL, out[k]), 0);
        lf_flux_destroy(&f);
        s_close(&e);
    }
    double r = lf_test_relerr(out[0], out[1], NI * C);
    printf("  flux_schnell_k.gguf: blocks kept vs widened to f32: rel diff %.3g\n", r);
    assert_true(r < 1e-5);
}

/* A file without a Flux transformer is refused with a message naming it. */
static void test_not_flux(void **state) {
    (void)state;
    s_env_t e;
    lf_keymap_t km;
    s_open(&e, "flux/flux_vae.safetensors", "", &km);
    char err[512] = "";
    lf_flux_t *f = NULL;
    assert_false(lf_flux_detect(e.w, ""));
    assert_int_equal(lf_flux_new(&f, &km, NULL, e.be, e.pool, -1, err, sizeof err), LF_ENOTFOUND);
    assert_non_null(strstr(err, "flux_vae.safetensors"));
    assert_null(f);
    s_close(&e);
    /* RoPE axes that do not add up to the head dimension (16) are refused. */
    s_open(&e, "flux/flux_schnell_bfl.safetensors", "", &km);
    json_t *cfg = json_pack("{s:[i,i,i]}", "axes_dims_rope", 4, 4, 4);
    assert_int_equal(lf_flux_new(&f, &km, cfg, e.be, e.pool, -1, err, sizeof err), LF_EFORMAT);
    assert_non_null(strstr(err, "axes"));
    /* Without a config, Flux.1's 16/56/56 of 128 scaled to the head (2/6/6 of 16 here: off by 2). */
    assert_int_equal(lf_flux_new(&f, &km, NULL, e.be, e.pool, -1, err, sizeof err), LF_EFORMAT);
    json_decref(cfg);
    s_close(&e);
}

/* Flux's VAE from BFL's ae.safetensors names: 16 latent channels, no quant
 * convs, scaling and shift factors from the config. */
static void test_vae(void **state) {
    (void)state;
    s_env_t e;
    lf_keymap_t km;
    s_open(&e, "flux/flux_vae.safetensors", "", &km);
    char err[512] = "", p[1024];
    assert_int_equal(lf_keymap_probe_vae(&km, e.w), 0);
    assert_int_equal(km.kind, LF_KEYMAP_LDM_VAE);
    lf_vae_t *v = NULL;
    int rc = lf_vae_new(&v, &km, json_object_get(e.meta, "vae"), e.be, e.pool, LF_TYPE_F32, "vae.",
                        err, sizeof err);
    if (rc) printf("%s\n", err);
    assert_int_equal(rc, 0);
    const lf_vae_config_t *c = lf_vae_config(v);
    assert_int_equal(c->latent_ch, 16);
    assert_float_equal(c->scaling_factor, 0.3611f, 1e-7);
    assert_float_equal(c->shift_factor, 0.1159f, 1e-7);
    lf_safetensors_t *ref = NULL;
    assert_int_equal(lf_safetensors_open(&ref, lf_test_fixture(p, sizeof p, "flux/flux_vae_ref.safetensors"),
                                         err, sizeof err), 0);
    size_t ni, nm;
    float *z = lf_test_ref_f32(ref, "z", NULL), *img = lf_test_ref_f32(ref, "image", &ni);
    float *x = lf_test_ref_f32(ref, "x", NULL), *mean = lf_test_ref_f32(ref, "mean", &nm);
    float *o = malloc(ni * sizeof *o), *m = malloc(nm * sizeof *m);
    assert_int_equal(lf_vae_decode(v, z, 1, 6, 8, 0, o), 0);
    printf("  decode rel err %.3g\n", lf_test_relerr(o, img, ni));
    assert_true(lf_test_relerr(o, img, ni) < 1e-4);
    assert_int_equal(lf_vae_encode(v, x, 1, 12, 16, 0, m), 0);
    printf("  encode rel err %.3g\n", lf_test_relerr(m, mean, nm));
    assert_true(lf_test_relerr(m, mean, nm) < 1e-4);
    free(z), free(img), free(x), free(mean), free(o), free(m);
    lf_safetensors_destroy(&ref);
    lf_vae_destroy(&v);
    s_close(&e);
}

/* FlowMatchEulerDiscreteScheduler's sigmas as FluxPipeline sets them. */
static void test_flow_sigmas(void **state) {
    (void)state;
    char p[1024], err[512] = "", name[64];
    lf_safetensors_t *ref = NULL;
    assert_int_equal(lf_safetensors_open(&ref, lf_test_fixture(p, sizeof p, "flux/flux_gen_ref.safetensors"),
                                         err, sizeof err), 0);
    static const int steps[] = {1, 4, 20, 28}, seqs[] = {64, 256, 1024, 4096, 6000};
    double out[29];
    int cases = 0;
    for (int i = 0; i < 4; i++) {
        for (int j = 0; j < 5; j++) {
            snprintf(name, sizeof name, "sigmas.dynamic.%d.%d", steps[i], seqs[j]);
            size_t n;
            float *want = lf_test_ref_f32(ref, name, &n);
            assert_int_equal(n, steps[i] + 1);
            double mu = lf_schedule_flow_mu(seqs[j], 0.5, 1.15, 256, 4096);
            assert_int_equal(lf_schedule_flow_sigmas(steps[i], 1, mu, 1.0, out), 0);
            for (size_t k = 0; k < n; k++) assert_float_equal(out[k], want[k], 0);
            free(want);
            cases++;
        }
        for (int sh = 1; sh <= 3; sh += 2) {
            snprintf(name, sizeof name, "sigmas.shift.%d.%d", steps[i], sh);
            size_t n;
            float *want = lf_test_ref_f32(ref, name, &n);
            assert_int_equal(lf_schedule_flow_sigmas(steps[i], 0, 0.0, sh, out), 0);
            for (size_t k = 0; k < n; k++) assert_float_equal(out[k], want[k], 0);
            free(want);
            cases++;
        }
    }
    assert_int_equal(cases, 28);
    assert_int_equal(lf_schedule_flow_sigmas(0, 0, 0, 1, out), LF_EINVAL);
    /* The pipeline's schedule for a flow model: FluxPipeline's for the image's
     * token count (a 64x64 latent is 1024 tokens), img2img's tail as A1111's. */
    lf_model_desc_t d = {.prediction = LF_PRED_FLOW, .flow_dynamic = 1, .flow_shift = 1.0f};
    double full[21];
    assert_int_equal(lf_pipeline_flow_sigmas(&d, 64, 64, LF_SCHEDULER_NORMAL, 20, 1.0, full), 0);
    float *want = lf_test_ref_f32(ref, "sigmas.dynamic.20.1024", NULL);
    for (int k = 0; k <= 20; k++) assert_float_equal(full[k], want[k], 0);
    free(want);
    assert_int_equal(lf_pipeline_flow_sigmas(&d, 64, 64, LF_SCHEDULER_SIMPLE, 20, 0.5, full), 20 - 10 - 1);
    assert_int_equal(lf_pipeline_flow_sigmas(&d, 64, 64, LF_SCHEDULER_KARRAS, 20, 1.0, full), LF_EUNSUPPORTED);
    d.flow_dynamic = 0; /* schnell: shift 1, the plain linspace */
    assert_int_equal(lf_pipeline_flow_sigmas(&d, 64, 64, LF_SCHEDULER_NORMAL, 4, 1.0, full), 0);
    assert_float_equal(full[1], 0.75, 1e-7);
    d.prediction = LF_PRED_EPS;
    assert_int_equal(lf_pipeline_flow_sigmas(&d, 64, 64, LF_SCHEDULER_NORMAL, 4, 1.0, full), LF_EINVAL);
    lf_safetensors_destroy(&ref);
}

/* Whole generations as FluxPipeline (3 steps, fixed initial packed latent,
 * prompt embeddings from the fixture): flow sigmas, the velocity as the
 * k-diffusion denoiser x - sigma v (LF_PRED_FLOW), Euler, unpacking, the
 * VAE's scale and shift, decode. */
typedef struct {
    lf_flux_t *f;
    const float *txt, *vec, *ids, *txt_ids;
    float guidance;
    int n_img, n_txt;
    float *v;
} s_gen_t;

static int s_gen_denoise(void *ud, const float *x, float sigma, float *den, size_t n) {
    s_gen_t *g = ud;
    int rc = lf_flux_forward(g->f, 1, g->n_img, g->n_txt, x, g->txt, g->vec, &sigma, &g->guidance,
                             g->ids, g->txt_ids, g->v);
    for (size_t k = 0; k < n && !rc; k++) den[k] = x[k] - sigma * g->v[k];
    return rc;
}

static void s_generation(const char *weights, const char *prefix, const char *name, int dynamic) {
    s_env_t e, ev;
    lf_keymap_t km, kv;
    s_open(&e, weights, prefix, &km);
    s_open(&ev, "flux/flux_vae.safetensors", "", &kv);
    char err[512] = "", p[1024], key[64];
    lf_flux_t *f = NULL;
    lf_vae_t *vae = NULL;
    assert_int_equal(lf_flux_new(&f, &km, json_object_get(e.meta, "transformer"), e.be, e.pool,
                                 LF_TYPE_F32, err, sizeof err), 0);
    assert_int_equal(lf_keymap_probe_vae(&kv, ev.w), 0);
    assert_int_equal(lf_vae_new(&vae, &kv, json_object_get(ev.meta, "vae"), ev.be, ev.pool,
                                LF_TYPE_F32, "vae.", err, sizeof err), 0);
    lf_safetensors_t *ref = NULL;
    assert_int_equal(lf_safetensors_open(&ref, lf_test_fixture(p, sizeof p, "flux/flux_gen_ref.safetensors"),
                                         err, sizeof err), 0);
    enum { H = 8, W = 12, C = 16, NI = (H / 2) * (W / 2), NT = 7, STEPS = 3 };
    size_t n, ns, nimg;
#define REF(k) (snprintf(key, sizeof key, "%s.%s", name, k), lf_test_ref_f32(ref, key, NULL))
    float *x = REF("init"), *txt = REF("prompt_embeds"), *vec = REF("pooled");
    snprintf(key, sizeof key, "%s.sigmas", name);
    float *want_sig = lf_test_ref_f32(ref, key, &ns);
    snprintf(key, sizeof key, "%s.latent", name);
    float *want = lf_test_ref_f32(ref, key, &n);
    snprintf(key, sizeof key, "%s.image", name);
    float *want_img = lf_test_ref_f32(ref, key, &nimg);
#undef REF
    assert_int_equal(n, NI * C * 4);
    double sig[STEPS + 1];
    assert_int_equal(ns, STEPS + 1);
    assert_int_equal(lf_schedule_flow_sigmas(STEPS, dynamic, lf_schedule_flow_mu(NI, 0.5, 1.15, 256, 4096),
                                             1.0, sig), 0);
    for (int i = 0; i <= STEPS; i++) assert_float_equal(sig[i], want_sig[i], 0);
    float ids[NI * 3], tids[NT * 3] = {0};
    lf_flux_image_ids(H, W, ids);
    s_gen_t g = {.f = f, .txt = txt, .vec = vec, .ids = ids, .txt_ids = tids, .guidance = 3.5f,
                 .n_img = NI, .n_txt = NT, .v = malloc(n * sizeof(float))};
    lf_sampler_opts_t so = lf_sampler_opts(s_gen_denoise, &g);
    assert_int_equal(lf_sampler_run(LF_SAMPLER_EULER, &so, sig, STEPS, x, n), 0);
    double r = lf_test_relerr(x, want, n);
    printf("  %s: latent rel err %.3g\n", name, r);
    assert_true(r < 1e-4);
    /* Unpack, undo the scale and shift, decode, to [0, 1]. */
    const lf_vae_config_t *vc = lf_vae_config(vae);
    float *z = malloc(n * sizeof *z), *img = malloc(nimg * sizeof *img);
    lf_flux_unpack(x, 1, C, H, W, z);
    for (size_t k = 0; k < n; k++) z[k] = z[k] / vc->scaling_factor + vc->shift_factor;
    assert_int_equal(lf_vae_decode(vae, z, 1, H, W, 0, img), 0);
    for (size_t k = 0; k < nimg; k++) img[k] = fminf(fmaxf(img[k] * 0.5f + 0.5f, 0.0f), 1.0f);
    r = lf_test_relerr(img, want_img, nimg);
    printf("  %s: image rel err %.3g\n", name, r);
    assert_true(r < 1e-4);
    free(x), free(txt), free(vec), free(want_sig), free(want), free(want_img), free(g.v), free(z), free(img);
    lf_safetensors_destroy(&ref);
    lf_vae_destroy(&vae);
    lf_flux_destroy(&f);
    s_close(&ev);
    s_close(&e);
}

static void test_generation_schnell(void **state) {
    (void)state;
    s_generation("flux/flux_schnell_bfl.safetensors", "", "schnell", 0);
}

static void test_generation_dev(void **state) {
    (void)state;
    s_generation("flux/flux_dev_diffusers.safetensors", "", "dev", 1);
}

/* CLIP-L's pooled output (HF CLIPTextModel.pooler_output) for Flux's vec. */
static void test_clip_pooled(void **state) {
    (void)state;
    s_env_t e;
    lf_keymap_t km;
    s_open(&e, "flux/flux_clip_l.safetensors", "text_model.", &km);
    char err[512] = "", p[1024];
    lf_clip_t *c = NULL;
    assert_int_equal(lf_clip_new(&c, &km, json_object_get(e.meta, "text_encoder"), e.be, e.pool,
                                 LF_TYPE_F32, err, sizeof err), 0);
    lf_safetensors_t *ref = NULL;
    assert_int_equal(lf_safetensors_open(&ref, lf_test_fixture(p, sizeof p, "flux/flux_clip_l_ref.safetensors"),
                                         err, sizeof err), 0);
    float *idf = lf_test_ref_f32(ref, "ids", NULL), *want = lf_test_ref_f32(ref, "pooled", NULL);
    int32_t ids[77];
    for (int i = 0; i < 77; i++) ids[i] = (int32_t)idf[i];
    float out[77 * 20], pooled[20];
    assert_int_equal(lf_clip_encode_ex(c, ids, NULL, 1, 77, 1, 1, out, pooled), 0);
    printf("  pooled rel err %.3g\n", lf_test_relerr(pooled, want, 20));
    assert_true(lf_test_relerr(pooled, want, 20) < 1e-4);
    free(idf), free(want);
    lf_safetensors_destroy(&ref);
    lf_clip_destroy(&c);
    s_close(&e);
}

/* The family: a transformer file (BFL names under model.diffusion_model.)
 * with CLIP-L and the VAE as parts, as ComfyUI's folders hold them; the
 * model's denoiser packs, runs and unpacks as FluxPipeline does. */
static void test_model_parts(void **state) {
    (void)state;
    char tp[1024], cp[1024], vp[1024], rp[1024], err[512] = "";
    lf_test_fixture(tp, sizeof tp, "flux/flux_dev_bfl.safetensors");
    lf_test_fixture(cp, sizeof cp, "flux/flux_clip_l.safetensors");
    lf_test_fixture(vp, sizeof vp, "flux/flux_vae.safetensors");
    const char *texts[1] = {cp};
    lf_model_opts_t o = {.weight_type = LF_TYPE_F32, .text_paths = texts, .n_text_paths = 1,
                         .vae_path = vp};
    lf_model_t *m = NULL;
    int rc = lf_model_load(tp, &o, &m, err, sizeof err);
    if (rc) printf("%s\n", err);
    assert_int_equal(rc, 0);
    const lf_model_desc_t *d = lf_model_desc(m);
    assert_int_equal(d->family, LF_FAMILY_FLUX);
    assert_int_equal(d->prediction, LF_PRED_FLOW);
    assert_int_equal(d->latent_channels, 16);
    assert_int_equal(d->vae_scale, 2);
    assert_float_equal(d->scaling_factor, 0.3611f, 1e-7);
    assert_float_equal(d->shift_factor, 0.1159f, 1e-7);
    assert_int_equal(d->text_dim, 24);
    assert_int_equal(d->pooled_dim, 20);
    assert_int_equal(d->guidance_embed, 1);
    assert_int_equal(d->flow_dynamic, 1);
    assert_int_equal(d->text_tokens, 512);
    int32_t ids[512] = {0};
    float tmp[77 * 24];
    assert_int_equal(lf_model_encode_text(m, ids, NULL, 1, 1, tmp, NULL), LF_EINVAL); /* no pooled */
    assert_int_equal(lf_model_encode_t5(m, ids, 1, tmp), LF_EUNSUPPORTED);          /* no T5 part */
    /* The transformer's reference case through lf_model_denoise (NCHW latents). */
    lf_safetensors_t *ref = NULL;
    assert_int_equal(lf_safetensors_open(&ref, lf_test_fixture(rp, sizeof rp, "flux/flux_dev_ref.safetensors"),
                                         err, sizeof err), 0);
    enum { B = 2, H = 6, W = 8, C = 16, NT = 5, P = 20 };
    size_t n;
    float *x = lf_test_ref_f32(ref, "x", &n), *txt = lf_test_ref_f32(ref, "txt", NULL);
    float *pooled = lf_test_ref_f32(ref, "pooled", NULL), *t = lf_test_ref_f32(ref, "t", NULL);
    float *gd = lf_test_ref_f32(ref, "guidance", NULL), *want = lf_test_ref_f32(ref, "out", NULL);
    assert_int_equal(n, B * C * H * W);
    float *z = malloc(n * sizeof *z), *o2 = malloc(n * sizeof *o2), *packed = malloc(n * sizeof *packed);
    float vec[B * (P + 1)];
    for (int b = 0; b < B; b++) {
        memcpy(vec + b * (P + 1), pooled + b * P, P * sizeof *vec);
        vec[b * (P + 1) + P] = gd[b];
    }
    lf_flux_unpack(x, B, C, H, W, z);
    assert_int_equal(lf_model_denoise(m, z, B, H, W, t, txt, NT, vec, o2), 0);
    lf_flux_pack(o2, B, C, H, W, packed);
    printf("  model denoise rel err %.3g\n", lf_test_relerr(packed, want, n));
    assert_true(lf_test_relerr(packed, want, n) < 1e-4);
    /* The job's precision reaches the transformer (where the CPU has bf16):
     * bf16 products move the output a little; f32 again gives the same bytes. */
    if (lf_model_set_precision(m, LF_PRECISION_BF16) == LF_PRECISION_BF16) {
        float *o3 = malloc(n * sizeof *o3), *p3 = malloc(n * sizeof *p3);
        assert_int_equal(lf_model_denoise(m, z, B, H, W, t, txt, NT, vec, o3), 0);
        lf_flux_pack(o3, B, C, H, W, p3);
        double e16 = lf_test_relerr(p3, want, n), moved = lf_test_relerr(o3, o2, n);
        printf("  model denoise in bf16: rel err %.3g (%.3g from the f32 run)\n", e16, moved);
        assert_true(moved > 1e-4 && e16 < 5e-2);
        assert_int_equal(lf_model_set_precision(m, LF_PRECISION_F32), LF_PRECISION_F32);
        assert_int_equal(lf_model_denoise(m, z, B, H, W, t, txt, NT, vec, o3), 0);
        assert_memory_equal(o3, o2, n * sizeof *o3);
        free(o3), free(p3);
    }
    assert_int_equal(lf_model_denoise(m, z, B, H, W, t, txt, NT, NULL, o2), LF_EINVAL);
    assert_int_equal(lf_model_denoise(m, z, B, H - 1, W, t, txt, NT, vec, o2), LF_EINVAL);
    /* The approx preview is fitted from this 16-channel VAE like any other. */
    uint8_t rgb[H * 8 * W * 8 * 3];
    int pw = 0, ph = 0;
    assert_int_equal(d->preview, LF_PREVIEW_APPROX);
    assert_int_equal(lf_model_preview(m, z, H, W, rgb, &pw, &ph), 0);
    assert_true(pw >= W && ph >= H);
    assert_int_equal(lf_model_preview_map(m)->channels, 16);
    free(x), free(txt), free(pooled), free(t), free(gd), free(want), free(z), free(o2), free(packed);
    lf_safetensors_destroy(&ref);
    lf_model_destroy(&m);

    /* Missing parts are named. */
    o.n_text_paths = 0;
    assert_int_equal(lf_model_load(tp, &o, &m, err, sizeof err), LF_ENOTFOUND);
    assert_non_null(strstr(err, "CLIP-L"));
    o.n_text_paths = 1, o.vae_path = NULL;
    assert_int_equal(lf_model_load(tp, &o, &m, err, sizeof err), LF_ENOTFOUND);
    assert_non_null(strstr(err, "VAE"));
    /* A VAE file as a text part is refused, naming the file. */
    texts[0] = vp;
    o.vae_path = vp;
    assert_int_equal(lf_model_load(tp, &o, &m, err, sizeof err), LF_EFORMAT);
    assert_non_null(strstr(err, "flux_vae.safetensors"));
    assert_null(m);
}

/* Flux's text from parts: CLIP-L's pooled output through
 * lf_model_encode_text and T5's hidden states through lf_model_encode_t5,
 * as CLIPTextModel / T5EncoderModel give them (schnell: 256 T5 tokens). */
static void test_model_text(void **state) {
    (void)state;
    char tp[1024], cp[1024], t5p[1024], vp[1024], rp[1024], err[512] = "";
    lf_test_fixture(tp, sizeof tp, "flux/flux_schnell_bfl.safetensors");
    lf_test_fixture(cp, sizeof cp, "flux/flux_clip_l.safetensors");
    lf_test_fixture(t5p, sizeof t5p, "flux/flux_t5_stub.safetensors");
    lf_test_fixture(vp, sizeof vp, "flux/flux_vae.safetensors");
    const char *texts[2] = {t5p, cp};
    lf_model_opts_t o = {.weight_type = LF_TYPE_F32, .text_paths = texts, .n_text_paths = 2,
                         .vae_path = vp};
    lf_model_t *m = NULL;
    int rc = lf_model_load(tp, &o, &m, err, sizeof err);
    if (rc) printf("%s\n", err);
    assert_int_equal(rc, 0);
    const lf_model_desc_t *d = lf_model_desc(m);
    assert_int_equal(d->text_tokens, 256);
    assert_null(d->t5_tokenizer);
    lf_safetensors_t *ref = NULL;
    assert_int_equal(lf_safetensors_open(&ref, lf_test_fixture(rp, sizeof rp, "flux/flux_clip_l_ref.safetensors"),
                                         err, sizeof err), 0);
    float *idf = lf_test_ref_f32(ref, "ids", NULL), *want = lf_test_ref_f32(ref, "pooled", NULL);
    int32_t ids[2 * 256];
    for (int i = 0; i < 2 * 77; i++) ids[i] = (int32_t)idf[i % 77];
    float pooled[2 * 20];
    assert_int_equal(lf_model_encode_text(m, ids, NULL, 2, 1, NULL, pooled), 0);
    printf("  pooled rel err %.3g %.3g\n", lf_test_relerr(pooled, want, 20),
           lf_test_relerr(pooled + 20, want, 20));
    assert_true(lf_test_relerr(pooled, want, 20) < 1e-4);
    assert_true(lf_test_relerr(pooled + 20, want, 20) < 1e-4);
    free(idf), free(want);
    lf_safetensors_destroy(&ref);
    assert_int_equal(lf_safetensors_open(&ref, lf_test_fixture(rp, sizeof rp, "flux/flux_t5_stub_ref.safetensors"),
                                         err, sizeof err), 0);
    size_t n = 0;
    idf = lf_test_ref_f32(ref, "ids", &n), want = lf_test_ref_f32(ref, "out", NULL);
    assert_int_equal(n, 256);
    for (int i = 0; i < 2 * 256; i++) ids[i] = (int32_t)idf[i % 256];
    float *out = malloc(2 * 256 * 24 * sizeof *out);
    assert_int_equal(lf_model_encode_t5(m, ids, 2, out), 0);
    printf("  T5 rel err %.3g %.3g\n", lf_test_relerr(out, want, 256 * 24),
           lf_test_relerr(out + 256 * 24, want, 256 * 24));
    assert_true(lf_test_relerr(out, want, 256 * 24) < 1e-4);
    assert_true(lf_test_relerr(out + 256 * 24, want, 256 * 24) < 1e-4);
    ids[3] = 64; /* outside the stub's vocabulary */
    assert_int_equal(lf_model_encode_t5(m, ids, 1, out), LF_EINVAL);
    free(idf), free(want), free(out);
    lf_safetensors_destroy(&ref);
    lf_model_destroy(&m);

    /* A T5 whose width is not the transformer's text width is named. */
    lf_test_fixture(t5p, sizeof t5p, "t5/t5_tiny_f16.safetensors");
    assert_int_equal(lf_model_load(tp, &o, &m, err, sizeof err), LF_EFORMAT);
    assert_non_null(strstr(err, "t5_tiny_f16.safetensors"));
    assert_non_null(strstr(err, "width 32"));
    assert_null(m);
}

/* One network at a time (lf_model.c lf__model_use): weights kept as stored
 * are mapped from their files (f16 here), and moving on to the next network
 * drops the previous one's pages: T5's and CLIP-L's once the transformer
 * runs, the transformer's once the VAE decodes (resident KiB of each
 * file's copy-on-write mapping, /proc/self/smaps). Without f32 copies of
 * the f16 weights (LF_CPU_PACK_F32=0): a packed copy pages out the file's
 * pages under its weight as soon as it is made, so the drop measured here
 * would be the pack store's (kernels_test_pack covers those copies). */
static void test_one_network(void **state) {
    (void)state;
    char tp[1024], cp[1024], t5p[1024], vp[1024], err[512] = "";
    setenv("LF_CPU_PACK_F32", "0", 1);
    lf_test_fixture(tp, sizeof tp, "flux/flux_dev_bfl.safetensors");
    lf_test_fixture(cp, sizeof cp, "flux/flux_prompt_clip_l.safetensors");
    lf_test_fixture(t5p, sizeof t5p, "flux/flux_prompt_t5.safetensors");
    lf_test_fixture(vp, sizeof vp, "flux/flux_vae.safetensors");
    const char *texts[2] = {cp, t5p};
    lf_model_opts_t o = {.weight_type = -1, .text_paths = texts, .n_text_paths = 2, .vae_path = vp};
    lf_model_t *m = NULL;
    int rc = lf_model_load(tp, &o, &m, err, sizeof err);
    if (rc) printf("%s\n", err);
    assert_int_equal(rc, 0);
    unsetenv("LF_CPU_PACK_F32"); /* read when the model's backend was made */
    if (lf_test_mapped_rss_kb(tp) < 0) {
        lf_model_destroy(&m);
        printf("  skipped: no /proc/self/smaps\n");
        skip();
    }
    const lf_model_desc_t *d = lf_model_desc(m);
    const int T = d->text_tokens, C = d->latent_channels, P = d->pooled_dim, G = d->guidance_embed;
    int32_t *ids = calloc((size_t)T, sizeof *ids), cids[77];
    float *cond = calloc((size_t)T * d->text_dim, sizeof *cond), *vec = calloc((size_t)P + 1, sizeof *vec);
    float x[16 * 4 * 4], out[16 * 4 * 4], t = 0.5f, *img = malloc((size_t)3 * 32 * 32 * sizeof *img);
    assert_true(ids && cond && vec && img && C <= 16);
    /* Ids whose embedding rows lie inside whole pages (not at the tables' ends). */
    ids[0] = 1000, ids[1] = 1;
    for (int i = 0; i < 77; i++) cids[i] = 20000 + (i == 5);
    for (int i = 0; i < C * 16; i++) x[i] = (float)((i * 37) % 17) / 8.0f - 1.0f;
    const uint64_t held = lf_model_weight_bytes(m);
    assert_int_equal(lf_model_encode_t5(m, ids, 1, cond), 0);
    assert_int_equal(lf_model_encode_text(m, cids, NULL, 1, 1, NULL, vec), 0);
    /* T5's position bias table ([T][T][heads] f32, 1 MiB a head at 512
     * tokens) lives with its graph, not in the weights' pool (CLIP-L's
     * 77 x 77 mask still does). */
    assert_true(lf_model_weight_bytes(m) - held < (uint64_t)T * T * 4);
    if (G) vec[P] = 3.5f;
    const long t5_text = lf_test_mapped_rss_kb(t5p), clip_text = lf_test_mapped_rss_kb(cp);
    assert_int_equal(lf_model_denoise(m, x, 1, 4, 4, &t, cond, T, vec, out), 0);
    const long t5_den = lf_test_mapped_rss_kb(t5p), clip_den = lf_test_mapped_rss_kb(cp),
               flux_den = lf_test_mapped_rss_kb(tp);
    assert_int_equal(lf_model_vae_decode(m, out, 1, 4, 4, 0, img), 0);
    const long flux_vae = lf_test_mapped_rss_kb(tp);
    printf("  resident KiB: T5 %ld -> %ld, CLIP-L %ld -> %ld (text -> transformer); transformer %ld -> %ld "
           "(-> VAE)\n", t5_text, t5_den, clip_text, clip_den, flux_den, flux_vae);
    /* Each file holds tensors of whole pages (T5's two of 96 KiB, CLIP-L's
     * 1.9 MiB embedding, of which the rows read, the transformer's 18 of
     * 8 KiB or more, 192 KiB read whole by its matrix products). */
    assert_true(t5_den < t5_text);
    assert_true(clip_den < clip_text);
    assert_true(flux_vae <= flux_den - 96);
    free(ids), free(cond), free(vec), free(img);
    lf_model_destroy(&m);
}

/* The bytes a model will hold resident, from its files' headers
 * (lf_model_estimate_bytes, and lf_engine_model_bytes on a manifest, what
 * a worker budgets with), equal what lf_model_weight_bytes says once it is
 * loaded: a Q8_0 GGUF transformer (blocks kept, its f16 matrices as
 * stored, vectors widened) with CLIP-L, T5 and the VAE as parts; an f16
 * transformer quantized to Q8_0 on load; an SD1.5 checkpoint, as stored and
 * its UNet quantized on load. The files' sizes (the old figure) are not. */
static void s_expect_estimate(const char *what, const char *path, const lf_model_opts_t *o) {
    char err[512] = "";
    uint64_t est = 0;
    assert_int_equal(lf_model_estimate_bytes(path, o, &est), 0);
    lf_model_t *m = NULL;
    int rc = lf_model_load(path, o, &m, err, sizeof err);
    if (rc) printf("%s\n", err);
    assert_int_equal(rc, 0);
    const uint64_t held = lf_model_weight_bytes(m);
    printf("  %s: estimated %llu bytes, held %llu\n", what, (unsigned long long)est, (unsigned long long)held);
    assert_int_equal(est, held);
    lf_model_destroy(&m);
}

static void test_resident_estimate(void **state) {
    (void)state;
    char tp[1024], cp[1024], t5p[1024], vp[1024], sd[1024], dir[] = "/tmp/lf_flux_bytes_XXXXXX", mp[1200];
    lf_test_fixture(tp, sizeof tp, "flux/flux_schnell_q8_0.gguf");
    lf_test_fixture(cp, sizeof cp, "flux/flux_clip_l.safetensors");
    lf_test_fixture(t5p, sizeof t5p, "flux/flux_t5_stub.safetensors");
    lf_test_fixture(vp, sizeof vp, "flux/flux_vae.safetensors");
    const char *texts[2] = {t5p, cp};
    lf_model_opts_t o = {.weight_type = -1, .text_paths = texts, .n_text_paths = 2, .vae_path = vp};
    s_expect_estimate("Q8_0 GGUF + parts", tp, &o);
    uint64_t est = 0;
    assert_int_equal(lf_model_estimate_bytes(tp, &o, &est), 0);
    /* A manifest naming those parts: the worker's figure. */
    assert_non_null(mkdtemp(dir));
    snprintf(mp, sizeof mp, "%s/q8.model.json", dir);
    FILE *f = fopen(mp, "w");
    assert_non_null(f);
    fprintf(f, "{\"family\": \"flux\", \"parts\": {\"unet\": \"%s\", \"text_encoders\": [\"%s\", \"%s\"], "
               "\"vae\": \"%s\"}}", tp, t5p, cp, vp);
    fclose(f);
    assert_int_equal(lf_engine_model_bytes(mp, NULL, NULL), est);
    lf_engine_load_opts_t lo = {.text_paths = texts, .n_text_paths = 2, .parts_vae_path = vp};
    assert_int_equal(lf_engine_model_bytes(tp, &lo, NULL), est);
    struct stat sb;
    assert_int_equal(stat(tp, &sb), 0);
    assert_true(est != (uint64_t)sb.st_size);

    /* Quantized on load: the engine's weights, or the manifest's. */
    lf_test_fixture(tp, sizeof tp, "flux/flux_dev_bfl.safetensors");
    lf_test_fixture(cp, sizeof cp, "flux/flux_prompt_clip_l.safetensors");
    lf_test_fixture(t5p, sizeof t5p, "flux/flux_prompt_t5.safetensors");
    o.weight_quant = LF_TYPE_Q8_0;
    s_expect_estimate("f16 transformer, q8_0 on load + parts", tp, &o);
    assert_int_equal(lf_model_estimate_bytes(tp, &o, &est), 0);
    assert_int_equal(lf_engine_model_bytes(tp, &lo, "q8_0"), est);
    f = fopen(mp, "w");
    assert_non_null(f);
    fprintf(f, "{\"family\": \"flux\", \"weights\": \"q8_0\", \"parts\": {\"unet\": \"%s\", \"text_encoders\": "
               "[\"%s\", \"%s\"], \"vae\": \"%s\"}}", tp, t5p, cp, vp);
    fclose(f);
    assert_int_equal(lf_engine_model_bytes(mp, NULL, NULL), est);
    o.weight_quant = 0;
    uint64_t plain = 0;
    assert_int_equal(lf_model_estimate_bytes(tp, &o, &plain), 0);
    assert_true(est < plain);
    unlink(mp);
    rmdir(dir);

    /* SD1.5: one checkpoint file, its VAE and text encoder inside. */
    lf_test_fixture(sd, sizeof sd, "models/tiny_a.safetensors");
    lf_model_opts_t so = {.weight_type = -1};
    s_expect_estimate("SD1.5 checkpoint", sd, &so);
    so.weight_quant = LF_TYPE_Q8_0;
    s_expect_estimate("SD1.5 checkpoint, q8_0 on load", sd, &so);
    /* A diffusers folder (unet/, text_encoder/, vae/). */
    so.weight_quant = 0;
    s_expect_estimate("SD1.5 diffusers folder", lf_test_fixture(sd, sizeof sd, "models/tiny_b_diffusers"), &so);
}

/* A Q8_0 GGUF transformer mapped from its file (the default) and copied
 * (LF_WEIGHTS_MAP=0) gives the same output, byte for byte. */
static void test_gguf_mapped_output(void **state) {
    (void)state;
    char tp[1024], cp[1024], t5p[1024], vp[1024], err[512] = "";
    lf_test_fixture(tp, sizeof tp, "flux/flux_schnell_q8_0.gguf");
    lf_test_fixture(cp, sizeof cp, "flux/flux_clip_l.safetensors");
    lf_test_fixture(t5p, sizeof t5p, "flux/flux_t5_stub.safetensors");
    lf_test_fixture(vp, sizeof vp, "flux/flux_vae.safetensors");
    const char *texts[2] = {t5p, cp};
    lf_model_opts_t o = {.weight_type = -1, .text_paths = texts, .n_text_paths = 2, .vae_path = vp};
    float x[16 * 4 * 4], cond[8 * 24], vec[21] = {0}, t = 0.6f, out[2][16 * 4 * 4];
    for (size_t i = 0; i < sizeof x / sizeof x[0]; i++) x[i] = (float)((i * 29) % 13) / 6.0f - 1.0f;
    for (size_t i = 0; i < sizeof cond / sizeof cond[0]; i++) cond[i] = (float)((i * 7) % 11) / 5.0f - 1.0f;
    for (int i = 0; i < 20; i++) vec[i] = (float)i / 10.0f - 1.0f;
    for (int copy = 0; copy <= 1; copy++) {
        if (copy) setenv("LF_WEIGHTS_MAP", "0", 1);
        lf_model_t *m = NULL;
        int rc = lf_model_load(tp, &o, &m, err, sizeof err);
        if (rc) printf("%s\n", err);
        assert_int_equal(rc, 0);
        assert_int_equal(lf_model_desc(m)->latent_channels, 16);
        assert_int_equal(lf_model_denoise(m, x, 1, 4, 4, &t, cond, 8, vec, out[copy]), 0);
        lf_model_destroy(&m);
    }
    unsetenv("LF_WEIGHTS_MAP");
    assert_memory_equal(out[0], out[1], sizeof out[0]);
}

/* A whole generation from a prompt through lf_pipeline_run, as FluxPipeline
 * (dev, 3 steps, guidance 3.5): both tokenizers real (refdata), the VAE's
 * input and output recorded (lf_test_capture.h). */
enum { PR_C = 16, PR_H = 8, PR_W = 12 };

static void test_pipeline_prompt(void **state) {
    (void)state;
    char vb[1024], t5b[1024], tp[1024], cp[1024], t5p[1024], vp[1024], rp[1024], err[512] = "";
    const char *vocab = lf_test_refdata(vb, sizeof vb, "tokenizers/clip/bpe_simple_vocab_16e6.txt.gz");
    const char *t5tok = lf_test_refdata(t5b, sizeof t5b, "tokenizers/t5/tokenizer.json");
    if (!vocab || !t5tok) {
        printf("  skipped: no refdata tokenizers (LF_REFDATA_DIR)\n");
        skip();
    }
    lf_test_fixture(tp, sizeof tp, "flux/flux_dev_diffusers.safetensors");
    lf_test_fixture(cp, sizeof cp, "flux/flux_prompt_clip_l.safetensors");
    lf_test_fixture(t5p, sizeof t5p, "flux/flux_prompt_t5.safetensors");
    lf_test_fixture(vp, sizeof vp, "flux/flux_vae.safetensors");
    const char *texts[2] = {cp, t5p};
    lf_model_opts_t o = {.weight_type = LF_TYPE_F32, .text_paths = texts, .n_text_paths = 2, .vae_path = vp};
    lf_model_t *m = NULL;
    int rc = lf_model_load(tp, &o, &m, err, sizeof err);
    if (rc) printf("%s\n", err);
    assert_int_equal(rc, 0);
    lf_clip_tokenizer_t *tok = NULL;
    lf_t5_tokenizer_t *tok5 = NULL;
    assert_int_equal(lf_clip_tokenizer_load(&tok, vocab, err, sizeof err), 0);
    assert_int_equal(lf_t5_tokenizer_new(&tok5, t5tok, err, sizeof err), 0);
    lf_pipeline_ctx_t ctx = {.ops = &lf_test_rec_ops, .model = m, .tokenizer = tok, .t5_tokenizer = tok5};
    lf_pipeline_request_t req = {.prompt = "a cat in the house", .sampler = LF_SAMPLER_EULER,
                                 .scheduler = LF_SCHEDULER_SIMPLE, .steps = 3, .cfg = 1.0, .seed = 1234,
                                 .width = 24, .height = 16, .batch = 1, .rng = LF_RNG_TORCH_CPU,
                                 .clip_skip = 1};
    lf_pipeline_result_t res = {0};
    lf_test_cap_expect(PR_C, PR_H, PR_W, 3 * 16 * 24);
    rc = lf_pipeline_run(&ctx, &req, NULL, &res, err, sizeof err);
    if (rc) printf("%s\n", err);
    assert_int_equal(rc, 0);
    assert_int_equal(lf_test_cap.calls, 1);
    lf_safetensors_t *ref = NULL;
    assert_int_equal(lf_safetensors_open(&ref, lf_test_fixture(rp, sizeof rp, "flux/flux_gen_ref.safetensors"),
                                         err, sizeof err), 0);
    size_t nl = 0, ni = 0;
    float *lat = lf_test_ref_f32(ref, "prompt.latent", &nl), *im = lf_test_ref_f32(ref, "prompt.image", &ni);
    assert_int_equal(nl, PR_C * PR_H * PR_W);
    assert_int_equal(ni, 3 * 16 * 24);
    for (size_t k = 0; k < ni; k++) /* FluxPipeline's postprocess: to [0, 1], clamped */
        lf_test_cap.image[k] = fminf(fmaxf(lf_test_cap.image[k] * 0.5f + 0.5f, 0.0f), 1.0f);
    printf("  prompt: latent rel err %.3g, image rel err %.3g\n", lf_test_relerr(lf_test_cap.latent, lat, nl),
           lf_test_relerr(lf_test_cap.image, im, ni));
    assert_true(lf_test_relerr(lf_test_cap.latent, lat, nl) < 1e-4);
    assert_true(lf_test_relerr(lf_test_cap.image, im, ni) < 1e-4);
    /* Flux runs unguided: a cfg scale other than 0 / 1 is refused, naming guidance. */
    req.cfg = 7.0;
    lf_pipeline_result_clear(&res);
    assert_int_equal(lf_pipeline_run(&ctx, &req, NULL, &res, err, sizeof err), LF_EUNSUPPORTED);
    assert_non_null(strstr(err, "guidance"));
    req.cfg = 1.0, req.guidance = 31.0;
    assert_int_equal(lf_pipeline_run(&ctx, &req, NULL, &res, err, sizeof err), LF_EINVAL);
    ctx.t5_tokenizer = NULL, req.guidance = 0.0;
    assert_int_equal(lf_pipeline_run(&ctx, &req, NULL, &res, err, sizeof err), LF_EUNSUPPORTED);
    assert_non_null(strstr(err, "T5"));
    free(lat), free(im);
    lf_pipeline_result_clear(&res);
    lf_safetensors_destroy(&ref);
    lf_t5_tokenizer_destroy(&tok5);
    lf_clip_tokenizer_destroy(&tok);
    lf_model_destroy(&m);
}

static void s_put(const char *dir, const char *rel, const char *text, const char *fixture) {
    char p[1200], t[1024];
    snprintf(p, sizeof p, "%s/%s", dir, rel);
    *strrchr(p, '/') = '\0';
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/%s", dir, rel);
    if (fixture) {
        assert_int_equal(symlink(lf_test_fixture(t, sizeof t, fixture), p), 0);
        return;
    }
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* A diffusers folder (transformer/, text_encoder/, text_encoder_2/, vae/,
 * scheduler/, tokenizer_2/): the configs are read from it (the scheduler's
 * use_dynamic_shifting), T5 is built and its tokenizer file named. */
static void test_model_diffusers_folder(void **state) {
    (void)state;
    char dir[] = "/tmp/lf_flux_folder_XXXXXX", err[512] = "", cmd[1200];
    assert_non_null(mkdtemp(dir));
    s_put(dir, "transformer/diffusion_pytorch_model.safetensors", NULL, "flux/flux_dev_diffusers.safetensors");
    s_put(dir, "transformer/config.json", "{\"axes_dims_rope\": [4, 6, 6], \"guidance_embeds\": true}", NULL);
    s_put(dir, "text_encoder/model.safetensors", NULL, "flux/flux_clip_l.safetensors");
    s_put(dir, "text_encoder/config.json", "{\"num_attention_heads\": 2, \"hidden_act\": \"quick_gelu\"}", NULL);
    s_put(dir, "vae/diffusion_pytorch_model.safetensors", NULL, "flux/flux_vae.safetensors");
    s_put(dir, "vae/config.json", "{\"norm_num_groups\": 4, \"scaling_factor\": 0.5, \"shift_factor\": 0.25}", NULL);
    s_put(dir, "scheduler/scheduler_config.json", "{\"use_dynamic_shifting\": false, \"shift\": 3.0}", NULL);
    s_put(dir, "text_encoder_2/model.safetensors", NULL, "flux/flux_t5_stub.safetensors");
    s_put(dir, "text_encoder_2/config.json", "{\"layer_norm_epsilon\": 1e-6}", NULL);
    s_put(dir, "tokenizer_2/spiece.model", "(not read by the model)", NULL);
    lf_model_t *m = NULL;
    int rc = lf_model_load(dir, NULL, &m, err, sizeof err);
    if (rc) printf("%s\n", err);
    assert_int_equal(rc, 0);
    const lf_model_desc_t *d = lf_model_desc(m);
    assert_int_equal(d->family, LF_FAMILY_FLUX);
    assert_int_equal(d->flow_dynamic, 0);
    assert_float_equal(d->flow_shift, 3.0f, 0);
    assert_float_equal(d->scaling_factor, 0.5f, 0);
    assert_float_equal(d->shift_factor, 0.25f, 0);
    assert_non_null(d->t5_tokenizer);
    assert_non_null(strstr(d->t5_tokenizer, "/tokenizer_2/spiece.model"));
    int32_t ids[512] = {5, 9, 1};
    float *h = malloc(512 * 24 * sizeof *h), *h2 = malloc(512 * 24 * sizeof *h2);
    assert_int_equal(lf_model_encode_t5(m, ids, 1, h), 0);
    lf_model_destroy(&m);
    /* T5-XXL is sharded in diffusers folders (transformers' save_pretrained):
     * the same T5 split in two (tests/reference/make_flux_shards.py) encodes
     * the same, bit for bit. */
    snprintf(cmd, sizeof cmd, "rm -f '%s/text_encoder_2/model.safetensors'", dir);
    assert_int_equal(system(cmd), 0);
    static const char *const shards[] = {"model.safetensors.index.json", "model-00001-of-00002.safetensors",
                                         "model-00002-of-00002.safetensors"};
    for (int i = 0; i < 3; i++) {
        char rel[256], fx[256];
        snprintf(rel, sizeof rel, "text_encoder_2/%s", shards[i]);
        snprintf(fx, sizeof fx, "flux/t5_sharded/%s", shards[i]);
        s_put(dir, rel, NULL, fx);
    }
    rc = lf_model_load(dir, NULL, &m, err, sizeof err);
    if (rc) printf("%s\n", err);
    assert_int_equal(rc, 0);
    assert_int_equal(lf_model_encode_t5(m, ids, 1, h2), 0);
    assert_memory_equal(h, h2, 512 * 24 * sizeof *h);
    free(h), free(h2);
    lf_model_destroy(&m);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

/* A sharded set's index: its tensors as one file's; a shard that is not
 * there, a tensor not in the shard the map names, or a shard name leaving
 * the folder is refused naming the index. */
static void test_shard_index(void **state) {
    (void)state;
    char dir[] = "/tmp/lf_flux_shards_XXXXXX", p[1200], err[512] = "", fx[1024];
    assert_non_null(mkdtemp(dir));
    lf_weights_t *w = NULL, *one = NULL;
    assert_int_equal(lf_weights_open(&w, lf_test_fixture(fx, sizeof fx, "flux/t5_sharded/model.safetensors.index.json"),
                                     err, sizeof err),
                     0);
    assert_int_equal(lf_weights_open(&one, lf_test_fixture(fx, sizeof fx, "flux/flux_t5_stub.safetensors"), err,
                                     sizeof err),
                     0);
    assert_int_equal(lf_weights_count(w), 12); /* the single file also has encoder.embed_tokens (tied) */
    for (size_t i = 0; i < lf_weights_count(w); i++) {
        const lf_tensor_info_t *t = lf_weights_at(w, i), *u = lf_weights_find(one, t->name);
        assert_non_null(u);
        assert_ptr_equal(lf_weights_find(w, t->name), t);
        assert_int_equal(t->nbytes, u->nbytes);
        assert_memory_equal(t->data, u->data, t->nbytes);
    }
    assert_null(lf_weights_at(w, 12));
    lf_weights_destroy(&w);
    lf_weights_destroy(&one);
    static const char *const bad[][2] = {
        {"{\"weight_map\": {\"shared.weight\": \"absent.safetensors\"}}", "absent.safetensors"},
        {"{\"weight_map\": {\"no.such.tensor\": \"s.safetensors\"}}", "no.such.tensor"},
        {"{\"weight_map\": {\"shared.weight\": \"../s.safetensors\"}}", "bad shard name"},
        {"{\"metadata\": {}}", "weight_map"}};
    snprintf(p, sizeof p, "%s/s.safetensors", dir);
    assert_int_equal(symlink(lf_test_fixture(fx, sizeof fx, "flux/flux_t5_stub.safetensors"), p), 0);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
        FILE *f = fopen(p, "w");
        assert_non_null(f);
        fputs(bad[i][0], f);
        fclose(f);
        err[0] = '\0';
        assert_int_not_equal(lf_weights_open(&w, p, err, sizeof err), 0);
        printf("  bad index %zu: %s\n", i, err);
        assert_non_null(strstr(err, bad[i][1]));
        assert_null(w);
    }
    snprintf(p, sizeof p, "rm -rf '%s'", dir);
    assert_int_equal(system(p), 0);
}

/* ComfyUI's split layout: models/unet (or diffusion_models) holds the
 * transformer, models/clip clip_l and t5xxl, models/vae ae.safetensors; the
 * scan assembles a Flux model from them (an SD1.x text encoder there is
 * left alone), and a manifest may name the parts too. */
static void test_scan_comfy_folders(void **state) {
    (void)state;
    char dir[] = "/tmp/lf_flux_scan_XXXXXX", p[1200], err[512];
    assert_non_null(mkdtemp(dir));
    static const char *const links[][2] = {
        {"diffusion_models/flux1-dev-tiny.safetensors", "flux/flux_dev_bfl.safetensors"},
        {"clip/clip_l.safetensors", "flux/flux_clip_l.safetensors"},
        {"clip/t5xxl_fp16.safetensors", "flux/flux_t5_stub.safetensors"},
        {"clip/sd15_text.safetensors", "models/tiny_a.safetensors"},
        {"vae/ae.safetensors", "flux/flux_vae.safetensors"}};
    for (size_t i = 0; i < sizeof links / sizeof links[0]; i++) s_put(dir, links[i][0], NULL, links[i][1]);
    lf_manifest_t **list = NULL;
    size_t n = 0;
    assert_int_equal(lf_manifest_scan(dir, &list, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(list[0]->name, "flux1-dev-tiny");
    assert_int_equal(list[0]->family, LF_FAMILY_FLUX);
    assert_int_equal(list[0]->n_text, 2);
    assert_non_null(strstr(list[0]->text[0], "clip/clip_l.safetensors"));
    assert_non_null(strstr(list[0]->text[1], "clip/t5xxl_fp16.safetensors"));
    assert_non_null(strstr(list[0]->vae, "vae/ae.safetensors"));
    /* Flux dev's settings: 20 steps, cfg 1 (one pass), Euler, 1024 px. */
    assert_int_equal(list[0]->defaults.steps, 20);
    assert_float_equal(list[0]->defaults.cfg, 1.0, 0);
    assert_string_equal(list[0]->defaults.sampler, "euler");
    assert_int_equal(list[0]->defaults.width, 1024);
    const char *tp[2] = {list[0]->text[0], list[0]->text[1]};
    lf_model_opts_t mo = {.weight_type = -1, .text_paths = tp, .n_text_paths = 2, .vae_path = list[0]->vae};
    lf_model_t *m = NULL;
    int rc = lf_model_load(list[0]->unet, &mo, &m, err, sizeof err);
    if (rc) printf("%s\n", err);
    assert_int_equal(rc, 0);
    assert_int_equal(lf_model_desc(m)->family, LF_FAMILY_FLUX);
    lf_model_destroy(&m);
    lf_manifest_list_free(&list, n);
    /* A manifest with an SD1.x text encoder for a Flux transformer is refused, naming it. */
    lf_manifest_t *mf = NULL;
    const char *js = "{\"family\": \"flux\", \"parts\": {\"unet\": \"diffusion_models/flux1-dev-tiny.safetensors\","
                     " \"text_encoders\": [\"clip/sd15_text.safetensors\"], \"vae\": \"vae/ae.safetensors\"}}";
    snprintf(p, sizeof p, "%s/bad.model.json", dir);
    assert_int_equal(lf_manifest_parse(js, strlen(js), p, &mf, err, sizeof err), 0);
    assert_int_equal(mf->family, LF_FAMILY_FLUX);
    assert_int_equal(lf_manifest_check(mf, err, sizeof err), LF_EFORMAT);
    printf("  %s\n", err);
    assert_non_null(strstr(err, "sd15_text.safetensors"));
    lf_manifest_destroy(&mf);
    /* parts.t5_tokenizer (a T5 file without one): resolved beside the
     * manifest; a file that is not there is refused naming the field. */
    js = "{\"family\": \"flux\", \"parts\": {\"unet\": \"diffusion_models/flux1-dev-tiny.safetensors\","
         " \"text_encoders\": [\"clip/clip_l.safetensors\", \"clip/t5xxl_fp16.safetensors\"],"
         " \"vae\": \"vae/ae.safetensors\", \"t5_tokenizer\": \"tok/spiece.model\"}}";
    snprintf(p, sizeof p, "%s/tok.model.json", dir);
    assert_int_equal(lf_manifest_parse(js, strlen(js), p, &mf, err, sizeof err), 0);
    assert_non_null(mf->t5_tokenizer);
    assert_non_null(strstr(mf->t5_tokenizer, "/tok/spiece.model"));
    assert_int_equal(lf_manifest_check(mf, err, sizeof err), LF_ENOTFOUND);
    printf("  %s\n", err);
    assert_non_null(strstr(err, "parts.t5_tokenizer"));
    s_put(dir, "tok/spiece.model", "(a file)", NULL);
    assert_int_equal(lf_manifest_check(mf, err, sizeof err), 0);
    lf_manifest_destroy(&mf);
    snprintf(p, sizeof p, "rm -rf '%s'", dir);
    assert_int_equal(system(p), 0);
}

/* Packing as diffusers' _pack_latents (channel c*4 + dy*2 + dx) and back. */
static void test_pack(void **state) {
    (void)state;
    enum { B = 1, C = 2, H = 4, W = 6 };
    float z[B * C * H * W], p[B * C * H * W], back[B * C * H * W], ids[(H / 2) * (W / 2) * 3];
    for (int i = 0; i < B * C * H * W; i++) z[i] = (float)i;
    lf_flux_pack(z, B, C, H, W, p);
    /* token (1, 2) = patch rows 2..3, cols 4..5; channel 1, dy 1, dx 0 */
    assert_float_equal(p[(1 * 3 + 2) * C * 4 + 1 * 4 + 2], z[(1 * H + 3) * W + 4], 0);
    lf_flux_unpack(p, B, C, H, W, back);
    assert_memory_equal(z, back, sizeof z);
    lf_flux_image_ids(H, W, ids);
    assert_float_equal(ids[5 * 3 + 1], 1, 0);
    assert_float_equal(ids[5 * 3 + 2], 2, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_transformer_dev_diffusers),
        cmocka_unit_test(test_transformer_dev_bfl),
        cmocka_unit_test(test_transformer_schnell_bfl),
        cmocka_unit_test(test_transformer_schnell_gguf_q8_0),
        cmocka_unit_test(test_transformer_quantize_on_load),
        cmocka_unit_test(test_transformer_schnell_gguf_k),
        cmocka_unit_test(test_not_flux),
        cmocka_unit_test(test_vae),
        cmocka_unit_test(test_flow_sigmas),
        cmocka_unit_test(test_generation_schnell),
        cmocka_unit_test(test_generation_dev),
        cmocka_unit_test(test_model_text),
        cmocka_unit_test(test_one_network),
        cmocka_unit_test(test_resident_estimate),
        cmocka_unit_test(test_gguf_mapped_output),
        cmocka_unit_test(test_pipeline_prompt),
        cmocka_unit_test(test_clip_pooled),
        cmocka_unit_test(test_model_parts),
        cmocka_unit_test(test_model_diffusers_folder),
        cmocka_unit_test(test_shard_index),
        cmocka_unit_test(test_scan_comfy_folders),
        cmocka_unit_test(test_pack),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
