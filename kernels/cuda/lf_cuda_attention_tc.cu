// lf_cuda_attention_tc: fused attention on tensor cores, the backend's
// ATTENTION under bf16/f16 precision (lf_cuda_attention.cu's f32 kernel
// stays the reference under f32).
//
// Same flash scheme as the f32 kernel, with the two products on tensor cores
// through WMMA (nvcuda::wmma, 16x16x16 tiles, f32 accumulators): a block of
// kWarps warps serves 16 query rows per warp of one (head, batch) and walks
// the keys in tiles of kBK. Per tile each warp computes its scores
// S = Q K^T (16-bit operands, f32 sums), runs the online softmax on them in
// f32 (running max and sum per row; the probabilities are rounded to the
// 16-bit type once, and the sum adds the rounded values, so the weights that
// multiply V are the ones that normalise the row), rescales its output rows
// and adds P V. Q, K and V are converted from f32 to the 16-bit type when
// they are copied into shared memory; head sizes are padded to a multiple
// of 16 with zeros (40 -> 48), keys past the end get a score of -inf and
// zero values. The output accumulates in shared memory in f32 (a WMMA
// accumulator's element-to-row mapping is unspecified, so rows are rescaled
// there), and is divided by the row sum when written. Memory is O(N): no
// Nq x Nk matrix is ever stored.
//
// Shared memory is dynamic, sized from the head sizes (lf__cuda_attention_tc_smem):
// 41 KiB at D = 40, 49 KiB at D = 64, 57 KiB at D = 80, 81 KiB at D = 128, 97 KiB
// at D = 160 (within the 99 KiB a block may opt in to on sm_86/89; the host
// falls back to the f32 kernel where a device allows less).
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <mma.h>

#include <type_traits>

#include "lf_cuda_impl.h"

