/* Tests for lf_prompt: A1111's documented parse examples, chunking. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lf_error.h"
#include "lf_prompt.h"
#include "lf_test_util.h"

typedef struct {
    const char *text;
    double weight;
} want_t;

typedef struct {
    const char *prompt;
    want_t want[12];
} case_t;

static void test_parse_table(void **state)
{
    /* The examples of A1111's parse_prompt_attention docstring, plus edges. */
    static const case_t cases[] = {
        {"normal text", {{"normal text", 1.0}}},
        {"an (important) word", {{"an ", 1.0}, {"important", 1.1}, {" word", 1.0}}},
        {"(unbalanced", {{"unbalanced", 1.1}}},
        {"\\(literal\\]", {{"(literal]", 1.0}}},
        {"(unnecessary)(parens)", {{"unnecessaryparens", 1.1}}},
        {"a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).",
         {{"a ", 1.0},
          {"house", 1.5730000000000004},
          {" ", 1.1},
          {"on", 1.0},
          {" a ", 1.1},
          {"hill", 0.55},
          {", sun, ", 1.1},
          {"sky", 1.4641000000000006},
          {".", 1.1}}},
        {"", {{"", 1.0}}},
        {"a BREAK b", {{"a", 1.0}, {"BREAK", -1.0}, {"b", 1.0}}},
        {"BREAKFAST BREAK", {{"BREAKFAST", 1.0}, {"BREAK", -1.0}, {"", 1.0}}},
        {"x) y] z:", {{"x) y] z:", 1.0}}},
        {"[x]", {{"x", 1 / 1.1}}},
        {"(x : 1.5 )", {{"x ", 1.5}}},
        {"(x:1.2.3)", {{"x:1.2.3)", 1.1}}},
        {"a\\b \\\\", {{"ab \\", 1.0}}},
        {"((a)", {{"a", 1.2100000000000002}}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        lf_prompt_span_t *s;
        size_t n;
        assert_int_equal(lf_prompt_parse(cases[c].prompt, &s, &n), 0);
        size_t nw = 0;
        while (nw < 12 && cases[c].want[nw].text) nw++;
        if (n != nw) fail_msg("'%s': %zu spans, want %zu", cases[c].prompt, n, nw);
        for (size_t i = 0; i < n; i++) {
            if (strcmp(s[i].text, cases[c].want[i].text) != 0 || s[i].weight != cases[c].want[i].weight)
                fail_msg("'%s' [%zu]: got ('%s', %.17g) want ('%s', %.17g)", cases[c].prompt, i,
                         s[i].text, s[i].weight, cases[c].want[i].text, cases[c].want[i].weight);
        }
        lf_prompt_spans_free(&s, n);
        assert_null(s);
    }
}

static void test_chunks(void **state)
{
    char path[1024];
    if (!lf_test_refdata(path, sizeof path, "tokenizers/clip/bpe_simple_vocab_16e6.txt.gz")) skip();
    lf_clip_tokenizer_t *tok;
    char err[128];
    assert_int_equal(lf_clip_tokenizer_load(&tok, path, err, sizeof err), 0);
    lf_prompt_chunk_t *ch;
    size_t n;
    int count;
    assert_int_equal(lf_prompt_chunks(tok, "a photo of a (cat:1.5)", 20, &ch, &n, &count), 0);
    assert_int_equal(n, 1);
    assert_int_equal(count, 5);
    static const int32_t want[] = {49406, 320, 1125, 539, 320, 2368, 49407, 49407};
    assert_memory_equal(ch[0].ids, want, sizeof want);
    assert_true(ch[0].weights[5] == 1.5f && ch[0].weights[4] == 1.0f && ch[0].weights[6] == 1.0f);
    assert_int_equal(ch[0].ids[76], LF_CLIP_EOS);
    free(ch);

    assert_int_equal(lf_prompt_chunks(tok, "", 20, &ch, &n, &count), 0);
    assert_int_equal(n, 1);
    assert_int_equal(count, 0);
    assert_int_equal(ch[0].ids[1], LF_CLIP_EOS);
    free(ch);

    assert_int_equal(lf_prompt_chunks(tok, "a cat BREAK a dog", 20, &ch, &n, &count), 0);
    assert_int_equal(n, 2);
    assert_int_equal(count, 75 + 2);
    assert_int_equal(ch[0].ids[3], LF_CLIP_EOS);
    assert_int_equal(ch[1].ids[1], 320);
    free(ch);

    /* 80 tokens: 75 + 5. */
    char p[4096] = "";
    for (int i = 0; i < 80; i++) strcat(p, "cat ");
    assert_int_equal(lf_prompt_chunks(tok, p, 20, &ch, &n, &count), 0);
    assert_int_equal(n, 2);
    assert_int_equal(count, 80);
    assert_int_equal(ch[0].ids[75], 2368);
    assert_int_equal(ch[1].ids[5], 2368);
    assert_int_equal(ch[1].ids[6], LF_CLIP_EOS);
    free(ch);

    /* Comma backtracking: 70 cats, a comma, 10 cats. The 4 tokens after the
     * comma move to the second chunk; without backtracking they stay. */
    p[0] = '\0';
    for (int i = 0; i < 70; i++) strcat(p, "cat ");
    strcat(p, ", ");
    for (int i = 0; i < 10; i++) strcat(p, "cat ");
    assert_int_equal(lf_prompt_chunks(tok, p, 20, &ch, &n, &count), 0);
    assert_int_equal(n, 2);
    assert_int_equal(ch[0].ids[71], 267);
    assert_int_equal(ch[0].ids[72], LF_CLIP_EOS);
    assert_int_equal(ch[1].ids[10], 2368);
    assert_int_equal(ch[1].ids[11], LF_CLIP_EOS);
    free(ch);
    assert_int_equal(lf_prompt_chunks(tok, p, 0, &ch, &n, &count), 0);
    assert_int_equal(ch[0].ids[72], 2368);
    assert_int_equal(ch[1].ids[6], 2368);
    assert_int_equal(ch[1].ids[7], LF_CLIP_EOS);
    free(ch);
    lf_clip_tokenizer_destroy(&tok);
}


