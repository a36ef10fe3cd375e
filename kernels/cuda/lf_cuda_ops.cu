// lf_cuda_ops: the CUDA kernels for every op except attention and the
// matrix products (cuBLAS, host side). Storage types f32/f16/bf16 are read
// and written through ld/st; compute is f32. Kernels take strided views so
// permute, split, concat and broadcasting need no extra copies.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "lf_cuda_impl.h"

namespace {

constexpr int kF32 = 0, kF16 = 1; // 2 is bf16 (the default branches)

__device__ __forceinline__ float ld(const void *base, int type, int64_t off) {
    const char *p = static_cast<const char *>(base) + off;
    switch (type) {
    case kF32: return *reinterpret_cast<const float *>(p);
    case kF16: return __half2float(*reinterpret_cast<const __half *>(p));
    default: return __bfloat162float(*reinterpret_cast<const __nv_bfloat16 *>(p));
    }
}

__device__ __forceinline__ void st(void *base, int type, int64_t off, float v) {
    char *p = static_cast<char *>(base) + off;
    switch (type) {
    case kF32: *reinterpret_cast<float *>(p) = v; break;
    case kF16: *reinterpret_cast<__half *>(p) = __float2half_rn(v); break;
    default: *reinterpret_cast<__nv_bfloat16 *>(p) = __float2bfloat16_rn(v); break;
    }
}

__device__ __forceinline__ int64_t off4(const lf__cuda_view_t &t, int64_t i0, int64_t i1, int64_t i2,
                                        int64_t i3) {
    return i0 * t.nb[0] + i1 * t.nb[1] + i2 * t.nb[2] + i3 * t.nb[3];
}

// Offset in b of the element broadcast to (i0..i3).
__device__ __forceinline__ int64_t offb(const lf__cuda_view_t &t, int64_t i0, int64_t i1, int64_t i2,
                                        int64_t i3) {
    return off4(t, t.ne[0] == 1 ? 0 : i0, t.ne[1] == 1 ? 0 : i1, t.ne[2] == 1 ? 0 : i2,
                t.ne[3] == 1 ? 0 : i3);
}

__device__ __forceinline__ float gelu_erf(float x) {
    return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
}

__device__ __forceinline__ float sigmoid(float x) {
    return 1.0f / (1.0f + __expf(-x));
}

// Point-wise ops over contiguous tensors of one shape: no index arithmetic
// (64-bit divisions are costly on the GPU), offsets are i * element size.
__device__ __forceinline__ float pointwise(int op, float x, float y, float p0, float p1) {
    switch (op) {
    case LF__EW_GELU: return gelu_erf(x);
    case LF__EW_GELU_TANH: return 0.5f * x * (1.0f + tanhf(0.79788456080286536f * (x + 0.044715f * x * x * x)));
    case LF__EW_SILU: return x * sigmoid(x);
    case LF__EW_QUICK_GELU: return x * sigmoid(1.702f * x);
    case LF__EW_SCALE: return x * p0 + p1;
    case LF__EW_CLAMP: return fminf(fmaxf(x, p0), p1);
    case LF__EW_ADD: return x + y;
    case LF__EW_MUL: return x * y;
    default: return x; // COPY
    }
}

__global__ void k_ew_contig(int op, lf__cuda_view_t d, lf__cuda_view_t a, lf__cuda_view_t b, float p0,
                            float p1, int64_t n) {
    const int64_t esd = d.type == kF32 ? 4 : 2, esa = a.type == kF32 ? 4 : 2, esb = b.type == kF32 ? 4 : 2;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        float x = ld(a.data, a.type, i * esa);
        float y = b.data ? ld(b.data, b.type, i * esb) : 0.0f;
        st(d.data, d.type, i * esd, pointwise(op, x, y, p0, p1));
    }
}

