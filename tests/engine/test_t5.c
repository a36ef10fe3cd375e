/* Tests of the T5 tokenizer and encoder (engine/text/lf_t5*) against
 * transformers (tests/reference/make_t5_fixtures.py): token ids equal
 * T5TokenizerFast's on the refdata ids and the fixture's texts, from both
 * tokenizer.json and spiece.model; the encoder within 1e-4 relative of
 * T5EncoderModel for f32, f16 and bf16 weights (diffusers folder and
 * ComfyUI-style single files), and a Q8_0 GGUF within a stated error. */
#include <jansson.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lf_error.h"
#include "lf_safetensors.h"
#include "lf_t5.h"
#include "lf_t5_tokenizer.h"
#include "lf_test_ref.h"
#include "lf_test_util.h"

#define TOL 1e-4

/* ---- tokenizer ---- */

static lf_t5_tokenizer_t *s_tok(const char *file) {
    char path[1024], rel[64], err[512] = "";
    snprintf(rel, sizeof rel, "tokenizers/t5/%s", file);
    if (!lf_test_refdata(path, sizeof path, rel)) return NULL;
    lf_t5_tokenizer_t *t = NULL;
    int rc = lf_t5_tokenizer_new(&t, path, err, sizeof err);
    if (rc) printf("%s\n", err);
    assert_int_equal(rc, 0);
    assert_int_equal(lf_t5_tokenizer_vocab(t), 32100);
    return t;
}

static void s_refdata_ids(lf_t5_tokenizer_t *t) {
    char path[1024], text[1024], line[4096];
    assert_non_null(lf_test_refdata(path, sizeof path, "tokenizers/t5/ids.txt"));
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    int checked = 0;
    while (fgets(text, sizeof text, f)) {
        if (text[0] == '#' || text[0] == '\n') continue;
        text[strcspn(text, "\n")] = '\0';
        assert_non_null(fgets(line, sizeof line, f));
        int32_t want[256], got[64];
        int nw = 0, off = 0, k, used = 0;
        while (nw < 256 && sscanf(line + off, "%d%n", &want[nw], &k) == 1) off += k, nw++;
        assert_int_equal(lf_t5_tokenizer_encode(t, text, got, 64, &used), 0);
        assert_int_equal(used, nw);
        for (int i = 0; i < nw; i++)
            if (got[i] != want[i]) fail_msg("'%s' [%d]: got %d want %d", text, i, got[i], want[i]);
        for (int i = nw; i < 64; i++) assert_int_equal(got[i], LF_T5_PAD);
        checked++;
    }
    fclose(f);
    assert_int_equal(checked, 3);
}

/* Every case of tokenizer_cases.json (T5TokenizerFast with padding and
 * truncation): unicode, whitespace, special tokens, long text, empty. */
static void s_cases(lf_t5_tokenizer_t *t, const char *rel, size_t min_cases) {
    char path[1024];
    json_error_t je;
    json_t *cases = json_load_file(lf_test_fixture(path, sizeof path, rel), 0, &je);
    assert_non_null(cases);
    size_t i;
    json_t *c;
    int32_t got[512];
    json_array_foreach(cases, i, c) {
        const char *text = json_string_value(json_object_get(c, "text"));
        int n = (int)json_integer_value(json_object_get(c, "n")), used = -1;
        json_t *want = json_object_get(c, "ids");
        assert_true(n <= 512 && (int)json_array_size(want) == n);
        assert_int_equal(lf_t5_tokenizer_encode(t, text, got, n, &used), 0);
        int nz = n, bad = -1;
        while (nz > 0 && json_integer_value(json_array_get(want, (size_t)nz - 1)) == LF_T5_PAD) nz--;
        for (int k = 0; k < n && bad < 0; k++)
            if (got[k] != json_integer_value(json_array_get(want, (size_t)k))) bad = k;
        if (bad >= 0 || used != nz) {
            printf("case %zu '%s' n %d: first difference at %d\n got ", i, text, n, bad);
            for (int k = 0; k < used; k++) printf(" %d", got[k]);
            printf("\n want");
            for (int k = 0; k < nz; k++) printf(" %d", (int)json_integer_value(json_array_get(want, (size_t)k)));
            printf("\n");
            fail();
        }
    }
    assert_true(json_array_size(cases) >= min_cases);
    json_decref(cases);
}

