/* lf_infotext: A1111 infotext strings and PNG text chunks. */
#include "lf_infotext.h"

#include <ctype.h>
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "lf_error.h"

typedef struct {
    char *s;
    size_t n, cap;
    int oom;
} s_buf_t;

static void s_add(s_buf_t *b, const char *s, size_t n)
{
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 256;
        while (b->n + n + 1 > nc) nc *= 2;
        char *ns = realloc(b->s, nc);
        if (!ns) {
            b->oom = 1;
            return;
        }
        b->s = ns;
        b->cap = nc;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = '\0';
}

static void s_adds(s_buf_t *b, const char *s)
{
    s_add(b, s, strlen(s));
}

/* A1111 quote(): JSON string when the value holds ',', ':' or a newline. */
static void s_quote(s_buf_t *b, const char *v)
{
    if (!strpbrk(v, ",:\n")) {
        s_adds(b, v);
        return;
    }
    json_t *j = json_string(v);
    char *q = j ? json_dumps(j, JSON_ENCODE_ANY) : NULL;
    json_decref(j);
    if (!q) {
        s_adds(b, v); /* invalid UTF-8: write it unquoted rather than lose it */
        return;
    }
    s_adds(b, q);
    free(q);
}

/* Python's str.strip() on ASCII whitespace, as a new string. */
static char *s_strip(const char *s, size_t n)
{
    while (n && isspace((unsigned char)*s)) s++, n--;
    while (n && isspace((unsigned char)s[n - 1])) n--;
    return strndup(s, n);
}

int lf_infotext_format(const char *prompt, const char *negative, const lf_infotext_kv_t *params,
                       size_t n, char **out)
{
    s_buf_t b = {0};
    s_adds(&b, prompt ? prompt : "");
    if (negative && *negative) {
        s_adds(&b, "\nNegative prompt: ");
        s_adds(&b, negative);
    }
    s_adds(&b, "\n");
    int first = 1;
    for (size_t i = 0; i < n; i++) {
        if (!params[i].value) continue;
        if (!first) s_adds(&b, ", ");
        first = 0;
        s_adds(&b, params[i].key);
        if (strcmp(params[i].key, params[i].value) != 0) {
            s_adds(&b, ": ");
            s_quote(&b, params[i].value);
        }
    }
    if (b.oom) {
        free(b.s);
        return LF_ENOMEM;
    }
    char *r = s_strip(b.s, b.n);
    free(b.s);
    if (!r) return LF_ENOMEM;
    *out = r;
    return 0;
}

static int s_word(unsigned char c)
{
    return isalnum(c) || c == '_' || c >= 0x80;
}

/* One re_param match at s: \s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$).
 * Returns the match length (0: none) and the key and value spans. */
static size_t s_param(const char *s, const char **k, size_t *kl, const char **v, size_t *vl)
{
    const char *p = s;
    while (isspace((unsigned char)*p)) p++;
    if (!s_word((unsigned char)*p)) return 0;
    const char *ks = p++;
    while (s_word((unsigned char)*p) || *p == ' ' || *p == '-' || *p == '/') p++;
    if (p - ks < 2 || *p != ':') return 0;
    *k = ks;
    *kl = (size_t)(p - ks);
    p++;
    while (isspace((unsigned char)*p)) p++;
    if (*p == '"') {
        const char *q = p + 1;
        while (*q && *q != '"') q += (*q == '\\' && q[1]) ? 2 : 1;
        if (*q == '"' && q > p + 1 && (q[1] == ',' || q[1] == '\0')) {
            *v = p;
            *vl = (size_t)(q + 1 - p);
            return (size_t)(q + 1 - s) + (q[1] == ',');
        }
    }
    const char *e = p;
    while (*e && *e != ',') e++;
    *v = p;
    *vl = (size_t)(e - p);
    return (size_t)(e - s) + (*e == ',');
}

static int s_count_params(const char *line)
{
    int c = 0;
    for (const char *p = line; *p;) {
        const char *k, *v;
        size_t kl, vl, m = s_param(p, &k, &kl, &v, &vl);
        if (m) {
            c++;
            p += m;
        } else {
            p++;
        }
    }
    return c;
}

static int s_push_kv(lf_infotext_t *info, const char *k, size_t kl, const char *v, size_t vl)
{
    lf_infotext_kv_t *np = realloc(info->params, (info->n_params + 1) * sizeof *np);
    if (!np) return LF_ENOMEM;
    info->params = np;
    char *ks = strndup(k, kl), *vs = strndup(v, vl);
    if (!ks || !vs) {
        free(ks);
        free(vs);
        return LF_ENOMEM;
    }
    info->params[info->n_params++] = (lf_infotext_kv_t){ks, vs};
    return 0;
}

