/* proto_samples: one fully-populated lf_msg_t per message type, shared by
 * test_proto and the fuzz corpus generator. Test-only code. */
#ifndef LF_PROTO_SAMPLES_H
#define LF_PROTO_SAMPLES_H

#include "lf_proto.h"

/* Fills *m (zeroed by the callee) with every field that `type` carries.
 * Caller owns the contents: release with lf_msg_clear(). 0 or LF_ENOMEM. */
int lf_test_sample_msg(lf_msg_type_t type, lf_msg_t *m);

#endif
