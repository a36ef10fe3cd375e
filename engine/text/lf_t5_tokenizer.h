/* lf_t5_tokenizer: T5's SentencePiece Unigram tokenizer as T5TokenizerFast
 * (tokenizers' tokenizer.json of T5 v1.1 / T5-XXL) encodes, from either the
 * tokenizer.json or the spiece.model (protobuf) that diffusers'
 * tokenizer_2/ and SD3/Flux folders carry.
 *
 * Pipeline, as the reference: special tokens (<pad>, </s>, <unk>,
 * <extra_id_N>) split out of the raw text first; each remaining piece
 * normalized by the model's precompiled charsmap (NFKC-like) per grapheme
 * cluster as the tokenizers crate does (a cluster under 6 bytes that starts
 * with a mapped key becomes that key's replacement whole: "A" + U+0301 in
 * fullwidth gives "A"; clusters are approximated by a table of combining
 * ranges, not the full Unicode rules), trailing whitespace stripped, each run of
 * spaces made one U+2581, U+2581 prepended to the piece that starts the text,
 * words split before each U+2581; then the Viterbi path over the pieces'
 * log-probabilities, a character with no piece becoming <unk> (score: the
 * lowest minus 10) and runs of <unk> fused into one. No byte fallback (T5
 * has none). EOS </s> (1) appended; padding <pad> (0).
 *
 * Threading: immutable after new; encode may run on several threads.
 * Ownership as marked. */
#ifndef LF_T5_TOKENIZER_H
#define LF_T5_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#define LF_T5_PAD 0
#define LF_T5_EOS 1

typedef struct lf_t5_tokenizer lf_t5_tokenizer_t;

/* path: a tokenizer.json (Unigram model) or a spiece.model. 0, LF_EIO,
 * LF_EFORMAT (message naming the file and what is wrong), LF_ENOMEM. */
int lf_t5_tokenizer_new(lf_t5_tokenizer_t **out, const char *path, char *err, size_t errlen);
/* The same from the file's bytes (JSON when it starts with '{' after
 * whitespace, else protobuf); data is copied from as needed, not kept. */
int lf_t5_tokenizer_new_mem(lf_t5_tokenizer_t **out, const void *data, size_t len, char *err,
                            size_t errlen);
void lf_t5_tokenizer_destroy(lf_t5_tokenizer_t **self_p);
/* Vocabulary size (32100 for T5 v1.1 with its 100 extra ids). */
int lf_t5_tokenizer_vocab(const lf_t5_tokenizer_t *self);

/* ids [n] as T5TokenizerFast(text, padding="max_length", max_length=n,
 * truncation=True): at most n - 1 tokens, then </s>, then <pad> up to n.
 * *n_used (NULL = not wanted): tokens before the padding, </s> included.
 * 0, LF_EINVAL (n < 1 or NULL text), LF_ENOMEM. Invalid UTF-8 bytes count
 * as U+FFFD. */
int lf_t5_tokenizer_encode(const lf_t5_tokenizer_t *self, const char *text, int32_t *ids, int n,
                           int *n_used);

#endif
