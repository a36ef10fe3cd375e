/* Tests for lf_clip_tokenizer: refdata ids, padding, edge cases. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lf_clip_tokenizer.h"
#include "lf_error.h"
#include "lf_test_util.h"

static int s_setup(void **state)
{
    char path[1024];
    *state = NULL;
    if (!lf_test_refdata(path, sizeof path, "tokenizers/clip/bpe_simple_vocab_16e6.txt.gz")) return 0;
    lf_clip_tokenizer_t *t = NULL;
    char err[256];
    if (lf_clip_tokenizer_load(&t, path, err, sizeof err) != 0) {
        printf("load failed: %s\n", err);
        return -1;
    }
    *state = t;
    return 0;
}

static int s_teardown(void **state)
{
    lf_clip_tokenizer_t *t = *state;
    lf_clip_tokenizer_destroy(&t);
    return 0;
}

static void test_refdata_ids(void **state)
{
    lf_clip_tokenizer_t *t = *state;
    char path[1024];
    if (!t || !lf_test_refdata(path, sizeof path, "tokenizers/clip/ids.txt")) skip();
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char prompt[1024], ids_line[4096];
    int checked = 0;
    while (fgets(prompt, sizeof prompt, f)) {
        if (prompt[0] == '#' || prompt[0] == '\n') continue;
        prompt[strcspn(prompt, "\n")] = '\0';
        assert_non_null(fgets(ids_line, sizeof ids_line, f));
        int32_t want[128], got[LF_CLIP_CONTEXT];
        int nw = 0, off = 0, k;
        while (nw < 128 && sscanf(ids_line + off, "%d%n", &want[nw], &k) == 1) {
            off += k;
            nw++;
        }
        int n = lf_clip_tokenizer_encode_77(t, prompt, got);
        assert_int_equal(n + 2, nw);
        for (int i = 0; i < nw; i++)
            if (got[i] != want[i]) fail_msg("'%s' [%d]: got %d want %d", prompt, i, got[i], want[i]);
        for (int i = nw; i < LF_CLIP_CONTEXT; i++) assert_int_equal(got[i], LF_CLIP_EOS);
        checked++;
    }
    fclose(f);
    assert_int_equal(checked, 3);
}

static void test_vocab_and_edges(void **state)
{
    lf_clip_tokenizer_t *t = *state;
    if (!t) skip();
    /* CLIP construction: "!" is byte id 0, "!</w>" 256, the first merge 512. */
    assert_string_equal(lf_clip_tokenizer_token(t, 0), "!");
    assert_string_equal(lf_clip_tokenizer_token(t, 256), "!</w>");
    assert_string_equal(lf_clip_tokenizer_token(t, LF_CLIP_BOS), "<|startoftext|>");
    assert_int_equal(lf_clip_tokenizer_id(t, "cat</w>"), 2368);
    assert_int_equal(lf_clip_tokenizer_id(t, ",</w>"), 267);
    assert_null(lf_clip_tokenizer_token(t, LF_CLIP_VOCAB_SIZE));
    int32_t ids[LF_CLIP_CONTEXT];
    /* Case, whitespace and entities are normalised. */
    int32_t a[8], b[8];
    int na = lf_clip_tokenizer_encode(t, "a photo of a cat", a, 8);
    int nb = lf_clip_tokenizer_encode(t, "  A\tPHOTO \n of&#39;  a CAT ", b, 8);
    assert_int_equal(na, 5);
    assert_int_equal(nb, 6); /* "of'" splits as of + ' */
    assert_int_equal(lf_clip_tokenizer_encode(t, "", a, 8), 0);
    assert_int_equal(lf_clip_tokenizer_encode(t, "   ", a, 8), 0);
    /* Contractions and special tokens. */
    int n = lf_clip_tokenizer_encode(t, "it's<|endoftext|>", a, 8);
    assert_int_equal(n, 3);
    assert_int_equal(a[2], LF_CLIP_EOS);
    /* Numbers are single digits; long prompts truncate to 77 with EOS last. */
    assert_int_equal(lf_clip_tokenizer_encode(t, "2024", a, 8), 4);
    char longp[2000] = "";
    for (int i = 0; i < 100; i++) strcat(longp, "cat ");
    assert_int_equal(lf_clip_tokenizer_encode_77(t, longp, ids), 100);
    assert_int_equal(ids[0], LF_CLIP_BOS);
    assert_int_equal(ids[75], 2368);
    /* As HF truncation to 77: BOS, 75 tokens, EOS. */
    assert_int_equal(ids[76], LF_CLIP_EOS);
    /* Non-ASCII: accented letters stay in one word; invalid UTF-8 does not crash. */
    assert_true(lf_clip_tokenizer_encode(t, "Caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xff\xfe", a, 8) > 0);
    n = lf_clip_tokenizer_encode(t, "\xc3\x89T\xc3\x89", a, 8);
    int m = lf_clip_tokenizer_encode(t, "\xc3\xa9t\xc3\xa9", b, 8);
    assert_int_equal(n, m);
    assert_memory_equal(a, b, (size_t)n * sizeof a[0]);
    /* A 400-symbol run is one pre-token of many BPE tokens; no failure. */
    char run[401];
    memset(run, '~', 400);
    run[400] = '\0';
    assert_true(lf_clip_tokenizer_encode(t, run, NULL, 0) > 0);
    run[0] = 'x';
    assert_true(lf_clip_tokenizer_encode(t, run, NULL, 0) > 0);
}

static void test_bad_merges(void **state)
{
    lf_clip_tokenizer_t *t = NULL;
    char err[128];
    const char *m = "#version\na b\n";
    assert_int_equal(lf_clip_tokenizer_new(&t, m, strlen(m), NULL, 0, err, sizeof err), LF_EFORMAT);
    assert_non_null(strstr(err, "merges"));
    assert_null(t);
    assert_int_equal(lf_clip_tokenizer_new(&t, "x", 1, NULL, 0, err, sizeof err), LF_EFORMAT);
    assert_int_equal(lf_clip_tokenizer_load(&t, "/nonexistent", err, sizeof err), LF_EIO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refdata_ids),
        cmocka_unit_test(test_vocab_and_edges),
        cmocka_unit_test(test_bad_merges),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
