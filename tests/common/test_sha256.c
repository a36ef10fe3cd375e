/* Tests of lf_sha256: FIPS 180-2 appendix B vectors and A1111's LoRA hash of
 * a fixture file (hashlib's digests of the same bytes). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lf_error.h"
#include "lf_sha256.h"

static void test_vectors(void **state)
{
    (void)state;
    char hex[65];
    lf_sha256_hex("", 0, hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    lf_sha256_hex("abc", 3, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    lf_sha256_hex(two, strlen(two), hex);
    assert_string_equal(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    /* A million 'a', fed in uneven pieces (buffer boundaries). */
    lf_sha256_t s;
    lf_sha256_init(&s);
    char a[1000];
    memset(a, 'a', sizeof a);
    size_t left = 1000000, k = 1;
    while (left) {
        size_t n = k % 997 + 1;
        if (n > left) n = left;
        lf_sha256_update(&s, a, n);
        left -= n, k = k * 7 + 3;
    }
    uint8_t d[32];
    lf_sha256_final(&s, d);
    assert_int_equal(d[0], 0xcd);
    assert_int_equal(d[31], 0xd0);
}

/* RFC 4231 test cases 1, 2 and 6 (a key longer than the block). */
static void test_hmac(void **state)
{
    (void)state;
    uint8_t mac[32], key[131];
    char hex[65];
    static const char digits[] = "0123456789abcdef";
#define HEX(m)                                                                                    \
    do {                                                                                          \
        for (int i = 0; i < 32; i++) hex[2 * i] = digits[(m)[i] >> 4], hex[2 * i + 1] = digits[(m)[i] & 15]; \
        hex[64] = 0;                                                                              \
    } while (0)
    memset(key, 0x0b, 20);
    lf_sha256_hmac(key, 20, "Hi There", 8, mac);
    HEX(mac);
    assert_string_equal(hex, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
    const char *d2 = "what do ya want for nothing?";
    lf_sha256_hmac("Jefe", 4, d2, strlen(d2), mac);
    HEX(mac);
    assert_string_equal(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    memset(key, 0xaa, sizeof key);
    const char *d6 = "Test Using Larger Than Block-Size Key - Hash Key First";
    lf_sha256_hmac(key, sizeof key, d6, strlen(d6), mac);
    HEX(mac);
    assert_string_equal(hex, "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
#undef HEX
}

static void test_file(void **state)
{
    (void)state;
    char hex[65], err[256];
    const char *p = LF_FIXTURE_LORA "/kohya.safetensors";
    assert_int_equal(lf_sha256_file(p, 0, hex, err, sizeof err), 0);
    assert_string_equal(hex, "6c926b7ce1142b697d3329bc329af16f1ed24b9abc52c1c110727c4d394f46f0");
    /* A1111's LoRA hash: the bytes after the safetensors header. */
    assert_int_equal(lf_sha256_file(p, 1, hex, err, sizeof err), 0);
    assert_string_equal(hex, "a98600a90e0fa3448bcc7b158d09c9083053a22152df58124950e06d7578507e");
    assert_int_equal(lf_sha256_file("/nonexistent/x", 0, hex, err, sizeof err), LF_EIO);
    assert_non_null(strstr(err, "/nonexistent/x"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_vectors),
        cmocka_unit_test(test_hmac), cmocka_unit_test(test_file)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
