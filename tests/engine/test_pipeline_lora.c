/* LoRAs through the lf_engine.h facade on the tiny fixture checkpoint
 * (tests/engine/fixtures/models/tiny_a.safetensors, its token embedding
 * widened to CLIP's vocabulary by lf_test_models.h, so the real tokenizer and
 * the real networks run end to end) with a kohya LoRA made
 * for it by tests/reference/make_lora_model_fixtures.py: prompt tags and the
 * request's list, names/aliases/subfolders, the infotext (prompt with tags,
 * A1111's "Lora hashes"), unmatched tensors reported, and the restore
 * property — a job after a LoRA job gives the bytes of a worker that never
 * saw the LoRA — also after unknown names and bad files — whether the
 * plain layers come back from the checkpoint file or from copies. The CLIP
 * merges come from the reference data (skipped when absent). */
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
#include "lf_image.h"
#include "lf_test_models.h"
#include "lf_test_util.h"


/* hashlib.sha256 of the fixture's bytes after its safetensors header, 12
 * digits (A1111's LoRA "shorthash"). */
#define S_HASH12 "aba21f5130b6"

typedef struct {
    char dir[64];
    lf_engine_t *e;
} ctx_t;

static int s_setup(void **state)
{
    char vb[1024], src[1024], cmd[4096], err[256] = "", model[1024];
    const char *vocab = lf_test_refdata(vb, sizeof vb, "tokenizers/clip/bpe_simple_vocab_16e6.txt.gz");
    if (!vocab) {
        *state = NULL;
        return 0;
    }
    ctx_t *c = calloc(1, sizeof *c);
    snprintf(c->dir, sizeof c->dir, "/tmp/lf_lora_engXXXXXX");
    assert_non_null(mkdtemp(c->dir));
    /* models/lora/sub/ holds the LoRA; models/Lora/ (A1111's spelling) a
     * truncated copy. */
    snprintf(cmd, sizeof cmd,
             "mkdir -p '%s/lora/sub' '%s/Lora' && cp '%s' '%s/lora/sub/' && "
             "head -c 5000 '%s' > '%s/Lora/bad.safetensors'",
             c->dir, c->dir, lf_test_fixture(src, sizeof src, "lora/tiny_a_kohya.safetensors"),
             c->dir, src, c->dir);
    assert_int_equal(system(cmd), 0);
    char dirs[200];
    snprintf(dirs, sizeof dirs, "%s/lora:%s/Lora", c->dir, c->dir);
    lf_engine_opts_t o = {.vocab_path = vocab, .n_threads = 2, .lora_dirs = dirs};
    if (lf_engine_new(&o, &c->e, err, sizeof err) != 0) fail_msg("lf_engine_new: %s", err);
    snprintf(model, sizeof model, "%s/tiny_a.safetensors", c->dir);
    assert_int_equal(lf_test_write_clip_model(LF_FIXTURE_DIR, model), 0);
    lf_engine_load_opts_t lo = {.name = "tiny_a"};
    if (lf_engine_load(c->e, model, &lo)) fail_msg("load: %s", lf_engine_errstr(c->e));
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

static lf_engine_request_t s_req(const char *prompt)
{
    lf_engine_request_t r = lf_engine_request_defaults();
    r.prompt = prompt;
    r.negative = "blue";
    r.width = r.height = 64;
    r.steps = 2;
    r.seed = 5;
    return r;
}

/* Generates; returns the result (caller clears). */
static lf_engine_result_t s_gen(ctx_t *c, const lf_engine_request_t *r)
{
    lf_engine_result_t res = {0};
    int rc = lf_engine_generate(c->e, r, NULL, NULL, NULL, &res);
    if (rc) fail_msg("generate '%s': %s (%s)", r->prompt, lf_engine_errstr(c->e), lf_strerror(rc));
    return res;
}

static int s_same_png(const lf_engine_result_t *a, const lf_engine_result_t *b)
{
    return a->images[0].png_len == b->images[0].png_len &&
           memcmp(a->images[0].png, b->images[0].png, a->images[0].png_len) == 0;
}

/* Decoded pixels equal (the PNG's text may differ). */
static int s_same_pixels(const lf_engine_result_t *a, const lf_engine_result_t *b)
{
    lf_image_t x = {0}, y = {0};
    assert_int_equal(lf_image_decode(a->images[0].png, a->images[0].png_len, NULL, &x, NULL, 0), 0);
    assert_int_equal(lf_image_decode(b->images[0].png, b->images[0].png_len, NULL, &y, NULL, 0), 0);
    int same = !memcmp(x.pixels, y.pixels, (size_t)x.width * x.height * x.channels);
    lf_image_clear(&x);
    lf_image_clear(&y);
    return same;
}

static void test_tags_list_and_restore(void **state)
{
    ctx_t *c = *state;
    if (!c) skip();
    lf_engine_request_t plain = s_req("a red circle ");
    lf_engine_result_t a = s_gen(c, &plain);
    assert_null(a.warnings);
    assert_null(strstr(a.images[0].infotext, "Lora hashes"));

    /* A prompt tag: cut before tokenizing, kept in the infotext. */
    lf_engine_request_t tag = s_req("a red circle <lora:tiny_a_kohya:0.8>");
    lf_engine_result_t b = s_gen(c, &tag);
    assert_false(s_same_pixels(&a, &b));
    printf("  infotext: %s\n", b.images[0].infotext);
    assert_non_null(strstr(b.images[0].infotext, "a red circle <lora:tiny_a_kohya:0.8>\n"));
    assert_non_null(strstr(b.images[0].infotext, "Lora hashes: \"tiny_a_kohya: " S_HASH12 "\""));
    /* The module no model has is reported by file and tensor name. */
    assert_non_null(b.warnings);
    printf("  warnings: %s\n", b.warnings);
    assert_non_null(strstr(b.warnings, "tiny_a_kohya: lora_unet_no_such_layer.lora_down.weight"));

    /* The restore: the next plain job is the first one, byte for byte. */
    lf_engine_result_t a2 = s_gen(c, &plain);
    assert_true(s_same_png(&a, &a2));

    /* The request's list gives the same job (and the same infotext: the
     * list's entries are written as tags). */
    lf_engine_lora_t one = {.name = "tiny_a_kohya", .weight = 0.8, .te_weight = NAN};
    lf_engine_request_t list = s_req("a red circle");
    list.loras = &one;
    list.n_loras = 1;
    lf_engine_result_t b2 = s_gen(c, &list);
    assert_true(s_same_png(&b, &b2));
    /* Again: the same set reuses the merged weights. */
    lf_engine_result_t b3 = s_gen(c, &list);
    assert_true(s_same_png(&b, &b3));
    /* By alias (ss_output_name) and by path under the folder. */
    one.name = "tiny_a_style";
    lf_engine_result_t b4 = s_gen(c, &list);
    assert_true(s_same_pixels(&b, &b4));
    one.name = "sub/tiny_a_kohya";
    lf_engine_result_t b5 = s_gen(c, &list);
    assert_true(s_same_pixels(&b, &b5));

    /* Text encoder and UNet weights apart: te 0 differs from both. */
    lf_engine_request_t unet_only = s_req("a red circle <lora:tiny_a_kohya:0:0.8>");
    lf_engine_result_t u = s_gen(c, &unet_only);
    assert_false(s_same_pixels(&u, &b));
    assert_false(s_same_pixels(&u, &a));
    /* Two LoRAs stack: the tag and the list (the same file twice = 2x). */
    one.name = "tiny_a_kohya";
    one.weight = 0.4;
    one.te_weight = 0.4;
    lf_engine_request_t both = s_req("a red circle <lora:tiny_a_kohya:0.4>");
    both.loras = &one;
    both.n_loras = 1;
    lf_engine_result_t s = s_gen(c, &both);
    assert_false(s_same_pixels(&s, &a));

    lf_engine_result_t a3 = s_gen(c, &plain);
    assert_true(s_same_png(&a, &a3));

    lf_engine_result_clear(&a), lf_engine_result_clear(&a2), lf_engine_result_clear(&a3);
    lf_engine_result_clear(&b), lf_engine_result_clear(&b2), lf_engine_result_clear(&b3);
    lf_engine_result_clear(&b4), lf_engine_result_clear(&b5), lf_engine_result_clear(&u);
    lf_engine_result_clear(&s);
}

static void test_errors_keep_serving(void **state)
{
    ctx_t *c = *state;
    if (!c) skip();
    lf_engine_request_t plain = s_req("a red circle ");
    lf_engine_result_t a = s_gen(c, &plain), r = {0};
    lf_engine_request_t tag = s_req("a red circle <lora:tiny_a_kohya:1>");
    lf_engine_result_t b = s_gen(c, &tag);

    /* An unknown name: refused, naming it; the model is left as it was
     * until the next job sets its own LoRAs. */
    lf_engine_request_t unknown = s_req("a red circle <lora:nope:1>");
    assert_int_equal(lf_engine_generate(c->e, &unknown, NULL, NULL, NULL, &r), LF_ENOTFOUND);
    assert_non_null(strstr(lf_engine_errstr(c->e), "'nope'"));
    lf_engine_result_t a2 = s_gen(c, &plain);
    assert_true(s_same_png(&a, &a2));

    /* A truncated file (models/Lora/bad.safetensors) after a LoRA job: the
     * error names the file; the plain model is resident again. */
    lf_engine_result_t b2 = s_gen(c, &tag);
    assert_true(s_same_png(&b, &b2));
    lf_engine_request_t bad = s_req("a red circle <lora:bad:1>");
    int rc = lf_engine_generate(c->e, &bad, NULL, NULL, NULL, &r);
    printf("  bad file: %s\n", lf_engine_errstr(c->e));
    assert_true(rc < 0);
    assert_non_null(strstr(lf_engine_errstr(c->e), "bad.safetensors"));
    lf_engine_result_t a3 = s_gen(c, &plain);
    assert_true(s_same_png(&a, &a3));

    /* A weight that is not a number (A1111 raises). */
    lf_engine_request_t nan = s_req("a red circle <lora:tiny_a_kohya:x>");
    assert_int_equal(lf_engine_generate(c->e, &nan, NULL, NULL, NULL, &r), LF_EINVAL);
    /* Another kind of extra network: skipped with a warning. */
    lf_engine_request_t hn = s_req("a red circle <hypernet:h:1>");
    lf_engine_result_t h = s_gen(c, &hn);
    assert_non_null(h.warnings);
    assert_non_null(strstr(h.warnings, "<hypernet:h:1>"));
    assert_true(s_same_pixels(&a, &h));

    lf_engine_result_clear(&a), lf_engine_result_clear(&a2), lf_engine_result_clear(&a3);
    lf_engine_result_clear(&b), lf_engine_result_clear(&b2), lf_engine_result_clear(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tags_list_and_restore),
        cmocka_unit_test(test_errors_keep_serving),
    };
    /* The restores read the plain layers from the checkpoint file, or from
     * copies up to a small cap and the file beyond it (LF_LORA_KEEP_MB;
     * copies alone: test_pipeline_lora_parity's test_restore_modes). */
    static const char *const keeps[] = {"0", "0.01"};
    int failed = 0;
    for (int k = 0; k < 2; k++) {
        printf("LF_LORA_KEEP_MB=%s\n", keeps[k]);
        setenv("LF_LORA_KEEP_MB", keeps[k], 1);
        failed += cmocka_run_group_tests(tests, s_setup, s_teardown);
    }
    return failed;
}
