/* lightfarm-engine: the engine from the command line — generate images,
 * and look inside its parts (tokenizer, schedules, noise, weights files,
 * VAE decoding). Exit status: 0 done, 1 runtime error (message names the
 * file and the reason), 2 usage error. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lf_backend.h"
#include "lf_clip_tokenizer.h"
#include "lf_engine.h"
#include "lf_error.h"
#include "lf_image.h"
#include "lf_params.h"
#include "lf_rng.h"
#include "lf_safetensors.h"
#include "lf_schedule.h"
#include "lf_torchzip.h"
#include "cli_decode.h"

#ifndef LF_ASSETS_DEFAULT
#define LF_ASSETS_DEFAULT "assets"
#endif
#define S_EXIT_RUNTIME 1
#define S_EXIT_USAGE 2

static const char *s_prog = "lightfarm-engine";

static const char s_usage[] =
    "usage: lightfarm-engine COMMAND [options]\n"
    "\n"
    "commands:\n"
    "  generate -m MODEL -p PROMPT -o OUT.png [options]   txt2img / img2img\n"
    "      MODEL: a checkpoint, a diffusers folder or a NAME.model.json manifest (a UNet-only\n"
    "      file with a checkpoint's text encoders and VAE; engine/models/lf_manifest.h)\n"
    "      -n, --negative TEXT   negative prompt\n"
    "      --sampler S           euler, euler_ancestral, heun, dpm_2, dpmpp_2m, dpmpp_2m_sde,\n"
    "                            dpmpp_sde, ddim, lcm, uni_pc (or A1111 names); default euler\n"
    "      --scheduler S         normal, karras, exponential, sgm_uniform, simple; default normal\n"
    "      --steps N (20)  --cfg X (7)  --seed N (0)  -W W (512)  -H H (512)  --batch N (1)\n"
    "      --init-image FILE --denoise X (0.75)   img2img\n"
    "      --rng cpu|philox      noise generator (torch CPU, or A1111's NV Philox); default cpu\n"
    "      --clip-skip N (1)  --vae FILE  --taesd FILE  --device cpu|cuda[:N]  --threads N\n"
    "      --refiner MODEL --refiner-switch-at X (0.8)   SDXL refiner for the last steps\n"
    "      --original-size WxH --crop-top N --crop-left N --target-size WxH\n"
    "                            SDXL size conditioning (default: the image size, crop 0,0)\n"
    "      --aesthetic-score X (6) --negative-aesthetic-score X (2.5)   SDXL refiner\n"
    "      --weights T           quantize the UNet's / Flux's linear layers on load: q8_0, q6_k, q5_k,\n"
    "                            q5_1, q5_0, q4_k, q4_1, q4_0 (K types: rows of 256)\n"
    "      --lora-dir DIRS       LoRA folders (':'-separated) for the prompt's <lora:name:w> tags;\n"
    "                            default: lora/ and Lora/ beside the model\n"
    "      --cache none|fbcache|deepcache   step caching; --cache-threshold X (0.12, fbcache)\n"
    "                            --cache-interval N (3) --cache-depth N (0) (deepcache)\n"
    "                            --cache-start N --cache-end N (0): steps always run in full\n"
    "      --tcd-gamma X (0.3)   the tcd sampler's gamma (diffusers' TCDScheduler eta)\n"
    "      --timesteps T,T,...   explicit training timesteps, strictly descending in 0..999,\n"
    "                            one per step (Hyper-SD 1-step: 800); sets --steps\n"
    "      --precision f32|bf16|auto   the UNet's arithmetic (f32; bf16 where the CPU has\n"
    "                            AVX512_BF16, else f32)\n"
    "  tokenize [--vocab FILE] TEXT        CLIP ids, BOS and EOS included\n"
    "  sigmas --scheduler S --steps N      the SD1.x sigmas, final 0 included\n"
    "  noise --seed N --shape N,C,H,W [--rng cpu|philox]   initial noise (image i: seed + i)\n"
    "  decode --vae FILE --latent IN.safetensors -o OUT.png [--tile N]   decode tensor 'latent'\n"
    "                                      (--tile: VAE tiles of N latent pixels; 0 = whole)\n"
    "  inspect FILE                        tensors, dtypes and model family\n"
    "\n"
    "The CLIP merges file is read from $LF_ASSETS_DIR/clip/bpe_simple_vocab_16e6.txt.gz\n"
    "(default " LF_ASSETS_DEFAULT "; tools/fetch_assets.sh installs it).\n";

static int s_usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", s_prog);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n(run '%s --help' for usage)\n", s_prog);
    va_end(ap);
    return S_EXIT_USAGE;
}

static int s_runtime_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", s_prog);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return S_EXIT_RUNTIME;
}

/* ---- argument helpers -------------------------------------------------- */

