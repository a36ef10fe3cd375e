/* lf_testredis: a real redis-server for tests — started on a free loopback
 * port in its own mkdtemp directory, with persistence selectable, and
 * controllable (stop, kill -9, restart on the same port and data dir) so
 * tests can exercise AOF recovery and reconnects.
 *
 * Nothing is mocked: the binary is /usr/bin/redis-server (or $LF_REDIS_SERVER).
 * Not thread safe: drive one instance from one thread. */
#ifndef LF_TESTREDIS_H
#define LF_TESTREDIS_H

#include <stdbool.h>
#include <sys/types.h>

typedef struct lf_testredis lf_testredis_t;

typedef struct {
    bool aof;                /* --appendonly yes (default no; --save "" always) */
    const char *appendfsync; /* "always" (default), "everysec", "no" */
} lf_testredis_opts_t;

/* Start redis-server and wait until it answers PING (up to 10 s). opts may be
 * NULL. NULL on failure (the reason is printed). Caller owns the result. */
lf_testredis_t *lf_testredis_start(const lf_testredis_opts_t *opts);
/* Stop it (if running), remove its directory, free. Accepts NULL. */
void lf_testredis_destroy(lf_testredis_t **self_p);

/* The end of a test: lf_testredis_destroy, unless LF_KEEP_TEST is set; then
 * redis and its directory (where the tests keep their processes' logs) stay
 * for a look, and stderr says where. Accepts NULL. */
void lf_testredis_release(lf_testredis_t **self_p);

int lf_testredis_port(const lf_testredis_t *self);
const char *lf_testredis_dir(const lf_testredis_t *self); /* borrowed */
pid_t lf_testredis_pid(const lf_testredis_t *self);       /* 0 when stopped */

/* SIGTERM (clean shutdown) and wait. 0 or -1. */
int lf_testredis_stop(lf_testredis_t *self);
/* SIGKILL (crash) and wait. 0 or -1. */
int lf_testredis_kill(lf_testredis_t *self);
/* Start again on the same port and directory (AOF data is reloaded) and
 * wait for PING. 0 or -1. */
int lf_testredis_restart(lf_testredis_t *self);

/* A free TCP port on 127.0.0.1 (bound then released). */
int lf_testredis_free_port(void);

#endif
