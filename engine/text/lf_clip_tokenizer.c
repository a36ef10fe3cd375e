/* lf_clip_tokenizer: text cleanup, CLIP pre-tokenization, byte-level BPE.
 * Written from the descriptions of openai/CLIP simple_tokenizer.py and HF
 * CLIPTokenizer. */
#include "lf_clip_tokenizer.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "lf_error.h"
#include "lf_strmap.h"

#define S_N_MERGES (49152 - 256 - 2)

struct lf_clip_tokenizer {
    lf_strmap_t *vocab;  /* token -> id */
    lf_strmap_t *ranks;  /* "a b" -> merge rank */
    lf_strmap_t *cache;  /* word -> offset << 24 | count into cache_ids */
    char **tokens;       /* id -> token */
    int32_t n_tokens;
    int32_t *cache_ids;
    size_t cache_len, cache_cap;
    char byte_sym[256][3]; /* byte -> its GPT-2 alphabet character, UTF-8 */
};

/* ---- Unicode helpers ------------------------------------------------------ */

typedef struct {
    uint32_t lo, hi;
} s_range_t;

static int s_in(uint32_t c, const s_range_t *r, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (c >= r[i].lo && c <= r[i].hi) return 1;
    return 0;
}

static const s_range_t s_letters[] = {
    {0xAA, 0xAA},     {0xB5, 0xB5},     {0xBA, 0xBA},     {0xC0, 0xD6},     {0xD8, 0xF6},
    {0xF8, 0x2C1},    {0x2C6, 0x2D1},   {0x2E0, 0x2E4},   {0x370, 0x374},   {0x376, 0x377},
    {0x37A, 0x37D},   {0x386, 0x386},   {0x388, 0x3FF},   {0x400, 0x481},   {0x48A, 0x52F},
    {0x531, 0x556},   {0x561, 0x587},   {0x5D0, 0x5EA},   {0x620, 0x64A},   {0x671, 0x6D3},
    {0x904, 0x939},   {0x958, 0x961},   {0x985, 0x9B9},   {0xE01, 0xE30},   {0xE40, 0xE46},
    {0x10A0, 0x10FF}, {0x1100, 0x11FF}, {0x1E00, 0x1FFF}, {0x3041, 0x3096}, {0x309D, 0x309F},
    {0x30A1, 0x30FA}, {0x30FC, 0x30FF}, {0x3400, 0x4DBF}, {0x4E00, 0x9FFF}, {0xAC00, 0xD7A3},
    {0xF900, 0xFAFF}, {0xFF21, 0xFF3A}, {0xFF41, 0xFF5A}, {0xFF66, 0xFFDC}, {0x20000, 0x2FA1F},
};
static const s_range_t s_numbers[] = {
    {0xB2, 0xB3},   {0xB9, 0xB9},   {0xBC, 0xBE},   {0x660, 0x669},   {0x6F0, 0x6F9},
    {0x966, 0x96F}, {0x9E6, 0x9EF}, {0xE50, 0xE59}, {0x2070, 0x2070}, {0x2074, 0x2079},
    {0x2080, 0x2089}, {0x2150, 0x2189}, {0x2460, 0x249B}, {0x3007, 0x3007}, {0xFF10, 0xFF19},
};
static const s_range_t s_spaces[] = {
    {0x09, 0x0D}, {0x1C, 0x20}, {0x85, 0x85}, {0xA0, 0xA0}, {0x1680, 0x1680},
    {0x2000, 0x200A}, {0x2028, 0x2029}, {0x202F, 0x202F}, {0x205F, 0x205F}, {0x3000, 0x3000},
};

static int s_is_letter(uint32_t c)
{
    if (c < 0x80) return (c | 32) >= 'a' && (c | 32) <= 'z';
    return s_in(c, s_letters, sizeof s_letters / sizeof s_letters[0]);
}

static int s_is_number(uint32_t c)
{
    if (c < 0x80) return c >= '0' && c <= '9';
    return s_in(c, s_numbers, sizeof s_numbers / sizeof s_numbers[0]);
}

static int s_is_space(uint32_t c)
{
    return s_in(c, s_spaces, sizeof s_spaces / sizeof s_spaces[0]);
}

