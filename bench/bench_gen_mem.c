/* bench_gen_mem: the memory of one whole 512x512 SD1.5 generation through
 * lf_engine (what `lightfarm-engine generate` and a worker run: load, text,
 * N sampler steps with CFG, VAE decode, PNG), peak RSS by phase, beside the
 * same image in diffusers/PyTorch (bench_gen_mem_torch.py, run afterwards
 * as a child process on the same checkpoint) and the time per step of each.
 *
 * Phases (VmHWM of /proc/self/status, reset through /proc/self/clear_refs
 * at each phase's start; the whole run's peak is the largest of them:
 * ru_maxrss follows the resets):
 *   load       lf_engine_load (the peak while loading; RSS after it)
 *   text+1     the text encoder and the first sampler step (the progress
 *              callback is the first point the engine hands back)
 *   steps      steps 2..N
 *   decode     the VAE decode and the PNG (what follows the last step)
 * with the RSS after each split into RssAnon (activations, scratch, heap)
 * and RssFile (mapped weight pages, libraries' code); LF_LOG_LEVEL=debug
 * also logs each UNet graph's planned activations and the backend's
 * workspace. LF_WEIGHTS_STREAM=0 keeps the UNet's weight pages through a
 * step (the engine's default gives them back per layer).
 * --runs 2 runs the generation again on the loaded model: a worker's second
 * job (graphs planned, caches warm).
 *
 * Another model: --ckpt takes any path lf_engine_load takes (a diffusers
 * folder, a manifest); --text PATH (up to 4) and --vae PATH make it a model
 * from parts (a Flux transformer with CLIP-L, T5 and its VAE: the "text"
 * phase is then T5 + CLIP-L). --size N (default 512) and --cfg X (default 7;
 * 1: no negative pass, Flux's default) and --prompt TEXT (a tiny fixture's
 * vocabulary takes "a cat in the house") set the request. --torch applies to
 * the default SD1.5 run only.
 *
 * Checkpoint: --ckpt, else $LF_SD15_FULL, else tests/reference/out/
 * sd15_full.safetensors (tests/reference/make_model_fixtures.py --full-f16
 * writes one); missing: SKIP, exit 0. Python: --torch PYTHON (or
 * $LF_BENCH_TORCH; "none" skips it).
 *
 * stable-diffusion.cpp: --sdcpp BINARY (or $LF_BENCH_SDCPP) runs its sd
 * CLI afterwards on the same file and settings (prompt, negative, steps,
 * CFG 7, Euler, seed, threads, 512x512) as a child, and prints its peak RSS
 * (the child's ru_maxrss), wall and CPU time and its own timing lines.
 *
 * --cache none|fbcache:THRESHOLD[:START:END]|deepcache:INTERVAL:DEPTH[:START:END]
 * runs lightfarm's image with step caching (RESULT counts the full and cached
 * denoiser evaluations).
 *
 * --whole (issue 18's "the whole"): one 512x512 image of --steps Euler steps,
 * CFG 7, seed 5, by four sides one after the other on the same file, each in
 * its own process: lightfarm f32, lightfarm at its best settings
 * (--best-precision, default bf16, and --best-cache, default deepcache:2:0:
 * the step cache that keeps >= 30 dB in bench_cache's quality table),
 * stable-diffusion.cpp (--sdcpp, with --eager-load) and diffusers/PyTorch
 * (--torch); then one table: seconds per image after load (sd.cpp: its own
 * "generate_image completed in"), load, each process's wall and CPU time,
 * peak RSS, and each side's time over lightfarm f32's and over lightfarm
 * best's ("faster" factors). Run it under both locks (PyTorch > 6 GB).
 *
 * Usage: bench_gen_mem [--ckpt PATH] [--steps N] [--threads N]
 *                      [--precision f32|bf16] [--runs N] [--torch PYTHON|none]
 *                      [--sdcpp BINARY|none] [--text PATH]... [--vae PATH] [--size N] [--cfg X] [--prompt TEXT]
 *                      [--cache SPEC] [--whole [--best-precision P] [--best-cache SPEC]] */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lf_bench_util.h"
#include "lf_engine.h"
#include "lf_log.h"

#ifndef LF_SOURCE_DIR
#define LF_SOURCE_DIR "."
#endif

