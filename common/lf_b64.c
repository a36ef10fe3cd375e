/* lf_b64: a table-driven base64 codec. */
#include "lf_b64.h"

#include <stdlib.h>
#include <string.h>

#include "lf_error.h"

static const char s_alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *lf_b64_encode(const uint8_t *data, size_t len) {
    size_t n = (len + 2) / 3 * 4;
    char *out = malloc(n + 1), *o = out;
    if (!out) return NULL;
    size_t i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)data[i] << 16 | (uint32_t)data[i + 1] << 8 | data[i + 2];
        *o++ = s_alpha[v >> 18];
        *o++ = s_alpha[(v >> 12) & 63];
        *o++ = s_alpha[(v >> 6) & 63];
        *o++ = s_alpha[v & 63];
    }
    if (i < len) {
        uint32_t v = (uint32_t)data[i] << 16 | (i + 1 < len ? (uint32_t)data[i + 1] << 8 : 0);
        *o++ = s_alpha[v >> 18];
        *o++ = s_alpha[(v >> 12) & 63];
        *o++ = i + 1 < len ? s_alpha[(v >> 6) & 63] : '=';
        *o++ = '=';
    }
    *o = 0;
    return out;
}

static int s_val(unsigned char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62; /* '-' and '_': the URL-safe alphabet */
    if (c == '/' || c == '_') return 63;
    return -1;
}

int lf_b64_decode(const char *text, size_t text_len, size_t max_out, uint8_t **out, size_t *out_len) {
    if (text_len > 5 && !strncmp(text, "data:", 5)) {
        const char *comma = memchr(text, ',', text_len);
        if (!comma) return LF_EFORMAT;
        text_len -= (size_t)(comma + 1 - text);
        text = comma + 1;
    }
    if (text_len / 4 * 3 > max_out + 3) return LF_ETOOBIG;
    uint8_t *buf = malloc(text_len / 4 * 3 + 3);
    if (!buf) return LF_ENOMEM;
    size_t n = 0;
    uint32_t acc = 0;
    int bits = 0, pad = 0;
    for (size_t i = 0; i < text_len; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c == ' ' || c == '\n' || c == '\r' || c == '\t') continue;
        if (c == '=') {
            pad++;
            continue;
        }
        int v = s_val(c);
        if (v < 0 || pad) {
            free(buf);
            return LF_EFORMAT;
        }
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            buf[n++] = (uint8_t)(acc >> bits);
        }
    }
    if (pad > 2 || bits >= 6 || n > max_out) {
        free(buf);
        return n > max_out ? LF_ETOOBIG : LF_EFORMAT;
    }
    *out = buf;
    *out_len = n;
    return 0;
}
