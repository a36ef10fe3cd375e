/* test_multipart: multipart/form-data bodies fed as bytes: fields and files
 * with their names, binary data with CRLFs and boundary lookalikes inside,
 * quoted and bare parameters, preamble and epilogue, and every malformed
 * body refused with its outputs untouched. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lf_error.h"
#include "lf_multipart.h"

#define CT "multipart/form-data; boundary=XyZ"

static int s_parse(const char *ct, const char *body, size_t len, lf_multipart_part_t *parts, size_t max, size_t *n) {
    /* A heap copy of exactly len bytes, so ASan sees any read past the end. */
    uint8_t *b = malloc(len ? len : 1);
    memcpy(b, body, len);
    int rc = lf_multipart_parse(ct, b, len, parts, max, n);
    /* Rebase the borrowed pointers onto the caller's literal before freeing. */
    if (rc == 0)
        for (size_t i = 0; i < *n; i++) parts[i].data = (const uint8_t *)body + (parts[i].data - b);
    free(b);
    return rc;
}

static void test_fields_and_files(void **state) {
    static const char body[] = "preamble to ignore\r\n"
                               "--XyZ\r\n"
                               "Content-Disposition: form-data; name=\"prompt\"\r\n"
                               "\r\n"
                               "a red door\r\n"
                               "--XyZ\r\n"
                               "content-disposition: form-data; name=\"image\"; filename=\"in \\\"1\\\".png\"\r\n"
                               "Content-Type: image/png\r\n"
                               "\r\n"
                               "\x89PNG\r\n\x00 --XyZ is no delimiter without a CRLF\r\n--Xy\r\n"
                               "--XyZ\r\n"
                               "Content-Disposition: form-data; name=n\r\n"
                               "\r\n"
                               "2\r\n"
                               "--XyZ\r\n"
                               "Content-Disposition: form-data; name=\"empty\"\r\n"
                               "\r\n"
                               "\r\n"
                               "--XyZ--\r\n"
                               "epilogue";
    lf_multipart_part_t p[8];
    size_t n = 0;
    assert_int_equal(s_parse(CT, body, sizeof body - 1, p, 8, &n), 0);
    assert_int_equal(n, 4);
    assert_string_equal(p[0].name, "prompt");
    assert_false(p[0].has_filename);
    assert_int_equal(p[0].len, 10);
    assert_memory_equal(p[0].data, "a red door", 10);
    assert_string_equal(p[1].name, "image");
    assert_true(p[1].has_filename);
    assert_string_equal(p[1].filename, "in \"1\".png");
    static const char img[] = "\x89PNG\r\n\x00 --XyZ is no delimiter without a CRLF\r\n--Xy";
    assert_int_equal(p[1].len, sizeof img - 1);
    assert_memory_equal(p[1].data, img, sizeof img - 1);
    assert_string_equal(p[2].name, "n");
    assert_int_equal(p[2].len, 1);
    assert_string_equal(p[3].name, "empty");
    assert_int_equal(p[3].len, 0);

    /* A quoted boundary, the first delimiter at the very start, no epilogue. */
    static const char b2[] = "--a:b c\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\n1\r\n--a:b c--";
    assert_int_equal(s_parse("Multipart/Form-Data; charset=utf-8; boundary=\"a:b c\"", b2, sizeof b2 - 1, p, 8, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(p[0].name, "x");

    assert_true(lf_multipart_is_form("multipart/form-data; boundary=x"));
    assert_true(lf_multipart_is_form("  MULTIPART/FORM-DATA"));
    assert_false(lf_multipart_is_form("multipart/form-database"));
    assert_false(lf_multipart_is_form("application/json"));
    assert_false(lf_multipart_is_form(NULL));
}

static void test_malformed(void **state) {
    static const struct {
        const char *ct, *body;
        int rc;
    } bad[] = {
        {"application/json", "--XyZ--", LF_EINVAL},
        {"multipart/form-data", "--XyZ--", LF_EINVAL},             /* no boundary */
        {"multipart/form-data; boundary=", "----", LF_EINVAL},     /* empty boundary */
        {CT, "", LF_EINVAL},                                       /* empty body */
        {CT, "no delimiter at all", LF_EINVAL},
        {CT, "--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nunterminated", LF_EINVAL},
        {CT, "--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nx\r\n--XyZ", LF_EINVAL}, /* no closing -- */
        {CT, "--XyZ\r\nContent-Disposition: form-data\r\n\r\nx\r\n--XyZ--", LF_EINVAL},         /* no name */
        {CT, "--XyZ\r\nContent-Disposition: form-data; name=\"\"\r\n\r\nx\r\n--XyZ--", LF_EINVAL},
        {CT, "--XyZ\r\nContent-Disposition: attachment; name=\"a\"\r\n\r\nx\r\n--XyZ--", LF_EINVAL},
        {CT, "--XyZ\r\nContent-Type: text/plain\r\n\r\nx\r\n--XyZ--", LF_EINVAL},                 /* no disposition */
        {CT, "--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n", LF_EINVAL},               /* headers cut */
        {CT, "--XyZgarbage\r\n", LF_EINVAL},
        {CT,
         "--XyZ\r\nContent-Disposition: form-data; name=\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"\r\n"
         "\r\nx\r\n--XyZ--",
         LF_EINVAL}, /* a name longer than LF_MULTIPART_NAME_MAX */
        {CT,
         "--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n"
         "--XyZ\r\nContent-Disposition: form-data; name=\"b\"\r\n\r\n2\r\n"
         "--XyZ\r\nContent-Disposition: form-data; name=\"c\"\r\n\r\n3\r\n--XyZ--",
         LF_ELIMIT}, /* three parts, room for two */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        lf_multipart_part_t p[2];
        memset(p, 0x5a, sizeof p);
        size_t n = 99;
        int rc = s_parse(bad[i].ct, bad[i].body, strlen(bad[i].body), p, 2, &n);
        if (rc != bad[i].rc) fail_msg("case %zu: got %d, expected %d", i, rc, bad[i].rc);
        assert_int_equal(n, 99);
        assert_int_equal((unsigned char)p[0].name[0], 0x5a);
    }
    /* Every prefix of a good body is refused or parsed, never read past. */
    static const char good[] = "--XyZ\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\n\r\n"
                               "data\r\n--XyZ--\r\n";
    for (size_t l = 0; l < sizeof good - 1; l++) {
        lf_multipart_part_t p[2];
        size_t n = 0;
        int rc = s_parse(CT, good, l, p, 2, &n);
        if (l < sizeof good - 3) assert_int_equal(rc, LF_EINVAL);
        else assert_int_equal(rc, 0);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fields_and_files),
        cmocka_unit_test(test_malformed),
    };
    return cmocka_run_group_tests_name("gateway_multipart", tests, NULL, NULL);
}
