/* lf_readyfile: the worker's readiness as a file, for probes that cannot
 * ask it over the network (a Kubernetes exec readinessProbe, a container
 * HEALTHCHECK): the worker has no HTTP port of its own.
 *
 * The file exists while the worker is ready (registered with at least one
 * broker, which has answered since the worker's READY, and with models to
 * advertise; not draining) and is absent otherwise. Every write is atomic
 * (a temporary file in the same folder, then rename), so a probe never sees
 * half a file. The worker rewrites it at every heartbeat, so its mtime also
 * says the main loop is alive: a probe may reject a file older than a few
 * heartbeats. Its text is one line of facts for humans ("ready worker=ID
 * brokers=N models=N resident=NAME|-"), not an interface.
 *
 * Threading: one thread (the worker's main thread). Ownership: lf_readyfile_new
 * returns an object the caller owns; the path is copied. */
#ifndef LF_READYFILE_H
#define LF_READYFILE_H

#include <stdbool.h>

typedef struct lf_readyfile lf_readyfile_t;

/* A ready file at `path`, absent for now (a file left there by an earlier
 * run is removed). NULL when the path is empty, its folder does not exist or
 * is not writable (logged, naming the folder and LF_WORKER_READY_FILE), or
 * no memory is left. Caller owns. */
lf_readyfile_t *lf_readyfile_new(const char *path);
/* Removes the file and frees. Accepts NULL; sets *self_p to NULL. */
void lf_readyfile_destroy(lf_readyfile_t **self_p);

/* Ready: (re)write the file with `text` (one line; a newline is added), which
 * also refreshes its mtime. Not ready (text NULL): remove it. 0, or LF_EIO
 * when the write failed (logged once until a write succeeds again; the file
 * is then absent, which a probe reads as "not ready"). */
int lf_readyfile_set(lf_readyfile_t *self, const char *text);
/* Whether the file was last written (true) or removed (false). */
bool lf_readyfile_ready(const lf_readyfile_t *self);

#endif