static int s_append_line(char **dst, const char *line, size_t n)
{
    size_t dl = strlen(*dst);
    char *r = realloc(*dst, dl + n + 2);
    if (!r) return LF_ENOMEM;
    if (dl) r[dl++] = '\n';
    memcpy(r + dl, line, n);
    r[dl + n] = '\0';
    *dst = r;
    return 0;
}

int lf_infotext_parse(const char *text, lf_infotext_t *out)
{
    lf_infotext_t info = {0};
    char *all = s_strip(text, strlen(text)), *last = NULL;
    int rc = LF_ENOMEM;
    info.prompt = calloc(1, 1);
    info.negative = calloc(1, 1);
    if (!all || !info.prompt || !info.negative) goto done;
    char *lastnl = strrchr(all, '\n');
    char *lastline = lastnl ? lastnl + 1 : all;
    size_t body_len = lastnl ? (size_t)(lastnl - all) : 0;
    int has_params = s_count_params(lastline) >= 3;
    if (!has_params) body_len = strlen(all);
    int neg = 0, has_lines = has_params ? lastnl != NULL : 1;
    for (size_t i = 0; has_lines;) {
        const char *e = memchr(all + i, '\n', body_len - i);
        size_t ln = e ? (size_t)(e - all) - i : body_len - i;
        char *line = s_strip(all + i, ln);
        if (!line) goto done;
        const char *l = line;
        if (!strncmp(l, "Negative prompt:", 16)) {
            neg = 1;
            l += 16;
            while (isspace((unsigned char)*l)) l++;
        }
        int r2 = s_append_line(neg ? &info.negative : &info.prompt, l, strlen(l));
        free(line);
        if (r2) goto done;
        if (!e) break;
        i += ln + 1;
    }
    if (has_params) {
        last = lastline;
        for (const char *p = last; *p;) {
            const char *k, *v;
            size_t kl, vl, m = s_param(p, &k, &kl, &v, &vl);
            if (!m) {
                p++;
                continue;
            }
            p += m;
            char *val = strndup(v, vl);
            if (!val) goto done;
            if (vl >= 2 && val[0] == '"' && val[vl - 1] == '"') {
                json_t *j = json_loadb(val, vl, JSON_DECODE_ANY, NULL);
                if (json_is_string(j)) {
                    char *u = strdup(json_string_value(j));
                    if (u) {
                        free(val);
                        val = u;
                    }
                }
                json_decref(j);
            }
            /* A1111 splits "WxH" values into K-1 / K-2. */
            const char *x = val;
            while (isdigit((unsigned char)*x)) x++;
            const char *y = x + 1;
            while (*x == 'x' && isdigit((unsigned char)*y)) y++;
            int r3;
            if (x > val && *x == 'x' && y > x + 1 && *y == '\0') {
                char kb[256];
                size_t kk = kl < 250 ? kl : 250;
                memcpy(kb, k, kk);
                memcpy(kb + kk, "-1", 3);
                r3 = s_push_kv(&info, kb, kk + 2, val, (size_t)(x - val));
                kb[kk + 1] = '2';
                if (!r3) r3 = s_push_kv(&info, kb, kk + 2, x + 1, strlen(x + 1));
            } else {
                r3 = s_push_kv(&info, k, kl, val, strlen(val));
            }
            free(val);
            if (r3) goto done;
        }
    }
    rc = 0;
done:
    free(all);
    if (rc) {
        lf_infotext_clear(&info);
        return rc;
    }
    *out = info;
    return 0;
}

void lf_infotext_clear(lf_infotext_t *info)
{
    if (!info) return;
    free(info->prompt);
    free(info->negative);
    for (size_t i = 0; i < info->n_params; i++) {
        free(info->params[i].key);
        free(info->params[i].value);
    }
    free(info->params);
    memset(info, 0, sizeof *info);
}

const char *lf_infotext_get(const lf_infotext_t *info, const char *key)
{
    for (size_t i = 0; i < info->n_params; i++)
        if (!strcmp(info->params[i].key, key)) return info->params[i].value;
    return NULL;
}

/* ---- PNG chunks --------------------------------------------------------------- */

static void s_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24), p[1] = (unsigned char)(v >> 16), p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static uint32_t s_rd32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