static uint32_t s_lower(uint32_t c)
{
    if (c < 0x80) return (c >= 'A' && c <= 'Z') ? c + 32 : c;
    if ((c >= 0xC0 && c <= 0xDE && c != 0xD7)) return c + 32;
    if (c >= 0x100 && c <= 0x17F && c != 0x130 && c != 0x131 && c != 0x138 && c != 0x149) {
        /* Latin Extended-A pairs: even upper / odd lower, except 0x139..0x148 and
         * 0x179..0x17E, which are odd upper / even lower. */
        int odd_upper = (c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E);
        if (c == 0x178) return 0xFF;
        if (odd_upper) return (c & 1) ? c + 1 : c;
        return (c & 1) ? c : c + 1;
    }
    if (c >= 0x391 && c <= 0x3AB && c != 0x3A2) return c + 32;
    if (c == 0x386) return 0x3AC;
    if (c >= 0x388 && c <= 0x38A) return c + 37;
    if (c >= 0x410 && c <= 0x42F) return c + 32;
    if (c >= 0x400 && c <= 0x40F) return c + 80;
    if (c >= 0x460 && c <= 0x4FF && !(c >= 0x482 && c <= 0x489) && c != 0x4C0 && c <= 0x4BF)
        return (c & 1) ? c : c + 1;
    return c;
}

/* Decodes one UTF-8 character at s (n bytes left); returns its length (>= 1)
 * and *cp. Invalid bytes decode as themselves, one at a time, as U+FFFD. */
static int s_utf8(const unsigned char *s, size_t n, uint32_t *cp)
{
    unsigned c = s[0];
    int len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (len == 0 || (size_t)len > n) {
        *cp = 0xFFFD;
        return 1;
    }
    uint32_t v = len == 1 ? c : c & (0x7F >> len);
    for (int i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            *cp = 0xFFFD;
            return 1;
        }
        v = (v << 6) | (s[i] & 0x3F);
    }
    *cp = v;
    return len;
}

