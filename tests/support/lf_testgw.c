/* lf_testgw: see lf_testgw.h. */
#include "lf_testgw.h"

#include <curl/curl.h>
#include <stdio.h>

int lf_testgw_start(lf_testgw_t *self) {
    curl_global_init(CURL_GLOBAL_ALL);
    self->redis = lf_testredis_start(NULL);
    if (!self->redis) return -1;
    snprintf(self->dir, sizeof self->dir, "%s", lf_testredis_dir(self->redis));
    snprintf(self->fe, sizeof self->fe, "tcp://127.0.0.1:%d", lf_testredis_free_port());
    snprintf(self->be, sizeof self->be, "tcp://127.0.0.1:%d", lf_testredis_free_port());
    snprintf(self->ev, sizeof self->ev, "tcp://127.0.0.1:%d", lf_testredis_free_port());
    return 0;
}

void lf_testgw_stop(lf_testgw_t *self) {
    lf_testredis_release(&self->redis);
    curl_global_cleanup();
}