static int s_int(const char *opt, const char *s, long lo, long hi, long *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!*s || *end || errno || v < lo || v > hi)
        return s_usage_error("%s: '%s' is not an integer in %ld..%ld", opt, s, lo, hi);
    *out = v;
    return 0;
}

static int s_u64(const char *opt, const char *s, uint64_t *out)
{
    char *end = NULL;
    errno = 0;
    if (!*s || *s == '-') return s_usage_error("%s: '%s' is not a non-negative integer", opt, s);
    unsigned long long v = strtoull(s, &end, 10);
    if (*end || errno) return s_usage_error("%s: '%s' is not a non-negative integer", opt, s);
    *out = v;
    return 0;
}

static int s_double(const char *opt, const char *s, double lo, double hi, double *out)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (!*s || *end || errno || !isfinite(v) || v < lo || v > hi)
        return s_usage_error("%s: '%s' is not a number in %g..%g", opt, s, lo, hi);
    *out = v;
    return 0;
}

static int s_rng(const char *s, lf_rng_kind_t *out)
{
    if (!strcmp(s, "cpu")) *out = LF_RNG_TORCH_CPU;
    else if (!strcmp(s, "philox")) *out = LF_RNG_PHILOX;
    else return s_usage_error("--rng: '%s' is not cpu or philox", s);
    return 0;
}

/* ---- files ------------------------------------------------------------- */

static int s_read_file(const char *path, uint8_t **out, size_t *len, size_t max)
{
    FILE *f = fopen(path, "rb");
    if (!f) return s_runtime_error("%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(f);
        return s_runtime_error("%s: not a regular file", path);
    }
    if ((uint64_t)sb.st_size > max) {
        fclose(f);
        return s_runtime_error("%s: too large (%lld bytes, limit %zu)", path, (long long)sb.st_size, max);
    }
    uint8_t *buf = malloc(sb.st_size ? (size_t)sb.st_size : 1);
    if (!buf || fread(buf, 1, (size_t)sb.st_size, f) != (size_t)sb.st_size) {
        free(buf);
        fclose(f);
        return s_runtime_error("%s: cannot read", path);
    }
    fclose(f);
    *out = buf;
    *len = (size_t)sb.st_size;
    return 0;
}

static int s_write_file(const char *path, const uint8_t *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f) return s_runtime_error("%s: cannot create: %s", path, strerror(errno));
    int ok = fwrite(data, 1, len, f) == len;
    ok = (fclose(f) == 0) && ok;
    return ok ? 0 : s_runtime_error("%s: cannot write: %s", path, strerror(errno));
}

static int s_exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

/* Can the image(s) be written at OUT (and OUT-1... beside it)? Asked before
 * anything is loaded or sampled, so a typo in -o costs no minutes. */
