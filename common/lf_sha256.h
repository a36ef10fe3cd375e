/* lf_sha256: SHA-256 (FIPS 180-4) of bytes and of files.
 *
 * Used for the hashes A1111 shows for LoRA files (lf_sha256_file with the
 * safetensors header skipped: the "addnet" hash of kohya's sd-scripts that
 * A1111's extensions-builtin/Lora uses for .safetensors files).
 *
 * Also HMAC-SHA256 for request signing (lf_sigv4).
 *
 * Pure code over caller-owned state; thread-safe. */
#ifndef LF_SHA256_H
#define LF_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint32_t h[8];
    uint64_t len; /* bytes hashed so far */
    uint8_t buf[64];
    size_t nbuf;
} lf_sha256_t;

void lf_sha256_init(lf_sha256_t *s);
void lf_sha256_update(lf_sha256_t *s, const void *data, size_t n);
/* Writes the 32-byte digest; s must be initialised again before reuse. */
void lf_sha256_final(lf_sha256_t *s, uint8_t digest[32]);
/* The digest of data as 64 lowercase hex digits + NUL. */
void lf_sha256_hex(const void *data, size_t n, char hex[65]);

/* HMAC-SHA256 (RFC 2104 / FIPS 198-1) of data under key; writes the 32-byte
 * MAC. Used by lf_sigv4 (AWS Signature Version 4 derives its signing key by
 * a chain of these). Keys longer than the 64-byte block are hashed first. */
void lf_sha256_hmac(const void *key, size_t keylen, const void *data, size_t n, uint8_t mac[32]);

/* The digest of a file's bytes from offset on, as hex. With
 * skip_safetensors_header, offset is ignored and the hash starts after the
 * safetensors header (8 + the little-endian u64 the file starts with).
 * 0, LF_EIO (cannot read; err names the file), LF_EFORMAT (header length
 * beyond the file). */
int lf_sha256_file(const char *path, int skip_safetensors_header, char hex[65], char *err,
                   size_t errlen);

#endif
