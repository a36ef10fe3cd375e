/* lf_testgw: what every C gateway test's farm starts from — libcurl ready,
 * a real redis-server whose directory also holds the processes' logs, and
 * the broker's three endpoints on free loopback ports. The test then starts
 * its own broker, workers and gateways (lf_testproc) with its own settings.
 *
 * Plain data, one per test process (curl_global_init is process-wide). */
#ifndef LF_TESTGW_H
#define LF_TESTGW_H

#include "lf_testredis.h"

typedef struct {
    lf_testredis_t *redis;         /* owned: lf_testgw_stop releases it */
    char dir[256];                 /* redis's directory: where the logs go */
    char fe[64], be[64], ev[64];   /* tcp://127.0.0.1:PORT: broker frontend, backend, events */
} lf_testgw_t;

/* Fills *self: curl_global_init, redis started, free ports picked. 0, or
 * -1 when redis did not start (the reason is printed). */
int lf_testgw_start(lf_testgw_t *self);

/* lf_testredis_release (kept with LF_KEEP_TEST) and curl_global_cleanup. */
void lf_testgw_stop(lf_testgw_t *self);

#endif