int lf_infotext_png_chunk(const char *keyword, const char *text, unsigned char **out, size_t *len)
{
    size_t kl = strlen(keyword), tl = strlen(text);
    if (kl < 1 || kl > 79) return LF_EINVAL;
    /* Latin-1 if every UTF-8 sequence decodes to <= U+00FF. */
    int latin1 = 1;
    for (size_t i = 0; i < tl; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c < 0x80) continue;
        if ((c == 0xC2 || c == 0xC3) && i + 1 < tl && ((unsigned char)text[i + 1] & 0xC0) == 0x80) {
            i++;
            continue;
        }
        latin1 = 0;
        break;
    }
    size_t dl = latin1 ? kl + 1 + tl : kl + 5 + tl;
    if (dl > 0x7fffffff) return LF_EINVAL;
    unsigned char *b = malloc(12 + dl);
    if (!b) return LF_ENOMEM;
    unsigned char *d = b + 8;
    memcpy(d, keyword, kl + 1);
    size_t n = kl + 1;
    if (latin1) {
        for (size_t i = 0; i < tl; i++) {
            unsigned char c = (unsigned char)text[i];
            if (c >= 0x80) c = (unsigned char)(((c & 0x1F) << 6) | ((unsigned char)text[++i] & 0x3F));
            d[n++] = c;
        }
    } else {
        memcpy(d + n, "\0\0\0\0", 4); /* not compressed, method 0, "" language, "" keyword */
        n += 4;
        memcpy(d + n, text, tl);
        n += tl;
    }
    s_be32(b, (uint32_t)n);
    memcpy(b + 4, latin1 ? "tEXt" : "iTXt", 4);
    s_be32(b + 8 + n, (uint32_t)crc32(0, b + 4, (uInt)(n + 4)));
    *out = b;
    *len = 12 + n;
    return 0;
}

static int s_inflate(const unsigned char *z, size_t zl, char **out)
{
    size_t cap = zl * 4 + 64, n = 0;
    char *r = malloc(cap + 1);
    if (!r) return LF_ENOMEM;
    z_stream zs = {0};
    if (inflateInit(&zs) != Z_OK) {
        free(r);
        return LF_ENOMEM;
    }
    zs.next_in = (Bytef *)z;
    zs.avail_in = (uInt)zl;
    int zr;
    do {
        if (n == cap) {
            if (cap > (64u << 20)) {
                zr = Z_MEM_ERROR;
                break;
            }
            char *nr = realloc(r, cap * 2 + 1);
            if (!nr) {
                zr = Z_MEM_ERROR;
                break;
            }
            r = nr;
            cap *= 2;
        }
        zs.next_out = (Bytef *)r + n;
        zs.avail_out = (uInt)(cap - n);
        zr = inflate(&zs, Z_NO_FLUSH);
        n = cap - zs.avail_out;
    } while (zr == Z_OK);
    inflateEnd(&zs);
    if (zr != Z_STREAM_END) {
        free(r);
        return zr == Z_MEM_ERROR ? LF_ENOMEM : LF_EFORMAT;
    }
    r[n] = '\0';
    *out = r;
    return 0;
}

int lf_infotext_png_find(const unsigned char *png, size_t len, const char *keyword, char **out)
{
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (len < 8 || memcmp(png, sig, 8) != 0) return LF_EFORMAT;
    size_t kl = strlen(keyword);
    for (size_t p = 8; p + 12 <= len;) {
        uint32_t n = s_rd32(png + p);
        if (n > len - p - 12) return LF_EFORMAT;
        const unsigned char *type = png + p + 4, *d = png + p + 8;
        int t = !memcmp(type, "tEXt", 4), zt = !memcmp(type, "zTXt", 4), it = !memcmp(type, "iTXt", 4);
        if ((t || zt || it) && n > kl && !memcmp(d, keyword, kl) && d[kl] == 0) {
            const unsigned char *v = d + kl + 1, *e = d + n;
            if (t) { /* Latin-1 -> UTF-8 */
                char *r = malloc(2 * (size_t)(e - v) + 1);
                if (!r) return LF_ENOMEM;
                size_t o = 0;
                for (; v < e; v++) {
                    if (*v < 0x80) r[o++] = (char)*v;
                    else r[o++] = (char)(0xC0 | (*v >> 6)), r[o++] = (char)(0x80 | (*v & 0x3F));
                }
                r[o] = '\0';
                *out = r;
                return 0;
            }
            if (zt) return e - v >= 1 ? s_inflate(v + 1, (size_t)(e - v - 1), out) : LF_EFORMAT;
            /* iTXt: flag, method, language\0, translated keyword\0, text */
            if (e - v < 2) return LF_EFORMAT;
            int comp = v[0];
            const unsigned char *q = v + 2;
            for (int z = 0; z < 2; z++) {
                q = memchr(q, 0, (size_t)(e - q));
                if (!q) return LF_EFORMAT;
                q++;
            }
            if (comp) return s_inflate(q, (size_t)(e - q), out);
            *out = strndup((const char *)q, (size_t)(e - q));
            return *out ? 0 : LF_ENOMEM;
        }
        if (!memcmp(type, "IEND", 4)) break;
        p += 12 + n;
    }
    return LF_ENOTFOUND;
}
