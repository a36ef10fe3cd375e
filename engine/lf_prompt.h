/* lf_prompt: A1111 prompt syntax — attention weights and 75-token chunks.
 *
 * Parsing follows A1111's parse_prompt_attention: "(x)" multiplies the
 * weight of x by 1.1, "[x]" divides it by 1.1, "(x:w)" multiplies it by w,
 * brackets nest, "\(", "\)", "\[", "\]" and "\\" are literals, a lone "\"
 * is dropped, unmatched closers are text, brackets still open at the end
 * apply to the rest of the prompt, and "BREAK" (a whole word) starts a new
 * chunk. Adjacent spans with equal weights are merged. One difference: a
 * weight A1111 cannot convert (e.g. "(x:1.2.3)", where Python raises) is
 * kept as text here.
 *
 * Chunking follows A1111's tokenize_line: each span is tokenized on its own,
 * tokens go into chunks of 75 that are wrapped as BOS + 75 + EOS (padded
 * with EOS, weight 1.0 for BOS/EOS/padding); BREAK closes the current chunk;
 * with comma_backtrack > 0, a full chunk whose last comma is at most that
 * many tokens back moves the tokens after the comma to the next chunk (A1111
 * default 20). An empty prompt gives one padded chunk.
 *
 * Pure functions; thread-safe given a tokenizer not shared between threads. */
#ifndef LF_PROMPT_H
#define LF_PROMPT_H

#include <stddef.h>
#include <stdint.h>

#include "lf_clip_tokenizer.h"

#define LF_PROMPT_CHUNK_TOKENS 75
#define LF_PROMPT_BREAK_WEIGHT (-1.0)

typedef struct {
    char *text;    /* owned by the span array */
    double weight; /* LF_PROMPT_BREAK_WEIGHT for a BREAK (text "BREAK") */
} lf_prompt_span_t;

typedef struct {
    int32_t ids[LF_CLIP_CONTEXT];
    float weights[LF_CLIP_CONTEXT];
} lf_prompt_chunk_t;

/* Parses text into *spans (caller owns; free with lf_prompt_spans_free) and
 * *n. Returns 0 or LF_ENOMEM (outputs untouched). Never fails on syntax. */
int lf_prompt_parse(const char *text, lf_prompt_span_t **spans, size_t *n);
void lf_prompt_spans_free(lf_prompt_span_t **spans, size_t n);

/* Parses and tokenizes text into *chunks (caller owns; free()) and *n_chunks;
 * *token_count (may be NULL) receives A1111's token count (75 per full chunk
 * plus the tokens of the last). Returns 0, LF_ENOMEM or a tokenizer error. */
int lf_prompt_chunks(lf_clip_tokenizer_t *tok, const char *text, int comma_backtrack,
                     lf_prompt_chunk_t **chunks, size_t *n_chunks, int *token_count);

#endif
