/* lf_device: the compute device setting (see lf_device.h). */
#include "lf_device.h"

#include <stdio.h>
#include <string.h>

#include "lf_error.h"

int lf_device_parse(const char *s, lf_device_t *out, char *err, size_t errlen) {
    if (!out) return LF_EINVAL;
    if (!s || !*s || !strcmp(s, "cpu")) {
        *out = (lf_device_t){LF_DEVICE_CPU, 0};
        return 0;
    }
    if (!strcmp(s, "cuda")) {
        *out = (lf_device_t){LF_DEVICE_CUDA, 0};
        return 0;
    }
    if (!strncmp(s, "cuda:", 5)) {
        /* Decimal digits only: no sign, no blanks, no "0x". */
        const char *d = s + 5;
        int v = 0;
        size_t n = strspn(d, "0123456789");
        if (n && n <= 2 && !d[n] && !(n == 2 && d[0] == '0')) {
            for (size_t i = 0; i < n; i++) v = v * 10 + (d[i] - '0');
            if (v <= LF_DEVICE_MAX_INDEX) {
                *out = (lf_device_t){LF_DEVICE_CUDA, v};
                return 0;
            }
        }
    }
    if (err && errlen)
        snprintf(err, errlen, "bad device '%s': expected cpu, cuda or cuda:N (N = 0..%d, a GPU's ordinal)", s,
                 LF_DEVICE_MAX_INDEX);
    return LF_EINVAL;
}