/* The real T5 tokenizer from refdata, as tokenizer.json and spiece.model. */
static void test_tokenizer_refdata(void **state) {
    (void)state;
    static const char *files[] = {"tokenizer.json", "spiece.model"};
    for (int i = 0; i < 2; i++) {
        lf_t5_tokenizer_t *t = s_tok(files[i]);
        if (!t) skip();
        s_refdata_ids(t);
        s_cases(t, "t5/tokenizer_cases.json", 24);
        lf_t5_tokenizer_destroy(&t);
    }
}

/* A 48-piece model trained by sentencepiece with custom normalization
 * rules (its own small charsmap), as spiece.model and tokenizer.json, vs
 * the tokenizers library: runs without the refdata. */
static void test_tokenizer_tiny(void **state) {
    (void)state;
    static const char *files[] = {"tiny.model", "tiny_tokenizer.json"};
    for (int i = 0; i < 2; i++) {
        char rel[128], path[1024], err[512] = "";
        snprintf(rel, sizeof rel, "../../fuzz/corpus/t5_tokenizer/%s", files[i]);
        lf_t5_tokenizer_t *t = NULL;
        int rc = lf_t5_tokenizer_new(&t, lf_test_fixture(path, sizeof path, rel), err, sizeof err);
        if (rc) printf("%s\n", err);
        assert_int_equal(rc, 0);
        assert_int_equal(lf_t5_tokenizer_vocab(t), 148);
        s_cases(t, "t5/tiny_tokenizer_cases.json", 14);
        lf_t5_tokenizer_destroy(&t);
    }
}

