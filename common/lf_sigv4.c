/* lf_sigv4: AWS Signature Version 4 (see lf_sigv4.h). */
#include "lf_sigv4.h"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "lf_error.h"
#include "lf_sha256.h"

#define S_MAX_HEADERS 32

/* An output buffer that remembers overflow instead of failing at each step. */
typedef struct {
    char *p;
    size_t n, size;
    bool full;
} s_buf_t;

static void s_put(s_buf_t *b, const char *s, size_t n) {
    if (b->full || b->n + n >= b->size) {
        b->full = true;
        return;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}
static void s_puts(s_buf_t *b, const char *s) { s_put(b, s, strlen(s)); }

static void s_hex(const uint8_t *d, size_t n, char *out) {
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) out[2 * i] = digits[d[i] >> 4], out[2 * i + 1] = digits[d[i] & 15];
    out[2 * n] = '\0';
}

static bool s_date_ok(const char *d) {
    if (!d || strlen(d) != 16 || d[8] != 'T' || d[15] != 'Z') return false;
    for (int i = 0; i < 15; i++)
        if (i != 8 && !isdigit((unsigned char)d[i])) return false;
    return true;
}

static bool s_valid(const lf_sigv4_request_t *r) {
    if (!r || !r->method || !*r->method || !r->path || r->path[0] != '/' || !r->payload_sha256 ||
        !r->access_key || !*r->access_key || !r->secret_key || !r->region || !*r->region ||
        !r->service || !*r->service || !s_date_ok(r->amz_date) || r->n_headers > S_MAX_HEADERS ||
        (r->n_headers && !r->headers))
        return false;
    for (size_t i = 0; i < r->n_headers; i++)
        if (!r->headers[i].name || !*r->headers[i].name || !r->headers[i].value) return false;
    return true;
}

static int s_cmp_name(const void *a, const void *b) {
    const lf_sigv4_header_t *x = *(const lf_sigv4_header_t *const *)a;
    const lf_sigv4_header_t *y = *(const lf_sigv4_header_t *const *)b;
    return strcasecmp(x->name, y->name);
}

/* The headers sorted by lower-cased name (strcasecmp orders letters as
 * lower case would, and the other characters allowed in names compare the
 * same either way). */
static void s_sorted(const lf_sigv4_request_t *r, const lf_sigv4_header_t **out) {
    for (size_t i = 0; i < r->n_headers; i++) out[i] = &r->headers[i];
    qsort(out, r->n_headers, sizeof *out, s_cmp_name);
}

static void s_lower(s_buf_t *b, const char *s) {
    for (; *s; s++) {
        char c = (char)tolower((unsigned char)*s);
        s_put(b, &c, 1);
    }
}

/* "host;x-amz-date" */
static void s_signed_list(s_buf_t *b, const lf_sigv4_header_t *const *h, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (i) s_puts(b, ";");
        s_lower(b, h[i]->name);
    }
}

int lf_sigv4_canonical(const lf_sigv4_request_t *r, char *buf, size_t size) {
    if (!s_valid(r) || !buf || !size) return LF_EINVAL;
    const lf_sigv4_header_t *h[S_MAX_HEADERS];
    s_sorted(r, h);
    for (size_t i = 1; i < r->n_headers; i++)
        if (!strcasecmp(h[i - 1]->name, h[i]->name)) return LF_EINVAL;
    s_buf_t b = {buf, 0, size, false};
    buf[0] = '\0';
    s_puts(&b, r->method);
    s_puts(&b, "\n");
    s_puts(&b, r->path);
    s_puts(&b, "\n");
    s_puts(&b, r->query ? r->query : "");
    s_puts(&b, "\n");
    for (size_t i = 0; i < r->n_headers; i++) {
        s_lower(&b, h[i]->name);
        s_puts(&b, ":");
        /* Trim, and fold inner runs of blanks into one space. */
        const char *v = h[i]->value;
        while (*v == ' ' || *v == '\t') v++;
        bool blank = false;
        for (; *v; v++) {
            if (*v == ' ' || *v == '\t') {
                blank = true;
                continue;
            }
            if (blank) s_puts(&b, " ");
            blank = false;
            s_put(&b, v, 1);
        }
        s_puts(&b, "\n");
    }
    s_puts(&b, "\n");
    s_signed_list(&b, h, r->n_headers);
    s_puts(&b, "\n");
    s_puts(&b, r->payload_sha256);
    return b.full ? LF_ETOOBIG : 0;
}

