/* lf_tensorinfo: dtype names and sizes, element access for tests and tools. */
#include "lf_tensorinfo.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lf_error.h"

static const struct {
    const char *name;
    size_t size, blck;
} s_dtypes[] = {
#define LF__DT_ROW(name, str, size, blck) {str, size, blck},
    LF_DTYPE_MAP(LF__DT_ROW)
#undef LF__DT_ROW
};
_Static_assert(sizeof s_dtypes / sizeof s_dtypes[0] == LF_DTYPE_COUNT, "dtype table");

const char *lf_dtype_name(lf_dtype_t dt)
{
    return (unsigned)dt < LF_DTYPE_COUNT ? s_dtypes[dt].name : "?";
}

size_t lf_dtype_size(lf_dtype_t dt)
{
    return (unsigned)dt < LF_DTYPE_COUNT && s_dtypes[dt].blck == 1 ? s_dtypes[dt].size : 0;
}

size_t lf_dtype_block(lf_dtype_t dt)
{
    return (unsigned)dt < LF_DTYPE_COUNT ? s_dtypes[dt].blck : 0;
}

size_t lf_dtype_block_bytes(lf_dtype_t dt)
{
    return (unsigned)dt < LF_DTYPE_COUNT ? s_dtypes[dt].size : 0;
}

int lf_dtype_parse(const char *s, lf_dtype_t *out)
{
    for (int i = 0; i < LF_DTYPE_COUNT; i++) {
        if (s_dtypes[i].blck == 1 && strcmp(s, s_dtypes[i].name) == 0) {
            *out = (lf_dtype_t)i;
            return 0;
        }
    }
    return LF_EFORMAT;
}

int64_t lf_tensorinfo_numel(const lf_tensor_info_t *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

/* kernels/lf_tensor.c defines the same two conversions (same results);
 * weak here so a binary linking both libraries takes the kernels' ones
 * instead of failing with a duplicate symbol. */
__attribute__((weak)) float lf_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: renormalise */
            exp = 127 - 15 + 1;
            while (!(man & 0x400)) {
                man <<= 1;
                exp--;
            }
            bits = sign | (exp << 23) | ((man & 0x3ff) << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

__attribute__((weak)) float lf_bf16_to_f32(uint16_t h)
{
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

float lf_tensorinfo_get_f32(const lf_tensor_info_t *t, int64_t i)
{
    int64_t off = 0;
    for (int d = t->ndim - 1; d >= 0; d--) {
        int64_t idx = i % t->shape[d];
        i /= t->shape[d];
        off += idx * t->strides[d];
    }
    const unsigned char *p = (const unsigned char *)t->data + off * (int64_t)lf_dtype_size(t->dtype);
    union {
        double f64;
        float f32;
        uint16_t u16;
        int64_t i64;
        int32_t i32;
        int16_t i16;
        int8_t i8;
        uint64_t u64;
        uint32_t u32;
        uint8_t u8;
    } v;
    if (lf_dtype_size(t->dtype) == 0) return 0.0f; /* block types: see lf_quant */
    memcpy(&v, p, lf_dtype_size(t->dtype));
    switch (t->dtype) {
    case LF_DTYPE_F64: return (float)v.f64;
    case LF_DTYPE_F32: return v.f32;
    case LF_DTYPE_F16: return lf_f16_to_f32(v.u16);
    case LF_DTYPE_BF16: return lf_bf16_to_f32(v.u16);
    case LF_DTYPE_I64: return (float)v.i64;
    case LF_DTYPE_I32: return (float)v.i32;
    case LF_DTYPE_I16: return (float)v.i16;
    case LF_DTYPE_I8: return (float)v.i8;
    case LF_DTYPE_U64: return (float)v.u64;
    case LF_DTYPE_U32: return (float)v.u32;
    case LF_DTYPE_U16: return (float)v.u16;
    case LF_DTYPE_U8:
    case LF_DTYPE_BOOL: return (float)v.u8;
    default: return 0.0f; /* fp8: not needed by any model yet */
    }
}

int lf_tensor_fail(lf_tensor_err_t *e, int code, const char *tensor, const char *fmt, ...)
{
    if (e->errlen == 0) return code;
    int k = snprintf(e->errstr, e->errlen, "%s: ", e->label ? e->label : "<memory>");
    if (tensor && k >= 0 && (size_t)k < e->errlen)
        k += snprintf(e->errstr + k, e->errlen - (size_t)k, "tensor '%s': ", tensor);
    if (k >= 0 && (size_t)k < e->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->errstr + k, e->errlen - (size_t)k, fmt, ap);
        va_end(ap);
    }
    return code;
}

int lf_tensor_map_file(lf_tensor_err_t *e, const char *path, size_t min_len, void **map, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return lf_tensor_fail(e, LF_EIO, NULL, "cannot open: %s", strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return lf_tensor_fail(e, LF_EIO, NULL, "not a regular file");
    }
    if ((size_t)sb.st_size < min_len) {
        close(fd);
        return lf_tensor_fail(e, LF_EFORMAT, NULL, "file too short (%lld bytes)", (long long)sb.st_size);
    }
    *len = (size_t)sb.st_size;
    *map = mmap(NULL, *len, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (*map == MAP_FAILED) return lf_tensor_fail(e, LF_EIO, NULL, "mmap failed: %s", strerror(errno));
    return 0;
}
