// lf_cuda_attention: fused, memory-efficient attention (flash style).
//
// A block serves kWarps query rows of one (head, batch); it walks the keys
// in tiles of kBK held in shared memory. Each warp owns one query row: lane
// j scores key j of the tile, the warp keeps the row's running max and sum
// (online softmax) and each lane accumulates up to kMaxD/32 output channels
// in registers. Memory is O(N): nothing of size Nq x Nk is ever stored.
// This first version uses CUDA cores in f32 (no tensor cores yet).
#include <cuda_runtime.h>
#include <math.h>

#include "lf_cuda_impl.h"

namespace {

constexpr int kBK = 32;
constexpr int kWarps = 8;
constexpr int kMaxD = LF__CUDA_ATTN_MAXD;
constexpr int kPerLane = kMaxD / 32;

__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ const float *row_ptr(const lf__cuda_view_t &t, int64_t i1, int64_t i2,
                                                int64_t i3) {
    return reinterpret_cast<const float *>(static_cast<const char *>(t.data) + i1 * t.nb[1] +
                                           i2 * t.nb[2] + i3 * t.nb[3]);
}

__global__ void __launch_bounds__(kWarps * 32)
    k_attention(lf__cuda_view_t d, lf__cuda_view_t q, lf__cuda_view_t k, lf__cuda_view_t v,
                lf__cuda_view_t mask, float scale) {
    __shared__ float ks[kBK][kMaxD + 1]; // +1: lanes read different rows without bank conflicts
    __shared__ float vs[kBK][kMaxD];
    __shared__ float qs[kWarps][kMaxD];
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int64_t h = blockIdx.y, b = blockIdx.z;
    const int64_t D = q.ne[0], Dv = v.ne[0], Nq = q.ne[1], Nk = k.ne[1];
    const int64_t row = (int64_t)blockIdx.x * kWarps + warp;
    const bool valid = row < Nq;
    if (valid) {
        const float *qr = row_ptr(q, row, h, b);
        for (int64_t c = lane; c < D; c += 32) qs[warp][c] = qr[c] * scale;
    }
    float m = -INFINITY, l = 0.0f, o[kPerLane];
#pragma unroll
    for (int c = 0; c < kPerLane; c++) o[c] = 0.0f;
    for (int64_t k0 = 0; k0 < Nk; k0 += kBK) {
        __syncthreads();
        for (int idx = threadIdx.x; idx < kBK * kMaxD; idx += blockDim.x) {
            int j = idx / kMaxD, c = idx % kMaxD;
            int64_t key = k0 + j;
            if (key < Nk) {
                if (c < D) ks[j][c] = row_ptr(k, key, h, b)[c];
                if (c < Dv) vs[j][c] = row_ptr(v, key, h, b)[c];
            } else {
                if (c < Dv) vs[j][c] = 0.0f;
            }
        }
        __syncthreads();
        if (!valid) continue;
        const int64_t key = k0 + lane;
        float s = -INFINITY;
        if (key < Nk) {
            float acc = 0.0f;
            for (int64_t c = 0; c < D; c++) acc += qs[warp][c] * ks[lane][c];
            s = acc;
            if (mask.data) s += row_ptr(mask, row, mask.ne[2] > 1 ? h : 0, 0)[key];
        }
        const float mnew = fmaxf(m, warp_max(s));
        const float p = (s == -INFINITY) ? 0.0f : __expf(s - mnew);
        const float corr = (m == -INFINITY) ? 0.0f : __expf(m - mnew);
        l = l * corr + warp_sum(p);
        m = mnew;
#pragma unroll
        for (int c = 0; c < kPerLane; c++) o[c] *= corr;
        const int nj = (int)(Nk - k0 < kBK ? Nk - k0 : kBK);
        for (int j = 0; j < nj; j++) {
            const float pj = __shfl_sync(0xffffffffu, p, j);
#pragma unroll
            for (int c = 0; c < kPerLane; c++) {
                const int ch = lane + 32 * c;
                if (ch < Dv) o[c] += pj * vs[j][ch];
            }
        }
    }
    if (!valid) return;
    float *dr = reinterpret_cast<float *>(static_cast<char *>(d.data) + row * d.nb[1] + h * d.nb[2] +
                                          b * d.nb[3]);
    const float inv = l > 0.0f ? 1.0f / l : 0.0f;
#pragma unroll
    for (int c = 0; c < kPerLane; c++) {
        const int ch = lane + 32 * c;
        if (ch < Dv) dr[ch] = o[c] * inv;
    }
}

} // namespace

extern "C" int lf__cuda_attention(lf__cuda_view_t dst, lf__cuda_view_t q, lf__cuda_view_t k,
                                  lf__cuda_view_t v, lf__cuda_view_t mask, float scale,
                                  void *stream) {
    if (q.ne[0] > kMaxD || v.ne[0] > kMaxD) return (int)cudaErrorInvalidValue;
    dim3 grid((unsigned)((q.ne[1] + kWarps - 1) / kWarps), (unsigned)q.ne[2], (unsigned)q.ne[3]);
    k_attention<<<grid, kWarps * 32, 0, (cudaStream_t)stream>>>(dst, q, k, v, mask, scale);
    return (int)cudaGetLastError();
}
