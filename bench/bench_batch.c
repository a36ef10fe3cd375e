/* bench_batch: batched jobs on one worker (issue 18) — images per minute
 * for 8 compatible jobs (same model, size, steps, sampler, CFG; prompts and
 * seeds differ) run with a batch max of 1, 2 and 4, through the engine
 * facade a worker uses (lf_engine_generate with lf_engine_request_t.rows:
 * what the worker's lf_runner_run_batch calls), on the built-in model
 * (models/lf-tiny-shapes.safetensors) at its native 256x256, 20 steps,
 * euler / normal, CFG 5. Each setting's images are checked byte for byte
 * against the batch-1 run's (a job's bytes do not depend on its batch in
 * the CPU's batch-invariant mode, LF_CPU_PER_IMAGE=1, a batching worker's;
 * without it oneDNN's batched rows differ in the last bits).
 *
 *   build/release/bench/bench_batch [--steps N] [--threads N] [--size PX] [--jobs N] [--model PATH]
 *   --jobs 2 --model tests/reference/out/sd15_full.safetensors: the bytes check on
 *   the full-size SD1.5 networks (random weights; under flock /tmp/lf-bigmem.lock).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lf_bench_util.h"
#include "lf_engine.h"
#include "lf_error.h"

#define N_JOBS 8

int main(int argc, char **argv)
{
    int steps = 20, threads = 0, size = 256, n_jobs = N_JOBS;
    const char *model = LF_SOURCE_DIR "/models/lf-tiny-shapes.safetensors";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--steps")) steps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--size")) size = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--jobs")) n_jobs = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--model")) model = argv[i + 1];
    }
    char err[256] = "";
    lf_engine_opts_t o = {.assets_dir = LF_SOURCE_DIR "/assets", .n_threads = threads};
    lf_engine_t *e = NULL;
    if (lf_engine_new(&o, &e, err, sizeof err) || lf_engine_load(e, model, NULL)) {
        fprintf(stderr, "bench_batch: %s\n", e ? lf_engine_errstr(e) : err);
        return 1;
    }
    static const char *const colors[N_JOBS] = {"red", "green", "blue", "yellow", "cyan", "orange", "pink", "brown"};
    static const char *const shapes[3] = {"circle", "square", "triangle"};
    char prompts[N_JOBS][128];
    lf_engine_row_t rows[N_JOBS];
    for (int j = 0; j < N_JOBS; j++) {
        snprintf(prompts[j], sizeof prompts[j], "a %s %s on a %s background", colors[j], shapes[j % 3],
                 colors[(j + 3) % N_JOBS]);
        rows[j] = (lf_engine_row_t){.prompt = prompts[j], .seed = 3000u + (unsigned)j, .batch = 1};
    }
    lf_engine_request_t base = lf_engine_request_defaults();
    base.width = base.height = size;
    base.steps = steps;
    base.cfg = 5;
    lf_engine_result_t ref[N_JOBS] = {{0}};
    if (n_jobs < 1 || n_jobs > N_JOBS) n_jobs = N_JOBS;
    printf("%d jobs, %dx%d, %d steps, euler/normal, CFG 5, %s\n", n_jobs, size, size, steps, model);
    printf("%-9s %10s %12s %10s %s\n", "batch max", "seconds", "images/min", "speed-up", "bytes as batch 1");
    double t1 = 0;
    static const int maxes[3] = {1, 2, 4};
    for (int m = 0; m < 3 && maxes[m] <= n_jobs; m++) {
        int bm = maxes[m], same = 1;
        double t0 = lf_bench_now();
        for (int j = 0; j + bm <= n_jobs; j += bm) {
            lf_engine_request_t req = base;
            lf_engine_result_t res = {0};
            req.rows = rows + j, req.n_rows = (size_t)bm;
            if (bm == 1) req.rows = NULL, req.n_rows = 0, req.prompt = rows[j].prompt, req.seed = rows[j].seed;
            if (lf_engine_generate(e, &req, NULL, NULL, NULL, &res)) {
                fprintf(stderr, "bench_batch: %s\n", lf_engine_errstr(e));
                return 1;
            }
            for (int k = 0; k < bm; k++) {
                if (bm == 1) {
                    ref[j] = res;
                    continue;
                }
                const lf_engine_image_t *a = &ref[j + k].images[0], *b = &res.images[k];
                same &= a->png_len == b->png_len && !memcmp(a->png, b->png, a->png_len);
            }
            if (bm > 1) lf_engine_result_clear(&res);
        }
        double t = lf_bench_now() - t0;
        if (bm == 1) t1 = t;
        printf("%-9d %10.2f %12.2f %9.2fx %s\n", bm, t, n_jobs * 60.0 / t, t1 / t, bm == 1 ? "-" : same ? "yes" : "NO");
    }
    for (int j = 0; j < N_JOBS; j++) lf_engine_result_clear(&ref[j]);
    lf_engine_destroy(&e);
    return 0;
}
