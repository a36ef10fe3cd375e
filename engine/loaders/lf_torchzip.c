/* lf_torchzip: restricted pickle machine and tensor table over lf_zip.
 * Written from the pickle protocol description
 * (Python's pickletools); every read is bounds-checked so arbitrary bytes
 * give an error, never a crash (see tests/fuzz/fuzz_torchzip.c). */
#include "lf_torchzip.h"

#include <errno.h>
#include <math.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "lf_error.h"
#include "lf_zip.h"

#define S_MAX_ARENA (512u << 20) /* pickle object memory cap */
#define S_MAX_DEPTH 16

/* ---- object, errors ---------------------------------------------------------- */


typedef struct s_val s_val_t;
typedef struct s_block s_block_t;

struct lf_torchzip {
    lf_zip_t *zip;
    s_block_t *blocks; /* the pickle's values, kept for lf_torchzip_json */
    s_val_t *root;
    lf_tensor_info_t *tensors;
    size_t count, cap;
    size_t *by_name; /* indices sorted by tensor name */
    char **meta;     /* top-level str -> str entries: key, value pairs */
    size_t n_meta;
    void *map;
    size_t map_len;
};

static uint64_t s_le(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

/* The bytes of zip entry i, as a code with a message naming the file. */
static int s_data(lf_torchzip_t *z, size_t i, const unsigned char **data, lf_tensor_err_t *e, const char *tensor)
{
    char zerr[256];
    int rc = lf_zip_data(z->zip, i, data, zerr, sizeof zerr);
    return rc ? lf_tensor_fail(e, rc, tensor, "%s", zerr) : 0;
}

/* ---- pickle values ------------------------------------------------------------- */

enum { V_MARK, V_NONE, V_BOOL, V_INT, V_FLOAT, V_STR, V_TUPLE, V_LIST, V_DICT, V_GLOBAL, V_STORAGE, V_TENSOR,
       V_OBJECT, V_SET };
/* G_OPAQUE: any other class or function. It is never looked up or called:
 * REDUCE / NEWOBJ of it make an opaque V_OBJECT (class name in s, the
 * arguments in storage), BUILD gives it its state (state), so a pickled
 * object graph (an ultralytics model: nn.Modules with _parameters, _buffers,
 * _modules) can be walked. */
enum { G_ORDEREDDICT, G_REBUILD_TENSOR_V2, G_REBUILD_PARAMETER, G_STORAGE, G_OPAQUE };

struct s_val {
    int type;
    int64_t i;        /* int, bool; global id; storage numel */
    double f;
    char *s;          /* str (NUL-terminated); storage key */
    size_t slen;
    s_val_t **items;  /* tuple/list; dict: key, value pairs */
    size_t n, cap;
    lf_dtype_t dtype; /* storage type; tensor dtype */
    s_val_t *storage; /* tensor; object: its arguments */
    s_val_t *state;   /* object: BUILD state */
    int64_t offset;
    int ndim;
    int64_t shape[LF_TENSOR_MAX_DIMS], stride[LF_TENSOR_MAX_DIMS];
};

struct s_block {
    struct s_block *next;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
};

typedef struct {
    s_block_t *blocks;
    size_t total;
    s_val_t **stack;
    size_t sp, stack_cap;
    s_val_t **memo;
    size_t memo_cap, memo_n;
    lf_tensor_err_t *e;
    int code; /* set by helpers that fail with a message */
} s_vm_t;

static void *s_alloc(s_vm_t *vm, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    if (!vm->blocks || vm->blocks->cap - vm->blocks->used < n) {
        size_t cap = n > 65536 ? n : 65536;
        if (vm->total + cap > S_MAX_ARENA) return NULL;
        s_block_t *b = malloc(sizeof *b + cap);
        if (!b) return NULL;
        b->next = vm->blocks;
        b->used = 0;
        b->cap = cap;
        vm->blocks = b;
        vm->total += cap;
    }
    void *p = vm->blocks->data + vm->blocks->used;
    vm->blocks->used += n;
    memset(p, 0, n);
    return p;
}

static s_val_t *s_new(s_vm_t *vm, int type)
{
    s_val_t *v = s_alloc(vm, sizeof *v);
    if (v) v->type = type;
    return v;
}

static int s_append(s_vm_t *vm, s_val_t *c, s_val_t *item)
{
    if (c->n == c->cap) {
        size_t nc = c->cap ? 2 * c->cap : 4;
        s_val_t **ni = s_alloc(vm, nc * sizeof *ni);
        if (!ni) return LF_ENOMEM;
        if (c->n) memcpy(ni, c->items, c->n * sizeof *ni);
        c->items = ni;
        c->cap = nc;
    }
    c->items[c->n++] = item;
    return 0;
}

static int s_push(s_vm_t *vm, s_val_t *v)
{
    if (!v) return LF_ENOMEM;
    if (vm->sp == vm->stack_cap) {
        size_t nc = vm->stack_cap ? 2 * vm->stack_cap : 64;
        if (nc > (1u << 24)) return LF_ELIMIT;
        s_val_t **ns = realloc(vm->stack, nc * sizeof *ns);
        if (!ns) return LF_ENOMEM;
        vm->stack = ns;
        vm->stack_cap = nc;
    }
    vm->stack[vm->sp++] = v;
    return 0;
}

static s_val_t *s_pop(s_vm_t *vm)
{
    if (vm->sp == 0 || vm->stack[vm->sp - 1]->type == V_MARK) return NULL;
    return vm->stack[--vm->sp];
}

/* Index of the topmost mark, or SIZE_MAX. */
static size_t s_mark(s_vm_t *vm)
{
    for (size_t i = vm->sp; i-- > 0;)
        if (vm->stack[i]->type == V_MARK) return i;
    return SIZE_MAX;
}

static int s_memo_put(s_vm_t *vm, uint64_t idx, s_val_t *v)
{
    if (idx >= (1u << 24)) return LF_ELIMIT;
    if (idx >= vm->memo_cap) {
        size_t nc = vm->memo_cap ? vm->memo_cap : 64;
        while (nc <= idx) nc *= 2;
        s_val_t **nm = realloc(vm->memo, nc * sizeof *nm);
        if (!nm) return LF_ENOMEM;
        memset(nm + vm->memo_cap, 0, (nc - vm->memo_cap) * sizeof *nm);
        vm->memo = nm;
        vm->memo_cap = nc;
    }
    if (!vm->memo[idx]) vm->memo_n++;
    vm->memo[idx] = v;
    return 0;
}

static const struct {
    const char *name;
    lf_dtype_t dtype;
} s_storages[] = {
    {"FloatStorage", LF_DTYPE_F32}, {"HalfStorage", LF_DTYPE_F16},  {"BFloat16Storage", LF_DTYPE_BF16},
    {"DoubleStorage", LF_DTYPE_F64}, {"LongStorage", LF_DTYPE_I64},  {"IntStorage", LF_DTYPE_I32},
    {"ShortStorage", LF_DTYPE_I16}, {"CharStorage", LF_DTYPE_I8},   {"ByteStorage", LF_DTYPE_U8},
    {"BoolStorage", LF_DTYPE_BOOL},
};

/* Globals no model file has a reason to name (code execution, files,
 * processes): their presence marks a hostile file, refused outright even
 * though nothing would ever be called. */
static int s_denied(const char *mod, size_t ml, const char *name, size_t nl)
{
    static const char *const mods[] = {"os", "posix", "nt", "subprocess", "sys", "shutil", "socket", "importlib",
                                       "runpy", "pty", "code", "webbrowser", "pickle", "marshal", "ctypes", "io",
                                       "commands", "multiprocessing", "asyncio", "signal", "tempfile", "pathlib"};
    static const char *const builtins[] = {"eval", "exec", "compile", "open", "__import__", "getattr", "setattr",
                                           "delattr", "input", "breakpoint", "globals", "locals", "vars", "apply",
                                           "execfile", "memoryview", "help"};
    size_t root = 0;
    while (root < ml && mod[root] != '.') root++;
    for (size_t i = 0; i < sizeof mods / sizeof *mods; i++)
        if (strlen(mods[i]) == root && memcmp(mods[i], mod, root) == 0) return 1;
    if ((ml == 8 && memcmp(mod, "builtins", 8) == 0) || (ml == 11 && memcmp(mod, "__builtin__", 11) == 0))
        for (size_t i = 0; i < sizeof builtins / sizeof *builtins; i++)
            if (strlen(builtins[i]) == nl && memcmp(builtins[i], name, nl) == 0) return 1;
    return 0;
}

static s_val_t *s_global(s_vm_t *vm, const char *mod, size_t ml, const char *name, size_t nl)
{
#define S_IS(str, p, l) (strlen(str) == (l) && memcmp(str, p, l) == 0)
    int id = -1;
    lf_dtype_t dt = LF_DTYPE_F32;
    if (S_IS("collections", mod, ml) && S_IS("OrderedDict", name, nl)) id = G_ORDEREDDICT;
    if (S_IS("torch._utils", mod, ml) && S_IS("_rebuild_tensor_v2", name, nl)) id = G_REBUILD_TENSOR_V2;
    if (S_IS("torch._utils", mod, ml) && S_IS("_rebuild_parameter", name, nl)) id = G_REBUILD_PARAMETER;
    if (S_IS("torch", mod, ml))
        for (size_t i = 0; i < sizeof s_storages / sizeof s_storages[0]; i++)
            if (S_IS(s_storages[i].name, name, nl)) {
                id = G_STORAGE;
                dt = s_storages[i].dtype;
            }
#undef S_IS
    if (id < 0 && s_denied(mod, ml, name, nl)) {
        vm->code = lf_tensor_fail(vm->e, LF_EUNSUPPORTED, NULL, "pickle global '%.*s.%.*s' is not allowed",
               (int)(ml > 200 ? 200 : ml), mod, (int)(nl > 200 ? 200 : nl), name);
        return NULL;
    }
    s_val_t *g = s_new(vm, V_GLOBAL);
    if (g) {
        g->i = id < 0 ? G_OPAQUE : id;
        g->dtype = dt;
        if (!(g->s = s_alloc(vm, ml + nl + 2))) return NULL;
        memcpy(g->s, mod, ml);
        g->s[ml] = '.';
        memcpy(g->s + ml + 1, name, nl);
        g->slen = ml + nl + 1;
    }
    return g;
}

static int s_int_tuple(const s_val_t *t, int64_t *out, int *n)
{
    if (!t || t->type != V_TUPLE || t->n > LF_TENSOR_MAX_DIMS) return -1;
    for (size_t i = 0; i < t->n; i++) {
        if (t->items[i]->type != V_INT || t->items[i]->i < 0) return -1;
        out[i] = t->items[i]->i;
    }
    *n = (int)t->n;
    return 0;
}

static s_val_t *s_reduce(s_vm_t *vm, s_val_t *f, s_val_t *args)
{
    if (f->type != V_GLOBAL || args->type != V_TUPLE) {
        vm->code = lf_tensor_fail(vm->e, LF_EUNSUPPORTED, NULL, "REDUCE of something other than an allowed global");
        return NULL;
    }
    if (f->i == G_OPAQUE) {
        s_val_t *o = s_new(vm, V_OBJECT);
        if (o) {
            o->s = f->s;
            o->slen = f->slen;
            o->storage = args;
        }
        return o;
    }
    if (f->i == G_ORDEREDDICT) {
        if (args->n != 0) {
            vm->code = lf_tensor_fail(vm->e, LF_EUNSUPPORTED, NULL, "OrderedDict with arguments");
            return NULL;
        }
        return s_new(vm, V_DICT);
    }
    if (f->i == G_REBUILD_PARAMETER) {
        if (args->n < 1 || args->items[0]->type != V_TENSOR) {
            vm->code = lf_tensor_fail(vm->e, LF_EFORMAT, NULL, "_rebuild_parameter without a tensor");
            return NULL;
        }
        return args->items[0];
    }
    if (f->i == G_REBUILD_TENSOR_V2) {
        s_val_t *t = s_new(vm, V_TENSOR);
        int ns, nst;
        if (!t) return NULL;
        if (args->n < 4 || args->items[0]->type != V_STORAGE || args->items[1]->type != V_INT ||
            args->items[1]->i < 0 || s_int_tuple(args->items[2], t->shape, &ns) != 0 ||
            s_int_tuple(args->items[3], t->stride, &nst) != 0 || ns != nst) {
            vm->code = lf_tensor_fail(vm->e, LF_EFORMAT, NULL, "malformed _rebuild_tensor_v2 arguments");
            return NULL;
        }
        t->storage = args->items[0];
        t->dtype = t->storage->dtype;
        t->offset = args->items[1]->i;
        t->ndim = ns;
        return t;
    }
    vm->code = lf_tensor_fail(vm->e, LF_EUNSUPPORTED, NULL, "storage type called");
    return NULL;
}

/* Runs the pickle; on success *result is the top-level object. */
static int s_run_pickle(s_vm_t *vm, const unsigned char *p, size_t len, s_val_t **result)
{
    size_t i = 0;
    int rc = 0;
#define NEED(k)                                                                                      \
    do {                                                                                             \
        if (len - i < (size_t)(k)) return lf_tensor_fail(vm->e, LF_EFORMAT, NULL, "pickle truncated at %zu", i); \
    } while (0)
#define PUSH(v)                                                                                      \
    do {                                                                                             \
        if ((rc = s_push(vm, (v))) != 0)                                                             \
            return lf_tensor_fail(vm->e, rc, NULL, rc == LF_ENOMEM ? "out of memory" : "pickle stack too deep"); \
    } while (0)
#define FAILED() (vm->code ? vm->code : lf_tensor_fail(vm->e, LF_ENOMEM, NULL, "out of memory"))
#define POP(v)                                                                                       \
    do {                                                                                             \
        if (!((v) = s_pop(vm))) return lf_tensor_fail(vm->e, LF_EFORMAT, NULL, "pickle stack underflow at %zu", i); \
    } while (0)
    while (i < len) {
        unsigned op = p[i++];
        s_val_t *v, *a, *b;
        size_t m;
        switch (op) {
        case 0x80: /* PROTO */
            NEED(1);
            if (p[i] < 2 || p[i] > 5) return lf_tensor_fail(vm->e, LF_EUNSUPPORTED, NULL, "pickle protocol %d", p[i]);
            i++;
            break;
        case 0x95: NEED(8); i += 8; break; /* FRAME */
        case '.':
            POP(v);
            *result = v;
            return 0;
        case '(': PUSH(s_new(vm, V_MARK)); break;
        case 'N': PUSH(s_new(vm, V_NONE)); break;
        case 0x88:
        case 0x89:
            v = s_new(vm, V_BOOL);
            if (v) v->i = op == 0x88;
            PUSH(v);
            break;
        case '}': PUSH(s_new(vm, V_DICT)); break;
        case ']': PUSH(s_new(vm, V_LIST)); break;
        case ')': PUSH(s_new(vm, V_TUPLE)); break;
        case 'K':
        case 'M':
        case 'J': {
            int k = op == 'K' ? 1 : op == 'M' ? 2 : 4;
            NEED(k);
            v = s_new(vm, V_INT);
            if (v) v->i = op == 'J' ? (int64_t)(int32_t)(uint32_t)s_le(p + i, 4) : (int64_t)s_le(p + i, k);
            i += (size_t)k;
            PUSH(v);
            break;
        }
        case 0x8a: { /* LONG1 */
            NEED(1);
            size_t k = p[i++];
            NEED(k);
            if (k > 8) return lf_tensor_fail(vm->e, LF_EUNSUPPORTED, NULL, "integer wider than 64 bits");
            uint64_t u = k ? s_le(p + i, (int)k) : 0;
            if (k && k < 8 && (p[i + k - 1] & 0x80)) u |= ~(uint64_t)0 << (8 * k);
            v = s_new(vm, V_INT);
            if (v) v->i = (int64_t)u;
            i += k;
            PUSH(v);
            break;
        }
        case 'G': {
            NEED(8);
            uint64_t u = 0;
            for (int k = 0; k < 8; k++) u = (u << 8) | p[i + (size_t)k];
            v = s_new(vm, V_FLOAT);
            if (v) memcpy(&v->f, &u, 8);
            i += 8;
            PUSH(v);
            break;
        }
        case 'X': case 0x8c: case 0x8d: case 'U': case 'T': case 'B': case 'C': {
            int k = (op == 0x8c || op == 'U' || op == 'C') ? 1 : op == 0x8d ? 8 : 4;
            NEED(k);
            uint64_t sl = s_le(p + i, k);
            i += (size_t)k;
            if (sl > len - i) return lf_tensor_fail(vm->e, LF_EFORMAT, NULL, "pickle string overruns at %zu", i);
            v = s_new(vm, V_STR);
            if (v && !(v->s = s_alloc(vm, (size_t)sl + 1))) v = NULL;
            if (v) {
                memcpy(v->s, p + i, (size_t)sl);
                v->slen = (size_t)sl;
            }
            i += (size_t)sl;
            PUSH(v);
            break;
        }
        case 'q': case 'r': case 0x94: {
            uint64_t idx;
            if (op == 0x94) {
                idx = vm->memo_n; /* MEMOIZE: the index is the memo's size */
            } else {
                int k = op == 'q' ? 1 : 4;
                NEED(k);
                idx = s_le(p + i, k);
                i += (size_t)k;
            }
            if (vm->sp == 0 || vm->stack[vm->sp - 1]->type == V_MARK)
                return lf_tensor_fail(vm->e, LF_EFORMAT, NULL, "memo store from empty stack");
            if ((rc = s_memo_put(vm, idx, vm->stack[vm->sp - 1])) != 0)
                return lf_tensor_fail(vm->e, rc, NULL, "memo index %llu", (unsigned long long)idx);
            break;
        }
        case 'h': case 'j': {
            int k = op == 'h' ? 1 : 4;
            NEED(k);
            uint64_t idx = s_le(p + i, k);
            i += (size_t)k;
            if (idx >= vm->memo_cap || !vm->memo[idx])
                return lf_tensor_fail(vm->e, LF_EFORMAT, NULL, "memo index %llu unset", (unsigned long long)idx);
            PUSH(vm->memo[idx]);
            break;
        }
        case 'c': {
            const unsigned char *nl1 = memchr(p + i, '\n', len - i);
            if (!nl1) return lf_tensor_fail(vm->e, LF_EFORMAT, NULL, "GLOBAL truncated");
            const unsigned char *nl2 = memchr(nl1 + 1, '\n', len - (size_t)(nl1 + 1 - p));
            if (!nl2) return lf_tensor_fail(vm->e, LF_EFORMAT, NULL, "GLOBAL truncated");
            v = s_global(vm, (const char *)p + i, (size_t)(nl1 - p - (ptrdiff_t)i), (const char *)nl1 + 1,
                         (size_t)(nl2 - nl1 - 1));
            if (!v) return FAILED();
            i = (size_t)(nl2 + 1 - p);
            PUSH(v);
            break;
        }
        case 0x93: /* STACK_GLOBAL */
            POP(b);
            POP(a);
            if (a->type != V_STR || b->type != V_STR) return lf_tensor_fail(vm->e, LF_EFORMAT, NULL, "STACK_GLOBAL of non-strings");
            v = s_global(vm, a->s, a->slen, b->s, b->slen);
            if (!v) return FAILED();
            PUSH(v);
            break;
        case 't': case 'l': case 'd': {
            size_t mk = s_mark(vm);
            if (mk == SIZE_MAX) return lf_tensor_fail(vm->e, LF_EFORMAT, NULL, "no MARK for container at %zu", i);
            v = s_new(vm, op == 't' ? V_TUPLE : op == 'l' ? V_LIST : V_DICT);
            if (!v) return lf_tensor_fail(vm->e, LF_ENOMEM, NULL, "out of memory");
            if (op == 'd' && (vm->sp - mk - 1) % 2) return lf_tensor_fail(vm->e, LF_EFORMAT, NULL, "odd DICT items");
            for (m = mk + 1; m < vm->sp; m++)
                if ((rc = s_append(vm, v, vm->stack[m])) != 0) return lf_tensor_fail(vm->e, rc, NULL, "out of memory");
            vm->sp = mk;
            PUSH(v);
            break;
        }
        case 0x85: case 0x86: case 0x87: {
            size_t k = op - 0x84;
            if (vm->sp < k) return lf_tensor_fail(vm->e, LF_EFORMAT, NULL, "stack underflow at %zu", i);
            v = s_new(vm, V_TUPLE);
            if (!v) return lf_tensor_fail(vm->e, LF_ENOMEM, NULL, "out of memory");
            for (m = vm->sp - k; m < vm->sp; m++) {
                if (vm->stack[m]->type == V_MARK) return lf_tensor_fail(vm->e, LF_EFORMAT, NULL, "MARK inside TUPLE%zu", k);
                if ((rc = s_append(vm, v, vm->stack[m])) != 0) return lf_tensor_fail(vm->e, rc, NULL, "out of memory");
            }
            vm->sp -= k;
            PUSH(v);
            break;
        }
        case 'Q': { /* BINPERSID: ('storage', type, key, location, numel) */
            POP(a);
            if (a->type != V_TUPLE || a->n != 5 || a->items[0]->type != V_STR || strcmp(a->items[0]->s, "storage") ||
                a->items[1]->type != V_GLOBAL || a->items[1]->i != G_STORAGE || a->items[2]->type != V_STR ||
                a->items[4]->type != V_INT || a->items[4]->i < 0)
                return lf_tensor_fail(vm->e, LF_EUNSUPPORTED, NULL, "persistent id is not a storage reference");
            v = s_new(vm, V_STORAGE);
            if (v) {
                v->dtype = a->items[1]->dtype;
                v->s = a->items[2]->s;
                v->i = a->items[4]->i;
            }
            PUSH(v);
            break;
        }
        case 'R':
            POP(b);
            POP(a);
            v = s_reduce(vm, a, b);
            if (!v) return FAILED();
            PUSH(v);
            break;
        case 'b': /* BUILD: an opaque object's state; trivial state on dicts (OrderedDict _metadata) */
            POP(b);
            if (vm->sp && vm->stack[vm->sp - 1]->type == V_OBJECT) {
                vm->stack[vm->sp - 1]->state = b;
                break;
            }
            if (vm->sp == 0 || vm->stack[vm->sp - 1]->type != V_DICT ||
                !(b->type == V_DICT || b->type == V_NONE || b->type == V_TUPLE))
                return lf_tensor_fail(vm->e, LF_EUNSUPPORTED, NULL, "BUILD on a non-dict object");
            break;
        case 0x81: case 0x92: /* NEWOBJ, NEWOBJ_EX: cls.__new__(cls, *args) -> an opaque object */
            if (op == 0x92) POP(b); /* kwargs, dropped */
            POP(b);
            POP(a);
            if (a->type != V_GLOBAL || a->i != G_OPAQUE || b->type != V_TUPLE)
                return lf_tensor_fail(vm->e, LF_EUNSUPPORTED, NULL, "NEWOBJ of something other than a class");
            v = s_reduce(vm, a, b);
            if (!v) return FAILED();
            PUSH(v);
            break;
        case 0x8f: PUSH(s_new(vm, V_SET)); break; /* EMPTY_SET */
        case 0x90: case 0x91: { /* ADDITEMS, FROZENSET */
            size_t mk = s_mark(vm);
            if (mk == SIZE_MAX || (op == 0x90 && (mk == 0 || vm->stack[mk - 1]->type != V_SET)))
                return lf_tensor_fail(vm->e, LF_EFORMAT, NULL, "no MARK / set for ADDITEMS/FROZENSET");
            v = op == 0x90 ? vm->stack[mk - 1] : s_new(vm, V_SET);
            if (!v) return lf_tensor_fail(vm->e, LF_ENOMEM, NULL, "out of memory");
            for (m = mk + 1; m < vm->sp; m++)
                if ((rc = s_append(vm, v, vm->stack[m])) != 0) return lf_tensor_fail(vm->e, rc, NULL, "out of memory");
            vm->sp = mk;
            if (op == 0x91) PUSH(v);
            break;
        }
        case 's':
            POP(b);
            POP(a);
            if (vm->sp == 0 || vm->stack[vm->sp - 1]->type != V_DICT) return lf_tensor_fail(vm->e, LF_EFORMAT, NULL, "SETITEM on non-dict");
            if ((rc = s_append(vm, vm->stack[vm->sp - 1], a)) || (rc = s_append(vm, vm->stack[vm->sp - 1], b)))
                return lf_tensor_fail(vm->e, rc, NULL, "out of memory");
            break;
        case 'u': case 'e': {
            size_t mk = s_mark(vm);
            if (mk == SIZE_MAX || mk == 0) return lf_tensor_fail(vm->e, LF_EFORMAT, NULL, "no MARK for SETITEMS/APPENDS");
            v = vm->stack[mk - 1];
            if ((op == 'u' && (v->type != V_DICT || (vm->sp - mk - 1) % 2)) || (op == 'e' && v->type != V_LIST))
                return lf_tensor_fail(vm->e, LF_EFORMAT, NULL, "SETITEMS/APPENDS on wrong type");
            for (m = mk + 1; m < vm->sp; m++)
                if ((rc = s_append(vm, v, vm->stack[m])) != 0) return lf_tensor_fail(vm->e, rc, NULL, "out of memory");
            vm->sp = mk;
            break;
        }
        case 'a':
            POP(b);
            if (vm->sp == 0 || vm->stack[vm->sp - 1]->type != V_LIST) return lf_tensor_fail(vm->e, LF_EFORMAT, NULL, "APPEND on non-list");
            if ((rc = s_append(vm, vm->stack[vm->sp - 1], b)) != 0) return lf_tensor_fail(vm->e, rc, NULL, "out of memory");
            break;
        default:
            return lf_tensor_fail(vm->e, LF_EUNSUPPORTED, NULL, "pickle opcode 0x%02x at %zu is not allowed", op, i - 1);
        }
    }
#undef NEED
#undef PUSH
#undef FAILED
#undef POP
    return lf_tensor_fail(vm->e, LF_EFORMAT, NULL, "pickle has no STOP");
}

/* ---- tensors ------------------------------------------------------------------ */

static int s_add_tensor(lf_torchzip_t *z, const char *prefix, const char *name, const s_val_t *t, lf_tensor_err_t *e)
{
    size_t nl = strlen(name) + strlen(prefix) + 2;
    char *full = malloc(nl);
    if (!full) return lf_tensor_fail(e, LF_ENOMEM, NULL, "out of memory");
    snprintf(full, nl, "%s%s%s", prefix, *prefix ? "." : "", name);
    int rc = 0;
    if (z->count == z->cap) {
        size_t nc = z->cap ? 2 * z->cap : 64;
        lf_tensor_info_t *nt = realloc(z->tensors, nc * sizeof *nt);
        if (!nt) {
            free(full);
            return lf_tensor_fail(e, LF_ENOMEM, NULL, "out of memory");
        }
        z->tensors = nt;
        z->cap = nc;
    }
    lf_tensor_info_t *ti = &z->tensors[z->count];
    memset(ti, 0, sizeof *ti);
    ti->name = full;
    z->count++; /* owned from here on, freed with the object */
    ti->dtype = t->dtype;
    ti->ndim = t->ndim;
    memcpy(ti->shape, t->shape, sizeof ti->shape);
    memcpy(ti->strides, t->stride, sizeof ti->strides);
    /* The storage entry: "<archive>/data/<key>". */
    const char *pkl = NULL;
    for (size_t k = 0; k < lf_zip_count(z->zip) && !pkl; k++) {
        const char *nm = lf_zip_name(z->zip, k);
        size_t l = strlen(nm);
        if (l >= 8 && strcmp(nm + l - 8, "data.pkl") == 0) pkl = nm;
    }
    size_t dl = strlen(pkl) + strlen(t->storage->s) + 8;
    char *dname = malloc(dl);
    if (!dname) return lf_tensor_fail(e, LF_ENOMEM, NULL, "out of memory");
    snprintf(dname, dl, "%.*sdata/%s", (int)(strlen(pkl) - 8), pkl, t->storage->s);
    size_t ei;
    int found = lf_zip_find(z->zip, dname, &ei) == 0;
    free(dname);
    if (!found) return lf_tensor_fail(e, LF_EFORMAT, full, "storage '%s' missing from the archive", t->storage->s);
    uint64_t esize = lf_zip_size(z->zip, ei);
    size_t es = lf_dtype_size(t->dtype);
    uint64_t numel = (uint64_t)t->storage->i;
    if (numel > esize / es)
        return lf_tensor_fail(e, LF_EFORMAT, full, "storage '%s' holds %llu bytes, fewer than %llu elements",
                      t->storage->s, (unsigned long long)esize, (unsigned long long)numel);
    /* Extent of the strided view, checked for overflow. */
    uint64_t last = (uint64_t)t->offset, empty = 0;
    for (int d = 0; d < t->ndim; d++) {
        if (t->shape[d] == 0) empty = 1;
        else if (t->shape[d] > 0 && (uint64_t)t->stride[d] > (UINT64_MAX / 2) / (uint64_t)t->shape[d])
            return lf_tensor_fail(e, LF_EFORMAT, full, "strides overflow");
        else last += (uint64_t)(t->shape[d] - 1) * (uint64_t)t->stride[d];
        if (last > numel) return lf_tensor_fail(e, LF_EFORMAT, full, "view exceeds its storage");
    }
    if (!empty && last >= numel) return lf_tensor_fail(e, LF_EFORMAT, full, "view exceeds its storage");
    const unsigned char *data;
    if ((rc = s_data(z, ei, &data, e, full)) != 0) return rc;
    ti->data = data + (size_t)t->offset * es;
    ti->nbytes = empty ? 0 : (size_t)(last - (uint64_t)t->offset + 1) * es;
    return 0;
}

/* A value of dict d under string key, or NULL. */
static const s_val_t *s_dict_get(const s_val_t *d, const char *key)
{
    if (!d || d->type != V_DICT) return NULL;
    for (size_t k = 0; k + 1 < d->n; k += 2)
        if (d->items[k]->type == V_STR && strcmp(d->items[k]->s, key) == 0) return d->items[k + 1];
    return NULL;
}

/* An opaque object's state dict when it is an nn.Module's (it has
 * _parameters or _modules), else NULL. */
static const s_val_t *s_module_state(const s_val_t *o)
{
    const s_val_t *st = o->state;
    if (st && st->type == V_TUPLE && st->n == 2 && st->items[0]->type == V_DICT) st = st->items[0];
    if (!st || st->type != V_DICT) return NULL;
    if (!s_dict_get(st, "_parameters") && !s_dict_get(st, "_modules")) return NULL;
    return st;
}

static int s_collect(lf_torchzip_t *z, const s_val_t *d, const char *prefix, int depth, lf_tensor_err_t *e);

/* The entries of a module's state dict (st): _parameters, _buffers (tensors,
 * None skipped) and _modules (sub-modules) under prefix. */
static int s_collect_module(lf_torchzip_t *z, const s_val_t *st, const char *prefix, int depth, lf_tensor_err_t *e)
{
    static const char *const keys[3] = {"_parameters", "_buffers", "_modules"};
    for (int i = 0; i < 3; i++) {
        const s_val_t *d = s_dict_get(st, keys[i]);
        int rc = d && d->type == V_DICT ? s_collect(z, d, prefix, depth + 1, e) : 0;
        if (rc) return rc;
    }
    return 0;
}

static int s_collect(lf_torchzip_t *z, const s_val_t *d, const char *prefix, int depth, lf_tensor_err_t *e)
{
    if (depth > S_MAX_DEPTH) return lf_tensor_fail(e, LF_ELIMIT, NULL, "dicts nested too deeply");
    for (size_t k = 0; k + 1 < d->n; k += 2) {
        const s_val_t *key = d->items[k], *val = d->items[k + 1], *st = NULL;
        if (key->type != V_STR) continue;
        if (val->type == V_TENSOR) {
            int rc = s_add_tensor(z, prefix, key->s, val, e);
            if (rc) return rc;
            continue;
        }
        if (val->type == V_OBJECT && !(st = s_module_state(val))) continue;
        if (val->type != V_DICT && !st) continue;
        size_t pl = strlen(prefix) + key->slen + 2;
        char *np = malloc(pl);
        if (!np) return lf_tensor_fail(e, LF_ENOMEM, NULL, "out of memory");
        snprintf(np, pl, "%s%s%s", prefix, *prefix ? "." : "", key->s);
        int rc = st ? s_collect_module(z, st, np, depth, e) : s_collect(z, val, np, depth + 1, e);
        free(np);
        if (rc) return rc;
    }
    return 0;
}

/* The top-level dict's string values under string keys (a .ckpt's
 * "lf.config" beside its "state_dict", as safetensors' __metadata__). */
static int s_collect_meta(lf_torchzip_t *z, const s_val_t *root, lf_tensor_err_t *e)
{
    size_t n = 0;
    for (size_t k = 0; k + 1 < root->n; k += 2)
        n += root->items[k]->type == V_STR && root->items[k + 1]->type == V_STR;
    if (!n) return 0;
    if (!(z->meta = calloc(2 * n, sizeof *z->meta))) return lf_tensor_fail(e, LF_ENOMEM, NULL, "out of memory");
    for (size_t k = 0; k + 1 < root->n; k += 2) {
        if (root->items[k]->type != V_STR || root->items[k + 1]->type != V_STR) continue;
        char **kv = z->meta + 2 * z->n_meta++;
        if (!(kv[0] = strdup(root->items[k]->s)) || !(kv[1] = strdup(root->items[k + 1]->s)))
            return lf_tensor_fail(e, LF_ENOMEM, NULL, "out of memory");
    }
    return 0;
}

static int s_cmp_idx_name(const void *a, const void *b, void *ctx)
{
    const lf_tensor_info_t *t = ctx;
    return strcmp(t[*(const size_t *)a].name, t[*(const size_t *)b].name);
}

static void s_free(lf_torchzip_t *z)
{
    if (!z) return;
    while (z->blocks) {
        s_block_t *n = z->blocks->next;
        free(z->blocks);
        z->blocks = n;
    }
    lf_zip_destroy(&z->zip);
    for (size_t i = 0; i < z->count; i++) free((char *)z->tensors[i].name);
    free(z->tensors);
    free(z->by_name);
    for (size_t i = 0; i < 2 * z->n_meta; i++) free(z->meta[i]);
    free(z->meta);
    if (z->map) munmap(z->map, z->map_len);
    free(z);
}

int lf_torchzip_parse(lf_torchzip_t **out, const void *buf, size_t len, const char *label,
                      char *errstr, size_t errlen)
{
    lf_tensor_err_t e = {errstr, errlen, label};
    if (errlen) errstr[0] = '\0';
    lf_torchzip_t *z = calloc(1, sizeof *z);
    if (!z) return lf_tensor_fail(&e, LF_ENOMEM, NULL, "out of memory");
    s_vm_t vm = {.e = &e};
    char zerr[256];
    int rc = lf_zip_parse(&z->zip, buf, len, zerr, sizeof zerr);
    if (rc != 0) lf_tensor_fail(&e, rc, NULL, "%s", zerr);
    size_t pkl = SIZE_MAX;
    for (size_t k = 0; rc == 0 && k < lf_zip_count(z->zip); k++) {
        const char *nm = lf_zip_name(z->zip, k);
        size_t l = strlen(nm);
        const char *sl = strchr(nm, '/');
        if (l >= 9 && strcmp(nm + l - 9, "/data.pkl") == 0 && sl == nm + l - 9) {
            if (pkl != SIZE_MAX) rc = lf_tensor_fail(&e, LF_EFORMAT, NULL, "more than one data.pkl");
            pkl = k;
        }
        if (l >= 10 && strcmp(nm + l - 10, "/byteorder") == 0 && lf_zip_size(z->zip, k) >= 3) {
            const unsigned char *bo;
            if ((rc = s_data(z, k, &bo, &e, NULL)) == 0 && memcmp(bo, "big", 3) == 0)
                rc = lf_tensor_fail(&e, LF_EUNSUPPORTED, NULL, "big-endian checkpoint");
        }
    }
    if (rc == 0 && pkl == SIZE_MAX) rc = lf_tensor_fail(&e, LF_EFORMAT, NULL, "no <archive>/data.pkl (legacy non-zip checkpoints are not supported)");
    s_val_t *root = NULL;
    const unsigned char *pd = NULL;
    if (rc == 0 && (rc = s_data(z, pkl, &pd, &e, NULL)) == 0)
        rc = s_run_pickle(&vm, pd, (size_t)lf_zip_size(z->zip, pkl), &root);
    if (rc == 0 && root->type != V_DICT) rc = lf_tensor_fail(&e, LF_EFORMAT, NULL, "top-level object is not a dict");
    if (rc == 0) rc = s_collect_meta(z, root, &e);
    z->root = root;
    if (rc == 0) {
        for (size_t k = 0; k + 1 < root->n; k += 2)
            if (root->items[k]->type == V_STR && strcmp(root->items[k]->s, "state_dict") == 0 &&
                root->items[k + 1]->type == V_DICT)
                root = root->items[k + 1];
        rc = s_collect(z, root, "", 0, &e);
    }
    if (rc == 0) {
        if (!(z->by_name = malloc((z->count ? z->count : 1) * sizeof *z->by_name))) rc = lf_tensor_fail(&e, LF_ENOMEM, NULL, "out of memory");
        for (size_t k = 0; rc == 0 && k < z->count; k++) z->by_name[k] = k;
        if (rc == 0) qsort_r(z->by_name, z->count, sizeof *z->by_name, s_cmp_idx_name, z->tensors);
        for (size_t k = 1; rc == 0 && k < z->count; k++)
            if (strcmp(z->tensors[z->by_name[k - 1]].name, z->tensors[z->by_name[k]].name) == 0)
                rc = lf_tensor_fail(&e, LF_EFORMAT, z->tensors[z->by_name[k]].name, "duplicate name");
    }
    z->blocks = vm.blocks; /* freed with the object */
    free(vm.stack);
    free(vm.memo);
    if (rc != 0) {
        if (errlen && !errstr[0]) lf_tensor_fail(&e, rc, NULL, "%s", lf_strerror(rc));
        s_free(z);
        return rc;
    }
    *out = z;
    return 0;
}

int lf_torchzip_open(lf_torchzip_t **out, const char *path, char *errstr, size_t errlen)
{
    lf_tensor_err_t e = {errstr, errlen, path};
    if (errlen) errstr[0] = '\0';
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return lf_tensor_fail(&e, LF_EIO, NULL, "cannot open: %s", strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) || sb.st_size < 22) {
        close(fd);
        return lf_tensor_fail(&e, LF_EFORMAT, NULL, "not a zip archive");
    }
    void *map = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) return lf_tensor_fail(&e, LF_EIO, NULL, "mmap failed: %s", strerror(errno));
    lf_torchzip_t *z;
    int rc = lf_torchzip_parse(&z, map, (size_t)sb.st_size, path, errstr, errlen);
    if (rc != 0) {
        munmap(map, (size_t)sb.st_size);
        return rc;
    }
    z->map = map;
    z->map_len = (size_t)sb.st_size;
    *out = z;
    return 0;
}