typedef struct {
    int steps;
    double t_prev, step_s[256];
    long hwm_text_kb, hwm_steps_kb, rss_step_kb[256];
    long anon_kb[2], file_kb[2]; /* RssAnon / RssFile after step 1 and after the last */
} s_trace_t;

static void s_progress(void *ud, int step, int steps, const uint8_t *preview, size_t preview_len) {
    (void)preview, (void)preview_len;
    s_trace_t *tr = ud;
    double now = lf_bench_now();
    if (step >= 1 && step <= 256) {
        tr->step_s[step - 1] = now - tr->t_prev;
        tr->rss_step_kb[step - 1] = lf_bench_status_kb("VmRSS");
    }
    tr->t_prev = now;
    if (step == 1 || step == steps) {
        tr->anon_kb[step != 1] = lf_bench_status_kb("RssAnon");
        tr->file_kb[step != 1] = lf_bench_status_kb("RssFile");
    }
    if (step == 1) {
        tr->hwm_text_kb = lf_bench_status_kb("VmHWM");
        lf_bench_reset_hwm();
    }
    if (step == steps) {
        tr->hwm_steps_kb = lf_bench_status_kb("VmHWM");
        lf_bench_reset_hwm();
    }
}

static int s_cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double s_loadavg(void) {
    double l = -1;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f && fscanf(f, "%lf", &l) != 1) l = -1;
    if (f) fclose(f);
    return l;
}

static double s_field(const char *line, const char *key) {
    const char *p = strstr(line, key);
    return p ? atof(p + strlen(key)) : -1;
}

static double s_mib(long kb) { return (double)kb / 1024.0; }

/* Runs argv as a child with its output read line by line (echoed when it
 * has one of the keys; "" echoes every line); its peak RSS (KiB), CPU and
 * wall seconds, and into *out (when not NULL) its RESULT line and the
 * numbers it printed after out->grab's keys. */
typedef struct {
    const char *const *grab; /* NULL-ended keys: the number after each one's last match into val */
    double val[8];
    char result[4096];       /* the child's last line starting "RESULT" */
} s_out_t;

