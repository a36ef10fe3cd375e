/* lf_store_impl: internals shared by lf_store.c (connection, reads, small
 * stores) and lf_store_jobs.c (the job lifecycle). Not a public header. */
#ifndef LF_STORE_IMPL_H
#define LF_STORE_IMPL_H

#include <hiredis/hiredis.h>

#include "lf_blobstore.h"
#include "lf_store.h"

/* The scripts; their source is in lf_store_lua.h. */
typedef enum {
    LF__S_SUBMIT = 0,
    LF__S_PEEK,
    LF__S_PEEK_FOR,
    LF__S_CLAIM,
    LF__S_ADOPT,
    LF__S_RENEW,
    LF__S_PROGRESS,
    LF__S_COMPLETE,
    LF__S_FAIL,
    LF__S_REQUEUE,
    LF__S_CANCEL,
    LF__S_REAP,
    LF__S_TOUCH,
    LF__S_JOBGET,
    LF__S_ACTIVE,
    LF__S_STATS,
    LF__S_WORKERS,
    LF__S_FLUSH,
    LF__S_IDEM,
    LF__S_FAIL_QUEUED,
    LF__S_BLOBS_DUE,
    LF__S_ENHANCED,
    LF__S__COUNT
} lf__script_t;

struct lf_store {
    redisContext *c;       /* NULL or broken (c->err) until reconnected */
    char *host;
    int port;
    char *prefix;
    int timeout_ms;
    lf_store_limits_t lim;
    lf_blobstore_t *blobs; /* borrowed; NULL = images in Redis */
    char sha[LF__S__COUNT][41];
    int64_t retry_at_ms;   /* monotonic; no reconnect attempt before */
    int backoff_ms;
    char err[256];
};

/* Arguments of one EVALSHA: "EVALSHA sha 0" + the 7 prelude values + the
 * script's own. Numbers are formatted into per-argument slots, so pointers
 * stay valid; the capacity is fixed at init. */
typedef struct {
    const char **v;
    size_t *len;
    char (*num)[24];
    size_t n, cap;
} lf__args_t;

/* cap = the script's own argument count. LF_ENOMEM. */
int lf__args_init(lf__args_t *a, lf_store_t *s, lf__script_t script, int64_t now_ms, size_t cap);
void lf__args_free(lf__args_t *a);
void lf__args_str(lf__args_t *a, const char *s); /* NULL = "" */
void lf__args_bin(lf__args_t *a, const void *p, size_t len);
void lf__args_i64(lf__args_t *a, int64_t v);

/* Run one script; returns the reply (caller frees with freeReplyObject) or
 * NULL with *rc set (LF_ECONN, LF_EREDIS) and self->err filled. Reloads the
 * scripts and retries once on NOSCRIPT. */
redisReply *lf__eval(lf_store_t *self, lf__args_t *a, int *rc);
/* Run n scripts in one pipeline. replies[i] receives each reply (NULL when
 * that item failed; *rc then holds the first error). Returns 0 when every
 * item got a reply. */
int lf__eval_many(lf_store_t *self, lf__args_t *a, size_t n, redisReply **replies);

/* A plain command (not a script); same reply and error rules as lf__eval.
 * lens may be NULL for NUL-terminated arguments. */
redisReply *lf__cmd(lf_store_t *self, int argc, const char **argv, const size_t *lens, int *rc);
const char *lf__prefix(const lf_store_t *self);

/* Reply helpers. */
long long lf__rint(const redisReply *r);              /* integer or numeric string; 0 else */
char *lf__rdup(const redisReply *r);                  /* strdup of a string; NULL else */
void lf__rcopy(const redisReply *r, char *buf, size_t size); /* "" when not a string */
int64_t lf__now_ms(void);                             /* wall clock, ms since the epoch */

#endif