/* "20150830/us-east-1/service/aws4_request" */
static void s_scope(const lf_sigv4_request_t *r, s_buf_t *b) {
    s_put(b, r->amz_date, 8);
    s_puts(b, "/");
    s_puts(b, r->region);
    s_puts(b, "/");
    s_puts(b, r->service);
    s_puts(b, "/aws4_request");
}

int lf_sigv4_string_to_sign(const lf_sigv4_request_t *r, char *buf, size_t size) {
    if (!s_valid(r) || !buf || !size) return LF_EINVAL;
    /* The canonical request: a few KB at most for the requests we sign. */
    size_t csize = 8192;
    char *canon = malloc(csize);
    if (!canon) return LF_ENOMEM;
    int rc = lf_sigv4_canonical(r, canon, csize);
    char hash[65];
    if (!rc) lf_sha256_hex(canon, strlen(canon), hash);
    free(canon);
    if (rc) return rc;
    s_buf_t b = {buf, 0, size, false};
    buf[0] = '\0';
    s_puts(&b, "AWS4-HMAC-SHA256\n");
    s_puts(&b, r->amz_date);
    s_puts(&b, "\n");
    s_scope(r, &b);
    s_puts(&b, "\n");
    s_puts(&b, hash);
    return b.full ? LF_ETOOBIG : 0;
}

int lf_sigv4_sign(const lf_sigv4_request_t *r, char *auth, size_t size) {
    if (!s_valid(r) || !auth || !size) return LF_EINVAL;
    char sts[512];
    int rc = lf_sigv4_string_to_sign(r, sts, sizeof sts);
    if (rc) return rc;
    /* kSecret = "AWS4" + secret; kDate = HMAC(kSecret, date); kRegion;
     * kService; kSigning = HMAC(kService, "aws4_request"). */
    size_t sl = strlen(r->secret_key);
    char *ks = malloc(sl + 5);
    if (!ks) return LF_ENOMEM;
    memcpy(ks, "AWS4", 4);
    memcpy(ks + 4, r->secret_key, sl + 1);
    uint8_t k[32], k2[32];
    lf_sha256_hmac(ks, sl + 4, r->amz_date, 8, k);
    explicit_bzero(ks, sl + 4);
    free(ks);
    lf_sha256_hmac(k, 32, r->region, strlen(r->region), k2);
    lf_sha256_hmac(k2, 32, r->service, strlen(r->service), k);
    lf_sha256_hmac(k, 32, "aws4_request", 12, k2);
    uint8_t sig[32];
    lf_sha256_hmac(k2, 32, sts, strlen(sts), sig);
    explicit_bzero(k, sizeof k);
    explicit_bzero(k2, sizeof k2);
    char sighex[65];
    s_hex(sig, 32, sighex);
    const lf_sigv4_header_t *h[S_MAX_HEADERS];
    s_sorted(r, h);
    s_buf_t b = {auth, 0, size, false};
    auth[0] = '\0';
    s_puts(&b, "AWS4-HMAC-SHA256 Credential=");
    s_puts(&b, r->access_key);
    s_puts(&b, "/");
    s_scope(r, &b);
    s_puts(&b, ", SignedHeaders=");
    s_signed_list(&b, h, r->n_headers);
    s_puts(&b, ", Signature=");
    s_puts(&b, sighex);
    return b.full ? LF_ETOOBIG : 0;
}

int lf_sigv4_uri_encode(const char *s, bool keep_slash, char *out, size_t size) {
    if (!s || !out || !size) return LF_EINVAL;
    static const char digits[] = "0123456789ABCDEF";
    s_buf_t b = {out, 0, size, false};
    out[0] = '\0';
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' || c == '~' || (keep_slash && c == '/')) {
            s_put(&b, (const char *)&c, 1);
        } else {
            char e[3] = {'%', digits[c >> 4], digits[c & 15]};
            s_put(&b, e, 3);
        }
    }
    return b.full ? LF_ETOOBIG : 0;
}

void lf_sigv4_amz_date(long long unix_s, char out[17]) {
    time_t t = (time_t)unix_s;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm);
}
