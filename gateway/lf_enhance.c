/* lf_enhance: prompt enhancement's requests and replies (lf_enhance.h). */
#include "lf_enhance.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lf_error.h"

const char lf_enhance_default_system[] =
    "You rewrite prompts for a Stable Diffusion image generator. Keep the subject and every "
    "detail the user gave; add concrete visual detail: composition, lighting, style, medium, "
    "colours, camera or art terms. Write one paragraph of comma-separated phrases, at most 75 "
    "words. Answer with the prompt only: no preamble, no quotes, no explanation.";

static void s_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void s_err(char *err, size_t errlen, const char *fmt, ...) {
    if (!err || !errlen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

int lf_enhance_api_parse(const char *s, lf_enhance_api_t *api) {
    if (s && !strcasecmp(s, "openai")) *api = LF_ENHANCE_OPENAI;
    else if (s && !strcasecmp(s, "ollama")) *api = LF_ENHANCE_OLLAMA;
    else return LF_EINVAL;
    return 0;
}

const char *lf_enhance_api_name(lf_enhance_api_t api) { return api == LF_ENHANCE_OLLAMA ? "ollama" : "openai"; }

static bool s_ends(const char *s, size_t n, const char *tail) {
    size_t t = strlen(tail);
    return n >= t && !memcmp(s + n - t, tail, t);
}

int lf_enhance_url(const lf_enhance_opts_t *o, char *out, size_t len) {
    const char *u = o->url ? o->url : "";
    size_t n = strlen(u);
    while (n && u[n - 1] == '/') n--;
    const char *path;
    if (o->api == LF_ENHANCE_OLLAMA) path = s_ends(u, n, "/api/chat") ? "" : "/api/chat";
    else if (s_ends(u, n, "/chat/completions")) path = "";
    else path = s_ends(u, n, "/v1") ? "/chat/completions" : "/v1/chat/completions";
    int w = snprintf(out, len, "%.*s%s", (int)n, u, path);
    return w < 0 || (size_t)w >= len ? LF_EOVERFLOW : 0;
}

int lf_enhance_body(const lf_enhance_opts_t *o, const char *prompt, const char *instruction, char **out) {
    if (!prompt) return LF_EINVAL;
    char *user = NULL;
    int w = instruction && *instruction
                ? asprintf(&user, "Instruction: %s\n\nPrompt: %s", instruction, prompt)
                : asprintf(&user, "Prompt: %s", prompt);
    if (w < 0) return LF_ENOMEM;
    json_t *msgs = json_pack("[{s:s,s:s},{s:s,s:s}]", "role", "system", "content",
                             o->system && *o->system ? o->system : lf_enhance_default_system, "role", "user",
                             "content", user);
    free(user);
    json_t *j = msgs ? json_pack("{s:o,s:b}", "messages", msgs, "stream", 0) : NULL;
    if (!j) return LF_ENOMEM;
    if (o->model && *o->model) json_object_set_new(j, "model", json_string(o->model));
    if (o->api == LF_ENHANCE_OLLAMA)
        json_object_set_new(j, "options", json_pack("{s:i}", "num_predict", LF_ENHANCE_MAX_TOKENS));
    else
        json_object_set_new(j, "max_tokens", json_integer(LF_ENHANCE_MAX_TOKENS));
    *out = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    return *out ? 0 : LF_ENOMEM;
}

/* Code points of a NUL-terminated string, or -1 when it is not UTF-8. */
static long s_utf8_len(const char *s) {
    const unsigned char *p = (const unsigned char *)s;
    long n = 0;
    while (*p) {
        int k = *p < 0x80 ? 0 : (*p & 0xe0) == 0xc0 ? 1 : (*p & 0xf0) == 0xe0 ? 2 : (*p & 0xf8) == 0xf0 ? 3 : -1;
        if (k < 0 || (k == 1 && *p < 0xc2)) return -1;
        p++;
        for (int i = 0; i < k; i++, p++)
            if ((*p & 0xc0) != 0x80) return -1;
        n++;
    }
    return n;
}

/* The server's own error text: {"error": "..."} (Ollama) or {"error": {"message": ...}} (OpenAI). */
static const char *s_server_error(const json_t *j) {
    const json_t *e = json_is_object(j) ? json_object_get(j, "error") : NULL;
    if (json_is_string(e)) return json_string_value(e);
    const json_t *m = json_is_object(e) ? json_object_get(e, "message") : NULL;
    return json_is_string(m) ? json_string_value(m) : NULL;
}

/* Appends n bytes of t to *acc (a growing NUL-terminated string). 0 or LF_ENOMEM. */
static int s_append(char **acc, size_t *len, const char *t, size_t n) {
    char *p = realloc(*acc, *len + n + 1);
    if (!p) return LF_ENOMEM;
    memcpy(p + *len, t, n);
    *len += n;
    p[*len] = 0;
    *acc = p;
    return 0;
}

/* The content of one answer object: choices[0].message.content (OpenAI),
 * choices[0].delta.content (an OpenAI stream chunk) or message.content
 * (Ollama, whole or one line of its stream). NULL when absent. */
static const json_t *s_content(lf_enhance_api_t api, const json_t *j, bool chunk) {
    if (api == LF_ENHANCE_OLLAMA) return json_object_get(json_object_get(j, "message"), "content");
    const json_t *ch = json_array_get(json_object_get(j, "choices"), 0);
    return json_object_get(json_object_get(ch, chunk ? "delta" : "message"), "content");
}

/* A streamed answer, which some servers send whatever "stream" says
 * (transformers serve does): OpenAI's server-sent events ("data: {chunk}"
 * lines up to "data: [DONE]") or Ollama's one JSON object per line. The
 * pieces of content joined into *out. 0, LF_EPROTO (no line parses, or
 * none has content) or LF_ENOMEM. */
static int s_parse_stream(lf_enhance_api_t api, const char *body, size_t len, char **out) {
    char *acc = NULL;
    size_t n = 0;
    int parts = 0, rc = 0;
    const char *p = body, *end = body + len;
    while (p < end && !rc) {
        const char *e = memchr(p, '\n', (size_t)(end - p));
        if (!e) e = end;
        const char *l = p;
        p = e + 1;
        if (api == LF_ENHANCE_OPENAI) {
            if (e - l < 5 || strncmp(l, "data:", 5)) continue; /* blank lines, event:, id:, comments */
            l += 5;
            while (l < e && *l == ' ') l++;
            if (e - l >= 6 && !strncmp(l, "[DONE]", 6)) break;
        }
        json_t *j = json_loadb(l, (size_t)(e - l), JSON_ALLOW_NUL, NULL);
        if (!j) continue;
        const json_t *c = s_content(api, j, api == LF_ENHANCE_OPENAI);
        if (json_is_string(c)) {
            rc = s_append(&acc, &n, json_string_value(c), json_string_length(c));
            for (size_t i = n - json_string_length(c); !rc && i < n; i++)
                if (!acc[i]) acc[i] = ' '; /* a \u0000 (noise) would cut the text */
            parts++;
        }
        json_decref(j);
    }
    if (!rc && !parts) rc = LF_EPROTO;
    if (rc) {
        free(acc);
        return rc;
    }
    *out = acc ? acc : strdup("");
    return *out ? 0 : LF_ENOMEM;
}

int lf_enhance_parse(const lf_enhance_opts_t *o, long status, const char *body, size_t len, char **text,
                     char *err, size_t errlen) {
    json_error_t je;
    json_t *j = body ? json_loadb(body, len, JSON_ALLOW_NUL, &je) : NULL;
    if (status < 200 || status > 299) {
        const char *m = s_server_error(j);
        s_err(err, errlen, "the enhancement endpoint answered HTTP %ld%s%.200s", status, m ? ": " : "",
              m ? m : "");
        json_decref(j);
        return LF_EIO;
    }
    char *content = NULL;
    if (!j) {
        int rc = body ? s_parse_stream(o->api, body, len, &content) : LF_EPROTO;
        if (rc == LF_ENOMEM) return rc;
        if (rc) {
            s_err(err, errlen, "the enhancement endpoint's answer is not JSON (%.100s)", body ? je.text : "no body");
            return LF_EPROTO;
        }
    } else {
        const json_t *c = s_content(o->api, j, false);
        if (!json_is_string(c)) {
            const char *m = s_server_error(j);
            if (m) s_err(err, errlen, "the enhancement endpoint answered an error: %.200s", m);
            else
                s_err(err, errlen, "the enhancement endpoint's answer has no %s",
                      o->api == LF_ENHANCE_OLLAMA ? "message.content" : "choices[0].message.content");
            json_decref(j);
            return LF_EPROTO;
        }
        size_t cl = json_string_length(c);
        content = malloc(cl + 1);
        if (content) {
            memcpy(content, json_string_value(c), cl);
            for (size_t i = 0; i < cl; i++)
                if (!content[i]) content[i] = ' '; /* a \u0000 (noise) would cut the text */
            content[cl] = 0;
        }
        json_decref(j);
        if (!content) return LF_ENOMEM;
    }
    int rc = 0;
    /* Control characters (a small model's noise) would end up in the infotext: blanks instead. */
    for (char *q = content; *q; q++)
        if ((unsigned char)*q < 0x20 || *q == 0x7f) *q = ' ';
    /* A reasoning model's <think>...</think> comes first: keep what follows. */
    const char *s = content;
    const char *t = strstr(s, "</think>"), *th = strstr(s, "<think>");
    if (t && th && th < t) s = t + 8;
    const char *e = s + strlen(s);
    while (*s == ' ') s++;
    while (e > s && e[-1] == ' ') e--;
    if (e - s >= 2 && ((*s == '"' && e[-1] == '"') || (*s == '\'' && e[-1] == '\''))) {
        s++, e--;
        while (*s == ' ') s++;
        while (e > s && e[-1] == ' ') e--;
    }
    char *r = strndup(s, (size_t)(e - s));
    free(content);
    if (!r) return LF_ENOMEM;
    long chars = s_utf8_len(r);
    if (!*r) {
        s_err(err, errlen, "the enhancement endpoint answered an empty prompt");
        rc = LF_EFORMAT;
    } else if (chars < 0) {
        s_err(err, errlen, "the enhanced prompt is not valid UTF-8");
        rc = LF_EFORMAT;
    } else if ((size_t)chars > o->max_chars) {
        s_err(err, errlen, "the enhanced prompt has %ld characters; the limit is %zu", chars, o->max_chars);
        rc = LF_ETOOBIG;
    }
    if (rc) {
        free(r);
        return rc;
    }
    *text = r;
    return 0;
}