static int s_check_writable(const char *path)
{
    struct stat sb;
    if (stat(path, &sb) == 0) {
        if (S_ISDIR(sb.st_mode)) return s_runtime_error("%s: cannot write the image: %s", path, strerror(EISDIR));
        if (access(path, W_OK) != 0) return s_runtime_error("%s: cannot write the image: %s", path, strerror(errno));
        return 0;
    }
    if (errno != ENOENT) return s_runtime_error("%s: cannot write the image: %s", path, strerror(errno));
    char dir[4096];
    const char *slash = strrchr(path, '/');
    if (!slash) snprintf(dir, sizeof dir, ".");
    else if (slash == path) snprintf(dir, sizeof dir, "/");
    else snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    if (stat(dir, &sb) != 0)
        return s_runtime_error("%s: cannot write the image: folder %s: %s", path, dir, strerror(errno));
    if (!S_ISDIR(sb.st_mode))
        return s_runtime_error("%s: cannot write the image: %s is not a folder", path, dir);
    if (access(dir, W_OK | X_OK) != 0)
        return s_runtime_error("%s: cannot write the image: folder %s: %s", path, dir, strerror(errno));
    return 0;
}

/* ---- generate ---------------------------------------------------------- */

typedef struct {
    int tty;
    int last;
} s_bar_t;

static void s_progress(void *ud, int step, int steps, const uint8_t *preview, size_t len)
{
    s_bar_t *b = ud;
    (void)preview, (void)len;
    if (b->tty) {
        int width = 30, fill = steps ? step * width / steps : width;
        fprintf(stderr, "\r[%.*s%*s] %d/%d", fill, "##############################", width - fill, "", step,
                steps);
        if (step == steps) fputc('\n', stderr);
    } else {
        fprintf(stderr, "step %d/%d\n", step, steps);
    }
    fflush(stderr);
    b->last = step;
}

/* OUT.png for image 0, OUT-1.png, OUT-2.png... for the others. */
static void s_out_name(const char *out, size_t i, char *buf, size_t len)
{
    if (i == 0) {
        snprintf(buf, len, "%s", out);
        return;
    }
    const char *slash = strrchr(out, '/'), *dot = strrchr(out, '.');
    if (!dot || (slash && dot < slash)) dot = out + strlen(out);
    snprintf(buf, len, "%.*s-%zu%s", (int)(dot - out), out, i, dot);
}

/* "WxH" (positive integers up to 8192) into *w, *h. */
static int s_size(const char *flag, const char *s, int *w, int *h)
{
    char *end = NULL;
    long a = strtol(s, &end, 10), b = 0;
    if (end != s && (*end == 'x' || *end == 'X')) {
        const char *q = end + 1;
        b = strtol(q, &end, 10);
        if (end != q && !*end && a > 0 && b > 0 && a <= 8192 && b <= 8192) {
            *w = (int)a;
            *h = (int)b;
            return 0;
        }
    }
    return s_usage_error("%s: '%s' is not WxH (1..8192 each)", flag, s);
}

