/* Tests of lf_manifest and of lf_model assembled from parts: manifests
 * parsed (good, and errors naming the file and the field), parts checked from
 * tensor names and shapes (missing, of another family, mismatched), and the
 * tiny SDXL base (tests/reference/make_sdxl_fixtures.py) assembled from a
 * UNet-only file in each key layout — SGM names and diffusers names, as
 * SDXL-Lightning ships — plus text encoders and VAE from the single file, a
 * diffusers folder or ComfyUI-style separate files: every network's output
 * equals the single-file checkpoint's bit for bit (same f16 values, same
 * graphs). ComfyUI's folder convention (models/unet + models/clip +
 * models/vae) and the scan of a models folder are checked on a temporary
 * folder of links to the fixtures. */
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
#include "lf_manifest.h"
#include "lf_model.h"
#include "lf_safetensors.h"
#include "lf_test_ref.h"
#include "lf_test_util.h"

static const char *s_fx(char *buf, size_t len, const char *rel) { return lf_test_fixture(buf, len, rel); }

static int s_parse(const char *json, lf_manifest_t **m, char *err, size_t errlen) {
    return lf_manifest_parse(json, strlen(json), "/srv/models/lt.model.json", m, err, errlen);
}

/* ---- parsing ------------------------------------------------------------ */

static void test_parse_good(void **state) {
    (void)state;
    char err[512] = "";
    lf_manifest_t *m = NULL;
    const char *j = "{\"name\": \"sdxl-lightning-4step\", \"family\": \"sdxl\", \"description\": \"x\","
                    " \"parts\": {\"unet\": \"unet/l4.safetensors\", \"checkpoint\": \"/abs/base.safetensors\","
                    " \"vae\": \"vae/v.safetensors\"}, \"prediction\": \"epsilon\", \"resolution\": 1024,"
                    " \"defaults\": {\"steps\": 4, \"cfg\": 1, \"sampler\": \"euler\", \"scheduler\": \"sgm_uniform\","
                    " \"width\": 1024, \"height\": 768, \"timesteps\": [999, 500], \"weight\": 0.8}}";
    int rc = s_parse(j, &m, err, sizeof err);
    if (rc) printf("%s\n", err);
    assert_int_equal(rc, 0);
    assert_string_equal(m->name, "sdxl-lightning-4step");
    assert_int_equal(m->family, LF_FAMILY_SDXL);
    assert_string_equal(m->unet, "/srv/models/unet/l4.safetensors");
    assert_string_equal(m->checkpoint, "/abs/base.safetensors");
    assert_int_equal(m->n_text, 1); /* from the checkpoint */
    assert_string_equal(m->text[0], "/abs/base.safetensors");
    assert_string_equal(m->vae, "/srv/models/vae/v.safetensors");
    assert_int_equal(m->resolution, 1024);
    assert_int_equal(m->defaults.steps, 4);
    assert_true(m->defaults.cfg == 1.0);
    assert_string_equal(m->defaults.sampler, "euler");
    assert_string_equal(m->defaults.scheduler, "sgm_uniform");
    assert_int_equal(m->defaults.width, 1024);
    assert_int_equal(m->defaults.height, 768);
    assert_string_equal(m->defaults.timesteps, "999,500"); /* the API's timesteps row text */
    assert_true(m->defaults.weight == 0.8);
    lf_prediction_t p = LF_PRED_V;
    assert_int_equal(lf_manifest_prediction(m, &p), 0);
    assert_int_equal(p, LF_PRED_EPS);
    lf_manifest_destroy(&m);
    assert_null(m);

    /* The name from the file; a list of text encoders; no defaults. */
    j = "{\"family\": \"sdxl\", \"prediction\": \"v_prediction\", \"parts\": {\"unet\": \"u.safetensors\","
        " \"text_encoders\": [\"clip/clip_l.safetensors\", \"clip/clip_g.safetensors\"], \"vae\": \"v\"}}";
    assert_int_equal(s_parse(j, &m, err, sizeof err), 0);
    assert_string_equal(m->name, "lt");
    assert_int_equal(m->n_text, 2);
    assert_string_equal(m->text[1], "/srv/models/clip/clip_g.safetensors");
    assert_int_equal(m->defaults.steps, 0);
    assert_true(isnan(m->defaults.cfg));
    assert_int_equal(lf_manifest_prediction(m, &p), 0);
    assert_int_equal(p, LF_PRED_V);
    lf_manifest_destroy(&m);

    /* x0 ("sample"): the engine's LF_PRED_SAMPLE. */
    j = "{\"family\": \"sdxl\", \"prediction\": \"sample\", \"parts\": {\"unet\": \"u\", \"checkpoint\": \"c\"}}";
    assert_int_equal(s_parse(j, &m, err, sizeof err), 0);
    assert_int_equal(m->prediction_sample, 1);
    assert_int_equal(lf_manifest_prediction(m, &p), 0);
    assert_int_equal(p, LF_PRED_SAMPLE);
    lf_manifest_destroy(&m);
    assert_true(lf_manifest_is_path("models/x.model.json"));
    assert_false(lf_manifest_is_path("models/x.json"));
}

