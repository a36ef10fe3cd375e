/* lf_clip_tokenizer: the CLIP byte-level BPE tokenizer (OpenAI CLIP / HF
 * CLIPTokenizer, as used by SD1.x, SDXL and Flux's CLIP-L).
 *
 * Pipeline, as the reference: whitespace runs collapsed to one space and the
 * text trimmed (ftfy is not applied; the HTML entities &amp; &lt; &gt; &quot;
 * &#39; are unescaped), lower-cased, split by the CLIP pattern
 *   <|startoftext|>|<|endoftext|>|'s|'t|'re|'ve|'m|'ll|'d|\p{L}+|\p{N}|[^\s\p{L}\p{N}]+
 * then each piece's UTF-8 bytes mapped to the GPT-2 byte alphabet, "</w>"
 * appended to its last symbol, and merged by BPE rank.
 *
 * Unicode classes: ASCII exactly as Python's re; beyond ASCII a pragmatic
 * table: letters are the alphabetic ranges of Latin-1/Extended, IPA, Greek,
 * Cyrillic, Armenian, Hebrew, Arabic, Indic scripts, Thai, Georgian, Hangul,
 * Kana, CJK ideographs and fullwidth Latin; numbers are the superscript
 * digits and vulgar fractions of Latin-1, other scripts' decimal digits,
 * and fullwidth digits; spaces are the Unicode White_Space characters. Case
 * folding covers Latin-1, Latin Extended-A, Greek and Cyrillic. Code points
 * outside the tables count as symbols, which at worst splits a rare word
 * differently from the reference.
 *
 * Threading: encode updates a per-object word cache, so an object must not
 * be used by two threads at once (build one per thread, or serialise calls).
 * Ownership as marked on each function. */
#ifndef LF_CLIP_TOKENIZER_H
#define LF_CLIP_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#define LF_CLIP_VOCAB_SIZE 49408
#define LF_CLIP_BOS 49406
#define LF_CLIP_EOS 49407
#define LF_CLIP_CONTEXT 77

typedef struct lf_clip_tokenizer lf_clip_tokenizer_t;

/* Builds a tokenizer from the text of a CLIP merges file (a "#version" header
 * line, then "a b" merge lines; the first 48,894 are used). If vocab_json is
 * non-NULL it is a diffusers/HF vocab.json (token -> id) and gives the ids;
 * otherwise ids follow the CLIP construction (256 bytes, 256 bytes + "</w>",
 * merges, <|startoftext|>, <|endoftext|>). Buffers are borrowed for the call
 * only. Returns 0 and *out (caller owns), or LF_EFORMAT / LF_ENOMEM with a
 * message in errstr. */
int lf_clip_tokenizer_new(lf_clip_tokenizer_t **out, const char *merges, size_t merges_len,
                          const char *vocab_json, size_t vocab_len, char *errstr, size_t errlen);
/* Loads from bpe_simple_vocab_16e6.txt(.gz) or a diffusers tokenizer/ folder
 * (vocab.json + merges.txt). Returns 0, LF_EIO, LF_EFORMAT or LF_ENOMEM. */
int lf_clip_tokenizer_load(lf_clip_tokenizer_t **out, const char *path, char *errstr, size_t errlen);
void lf_clip_tokenizer_destroy(lf_clip_tokenizer_t **self_p);

/* Tokenizes text without BOS/EOS into ids[0..cap); returns the number of
 * tokens the text has (which may exceed cap; only cap are written), or a
 * negative LF_E* code (LF_EINVAL for invalid UTF-8 is not raised: invalid
 * bytes are tokenized as symbols). */
int lf_clip_tokenizer_encode(lf_clip_tokenizer_t *self, const char *text, int32_t *ids, int cap);
/* The SD1.x text-encoder input: BOS, up to 75 tokens, EOS, padded with EOS
 * to 77 (longer prompts truncated). Returns the untruncated token count of
 * the text (without BOS/EOS), or a negative code. */
int lf_clip_tokenizer_encode_77(lf_clip_tokenizer_t *self, const char *text, int32_t ids[LF_CLIP_CONTEXT]);
/* The token string of an id (borrowed; GPT-2 byte alphabet, "</w>" suffix),
 * or NULL if out of range. */
const char *lf_clip_tokenizer_token(const lf_clip_tokenizer_t *self, int32_t id);
/* The id of a token string, or -1. */
int32_t lf_clip_tokenizer_id(const lf_clip_tokenizer_t *self, const char *token);

#endif