static size_t s_put_utf8(char *o, uint32_t c)
{
    if (c < 0x80) {
        o[0] = (char)c;
        return 1;
    }
    if (c < 0x800) {
        o[0] = (char)(0xC0 | (c >> 6));
        o[1] = (char)(0x80 | (c & 0x3F));
        return 2;
    }
    if (c < 0x10000) {
        o[0] = (char)(0xE0 | (c >> 12));
        o[1] = (char)(0x80 | ((c >> 6) & 0x3F));
        o[2] = (char)(0x80 | (c & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (c >> 18));
    o[1] = (char)(0x80 | ((c >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((c >> 6) & 0x3F));
    o[3] = (char)(0x80 | (c & 0x3F));
    return 4;
}

/* Cleanup: HTML entities, whitespace runs -> one space, trim, lower-case.
 * Returns a new string (caller frees) or NULL. */
static char *s_clean(const char *text)
{
    static const struct {
        const char *ent;
        char ch;
    } ents[] = {{"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&#39;", '\''}, {"&#x27;", '\''}};
    size_t n = strlen(text);
    char *out = malloc(n + 1);
    if (!out) return NULL;
    size_t o = 0;
    int pending_space = 0;
    const unsigned char *s = (const unsigned char *)text;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        int k = 0;
        if (s[i] == '&') {
            for (size_t e = 0; e < sizeof ents / sizeof ents[0]; e++) {
                size_t el = strlen(ents[e].ent);
                if (strncmp(text + i, ents[e].ent, el) == 0) {
                    cp = (unsigned char)ents[e].ch;
                    k = (int)el;
                    break;
                }
            }
        }
        int raw_invalid = 0;
        if (!k) {
            k = s_utf8(s + i, n - i, &cp);
            raw_invalid = cp == 0xFFFD && k == 1 && s[i] >= 0x80;
        }
        i += (size_t)k;
        if (s_is_space(cp)) {
            pending_space = o > 0;
            continue;
        }
        if (pending_space) out[o++] = ' ';
        pending_space = 0;
        if (raw_invalid) out[o++] = (char)s[i - 1];
        else o += s_put_utf8(out + o, s_lower(cp));
    }
    out[o] = '\0';
    return out;
}

/* ---- BPE ------------------------------------------------------------------- */

static int s_cache_push(lf_clip_tokenizer_t *t, int32_t id)
{
    if (t->cache_len == t->cache_cap) {
        size_t nc = t->cache_cap ? 2 * t->cache_cap : 1024;
        int32_t *p = realloc(t->cache_ids, nc * sizeof *p);
        if (!p) return LF_ENOMEM;
        t->cache_ids = p;
        t->cache_cap = nc;
    }
    t->cache_ids[t->cache_len++] = id;
    return 0;
}

/* BPE-encodes one pre-token (raw bytes w[0..n)); appends its ids to the
 * cache and returns the cache entry (offset << 24 | count), or a negative code. */
static int64_t s_bpe(lf_clip_tokenizer_t *t, const char *w, size_t n)
{
    int64_t entry;
    if (lf_strmap_get(t->cache, w, n, &entry)) return entry;
    /* Symbols as NUL-terminated strings in the GPT-2 alphabet. */
    char **sym = calloc(n, sizeof *sym);
    int ns = 0, rc = 0;
    char key[1024];
    if (!sym) return LF_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        const char *b = t->byte_sym[(unsigned char)w[i]];
        int last = i == n - 1;
        if (!(sym[ns] = malloc(strlen(b) + (last ? 5 : 1)))) {
            rc = LF_ENOMEM;
            goto done;
        }
        strcpy(sym[ns], b);
        if (last) strcat(sym[ns], "</w>");
        ns++;
    }
    for (;;) {
        int64_t best = INT64_MAX, r;
        int bi = -1;
        for (int i = 0; i + 1 < ns; i++) {
            size_t la = strlen(sym[i]), lb = strlen(sym[i + 1]);
            if (la + lb + 1 >= sizeof key) continue;
            memcpy(key, sym[i], la);
            key[la] = ' ';
            memcpy(key + la + 1, sym[i + 1], lb);
            if (lf_strmap_get(t->ranks, key, la + lb + 1, &r) && r < best) {
                best = r;
                bi = i;
            }
        }
        if (bi < 0) break;
        char *first = strdup(sym[bi]), *second = strdup(sym[bi + 1]);
        if (!first || !second) {
            free(first);
            free(second);
            rc = LF_ENOMEM;
            goto done;
        }
        int o = 0;
        for (int i = 0; i < ns;) {
            if (i + 1 < ns && strcmp(sym[i], first) == 0 && strcmp(sym[i + 1], second) == 0) {
                size_t la = strlen(sym[i]), lb = strlen(sym[i + 1]);
                char *m = malloc(la + lb + 1);
                if (!m) {
                    rc = LF_ENOMEM;
                    /* keep the array consistent for the cleanup below */
                    for (; i < ns; i++) sym[o++] = sym[i];
                    ns = o;
                    free(first);
                    free(second);
                    goto done;
                }
                memcpy(m, sym[i], la);
                memcpy(m + la, sym[i + 1], lb + 1);
                free(sym[i]);
                free(sym[i + 1]);
                sym[o++] = m;
                i += 2;
            } else {
                sym[o++] = sym[i++];
            }
        }
        ns = o;
        free(first);
        free(second);
        if (ns == 1) break;
    }
    size_t off = t->cache_len;
    for (int i = 0; i < ns; i++) {
        int64_t id;
        /* Every merged symbol is in the vocabulary by construction; fall back
         * to the unknown-token convention (EOS) for hostile vocab files. */
        if (!lf_strmap_get(t->vocab, sym[i], strlen(sym[i]), &id)) id = LF_CLIP_EOS;
        if ((rc = s_cache_push(t, (int32_t)id)) != 0) goto done;
    }
    entry = ((int64_t)off << 24) | ns;
    if (ns >= (1 << 24)) rc = LF_ETOOBIG;
    else rc = lf_strmap_put(t->cache, w, n, entry);
done:
    for (int i = 0; i < ns; i++) free(sym[i]);
    free(sym);
    return rc < 0 ? rc : entry;
}

/* ---- pre-tokenization ------------------------------------------------------- */

int lf_clip_tokenizer_encode(lf_clip_tokenizer_t *t, const char *text, int32_t *ids, int cap)
{
    char *clean = s_clean(text);
    if (!clean) return LF_ENOMEM;
    static const char *const fixed[] = {"<|startoftext|>", "<|endoftext|>", "'s", "'t", "'re", "'ve", "'m", "'ll", "'d"};
    const unsigned char *s = (const unsigned char *)clean;
    size_t n = strlen(clean), i = 0;
    int count = 0;
    while (i < n) {
        uint32_t cp;
        int k = s_utf8(s + i, n - i, &cp);
        if (s_is_space(cp)) {
            i += (size_t)k;
            continue;
        }
        size_t start = i, end = 0;
        for (size_t f = 0; f < sizeof fixed / sizeof fixed[0] && !end; f++) {
            size_t fl = strlen(fixed[f]);
            if (n - i >= fl && memcmp(s + i, fixed[f], fl) == 0) end = i + fl;
        }
        if (end && end - start > 3) {
            /* Special tokens map to their ids directly. */
            int32_t id = s[i + 2] == 's' ? LF_CLIP_BOS : LF_CLIP_EOS;
            if (count < cap) ids[count] = id;
            count++;
            i = end;
            continue;
        }
        if (!end) {
            if (s_is_letter(cp)) {
                end = i + (size_t)k;
                while (end < n) {
                    int kk = s_utf8(s + end, n - end, &cp);
                    if (!s_is_letter(cp)) break;
                    end += (size_t)kk;
                }
            } else if (s_is_number(cp)) {
                end = i + (size_t)k;
            } else {
                end = i + (size_t)k;
                while (end < n) {
                    int kk = s_utf8(s + end, n - end, &cp);
                    if (s_is_space(cp) || s_is_letter(cp) || s_is_number(cp)) break;
                    end += (size_t)kk;
                }
            }
        }
        int64_t e = s_bpe(t, clean + start, end - start);
        if (e < 0) {
            free(clean);
            return (int)e;
        }
        size_t off = (size_t)(e >> 24);
        int m = (int)(e & 0xFFFFFF);
        for (int j = 0; j < m; j++, count++)
            if (count < cap) ids[count] = t->cache_ids[off + (size_t)j];
        i = end;
    }
    free(clean);
    return count;
}

int lf_clip_tokenizer_encode_77(lf_clip_tokenizer_t *t, const char *text, int32_t ids[LF_CLIP_CONTEXT])
{
    int n = lf_clip_tokenizer_encode(t, text, ids + 1, LF_CLIP_CONTEXT - 2);
    if (n < 0) return n;
    int used = n < LF_CLIP_CONTEXT - 2 ? n : LF_CLIP_CONTEXT - 2;
    ids[0] = LF_CLIP_BOS;
    for (int i = used + 1; i < LF_CLIP_CONTEXT; i++) ids[i] = LF_CLIP_EOS;
    return n;
}

const char *lf_clip_tokenizer_token(const lf_clip_tokenizer_t *t, int32_t id)
{
    return id >= 0 && id < t->n_tokens ? t->tokens[id] : NULL;
}

int32_t lf_clip_tokenizer_id(const lf_clip_tokenizer_t *t, const char *token)
{
    int64_t id;
    return lf_strmap_get(t->vocab, token, strlen(token), &id) ? (int32_t)id : -1;
}

/* ---- construction ---------------------------------------------------------- */

__attribute__((format(printf, 4, 5))) static int s_fail(char *errstr, size_t errlen, int code,
                                                        const char *fmt, ...)
{
    if (errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(errstr, errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}

void lf_clip_tokenizer_destroy(lf_clip_tokenizer_t **self_p)
{
    if (!self_p || !*self_p) return;
    lf_clip_tokenizer_t *t = *self_p;
    lf_strmap_destroy(&t->vocab);
    lf_strmap_destroy(&t->ranks);
    lf_strmap_destroy(&t->cache);
    if (t->tokens)
        for (int32_t i = 0; i < t->n_tokens; i++) free(t->tokens[i]);
    free(t->tokens);
    free(t->cache_ids);
    free(t);
    *self_p = NULL;
}

static int s_add_token(lf_clip_tokenizer_t *t, const char *tok, size_t len, int32_t id)
{
    if (id < 0 || id >= t->n_tokens || t->tokens[id]) return LF_EFORMAT;
    /* Not strndup: tok need not be NUL-terminated (a merge's two halves
     * joined in a stack buffer), and strndup may read past len looking for
     * one (ASan's strict_string_checks reports it). */
    if (!(t->tokens[id] = malloc(len + 1))) return LF_ENOMEM;
    memcpy(t->tokens[id], tok, len);
    t->tokens[id][len] = '\0';
    return lf_strmap_put(t->vocab, tok, len, id);
}

int lf_clip_tokenizer_new(lf_clip_tokenizer_t **out, const char *merges, size_t merges_len,
                          const char *vocab_json, size_t vocab_len, char *errstr, size_t errlen)
{
    lf_clip_tokenizer_t *t = calloc(1, sizeof *t);
    if (!t) return s_fail(errstr, errlen, LF_ENOMEM, "out of memory");
    int rc = 0;
    json_t *vj = NULL;
    t->n_tokens = LF_CLIP_VOCAB_SIZE;
    t->vocab = lf_strmap_new();
    t->ranks = lf_strmap_new();
    t->cache = lf_strmap_new();
    t->tokens = calloc((size_t)t->n_tokens, sizeof *t->tokens);
    if (!t->vocab || !t->ranks || !t->cache || !t->tokens) {
        rc = s_fail(errstr, errlen, LF_ENOMEM, "out of memory");
        goto done;
    }
    /* GPT-2 byte alphabet: printable Latin-1 bytes map to themselves, the
     * others to 256 + n in byte order. order[] is the vocabulary order. */
    int order[256], no = 0, extra = 0;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
        if (printable) order[no++] = b;
    }
    for (int b = 0; b < 256; b++) {
        int printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
        uint32_t cp = printable ? (uint32_t)b : 256u + (uint32_t)extra++;
        if (!printable) order[no++] = b;
        size_t l = s_put_utf8(t->byte_sym[b], cp);
        t->byte_sym[b][l] = '\0';
    }
    /* Merges: skip the header line, take the first S_N_MERGES lines. */
    const char *p = memchr(merges, '\n', merges_len), *end = merges + merges_len;
    if (!p) {
        rc = s_fail(errstr, errlen, LF_EFORMAT, "merges: no header line");
        goto done;
    }
    p++;
    int nm = 0;
    while (p < end && nm < S_N_MERGES) {
        const char *e = memchr(p, '\n', (size_t)(end - p));
        if (!e) e = end;
        size_t l = (size_t)(e - p);
        if (l && p[l - 1] == '\r') l--;
        const char *sp = memchr(p, ' ', l);
        if (!sp || sp == p || sp == p + l - 1 || memchr(sp + 1, ' ', (size_t)(p + l - sp - 1))) {
            rc = s_fail(errstr, errlen, LF_EFORMAT, "merges: line %d is not 'a b'", nm + 2);
            goto done;
        }
        if ((rc = lf_strmap_put(t->ranks, p, l, nm)) != 0) goto done;
        if (!vocab_json) {
            char buf[256];
            size_t la = (size_t)(sp - p), lb = l - la - 1;
            if (la + lb >= sizeof buf) {
                rc = s_fail(errstr, errlen, LF_EFORMAT, "merges: line %d too long", nm + 2);
                goto done;
            }
            memcpy(buf, p, la);
            memcpy(buf + la, sp + 1, lb);
            if ((rc = s_add_token(t, buf, la + lb, 512 + nm)) != 0) {
                rc = s_fail(errstr, errlen, rc, "merges: duplicate merge result on line %d", nm + 2);
                goto done;
            }
        }
        nm++;
        p = e + 1;
    }
    if (nm != S_N_MERGES) {
        rc = s_fail(errstr, errlen, LF_EFORMAT, "merges: %d merges, need %d", nm, S_N_MERGES);
        goto done;
    }
    if (!vocab_json) {
        for (int i = 0; i < 256 && rc == 0; i++) {
            char buf[16]; /* a byte symbol (<= 2 UTF-8 bytes) + "</w>" + NUL */
            const char *b = t->byte_sym[order[i]];
            size_t l = strlen(b);
            rc = s_add_token(t, b, l, i);
            memcpy(buf, b, l);
            memcpy(buf + l, "</w>", 5);
            if (rc == 0) rc = s_add_token(t, buf, l + 4, 256 + i);
        }
        if (rc == 0) rc = s_add_token(t, "<|startoftext|>", 15, LF_CLIP_BOS);
        if (rc == 0) rc = s_add_token(t, "<|endoftext|>", 13, LF_CLIP_EOS);
        if (rc != 0) rc = s_fail(errstr, errlen, rc, "building the byte vocabulary failed");
        goto done;
    }
    json_error_t je;
    vj = json_loadb(vocab_json, vocab_len, 0, &je);
    if (!json_is_object(vj)) {
        rc = s_fail(errstr, errlen, LF_EFORMAT, "vocab.json: %s", vj ? "not an object" : je.text);
        goto done;
    }
    const char *k;
    json_t *v;
    json_object_foreach(vj, k, v) {
        if (!json_is_integer(v) || (rc = s_add_token(t, k, strlen(k), (int32_t)json_integer_value(v))) != 0) {
            rc = s_fail(errstr, errlen, LF_EFORMAT, "vocab.json: bad or duplicate id for '%s'", k);
            goto done;
        }
    }
    for (int32_t i = 0; i < t->n_tokens; i++)
        if (!t->tokens[i]) {
            rc = s_fail(errstr, errlen, LF_EFORMAT, "vocab.json: id %d missing", i);
            goto done;
        }
done:
    json_decref(vj);
    if (rc != 0) {
        lf_clip_tokenizer_destroy(&t);
        return rc;
    }
    *out = t;
    return 0;
}

/* Reads a whole file, through zlib when gzip-compressed (gzread passes plain
 * files through). Caller frees *buf. */
static int s_read_file(const char *path, char **buf, size_t *len)
{
    gzFile f = gzopen(path, "rb");
    if (!f) return LF_EIO;
    size_t cap = 1 << 20, n = 0;
    char *b = malloc(cap);
    int rc = 0;
    while (b) {
        if (n == cap) {
            char *nb = realloc(b, cap *= 2);
            if (!nb) {
                free(b);
                b = NULL;
                break;
            }
            b = nb;
        }
        int r = gzread(f, b + n, (unsigned)(cap - n));
        if (r < 0) {
            rc = LF_EIO;
            break;
        }
        if (r == 0) break;
        n += (size_t)r;
    }
    gzclose(f);
    if (!b) return LF_ENOMEM;
    if (rc) {
        free(b);
        return rc;
    }
    *buf = b;
    *len = n;
    return 0;
}

int lf_clip_tokenizer_load(lf_clip_tokenizer_t **out, const char *path, char *errstr, size_t errlen)
{
    struct stat sb;
    if (stat(path, &sb) != 0) return s_fail(errstr, errlen, LF_EIO, "%s: %s", path, strerror(errno));
    char *m = NULL, *v = NULL;
    size_t ml = 0, vl = 0;
    int rc;
    if (S_ISDIR(sb.st_mode)) {
        size_t pl = strlen(path) + 32;
        char *p = malloc(pl);
        if (!p) return LF_ENOMEM;
        snprintf(p, pl, "%s/merges.txt", path);
        rc = s_read_file(p, &m, &ml);
        snprintf(p, pl, "%s/vocab.json", path);
        if (rc == 0) rc = s_read_file(p, &v, &vl);
        free(p);
    } else {
        rc = s_read_file(path, &m, &ml);
    }
    if (rc == 0) {
        rc = lf_clip_tokenizer_new(out, m, ml, v, vl, errstr, errlen);
    } else {
        s_fail(errstr, errlen, rc, "%s: cannot read tokenizer files", path);
    }
    free(m);
    free(v);
    return rc;
}
