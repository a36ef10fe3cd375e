// lf_cuda_quant: GGUF block-quantized weights on the GPU. A weight matrix
// is dequantized into the product's operand type (one thread per weight,
// rows `row_nb` bytes apart, blocks read as ggml lays them out:
// kernels/lf_quant.c's scalar code is the reference): f32 under the f32
// precision (exactly the CPU's values), f16 or bf16 under 16-bit precision
// (the f32 dequantization rounded once), and the product runs as the
// backend's cuBLAS GemmEx; the copy lives in the backend's scratch, so a
// model's resident weights stay quantized.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>

#include "lf_cuda_impl.h"

namespace {

// lf_tensor.h's block types, in order (LF_TYPE_Q4_0 = 3 ...).
enum { kQ4_0 = 3, kQ4_1, kQ5_0, kQ5_1, kQ8_0, kQ4_K, kQ5_K, kQ6_K };

__device__ __forceinline__ float h(const unsigned char *p) {
    return __half2float(__ushort_as_half((unsigned short)(p[0] | p[1] << 8)));
}

__device__ __forceinline__ uint32_t u32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

// Sub-block j's 6-bit scale and min in a Q4_K/Q5_K block's 12 scale bytes.
__device__ __forceinline__ void scale_min(int j, const unsigned char *q, int *sc, int *m) {
    *sc = j < 4 ? q[j] & 63 : (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
    *m = j < 4 ? q[j + 4] & 63 : (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
}

// Weight e (0..31 or 0..255) of block b.
__device__ float weight(int type, const unsigned char *b, int e) {
    int j = e & 15, hi = (e >> 4) & 1; // 32-blocks: element j or j + 16 of the pair
    switch (type) {
    case kQ8_0: return (float)(int8_t)b[2 + e] * h(b);
    case kQ4_0: return h(b) * (float)((hi ? b[2 + j] >> 4 : b[2 + j] & 0xF) - 8);
    case kQ4_1: return h(b) * (float)(hi ? b[4 + j] >> 4 : b[4 + j] & 0xF) + h(b + 2);
    case kQ5_0:
    case kQ5_1: {
        int o = type == kQ5_0 ? 2 : 4;
        uint32_t qh = u32(b + o);
        const unsigned char *qs = b + o + 4;
        int q = (hi ? qs[j] >> 4 : qs[j] & 0xF) | (int)((qh >> e) & 1) << 4;
        return type == kQ5_0 ? h(b) * (float)(q - 16) : h(b) * (float)q + h(b + 2);
    }
    case kQ4_K:
    case kQ5_K: {
        int c = e / 64, l = e % 32, up = (e / 32) & 1, sc, m;
        scale_min(2 * c + up, b + 4, &sc, &m);
        const unsigned char *qs = b + (type == kQ4_K ? 16 : 48) + 32 * c;
        int q = up ? qs[l] >> 4 : qs[l] & 0xF;
        if (type == kQ5_K) q |= ((b[16 + l] >> (2 * c + up)) & 1) << 4;
        return h(b) * (float)sc * (float)q - h(b + 2) * (float)m;
    }
    case kQ6_K: {
        int n = e / 128, r = e % 128, quarter = r / 32, l = r % 32;
        const unsigned char *ql = b + 64 * n, *qh = b + 128 + 32 * n;
        const int8_t *sc = (const int8_t *)(b + 192) + 8 * n;
        int low = quarter & 1 ? ql[l + 32] : ql[l];
        int q = ((quarter >= 2 ? low >> 4 : low & 0xF) | ((qh[l] >> (2 * quarter)) & 3) << 4) - 32;
        return h(b + 208) * (float)sc[l / 16 + 2 * quarter] * (float)q;
    }
    default: return 0.0f;
    }
}

__global__ void k_dequant(void *dst, int dst_type, int type, const unsigned char *src, int64_t rows,
                          int64_t k, int64_t row_nb, int blck, int bbytes) {
    int64_t n = rows * k;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t r = i / k, c = i % k;
        const unsigned char *b = src + r * row_nb + (c / blck) * bbytes;
        const float w = weight(type, b, (int)(c % blck));
        if (dst_type == 0) static_cast<float *>(dst)[i] = w;
        else if (dst_type == 1) static_cast<__half *>(dst)[i] = __float2half_rn(w);
        else static_cast<__nv_bfloat16 *>(dst)[i] = __float2bfloat16_rn(w);
    }
}

} // namespace

extern "C" int lf__cuda_dequant(void *dst, int dst_type, int type, const void *src, int64_t rows, int64_t k,
                                int64_t row_nb, int blck, int block_bytes, void *stream) {
    if (type < kQ4_0 || type > kQ6_K || dst_type < 0 || dst_type > 2) return (int)cudaErrorInvalidValue;
    int64_t n = rows * k, blocks = (n + 255) / 256;
    k_dequant<<<(unsigned)(blocks < 65535 ? blocks : 65535), 256, 0, (cudaStream_t)stream>>>(
        dst, dst_type, type, (const unsigned char *)src, rows, k, row_nb, blck, block_bytes);
    return (int)cudaGetLastError();
}
