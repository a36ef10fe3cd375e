/* lf_device: the compute device setting of a worker or of the engine CLI —
 * "cpu", "cuda" (device 0) or "cuda:N" (--device, LF_WORKER_DEVICE or
 * LF_DEVICE). One parser for the worker, the engine and the tests, so every
 * program accepts and refuses the same strings with the same sentence.
 * Pure; thread-safe. */
#ifndef LF_DEVICE_H
#define LF_DEVICE_H

#include <stddef.h>

typedef enum { LF_DEVICE_CPU = 0, LF_DEVICE_CUDA } lf_device_kind_t;

#define LF_DEVICE_MAX_INDEX 63

typedef struct {
    lf_device_kind_t kind;
    int index;                 /* CUDA device ordinal (0 for "cuda"); 0 for the CPU */
} lf_device_t;

/* Parse s (NULL or "" = "cpu"). LF_EINVAL with a sentence naming s and the
 * accepted forms in err (may be NULL); *out untouched then. */
int lf_device_parse(const char *s, lf_device_t *out, char *err, size_t errlen);

#endif