__global__ void k_ew(int op, lf__cuda_view_t d, lf__cuda_view_t a, lf__cuda_view_t b, float p0,
                     float p1, int flag, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        int64_t i0 = i % d.ne[0], r = i / d.ne[0];
        int64_t i1 = r % d.ne[1];
        r /= d.ne[1];
        int64_t i2 = r % d.ne[2], i3 = r / d.ne[2];
        float y = 0.0f;
        switch (op) {
        case LF__EW_COPY: y = ld(a.data, a.type, off4(a, i0, i1, i2, i3)); break;
        case LF__EW_RESHAPE: {
            int64_t k = i, j0 = k % a.ne[0];
            k /= a.ne[0];
            int64_t j1 = k % a.ne[1];
            k /= a.ne[1];
            y = ld(a.data, a.type, off4(a, j0, j1, k % a.ne[2], k / a.ne[2]));
            break;
        }
        case LF__EW_GELU: y = gelu_erf(ld(a.data, a.type, off4(a, i0, i1, i2, i3))); break;
        case LF__EW_GELU_TANH: {
            float x = ld(a.data, a.type, off4(a, i0, i1, i2, i3));
            y = 0.5f * x * (1.0f + tanhf(0.79788456080286536f * (x + 0.044715f * x * x * x)));
            break;
        }
        case LF__EW_SILU: {
            float x = ld(a.data, a.type, off4(a, i0, i1, i2, i3));
            y = x * sigmoid(x);
            break;
        }
        case LF__EW_QUICK_GELU: {
            float x = ld(a.data, a.type, off4(a, i0, i1, i2, i3));
            y = x * sigmoid(1.702f * x);
            break;
        }
        case LF__EW_SCALE: y = ld(a.data, a.type, off4(a, i0, i1, i2, i3)) * p0 + p1; break;
        case LF__EW_CLAMP: y = fminf(fmaxf(ld(a.data, a.type, off4(a, i0, i1, i2, i3)), p0), p1); break;
        case LF__EW_ADD:
            y = ld(a.data, a.type, off4(a, i0, i1, i2, i3)) + ld(b.data, b.type, offb(b, i0, i1, i2, i3));
            break;
        case LF__EW_MUL:
            y = ld(a.data, a.type, off4(a, i0, i1, i2, i3)) * ld(b.data, b.type, offb(b, i0, i1, i2, i3));
            break;
        case LF__EW_GEGLU:
            y = ld(a.data, a.type, off4(a, i0, i1, i2, i3)) *
                gelu_erf(ld(a.data, a.type, off4(a, i0 + d.ne[0], i1, i2, i3)));
            break;
        case LF__EW_UPSAMPLE2X: y = ld(a.data, a.type, off4(a, i0 / 2, i1 / 2, i2, i3)); break;
        case LF__EW_AVG_POOL: {
            int k = (int)p0, s = (int)p1;
            float acc = 0.0f;
            for (int ky = 0; ky < k; ky++)
                for (int kx = 0; kx < k; kx++) acc += ld(a.data, a.type, off4(a, i0 * s + kx, i1 * s + ky, i2, i3));
            y = acc / (float)(k * k);
            break;
        }
        case LF__EW_ROPE: {
            int64_t e0 = i0 & ~(int64_t)1;
            float x0 = ld(a.data, a.type, off4(a, e0, i1, i2, i3));
            float x1 = ld(a.data, a.type, off4(a, e0 + 1, i1, i2, i3));
            float c = ld(b.data, b.type, off4(b, e0, i1, 0, 0));
            float s = ld(b.data, b.type, off4(b, e0 + 1, i1, 0, 0));
            y = (i0 & 1) ? x0 * s + x1 * c : x0 * c - x1 * s;
            break;
        }
        case LF__EW_BIAS_ROWS: y = ld(a.data, a.type, off4(a, i0, 0, 0, 0)); break;
        default: break;
        }
        st(d.data, d.type, off4(d, i0, i1, i2, i3), y);
    }
}

// Timestep embedding: its own kernel because sinf/cosf of large arguments
// take a slow path with a local-memory stack frame, which the hot k_ew must
// not carry.
__global__ void k_tstep(lf__cuda_view_t d, lf__cuda_view_t a, float max_period, float shift,
                        int flip, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        int64_t i0 = i % d.ne[0], i1 = i / d.ne[0];
        int64_t half = d.ne[0] / 2;
        float y = 0.0f;
        if (i0 < 2 * half) {
            float t = static_cast<const float *>(a.data)[i1];
            int64_t j = i0 < half ? i0 : i0 - half;
            float arg = t * expf(-logf(max_period) * (float)j / ((float)half - shift));
            bool first = i0 < half;
            bool use_cos = flip ? first : !first;
            y = use_cos ? cosf(arg) : sinf(arg);
        }
        st(d.data, d.type, off4(d, i0, i1, 0, 0), y);
    }
}

unsigned grid_for(int64_t n, int threads) {
    int64_t blocks = (n + threads - 1) / threads;
    return (unsigned)(blocks > 65535 * 8 ? 65535 * 8 : blocks);
}

__device__ float block_sum(float v, float *shared) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    __syncthreads();
    if (lane == 0) shared[warp] = v;
    __syncthreads();
    float t = 0.0f;
    for (int w = 0; w < (int)(blockDim.x / 32); w++) t += shared[w];
    return t;
}

__device__ float block_max(float v, float *shared) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    __syncthreads();
    if (lane == 0) shared[warp] = v;
    __syncthreads();
    float t = -INFINITY;
    for (int w = 0; w < (int)(blockDim.x / 32); w++) t = fmaxf(t, shared[w]);
    return t;
}

