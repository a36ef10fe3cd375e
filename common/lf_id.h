/* lf_id: job and upload identifiers.
 *
 * An id is 32 lowercase hex characters (128 bits), time-ordered like UUIDv7
 * or ULID: the first 12 characters are the creation time in milliseconds
 * since the Unix epoch (48 bits, good until the year 10889), the last 20 are
 * 80 random bits from getrandom(2). Sorting ids as strings sorts them by
 * creation time (to the millisecond; ids made within one millisecond are in
 * random order), which keeps Redis listings and logs readable, and 80 random
 * bits make collisions negligible without coordination between brokers.
 *
 * Ids are safe in Redis keys, URLs, file names and PUB topics as they are.
 * Threading: all functions are reentrant; no state. */
#ifndef LF_ID_H
#define LF_ID_H

#include <stdbool.h>
#include <stdint.h>

#define LF_ID_LEN 32                /* characters, without the NUL */
#define LF_ID_SIZE (LF_ID_LEN + 1)  /* buffer size for one id */
#define LF_ID_RANDOM_BYTES 10

/* Writes a new id (and its NUL) into out, which holds LF_ID_SIZE bytes.
 * Returns 0, or LF_EIO when the kernel gives no random bytes (out untouched). */
int lf_id_new(char *out);

/* Pure form of lf_id_new for tests and replays: id from a timestamp
 * (ms, only the low 48 bits are used) and LF_ID_RANDOM_BYTES bytes. */
void lf_id_make(uint64_t ms, const uint8_t rnd[LF_ID_RANDOM_BYTES], char *out);

/* True when s is exactly LF_ID_LEN lowercase hex characters. NULL is false.
 * Use it on every id that comes from outside (HTTP paths, messages) before
 * putting it into a Redis key. */
bool lf_id_valid(const char *s);

/* Creation time of a valid id in ms since the epoch, or -1 if s is invalid. */
int64_t lf_id_time_ms(const char *s);

#endif
