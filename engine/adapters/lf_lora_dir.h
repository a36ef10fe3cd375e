/* lf_lora_dir: the LoRA files a worker has, and A1111's names for them.
 *
 * A scan walks folders (a worker's models/lora and models/Lora, as A1111
 * spells it) with their subfolders for .safetensors, .pt and .ckpt files.
 * A file's name is its stem, as A1111 names LoRAs ("sub/style_v2.safetensors"
 * is "style_v2"); its alias is the safetensors metadata's ss_output_name when
 * there is one, else the name. When two files give one name the first in
 * (root, path) order wins and the other is skipped with a log line. A name
 * is found by name, by alias or by its path relative to the root without
 * the extension ("sub/style_v2").
 *
 * The hash is A1111's (extensions-builtin/Lora network.py): SHA-256 of the
 * bytes after the header for .safetensors (kohya's "addnet" hash), of the
 * whole file otherwise; A1111 shows its first 12 hex digits ("Lora hashes").
 *
 * Threading: no shared state; a list belongs to its caller. Ownership: the
 * scan's list and its strings are caller-owned (lf_lora_dir_free). */
#ifndef LF_LORA_DIR_H
#define LF_LORA_DIR_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    char *name;   /* file stem */
    char *alias;  /* ss_output_name, else the name */
    char *rel;    /* path relative to its root, extension included */
    char *path;   /* root + "/" + rel */
    int64_t size;
    int64_t mtime_ns;
    char hash[65]; /* "" until lf_lora_dir_hash */
} lf_lora_file_t;

/* Scans roots[0..n_roots) (missing folders are skipped) into *out / *n,
 * sorted by name. with_hash: hash every file now (reads them all). Returns
 * 0 or LF_ENOMEM (outputs untouched). */
int lf_lora_dir_scan(const char *const *roots, size_t n_roots, int with_hash,
                     lf_lora_file_t **out, size_t *n);
void lf_lora_dir_free(lf_lora_file_t **files, size_t n);

/* The file a request's name means (borrowed), or NULL. */
const lf_lora_file_t *lf_lora_dir_find(const lf_lora_file_t *files, size_t n, const char *name);

/* Fills f->hash if empty. 0, or lf_sha256_file's error with err naming the
 * file. */
int lf_lora_dir_hash(lf_lora_file_t *f, char *err, size_t errlen);

#endif