static int s_cmd_generate(int argc, char **argv)
{
    static const struct option lo[] = {
        {"model", required_argument, NULL, 'm'},    {"prompt", required_argument, NULL, 'p'},
        {"negative", required_argument, NULL, 'n'}, {"output", required_argument, NULL, 'o'},
        {"width", required_argument, NULL, 'W'},    {"height", required_argument, NULL, 'H'},
        {"sampler", required_argument, NULL, 1},    {"scheduler", required_argument, NULL, 2},
        {"steps", required_argument, NULL, 3},      {"cfg", required_argument, NULL, 4},
        {"seed", required_argument, NULL, 5},       {"init-image", required_argument, NULL, 6},
        {"denoise", required_argument, NULL, 7},    {"rng", required_argument, NULL, 8},
        {"clip-skip", required_argument, NULL, 9},  {"vae", required_argument, NULL, 10},
        {"taesd", required_argument, NULL, 11},     {"batch", required_argument, NULL, 12},
        {"device", required_argument, NULL, 13},    {"threads", required_argument, NULL, 14},
        {"vocab", required_argument, NULL, 15},     {"refiner", required_argument, NULL, 16},
        {"refiner-switch-at", required_argument, NULL, 17},
        {"original-size", required_argument, NULL, 18}, {"crop-top", required_argument, NULL, 19},
        {"crop-left", required_argument, NULL, 20}, {"target-size", required_argument, NULL, 21},
        {"aesthetic-score", required_argument, NULL, 22},
        {"negative-aesthetic-score", required_argument, NULL, 23},
        {"lora-dir", required_argument, NULL, 24},  {"cache", required_argument, NULL, 25},
        {"cache-threshold", required_argument, NULL, 26}, {"cache-start", required_argument, NULL, 27},
        {"cache-end", required_argument, NULL, 28}, {"cache-interval", required_argument, NULL, 29},
        {"cache-depth", required_argument, NULL, 30}, {"tcd-gamma", required_argument, NULL, 31},
        {"timesteps", required_argument, NULL, 32}, {"weights", required_argument, NULL, 33},
        {"precision", required_argument, NULL, 34},
        {NULL, 0, NULL, 0}};
    const char *model = NULL, *outp = NULL, *init = NULL, *vae = NULL, *taesd = NULL, *device = NULL,
               *vocab = NULL, *lora_dirs = NULL, *weights = NULL;
    lf_engine_request_t req = lf_engine_request_defaults();
    req.cache = (lf_stepcache_opts_t){.threshold = 0.12f, .interval = 3}; /* the table's defaults */
    long v;
    double dv = 0;
    int threads = 0, have_denoise = 0, have_switch = 0, timesteps[150];
    optind = 0;
    int c;
    while ((opterr = 0, c = getopt_long(argc, argv, ":m:p:n:o:W:H:", lo, NULL)) != -1) {
        int rc = 0;
        switch (c) {
        case 'm': model = optarg; break;
        case 'p': req.prompt = optarg; break;
        case 'n': req.negative = optarg; break;
        case 'o': outp = optarg; break;
        case 'W': rc = s_int("-W", optarg, 8, 4096, &v), req.width = (int)v; break;
        case 'H': rc = s_int("-H", optarg, 8, 4096, &v), req.height = (int)v; break;
        case 1: req.sampler = optarg; break;
        case 2: req.scheduler = optarg; break;
        case 3: rc = s_int("--steps", optarg, 1, 1000, &v), req.steps = (int)v; break;
        case 4: rc = s_double("--cfg", optarg, 0, 100, &req.cfg); break;
        case 5: rc = s_u64("--seed", optarg, &req.seed); break;
        case 6: init = optarg; break;
        case 7: rc = s_double("--denoise", optarg, 0, 1, &req.denoise), have_denoise = 1; break;
        case 8: {
            lf_rng_kind_t k;
            rc = s_rng(optarg, &k);
            req.rng = optarg;
            break;
        }
        case 9: rc = s_int("--clip-skip", optarg, 1, 12, &v), req.clip_skip = (int)v; break;
        case 10: vae = optarg; break;
        case 11: taesd = optarg; break;
        case 12: rc = s_int("--batch", optarg, 1, 64, &v), req.batch = (int)v; break;
        case 13: device = optarg; break;
        case 14: rc = s_int("--threads", optarg, 0, 1024, &v), threads = (int)v; break;
        case 15: vocab = optarg; break;
        case 16: req.refiner_path = optarg; break;
        case 17: rc = s_double("--refiner-switch-at", optarg, 0.01, 1, &req.refiner_switch_at), have_switch = 1; break;
        case 18: rc = s_size("--original-size", optarg, &req.orig_width, &req.orig_height); break;
        case 19: rc = s_int("--crop-top", optarg, 0, 8192, &v), req.crop_top = (int)v; break;
        case 20: rc = s_int("--crop-left", optarg, 0, 8192, &v), req.crop_left = (int)v; break;
        case 21: rc = s_size("--target-size", optarg, &req.target_width, &req.target_height); break;
        case 22: rc = s_double("--aesthetic-score", optarg, 0, 10, &req.aesthetic_score); break;
        case 23: rc = s_double("--negative-aesthetic-score", optarg, 0, 10, &req.negative_aesthetic_score); break;
        case 24: lora_dirs = optarg; break;
        case 33: weights = optarg; break;
        case 25:
            if (lf_stepcache_kind_parse(optarg, &req.cache.kind))
                return s_usage_error("--cache: '%s' is not none, fbcache or deepcache", optarg);
            break;
        case 26: rc = s_double("--cache-threshold", optarg, 0, 1, &dv), req.cache.threshold = (float)dv; break;
        case 27: rc = s_int("--cache-start", optarg, 0, 1000, &v), req.cache.start = (int)v; break;
        case 28: rc = s_int("--cache-end", optarg, 0, 1000, &v), req.cache.end = (int)v; break;
        case 29: rc = s_int("--cache-interval", optarg, 1, 100, &v), req.cache.interval = (int)v; break;
        case 30: rc = s_int("--cache-depth", optarg, 0, 63, &v), req.cache.depth = (int)v; break;
        case 31: rc = s_double("--tcd-gamma", optarg, 0, 1, &req.tcd_gamma), req.has_tcd_gamma = 1; break;
        case 32:
            if ((req.n_timesteps = lf_param_timesteps_parse(optarg, timesteps, 150)) < 1)
                return s_usage_error("--timesteps: '%s' is not strictly descending integers in 0..%d (at most 150)",
                                     optarg, LF_PARAM_TIMESTEP_MAX);
            req.timesteps = timesteps, req.steps = req.n_timesteps;
            break;
        case 34: {
            lf_precision_t p;
            if (lf_precision_parse(optarg, &p)) return s_usage_error("--precision: '%s' is not f32, bf16 or auto", optarg);
            req.precision = optarg;
            break;
        }
        case ':': return s_usage_error("option '%s' needs a value", argv[optind - 1]);
        default: return s_usage_error("unknown option '%s'", argv[optind - 1]);
        }
        if (rc) return rc;
    }
    if (optind < argc) return s_usage_error("generate: unexpected argument '%s'", argv[optind]);
    if (req.timesteps && req.steps != req.n_timesteps)
        return s_usage_error("generate: --steps %d with %d --timesteps (one per step)", req.steps, req.n_timesteps);
    if (have_switch && !req.refiner_path) return s_usage_error("generate: --refiner-switch-at needs --refiner");
    if (!model) return s_usage_error("generate: -m MODEL is required");
    if (!req.prompt) return s_usage_error("generate: -p PROMPT is required");
    if (!outp) return s_usage_error("generate: -o OUT.png is required");
    if (have_denoise && !init) return s_usage_error("generate: --denoise needs --init-image");
    if (req.refiner_path && !s_exists(req.refiner_path)) return s_runtime_error("%s: no such file or folder", req.refiner_path);
    if (init && req.denoise <= 0.0) return s_usage_error("--denoise must be > 0 for img2img");
    if (req.width % 8 || req.height % 8)
        return s_usage_error("size %dx%d: width and height must be multiples of 8", req.width, req.height);
    if (!s_exists(model)) return s_runtime_error("%s: no such file or folder", model);
    if (vae && !s_exists(vae)) return s_runtime_error("%s: no such file", vae);
    if (taesd && !s_exists(taesd)) return s_runtime_error("%s: no such file", taesd);
    if (s_check_writable(outp)) return S_EXIT_RUNTIME;

    uint8_t *init_buf = NULL;
    size_t init_len = 0;
    if (init && s_read_file(init, &init_buf, &init_len, LF_IMAGE_DEFAULT_MAX_BYTES)) return S_EXIT_RUNTIME;
    req.init_image = init_buf;
    req.init_image_len = init_len;

    char err[512] = "";
    lf_engine_t *e = NULL;
    /* LoRA folders: --lora-dir, else lora/ and Lora/ beside the model (a
     * models/ folder laid out as the worker's). */
    char dirs[8300];
    if (!lora_dirs) {
        const char *sl = strrchr(model, '/');
        int dl = sl ? (int)(sl - model) : 1;
        const char *d = sl ? model : ".";
        snprintf(dirs, sizeof dirs, "%.*s/lora:%.*s/Lora", dl, d, dl, d);
        lora_dirs = dirs;
    }
    lf_engine_opts_t eo = {.device = device, .n_threads = threads, .vocab_path = vocab, .lora_dirs = lora_dirs,
                           .weights = weights};
    int rc = lf_engine_new(&eo, &e, err, sizeof err);
    if (rc) {
        free(init_buf);
        return s_runtime_error("%s", err);
    }
    lf_engine_load_opts_t lopts = {.vae_path = vae, .taesd_path = taesd};
    if ((rc = lf_engine_load(e, model, &lopts)) != 0) {
        rc = s_runtime_error("%s", lf_engine_errstr(e));
        goto done;
    }
    s_bar_t bar = {.tty = isatty(STDERR_FILENO)};
    lf_engine_result_t res = {0};
    if ((rc = lf_engine_generate(e, &req, s_progress, &bar, NULL, &res)) != 0) {
        if (bar.tty && bar.last) fputc('\n', stderr);
        rc = s_runtime_error("%s", lf_engine_errstr(e));
        goto done;
    }
    for (size_t i = 0; i < res.n_images && rc == 0; i++) {
        char name[4096];
        s_out_name(outp, i, name, sizeof name);
        rc = s_write_file(name, res.images[i].png, res.images[i].png_len);
        if (rc == 0) printf("%s (seed %llu)\n", name, (unsigned long long)res.images[i].seed);
    }
    if (res.warnings) fprintf(stderr, "warning: %s\n", res.warnings);
    if (rc == 0 && req.precision) fprintf(stderr, "precision: %s\n", res.precision);
    if (rc == 0 && req.cache.kind != LF_STEPCACHE_NONE)
        fprintf(stderr, "step caching: %d full denoiser evaluations, %d with the cached part\n",
                res.model_calls_full, res.model_calls_cached);
    lf_engine_result_clear(&res);
done:
    lf_engine_destroy(&e);
    free(init_buf);
    return rc;
}

