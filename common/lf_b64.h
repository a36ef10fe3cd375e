/* lf_b64: base64 (RFC 4648, standard alphabet): A1111 images, the T5
 * tokenizer.json's charsmap. Pure and thread-safe. Decoding accepts a
 * "data:...;base64," prefix, missing padding and whitespace (clients wrap
 * lines); anything else is refused. */
#ifndef LF_B64_H
#define LF_B64_H

#include <stddef.h>
#include <stdint.h>

/* Encode; returns a NUL-terminated string (caller owns, free()) or NULL. */
char *lf_b64_encode(const uint8_t *data, size_t len);
/* Decode at most max_out bytes into a new buffer (caller owns, free()).
 * Returns 0, LF_EFORMAT (not base64), LF_ETOOBIG (over max_out), LF_ENOMEM. */
int lf_b64_decode(const char *text, size_t text_len, size_t max_out, uint8_t **out, size_t *out_len);

#endif
