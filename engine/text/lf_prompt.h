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
 * Extra networks follow A1111's extra_networks.parse_prompt: every tag
 * matching <(\w+):([^>]+)> is cut out of the text before parsing (what does
 * not match, such as "<lora:>" or "<lora name:1>", stays as text), its
 * arguments split at ':'; lf_prompt_extract returns them all, with the
 * LoRA ones ("lora", and A1111's alias "lyco") read as
 * <lora:name[:te[:unet[:dyn]]]> plus named te=, unet=, dyn= arguments.
 *
 * Pure functions; thread-safe given a tokenizer not shared between threads. */
#ifndef LF_PROMPT_H
#define LF_PROMPT_H

#include <stddef.h>
#include <stdint.h>

#include "lf_clip_tokenizer.h"
#include "lf_extranet.h"

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

/* One extra-network tag taken out of a prompt (common/lf_extranet.h). */
typedef lf_extranet_t lf_prompt_extra_t;

/* lf_extranet_extract (the engine's name for it). Cuts every extra-network
 * tag out of text: *out_text (caller owns; free())
 * is the text without them, *extras (caller owns; lf_prompt_extras_free) and
 * *n the tags in prompt order (duplicates kept). A LoRA tag whose weights do
 * not read as finite numbers (where A1111 raises) or has no name is
 * LF_EINVAL with the tag quoted in err; also LF_ENOMEM. On failure the
 * outputs are untouched. Tags of other kinds are returned for the caller to
 * refuse or warn about (A1111 drops unknown ones with a console warning). */
int lf_prompt_extract(const char *text, char **out_text, lf_prompt_extra_t **extras, size_t *n,
                      char *err, size_t errlen);
void lf_prompt_extras_free(lf_prompt_extra_t **extras, size_t n);

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
