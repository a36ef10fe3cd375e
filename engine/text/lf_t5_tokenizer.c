/* lf_t5_tokenizer: SentencePiece Unigram encoding (see the header for the
 * pipeline). The charsmap is sentencepiece's precompiled blob: a uint32 trie
 * size, a darts-clone double array over UTF-8 bytes whose values index the
 * NUL-terminated replacement strings that follow it. */
#include "lf_t5_tokenizer.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lf_b64.h"
#include "lf_error.h"
#include "lf_strmap.h"

#define S_MAX_FILE (64u << 20)

struct lf_t5_tokenizer {
    lf_strmap_t *vocab; /* normal pieces -> id */
    double *score;      /* [n_vocab] */
    int n_vocab, unk_id, max_piece;
    double unk_score;
    char **special; /* split out of the raw text before normalizing */
    int *special_id, n_special;
    uint8_t *cmap; /* charsmap blob, or NULL (no normalization) */
    size_t n_units, norm_len;
    const uint8_t *units, *norm;
};

/* ---- growable byte / id buffers ---- */

typedef struct {
    char *p;
    size_t n, cap;
    int oom;
} s_buf_t;

static void s_put(s_buf_t *b, const void *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 256;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p, b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

/* Length of the UTF-8 sequence at s (1 for an invalid lead or truncated
 * sequence; *valid says which). */
static size_t s_utf8_len(const uint8_t *s, size_t n, int *valid) {
    size_t l = s[0] < 0x80 ? 1 : (s[0] >> 5) == 6 ? 2 : (s[0] >> 4) == 14 ? 3 : (s[0] >> 3) == 30 ? 4 : 0;
    *valid = l > 0 && l <= n;
    for (size_t i = 1; *valid && i < l; i++)
        if ((s[i] & 0xC0) != 0x80) *valid = 0;
    return *valid ? l : 1;
}

/* ---- charsmap ---- */

static uint32_t s_unit(const lf_t5_tokenizer_t *t, size_t i) {
    const uint8_t *u = t->units + 4 * i;
    return (uint32_t)u[0] | (uint32_t)u[1] << 8 | (uint32_t)u[2] << 16 | (uint32_t)u[3] << 24;
}

/* The shortest key of the charsmap that prefixes s[0..n): its length and
 * replacement (NUL-terminated inside norm), or 0. */
static size_t s_cmap_match(const lf_t5_tokenizer_t *t, const uint8_t *s, size_t n,
                           const char **rep) {
    if (!t->cmap || !t->n_units) return 0;
    size_t pos = 0;
    uint32_t unit = s_unit(t, 0);
    pos ^= (unit >> 10) << ((unit & (1u << 9)) >> 6);
    for (size_t i = 0; i < n && s[i]; i++) {
        pos ^= s[i];
        if (pos >= t->n_units) break;
        unit = s_unit(t, pos);
        if ((unit & (0x80000000u | 0xFFu)) != s[i]) break;
        pos ^= (unit >> 10) << ((unit & (1u << 9)) >> 6);
        if (pos >= t->n_units) break;
        if ((unit >> 8) & 1) {
            uint32_t v = s_unit(t, pos) & 0x7FFFFFFFu;
            if (v < t->norm_len && memchr(t->norm + v, 0, t->norm_len - v)) {
                *rep = (const char *)t->norm + v;
                return i + 1;
            }
        }
    }
    return 0;
}

static uint32_t s_cp(const uint8_t *s, size_t l) {
    static const uint8_t lead[5] = {0, 0x7F, 0x1F, 0x0F, 0x07};
    uint32_t c = s[0] & lead[l];
    for (size_t i = 1; i < l; i++) c = c << 6 | (s[i] & 0x3F);
    return c;
}

/* Characters that extend the grapheme cluster before them (Unicode's Extend
 * and ZWJ, the ranges that matter here: combining marks, variation
 * selectors, halfwidth kana voicing, emoji modifiers and tags). */
static int s_extend(uint32_t c) {
    static const uint32_t r[][2] = {
        {0x300, 0x36F},     {0x483, 0x489},     {0x591, 0x5BD},   {0x610, 0x61A},
        {0x64B, 0x65F},     {0x670, 0x670},     {0x6D6, 0x6DC},   {0x6DF, 0x6E4},
        {0x1AB0, 0x1AFF},   {0x1DC0, 0x1DFF},   {0x200C, 0x200D}, {0x20D0, 0x20FF},
        {0x302A, 0x302F},   {0x3099, 0x309A},   {0xFE00, 0xFE0F}, {0xFE20, 0xFE2F},
        {0xFF9E, 0xFF9F},   {0x1F3FB, 0x1F3FF}, {0xE0020, 0xE007F}, {0xE0100, 0xE01EF},
    };
    for (size_t i = 0; i < sizeof r / sizeof r[0]; i++)
        if (c >= r[i][0] && c <= r[i][1]) return 1;
    return 0;
}

/* As the tokenizers crate's Precompiled normalizer: per grapheme cluster
 * (approximated by s_extend; CR LF one cluster), a cluster under 6 bytes
 * with a key prefixing it is replaced whole by that key's replacement (so a
 * mapped base character drops the marks after it); otherwise each
 * character is replaced by its own key, or kept. */
static void s_normalize(const lf_t5_tokenizer_t *t, const uint8_t *s, size_t n, s_buf_t *out) {
    for (size_t i = 0; i < n;) {
        int valid;
        size_t l = s_utf8_len(s + i, n - i, &valid), g = l;
        if (!valid) {
            s_put(out, "\xEF\xBF\xBD", 3);
            i += 1;
            continue;
        }
        uint32_t c = s_cp(s + i, l);
        if (c == '\r' && i + 1 < n && s[i + 1] == '\n') g = 2;
        else if (c >= 0x20 && !(c >= 0x7F && c < 0xA0))
            for (size_t k; i + g < n; g += k) {
                k = s_utf8_len(s + i + g, n - i - g, &valid);
                if (!valid || !s_extend(s_cp(s + i + g, k))) break;
            }
        const char *rep = NULL;
        if (g < 6 && s_cmap_match(t, s + i, g, &rep)) {
            s_put(out, rep, strlen(rep));
            i += g;
            continue;
        }
        for (size_t e = i + g; i < e; i += l) {
            l = s_utf8_len(s + i, e - i, &valid);
            if (s_cmap_match(t, s + i, l, &rep)) s_put(out, rep, strlen(rep));
            else s_put(out, s + i, l);
        }
    }
}

/* ---- Viterbi over one word ---- */

typedef struct {
    int32_t *ids;
    int n, cap; /* stops growing at cap */
} s_ids_t;

static void s_emit(s_ids_t *o, int32_t id) {
    if (o->n < o->cap) o->ids[o->n++] = id;
}

static int s_word(const lf_t5_tokenizer_t *t, const char *w, size_t L, s_ids_t *o) {
    double *best = malloc((L + 1) * sizeof *best);
    int *from = malloc((L + 1) * sizeof *from), *id = malloc((L + 1) * sizeof *id);
    if (!best || !from || !id) {
        free(best), free(from), free(id);
        return LF_ENOMEM;
    }
    for (size_t i = 0; i <= L; i++) from[i] = -1, best[i] = 0;
    for (size_t i = 0; i < L;) {
        int valid;
        size_t mb = s_utf8_len((const uint8_t *)w + i, L - i, &valid);
        int single = 0;
        for (size_t len = 1; len <= (size_t)t->max_piece && i + len <= L; len++) {
            int64_t v;
            if (!lf_strmap_get(t->vocab, w + i, len, &v)) continue;
            double c = best[i] + t->score[v];
            if (from[i + len] < 0 || c > best[i + len])
                best[i + len] = c, from[i + len] = (int)i, id[i + len] = (int)v;
            if (len == mb) single = 1;
        }
        if (!single) {
            double c = best[i] + t->unk_score;
            if (from[i + mb] < 0 || c > best[i + mb])
                best[i + mb] = c, from[i + mb] = (int)i, id[i + mb] = t->unk_id;
        }
        i += mb;
    }
    /* Back from the end, then emitted in order with runs of <unk> fused. */
    int n = 0;
    for (size_t e = L; e > 0; e = (size_t)from[e]) n++;
    int *path = malloc((size_t)(n ? n : 1) * sizeof *path);
    if (!path) {
        free(best), free(from), free(id);
        return LF_ENOMEM;
    }
    int k = n;
    for (size_t e = L; e > 0; e = (size_t)from[e]) path[--k] = id[e];
    for (int i = 0; i < n; i++)
        if (!(path[i] == t->unk_id && i > 0 && path[i - 1] == t->unk_id)) s_emit(o, path[i]);
    free(path), free(best), free(from), free(id);
    return 0;
}

/* One piece of text between special tokens: normalize, strip, U+2581,
 * words, Viterbi. first: the piece starts the text (gets the prefix). */
static int s_piece(const lf_t5_tokenizer_t *t, const char *s, size_t n, int first, s_ids_t *o) {
    static const char sp[] = "\xE2\x96\x81";
    s_buf_t nb = {0}, wb = {0};
    s_normalize(t, (const uint8_t *)s, n, &nb);
    while (nb.n > 0 && strchr(" \t\n\r\v\f", nb.p[nb.n - 1])) nb.n--;
    if (first && nb.n && nb.p[0] != ' ' && !(nb.n >= 3 && memcmp(nb.p, sp, 3) == 0))
        s_put(&wb, sp, 3);
    for (size_t i = 0; i < nb.n; i++) {
        if (nb.p[i] != ' ') {
            s_put(&wb, nb.p + i, 1);
            continue;
        }
        while (i + 1 < nb.n && nb.p[i + 1] == ' ') i++;
        s_put(&wb, sp, 3);
    }
    int rc = nb.oom || wb.oom ? LF_ENOMEM : 0;
    /* Words start at each U+2581. */
    for (size_t a = 0; !rc && a < wb.n && o->n < o->cap;) {
        size_t b = a + 3 <= wb.n && memcmp(wb.p + a, sp, 3) == 0 ? a + 3 : a + 1;
        while (b < wb.n && !(b + 3 <= wb.n && memcmp(wb.p + b, sp, 3) == 0)) b++;
        rc = s_word(t, wb.p + a, b - a, o);
        a = b;
    }
    free(nb.p), free(wb.p);
    return rc;
}

int lf_t5_tokenizer_encode(const lf_t5_tokenizer_t *self, const char *text, int32_t *ids, int n,
                           int *n_used) {
    if (!self || !text || !ids || n < 1) return LF_EINVAL;
    s_ids_t o = {.ids = ids, .n = 0, .cap = n - 1};
    size_t len = strlen(text), start = 0;
    int rc = 0;
    for (size_t i = 0; !rc && i <= len && o.n < o.cap; i++) {
        int sid = -1;
        size_t sl = 0;
        for (int k = 0; i < len && k < self->n_special; k++) {
            size_t l = strlen(self->special[k]);
            if (l > sl && strncmp(text + i, self->special[k], l) == 0) sl = l, sid = self->special_id[k];
        }
        if (sid < 0 && i < len) continue;
        if (i > start) rc = s_piece(self, text + start, i - start, start == 0, &o);
        if (sid >= 0 && !rc) s_emit(&o, sid);
        start = i + sl;
        if (sl) i += sl - 1;
    }
    if (rc) return rc;
    ids[o.n++] = LF_T5_EOS;
    if (n_used) *n_used = o.n;
    for (int i = o.n; i < n; i++) ids[i] = LF_T5_PAD;
    return 0;
}

/* ---- loading ---- */

static int s_fail(char *err, size_t errlen, int rc, const char *what) {
    if (errlen) snprintf(err, errlen, "%s", what);
    return rc;
}

static int s_set_cmap(lf_t5_tokenizer_t *t, const uint8_t *blob, size_t len) {
    if (len < 4) return LF_EFORMAT;
    uint32_t trie = (uint32_t)blob[0] | (uint32_t)blob[1] << 8 | (uint32_t)blob[2] << 16 |
                    (uint32_t)blob[3] << 24;
    if (trie % 4 || trie < 4 || trie > len - 4) return LF_EFORMAT;
    t->cmap = malloc(len);
    if (!t->cmap) return LF_ENOMEM;
    memcpy(t->cmap, blob, len);
    t->units = t->cmap + 4, t->n_units = trie / 4;
    t->norm = t->cmap + 4 + trie, t->norm_len = len - 4 - trie;
    return 0;
}

static int s_add_special(lf_t5_tokenizer_t *t, const char *s, size_t len, int id) {
    char **sp = realloc(t->special, (size_t)(t->n_special + 1) * sizeof *sp);
    if (sp) t->special = sp;
    int *si = realloc(t->special_id, (size_t)(t->n_special + 1) * sizeof *si);
    if (si) t->special_id = si;
    char *c = malloc(len + 1);
    if (!sp || !si || !c) {
        free(c);
        return LF_ENOMEM;
    }
    memcpy(c, s, len);
    c[len] = 0;
    t->special[t->n_special] = c;
    t->special_id[t->n_special++] = id;
    return 0;
}

/* Vocabulary arrays for n pieces. */
static int s_alloc_vocab(lf_t5_tokenizer_t *t, int n) {
    t->n_vocab = n;
    t->score = calloc((size_t)n, sizeof *t->score);
    t->vocab = lf_strmap_new();
    return t->score && t->vocab ? 0 : LF_ENOMEM;
}

static int s_add_piece(lf_t5_tokenizer_t *t, const char *s, size_t len, int id, double score) {
    t->score[id] = score;
    if ((int)len > t->max_piece) t->max_piece = (int)len;
    return lf_strmap_put(t->vocab, s, len, id);
}

static int s_from_json(lf_t5_tokenizer_t *t, const char *data, size_t len, char *err,
                       size_t errlen) {
    json_error_t je;
    json_t *root = json_loadb(data, len, 0, &je);
    if (!root) {
        if (errlen) snprintf(err, errlen, "not JSON (line %d: %s)", je.line, je.text);
        return LF_EFORMAT;
    }
    int rc = 0;
    json_t *model = json_object_get(root, "model"), *vocab = json_object_get(model, "vocab");
    const char *type = json_string_value(json_object_get(model, "type"));
    if (!type || strcmp(type, "Unigram") != 0 || !json_is_array(vocab) || !json_array_size(vocab)) {
        rc = s_fail(err, errlen, LF_EFORMAT, "model is not a Unigram model with a vocab");
        goto done;
    }
    t->unk_id = (int)json_integer_value(json_object_get(model, "unk_id"));
    int n = (int)json_array_size(vocab);
    if (t->unk_id < 0 || t->unk_id >= n) {
        rc = s_fail(err, errlen, LF_EFORMAT, "unk_id outside the vocab");
        goto done;
    }
    rc = s_alloc_vocab(t, n);
    /* Added tokens: split out of the text; not pieces of the Viterbi. */
    char *is_added = calloc((size_t)n, 1);
    if (!is_added) rc = LF_ENOMEM;
    size_t i;
    json_t *a;
    json_array_foreach(json_object_get(root, "added_tokens"), i, a) {
        json_t *c = json_object_get(a, "content");
        json_int_t id = json_integer_value(json_object_get(a, "id"));
        if (rc || !json_is_string(c) || id < 0 || id >= n) continue;
        rc = s_add_special(t, json_string_value(c), json_string_length(c), (int)id);
        is_added[id] = 1;
    }
    double mn = 0;
    json_array_foreach(vocab, i, a) {
        json_t *p = json_array_get(a, 0), *s = json_array_get(a, 1);
        if (rc) break;
        if (!json_is_string(p) || !json_is_number(s)) {
            rc = s_fail(err, errlen, LF_EFORMAT, "vocab entry is not [piece, score]");
            break;
        }
        double sc = json_number_value(s);
        if (i == 0 || sc < mn) mn = sc;
        if (!is_added[i] && (int)i != t->unk_id)
            rc = s_add_piece(t, json_string_value(p), json_string_length(p), (int)i, sc);
    }
    free(is_added);
    t->unk_score = mn - 10.0;
    /* The Precompiled normalizer, alone or in a Sequence. */
    json_t *norm = json_object_get(root, "normalizer"), *list = json_object_get(norm, "normalizers");
    json_t *pre = NULL;
    if (json_is_array(list)) {
        json_array_foreach(list, i, a)
            if (json_is_string(json_object_get(a, "type")) &&
                strcmp(json_string_value(json_object_get(a, "type")), "Precompiled") == 0)
                pre = a;
    } else if (norm && json_is_string(json_object_get(norm, "type")) &&
               strcmp(json_string_value(json_object_get(norm, "type")), "Precompiled") == 0) {
        pre = norm;
    }
    json_t *cm = json_object_get(pre, "precompiled_charsmap");
    if (!rc && json_is_string(cm)) {
        uint8_t *blob = NULL;
        size_t bl = 0;
        rc = lf_b64_decode(json_string_value(cm), json_string_length(cm), S_MAX_FILE, &blob, &bl);
        if (!rc) rc = s_set_cmap(t, blob, bl);
        free(blob);
        if (rc == LF_EFORMAT) s_fail(err, errlen, rc, "bad precompiled_charsmap");
    }
done:
    json_decref(root);
    return rc;
}

/* ---- spiece.model: protobuf ModelProto (pieces = 1, normalizer_spec = 3) ---- */

typedef struct {
    const uint8_t *p, *end;
} s_pb_t;

static int s_varint(s_pb_t *b, uint64_t *v) {
    *v = 0;
    for (int sh = 0; sh < 64 && b->p < b->end; sh += 7) {
        uint8_t c = *b->p++;
        *v |= (uint64_t)(c & 0x7F) << sh;
        if (!(c & 0x80)) return 0;
    }
    return LF_EFORMAT;
}

/* Next field: number, wire type; for LEN its bytes, for I32 its value. */
static int s_field(s_pb_t *b, int *num, int *wire, s_pb_t *sub, uint64_t *val) {
    uint64_t key;
    if (s_varint(b, &key) || key >> 3 == 0 || key >> 3 > 1u << 29) return LF_EFORMAT;
    *num = (int)(key >> 3), *wire = (int)(key & 7);
    switch (*wire) {
    case 0: return s_varint(b, val);
    case 1:
        if (b->end - b->p < 8) return LF_EFORMAT;
        b->p += 8;
        return 0;
    case 5:
        if (b->end - b->p < 4) return LF_EFORMAT;
        *val = (uint64_t)b->p[0] | (uint64_t)b->p[1] << 8 | (uint64_t)b->p[2] << 16 |
               (uint64_t)b->p[3] << 24;
        b->p += 4;
        return 0;
    case 2: {
        uint64_t l;
        if (s_varint(b, &l) || l > (uint64_t)(b->end - b->p)) return LF_EFORMAT;
        sub->p = b->p, sub->end = b->p + l;
        b->p += l;
        return 0;
    }
    default: return LF_EFORMAT;
    }
}

enum { S_NORMAL = 1, S_UNKNOWN = 2, S_CONTROL = 3, S_USER = 4 };

static int s_from_spm(lf_t5_tokenizer_t *t, const uint8_t *data, size_t len, char *err,
                      size_t errlen) {
    int n = 0, num, wire, rc = 0;
    s_pb_t b = {data, data + len}, sub;
    uint64_t v;
    while (b.p < b.end && !rc) {
        rc = s_field(&b, &num, &wire, &sub, &v);
        if (!rc && num == 1 && wire == 2) n++;
    }
    if (rc || n < 3) return s_fail(err, errlen, LF_EFORMAT, "not a sentencepiece model");
    /* T5Tokenizer's 100 extra ids follow the pieces: <extra_id_i> = n + 99 - i. */
    if ((rc = s_alloc_vocab(t, n + 100))) return rc;
    double mn = 0;
    int id = 0;
    t->unk_id = -1;
    b.p = data;
    while (b.p < b.end && !rc) {
        rc = s_field(&b, &num, &wire, &sub, &v);
        if (rc || wire != 2) continue;
        if (num == 3) { /* normalizer_spec: precompiled_charsmap = 2 */
            s_pb_t ns = sub, f;
            while (ns.p < ns.end && !rc) {
                rc = s_field(&ns, &num, &wire, &f, &v);
                if (!rc && num == 2 && wire == 2 && f.end > f.p)
                    rc = s_set_cmap(t, f.p, (size_t)(f.end - f.p));
            }
            continue;
        }
        if (num != 1) continue;
        const uint8_t *piece = NULL;
        size_t pl = 0;
        float score = 0;
        int type = S_NORMAL;
        s_pb_t f;
        while (sub.p < sub.end && !rc) {
            rc = s_field(&sub, &num, &wire, &f, &v);
            if (rc) break;
            if (num == 1 && wire == 2) piece = f.p, pl = (size_t)(f.end - f.p);
            if (num == 2 && wire == 5) {
                uint32_t u = (uint32_t)v;
                memcpy(&score, &u, 4);
            }
            if (num == 3 && wire == 0) type = (int)v;
        }
        if (rc || !piece) {
            rc = LF_EFORMAT;
            break;
        }
        if (id == 0 || score < mn) mn = score;
        if (type == S_UNKNOWN && t->unk_id < 0) t->unk_id = id;
        if (type == S_CONTROL || type == S_UNKNOWN || type == S_USER)
            rc = s_add_special(t, (const char *)piece, pl, id);
        if (!rc && type != S_CONTROL && type != S_UNKNOWN)
            rc = s_add_piece(t, (const char *)piece, pl, id, score);
        id++;
    }
    for (int i = 0; !rc && i < 100; i++) {
        char s[24];
        int l = snprintf(s, sizeof s, "<extra_id_%d>", i);
        rc = s_add_special(t, s, (size_t)l, n + 99 - i);
    }
    if (rc == LF_EFORMAT || (!rc && t->unk_id < 0))
        return s_fail(err, errlen, LF_EFORMAT, "malformed sentencepiece model (or no <unk>)");
    t->unk_score = mn - 10.0;
    return rc;
}

int lf_t5_tokenizer_new_mem(lf_t5_tokenizer_t **out, const void *data, size_t len, char *err,
                            size_t errlen) {
    if (!out || !data) return LF_EINVAL;
    lf_t5_tokenizer_t *t = calloc(1, sizeof *t);
    if (!t) return LF_ENOMEM;
    const char *c = data;
    size_t i = 0;
    while (i < len && strchr(" \t\r\n", c[i]) && c[i]) i++;
    int rc = i < len && c[i] == '{' ? s_from_json(t, c, len, err, errlen)
                                    : s_from_spm(t, data, len, err, errlen);
    if (rc) {
        lf_t5_tokenizer_destroy(&t);
        return rc;
    }
    *out = t;
    return 0;
}

int lf_t5_tokenizer_new(lf_t5_tokenizer_t **out, const char *path, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errlen) snprintf(err, errlen, "%s: cannot open", path);
        return LF_EIO;
    }
    s_buf_t b = {0};
    char chunk[65536];
    size_t got;
    while ((got = fread(chunk, 1, sizeof chunk, f)) > 0 && b.n <= S_MAX_FILE) s_put(&b, chunk, got);
    int io = ferror(f);
    fclose(f);
    int rc = io ? LF_EIO : b.oom ? LF_ENOMEM : b.n > S_MAX_FILE ? LF_EFORMAT : 0;
    char msg[256] = "";
    if (!rc) rc = lf_t5_tokenizer_new_mem(out, b.p ? b.p : "", b.n, msg, sizeof msg);
    if (rc && errlen)
        snprintf(err, errlen, "%s: %s", path, rc == LF_EIO ? "read error" : msg[0] ? msg : "too large");
    free(b.p);
    return rc;
}

void lf_t5_tokenizer_destroy(lf_t5_tokenizer_t **self_p) {
    if (!self_p || !*self_p) return;
    lf_t5_tokenizer_t *t = *self_p;
    lf_strmap_destroy(&t->vocab);
    for (int i = 0; i < t->n_special; i++) free(t->special[i]);
    free(t->special), free(t->special_id), free(t->score), free(t->cmap), free(t);
    *self_p = NULL;
}

int lf_t5_tokenizer_vocab(const lf_t5_tokenizer_t *self) { return self->n_vocab; }