typedef struct {
    const char *kind, *name;
    double te, unet;
    int dyn;
} want_extra_t;

typedef struct {
    const char *prompt, *text;
    want_extra_t want[4];
} extract_case_t;

static void test_extract_table(void **state)
{
    /* A1111: <(\w+):([^>]+)> is cut out; lora args are name[:te[:unet[:dyn]]]
     * with te=/unet=/dyn= named forms; unet defaults to te. */
    static const extract_case_t cases[] = {
        {"a photo", "a photo", {{0}}},
        {"a <lora:x:0.5> photo", "a  photo", {{"lora", "x", 0.5, 0.5, 0}}},
        {"<lora:x>", "", {{"lora", "x", 1.0, 1.0, 0}}},
        {"<lora:x:0.3:0.7>cat", "cat", {{"lora", "x", 0.3, 0.7, 0}}},
        {"<lora:x:1:2:8>", "", {{"lora", "x", 1.0, 2.0, 8}}},
        {"<lora:x:te=0.25:unet=-1.5>", "", {{"lora", "x", 0.25, -1.5, 0}}},
        {"<lora:x: 0.5 >", "", {{"lora", "x", 0.5, 0.5, 0}}},
        {"<lora:x:1e-1:unet=2:dyn=4>", "", {{"lora", "x", 0.1, 2.0, 4}}},
        {"<lyco:sub/dir/y:0.8>", "", {{"lyco", "sub/dir/y", 0.8, 0.8, 0}}},
        {"(a:1.2) <lora:a:1> and <lora:b:0.5> <lora:a:1>", "(a:1.2)  and  ",
         {{"lora", "a", 1, 1, 0}, {"lora", "b", 0.5, 0.5, 0}, {"lora", "a", 1, 1, 0}}},
        {"<hypernet:h:0.5> x", " x", {{"hypernet", "h", 0, 0, 0}}},
        /* Not tags for A1111's regex: stay as text. */
        {"<lora:>", "<lora:>", {{0}}},
        {"<lora name:1>", "<lora name:1>", {{0}}},
        {"<:x:1>", "<:x:1>", {{0}}},
        {"<lora:x:1", "<lora:x:1", {{0}}},
        {"lora:x:1>", "lora:x:1>", {{0}}},
        {"<<lora:x:1>>", "<>", {{"lora", "x", 1, 1, 0}}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        char *text, err[160] = "";
        lf_prompt_extra_t *x;
        size_t n;
        int rc = lf_prompt_extract(cases[c].prompt, &text, &x, &n, err, sizeof err);
        if (rc != 0) fail_msg("'%s': rc %d (%s)", cases[c].prompt, rc, err);
        if (strcmp(text, cases[c].text) != 0)
            fail_msg("'%s': text '%s' want '%s'", cases[c].prompt, text, cases[c].text);
        size_t nw = 0;
        while (nw < 4 && cases[c].want[nw].kind) nw++;
        if (n != nw) fail_msg("'%s': %zu tags, want %zu", cases[c].prompt, n, nw);
        for (size_t i = 0; i < n; i++) {
            const want_extra_t *w = &cases[c].want[i];
            if (strcmp(x[i].kind, w->kind) || strcmp(x[i].name, w->name))
                fail_msg("'%s' [%zu]: %s:%s", cases[c].prompt, i, x[i].kind, x[i].name);
            if (x[i].is_lora && (x[i].te_weight != w->te || x[i].unet_weight != w->unet ||
                                 x[i].dyn != w->dyn))
                fail_msg("'%s' [%zu]: te %g unet %g dyn %d", cases[c].prompt, i, x[i].te_weight,
                         x[i].unet_weight, x[i].dyn);
        }
        free(text);
        lf_prompt_extras_free(&x, n);
        assert_null(x);
    }
}

static void test_extract_errors(void **state)
{
    static const char *const bad[] = {
        "a <lora:x:abc> b", "<lora:x:nan>", "<lora:x:inf>", "<lora::1>", "<lora:x:1:0x2>",
        "<lora:x:te=>", "<lora:x:1:1:2.5>", "<lyco:te=1>",
    };
    for (size_t c = 0; c < sizeof bad / sizeof bad[0]; c++) {
        char *text = (char *)"untouched", err[160] = "";
        lf_prompt_extra_t *x = (lf_prompt_extra_t *)&text;
        size_t n = 99;
        int rc = lf_prompt_extract(bad[c], &text, &x, &n, err, sizeof err);
        if (rc != LF_EINVAL) fail_msg("'%s': rc %d, want LF_EINVAL", bad[c], rc);
        if (!strstr(err, "<l")) fail_msg("'%s': error '%s' does not quote the tag", bad[c], err);
        assert_string_equal(text, "untouched");
        assert_int_equal(n, 99);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_table),
        cmocka_unit_test(test_extract_table),
        cmocka_unit_test(test_extract_errors),
        cmocka_unit_test(test_chunks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
