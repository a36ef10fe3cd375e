/* Tests of lf_sigv4 against botocore's signer (tests/common/fixtures/
 * sigv4_vectors.txt, made by tests/reference/make_sigv4_vectors.py) and
 * against AWS's published answers written out here: the SigV4 test suite's
 * "get-vanilla" and the S3 documentation's GET-with-Range example. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lf_error.h"
#include "lf_sigv4.h"

/* AWS's SigV4 test suite, get-vanilla: the request, its canonical form,
 * string to sign and Authorization header as published. */
static void test_get_vanilla_published(void **state) {
    (void)state;
    lf_sigv4_header_t h[] = {{"X-Amz-Date", "20150830T123600Z"}, {"Host", "example.amazonaws.com"}};
    lf_sigv4_request_t r = {.method = "GET", .path = "/", .query = "", .headers = h, .n_headers = 2,
                            .payload_sha256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                            .access_key = "AKIDEXAMPLE",
                            .secret_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                            .region = "us-east-1", .service = "service", .amz_date = "20150830T123600Z"};
    char buf[1024];
    assert_int_equal(lf_sigv4_canonical(&r, buf, sizeof buf), 0);
    assert_string_equal(buf, "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"
                             "host;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    assert_int_equal(lf_sigv4_string_to_sign(&r, buf, sizeof buf), 0);
    assert_string_equal(buf, "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
                             "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63");
    assert_int_equal(lf_sigv4_sign(&r, buf, sizeof buf), 0);
    assert_string_equal(buf, "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
                             "SignedHeaders=host;x-amz-date, "
                             "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
    /* Blanks around and inside a value are trimmed and folded (the suite's
     * get-header-value-trim rule): the signature does not change. */
    lf_sigv4_header_t h2[] = {{"x-amz-date", "  20150830T123600Z "}, {"HOST", "example.amazonaws.com"}};
    r.headers = h2;
    char buf2[1024];
    assert_int_equal(lf_sigv4_sign(&r, buf2, sizeof buf2), 0);
    assert_string_equal(buf, buf2);
    /* Too small a buffer, a bad date, a duplicated header. */
    assert_int_equal(lf_sigv4_sign(&r, buf2, 40), LF_ETOOBIG);
    r.amz_date = "2015-08-30";
    assert_int_equal(lf_sigv4_sign(&r, buf2, sizeof buf2), LF_EINVAL);
    r.amz_date = "20150830T123600Z";
    lf_sigv4_header_t h3[] = {{"Host", "a"}, {"host", "b"}};
    r.headers = h3;
    assert_int_equal(lf_sigv4_canonical(&r, buf2, sizeof buf2), LF_EINVAL);
}

/* AWS's S3 SigV4 documentation: GET /test.txt with Range bytes=0-9. */
static void test_s3_doc_published(void **state) {
    (void)state;
    const char *empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    lf_sigv4_header_t h[] = {{"Host", "examplebucket.s3.amazonaws.com"}, {"Range", "bytes=0-9"},
                             {"x-amz-content-sha256", empty}, {"x-amz-date", "20130524T000000Z"}};
    lf_sigv4_request_t r = {.method = "GET", .path = "/test.txt", .headers = h, .n_headers = 4,
                            .payload_sha256 = empty, .access_key = "AKIAIOSFODNN7EXAMPLE",
                            .secret_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                            .region = "us-east-1", .service = "s3", .amz_date = "20130524T000000Z"};
    char buf[1024];
    assert_int_equal(lf_sigv4_sign(&r, buf, sizeof buf), 0);
    assert_non_null(strstr(buf, "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"));
}

static void s_unescape(char *s) {
    char *w = s;
    for (char *p = s; *p; p++) {
        if (*p == '\\' && p[1] == 'n') *w++ = '\n', p++;
        else if (*p == '\\' && p[1] == '\\') *w++ = '\\', p++;
        else *w++ = *p;
    }
    *w = '\0';
}

/* Every record of the botocore fixture: canonical request, string to sign
 * and Authorization header equal, byte for byte. */
static void test_botocore_vectors(void **state) {
    (void)state;
    FILE *f = fopen(LF_FIXTURE_DIR "/sigv4_vectors.txt", "r");
    assert_non_null(f);
    enum { F_NAME, F_METHOD, F_PATH, F_QUERY, F_PAYLOAD, F_ACCESS, F_SECRET, F_REGION, F_SERVICE,
           F_DATE, F_CANON, F_STS, F_AUTH, F__N };
    static const char *names[F__N] = {"name", "method", "path", "query", "payload", "access", "secret",
                                      "region", "service", "date", "canonical", "sts", "auth"};
    char *field[F__N] = {0};
    char *hn[32] = {0}, *hv[32] = {0};
    size_t nh = 0, records = 0;
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    bool more = true;
    while (more) {
        got = getline(&line, &cap, f);
        more = got >= 0;
        if (more && line[got - 1] == '\n') line[--got] = '\0';
        if (more && line[0] == '#') continue;
        if (!more || !strcmp(line, "%%")) {
            for (int i = 0; i < F__N; i++) assert_non_null(field[i]);
            lf_sigv4_header_t h[32];
            for (size_t i = 0; i < nh; i++) h[i] = (lf_sigv4_header_t){hn[i], hv[i]};
            lf_sigv4_request_t r = {.method = field[F_METHOD], .path = field[F_PATH], .query = field[F_QUERY],
                                    .headers = h, .n_headers = nh, .payload_sha256 = field[F_PAYLOAD],
                                    .access_key = field[F_ACCESS], .secret_key = field[F_SECRET],
                                    .region = field[F_REGION], .service = field[F_SERVICE],
                                    .amz_date = field[F_DATE]};
            char buf[4096];
            print_message("sigv4 vector %s\n", field[F_NAME]);
            assert_int_equal(lf_sigv4_canonical(&r, buf, sizeof buf), 0);
            assert_string_equal(buf, field[F_CANON]);
            assert_int_equal(lf_sigv4_string_to_sign(&r, buf, sizeof buf), 0);
            assert_string_equal(buf, field[F_STS]);
            assert_int_equal(lf_sigv4_sign(&r, buf, sizeof buf), 0);
            assert_string_equal(buf, field[F_AUTH]);
            records++;
            for (int i = 0; i < F__N; i++) free(field[i]), field[i] = NULL;
            for (size_t i = 0; i < nh; i++) free(hn[i]), free(hv[i]);
            nh = 0;
            continue;
        }
        char *tab = strchr(line, '\t');
        assert_non_null(tab);
        *tab = '\0';
        char *val = tab + 1;
        if (!strcmp(line, "header")) {
            char *t2 = strchr(val, '\t');
            assert_non_null(t2);
            *t2 = '\0';
            assert_true(nh < 32);
            hn[nh] = strdup(val);
            hv[nh] = strdup(t2 + 1);
            s_unescape(hv[nh++]);
            continue;
        }
        int k = -1;
        for (int i = 0; i < F__N; i++)
            if (!strcmp(line, names[i])) k = i;
        assert_true(k >= 0);
        field[k] = strdup(val);
        s_unescape(field[k]);
    }
    free(line);
    fclose(f);
    assert_true(records >= 6);
}

static void test_uri_encode(void **state) {
    (void)state;
    char out[128];
    assert_int_equal(lf_sigv4_uri_encode("lf-images/farm one/job\xc3\xa9-0.png", true, out, sizeof out), 0);
    assert_string_equal(out, "lf-images/farm%20one/job%C3%A9-0.png");
    assert_int_equal(lf_sigv4_uri_encode("a/b~c_d.e+f=", false, out, sizeof out), 0);
    assert_string_equal(out, "a%2Fb~c_d.e%2Bf%3D");
    assert_int_equal(lf_sigv4_uri_encode("abcdef", false, out, 4), LF_ETOOBIG);
    char d[17];
    lf_sigv4_amz_date(1440938160, d);
    assert_string_equal(d, "20150830T123600Z");
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_get_vanilla_published),
                                       cmocka_unit_test(test_s3_doc_published),
                                       cmocka_unit_test(test_botocore_vectors),
                                       cmocka_unit_test(test_uri_encode)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
