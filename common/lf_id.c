/* lf_id: time-ordered random identifiers (see lf_id.h). */
#include "lf_id.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "lf_error.h"

static const char s_hex[] = "0123456789abcdef";

void lf_id_make(uint64_t ms, const uint8_t rnd[LF_ID_RANDOM_BYTES], char *out) {
    for (int i = 0; i < 12; i++) out[i] = s_hex[(ms >> (4 * (11 - i))) & 0xf];
    for (int i = 0; i < LF_ID_RANDOM_BYTES; i++) {
        out[12 + 2 * i] = s_hex[rnd[i] >> 4];
        out[13 + 2 * i] = s_hex[rnd[i] & 0xf];
    }
    out[LF_ID_LEN] = '\0';
}

int lf_id_new(char *out) {
    uint8_t rnd[LF_ID_RANDOM_BYTES];
    size_t got = 0;
    while (got < sizeof rnd) {
        ssize_t n = getrandom(rnd + got, sizeof rnd - got, 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            return LF_EIO;
        }
        got += (size_t)n;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t ms = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
    lf_id_make(ms, rnd, out);
    return 0;
}

static int s_hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

bool lf_id_valid(const char *s) {
    if (!s) return false;
    for (int i = 0; i < LF_ID_LEN; i++)
        if (s_hexval(s[i]) < 0) return false; /* also stops at an early NUL */
    return s[LF_ID_LEN] == '\0';
}

int64_t lf_id_time_ms(const char *s) {
    if (!lf_id_valid(s)) return -1;
    int64_t ms = 0;
    for (int i = 0; i < 12; i++) ms = (ms << 4) | s_hexval(s[i]);
    return ms;
}
