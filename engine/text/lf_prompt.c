/* lf_prompt: a hand-written scanner equivalent to A1111's re_attention
 * alternation (tried in order at each position), the bracket stacks, the
 * BREAK split and the chunker. */
#include "lf_prompt.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lf_error.h"

typedef struct {
    lf_prompt_span_t *v;
    size_t n, cap;
    int oom;
} s_spans_t;

static void s_push(s_spans_t *s, const char *text, size_t len, double w)
{
    if (s->oom) return;
    if (s->n == s->cap) {
        size_t nc = s->cap ? 2 * s->cap : 16;
        lf_prompt_span_t *nv = realloc(s->v, nc * sizeof *nv);
        if (!nv) {
            s->oom = 1;
            return;
        }
        s->v = nv;
        s->cap = nc;
    }
    char *t = strndup(text, len);
    if (!t) {
        s->oom = 1;
        return;
    }
    s->v[s->n++] = (lf_prompt_span_t){t, w};
}

static int s_is_word(char c)
{
    return isalnum((unsigned char)c) || c == '_' || (unsigned char)c >= 0x80;
}

/* Plain text: split at \s*\bBREAK\b\s* into text / BREAK / text. */
static void s_text(s_spans_t *s, const char *t, size_t len)
{
    size_t start = 0;
    for (size_t i = 0; i + 5 <= len; i++) {
        if (memcmp(t + i, "BREAK", 5) != 0) continue;
        if ((i > 0 && s_is_word(t[i - 1])) || (i + 5 < len && s_is_word(t[i + 5]))) continue;
        size_t a = i, b = i + 5;
        while (a > start && isspace((unsigned char)t[a - 1])) a--;
        while (b < len && isspace((unsigned char)t[b])) b++;
        s_push(s, t + start, a - start, 1.0);
        s_push(s, "BREAK", 5, LF_PROMPT_BREAK_WEIGHT);
        start = b;
        i = b - 1;
    }
    s_push(s, t + start, len - start, 1.0);
}

static void s_mul(s_spans_t *s, size_t from, double m)
{
    for (size_t p = from; p < s->n; p++) s->v[p].weight *= m;
}

/* Matches ":\s*([+-]?[.\d]+)\s*\)" at p; returns its length and the weight. */
static size_t s_weight(const char *p, double *w, int *valid)
{
    const char *q = p + 1;
    while (isspace((unsigned char)*q)) q++;
    const char *num = q;
    if (*q == '+' || *q == '-') q++;
    const char *digits = q;
    while (*q == '.' || isdigit((unsigned char)*q)) q++;
    if (q == digits) return 0;
    const char *num_end = q;
    while (isspace((unsigned char)*q)) q++;
    if (*q != ')') return 0;
    char *end;
    char buf[64];
    size_t nl = (size_t)(num_end - num);
    if (nl >= sizeof buf) nl = sizeof buf - 1;
    memcpy(buf, num, nl);
    buf[nl] = '\0';
    *w = strtod(buf, &end);
    *valid = *end == '\0';
    return (size_t)(q + 1 - p);
}

int lf_prompt_parse(const char *text, lf_prompt_span_t **spans, size_t *n)
{
    s_spans_t s = {0};
    size_t *round = NULL, *square = NULL, nr = 0, nsq = 0, len = strlen(text);
    round = malloc((len + 1) * sizeof *round);
    square = malloc((len + 1) * sizeof *square);
    if (!round || !square) s.oom = 1;
    for (size_t i = 0; i < len && !s.oom;) {
        const char *p = text + i;
        double w;
        int valid = 0;
        size_t wl;
        if (p[0] == '\\') {
            /* \( \) \[ \] \\ are literals; a lone backslash yields "". */
            int esc = p[1] == '(' || p[1] == ')' || p[1] == '[' || p[1] == ']' || p[1] == '\\';
            s_push(&s, p + 1, esc ? 1 : 0, 1.0);
            i += esc ? 2 : 1;
        } else if (p[0] == '(') {
            round[nr++] = s.n;
            i++;
        } else if (p[0] == '[') {
            square[nsq++] = s.n;
            i++;
        } else if (p[0] == ':' && (wl = s_weight(p, &w, &valid)) > 0) {
            if (valid && nr) s_mul(&s, round[--nr], w);
            else s_text(&s, p, wl);
            i += wl;
        } else if (p[0] == ')' || p[0] == ']' || p[0] == ':') {
            if (p[0] == ')' && nr) s_mul(&s, round[--nr], 1.1);
            else if (p[0] == ']' && nsq) s_mul(&s, square[--nsq], 1 / 1.1);
            else s_text(&s, p, 1);
            i++;
        } else {
            size_t e = i;
            while (e < len && !strchr("\\()[]:", text[e])) e++;
            s_text(&s, p, e - i);
            i = e;
        }
    }
    /* Unclosed brackets apply to the rest, in the reference's order. */
    for (size_t k = 0; k < nr; k++) s_mul(&s, round[k], 1.1);
    for (size_t k = 0; k < nsq; k++) s_mul(&s, square[k], 1 / 1.1);
    free(round);
    free(square);
    if (s.n == 0) s_push(&s, "", 0, 1.0);
    /* Merge runs of identical weights. */
    for (size_t k = 0; !s.oom && k + 1 < s.n;) {
        if (s.v[k].weight == s.v[k + 1].weight) {
            size_t a = strlen(s.v[k].text), b = strlen(s.v[k + 1].text);
            char *m = realloc(s.v[k].text, a + b + 1);
            if (!m) {
                s.oom = 1;
                break;
            }
            memcpy(m + a, s.v[k + 1].text, b + 1);
            s.v[k].text = m;
            free(s.v[k + 1].text);
            memmove(&s.v[k + 1], &s.v[k + 2], (s.n - k - 2) * sizeof *s.v);
            s.n--;
        } else {
            k++;
        }
    }
    if (s.oom) {
        lf_prompt_spans_free(&s.v, s.n);
        return LF_ENOMEM;
    }
    *spans = s.v;
    *n = s.n;
    return 0;
}