static void test_tokenizer_edges(void **state) {
    (void)state;
    lf_t5_tokenizer_t *t = s_tok("tokenizer.json");
    if (!t) skip();
    int32_t ids[8];
    int used = 0;
    /* n = 1: only </s>; invalid UTF-8 is U+FFFD (unknown), never a crash. */
    assert_int_equal(lf_t5_tokenizer_encode(t, "a photo", ids, 1, &used), 0);
    assert_int_equal(used, 1);
    assert_int_equal(ids[0], LF_T5_EOS);
    assert_int_equal(lf_t5_tokenizer_encode(t, "a\xff\xfe b\xe2\x96", ids, 8, &used), 0);
    assert_int_equal(ids[used - 1], LF_T5_EOS);
    assert_int_equal(lf_t5_tokenizer_encode(t, "x", ids, 0, &used), LF_EINVAL);
    assert_int_equal(lf_t5_tokenizer_encode(t, NULL, ids, 8, &used), LF_EINVAL);
    lf_t5_tokenizer_destroy(&t);
    /* Bad files: a message naming the file, an error code. */
    char err[512] = "", path[1024];
    assert_int_equal(lf_t5_tokenizer_new(&t, "/nonexistent/tokenizer.json", err, sizeof err), LF_EIO);
    assert_non_null(strstr(err, "/nonexistent/tokenizer.json"));
    assert_int_equal(lf_t5_tokenizer_new(&t, lf_test_fixture(path, sizeof path, "t5/t5_ref.safetensors"),
                                         err, sizeof err),
                     LF_EFORMAT);
    static const char *bad[] = {"{", "{\"model\": {\"type\": \"BPE\"}}",
                                "{\"model\": {\"type\": \"Unigram\", \"unk_id\": 5, \"vocab\": [[\"a\", -1]]}}",
                                "\x0a\x05\x0a\x01", "\x0a\xff\xff\xff\xff\x0f"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(lf_t5_tokenizer_new_mem(&t, bad[i], strlen(bad[i]), err, sizeof err), LF_EFORMAT);
    assert_null(t);
}

/* ---- encoder ---- */

typedef struct {
    lf_safetensors_t *ref;
    lf_backend_t *be;
} ctx_t;

static int s_setup(void **state) {
    ctx_t *c = calloc(1, sizeof *c);
    char path[1024], err[256];
    if (lf_safetensors_open(&c->ref, lf_test_fixture(path, sizeof path, "t5/t5_ref.safetensors"), err,
                            sizeof err))
        return -1;
    c->be = lf_backend_cpu_new(0);
    *state = c;
    return c->be ? 0 : -1;
}

static int s_teardown(void **state) {
    ctx_t *c = *state;
    lf_safetensors_destroy(&c->ref);
    lf_backend_destroy(&c->be);
    free(c);
    return 0;
}

/* The key map finds the encoder under a prefix (ComfyUI's all-in-one
 * checkpoints) and refuses a file without one. */
static void test_keymap_prefix(void **state) {
    (void)state;
    char path[1024], err[256];
    lf_weights_t *w = NULL;
    lf_keymap_t km;
    assert_int_equal(lf_weights_open(&w, lf_test_fixture(path, sizeof path, "t5/t5_ref.safetensors"),
                                     err, sizeof err), 0);
    assert_int_equal(lf_t5_keymap(&km, w), LF_ENOTFOUND);
    lf_weights_destroy(&w);
    assert_int_equal(lf_weights_open(&w, lf_test_fixture(path, sizeof path, "t5/t5_tiny_prefixed.safetensors"),
                                     err, sizeof err), 0);
    assert_int_equal(lf_t5_keymap(&km, w), 0);
    assert_int_equal(km.kind, LF_KEYMAP_DIFFUSERS);
    assert_string_equal(km.prefix, "text_encoders.t5xxl.transformer.");
    lf_backend_t *be = lf_backend_cpu_new(1);
    lf_pool_t *pool = lf_pool_new(be, 0);
    lf_t5_t *t5 = NULL;
    assert_int_equal(lf_t5_new(&t5, &km, NULL, be, pool, -1, err, sizeof err), 0);
    assert_int_equal(lf_t5_config(t5)->layers, 2);
    lf_t5_destroy(&t5);
    lf_pool_destroy(&pool);
    lf_backend_destroy(&be);
    lf_weights_destroy(&w);
}

static void test_position_bucket(void **state) {
    ctx_t *c = *state;
    size_t n;
    float *want = lf_test_ref_f32(c->ref, "bucket", &n);
    assert_int_equal(n, 129);
    for (int r = -64; r <= 64; r++)
        if (lf_t5_position_bucket(r, 32, 20) != (int)want[r + 64])
            fail_msg("rel %d: bucket %d want %d", r, lf_t5_position_bucket(r, 32, 20), (int)want[r + 64]);
    free(want);
}

/* Loads rel (a file, or a folder with config.json + model.safetensors),
 * encodes ids_a and ids_b, compares with out_<w>_a/b; returns the larger
 * relative error against out_<vs>_a/b. */
static double s_run(ctx_t *c, const char *rel, lf_keymap_kind_t kind, int type, const char *w,
                    double tol, const char *vs) {
    char path[1024], wp[1100], err[512] = "";
    lf_test_fixture(path, sizeof path, rel);
    json_t *cfg = NULL;
    int folder = strstr(rel, ".safetensors") == NULL && strstr(rel, ".gguf") == NULL;
    if (folder) {
        snprintf(wp, sizeof wp, "%s/config.json", path);
        cfg = json_load_file(wp, 0, NULL);
        assert_non_null(cfg);
        snprintf(wp, sizeof wp, "%s/model.safetensors", path);
    } else {
        snprintf(wp, sizeof wp, "%s", path);
    }
    lf_weights_t *wt = NULL;
    assert_int_equal(lf_weights_open(&wt, wp, err, sizeof err), 0);
    lf_keymap_t km;
    assert_int_equal(lf_t5_keymap(&km, wt), 0);
    assert_int_equal(km.kind, kind);
    assert_string_equal(km.prefix, "");
    lf_pool_t *pool = lf_pool_new(c->be, 0);
    lf_t5_t *t5 = NULL;
    int rc = lf_t5_new(&t5, &km, cfg, c->be, pool, type, err, sizeof err);
    if (rc) printf("%s: %s\n", rel, err);
    assert_int_equal(rc, 0);
    if (kind == LF_KEYMAP_T5_GGUF && type < 0) /* kept quantized */
        assert_int_equal(lf_pool_find(pool, "t5.encoder.block.0.layer.0.SelfAttention.q.weight")->type,
                         LF_TYPE_Q8_0);
    const lf_t5_config_t *k = lf_t5_config(t5);
    assert_int_equal(k->vocab, 64), assert_int_equal(k->d_model, 32), assert_int_equal(k->d_kv, 8);
    assert_int_equal(k->heads, 4), assert_int_equal(k->d_ff, 64), assert_int_equal(k->layers, 2);
    assert_int_equal(k->rel_buckets, 32);
    assert_int_equal(k->rel_max_dist, 128);
    double worst = 0;
    /* a, b, then a again (the cached graph replayed). */
    for (int pass = 0; pass < 3; pass++) {
        char nm[32];
        const char *which = pass == 1 ? "b" : "a";
        snprintf(nm, sizeof nm, "ids_%s", which);
        size_t n, no;
        float *idf = lf_test_ref_f32(c->ref, nm, &n);
        int32_t ids[64];
        for (size_t i = 0; i < n; i++) ids[i] = (int32_t)idf[i];
        snprintf(nm, sizeof nm, "out_%s_%s", w, which);
        float *want = lf_test_ref_f32(c->ref, nm, &no), *o = malloc(no * sizeof *o);
        snprintf(nm, sizeof nm, "out_%s_%s", vs, which);
        float *other = lf_test_ref_f32(c->ref, nm, NULL);
        assert_int_equal(no, n * 32);
        assert_int_equal(lf_t5_encode(t5, ids, (int)n, o), 0);
        double e = lf_test_relerr(o, want, no), e2 = lf_test_relerr(o, other, no);
        printf("  %-34s %s n=%zu: rel err %.3g vs %s, %.3g vs %s\n", rel, w, n, e, w, e2, vs);
        assert_true(e < tol);
        worst = fmax(worst, e2);
        free(idf), free(want), free(o), free(other);
    }
    /* Bad ids are refused. */
    int32_t bad[2] = {3, 64};
    float o2[64];
    assert_int_equal(lf_t5_encode(t5, bad, 2, o2), LF_EINVAL);
    lf_t5_destroy(&t5);
    lf_pool_destroy(&pool);
    lf_weights_destroy(&wt);
    json_decref(cfg);
    return worst;
}

static void test_encoder_folder(void **state) {
    s_run(*state, "t5/text_encoder_2", LF_KEYMAP_DIFFUSERS, -1, "f32", TOL, "f32");
    /* Matrices converted to f16 at load (norms and position bias stay f32,
     * so the all-f16 reference is not the one): f16 rounding's error. */
    s_run(*state, "t5/text_encoder_2", LF_KEYMAP_DIFFUSERS, LF_TYPE_F16, "f32", 5e-3, "f16");
}

/* ComfyUI-style single files (no config): f16 with the embedding as
 * encoder.embed_tokens.weight, bf16 with shared.weight; kept as stored. */
static void test_encoder_single_files(void **state) {
    s_run(*state, "t5/t5_tiny_f16.safetensors", LF_KEYMAP_DIFFUSERS, -1, "f16", TOL, "f32");
    s_run(*state, "t5/t5_tiny_bf16.safetensors", LF_KEYMAP_DIFFUSERS, -1, "bf16", TOL, "f32");
}

/* Q8_0 GGUF with llama.cpp names, vs the gguf package's dequantization run
 * in f32, within 1e-4: dequantized to f32 at load, and kept quantized (-1:
 * the quantized MATMUL; the embedding's rows dequantized when gathered).
 * Q8_0's own error against the f32 model (~5.6e-2 on this random net, more
 * than bf16's 2e-2) is stated, not tested tightly. */
static void test_encoder_gguf(void **state) {
    s_run(*state, "t5/t5_tiny_q8_0.gguf", LF_KEYMAP_T5_GGUF, LF_TYPE_F32, "q8_0", TOL, "f32");
    double e = s_run(*state, "t5/t5_tiny_q8_0.gguf", LF_KEYMAP_T5_GGUF, -1, "q8_0", TOL, "f32");
    assert_true(e < 0.1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tokenizer_refdata),
        cmocka_unit_test(test_tokenizer_tiny),
        cmocka_unit_test(test_tokenizer_edges),
        cmocka_unit_test(test_keymap_prefix),
        cmocka_unit_test(test_position_bucket),
        cmocka_unit_test(test_encoder_folder),
        cmocka_unit_test(test_encoder_single_files),
        cmocka_unit_test(test_encoder_gguf),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