static int s_child(char *const argv[], const char *const keys[], long *maxrss_kb, double *cpu_s,
                   double *wall_s, s_out_t *out) {
    int fds[2];
    if (pipe(fds)) return -1;
    const double t0 = lf_bench_now();
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        dup2(fds[1], 1), dup2(fds[1], 2), close(fds[0]), close(fds[1]);
        execv(argv[0], argv);
        _exit(127);
    }
    close(fds[1]);
    FILE *f = fdopen(fds[0], "r");
    char line[4096];
    while (f && fgets(line, sizeof line, f)) {
        if (out && !strncmp(line, "RESULT", 6)) snprintf(out->result, sizeof out->result, "%s", line);
        for (int k = 0; out && out->grab && out->grab[k] && k < 8; k++)
            if (strstr(line, out->grab[k])) out->val[k] = s_field(line, out->grab[k]);
        for (int k = 0; keys[k]; k++)
            if (strstr(line, keys[k])) {
                printf("    %s", line);
                fflush(stdout);
                break;
            }
    }
    if (f) fclose(f);
    int st = 0;
    struct rusage ru;
    if (wait4(pid, &st, 0, &ru) != pid) return -1;
    *wall_s = lf_bench_now() - t0;
    *maxrss_kb = ru.ru_maxrss;
    *cpu_s = (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_sec +
             1e-6 * (double)ru.ru_stime.tv_usec;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* --cache: "none", "fbcache:THRESHOLD[:START:END]" or
 * "deepcache:INTERVAL:DEPTH[:START:END]" (lf_stepcache.h's fields). 0 or -1. */
static int s_cache_parse(const char *spec, lf_stepcache_opts_t *o) {
    *o = (lf_stepcache_opts_t){0};
    const char *field = NULL;
    int n = 0;
    if (!strcmp(spec, "none")) return 0;
    if (!strncmp(spec, "fbcache:", 8)) {
        o->kind = LF_STEPCACHE_FBCACHE, o->interval = 1;
        n = sscanf(spec + 8, "%f:%d:%d", &o->threshold, &o->start, &o->end);
        if (n != 1 && n != 3) return -1;
    } else if (!strncmp(spec, "deepcache:", 10)) {
        o->kind = LF_STEPCACHE_DEEPCACHE;
        n = sscanf(spec + 10, "%d:%d:%d:%d", &o->interval, &o->depth, &o->start, &o->end);
        if (n != 2 && n != 4) return -1;
    } else {
        return -1;
    }
    return lf_stepcache_opts_check(o, &field) ? -1 : 0;
}

/* One side's figures for the whole-image table (--whole). */
typedef struct {
    char name[96];
    int rc;
    double image_s; /* one image after load: text, steps, decode */
    double load_s, wall_s, cpu_s; /* load; the whole child process's wall and CPU */
    long peak_kb;
    int full, cached; /* denoiser evaluations (ours; -1 unknown) */
} s_side_t;

static const char *const s_sdcpp_keys[] = {"completed", "taking", "loading model", "total params", "rror",
                                           "System Info", "version", NULL};
static const char *const s_sdcpp_grab[] = {"generate_image completed in ", "sampling completed, taking ",
                                           "decode_first_stage completed, taking ",
                                           "get_learned_condition completed, taking ", NULL};

/* stable-diffusion.cpp's CLI as a child on the same file and settings
 * (prompt, negative, steps, CFG 7, Euler, seed 5, threads, 512x512), its
 * weights loaded before the image (--eager-load: else they load inside
 * generate_image). image_s is its own "generate_image completed in". */
static void s_sdcpp(const char *sdcpp, const char *ckpt, int steps, int threads, s_side_t *r) {
    char st[16], th[16], out[] = "/tmp/bench_gen_mem_sdcpp_XXXXXX";
    int ofd = mkstemp(out);
    if (ofd >= 0) close(ofd);
    snprintf(st, sizeof st, "%d", steps);
    snprintf(th, sizeof th, "%d", threads);
    char *const argv[] = {(char *)sdcpp, "-m", (char *)ckpt, "-p", "a photograph of an astronaut riding a horse",
                          "-n", "blurry", "--steps", st, "--cfg-scale", "7", "--sampling-method", "euler",
                          "-W", "512", "-H", "512", "-s", "5", "-t", th, "--eager-load", "-o", out, "-v", NULL};
    printf("  stable-diffusion.cpp (%s), load average %.2f:\n", sdcpp, s_loadavg());
    fflush(stdout);
    s_out_t o = {.grab = s_sdcpp_grab};
    r->rc = s_child(argv, s_sdcpp_keys, &r->peak_kb, &r->cpu_s, &r->wall_s, &o);
    unlink(out);
    snprintf(r->name, sizeof r->name, "stable-diffusion.cpp (f16 weights, ggml)");
    r->image_s = o.val[0], r->load_s = o.val[0] > 0 ? r->wall_s - o.val[0] : -1, r->full = r->cached = -1;
    printf("RESULT sdcpp rc=%d wall_s=%.2f cpu_s=%.2f peak_rss_kb=%ld image_s=%.2f sampling_s=%.2f decode_s=%.2f "
           "text_s=%.2f\n",
           r->rc, r->wall_s, r->cpu_s, r->peak_kb, o.val[0], o.val[1], o.val[2], o.val[3]);
    fflush(stdout);
}

/* A lightfarm side of --whole: this program again as a child (its own
 * process, so its peak is its own) with one precision and cache. */
static void s_ours(const char *ckpt, int steps, int threads, const char *precision, const char *cache,
                   s_side_t *r) {
    char st[16], th[16];
    snprintf(st, sizeof st, "%d", steps);
    snprintf(th, sizeof th, "%d", threads);
    char *const argv[] = {"/proc/self/exe", "--ckpt", (char *)ckpt, "--steps", st, "--threads", th,
                          "--precision", (char *)precision, "--cache", (char *)cache, "--torch", "none",
                          "--sdcpp", "none", NULL};
    static const char *const all[] = {"", NULL};
    printf("  lightfarm, precision %s, cache %s, load average %.2f:\n", precision, cache, s_loadavg());
    fflush(stdout);
    s_out_t o = {0};
    r->rc = s_child(argv, all, &r->peak_kb, &r->cpu_s, &r->wall_s, &o);
    snprintf(r->name, sizeof r->name, "lightfarm %s%s%s", precision, strcmp(cache, "none") ? " + " : "",
             strcmp(cache, "none") ? cache : "");
    if (!o.result[0]) r->rc = r->rc ? r->rc : -1;
    r->image_s = s_field(o.result, "image_s="), r->load_s = s_field(o.result, "load_s=");
    r->full = (int)s_field(o.result, "full="), r->cached = (int)s_field(o.result, "cached=");
    /* Its phases' VmHWM (reset per phase; ru_maxrss follows the resets). */
    if (o.result[0]) r->peak_kb = (long)s_field(o.result, "peak_rss_kb=");
}

static void s_torch(const char *python, const char *ckpt, int steps, int threads, s_side_t *r) {
    char st[16], th[16];
    snprintf(st, sizeof st, "%d", steps);
    snprintf(th, sizeof th, "%d", threads);
    char *const argv[] = {(char *)python, LF_SOURCE_DIR "/bench/bench_gen_mem_torch.py", "--ckpt", (char *)ckpt,
                          "--steps", st, "--threads", th, NULL};
    static const char *const all[] = {"", NULL};
    printf("  PyTorch (%s), load average %.2f:\n", python, s_loadavg());
    fflush(stdout);
    s_out_t o = {0};
    r->rc = s_child(argv, all, &r->peak_kb, &r->cpu_s, &r->wall_s, &o);
    if (!o.result[0]) r->rc = r->rc ? r->rc : -1;
    snprintf(r->name, sizeof r->name, "diffusers/PyTorch (f32)");
    r->image_s = s_field(o.result, "image_s="), r->load_s = s_field(o.result, "load_s=");
    r->full = r->cached = -1;
    if (o.result[0]) r->peak_kb = (long)s_field(o.result, "peak_rss_kb=");
}

/* --whole: one 512x512 image of `steps` Euler steps with CFG 7 by each of
 * lightfarm f32, lightfarm at its best settings (precision + step cache),
 * stable-diffusion.cpp and diffusers/PyTorch, one after the other on the
 * same file, then one table: seconds per image (after load), peak RSS, and
 * how much faster / smaller each lightfarm side is than each other side. */
static int s_whole(const char *ckpt, int steps, int threads, const char *python, const char *sdcpp,
                   const char *best_precision, const char *best_cache) {
    s_side_t side[4] = {0};
    int n = 0;
    const double t0 = lf_bench_now(), la0 = s_loadavg();
    printf("bench_gen_mem --whole: %s, 512x512, %d steps, Euler, CFG 7, seed 5, %d threads; load average %.2f\n",
           ckpt, steps, threads, la0);
    fflush(stdout);
    s_ours(ckpt, steps, threads, "f32", "none", &side[n++]);
    s_ours(ckpt, steps, threads, best_precision, best_cache, &side[n++]);
    if (sdcpp && strcmp(sdcpp, "none")) s_sdcpp(sdcpp, ckpt, steps, threads, &side[n++]);
    if (python && strcmp(python, "none")) s_torch(python, ckpt, steps, threads, &side[n++]);
    const double la1 = s_loadavg();
    printf("\nwhole 512x512 image, %d steps, %d threads (%.0f s for the four, load average %.2f before, %.2f "
           "after)\n\n",
           steps, threads, lf_bench_now() - t0, la0, la1);
    printf("| side | s per image | load s | process wall s | process CPU s | peak RSS MiB | full / cached evals "
           "| lightfarm f32 faster | lightfarm best faster | best's peak RSS vs it |\n"
           "|---|---|---|---|---|---|---|---|---|---|\n");
    for (int i = 0; i < n; i++) {
        const s_side_t *r = &side[i];
        char evals[32] = "-";
        if (r->full >= 0) snprintf(evals, sizeof evals, "%d / %d", r->full, r->cached);
        if (r->rc || r->image_s <= 0) {
            printf("| %s | failed (rc %d) | | %.1f | %.1f | %.0f | | | | |\n", r->name, r->rc, r->wall_s, r->cpu_s,
                   s_mib(r->peak_kb));
            continue;
        }
        printf("| %s | %.1f | %.1f | %.1f | %.1f | %.0f | %s | %.2fx | %.2fx | %.0f %% |\n", r->name, r->image_s,
               r->load_s, r->wall_s, r->cpu_s, s_mib(r->peak_kb), evals, r->image_s / side[0].image_s,
               r->image_s / side[1].image_s, 100.0 * (double)side[1].peak_kb / (double)r->peak_kb);
    }
    for (int i = 0; i < n; i++)
        printf("RESULT whole side=\"%s\" rc=%d image_s=%.2f load_s=%.2f wall_s=%.2f cpu_s=%.2f peak_rss_kb=%ld\n",
               side[i].name, side[i].rc, side[i].image_s, side[i].load_s, side[i].wall_s, side[i].cpu_s,
               side[i].peak_kb);
    int bad = 0;
    for (int i = 0; i < n; i++) bad |= side[i].rc != 0;
    return bad ? 1 : 0;
}

int main(int argc, char **argv) {
    const char *ckpt = getenv("LF_SD15_FULL"), *python = getenv("LF_BENCH_TORCH"), *precision = "f32";
    const char *sdcpp = getenv("LF_BENCH_SDCPP");
    /* --whole: the best settings' precision and cache (bench_cache's
     * quality table: DeepCache interval 2 depth 0, 32.1 dB mean). */
    const char *cache_spec = "none", *best_precision = "bf16", *best_cache = "deepcache:2:0";
    int steps = 20, threads = 2, runs = 1, size = 512, whole = 0;
    lf_stepcache_opts_t cache = {0};
    double cfg = 7.0;
    const char *texts[4], *vae = NULL, *prompt = "a photograph of an astronaut riding a horse";
    size_t n_texts = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--ckpt") && v) ckpt = v, i++;
        else if (!strcmp(a, "--steps") && v) steps = atoi(v), i++;
        else if (!strcmp(a, "--threads") && v) threads = atoi(v), i++;
        else if (!strcmp(a, "--precision") && v) precision = v, i++;
        else if (!strcmp(a, "--runs") && v) runs = atoi(v), i++;
        else if (!strcmp(a, "--torch") && v) python = v, i++;
        else if (!strcmp(a, "--sdcpp") && v) sdcpp = v, i++;
        else if (!strcmp(a, "--text") && v && n_texts < 4) texts[n_texts++] = v, i++;
        else if (!strcmp(a, "--vae") && v) vae = v, i++;
        else if (!strcmp(a, "--size") && v) size = atoi(v), i++;
        else if (!strcmp(a, "--cfg") && v) cfg = atof(v), i++;
        else if (!strcmp(a, "--prompt") && v) prompt = v, i++;
        else if (!strcmp(a, "--cache") && v) cache_spec = v, i++;
        else if (!strcmp(a, "--best-precision") && v) best_precision = v, i++;
        else if (!strcmp(a, "--best-cache") && v) best_cache = v, i++;
        else if (!strcmp(a, "--whole")) whole = 1;
        else {
            fprintf(stderr, "usage: bench_gen_mem [--ckpt PATH] [--steps N] [--threads N] "
                            "[--precision f32|bf16] [--runs N] [--torch PYTHON|none] [--text PATH]... "
                            "[--vae PATH] [--size N] [--cfg X] [--prompt TEXT] [--sdcpp BINARY|none] [--cache SPEC] "
                            "[--whole [--best-precision P] [--best-cache SPEC]]\n");
            return 2;
        }
    }
    if (steps < 2 || steps > 256 || runs < 1 || size < 64 || size % 64)
        return fprintf(stderr, "bench_gen_mem: steps 2..256, runs >= 1, size a multiple of 64\n"), 2;
    lf_stepcache_opts_t best = {0};
    if (s_cache_parse(cache_spec, &cache) || s_cache_parse(best_cache, &best))
        return fprintf(stderr, "bench_gen_mem: --cache: none, fbcache:THRESHOLD[:START:END] or "
                               "deepcache:INTERVAL:DEPTH[:START:END]\n"), 2;
    static char def[4096];
    if (!ckpt) {
        snprintf(def, sizeof def, "%s/tests/reference/out/sd15_full.safetensors", LF_SOURCE_DIR);
        ckpt = def;
    }
    struct stat sb;
    if (stat(ckpt, &sb) != 0) {
        printf("SKIP: no full-size SD1.5 checkpoint at %s (make_model_fixtures.py --full-f16 PATH)\n", ckpt);
        return 0;
    }
    if (whole)
        return s_whole(ckpt, steps, threads, python, sdcpp, best_precision, best_cache);
    /* LF_LOG_LEVEL=debug: each network's planned activations and workspace. */
    const char *lvl = getenv("LF_LOG_LEVEL");
    lf_log_init("bench_gen_mem", lvl ? lf_log_level_parse(lvl) : LF_LOG_INFO);
    printf("bench_gen_mem: %s, %dx%d, %d steps, CFG %g, %d threads, precision %s, cache %s, LF_WEIGHTS_MAP=%s, "
           "load average %.2f\n", ckpt, size, size, steps, cfg, threads, precision, cache_spec,
           getenv("LF_WEIGHTS_MAP") ? getenv("LF_WEIGHTS_MAP") : "(unset)", s_loadavg());
    fflush(stdout);
    char err[1024] = "";
    lf_engine_opts_t eo = {.n_threads = threads, .precision = precision};
    lf_engine_t *e = NULL;
    if (lf_engine_new(&eo, &e, err, sizeof err)) return fprintf(stderr, "bench_gen_mem: %s\n", err), 1;
    double t0 = lf_bench_now();
    lf_engine_load_opts_t lo = {.text_paths = n_texts ? texts : NULL, .n_text_paths = n_texts, .parts_vae_path = vae};
    if (lf_engine_load(e, ckpt, &lo)) return fprintf(stderr, "bench_gen_mem: %s\n", lf_engine_errstr(e)), 1;
    const double load_s = lf_bench_now() - t0;
    const long rss_load = lf_bench_status_kb("VmRSS"), hwm_load = lf_bench_status_kb("VmHWM");
    printf("  load             %7.2f s   RSS after %7.0f MiB   peak %7.0f MiB\n", load_s, s_mib(rss_load),
           s_mib(hwm_load));
    fflush(stdout);
    double med = 0, image_s = 0, cpu0 = 0, image_cpu_s = 0;
    int n_full = 0, n_cached = 0;
    long hwm_decode = 0, peak = hwm_load;
    s_trace_t tr = {0};
    for (int run = 0; run < runs; run++) {
        lf_engine_request_t req = lf_engine_request_defaults();
        req.prompt = prompt;
        req.negative = "blurry";
        req.steps = steps;
        req.seed = 5;
        req.cfg = cfg;
        req.width = req.height = size;
        req.cache = cache;
        memset(&tr, 0, sizeof tr);
        lf_bench_reset_hwm();
        tr.t_prev = t0 = lf_bench_now();
        struct rusage ru0;
        getrusage(RUSAGE_SELF, &ru0);
        cpu0 = (double)ru0.ru_utime.tv_sec + 1e-6 * (double)ru0.ru_utime.tv_usec + (double)ru0.ru_stime.tv_sec +
               1e-6 * (double)ru0.ru_stime.tv_usec;
        lf_engine_result_t res = {0};
        if (lf_engine_generate(e, &req, s_progress, &tr, NULL, &res))
            return fprintf(stderr, "bench_gen_mem: %s\n", lf_engine_errstr(e)), 1;
        const double decode_s = lf_bench_now() - tr.t_prev, all_s = lf_bench_now() - t0;
        struct rusage ru1;
        getrusage(RUSAGE_SELF, &ru1);
        const double cpu_s = (double)ru1.ru_utime.tv_sec + 1e-6 * (double)ru1.ru_utime.tv_usec +
                             (double)ru1.ru_stime.tv_sec + 1e-6 * (double)ru1.ru_stime.tv_usec - cpu0;
        const double sys_s = (double)(ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec) +
                             1e-6 * (double)(ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec);
        const long minflt = ru1.ru_minflt - ru0.ru_minflt, majflt = ru1.ru_majflt - ru0.ru_majflt;
        image_s = all_s, image_cpu_s = cpu_s, n_full = res.model_calls_full, n_cached = res.model_calls_cached;
        hwm_decode = lf_bench_status_kb("VmHWM");
        if (tr.hwm_text_kb > peak) peak = tr.hwm_text_kb;
        if (tr.hwm_steps_kb > peak) peak = tr.hwm_steps_kb;
        if (hwm_decode > peak) peak = hwm_decode;
        double sorted[256];
        memcpy(sorted, tr.step_s + 1, (size_t)(steps - 1) * sizeof *sorted);
        qsort(sorted, (size_t)steps - 1, sizeof *sorted, s_cmp);
        med = sorted[(steps - 1) / 2];
        printf("  run %d (%s): %.1f s wall, %.1f s CPU (%.1f s system; page faults %ld minor, %ld major), %zu "
               "image(s); denoiser evaluations %d full, %d cached\n",
               run + 1, res.precision ? res.precision : "?", all_s, cpu_s, sys_s, minflt, majflt, res.n_images,
               res.model_calls_full, res.model_calls_cached);
        printf("  text + step 1    %7.2f s   RSS after %7.0f MiB (anon %.0f, file %.0f)   peak %7.0f MiB\n",
               tr.step_s[0], s_mib(tr.rss_step_kb[0]), s_mib(tr.anon_kb[0]), s_mib(tr.file_kb[0]),
               s_mib(tr.hwm_text_kb));
        printf("  steps 2..%-3d     %7.2f s/step (median)   RSS after %7.0f MiB (anon %.0f, file %.0f)   peak "
               "%7.0f MiB\n",
               steps, med, s_mib(tr.rss_step_kb[steps - 1]), s_mib(tr.anon_kb[1]), s_mib(tr.file_kb[1]),
               s_mib(tr.hwm_steps_kb));
        printf("  decode + PNG     %7.2f s   RSS after %7.0f MiB (anon %.0f, file %.0f)   peak %7.0f MiB\n",
               decode_s, s_mib(lf_bench_status_kb("VmRSS")), s_mib(lf_bench_status_kb("RssAnon")),
               s_mib(lf_bench_status_kb("RssFile")), s_mib(hwm_decode));
        fflush(stdout);
        lf_engine_result_clear(&res);
    }
    printf("  whole run: peak RSS %.0f MiB\n", s_mib(peak));
    printf("RESULT ours precision=%s cache=%s load_s=%.2f image_s=%.2f image_cpu_s=%.2f step_s=%.3f full=%d "
           "cached=%d rss_load_kb=%ld hwm_load_kb=%ld hwm_text_kb=%ld hwm_steps_kb=%ld hwm_decode_kb=%ld "
           "peak_rss_kb=%ld\n",
           precision, cache_spec, load_s, image_s, image_cpu_s, med, n_full, n_cached, rss_load, hwm_load,
           tr.hwm_text_kb, tr.hwm_steps_kb, hwm_decode, peak);
    fflush(stdout);
    lf_engine_destroy(&e);
    if (sdcpp && strcmp(sdcpp, "none")) {
        s_side_t r = {0};
        s_sdcpp(sdcpp, ckpt, steps, threads, &r);
        printf("  peak RSS ours %.0f MiB vs sd.cpp %.0f MiB (%.0f %%); image (with its load) %.1f s wall, %.1f s "
               "CPU; load average %.2f\n",
               s_mib(peak), s_mib(r.peak_kb), 100.0 * (double)peak / (double)r.peak_kb, r.wall_s, r.cpu_s,
               s_loadavg());
        fflush(stdout);
    }
    if (!python || !strcmp(python, "none") || n_texts || size != 512 || cfg != 7.0) return 0;
    char cmd[8192], line[4096], result[4096] = "";
    snprintf(cmd, sizeof cmd, "'%s' '%s/bench/bench_gen_mem_torch.py' --ckpt '%s' --steps %d --threads %d 2>&1",
             python, LF_SOURCE_DIR, ckpt, steps, threads);
    printf("  PyTorch (%s), load average %.2f:\n", python, s_loadavg());
    fflush(stdout);
    FILE *pp = popen(cmd, "r");
    while (pp && fgets(line, sizeof line, pp)) {
        printf("    %s", line);
        fflush(stdout);
        if (!strncmp(line, "RESULT torch", 12)) snprintf(result, sizeof result, "%s", line);
    }
    if (!pp || pclose(pp) != 0 || !result[0]) return fprintf(stderr, "bench_gen_mem: the PyTorch side failed\n"), 1;
    const double tpeak = s_field(result, "peak_rss_kb="), tstep = s_field(result, "step_s=");
    printf("  peak RSS ours %.0f MiB vs PyTorch %.0f MiB (%.0f %%); step %.2f s vs %.2f s (%.2fx)\n",
           s_mib(peak), tpeak / 1024.0, 100.0 * (double)peak / tpeak, med, tstep, tstep / med);
    return 0;
}