/* ---- tokenize ---------------------------------------------------------- */

static const char *s_default_vocab(char *buf, size_t len)
{
    const char *env = getenv("LF_ASSETS_DIR");
    snprintf(buf, len, "%s/clip/bpe_simple_vocab_16e6.txt.gz", env && *env ? env : LF_ASSETS_DEFAULT);
    return buf;
}

static int s_cmd_tokenize(int argc, char **argv)
{
    static const struct option lo[] = {{"vocab", required_argument, NULL, 'v'}, {NULL, 0, NULL, 0}};
    const char *vocab = NULL;
    optind = 0;
    int c;
    while ((opterr = 0, c = getopt_long(argc, argv, ":", lo, NULL)) != -1) {
        if (c == 'v') vocab = optarg;
        else if (c == ':') return s_usage_error("option '%s' needs a value", argv[optind - 1]);
        else return s_usage_error("unknown option '%s'", argv[optind - 1]);
    }
    if (optind != argc - 1) return s_usage_error("tokenize: expected exactly one TEXT argument");
    char buf[4096];
    if (!vocab) vocab = s_default_vocab(buf, sizeof buf);
    if (!s_exists(vocab))
        return s_runtime_error("%s: no CLIP merges file (run tools/fetch_assets.sh or pass --vocab)", vocab);
    lf_clip_tokenizer_t *tok = NULL;
    char err[512];
    if (lf_clip_tokenizer_load(&tok, vocab, err, sizeof err)) return s_runtime_error("%s", err);
    const char *text = argv[optind];
    int n = lf_clip_tokenizer_encode(tok, text, NULL, 0);
    int32_t *ids = n >= 0 ? malloc(((size_t)n + 1) * sizeof *ids) : NULL;
    if (!ids) {
        lf_clip_tokenizer_destroy(&tok);
        return s_runtime_error("cannot tokenize: %s", lf_strerror(n < 0 ? n : LF_ENOMEM));
    }
    lf_clip_tokenizer_encode(tok, text, ids, n);
    printf("%d", LF_CLIP_BOS);
    for (int i = 0; i < n; i++) printf(" %d", ids[i]);
    printf(" %d\n", LF_CLIP_EOS);
    free(ids);
    lf_clip_tokenizer_destroy(&tok);
    return 0;
}