// One block per row: 0 softmax, 1 layer norm, 2 rms norm.
__global__ void k_rows(int op, lf__cuda_view_t d, lf__cuda_view_t x, lf__cuda_view_t g,
                       lf__cuda_view_t b, float p0) {
    __shared__ float red[32];
    int64_t r = blockIdx.x, i1 = r % x.ne[1], i2 = (r / x.ne[1]) % x.ne[2],
            i3 = r / (x.ne[1] * x.ne[2]);
    int64_t n = x.ne[0];
    if (op == 0) {
        float m = -INFINITY;
        for (int64_t i = threadIdx.x; i < n; i += blockDim.x)
            m = fmaxf(m, ld(x.data, x.type, off4(x, i, i1, i2, i3)) * p0);
        m = block_max(m, red);
        float s = 0.0f;
        for (int64_t i = threadIdx.x; i < n; i += blockDim.x)
            s += __expf(ld(x.data, x.type, off4(x, i, i1, i2, i3)) * p0 - m);
        s = block_sum(s, red);
        float inv = 1.0f / s;
        for (int64_t i = threadIdx.x; i < n; i += blockDim.x)
            st(d.data, d.type, off4(d, i, i1, i2, i3),
               __expf(ld(x.data, x.type, off4(x, i, i1, i2, i3)) * p0 - m) * inv);
        return;
    }
    float mean = 0.0f;
    if (op == 1) {
        float s = 0.0f;
        for (int64_t i = threadIdx.x; i < n; i += blockDim.x) s += ld(x.data, x.type, off4(x, i, i1, i2, i3));
        mean = block_sum(s, red) / (float)n;
    }
    float v = 0.0f;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
        float e = ld(x.data, x.type, off4(x, i, i1, i2, i3)) - mean;
        v += e * e;
    }
    float inv = rsqrtf(block_sum(v, red) / (float)n + p0);
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
        float y = (ld(x.data, x.type, off4(x, i, i1, i2, i3)) - mean) * inv;
        if (g.data) y *= ld(g.data, g.type, i * g.nb[0]);
        if (b.data) y += ld(b.data, b.type, i * b.nb[0]);
        st(d.data, d.type, off4(d, i, i1, i2, i3), y);
    }
}

// One block per (group, batch).
__global__ void k_group_norm(lf__cuda_view_t d, lf__cuda_view_t x, lf__cuda_view_t g,
                             lf__cuda_view_t b, int groups, float eps, int silu) {
    __shared__ float red[32];
    int64_t grp = blockIdx.x % groups, i3 = blockIdx.x / groups;
    int64_t cg = x.ne[2] / groups, plane = x.ne[0] * x.ne[1], n = cg * plane;
    float s = 0.0f, s2 = 0.0f;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
        int64_t c = grp * cg + j / plane, p = j % plane;
        float v = ld(x.data, x.type, off4(x, p % x.ne[0], p / x.ne[0], c, i3));
        s += v, s2 += v * v;
    }
    float mean = block_sum(s, red) / (float)n;
    float var = block_sum(s2, red) / (float)n - mean * mean;
    float inv = rsqrtf(fmaxf(var, 0.0f) + eps);
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
        int64_t c = grp * cg + j / plane, p = j % plane;
        int64_t i0 = p % x.ne[0], i1 = p / x.ne[0];
        float y = (ld(x.data, x.type, off4(x, i0, i1, c, i3)) - mean) * inv;
        if (g.data) y *= ld(g.data, g.type, c * g.nb[0]);
        if (b.data) y += ld(b.data, b.type, c * b.nb[0]);
        if (silu) y = y * sigmoid(y);
        st(d.data, d.type, off4(d, i0, i1, c, i3), y);
    }
}

__global__ void k_im2col(void *col, int col_type, const float *x, int64_t W, int64_t H,
                         int64_t Ci, int64_t kw, int64_t kh, int64_t Wo, int64_t Ho, int stride,
                         int pad, int64_t p0, int64_t pn) {
    int64_t n = Ci * kh * kw * pn;
    int64_t es = col_type == kF32 ? 4 : 2;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        int64_t p = p0 + i % pn, row = i / pn;
        int64_t kx = row % kw, ky = (row / kw) % kh, ci = row / (kw * kh);
        int64_t ox = p % Wo, oy = p / Wo;
        int64_t ix = ox * stride - pad + kx, iy = oy * stride - pad + ky;
        float v = (ix >= 0 && ix < W && iy >= 0 && iy < H) ? x[(ci * H + iy) * W + ix] : 0.0f;
        st(col, col_type, i * es, v);
    }
}

