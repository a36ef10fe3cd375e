/* lf_torchzip: reads PyTorch zip checkpoints (.pt, .pth, .ckpt) without
 * executing them.
 *
 * The archive's "<name>/data.pkl" is run by a restricted pickle machine that
 * knows only the opcodes needed for containers, strings, numbers and
 * objects, and gives meaning to only these globals: collections.OrderedDict,
 * torch._utils._rebuild_tensor_v2, torch._utils._rebuild_parameter and the
 * torch.*Storage types (through persistent ids ('storage', type, key,
 * location, numel)). Any other class (REDUCE, NEWOBJ) becomes an opaque
 * object holding its BUILD state — never looked up, imported or called —
 * so pickled object graphs (ultralytics' DetectionModel: nn.Modules with
 * _parameters / _buffers / _modules dicts) can be walked; globals that only
 * a hostile file names (os.*, subprocess.*, builtins.eval/exec/getattr...)
 * are refused. Other opcodes are an error naming them.
 * Tensors found in the resulting dict (nested dicts flattened with "."; an
 * nn.Module object contributes its state_dict names under its key, e.g.
 * "model.model.0.conv.weight";
 * a top-level "state_dict" entry that is a dict is used as the root, as
 * .ckpt files hold one) are exposed as lf_tensor_info_t pointing into the
 * archive's "<name>/data/<key>" entries: into the mapping for stored
 * entries, into a buffer owned by the object for deflated ones (zlib).
 * ZIP64 archives are supported; big-endian archives are refused.
 *
 * Threading: immutable after construction. Ownership: constructors hand the
 * caller the object; descriptors are borrowed from it. */
#ifndef LF_TORCHZIP_H
#define LF_TORCHZIP_H

#include <stddef.h>

#include "lf_tensorinfo.h"

typedef struct lf_torchzip lf_torchzip_t;

/* Maps and parses a checkpoint. Returns 0 and *out (caller owns), or LF_EIO,
 * LF_EFORMAT (bad zip or pickle), LF_EUNSUPPORTED (a forbidden global or
 * opcode, big-endian data), LF_ENOMEM, with a message naming the file (and
 * tensor where one is involved) in errstr; *out untouched on failure. */
int lf_torchzip_open(lf_torchzip_t **out, const char *path, char *errstr, size_t errlen);
/* The same over a file image in memory (borrowed; must outlive the object). */
int lf_torchzip_parse(lf_torchzip_t **out, const void *buf, size_t len, const char *label,
                      char *errstr, size_t errlen);
void lf_torchzip_destroy(lf_torchzip_t **self_p);

/* Tensors in pickle (state dict) order. */
size_t lf_torchzip_count(const lf_torchzip_t *self);
const lf_tensor_info_t *lf_torchzip_at(const lf_torchzip_t *self, size_t i);
/* By name, or NULL. */
const lf_tensor_info_t *lf_torchzip_find(const lf_torchzip_t *self, const char *name);
/* A string value of the top-level dict under a string key (a .ckpt's
 * "lf.config" beside its "state_dict"; other types are ignored), borrowed
 * from the object, or NULL. */
const char *lf_torchzip_metadata(const lf_torchzip_t *self, const char *key);
/* The pickled value at a dotted path from the top-level dict (dict keys;
 * an object's BUILD state attributes, e.g. "model.yaml" for an ultralytics
 * model's yaml dict) as compact JSON: dicts (str or int keys) as objects,
 * lists/tuples/sets as arrays, numbers, strings, None; tensors and opaque
 * objects as null. *out caller owns (free). 0, LF_ENOTFOUND, LF_ENOMEM. */
int lf_torchzip_json(const lf_torchzip_t *self, const char *path, char **out);

#endif