/* ---- sigmas / noise ---------------------------------------------------- */

static int s_cmd_sigmas(int argc, char **argv)
{
    static const struct option lo[] = {{"scheduler", required_argument, NULL, 's'},
                                       {"steps", required_argument, NULL, 'n'},
                                       {NULL, 0, NULL, 0}};
    const char *sched = NULL;
    long steps = -1;
    optind = 0;
    int c, rc;
    while ((opterr = 0, c = getopt_long(argc, argv, ":", lo, NULL)) != -1) {
        if (c == 's') sched = optarg;
        else if (c == 'n') {
            if ((rc = s_int("--steps", optarg, 1, 10000, &steps))) return rc;
        } else if (c == ':') return s_usage_error("option '%s' needs a value", argv[optind - 1]);
        else return s_usage_error("unknown option '%s'", argv[optind - 1]);
    }
    if (optind < argc) return s_usage_error("sigmas: unexpected argument '%s'", argv[optind]);
    if (!sched || steps < 0) return s_usage_error("sigmas: --scheduler S and --steps N are required");
    lf_scheduler_t kind;
    if (lf_scheduler_parse(sched, &kind))
        return s_usage_error("--scheduler: unknown scheduler '%s' (normal, karras, exponential, "
                             "sgm_uniform, simple, ddim_uniform)",
                             sched);
    lf_schedule_t s;
    lf_schedule_init_sd15(&s);
    double *out = malloc(((size_t)steps + 1) * sizeof *out);
    if (!out) return s_runtime_error("out of memory");
    rc = lf_schedule_sigmas(&s, kind, (int)steps, out);
    if (rc) {
        free(out);
        return s_runtime_error("cannot build the schedule: %s", lf_strerror(rc));
    }
    for (long i = 0; i <= steps; i++) printf("%.9g\n", out[i]);
    free(out);
    return 0;
}