__global__ void k_convert(void *dst, int dst_type, lf__cuda_view_t s, int64_t n) {
    int64_t es = dst_type == kF32 ? 4 : 2;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        int64_t i0 = i % s.ne[0], r = i / s.ne[0];
        int64_t i1 = r % s.ne[1];
        r /= s.ne[1];
        st(dst, dst_type, i * es, ld(s.data, s.type, off4(s, i0, i1, r % s.ne[2], r / s.ne[2])));
    }
}

bool contiguous(const lf__cuda_view_t &t) {
    int64_t expect = t.type == kF32 ? 4 : 2;
    for (int i = 0; i < 4; i++) {
        if (t.ne[i] != 1 && t.nb[i] != expect) return false;
        expect *= t.ne[i];
    }
    return true;
}

bool same_shape(const lf__cuda_view_t &x, const lf__cuda_view_t &y) {
    return x.ne[0] == y.ne[0] && x.ne[1] == y.ne[1] && x.ne[2] == y.ne[2] && x.ne[3] == y.ne[3];
}

int rows_threads(int64_t n) {
    return n >= 1024 ? 512 : n >= 256 ? 256 : 128;
}

} // namespace

extern "C" int lf__cuda_ew(int op, lf__cuda_view_t dst, lf__cuda_view_t a, lf__cuda_view_t b,
                           float p0, float p1, int i0, void *stream) {
    int64_t n = dst.ne[0] * dst.ne[1] * dst.ne[2] * dst.ne[3];
    if (n == 0) return 0;
    if (op == LF__EW_TSTEP) {
        k_tstep<<<grid_for(n, 256), 256, 0, (cudaStream_t)stream>>>(dst, a, p0, p1, i0, n);
        return (int)cudaGetLastError();
    }
    bool pointwise_op = op == LF__EW_COPY || op == LF__EW_GELU || op == LF__EW_GELU_TANH || op == LF__EW_SILU ||
                        op == LF__EW_QUICK_GELU || op == LF__EW_SCALE || op == LF__EW_CLAMP || op == LF__EW_ADD ||
                        op == LF__EW_MUL;
    bool binary = op == LF__EW_ADD || op == LF__EW_MUL;
    if (pointwise_op && contiguous(dst) && contiguous(a) && same_shape(dst, a) &&
        (!binary || (contiguous(b) && same_shape(dst, b)))) {
        lf__cuda_view_t bb = b;
        if (!binary) bb.data = nullptr;
        k_ew_contig<<<grid_for(n, 256), 256, 0, (cudaStream_t)stream>>>(op, dst, a, bb, p0, p1, n);
        return (int)cudaGetLastError();
    }
    k_ew<<<grid_for(n, 256), 256, 0, (cudaStream_t)stream>>>(op, dst, a, b, p0, p1, i0, n);
    return (int)cudaGetLastError();
}

extern "C" int lf__cuda_rows(int op, lf__cuda_view_t dst, lf__cuda_view_t x, lf__cuda_view_t g,
                             lf__cuda_view_t b, float p0, void *stream) {
    int64_t rows = x.ne[1] * x.ne[2] * x.ne[3];
    k_rows<<<(unsigned)rows, rows_threads(x.ne[0]), 0, (cudaStream_t)stream>>>(op, dst, x, g, b, p0);
    return (int)cudaGetLastError();
}

extern "C" int lf__cuda_group_norm(lf__cuda_view_t dst, lf__cuda_view_t x, lf__cuda_view_t g,
                                   lf__cuda_view_t b, int groups, float eps, int silu,
                                   void *stream) {
    unsigned blocks = (unsigned)(groups * x.ne[3]);
    k_group_norm<<<blocks, 512, 0, (cudaStream_t)stream>>>(dst, x, g, b, groups, eps, silu);
    return (int)cudaGetLastError();
}

extern "C" int lf__cuda_im2col(void *col, int col_type, const float *x, int64_t W, int64_t H,
                               int64_t Ci, int64_t kw, int64_t kh, int64_t Wo, int64_t Ho,
                               int stride, int pad, int64_t p0, int64_t pn, void *stream) {
    int64_t n = Ci * kh * kw * pn;
    k_im2col<<<grid_for(n, 256), 256, 0, (cudaStream_t)stream>>>(col, col_type, x, W, H, Ci, kw, kh,
                                                                 Wo, Ho, stride, pad, p0, pn);
    return (int)cudaGetLastError();
}

extern "C" int lf__cuda_convert(void *dst, int dst_type, lf__cuda_view_t src, void *stream) {
    int64_t n = src.ne[0] * src.ne[1] * src.ne[2] * src.ne[3];
    k_convert<<<grid_for(n, 256), 256, 0, (cudaStream_t)stream>>>(dst, dst_type, src, n);
    return (int)cudaGetLastError();
}
