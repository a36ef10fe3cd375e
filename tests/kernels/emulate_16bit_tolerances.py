#!/usr/bin/env python3
# emulate_16bit_tolerances.py: where the tolerances of test_ops_cuda.c's
# 16-bit cases come from. Emulates, in numpy, the CUDA backend's bf16/f16
# paths on the tests' shapes and uniform inputs — products with both operands
# rounded once to the 16-bit type (f32 accumulation), and the tensor-core
# fused attention tile by tile (Q, K, V and the probabilities rounded, scores,
# online softmax and sums in f32) — and prints the worst error
# |x - ref| / (1 + |ref|) against a float64 reference, as lf_test_maxerr
# measures it. Needs numpy (e.g. /work/venv-torch2/bin/python).
import numpy as np
def bf16(x):
    x=np.asarray(x,dtype=np.float32); b=x.view(np.uint32).astype(np.uint64)
    r=((b + 0x7FFF + ((b>>16)&1)) >> 16) << 16
    return r.astype(np.uint32).view(np.float32)
def f16(x): return np.asarray(x,np.float32).astype(np.float16).astype(np.float32)
rng=np.random.default_rng(1)
def run(rnd, D, Nq, Nk, mask):
    q=rng.uniform(-1,1,(Nq,D)).astype(np.float32); k=rng.uniform(-1,1,(Nk,D)).astype(np.float32); v=rng.uniform(-1,1,(Nk,D)).astype(np.float32)
    m=rng.uniform(-2,2,(Nq,Nk)).astype(np.float32) if mask==1 else (np.where(np.arange(Nk)[None,:]>np.arange(Nq)[:,None],-np.inf,0).astype(np.float32) if mask==2 else np.zeros((Nq,Nk),np.float32))
    sc=1/np.sqrt(D)
    s=(q.astype(np.float64)@k.T.astype(np.float64))*sc+m; p=np.exp(s-s.max(1,keepdims=True)); ref=(p@v)/p.sum(1,keepdims=True)
    # emulate tiled kernel
    Q=rnd(q);K=rnd(k);V=rnd(v)
    M=np.full(Nq,-np.inf,np.float32); L=np.zeros(Nq,np.float32); O=np.zeros((Nq,D),np.float32)
    for k0 in range(0,Nk,32):
        S=(Q@K[k0:k0+32].T).astype(np.float32)*sc+m[:,k0:k0+32]
        mn=np.maximum(M,S.max(1))
        P=rnd(np.where(np.isinf(S),0,np.exp(S-mn[:,None])))
        corr=np.where(np.isinf(M),0,np.exp(M-mn))
        L=L*corr+P.sum(1); M=mn
        O=O*corr[:,None]+P@V[k0:k0+32]
    out=O/L[:,None]
    return (np.abs(out-ref)/(1+np.abs(ref))).max()
for name,r in (("bf16",bf16),("f16",f16)):
    worst=0
    for D in (40,64,80,128,160):
        for Nk in (45,300):
            for mask in (0,1,2):
                worst=max(worst,run(r,D,77,Nk,mask))
    print(name,"attention worst",worst)
def mm(rnd,K):
    a=rng.uniform(-1,1,(57,K)).astype(np.float32); w=rng.uniform(-1,1,(45,K)).astype(np.float32)
    ref=a.astype(np.float64)@w.T.astype(np.float64); got=rnd(a)@rnd(w).T
    return (np.abs(got-ref)/(1+np.abs(ref))).max()
for name,r in (("bf16",bf16),("f16",f16)):
    print(name,"matmul K=301 worst",max(mm(r,301) for _ in range(10)), "K=512", max(mm(r,512) for _ in range(10)))
