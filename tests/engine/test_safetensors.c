/* Tests for lf_safetensors: round trip, a table of bad headers, the real LoRA. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lf_error.h"
#include "lf_safetensors.h"
#include "lf_test_util.h"

/* Builds a file image: 8-byte length, the header text, data_len zero bytes. */
static unsigned char *s_image(const char *hdr, uint64_t declared, size_t data_len, size_t *len)
{
    size_t hl = strlen(hdr);
    *len = 8 + hl + data_len;
    unsigned char *b = calloc(1, *len);
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(declared >> (8 * i));
    memcpy(b + 8, hdr, hl);
    return b;
}

static void test_roundtrip(void **state)
{
    float a[6] = {1, 2, 3, 4, 5, 6};
    uint16_t h[3] = {0x3c00, 0xc000, 0x0001}; /* 1, -2, smallest subnormal */
    lf_tensor_info_t ts[3] = {
        {.name = "b.weight", .dtype = LF_DTYPE_F32, .ndim = 2, .shape = {2, 3}, .data = a},
        {.name = "a.half", .dtype = LF_DTYPE_F16, .ndim = 1, .shape = {3}, .data = h},
        {.name = "empty", .dtype = LF_DTYPE_BF16, .ndim = 2, .shape = {0, 4}, .data = NULL},
    };
    const char *meta[] = {"format", "pt", "note", "x,y"};
    void *buf;
    size_t len;
    assert_int_equal(lf_safetensors_serialize(ts, 3, meta, 2, &buf, &len), 0);
    assert_int_equal((8 + ((unsigned char *)buf)[0]) % 8, 0);
    lf_safetensors_t *st = NULL;
    char err[256];
    assert_int_equal(lf_safetensors_parse(&st, buf, len, "mem", err, sizeof err), 0);
    assert_int_equal(lf_safetensors_count(st), 3);
    assert_string_equal(lf_safetensors_at(st, 0)->name, "a.half"); /* sorted */
    const lf_tensor_info_t *t = lf_safetensors_find(st, "b.weight");
    assert_non_null(t);
    assert_int_equal(t->ndim, 2);
    assert_int_equal(t->shape[1], 3);
    assert_int_equal(t->strides[0], 3);
    assert_int_equal(t->nbytes, 24);
    assert_true(lf_tensorinfo_get_f32(t, 4) == 5.0f);
    t = lf_safetensors_find(st, "a.half");
    assert_true(lf_tensorinfo_get_f32(t, 0) == 1.0f);
    assert_true(lf_tensorinfo_get_f32(t, 1) == -2.0f);
    assert_true(lf_tensorinfo_get_f32(t, 2) == 5.9604644775390625e-8f);
    assert_int_equal(lf_safetensors_find(st, "empty")->nbytes, 0);
    assert_null(lf_safetensors_find(st, "nope"));
    assert_string_equal(lf_safetensors_metadata(st, "note"), "x,y");
    assert_null(lf_safetensors_metadata(st, "absent"));
    lf_safetensors_destroy(&st);
    assert_null(st);
    lf_safetensors_destroy(&st);

    /* The same through a file. */
    char path[] = "/tmp/lf_test_stXXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(lf_safetensors_write(path, ts, 3, NULL, 0), 0);
    assert_int_equal(lf_safetensors_open(&st, path, err, sizeof err), 0);
    assert_true(lf_tensorinfo_get_f32(lf_safetensors_find(st, "b.weight"), 5) == 6.0f);
    lf_safetensors_destroy(&st);
    unlink(path);
    free(buf);

    /* Duplicate names are refused by the writer. */
    ts[1].name = "b.weight";
    assert_int_equal(lf_safetensors_serialize(ts, 2, NULL, 0, &buf, &len), LF_EINVAL);
}

typedef struct {
    const char *hdr;
    int64_t declared; /* -1: the header's real length */
    size_t data_len;
    const char *want; /* a substring of the error message */
} bad_case_t;

