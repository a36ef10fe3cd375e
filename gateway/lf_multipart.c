/* lf_multipart: multipart/form-data bodies split into parts. The body is
 * scanned once for "\r\n--boundary"; each part's headers are read for the
 * Content-Disposition name and filename, everything else in them is
 * ignored (a part's own Content-Type is not trusted anyway: images are
 * probed by their bytes). */
#include "lf_multipart.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lf_error.h"

#define S_BOUNDARY_MAX 200

bool lf_multipart_is_form(const char *ct) {
    if (!ct) return false;
    while (*ct == ' ' || *ct == '\t') ct++;
    return !strncasecmp(ct, "multipart/form-data", 19) && (ct[19] == 0 || ct[19] == ';' || ct[19] == ' ');
}

/* The value of parameter `key` in a header value such as
 * `form-data; name="image"; filename="a.png"` (quotes removed, \" and \\
 * unescaped), copied into out. Returns false when absent or too long. */
static bool s_param(const char *hv, size_t hl, const char *key, char *out, size_t outlen) {
    size_t kl = strlen(key);
    size_t i = 0;
    /* Skip the first token (the disposition type or the MIME type). */
    while (i < hl && hv[i] != ';') i++;
    while (i < hl) {
        i++; /* the ';' */
        while (i < hl && (hv[i] == ' ' || hv[i] == '\t')) i++;
        size_t k0 = i;
        while (i < hl && hv[i] != '=' && hv[i] != ';') i++;
        size_t k1 = i;
        while (k1 > k0 && (hv[k1 - 1] == ' ' || hv[k1 - 1] == '\t')) k1--;
        if (i >= hl || hv[i] == ';') continue;
        i++; /* the '=' */
        while (i < hl && (hv[i] == ' ' || hv[i] == '\t')) i++;
        bool match = k1 - k0 == kl && !strncasecmp(hv + k0, key, kl);
        size_t o = 0;
        bool too_long = false;
        if (i < hl && hv[i] == '"') {
            i++;
            while (i < hl && hv[i] != '"') {
                if (hv[i] == '\\' && i + 1 < hl) i++;
                if (o + 1 < outlen) out[o++] = hv[i];
                else too_long = true;
                i++;
            }
            if (i < hl) i++; /* the closing quote */
            while (i < hl && hv[i] != ';') i++;
        } else {
            while (i < hl && hv[i] != ';' && hv[i] != ' ' && hv[i] != '\t') {
                if (o + 1 < outlen) out[o++] = hv[i];
                else too_long = true;
                i++;
            }
            while (i < hl && hv[i] != ';') i++;
        }
        if (match) {
            out[o] = 0;
            return !too_long;
        }
    }
    return false;
}

/* The boundary from the request's Content-Type, as "--boundary". */
static bool s_delim(const char *ct, char *out, size_t outlen, size_t *dl) {
    char b[S_BOUNDARY_MAX + 1];
    if (!lf_multipart_is_form(ct)) return false;
    if (!s_param(ct, strlen(ct), "boundary", b, sizeof b) || !b[0]) return false;
    int n = snprintf(out, outlen, "--%s", b);
    if (n < 0 || (size_t)n >= outlen) return false;
    *dl = (size_t)n;
    return true;
}

/* Reads the Content-Disposition of one part's header block [h, h + hl). */
static int s_headers(const char *h, size_t hl, lf_multipart_part_t *p) {
    size_t i = 0;
    bool named = false;
    while (i < hl) {
        const char *eol = memmem(h + i, hl - i, "\r\n", 2);
        size_t ll = eol ? (size_t)(eol - (h + i)) : hl - i;
        const char *line = h + i;
        static const char cd[] = "content-disposition:";
        if (ll > sizeof cd - 1 && !strncasecmp(line, cd, sizeof cd - 1)) {
            const char *v = line + sizeof cd - 1;
            size_t vl = ll - (sizeof cd - 1);
            while (vl && (*v == ' ' || *v == '\t')) v++, vl--;
            if (vl < 9 || strncasecmp(v, "form-data", 9)) return LF_EINVAL;
            char name[LF_MULTIPART_NAME_MAX + 1];
            if (!s_param(v, vl, "name", name, sizeof name) || !name[0]) return LF_EINVAL;
            memcpy(p->name, name, sizeof name);
            named = true;
            /* A name too long for the part is cut (s_param says false but fills it). */
            p->has_filename =
                s_param(v, vl, "filename", p->filename, sizeof p->filename) || memmem(v, vl, "filename=", 9);
            if (!p->has_filename) p->filename[0] = 0;
        }
        i += ll + 2;
    }
    return named ? 0 : LF_EINVAL;
}

int lf_multipart_parse(const char *content_type, const uint8_t *body, size_t len,
                       lf_multipart_part_t *parts, size_t max, size_t *n) {
    char delim[S_BOUNDARY_MAX + 8];
    size_t dl;
    if (!body || !s_delim(content_type, delim, sizeof delim, &dl)) return LF_EINVAL;
    const uint8_t *end = body + len;
    /* The first delimiter may open the body without a CRLF before it. */
    const uint8_t *p = NULL;
    if (len >= dl && !memcmp(body, delim, dl)) {
        p = body;
    } else {
        char crlf[S_BOUNDARY_MAX + 10];
        snprintf(crlf, sizeof crlf, "\r\n%s", delim);
        p = memmem(body, len, crlf, dl + 2);
        if (p) p += 2;
    }
    if (!p) return LF_EINVAL;
    lf_multipart_part_t *tmp = max ? calloc(max, sizeof *tmp) : NULL;
    if (max && !tmp) return LF_ENOMEM;
    size_t cnt = 0;
    int rc = LF_EINVAL;
    char crlf_delim[S_BOUNDARY_MAX + 10];
    snprintf(crlf_delim, sizeof crlf_delim, "\r\n%s", delim);
    for (;;) {
        p += dl; /* p is at a delimiter */
        if (end - p >= 2 && p[0] == '-' && p[1] == '-') {
            rc = 0; /* the closing delimiter: whatever follows is epilogue */
            break;
        }
        /* Transport padding, then CRLF. */
        while (p < end && (*p == ' ' || *p == '\t')) p++;
        if (end - p < 2 || p[0] != '\r' || p[1] != '\n') break;
        p += 2;
        const uint8_t *hend = memmem(p, (size_t)(end - p), "\r\n\r\n", 4);
        const uint8_t *data;
        if (hend) {
            data = hend + 4;
        } else if (end - p >= 2 && p[0] == '\r' && p[1] == '\n') {
            hend = p; /* a part without headers */
            data = p + 2;
        } else {
            break;
        }
        const uint8_t *next = memmem(data, (size_t)(end - data), crlf_delim, dl + 2);
        if (!next) break;
        if (cnt == max) {
            rc = LF_ELIMIT;
            break;
        }
        lf_multipart_part_t part = {0};
        if (s_headers((const char *)p, (size_t)(hend - p), &part)) break;
        part.data = data;
        part.len = (size_t)(next - data);
        tmp[cnt++] = part;
        p = next + 2;
    }
    if (rc == 0) {
        if (cnt) memcpy(parts, tmp, cnt * sizeof *tmp);
        *n = cnt;
    }
    free(tmp);
    return rc;
}
