/* lf_enhancer: runs prompt enhancements (lf_enhance.h) against the LLM
 * endpoint on threads of its own, so no HTTP thread and no GPU worker ever
 * waits on an LLM.
 *
 * lf_enhancer_call is one blocking round trip (libcurl, the settings'
 * timeout for the whole exchange). lf_enhancer_t is a small pool
 * (`threads` of them) with a FIFO of requests; each request ends in exactly
 * one call of its callback, on a pool thread — also when the enhancer is
 * destroyed before the request ran (rc LF_ECANCELED) or while it ran (the
 * transfer is aborted).
 *
 * Threading: lf_enhancer_run from any thread; _new/_destroy from one.
 * Ownership: the opts' strings are copied by _new; the callback owns the
 * text it is given. */
#ifndef LF_ENHANCER_H
#define LF_ENHANCER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "lf_enhance.h"

typedef struct lf_enhancer lf_enhancer_t;

/* rc 0: text is the enhanced prompt (caller owns, free); otherwise text is
 * NULL and err says why (borrowed, valid during the call). */
typedef void (*lf_enhancer_done_fn)(void *arg, int rc, char *text, const char *err);

/* One enhancement, blocking: POST, read, lf_enhance_parse. stop (may be
 * NULL) aborts the transfer when it becomes true. Returns 0 with *text
 * (caller frees), or an LF_E* code with a sentence in err: LF_ETIMEDOUT,
 * LF_ECONN (no connection), LF_ECANCELED (stop), LF_ETOOBIG (body over
 * LF_ENHANCE_MAX_BODY), lf_enhance_parse's codes, LF_EINVAL (no URL). */
int lf_enhancer_call(const lf_enhance_opts_t *o, const char *prompt, const char *instruction,
                     const atomic_bool *stop, char **text, char *err, size_t errlen);

/* NULL on failure with err set (out of memory, threads). */
lf_enhancer_t *lf_enhancer_new(const lf_enhance_opts_t *o, int threads, char *err, size_t errlen);
/* Queue one enhancement (prompt and instruction copied; instruction may be
 * NULL). 0, or LF_ENOMEM / LF_ESTATE (stopping): then fn is never called. */
int lf_enhancer_run(lf_enhancer_t *self, const char *prompt, const char *instruction, lf_enhancer_done_fn fn,
                    void *arg);
/* Aborts what runs, answers what waits (LF_ECANCELED), joins. NULL-safe. */
void lf_enhancer_destroy(lf_enhancer_t **self_p);

#endif
