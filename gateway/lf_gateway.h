/* lf_gateway: the gateway process — HTTP server, broker link, event hub,
 * Redis readers, and the request dispatcher that ties them together.
 *
 * lf_gateway_new starts everything (listening when it returns);
 * lf_gateway_destroy stops the hub and the link first (they answer every
 * waiting request), then the HTTP server. Threading: new/destroy from one
 * thread; everything else runs on the gateway's own threads. */
#ifndef LF_GATEWAY_H
#define LF_GATEWAY_H

#include <stddef.h>

#include "lf_config.h"

typedef struct lf_gateway lf_gateway_t;

/* cfg is copied what is needed of. NULL with a reason in err. Caller owns. */
lf_gateway_t *lf_gateway_new(const lf_config_t *cfg, char *err, size_t errlen);
void lf_gateway_destroy(lf_gateway_t **self_p);
/* The port it listens on (useful with port 0). */
int lf_gateway_port(const lf_gateway_t *self);

#endif