namespace {

using namespace nvcuda;

constexpr int kWarps = 4;          // warps per block, 16 query rows each
constexpr int kRows = 16 * kWarps; // query rows per block
constexpr int kBK = 32;            // keys per tile
constexpr int kSkewH = 8;          // 16-bit row padding, elements (WMMA wants ld % 8 == 0)
constexpr int kSkewF = 4;          // f32 row padding, elements (ld % 4 == 0)

// Offsets (bytes, 128-aligned: WMMA pointers must be 32-byte aligned) and
// leading dimensions (elements) of the tiles in dynamic shared memory.
struct Layout {
    int dp, dvp;                  // D and Dv padded to 16
    int ldq, ldv, lds, ldp, ldo;  // row strides of Q/K, V, S, P, O
    size_t q, k, v, s, p, o, bytes;
};

__host__ __device__ inline size_t al128(size_t x) {
    return (x + 127) & ~(size_t)127;
}

__host__ __device__ inline Layout layout(int D, int Dv) {
    Layout L;
    L.dp = (D + 15) & ~15;
    L.dvp = (Dv + 15) & ~15;
    L.ldq = L.dp + kSkewH;
    L.ldv = L.dvp + kSkewH;
    L.lds = kBK + kSkewF;
    L.ldp = kBK + kSkewH;
    L.ldo = L.dvp + kSkewF;
    size_t off = 0;
    L.q = off, off = al128(off + (size_t)kRows * L.ldq * 2);
    L.k = off, off = al128(off + (size_t)kBK * L.ldq * 2);
    L.v = off, off = al128(off + (size_t)kBK * L.ldv * 2);
    L.s = off, off = al128(off + (size_t)kRows * L.lds * 4);
    L.p = off, off = al128(off + (size_t)kRows * L.ldp * 2);
    L.o = off, off = al128(off + (size_t)kRows * L.ldo * 4);
    L.bytes = off;
    return L;
}

template <typename T> __device__ __forceinline__ T to16(float x);
template <> __device__ __forceinline__ __half to16<__half>(float x) {
    return __float2half_rn(x);
}
template <> __device__ __forceinline__ __nv_bfloat16 to16<__nv_bfloat16>(float x) {
    return __float2bfloat16_rn(x);
}
__device__ __forceinline__ float to32(__half x) {
    return __half2float(x);
}
__device__ __forceinline__ float to32(__nv_bfloat16 x) {
    return __bfloat162float(x);
}

__device__ __forceinline__ const float *row_ptr(const lf__cuda_view_t &t, int64_t i1, int64_t i2,
                                                int64_t i3) {
    return reinterpret_cast<const float *>(static_cast<const char *>(t.data) + i1 * t.nb[1] +
                                           i2 * t.nb[2] + i3 * t.nb[3]);
}

// Rows [r0, r0 + rows) of t's (h, b) slice, channels [0, D), into a 16-bit
// tile of dp columns (ld apart); rows past n and channels past D are zero.
template <typename T>
__device__ void load_tile(T *tile, int ld, const lf__cuda_view_t &t, int64_t r0, int64_t n, int rows,
                          int D, int dp, int64_t h, int64_t b) {
    for (int idx = threadIdx.x; idx < rows * dp; idx += blockDim.x) {
        const int r = idx / dp, c = idx % dp;
        const int64_t row = r0 + r;
        float x = 0.0f;
        if (row < n && c < D) x = row_ptr(t, row, h, b)[c];
        tile[r * ld + c] = to16<T>(x);
    }
}

template <typename T>
__device__ void attend(unsigned char *smem, const lf__cuda_view_t &d, const lf__cuda_view_t &q,
                       const lf__cuda_view_t &k, const lf__cuda_view_t &v, const lf__cuda_view_t &mask,
                       float scale) {
    typedef wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> frag_a;
    typedef wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::col_major> frag_bt; // K^T
    typedef wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::row_major> frag_b;  // V
    typedef wmma::fragment<wmma::accumulator, 16, 16, 16, float> frag_c;
    const int D = (int)q.ne[0], Dv = (int)v.ne[0];
    const Layout L = layout(D, Dv);
    T *qs = reinterpret_cast<T *>(smem + L.q), *ks = reinterpret_cast<T *>(smem + L.k);
    T *vs = reinterpret_cast<T *>(smem + L.v), *ps = reinterpret_cast<T *>(smem + L.p);
    float *ss = reinterpret_cast<float *>(smem + L.s), *os = reinterpret_cast<float *>(smem + L.o);
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int64_t h = blockIdx.y, b = blockIdx.z;
    const int64_t Nq = q.ne[1], Nk = k.ne[1], q0 = (int64_t)blockIdx.x * kRows;

    load_tile(qs, L.ldq, q, q0, Nq, kRows, D, L.dp, h, b);
    for (int idx = threadIdx.x; idx < kRows * L.ldo; idx += blockDim.x) os[idx] = 0.0f;

    // The warp's tiles; lane (r, half) runs the softmax of row r over half the tile's keys.
    const T *qw = qs + warp * 16 * L.ldq;
    float *sw = ss + warp * 16 * L.lds, *ow = os + warp * 16 * L.ldo;
    T *pw = ps + warp * 16 * L.ldp;
    const int r = lane >> 1, half = lane & 1;
    const int64_t row = q0 + warp * 16 + r;
    const float *mrow = mask.data && row < Nq ? row_ptr(mask, row, mask.ne[2] > 1 ? h : 0, 0) : nullptr;
    float m = -INFINITY, l = 0.0f;

    for (int64_t k0 = 0; k0 < Nk; k0 += kBK) {
        __syncthreads(); // the last tile's K and V are no longer read (first pass: Q and O are written)
        load_tile(ks, L.ldq, k, k0, Nk, kBK, D, L.dp, h, b);
        load_tile(vs, L.ldv, v, k0, Nk, kBK, Dv, L.dvp, h, b);
        __syncthreads();

        // S (16 x kBK) = Q_w K^T.
        for (int n = 0; n < kBK / 16; n++) {
            frag_c acc;
            wmma::fill_fragment(acc, 0.0f);
            for (int kk = 0; kk < L.dp; kk += 16) {
                frag_a fa;
                frag_bt fb;
                wmma::load_matrix_sync(fa, qw + kk, L.ldq);
                wmma::load_matrix_sync(fb, ks + n * 16 * L.ldq + kk, L.ldq);
                wmma::mma_sync(acc, fa, fb, acc);
            }
            wmma::store_matrix_sync(sw + n * 16, acc, L.lds, wmma::mem_row_major);
        }
        __syncwarp();

        // Online softmax in f32 (scale and mask applied to the f32 scores).
        const int nk = (int)(Nk - k0 < kBK ? Nk - k0 : kBK);
        float sv[kBK / 2];
        float mx = -INFINITY;
#pragma unroll
        for (int j = 0; j < kBK / 2; j++) {
            const int key = half * (kBK / 2) + j;
            float s = -INFINITY;
            if (key < nk && row < Nq) {
                s = sw[r * L.lds + key] * scale;
                if (mrow) s += mrow[k0 + key];
            }
            sv[j] = s;
            mx = fmaxf(mx, s);
        }
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        const float mnew = fmaxf(m, mx);
        float sum = 0.0f;
#pragma unroll
        for (int j = 0; j < kBK / 2; j++) {
            const T p = to16<T>(sv[j] == -INFINITY ? 0.0f : __expf(sv[j] - mnew));
            sum += to32(p);
            pw[r * L.ldp + half * (kBK / 2) + j] = p;
        }
        sum += __shfl_xor_sync(0xffffffffu, sum, 1);
        const float corr = m == -INFINITY ? 0.0f : __expf(m - mnew);
        l = l * corr + sum;
        m = mnew;
        for (int c = half; c < L.dvp; c += 2) ow[r * L.ldo + c] *= corr;
        __syncwarp();

        // O_w (16 x dvp) += P V.
        for (int j = 0; j < L.dvp; j += 16) {
            frag_c acc;
            wmma::load_matrix_sync(acc, ow + j, L.ldo, wmma::mem_row_major);
            for (int kk = 0; kk < kBK; kk += 16) {
                frag_a fa;
                frag_b fb;
                wmma::load_matrix_sync(fa, pw + kk, L.ldp);
                wmma::load_matrix_sync(fb, vs + kk * L.ldv + j, L.ldv);
                wmma::mma_sync(acc, fa, fb, acc);
            }
            wmma::store_matrix_sync(ow + j, acc, L.ldo, wmma::mem_row_major);
        }
        __syncwarp();
    }
    __syncthreads(); // Nk == 0: O was zeroed by other warps' threads

    // Rows out, one at a time by the whole warp (coalesced); row rr's sum is lane 2 rr's.
    const float inv = l > 0.0f ? 1.0f / l : 0.0f;
    for (int rr = 0; rr < 16; rr++) {
        const float invr = __shfl_sync(0xffffffffu, inv, 2 * rr);
        const int64_t orow = q0 + warp * 16 + rr;
        if (orow >= Nq) continue;
        float *dr = reinterpret_cast<float *>(static_cast<char *>(d.data) + orow * d.nb[1] + h * d.nb[2] +
                                              b * d.nb[3]);
        for (int c = lane; c < Dv; c += 32) dr[c] = ow[rr * L.ldo + c] * invr;
    }
}

template <typename T>
__global__ void __launch_bounds__(kWarps * 32, 1)
    k_attention_tc(lf__cuda_view_t d, lf__cuda_view_t q, lf__cuda_view_t k, lf__cuda_view_t v,
                   lf__cuda_view_t mask, float scale) {
    extern __shared__ __align__(128) unsigned char smem[];
    // f16 WMMA needs sm_70, bf16 sm_80; the host never launches a form the
    // device lacks (lf_cuda_backend.c's precision), so these bodies are empty.
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 700
    __trap();
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
    if constexpr (std::is_same<T, __nv_bfloat16>::value) __trap();
    else attend<T>(smem, d, q, k, v, mask, scale);
#else
    attend<T>(smem, d, q, k, v, mask, scale);
#endif
}

template <typename T>
int launch(lf__cuda_view_t dst, lf__cuda_view_t q, lf__cuda_view_t k, lf__cuda_view_t v,
           lf__cuda_view_t mask, float scale, cudaStream_t stream) {
    const Layout L = layout((int)q.ne[0], (int)v.ne[0]);
    // Above 48 KiB of dynamic shared memory a kernel must opt in (not a
    // stream operation: allowed while a CUDA Graph is being captured).
    cudaError_t e = cudaFuncSetAttribute(k_attention_tc<T>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         (int)L.bytes);
    if (e != cudaSuccess) return (int)e;
    dim3 grid((unsigned)((q.ne[1] + kRows - 1) / kRows), (unsigned)q.ne[2], (unsigned)q.ne[3]);
    k_attention_tc<T><<<grid, kWarps * 32, L.bytes, stream>>>(dst, q, k, v, mask, scale);
    return (int)cudaGetLastError();
}

} // namespace

extern "C" size_t lf__cuda_attention_tc_smem(int64_t D, int64_t Dv) {
    return layout((int)D, (int)Dv).bytes;
}

extern "C" int lf__cuda_attention_tc(lf__cuda_view_t dst, lf__cuda_view_t q, lf__cuda_view_t k,
                                     lf__cuda_view_t v, lf__cuda_view_t mask, float scale, int type,
                                     void *stream) {
    if (q.ne[0] > LF__CUDA_ATTN_MAXD || v.ne[0] > LF__CUDA_ATTN_MAXD) return (int)cudaErrorInvalidValue;
    if (type == 1) return launch<__half>(dst, q, k, v, mask, scale, (cudaStream_t)stream);
    if (type == 2) return launch<__nv_bfloat16>(dst, q, k, v, mask, scale, (cudaStream_t)stream);
    return (int)cudaErrorInvalidValue;
}