static int s_cmd_noise(int argc, char **argv)
{
    static const struct option lo[] = {{"seed", required_argument, NULL, 's'},
                                       {"shape", required_argument, NULL, 'S'},
                                       {"rng", required_argument, NULL, 'r'},
                                       {NULL, 0, NULL, 0}};
    uint64_t seed = 0;
    int have_seed = 0, rc;
    const char *shape = NULL;
    lf_rng_kind_t kind = LF_RNG_TORCH_CPU;
    optind = 0;
    int c;
    while ((opterr = 0, c = getopt_long(argc, argv, ":", lo, NULL)) != -1) {
        if (c == 's') {
            if ((rc = s_u64("--seed", optarg, &seed))) return rc;
            have_seed = 1;
        } else if (c == 'S') shape = optarg;
        else if (c == 'r') {
            if ((rc = s_rng(optarg, &kind))) return rc;
        } else if (c == ':') return s_usage_error("option '%s' needs a value", argv[optind - 1]);
        else return s_usage_error("unknown option '%s'", argv[optind - 1]);
    }
    if (optind < argc) return s_usage_error("noise: unexpected argument '%s'", argv[optind]);
    if (!have_seed || !shape) return s_usage_error("noise: --seed N and --shape N,C,H,W are required");
    long dims[4];
    int nd = 0;
    const char *p = shape;
    while (nd < 4) {
        char *end;
        errno = 0;
        long d = strtol(p, &end, 10);
        if (end == p || errno || d < 1 || d > 65536) break;
        dims[nd++] = d;
        if (*end == '\0') {
            p = end;
            break;
        }
        if (*end != ',') break;
        p = end + 1;
    }
    if (nd != 4 || *p) return s_usage_error("--shape: '%s' is not N,C,H,W (positive integers)", shape);
    size_t per = (size_t)dims[1] * (size_t)dims[2] * (size_t)dims[3];
    if (per > (size_t)1 << 28 || (size_t)dims[0] * per > (size_t)1 << 28)
        return s_usage_error("--shape: '%s' is too large", shape);
    float *x = malloc(per * sizeof *x);
    if (!x) return s_runtime_error("out of memory");
    /* As the pipeline: image i has its own generator seeded with seed + i. */
    for (long b = 0; b < dims[0]; b++) {
        lf_rng_t rng;
        lf_rng_init(&rng, kind, seed + (uint64_t)b);
        lf_rng_randn(&rng, x, per);
        for (size_t i = 0; i < per; i++)
            printf("%.9g%c", x[i], (i + 1) % (size_t)dims[3] == 0 ? '\n' : ' ');
    }
    free(x);
    return 0;
}