void lf_prompt_spans_free(lf_prompt_span_t **spans, size_t n)
{
    if (!spans || !*spans) return;
    for (size_t i = 0; i < n; i++) free((*spans)[i].text);
    free(*spans);
    *spans = NULL;
}

typedef struct {
    lf_prompt_chunk_t *v;
    size_t n, cap;
    int32_t ids[LF_PROMPT_CHUNK_TOKENS];
    float w[LF_PROMPT_CHUNK_TOKENS];
    int len, last_comma, token_count;
} s_chunker_t;

static int s_next_chunk(s_chunker_t *c, int is_last)
{
    c->token_count += is_last ? c->len : LF_PROMPT_CHUNK_TOKENS;
    if (c->n == c->cap) {
        size_t nc = c->cap ? 2 * c->cap : 4;
        lf_prompt_chunk_t *nv = realloc(c->v, nc * sizeof *nv);
        if (!nv) return LF_ENOMEM;
        c->v = nv;
        c->cap = nc;
    }
    lf_prompt_chunk_t *ch = &c->v[c->n++];
    ch->ids[0] = LF_CLIP_BOS;
    ch->weights[0] = 1.0f;
    for (int i = 0; i < LF_PROMPT_CHUNK_TOKENS; i++) {
        ch->ids[i + 1] = i < c->len ? c->ids[i] : LF_CLIP_EOS;
        ch->weights[i + 1] = i < c->len ? c->w[i] : 1.0f;
    }
    ch->ids[LF_CLIP_CONTEXT - 1] = LF_CLIP_EOS;
    ch->weights[LF_CLIP_CONTEXT - 1] = 1.0f;
    c->len = 0;
    c->last_comma = -1;
    return 0;
}

int lf_prompt_chunks(lf_clip_tokenizer_t *tok, const char *text, int comma_backtrack,
                     lf_prompt_chunk_t **chunks, size_t *n_chunks, int *token_count)
{
    lf_prompt_span_t *spans;
    size_t ns;
    int rc = lf_prompt_parse(text, &spans, &ns);
    if (rc != 0) return rc;
    s_chunker_t c = {.last_comma = -1};
    int32_t comma = lf_clip_tokenizer_id(tok, ",</w>");
    int32_t *ids = NULL;
    for (size_t s = 0; s < ns && rc == 0; s++) {
        if (spans[s].weight == LF_PROMPT_BREAK_WEIGHT && strcmp(spans[s].text, "BREAK") == 0) {
            rc = s_next_chunk(&c, 0);
            continue;
        }
        int nt = lf_clip_tokenizer_encode(tok, spans[s].text, NULL, 0);
        if (nt < 0) {
            rc = nt;
            break;
        }
        int32_t *nids = realloc(ids, (size_t)(nt ? nt : 1) * sizeof *ids);
        if (!nids) {
            rc = LF_ENOMEM;
            break;
        }
        ids = nids;
        lf_clip_tokenizer_encode(tok, spans[s].text, ids, nt);
        for (int pos = 0; pos < nt && rc == 0; pos++) {
            if (ids[pos] == comma) {
                c.last_comma = c.len;
            } else if (comma_backtrack > 0 && c.len == LF_PROMPT_CHUNK_TOKENS && c.last_comma != -1 &&
                       c.len - c.last_comma <= comma_backtrack) {
                int brk = c.last_comma + 1, nrel = c.len - brk;
                int32_t rid[LF_PROMPT_CHUNK_TOKENS];
                float rw[LF_PROMPT_CHUNK_TOKENS];
                memcpy(rid, c.ids + brk, (size_t)nrel * sizeof *rid);
                memcpy(rw, c.w + brk, (size_t)nrel * sizeof *rw);
                c.len = brk;
                if ((rc = s_next_chunk(&c, 0)) != 0) break;
                memcpy(c.ids, rid, (size_t)nrel * sizeof *rid);
                memcpy(c.w, rw, (size_t)nrel * sizeof *rw);
                c.len = nrel;
            }
            if (c.len == LF_PROMPT_CHUNK_TOKENS && (rc = s_next_chunk(&c, 0)) != 0) break;
            c.ids[c.len] = ids[pos];
            c.w[c.len] = (float)spans[s].weight;
            c.len++;
        }
    }
    if (rc == 0 && (c.len > 0 || c.n == 0)) rc = s_next_chunk(&c, 1);
    free(ids);
    lf_prompt_spans_free(&spans, ns);
    if (rc != 0) {
        free(c.v);
        return rc;
    }
    *chunks = c.v;
    *n_chunks = c.n;
    if (token_count) *token_count = c.token_count;
    return 0;
}

/* ---- Extra networks: <kind:args> (common/lf_extranet) ---- */

int lf_prompt_extract(const char *text, char **out_text, lf_prompt_extra_t **extras, size_t *n,
                      char *err, size_t errlen)
{
    return lf_extranet_extract(text, out_text, extras, n, err, errlen);
}

void lf_prompt_extras_free(lf_prompt_extra_t **extras, size_t n)
{
    lf_extranet_free(extras, n);
}