void lf_torchzip_destroy(lf_torchzip_t **self_p)
{
    if (!self_p || !*self_p) return;
    s_free(*self_p);
    *self_p = NULL;
}

size_t lf_torchzip_count(const lf_torchzip_t *z)
{
    return z->count;
}

const lf_tensor_info_t *lf_torchzip_at(const lf_torchzip_t *z, size_t i)
{
    return i < z->count ? &z->tensors[i] : NULL;
}

const lf_tensor_info_t *lf_torchzip_find(const lf_torchzip_t *z, const char *name)
{
    size_t lo = 0, hi = z->count;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(z->tensors[z->by_name[mid]].name, name);
        if (c == 0) return &z->tensors[z->by_name[mid]];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

const char *lf_torchzip_metadata(const lf_torchzip_t *z, const char *key)
{
    for (size_t i = 0; i < z->n_meta; i++)
        if (strcmp(z->meta[2 * i], key) == 0) return z->meta[2 * i + 1];
    return NULL;
}

/* ---- values as JSON -------------------------------------------------------- */

static json_t *s_json(const s_val_t *v, int depth)
{
    if (depth > 64) return NULL;
    json_t *j = NULL;
    switch (v->type) {
    case V_NONE: return json_null();
    case V_BOOL: return json_boolean(v->i);
    case V_INT: return json_integer((json_int_t)v->i);
    case V_FLOAT: return isfinite(v->f) ? json_real(v->f) : json_null();
    case V_STR: return (j = json_stringn(v->s, v->slen)) ? j : json_null();
    case V_TUPLE: case V_LIST: case V_SET:
        if (!(j = json_array())) return NULL;
        for (size_t k = 0; k < v->n; k++) {
            json_t *x = s_json(v->items[k], depth + 1);
            if (!x || json_array_append_new(j, x)) {
                json_decref(j);
                return NULL;
            }
        }
        return j;
    case V_DICT:
        if (!(j = json_object())) return NULL;
        for (size_t k = 0; k + 1 < v->n; k += 2) {
            const s_val_t *key = v->items[k];
            char num[32];
            const char *ks = key->type == V_STR ? key->s : NULL;
            if (key->type == V_INT) snprintf(num, sizeof num, "%lld", (long long)key->i), ks = num;
            if (!ks) continue;
            json_t *x = s_json(v->items[k + 1], depth + 1);
            if (!x || json_object_set_new(j, ks, x)) {
                json_decref(j);
                return NULL;
            }
        }
        return j;
    default: return json_null(); /* tensors, opaque objects */
    }
}

int lf_torchzip_json(const lf_torchzip_t *z, const char *path, char **out)
{
    const s_val_t *v = z->root;
    const char *p = path;
    while (v && *p) {
        const char *dot = strchr(p, '.');
        size_t l = dot ? (size_t)(dot - p) : strlen(p);
        char key[256];
        if (l >= sizeof key) return LF_ENOTFOUND;
        memcpy(key, p, l);
        key[l] = '\0';
        if (v->type == V_OBJECT) {
            v = v->state;
            if (v && v->type == V_TUPLE && v->n == 2) v = v->items[0];
        }
        v = s_dict_get(v, key);
        p += l + (dot != NULL);
    }
    if (!v) return LF_ENOTFOUND;
    json_t *j = s_json(v, 0);
    if (!j) return LF_ENOMEM;
    *out = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER);
    json_decref(j);
    return *out ? 0 : LF_ENOMEM;
}