/* ---- inspect ----------------------------------------------------------- */

static int s_cmd_inspect(int argc, char **argv)
{
    if (argc != 2 || argv[1][0] == '-')
        return s_usage_error(argc < 2 ? "inspect: FILE is required" : "inspect: expected exactly one FILE");
    const char *path = argv[1];
    if (!s_exists(path)) return s_runtime_error("%s: no such file", path);
    char err[512] = "", err2[512] = "";
    lf_safetensors_t *st = NULL;
    lf_torchzip_t *tz = NULL;
    int rc = lf_safetensors_open(&st, path, err, sizeof err);
    if (rc) {
        int rc2 = lf_torchzip_open(&tz, path, err2, sizeof err2);
        if (rc2)
            return s_runtime_error("%s: neither safetensors (%s) nor a PyTorch zip checkpoint (%s)", path,
                                   err, err2);
    }
    size_t n = st ? lf_safetensors_count(st) : lf_torchzip_count(tz);
    const char **names = malloc((n ? n : 1) * sizeof *names);
    if (!names) {
        lf_safetensors_destroy(&st);
        lf_torchzip_destroy(&tz);
        return s_runtime_error("out of memory");
    }
    printf("# %s: %s, %zu tensors\n", path, st ? "safetensors" : "pytorch zip", n);
    for (size_t i = 0; i < n; i++) {
        const lf_tensor_info_t *t = st ? lf_safetensors_at(st, i) : lf_torchzip_at(tz, i);
        names[i] = t->name;
        printf("%s %s [", t->name, lf_dtype_name(t->dtype));
        for (int d = 0; d < t->ndim; d++) printf(d ? ", %lld" : "%lld", (long long)t->shape[d]);
        printf("]\n");
    }
    printf("family: %s\n", lf_cli_family(names, n));
    free(names);
    lf_safetensors_destroy(&st);
    lf_torchzip_destroy(&tz);
    return 0;
}

/* ---- main -------------------------------------------------------------- */

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(s_usage, stderr);
        return S_EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
        fputs(s_usage, stdout);
        return 0;
    }
    if (!strcmp(cmd, "--version")) {
        printf("lightfarm-engine %s\n", LF_VERSION_STRING);
        return 0;
    }
    static const struct {
        const char *name;
        int (*fn)(int, char **);
    } cmds[] = {{"generate", s_cmd_generate}, {"tokenize", s_cmd_tokenize}, {"sigmas", s_cmd_sigmas},
                {"noise", s_cmd_noise},       {"decode", lf_cli_decode},    {"inspect", s_cmd_inspect}};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        if (!strcmp(cmd, cmds[i].name)) {
            int rc = cmds[i].fn(argc - 1, argv + 1);
            fflush(stdout);
            return rc;
        }
    return s_usage_error("unknown command '%s'", cmd);
}
