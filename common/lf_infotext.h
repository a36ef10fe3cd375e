/* lf_infotext: A1111 "parameters" text — formatting, parsing, and the PNG
 * text chunk that carries it.
 *
 * The text is the prompt, an optional "Negative prompt: ..." line, and a
 * last line of "Key: value" pairs joined by ", " (for example
 * "Steps: 20, Sampler: Euler a, Schedule type: Karras, CFG scale: 7,
 * Seed: 1, Size: 512x512, Model: name"). Values containing ',', ':' or a
 * newline are written as JSON strings, as A1111's quote() does. Parsing
 * follows A1111's parse_generation_parameters: the last line is parameters
 * only if it holds at least 3 "Key: value" matches; a "WxH" value of key K
 * is stored as "K-1" = W and "K-2" = H (A1111's convention, so "Size"
 * becomes "Size-1"/"Size-2").
 *
 * Pure string code (jansson for JSON quoting, zlib for CRC and zTXt/iTXt);
 * thread-safe. */
#ifndef LF_INFOTEXT_H
#define LF_INFOTEXT_H

#include <stddef.h>

typedef struct {
    char *key;
    char *value;
} lf_infotext_kv_t;

typedef struct {
    char *prompt;            /* owned; "" when none */
    char *negative;          /* owned; "" when none */
    lf_infotext_kv_t *params; /* owned, in text order */
    size_t n_params;
} lf_infotext_t;

/* Formats the parameters text into *out (caller owns; free()). params with
 * a NULL value are skipped; a pair whose value equals its key is written as
 * the key alone (A1111). negative may be NULL or "". Returns 0 or LF_ENOMEM. */
int lf_infotext_format(const char *prompt, const char *negative, const lf_infotext_kv_t *params,
                       size_t n, char **out);
/* Parses text into *out (fields owned by *out; release with
 * lf_infotext_clear). Returns 0 or LF_ENOMEM; never fails on content. */
int lf_infotext_parse(const char *text, lf_infotext_t *out);
void lf_infotext_clear(lf_infotext_t *info);
/* The value for key (borrowed), or NULL. */
const char *lf_infotext_get(const lf_infotext_t *info, const char *key);

/* Builds a complete PNG chunk (length, type, data, CRC) holding keyword and
 * UTF-8 text: tEXt (Latin-1) when every character fits Latin-1, else an
 * uncompressed iTXt, as PIL (and so A1111) does. *out is caller-owned.
 * Returns 0, LF_EINVAL (keyword not 1..79 bytes) or LF_ENOMEM. */
int lf_infotext_png_chunk(const char *keyword, const char *text, unsigned char **out, size_t *len);
/* Finds the first tEXt/zTXt/iTXt chunk named keyword in a PNG file image and
 * returns its text as UTF-8 in *out (caller owns). Returns 0, LF_ENOTFOUND,
 * LF_EFORMAT (not a PNG, bad chunk) or LF_ENOMEM. */
int lf_infotext_png_find(const unsigned char *png, size_t len, const char *keyword, char **out);

#endif
