/* bench_conv_layout: one 3x3 convolution (stride 1, padding 1, bias) in
 * oneDNN directly, its source and result layouts forced, beside the reorders
 * between our NCHW and each layout: which activation layout the blocked
 * convolutions should take, and whether a blocked primitive can write NCHW
 * itself (docs/PERFORMANCE.md, "Session 13: activation layouts and
 * reorders"). Built only where oneDNN is installed.
 *
 * Usage: bench_conv_layout C H O [bf16|f32] [reps]
 * (C -> O channels, H x H pixels, batch 2; process CPU ms per call after two
 * warm-up calls, so run it with OMP_NUM_THREADS=1 for per-core figures).
 * Layout pairs whose only kernel is oneDNN's reference are named, not timed. */
#include <oneapi/dnnl/dnnl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double s_cpu(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Milliseconds of CPU per execution of pd's primitive on fresh buffers
 * (bias: a convolution's, NULL for a reorder), or -1. */
static double s_time(dnnl_engine_t eng, dnnl_stream_t str, const_dnnl_primitive_desc_t pd,
                     const dnnl_memory_desc_t *bias, int reps) {
    dnnl_primitive_t prim = NULL;
    if (dnnl_primitive_create(&prim, pd)) return -1;
    const dnnl_query_t q[4] = {dnnl_query_src_md, dnnl_query_dst_md, dnnl_query_weights_md, dnnl_query_scratchpad_md};
    const int arg_conv[4] = {DNNL_ARG_SRC, DNNL_ARG_DST, DNNL_ARG_WEIGHTS, DNNL_ARG_SCRATCHPAD};
    const int arg_reorder[4] = {DNNL_ARG_FROM, DNNL_ARG_TO, 0, DNNL_ARG_SCRATCHPAD};
    dnnl_memory_t mem[5] = {NULL};
    dnnl_exec_arg_t args[5];
    int n = 0;
    for (int i = 0; i < 4; i++) {
        const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(pd, q[i], 0);
        if (!md || !dnnl_memory_desc_get_size(md) || (!bias && i == 2)) continue;
        if (dnnl_memory_create(&mem[n], md, eng, DNNL_MEMORY_ALLOCATE)) return -1;
        args[n] = (dnnl_exec_arg_t){bias ? arg_conv[i] : arg_reorder[i], mem[n]};
        n++;
    }
    if (bias) {
        if (dnnl_memory_create(&mem[n], bias, eng, DNNL_MEMORY_ALLOCATE)) return -1;
        args[n] = (dnnl_exec_arg_t){DNNL_ARG_BIAS, mem[n]};
        n++;
    }
    for (int i = 0; i < 2; i++) dnnl_primitive_execute(prim, str, n, args);
    dnnl_stream_wait(str);
    const double t0 = s_cpu();
    for (int i = 0; i < reps; i++) dnnl_primitive_execute(prim, str, n, args);
    dnnl_stream_wait(str);
    const double ms = (s_cpu() - t0) / reps * 1e3;
    for (int i = 0; i < n; i++) dnnl_memory_destroy(mem[i]);
    dnnl_primitive_destroy(prim);
    return ms;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: bench_conv_layout C H O [bf16|f32] [reps]\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    const int64_t N = 2, C = atoll(argv[1]), H = atoll(argv[2]), O = atoll(argv[3]);
    const bool bf16 = argc > 4 && !strcmp(argv[4], "bf16");
    const int reps = argc > 5 && atoi(argv[5]) > 0 ? atoi(argv[5]) : 5;
    dnnl_engine_t eng;
    dnnl_stream_t str;
    if (dnnl_engine_create(&eng, dnnl_cpu, 0) || dnnl_stream_create(&str, eng, dnnl_stream_default_flags)) return 1;
    dnnl_dims_t sd = {N, C, H, H}, wd = {O, C, 3, 3}, dd = {N, O, H, H}, st = {1, 1}, pad = {1, 1}, bd = {O};
    const dnnl_data_type_t dt = bf16 ? dnnl_bf16 : dnnl_f32;
    static const char *const names[] = {"any", "nchw", "nhwc", "nChw16c"};
    static const dnnl_format_tag_t tags[] = {dnnl_format_tag_any, dnnl_nchw, dnnl_nhwc, dnnl_nChw16c};
    static const int pairs[][2] = {{0, 0}, {3, 3}, {3, 1}, {3, 2}, {2, 2}, {2, 1}, {1, 1}};
    printf("conv %lld -> %lld, %lldx%lld, batch 2, %s, %d reps (process CPU ms per call)\n", (long long)C,
           (long long)O, (long long)H, (long long)H, bf16 ? "bf16" : "f32", reps);
    for (size_t k = 0; k < sizeof pairs / sizeof pairs[0]; k++) {
        const int s = pairs[k][0], d = pairs[k][1];
        dnnl_memory_desc_t smd, wmd, dmd, bmd;
        dnnl_convolution_desc_t cd;
        dnnl_primitive_desc_t pd;
        const char *impl = "?";
        if (dnnl_memory_desc_init_by_tag(&smd, 4, sd, dt, tags[s]) ||
            dnnl_memory_desc_init_by_tag(&wmd, 4, wd, dt, dnnl_format_tag_any) ||
            dnnl_memory_desc_init_by_tag(&dmd, 4, dd, dnnl_f32, tags[d]) ||
            dnnl_memory_desc_init_by_tag(&bmd, 1, bd, dnnl_f32, dnnl_x) ||
            dnnl_convolution_forward_desc_init(&cd, dnnl_forward_inference, dnnl_convolution_direct, &smd, &wmd,
                                               &bmd, &dmd, st, pad, pad) ||
            dnnl_primitive_desc_create(&pd, &cd, NULL, eng, NULL)) {
            printf("  conv src %-7s dst %-7s: no primitive\n", names[s], names[d]);
            continue;
        }
        dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
        if (!strncmp(impl, "ref", 3)) printf("  conv src %-7s dst %-7s: %-28s (reference: not timed)\n", names[s], names[d], impl);
        else
            printf("  conv src %-7s dst %-7s: %-28s %9.3f ms\n", names[s], names[d], impl,
                   s_time(eng, str, pd, &bmd, reps));
        dnnl_primitive_desc_destroy(pd);
    }
    /* The reorders around a blocked convolution: source in (compute type),
     * result out (f32). */
    static const struct {
        int dst; /* 0: source dims and type, 1: result dims, f32 */
        int from, to;
    } r[] = {{0, 1, 2}, {0, 1, 3}, {1, 2, 1}, {1, 3, 1}};
    for (size_t i = 0; i < sizeof r / sizeof r[0]; i++) {
        dnnl_memory_desc_t f, t;
        dnnl_primitive_desc_t pd;
        const char *impl = "?";
        if (dnnl_memory_desc_init_by_tag(&f, 4, r[i].dst ? dd : sd, r[i].dst ? dnnl_f32 : dt, tags[r[i].from]) ||
            dnnl_memory_desc_init_by_tag(&t, 4, r[i].dst ? dd : sd, r[i].dst ? dnnl_f32 : dt, tags[r[i].to]) ||
            dnnl_reorder_primitive_desc_create(&pd, &f, eng, &t, eng, NULL)) {
            printf("  reorder %s %s -> %s: none\n", r[i].dst ? "dst" : "src", names[r[i].from], names[r[i].to]);
            continue;
        }
        dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
        printf("  reorder %s %-7s -> %-7s: %-28s %9.3f ms\n", r[i].dst ? "dst" : "src", names[r[i].from],
               names[r[i].to], impl, s_time(eng, str, pd, NULL, reps * 4));
        dnnl_primitive_desc_destroy(pd);
    }
    dnnl_stream_destroy(str);
    dnnl_engine_destroy(eng);
    return 0;
}
