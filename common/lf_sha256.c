/* lf_sha256: SHA-256 as FIPS 180-4 section 6.2 describes it. */
#include "lf_sha256.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lf_error.h"

static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static uint32_t s_rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

static void s_block(uint32_t h[8], const uint8_t *p)
{
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = s_rotr(w[i - 15], 7) ^ s_rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = s_rotr(w[i - 2], 17) ^ s_rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], k = h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = k + (s_rotr(e, 6) ^ s_rotr(e, 11) ^ s_rotr(e, 25)) + ((e & f) ^ (~e & g)) +
                      K[i] + w[i];
        uint32_t t2 = (s_rotr(a, 2) ^ s_rotr(a, 13) ^ s_rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        k = g, g = f, f = e, e = d + t1, d = c, c = b, b = a, a = t1 + t2;
    }
    h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e, h[5] += f, h[6] += g, h[7] += k;
}

void lf_sha256_init(lf_sha256_t *s)
{
    static const uint32_t H0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(s->h, H0, sizeof H0);
    s->len = 0;
    s->nbuf = 0;
}

void lf_sha256_update(lf_sha256_t *s, const void *data, size_t n)
{
    const uint8_t *p = data;
    s->len += n;
    if (s->nbuf) {
        size_t take = 64 - s->nbuf < n ? 64 - s->nbuf : n;
        memcpy(s->buf + s->nbuf, p, take);
        s->nbuf += take, p += take, n -= take;
        if (s->nbuf < 64) return;
        s_block(s->h, s->buf);
        s->nbuf = 0;
    }
    for (; n >= 64; p += 64, n -= 64) s_block(s->h, p);
    memcpy(s->buf, p, n);
    s->nbuf = n;
}

void lf_sha256_final(lf_sha256_t *s, uint8_t digest[32])
{
    uint64_t bits = s->len * 8;
    uint8_t pad[72] = {0x80};
    size_t np = (s->nbuf < 56 ? 56 : 120) - s->nbuf;
    for (int i = 0; i < 8; i++) pad[np + i] = (uint8_t)(bits >> (56 - 8 * i));
    lf_sha256_update(s, pad, np + 8);
    for (int i = 0; i < 8; i++)
        for (int j = 0; j < 4; j++) digest[4 * i + j] = (uint8_t)(s->h[i] >> (24 - 8 * j));
}

static void s_hex(const uint8_t d[32], char hex[65])
{
    static const char x[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) hex[2 * i] = x[d[i] >> 4], hex[2 * i + 1] = x[d[i] & 15];
    hex[64] = '\0';
}

void lf_sha256_hex(const void *data, size_t n, char hex[65])
{
    lf_sha256_t s;
    uint8_t d[32];
    lf_sha256_init(&s);
    lf_sha256_update(&s, data, n);
    lf_sha256_final(&s, d);
    s_hex(d, hex);
}

void lf_sha256_hmac(const void *key, size_t keylen, const void *data, size_t n, uint8_t mac[32])
{
    uint8_t k[64] = {0}, pad[64], inner[32];
    if (keylen > sizeof k) {
        lf_sha256_t s;
        lf_sha256_init(&s);
        lf_sha256_update(&s, key, keylen);
        lf_sha256_final(&s, k);
    } else if (keylen) {
        memcpy(k, key, keylen);
    }
    lf_sha256_t s;
    for (int i = 0; i < 64; i++) pad[i] = k[i] ^ 0x36;
    lf_sha256_init(&s);
    lf_sha256_update(&s, pad, 64);
    lf_sha256_update(&s, data, n);
    lf_sha256_final(&s, inner);
    for (int i = 0; i < 64; i++) pad[i] = k[i] ^ 0x5c;
    lf_sha256_init(&s);
    lf_sha256_update(&s, pad, 64);
    lf_sha256_update(&s, inner, 32);
    lf_sha256_final(&s, mac);
}

int lf_sha256_file(const char *path, int skip_safetensors_header, char hex[65], char *err,
                   size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (err && errlen) snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return LF_EIO;
    }
    int rc = 0;
    if (skip_safetensors_header) {
        uint8_t h8[8];
        uint64_t n = 0;
        if (fread(h8, 1, 8, f) != 8) rc = LF_EFORMAT;
        for (int i = 0; i < 8; i++) n |= (uint64_t)h8[i] << (8 * i);
        struct stat sb;
        if (!rc && (fstat(fileno(f), &sb) != 0 || n > (uint64_t)sb.st_size - 8 ||
                    fseeko(f, (off_t)(8 + n), SEEK_SET) != 0))
            rc = LF_EFORMAT;
        if (rc && err && errlen) snprintf(err, errlen, "%s: not a safetensors file (header)", path);
    }
    lf_sha256_t s;
    lf_sha256_init(&s);
    uint8_t *buf = rc ? NULL : malloc(1 << 20);
    if (!rc && !buf) rc = LF_ENOMEM;
    size_t got;
    while (!rc && (got = fread(buf, 1, 1 << 20, f)) > 0) lf_sha256_update(&s, buf, got);
    if (!rc && ferror(f)) {
        rc = LF_EIO;
        if (err && errlen) snprintf(err, errlen, "%s: read error", path);
    }
    free(buf);
    fclose(f);
    if (rc) return rc;
    uint8_t d[32];
    lf_sha256_final(&s, d);
    s_hex(d, hex);
    return 0;
}
