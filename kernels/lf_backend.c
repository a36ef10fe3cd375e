/* lf_backend: the backend-independent half of lf_backend.h — dispatch
 * through the backend's table, buffers and transfers. */
#include "lf_backend.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lf_backend_impl.h"
#include "lf_error.h"
#include "lf_profile.h"

lf_backend_t *lf__backend_new(const lf__backend_iface_t *iface, void *ctx) {
    lf_backend_t *be = calloc(1, sizeof *be);
    if (!be) return NULL;
    be->iface = iface;
    be->ctx = ctx;
    return be;
}

void lf__backend_seterr(lf_backend_t *be, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(be->errstr, sizeof be->errstr, fmt, ap);
    va_end(ap);
}

void lf_backend_destroy(lf_backend_t **be_p) {
    if (!be_p || !*be_p) return;
    lf_backend_t *be = *be_p;
    if (be->iface->destroy) be->iface->destroy(be);
    free(be);
    *be_p = NULL;
}

const char *lf_backend_name(const lf_backend_t *be) {
    return be->iface->name;
}

const char *lf_backend_describe(const lf_backend_t *be) {
    return be->describe;
}

const char *lf_backend_errstr(const lf_backend_t *be) {
    return be->errstr;
}

bool lf_backend_is_host(const lf_backend_t *be) {
    return be->iface->host_memory;
}

bool lf_backend_supports_op(lf_backend_t *be, const lf_node_t *node) {
    if ((unsigned)node->op >= LF_OP_COUNT || !be->iface->ops[node->op]) return false;
    const bool post = node->post_act || ((node->op == LF_OP_MATMUL || node->op == LF_OP_CONV2D) && node->src[3]);
    if (post && (!be->iface->supports_fused || !be->iface->supports_fused(be, node))) return false;
    return be->iface->supports_op(be, node);
}

int lf__backend_run_node(lf_backend_t *be, const lf_node_t *node) {
    if (!lf_backend_supports_op(be, node)) {
        lf__backend_seterr(be, "%s: %s does not support this case (types %s/%s)",
                           lf_op_name(node->op), be->iface->name,
                           lf_type_name(node->src[0]->type), lf_type_name(node->dst->type));
        return LF_EUNSUPPORTED;
    }
    if (!be->profile) return be->iface->ops[node->op](be, node);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc = be->iface->ops[node->op](be, node);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    lf_profile_add(be->profile, node,
                   (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec));
    return rc;
}

const char *lf_precision_name(lf_precision_t p) {
    return p == LF_PRECISION_BF16 ? "bf16" : p == LF_PRECISION_AUTO ? "auto" : p == LF_PRECISION_F16 ? "f16" : "f32";
}

int lf_precision_parse(const char *s, lf_precision_t *out) {
    static const lf_precision_t all[] = {LF_PRECISION_F32, LF_PRECISION_BF16, LF_PRECISION_AUTO};
    for (size_t i = 0; s && i < sizeof all / sizeof all[0]; i++)
        if (!strcmp(s, lf_precision_name(all[i]))) return *out = all[i], 0;
    return LF_EINVAL;
}

lf_precision_t lf_backend_set_precision(lf_backend_t *be, lf_precision_t p) {
    be->precision = be->iface->set_precision ? be->iface->set_precision(be, p) : LF_PRECISION_F32;
    return be->precision;
}

lf_precision_t lf_backend_precision(const lf_backend_t *be) {
    return be->precision;
}

void lf_backend_set_profile(lf_backend_t *be, struct lf_profile *prof) {
    be->profile = prof;
    if (be->iface->set_profile) be->iface->set_profile(be, prof);
}

int lf_backend_buffer_alloc(lf_backend_t *be, size_t size, lf_buffer_usage_t usage,
                            lf_buffer_t **out) {
    if (!be || !out) return LF_EINVAL;
    lf_buffer_t *buf = calloc(1, sizeof *buf);
    if (!buf) return LF_ENOMEM;
    buf->backend = be;
    buf->size = size;
    buf->usage = usage;
    int rc = be->iface->buffer_alloc(be, size, usage, buf);
    if (rc) {
        free(buf);
        return rc;
    }
    *out = buf;
    return 0;
}

