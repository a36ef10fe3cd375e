/* Tests for lf_infotext: A1111 format/parse round trips and PNG chunks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "lf_error.h"
#include "lf_infotext.h"

static void test_format(void **state)
{
    lf_infotext_kv_t p[] = {
        {"Steps", "20"},       {"Sampler", "Euler a"}, {"Schedule type", "Karras"},
        {"CFG scale", "7"},    {"Seed", "1"},          {"Size", "512x512"},
        {"Model", "name"},     {"Skipped", NULL},      {"Lora hashes", "a: 1, b: 2"},
        {"Flag", "Flag"},
    };
    char *s;
    assert_int_equal(lf_infotext_format("a cat", "blurry", p, 10, &s), 0);
    assert_string_equal(s, "a cat\nNegative prompt: blurry\nSteps: 20, Sampler: Euler a, Schedule type: Karras, "
                           "CFG scale: 7, Seed: 1, Size: 512x512, Model: name, "
                           "Lora hashes: \"a: 1, b: 2\", Flag");
    lf_infotext_t info;
    assert_int_equal(lf_infotext_parse(s, &info), 0);
    assert_string_equal(info.prompt, "a cat");
    assert_string_equal(info.negative, "blurry");
    assert_string_equal(lf_infotext_get(&info, "Sampler"), "Euler a");
    assert_string_equal(lf_infotext_get(&info, "Schedule type"), "Karras");
    assert_string_equal(lf_infotext_get(&info, "Size-1"), "512");
    assert_string_equal(lf_infotext_get(&info, "Size-2"), "512");
    assert_string_equal(lf_infotext_get(&info, "Lora hashes"), "a: 1, b: 2");
    assert_null(lf_infotext_get(&info, "Size"));
    assert_null(lf_infotext_get(&info, "Flag")); /* A1111 drops bare flags too */
    lf_infotext_clear(&info);
    free(s);
    /* No negative prompt; multi-line prompt. */
    assert_int_equal(lf_infotext_format("line one\nline two", NULL, p, 3, &s), 0);
    assert_string_equal(s, "line one\nline two\nSteps: 20, Sampler: Euler a, Schedule type: Karras");
    assert_int_equal(lf_infotext_parse(s, &info), 0);
    assert_string_equal(info.prompt, "line one\nline two");
    assert_string_equal(info.negative, "");
    assert_int_equal(info.n_params, 3);
    lf_infotext_clear(&info);
    free(s);
}

static void test_parse_edges(void **state)
{
    lf_infotext_t info;
    /* Fewer than 3 parameters: the last line is prompt text. */
    assert_int_equal(lf_infotext_parse("hello\nworld: yes", &info), 0);
    assert_string_equal(info.prompt, "hello\nworld: yes");
    assert_int_equal(info.n_params, 0);
    lf_infotext_clear(&info);
    /* Only parameters. */
    assert_int_equal(lf_infotext_parse("Steps: 5, Seed: 3, CFG scale: 1.5", &info), 0);
    assert_string_equal(info.prompt, "");
    assert_string_equal(lf_infotext_get(&info, "CFG scale"), "1.5");
    lf_infotext_clear(&info);
    /* Multi-line negative prompt, quoted value with escapes, odd spacing. */
    const char *t = "  p\nNegative prompt: n1\nn2\nSteps: 5,Seed:3, Note: \"a \\\"q\\\", b\\nc\", TI: x  ";
    assert_int_equal(lf_infotext_parse(t, &info), 0);
    assert_string_equal(info.prompt, "p");
    assert_string_equal(info.negative, "n1\nn2");
    assert_string_equal(lf_infotext_get(&info, "Seed"), "3");
    assert_string_equal(lf_infotext_get(&info, "Note"), "a \"q\", b\nc");
    assert_string_equal(lf_infotext_get(&info, "TI"), "x");
    lf_infotext_clear(&info);
    assert_int_equal(lf_infotext_parse("", &info), 0);
    assert_string_equal(info.prompt, "");
    lf_infotext_clear(&info);
}

static void test_png_chunks(void **state)
{
    unsigned char *c;
    size_t n;
    assert_int_equal(lf_infotext_png_chunk("parameters", "caf\xc3\xa9 1", &c, &n), 0);
    assert_memory_equal(c + 4, "tEXt", 4);
    assert_int_equal(n, 12 + 11 + 6);
    assert_int_equal(c[8 + 11 + 3], 0xE9); /* Latin-1 é */
    /* A PNG image: signature, our chunk, a CJK iTXt chunk, IEND. */
    unsigned char *c2;
    size_t n2;
    assert_int_equal(lf_infotext_png_chunk("other", "\xe6\x97\xa5", &c2, &n2), 0);
    assert_memory_equal(c2 + 4, "iTXt", 4);
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    static const unsigned char iend[12] = {0, 0, 0, 0, 'I', 'E', 'N', 'D', 0xAE, 0x42, 0x60, 0x82};
    unsigned char png[256];
    size_t len = 0;
    memcpy(png, sig, 8), len = 8;
    memcpy(png + len, c, n), len += n;
    memcpy(png + len, c2, n2), len += n2;
    memcpy(png + len, iend, 12), len += 12;
    char *txt;
    assert_int_equal(lf_infotext_png_find(png, len, "parameters", &txt), 0);
    assert_string_equal(txt, "caf\xc3\xa9 1");
    free(txt);
    assert_int_equal(lf_infotext_png_find(png, len, "other", &txt), 0);
    assert_string_equal(txt, "\xe6\x97\xa5");
    free(txt);
    assert_int_equal(lf_infotext_png_find(png, len, "missing", &txt), LF_ENOTFOUND);
    assert_int_equal(lf_infotext_png_find(png, 5, "x", &txt), LF_EFORMAT);
    png[8] = 0x7f; /* chunk length beyond the buffer */
    assert_int_equal(lf_infotext_png_find(png, len, "parameters", &txt), LF_EFORMAT);
    assert_int_equal(lf_infotext_png_chunk("", "x", &c2, &n2), LF_EINVAL);
    free(c);
    free(c2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_parse_edges),
        cmocka_unit_test(test_png_chunks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
