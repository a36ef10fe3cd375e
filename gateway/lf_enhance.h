/* lf_enhance: prompt enhancement's requests and replies, pure.
 *
 * A job with enhance_prompt has its prompt rewritten by an LLM before it is
 * queued (lf_enhancer does the HTTP and the threads; docs/api.md, "Prompt
 * enhancement"). Two APIs: OpenAI-compatible chat completions (vLLM,
 * llama.cpp's server, LM Studio, OpenAI: POST /v1/chat/completions, answer
 * in choices[0].message.content) and Ollama (POST /api/chat with
 * "stream": false, answer in message.content). This module builds the
 * request body and the URL and reads the answer; it does no I/O.
 *
 * Threading: every function is pure and reentrant. Ownership: strings
 * returned through char ** are the caller's (free). */
#ifndef LF_ENHANCE_H
#define LF_ENHANCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum { LF_ENHANCE_OPENAI, LF_ENHANCE_OLLAMA } lf_enhance_api_t;

/* The settings (lf_config's enhance_*). Strings borrowed. */
typedef struct {
    const char *url;       /* endpoint; NULL or "" = enhancement off */
    lf_enhance_api_t api;
    const char *model;     /* may be NULL: OpenAI-compatible servers with one model accept none */
    const char *system;    /* NULL = lf_enhance_default_system */
    const char *api_key;   /* NULL = no Authorization header */
    int64_t timeout_ms;
    size_t max_chars;      /* longest accepted reply, in characters (UTF-8 code points) */
} lf_enhance_opts_t;

/* The built-in system prompt (static). */
extern const char lf_enhance_default_system[];
/* Tokens asked for at most (max_tokens / Ollama's num_predict). */
#define LF_ENHANCE_MAX_TOKENS 400
/* Largest reply body read from the endpoint, bytes. */
#define LF_ENHANCE_MAX_BODY (256 * 1024)

/* "openai" / "ollama" (case-insensitive) -> *api. 0 or LF_EINVAL. */
int lf_enhance_api_parse(const char *s, lf_enhance_api_t *api);
const char *lf_enhance_api_name(lf_enhance_api_t api);

/* The URL to POST to: url as it is when it already ends in the API's path
 * (/chat/completions, /api/chat), else url (without a trailing '/') + the
 * path: "/v1/chat/completions" (or "/chat/completions" after ".../v1") /
 * "/api/chat". Writes into out (len bytes). 0 or LF_EOVERFLOW. */
int lf_enhance_url(const lf_enhance_opts_t *o, char *out, size_t len);

/* The request body (JSON text, caller frees): the system prompt, then one
 * user message with the prompt (and, when instruction is set and not empty,
 * the instruction first). 0, LF_EINVAL (prompt NULL) or LF_ENOMEM. */
int lf_enhance_body(const lf_enhance_opts_t *o, const char *prompt, const char *instruction, char **out);

/* Reads the endpoint's answer (status: the HTTP status) into *text: the
 * content — of one JSON object, or joined from a stream when the server
 * streamed anyway (OpenAI server-sent events "data: {chunk}" with
 * choices[0].delta.content; Ollama's JSON lines) —, control characters
 * made blanks, blanks trimmed, a <think>...</think> block (reasoning
 * models) dropped, one pair of surrounding quotes removed. Failures, with a
 * sentence in err (errlen bytes) for the job's enhance_error:
 *   LF_EIO        a status other than 2xx (the server's error message quoted)
 *   LF_EPROTO     not JSON (nor a stream with content), or JSON without the API's content field
 *   LF_EFORMAT    empty content, or not valid UTF-8
 *   LF_ETOOBIG    more than o->max_chars characters
 *   LF_ENOMEM */
int lf_enhance_parse(const lf_enhance_opts_t *o, long status, const char *body, size_t len, char **text,
                     char *err, size_t errlen);

#endif