/* Each bad manifest fails with LF_EFORMAT and a message naming the file and
 * the field. */
static void test_parse_errors(void **state) {
    (void)state;
    static const struct {
        const char *json, *want;
    } cases[] = {
        {"{\"family\": \"sdxl\", \"parts\": {\"unet\": \"u\",}}", "bad JSON"},
        {"[1]", "must be a JSON object"},
        {"{\"family\": \"sdxl\", \"parts\": {\"checkpoint\": \"c\"}}", "parts.unet is missing"},
        {"{\"family\": \"sdxl\", \"parts\": {\"unet\": \"u\"}}", "parts.text_encoders is missing"},
        {"{\"family\": \"sdxl\", \"parts\": {\"unet\": \"u\", \"text_encoders\": \"t\"}}", "parts.vae is missing"},
        {"{\"parts\": {\"unet\": \"u\", \"checkpoint\": \"c\"}}", "family is missing"},
        {"{\"family\": \"sd3\", \"parts\": {\"unet\": \"u\", \"checkpoint\": \"c\"}}", "family must be"},
        {"{\"family\": \"sdxl\", \"parts\": {\"unet\": 3, \"checkpoint\": \"c\"}}", "parts.unet must be a path"},
        {"{\"family\": \"sdxl\", \"parts\": {\"unet\": \"u\", \"checkpoint\": \"c\", \"clip\": \"x\"}}",
         "unknown field parts.clip"},
        {"{\"family\": \"sdxl\", \"steps\": 4, \"parts\": {\"unet\": \"u\", \"checkpoint\": \"c\"}}",
         "unknown field steps"},
        {"{\"family\": \"sdxl\", \"parts\": {\"unet\": \"u\", \"checkpoint\": \"c\"}, \"defaults\": {\"steps\": 0}}",
         "defaults.steps must be"},
        {"{\"family\": \"sdxl\", \"parts\": {\"unet\": \"u\", \"checkpoint\": \"c\"}, \"defaults\": {\"cfg\": \"1\"}}",
         "defaults.cfg must be"},
        {"{\"family\": \"sdxl\", \"parts\": {\"unet\": \"u\", \"checkpoint\": \"c\"}, \"defaults\": {\"width\": 1001}}",
         "defaults.width must be"},
        {"{\"family\": \"sdxl\", \"parts\": {\"unet\": \"u\", \"checkpoint\": \"c\"}, \"defaults\": {\"seed\": 1}}",
         "unknown field defaults.seed"},
        {"{\"family\": \"sdxl\", \"parts\": {\"unet\": \"u\", \"checkpoint\": \"c\"}, \"defaults\": {\"timesteps\": [500, 800]}}",
         "defaults.timesteps must be"},
        {"{\"family\": \"sdxl\", \"parts\": {\"unet\": \"u\", \"checkpoint\": \"c\"}, \"defaults\": {\"weight\": 21}}",
         "defaults.weight must be"},
        {"{\"family\": \"sdxl\", \"parts\": {\"unet\": \"u\", \"checkpoint\": \"c\"}, \"defaults\": {\"timesteps\": 800}}",
         "defaults.timesteps must be"},
        {"{\"family\": \"sdxl\", \"parts\": {\"unet\": \"u\", \"checkpoint\": \"c\"}, \"defaults\": {\"timesteps\": [1000]}}",
         "defaults.timesteps must be"},
        {"{\"family\": \"sdxl\", \"parts\": {\"unet\": \"u\", \"checkpoint\": \"c\"}, \"prediction\": \"x\"}",
         "prediction must be"},
        {"{\"family\": \"sdxl\", \"name\": \"a/b\", \"parts\": {\"unet\": \"u\", \"checkpoint\": \"c\"}}",
         "name must be"},
        {"{\"family\": \"sdxl\", \"weights\": 8, \"parts\": {\"unet\": \"u\", \"checkpoint\": \"c\"}}",
         "weights must be"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char err[512] = "";
        lf_manifest_t *m = NULL;
        int rc = s_parse(cases[i].json, &m, err, sizeof err);
        printf("  %-40.40s -> %s\n", cases[i].json, err);
        assert_int_equal(rc, LF_EFORMAT);
        assert_null(m);
        assert_non_null(strstr(err, "/srv/models/lt.model.json"));
        assert_non_null(strstr(err, cases[i].want));
    }
    char err[256];
    lf_manifest_t *m = NULL;
    assert_int_equal(lf_manifest_load("/nonexistent/x.model.json", &m, err, sizeof err), LF_EIO);
    assert_non_null(strstr(err, "/nonexistent/x.model.json"));
}

/* ---- parts checked ----------------------------------------------------- */

static lf_manifest_t *s_manifest(const char *unet, const char *text, const char *vae, const char *family) {
    char j[4096], a[1024], b[1024], c[1024], err[512];
    snprintf(j, sizeof j, "{\"family\": \"%s\", \"parts\": {\"unet\": \"%s\", \"text_encoders\": \"%s\", \"vae\": \"%s\"}}",
             family, s_fx(a, sizeof a, unet), s_fx(b, sizeof b, text), s_fx(c, sizeof c, vae));
    lf_manifest_t *m = NULL;
    assert_int_equal(lf_manifest_parse(j, strlen(j), "/tmp/t.model.json", &m, err, sizeof err), 0);
    return m;
}

static void s_check_fails(lf_manifest_t *m, int code, const char *w1, const char *w2) {
    char err[1024] = "";
    int rc = lf_manifest_check(m, err, sizeof err);
    printf("  check -> %s (%s)\n", err, lf_strerror(rc));
    assert_int_equal(rc, code);
    assert_non_null(strstr(err, "manifest /tmp/t.model.json"));
    assert_non_null(strstr(err, w1));
    assert_non_null(strstr(err, w2));
}

static void test_check_parts(void **state) {
    (void)state;
    char err[1024] = "";
    lf_manifest_t *m = s_manifest("sdxl/unet_diffusers.safetensors", "sdxl/base.safetensors",
                                  "sdxl/base.safetensors", "sdxl");
    assert_int_equal(lf_manifest_check(m, err, sizeof err), 0);
    assert_int_equal(m->family, LF_FAMILY_SDXL);
    lf_manifest_destroy(&m);
    /* A missing file: the part and the file named. */
    m = s_manifest("sdxl/nope.safetensors", "sdxl/base.safetensors", "sdxl/base.safetensors", "sdxl");
    s_check_fails(m, LF_EIO, "parts.unet", "nope.safetensors");
    lf_manifest_destroy(&m);
    /* Not a UNet. */
    m = s_manifest("sdxl/vae.safetensors", "sdxl/base.safetensors", "sdxl/base.safetensors", "sdxl");
    s_check_fails(m, LF_EFORMAT, "parts.unet", "holds no UNet");
    lf_manifest_destroy(&m);
    /* The family declared differs from the UNet's. */
    m = s_manifest("sdxl/unet_sgm.safetensors", "sdxl/base.safetensors", "sdxl/base.safetensors", "sd15");
    s_check_fails(m, LF_EINVAL, "parts.unet", "family sd15");
    lf_manifest_destroy(&m);
    /* An SD1.5 checkpoint's text encoder with the SDXL UNet. */
    m = s_manifest("sdxl/unet_sgm.safetensors", "models/tiny_a.safetensors", "sdxl/base.safetensors", "sdxl");
    s_check_fails(m, LF_EINVAL, "parts.text_encoders", "tiny_a.safetensors");
    lf_manifest_destroy(&m);
    /* One encoder of the two. */
    m = s_manifest("sdxl/unet_sgm.safetensors", "sdxl/clip_l.safetensors", "sdxl/base.safetensors", "sdxl");
    s_check_fails(m, LF_EINVAL, "parts.text_encoders", "16 = 16");
    lf_manifest_destroy(&m);
    /* A VAE part without a VAE. */
    m = s_manifest("sdxl/unet_sgm.safetensors", "sdxl/base.safetensors", "sdxl/clip_g.safetensors", "sdxl");
    s_check_fails(m, LF_EFORMAT, "parts.vae", "holds no VAE");
    lf_manifest_destroy(&m);
}

/* A copy of a fixture's tensors with other metadata (key, value pairs). */
static void s_with_meta(const char *rel, const char *dst, const char *const *meta, size_t n_meta) {
    char src[1024], err[256];
    lf_safetensors_t *st = NULL;
    assert_int_equal(lf_safetensors_open(&st, s_fx(src, sizeof src, rel), err, sizeof err), 0);
    size_t n = lf_safetensors_count(st);
    lf_tensor_info_t *t = calloc(n, sizeof *t);
    for (size_t i = 0; i < n; i++) t[i] = *lf_safetensors_at(st, i);
    assert_int_equal(lf_safetensors_write(dst, t, n, meta, n_meta), 0);
    free(t);
    lf_safetensors_destroy(&st);
}

/* Metadata: a VAE whose ModelSpec architecture names another family is
 * refused; recommended settings from lf.defaults and modelspec.* fill what
 * a manifest leaves unset. */
static void test_metadata(void **state) {
    (void)state;
    char dir[] = "/tmp/lf_manifest_meta_XXXXXX", vae[1200], unet[1200], j[4000], c[1024], err[1024] = "";
    assert_non_null(mkdtemp(dir));
    snprintf(vae, sizeof vae, "%s/vae_sd15.safetensors", dir);
    static const char *const vmeta[] = {"modelspec.architecture", "stable-diffusion-v1/vae"};
    s_with_meta("sdxl/vae.safetensors", vae, vmeta, 1);
    snprintf(unet, sizeof unet, "%s/unet.safetensors", dir);
    static const char *const umeta[] = {
        "lf.config", "{\"unet\": {\"attention_head_dim\": [1, 2, 2], \"addition_time_embed_dim\": 8}}",
        "lf.defaults", "{\"steps\": 8, \"cfg\": 1.5, \"scheduler\": \"sgm_uniform\"}",
        "modelspec.resolution", "768x512",
        "modelspec.prediction_type", "v"};
    s_with_meta("sdxl/unet_diffusers.safetensors", unet, umeta, 4);
    lf_manifest_t *m = NULL;
    snprintf(j, sizeof j, "{\"family\": \"sdxl\", \"parts\": {\"unet\": \"%s\", \"checkpoint\": \"%s\", \"vae\": \"%s\"}}",
             unet, s_fx(c, sizeof c, "sdxl/base.safetensors"), vae);
    assert_int_equal(lf_manifest_parse(j, strlen(j), "/tmp/t.model.json", &m, err, sizeof err), 0);
    int rc = lf_manifest_check(m, err, sizeof err);
    printf("  check -> %s\n", err);
    assert_int_equal(rc, LF_EINVAL);
    assert_non_null(strstr(err, "parts.vae"));
    assert_non_null(strstr(err, "stable-diffusion-v1/vae"));
    lf_manifest_destroy(&m);
    /* With the checkpoint's VAE: the UNet's metadata fills the unset settings; the manifest's win. */
    snprintf(j, sizeof j, "{\"family\": \"sdxl\", \"parts\": {\"unet\": \"%s\", \"checkpoint\": \"%s\"},"
             " \"defaults\": {\"steps\": 4}}", unet, c);
    assert_int_equal(lf_manifest_parse(j, strlen(j), "/tmp/t.model.json", &m, err, sizeof err), 0);
    assert_int_equal(lf_manifest_check(m, err, sizeof err), 0);
    assert_int_equal(m->defaults.steps, 4);
    assert_true(m->defaults.cfg == 1.5);
    assert_string_equal(m->defaults.scheduler, "sgm_uniform");
    assert_string_equal(m->defaults.sampler, "");
    assert_int_equal(m->defaults.width, 768);
    assert_int_equal(m->defaults.height, 512);
    lf_prediction_t p = LF_PRED_EPS;
    assert_int_equal(lf_manifest_prediction(m, &p), 0);
    assert_int_equal(p, LF_PRED_V);
    lf_manifest_destroy(&m);
    snprintf(j, sizeof j, "rm -rf '%s'", dir);
    assert_int_equal(system(j), 0);
}

/* ---- assembly equals the single file ------------------------------------- */

typedef struct {
    float *text, *pooled, *unet, *img;
} s_out_t;

static void s_outputs(lf_model_t *m, s_out_t *o) {
    char path[1024], err[256];
    lf_safetensors_t *ref = NULL;
    assert_int_equal(lf_safetensors_open(&ref, s_fx(path, sizeof path, "sdxl/base_ref.safetensors"), err, sizeof err), 0);
    const lf_model_desc_t *d = lf_model_desc(m);
    assert_int_equal(d->family, LF_FAMILY_SDXL);
    assert_int_equal(d->text_dim, 40);
    assert_int_equal(d->n_time_ids, 6);
    size_t n;
    float *idf = lf_test_ref_f32(ref, "ids", &n);
    int32_t ids[2 * 77];
    for (int i = 0; i < 2 * 77; i++) ids[i] = (int32_t)idf[i];
    o->text = malloc((size_t)2 * 77 * 40 * sizeof *o->text);
    o->pooled = malloc(2 * 20 * sizeof *o->pooled);
    assert_int_equal(lf_model_encode_text(m, ids, NULL, 2, 1, o->text, o->pooled), 0);
    float *x = lf_test_ref_f32(ref, "unet_x", &n), *t = lf_test_ref_f32(ref, "unet_t", NULL);
    float *ctx = lf_test_ref_f32(ref, "unet_ctx", NULL), *emb = lf_test_ref_f32(ref, "unet_text_embeds", NULL);
    float *tid = lf_test_ref_f32(ref, "unet_time_ids", NULL), vec[2 * 26];
    for (int b = 0; b < 2; b++) {
        memcpy(vec + b * 26, emb + b * 20, 20 * sizeof *vec);
        memcpy(vec + b * 26 + 20, tid + b * 6, 6 * sizeof *vec);
    }
    o->unet = malloc(n * sizeof *o->unet);
    assert_int_equal(lf_model_denoise(m, x, 2, 8, 8, t, ctx, 77, vec, o->unet), 0);
    float *z = lf_test_ref_f32(ref, "vae_z", NULL);
    o->img = malloc((size_t)3 * 16 * 16 * sizeof *o->img);
    assert_int_equal(lf_model_vae_decode(m, z, 1, 8, 8, 0, o->img), 0);
    free(idf), free(x), free(t), free(ctx), free(emb), free(tid), free(z);
    lf_safetensors_destroy(&ref);
}

static void s_out_free(s_out_t *o) { free(o->text), free(o->pooled), free(o->unet), free(o->img); }

static void s_same(const s_out_t *a, const s_out_t *b) {
    assert_memory_equal(a->text, b->text, (size_t)2 * 77 * 40 * sizeof(float));
    assert_memory_equal(a->pooled, b->pooled, 2 * 20 * sizeof(float));
    assert_memory_equal(a->unet, b->unet, (size_t)2 * 4 * 8 * 8 * sizeof(float));
    assert_memory_equal(a->img, b->img, (size_t)3 * 16 * 16 * sizeof(float));
}

static lf_model_t *s_load_parts(const char *unet, const char *const *text, size_t n_text, const char *vae) {
    char u[1024], t[4][1024], v[1024], err[512] = "";
    const char *tp[4];
    for (size_t i = 0; i < n_text; i++) tp[i] = s_fx(t[i], sizeof t[i], text[i]);
    lf_model_opts_t o = {.weight_type = -1, .text_paths = tp, .n_text_paths = n_text,
                         .vae_path = vae ? s_fx(v, sizeof v, vae) : NULL};
    lf_model_t *m = NULL;
    int rc = lf_model_load(s_fx(u, sizeof u, unet), &o, &m, err, sizeof err);
    if (rc) printf("load %s: %s\n", unet, err);
    assert_int_equal(rc, 0);
    return m;
}

static void test_assembly_equals_single_file(void **state) {
    (void)state;
    char path[1024], err[512];
    lf_model_t *whole = NULL;
    assert_int_equal(lf_model_load(s_fx(path, sizeof path, "sdxl/base.safetensors"), NULL, &whole, err, sizeof err), 0);
    s_out_t ref = {0};
    s_outputs(whole, &ref);
    lf_model_destroy(&whole);
    static const char *const ckpt[] = {"sdxl/base.safetensors"};
    static const char *const folder[] = {"sdxl/base_diffusers"};
    static const char *const files[] = {"sdxl/clip_g.safetensors", "sdxl/clip_l.safetensors"};
    static const struct {
        const char *unet;
        const char *const *text;
        size_t n;
        const char *vae;
    } cases[] = {
        {"sdxl/unet_sgm.safetensors", ckpt, 1, "sdxl/base.safetensors"},
        {"sdxl/unet_diffusers.safetensors", ckpt, 1, "sdxl/base.safetensors"},
        {"sdxl/unet_diffusers.safetensors", folder, 1, "sdxl/base_diffusers"},
        {"sdxl/unet_sgm.safetensors", files, 2, "sdxl/vae.safetensors"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        printf("  %s + %s + %s\n", cases[i].unet, cases[i].text[0], cases[i].vae);
        lf_model_t *m = s_load_parts(cases[i].unet, cases[i].text, cases[i].n, cases[i].vae);
        s_out_t o = {0};
        s_outputs(m, &o);
        s_same(&o, &ref);
        s_out_free(&o);
        lf_model_destroy(&m);
    }
    s_out_free(&ref);
}

static void test_assembly_errors(void **state) {
    (void)state;
    char u[1024], t[1024], err[512] = "";
    lf_model_t *m = NULL;
    /* A UNet alone, nothing else. */
    int rc = lf_model_load(s_fx(u, sizeof u, "sdxl/unet_diffusers.safetensors"), NULL, &m, err, sizeof err);
    printf("  %s\n", err);
    assert_int_equal(rc, LF_ENOTFOUND);
    assert_non_null(strstr(err, "unet_diffusers.safetensors"));
    assert_non_null(strstr(err, "without text encoders"));
    /* Text encoders but no VAE. */
    const char *tp[1] = {s_fx(t, sizeof t, "sdxl/base.safetensors")};
    lf_model_opts_t o = {.weight_type = -1, .text_paths = tp, .n_text_paths = 1};
    rc = lf_model_load(u, &o, &m, err, sizeof err);
    printf("  %s\n", err);
    assert_int_equal(rc, LF_ENOTFOUND);
    assert_non_null(strstr(err, "no VAE"));
    /* One SDXL encoder only. */
    tp[0] = s_fx(t, sizeof t, "sdxl/clip_l.safetensors");
    char v[1024];
    o.vae_path = s_fx(v, sizeof v, "sdxl/vae.safetensors");
    rc = lf_model_load(u, &o, &m, err, sizeof err);
    printf("  %s\n", err);
    assert_int_equal(rc, LF_ENOTFOUND);
    assert_non_null(strstr(err, "both text encoders"));
    /* SD1.5 text encoder with the SDXL UNet: widths disagree at load too. */
    tp[0] = s_fx(t, sizeof t, "models/tiny_a.safetensors");
    rc = lf_model_load(u, &o, &m, err, sizeof err);
    printf("  %s\n", err);
    assert_true(rc < 0);
    assert_null(m);
}

/* ---- folders ------------------------------------------------------------- */

static void s_link(const char *dir, const char *sub, const char *name, const char *rel) {
    char d[1024], p[1200], target[1024];
    snprintf(d, sizeof d, "%s/%s", dir, sub);
    mkdir(d, 0755);
    snprintf(p, sizeof p, "%s/%s", d, name);
    assert_int_equal(symlink(s_fx(target, sizeof target, rel), p), 0);
}

static void s_write(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_scan_folders(void **state) {
    (void)state;
    char dir[] = "/tmp/lf_manifest_XXXXXX", p[1200], b[1024];
    assert_non_null(mkdtemp(dir));
    /* ComfyUI's layout: a UNet, two encoders, a VAE (and a distractor). */
    s_link(dir, "unet", "lightning_tiny.safetensors", "sdxl/unet_diffusers.safetensors");
    s_link(dir, "clip", "clip_g.safetensors", "sdxl/clip_g.safetensors");
    s_link(dir, "clip", "clip_l.safetensors", "sdxl/clip_l.safetensors");
    s_link(dir, "text_encoders", "sd15_text.safetensors", "models/tiny_a.safetensors");
    s_link(dir, "vae", "sdxl_vae.safetensors", "sdxl/vae.safetensors");
    /* A manifest, and one of the wrong family (skipped with a warning). */
    snprintf(p, sizeof p, "%s/lt4.model.json", dir);
    snprintf(b, sizeof b,
             "{\"family\": \"sdxl\", \"parts\": {\"unet\": \"unet/lightning_tiny.safetensors\", \"checkpoint\": \"%s\"},"
             " \"defaults\": {\"steps\": 4, \"cfg\": 1, \"sampler\": \"euler\", \"scheduler\": \"sgm_uniform\"}}",
             s_fx(p + 600, 512, "sdxl/base.safetensors"));
    s_write(p, b);
    snprintf(p, sizeof p, "%s/bad.model.json", dir);
    s_write(p, "{\"family\": \"sd15\", \"parts\": {\"unet\": \"unet/lightning_tiny.safetensors\","
               " \"text_encoders\": \"clip/clip_l.safetensors\", \"vae\": \"vae/sdxl_vae.safetensors\"}}");
    lf_manifest_t **list = NULL;
    size_t n = 0;
    assert_int_equal(lf_manifest_scan(dir, &list, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(list[0]->name, "lightning_tiny");
    assert_null(list[0]->path);
    assert_int_equal(list[0]->family, LF_FAMILY_SDXL);
    assert_int_equal(list[0]->n_text, 2);
    assert_non_null(strstr(list[0]->text[0], "clip/clip_l.safetensors")); /* the narrower first */
    assert_non_null(strstr(list[0]->text[1], "clip/clip_g.safetensors"));
    assert_non_null(strstr(list[0]->vae, "vae/sdxl_vae.safetensors"));
    assert_string_equal(list[1]->name, "lt4");
    assert_non_null(list[1]->path);
    assert_int_equal(list[1]->defaults.steps, 4);
    assert_string_equal(list[1]->defaults.scheduler, "sgm_uniform");
    /* The folder model loads and equals the single file. */
    char path[1024], err[512];
    lf_model_t *whole = NULL;
    assert_int_equal(lf_model_load(s_fx(path, sizeof path, "sdxl/base.safetensors"), NULL, &whole, err, sizeof err), 0);
    s_out_t ref = {0}, o = {0};
    s_outputs(whole, &ref);
    lf_model_destroy(&whole);
    const char *tp[2] = {list[0]->text[0], list[0]->text[1]};
    lf_model_opts_t mo = {.weight_type = -1, .text_paths = tp, .n_text_paths = 2, .vae_path = list[0]->vae};
    lf_model_t *m = NULL;
    int rc = lf_model_load(list[0]->unet, &mo, &m, err, sizeof err);
    if (rc) printf("%s\n", err);
    assert_int_equal(rc, 0);
    s_outputs(m, &o);
    s_same(&o, &ref);
    s_out_free(&o), s_out_free(&ref);
    lf_model_destroy(&m);
    lf_manifest_list_free(&list, n);
    assert_null(list);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

/* The facade: a .model.json path is probed and loaded as the assembled
 * model, under the manifest's name; a bad part is an error naming the
 * manifest, the part and the file. */
static void test_engine_loads_manifests(void **state) {
    (void)state;
    char dir[] = "/tmp/lf_manifest_engine_XXXXXX", p[1200], b[3000], u[1024], c[1024], err[512];
    assert_non_null(mkdtemp(dir));
    snprintf(p, sizeof p, "%s/lt.model.json", dir);
    snprintf(b, sizeof b,
             "{\"name\": \"tiny-lightning\", \"family\": \"sdxl\", \"resolution\": 512,"
             " \"parts\": {\"unet\": \"%s\", \"checkpoint\": \"%s\"}}",
             s_fx(u, sizeof u, "sdxl/unet_diffusers.safetensors"), s_fx(c, sizeof c, "sdxl/base.safetensors"));
    s_write(p, b);
    const char *family = NULL;
    uint32_t side = 0;
    assert_int_equal(lf_engine_probe(p, &family, &side, err, sizeof err), 0);
    assert_string_equal(family, "sdxl");
    assert_int_equal(side, 512);
    lf_engine_t *e = NULL;
    lf_engine_opts_t eo = {.assets_dir = LF_ASSETS_DIR};
    assert_int_equal(lf_engine_new(&eo, &e, err, sizeof err), 0);
    int rc = lf_engine_load(e, p, NULL);
    if (rc) printf("  %s\n", lf_engine_errstr(e));
    if (rc == LF_ENOTFOUND && strstr(lf_engine_errstr(e), "CLIP merges")) {
        printf("  (no CLIP merges file: the load itself is not checked)\n");
    } else {
        assert_int_equal(rc, 0);
        assert_string_equal(lf_engine_model_name(e), "tiny-lightning");
        assert_string_equal(lf_engine_model_family(e), "sdxl");
        assert_null(lf_engine_vae_path(e)); /* the parts' VAE is the model's own */
    }
    /* A part of another family: refused at probe and at load, naming all three. */
    snprintf(p, sizeof p, "%s/bad.model.json", dir);
    snprintf(b, sizeof b, "{\"family\": \"sdxl\", \"parts\": {\"unet\": \"%s\", \"checkpoint\": \"%s\"}}",
             u, s_fx(c, sizeof c, "models/tiny_a.safetensors"));
    s_write(p, b);
    assert_int_equal(lf_engine_probe(p, &family, &side, err, sizeof err), LF_EINVAL);
    rc = lf_engine_load(e, p, NULL);
    printf("  %s\n", lf_engine_errstr(e));
    assert_int_equal(rc, LF_EINVAL);
    assert_non_null(strstr(lf_engine_errstr(e), "bad.model.json"));
    assert_non_null(strstr(lf_engine_errstr(e), "parts.checkpoint"));
    assert_non_null(strstr(lf_engine_errstr(e), "tiny_a.safetensors"));
    assert_null(lf_engine_model_name(e));
    /* "weights": quantize-on-load per model; an unknown type is refused at load, naming it. */
    snprintf(p, sizeof p, "%s/q.model.json", dir);
    snprintf(b, sizeof b, "{\"family\": \"sd15\", \"weights\": \"q8_k\", \"parts\": {\"checkpoint\": \"%s\", "
             "\"unet\": \"%s\"}}", c, c);
    s_write(p, b);
    rc = lf_engine_load(e, p, NULL);
    printf("  %s\n", lf_engine_errstr(e));
    assert_int_equal(rc, LF_EINVAL);
    assert_non_null(strstr(lf_engine_errstr(e), "weights 'q8_k'"));
    snprintf(b, sizeof b, "{\"family\": \"sd15\", \"weights\": \"q8_0\", \"parts\": {\"checkpoint\": \"%s\", "
             "\"unet\": \"%s\"}}", c, c);
    s_write(p, b);
    rc = lf_engine_load(e, p, NULL);
    if (rc) printf("  %s\n", lf_engine_errstr(e));
    assert_true(rc == 0 || (rc == LF_ENOTFOUND && strstr(lf_engine_errstr(e), "CLIP merges")));
    lf_engine_destroy(&e);
    snprintf(b, sizeof b, "rm -rf '%s'", dir);
    assert_int_equal(system(b), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_good),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_check_parts),
        cmocka_unit_test(test_metadata),
        cmocka_unit_test(test_assembly_equals_single_file),
        cmocka_unit_test(test_assembly_errors),
        cmocka_unit_test(test_scan_folders),
        cmocka_unit_test(test_engine_loads_manifests),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