void lf_backend_buffer_free(lf_buffer_t **buf_p) {
    if (!buf_p || !*buf_p) return;
    lf_buffer_t *buf = *buf_p;
    buf->backend->iface->buffer_free(buf->backend, buf);
    free(buf);
    *buf_p = NULL;
}

void *lf_backend_host_alloc(lf_backend_t *be, size_t size) {
    return be->iface->host_alloc(be, size);
}

void lf_backend_host_free(lf_backend_t *be, void *p) {
    if (p) be->iface->host_free(be, p);
}

int lf_backend_tensor_set(lf_backend_t *be, lf_tensor_t *t, const void *host, size_t nbytes) {
    if (!t->data || !lf_tensor_is_contiguous(t) || nbytes != lf_tensor_nbytes(t)) return LF_EINVAL;
    lf_backend_forget(be, t->data, nbytes);
    return be->iface->upload(be, t->data, host, nbytes);
}

void lf_backend_forget(lf_backend_t *be, const void *p, size_t n) {
    if (be && be->iface->forget && p && n) be->iface->forget(be, p, n);
}

const char *lf_pack_name(lf_pack_t p) {
    return p == LF_PACK_MEMORY ? "memory" : p == LF_PACK_FILE ? "file" : "off";
}

int lf_pack_parse(const char *s, lf_pack_t *out) {
    static const char *const names[] = {"off", "memory", "file"};
    for (int i = 0; s && i < 3; i++)
        if (!strcmp(s, names[i])) {
            *out = (lf_pack_t)i;
            return 0;
        }
    return LF_EINVAL;
}

lf_pack_t lf_backend_set_pack(lf_backend_t *be, lf_pack_t mode, const char *dir) {
    return be && be->iface->set_pack ? be->iface->set_pack(be, mode, dir) : LF_PACK_OFF;
}

lf_pack_t lf_backend_pack(const lf_backend_t *be) {
    return be && be->iface->pack ? be->iface->pack(be) : LF_PACK_OFF;
}

size_t lf_backend_release(lf_backend_t *be, const void *p, size_t n, bool switched_out) {
    return be && be->iface->release && p && n ? be->iface->release(be, p, n, switched_out) : 0;
}

size_t lf_backend_packed_bytes(const lf_backend_t *be) {
    return be && be->iface->packed_bytes ? be->iface->packed_bytes(be) : 0;
}

int lf_backend_tensor_get(lf_backend_t *be, const lf_tensor_t *t, void *host, size_t nbytes) {
    if (!t->data || !lf_tensor_is_contiguous(t) || nbytes != lf_tensor_nbytes(t)) return LF_EINVAL;
    return be->iface->download(be, host, t->data, nbytes);
}

size_t lf_backend_workspace_bytes(const lf_backend_t *be) {
    return be->iface->workspace_bytes ? be->iface->workspace_bytes(be) : 0;
}

int lf_backend_sync(lf_backend_t *be) {
    return be->iface->sync ? be->iface->sync(be) : 0;
}

#ifndef LF_HAVE_CUDA
/* Built without nvcc: the CUDA backend does not exist in this binary. */
bool lf_backend_cuda_available(void) {
    return false;
}

lf_backend_t *lf_backend_cuda_new(int device, size_t slab_bytes) {
    (void)device, (void)slab_bytes;
    return NULL;
}

int lf_backend_cuda_devices(int *n, char *why, size_t whylen) {
    if (n) *n = 0;
    if (why && whylen) snprintf(why, whylen, "this build has no CUDA backend (built without nvcc or with -DLF_CUDA=OFF)");
    return LF_EUNSUPPORTED;
}

int lf_backend_cuda_device_props(int idx, char *name, size_t namelen, uint64_t *total_bytes) {
    (void)idx, (void)total_bytes;
    return lf_backend_cuda_devices(NULL, name, namelen);
}

lf_precision_t lf_backend_cuda_precision(int device, lf_precision_t p) {
    (void)device, (void)p;
    return LF_PRECISION_F32;
}
#endif