static void test_bad_headers(void **state)
{
    static const bad_case_t cases[] = {
        {"{}", 1000, 0, "header length"},
        {"{}", 1, 0, "header length"},
        {"[1]", -1, 0, "not start with '{'"},
        {"{\"a\":", -1, 0, "header JSON"},
        {"{\"a\":1}", -1, 0, "tensor 'a': entry is not an object"},
        {"{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", -1, 4, "missing or non-string dtype"},
        {"{\"a\":{\"dtype\":\"F33\",\"shape\":[1],\"data_offsets\":[0,4]}}", -1, 4, "unknown dtype 'F33'"},
        {"{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", -1, 4, "non-array shape"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", -1, 4, "shape[0]"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", -1, 4, "shape[0]"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", -1, 4,
         "dimensions"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,4]}}", -1,
         4, "overflows"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", -1, 4, "not a pair"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}}", -1, 4, "begin 4 > end 0"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,8]}}", -1, 4, "beyond data area"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", -1, 8, "span 4"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
         -1, 8, "overlaps"},
        {"{\"__metadata__\":{\"k\":1}}", -1, 0, "__metadata__ value 'k'"},
        {"{\"__metadata__\":[]}", -1, 0, "__metadata__ is not an object"},
        {"{\"a\":{},\"a\":{}}", -1, 0, "duplicate"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,\"4\"]}}", -1, 4,
         "not non-negative integers"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t len;
        int64_t decl = cases[i].declared < 0 ? (int64_t)strlen(cases[i].hdr) : cases[i].declared;
        unsigned char *b = s_image(cases[i].hdr, (uint64_t)decl, cases[i].data_len, &len);
        lf_safetensors_t *st = NULL;
        char err[256];
        int rc = lf_safetensors_parse(&st, b, len, "bad.safetensors", err, sizeof err);
        if (rc != LF_EFORMAT || !strstr(err, cases[i].want) || !strstr(err, "bad.safetensors"))
            fail_msg("case %zu: rc %d err '%s' (want '%s')", i, rc, err, cases[i].want);
        assert_null(st);
        free(b);
    }
    /* Too short, and a good header with trailing padding and a hole. */
    lf_safetensors_t *st = NULL;
    char err[128];
    assert_int_equal(lf_safetensors_parse(&st, "abc", 3, NULL, err, sizeof err), LF_EFORMAT);
    size_t len;
    unsigned char *b;
    const char *h = "{\"a\":{\"dtype\":\"U8\",\"shape\":[],\"data_offsets\":[3,4]}}   ";
    b = s_image(h, strlen(h), 4, &len);
    b[len - 1] = 42;
    assert_int_equal(lf_safetensors_parse(&st, b, len, NULL, err, 0), 0);
    assert_int_equal(lf_safetensors_find(st, "a")->ndim, 0);
    assert_true(lf_tensorinfo_get_f32(lf_safetensors_find(st, "a"), 0) == 42.0f);
    lf_safetensors_destroy(&st);
    free(b);
    assert_int_equal(lf_safetensors_open(&st, "/nonexistent/x.safetensors", err, sizeof err), LF_EIO);
    assert_non_null(strstr(err, "/nonexistent/x.safetensors"));
}

static void test_real_lora(void **state)
{
    char path[1024];
    if (!lf_test_refdata(path, sizeof path, "lora/sd15_diffusers_lora_rank4.safetensors")) {
        skip();
    }
    lf_safetensors_t *st = NULL;
    char err[512];
    assert_int_equal(lf_safetensors_open(&st, path, err, sizeof err), 0);
    assert_int_equal(lf_safetensors_count(st), 256);
    for (size_t i = 0; i < lf_safetensors_count(st); i++) {
        const lf_tensor_info_t *t = lf_safetensors_at(st, i);
        assert_int_equal(t->dtype, LF_DTYPE_F32);
        assert_int_equal(t->ndim, 2);
        assert_non_null(strstr(t->name, "processor.to_"));
        /* rank 4: down weights are [4, in], up weights [out, 4] */
        if (strstr(t->name, "down.weight")) assert_int_equal(t->shape[0], 4);
        else assert_int_equal(t->shape[1], 4);
    }
    lf_safetensors_destroy(&st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_bad_headers),
        cmocka_unit_test(test_real_lora),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
