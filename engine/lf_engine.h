/* lf_engine: the engine's public C interface — load a Stable Diffusion
 * model, generate images from a request, get PNGs with A1111 parameters.
 *
 * A small facade over lf_pipeline (tokenize → encode → sample → decode →
 * PNG) and lf_model (the networks). Everything a caller needs is here; the
 * lower layers' headers stay internal.
 *
 *   lf_engine_t *e = NULL;
 *   char err[256];
 *   if (lf_engine_new(NULL, &e, err, sizeof err)) die(err);
 *   if (lf_engine_load(e, "models/sd15.safetensors", NULL)) die(lf_engine_errstr(e));
 *   lf_engine_request_t req = lf_engine_request_defaults();
 *   req.prompt = "a photo of a cat";
 *   lf_engine_result_t res = {0};
 *   if (lf_engine_generate(e, &req, NULL, NULL, NULL, &res)) die(lf_engine_errstr(e));
 *   write(fd, res.images[0].png, res.images[0].png_len);
 *   lf_engine_result_clear(&res);
 *   lf_engine_destroy(&e);
 *
 * The CLIP merges file is looked up in this order: opts.vocab_path; the
 * model's diffusers tokenizer/ folder (the model folder's, or a tokenizer/
 * folder next to a single-file checkpoint); $LF_ASSETS_DIR/clip/
 * bpe_simple_vocab_16e6.txt.gz; opts.assets_dir, else the build's
 * <repo>/assets, + the same file name (tools/fetch_assets.sh installs it).
 *
 * Errors: functions return 0 or a negative LF_E* code (lf_error.h); the
 * reason for humans, naming the file where there is one, is available from
 * lf_engine_errstr() until the next call. A failing call leaves its outputs
 * untouched, and a failed load leaves no model loaded.
 *
 * Threading: an engine is used by one thread at a time (the model owns its
 * compute graphs). The cancel flag passed to lf_engine_generate may be set
 * from any thread; the progress callback runs on the generating thread.
 *
 * Refiner residency: a request naming a refiner loads it next to the base
 * on first use (the same model ops, no preview decoder). After the job it
 * stays resident while the base's and the refiner's weights (the bytes
 * they take resident: GGUF blocks as stored, quantize-on-load's blocks;
 * models that cannot tell count their file sizes, a diffusers folder its
 * files) fit opts.memory_budget
 * together (0 = no limit), so the next refined job pays no load; when they
 * do not, it is released after the job that used it. A job that needs the
 * room — a base switch whose new base would not fit next to the refiner, a
 * job naming another refiner — releases it first; lf_engine_unload_refiner
 * releases it on demand. One refiner is resident at most. A base whose
 * weights alone exceed the budget is not loaded (LF_ELIMIT): refused by
 * its file sizes before it is read, or (quantized on load) by its resident
 * bytes once loaded.
 *
 * Ownership: strings and buffers in requests are borrowed for the call;
 * results are caller-owned (lf_engine_result_clear); the engine is released
 * with lf_engine_destroy. */
#ifndef LF_ENGINE_H
#define LF_ENGINE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "lf_stepcache.h"

typedef struct lf_engine lf_engine_t;
struct lf_model_ops;
struct lf_detailer_unit; /* engine/pipeline/lf_detailer.h: one ADetailer unit */

typedef struct {
    const char *device;     /* "cpu" (default), "cuda", "cuda:N" */
    int n_threads;          /* CPU threads; 0 = all cores */
    const char *vocab_path; /* CLIP merges file; NULL = look up (see above) */
    const char *assets_dir; /* NULL = $LF_ASSETS_DIR, else the build's <repo>/assets */
    int vae_tile;           /* VAE tile in latent pixels (overlap 1/4); -1 = whole image always;
                             * 0 = automatic: tiles of 64 for images over 768x768 pixels, so
                             * that 1024x1024 and larger decode in bounded memory */
    /* Bytes the base model and the refiner may hold together (see "Refiner
     * residency" above); 0 = no limit. */
    uint64_t memory_budget;
    /* The networks. NULL = the real ones (lf_model.h). Tests inject a test
     * double here; nothing else should. Borrowed (static). */
    const struct lf_model_ops *model_ops;
    /* Folders of LoRA files, ':'-separated, searched with their subfolders
     * (the worker passes "<models>/lora:<models>/Lora"); NULL = none. */
    const char *lora_dirs;
    /* Folders of upscaler models (Hires-Fix hr_upscaler names), ':'-separated
     * (the worker passes "<models>/upscale_models:<models>/ESRGAN"); NULL =
     * none: only the built-in upscalers. */
    const char *upscaler_dirs;
    /* Quantize-on-load (sd.cpp's --type): "q8_0", "q6_k", "q5_k", "q5_1",
     * "q5_0", "q4_k", "q4_1" or "q4_0" quantizes the diffusion network's
     * (UNet's, Flux transformer's) linear layers as models load
     * (less memory; CPU backend); NULL, "" or "none": weights as stored.
     * lf_engine_new refuses another name (LF_EINVAL, naming it in err). */
    const char *weights;
    /* ADetailer's ultralytics YOLO models (face_yolov8n.pt, person_yolov8s-seg.pt,
     * ... and .safetensors conversions), as the extension's models/adetailer
     * (the worker passes "<models>/adetailer"); NULL = none. */
    const char *adetailer_dir;
    /* Compute precision of requests that name none: "f32" (NULL, the
     * reference), "bf16" or "auto" (lf_backend.h); another word is LF_EINVAL. */
    const char *precision;
    /* Pre-packed weights (lf_backend.h, lf_backend_set_pack): "file",
     * "memory", "off" or "auto" (NULL: $LF_WEIGHT_PACK, else auto). auto is
     * file where pack_dir is on a disk (the bf16 step's speed with streaming
     * memory: docs/PERFORMANCE.md), else memory where the loaded model's
     * weights fit memory_budget twice (the copies counted at the weights'
     * size; no budget: always), else off. Another word is LF_EINVAL. */
    const char *pack;
    /* The file mode's directory (the worker passes LF_PACK_DIR); NULL:
     * $LF_PACK_DIR, else $TMPDIR, else /var/tmp. */
    const char *pack_dir;
} lf_engine_opts_t;

/* A LoRA for a request (A1111: <lora:name:te_weight:unet_weight>). */
typedef struct {
    const char *name;  /* A1111's name (the file's stem), its alias (ss_output_name) or its path
                          under a LoRA folder without the extension ("sub/name") */
    double weight;     /* UNet multiplier */
    double te_weight;  /* text encoder multiplier; NAN = weight */
} lf_engine_lora_t;

typedef struct {
    const char *name;       /* model name for the infotext; NULL = file name without extension */
    const char *vae_path;   /* separate VAE file (overrides the checkpoint's); may be NULL */
    const char *vae_name;   /* its name for the infotext ("VAE: name"); NULL = file name without extension */
    const char *taesd_path; /* TAESD decoder for previews; NULL = the approx preview */
    int prediction_v;       /* 1: v-prediction when the checkpoint does not say */
    /* A model assembled from parts. A path ending in ".model.json" is read
     * as a manifest (engine/models/lf_manifest.h: the UNet, text encoders,
     * VAE and prediction, each part checked from its tensors; errors name
     * the manifest, the part and the file), which gives these. Otherwise,
     * when text_paths is set, path is a UNet-only file (original or diffusers
     * key layout) and these are its other parts: the text encoders' sources
     * (checkpoints, diffusers folders or encoder files; borrowed) and the
     * model's own VAE (vae_path, and a request's VAE, still override it). */
    const char *const *text_paths;
    size_t n_text_paths;
    const char *parts_vae_path;
} lf_engine_load_opts_t;

typedef struct {
    const char *prompt;      /* A1111 syntax: (x:1.2), [x], BREAK; NULL = "" */
    const char *negative;    /* NULL = "" */
    const char *sampler;     /* ComfyUI or A1111 name ("euler", "Euler a", "dpmpp_2m"...); NULL = "euler" */
    const char *scheduler;   /* "normal", "karras", "exponential", "sgm_uniform", "simple"; NULL = "normal" */
    int steps;               /* default 20 */
    double cfg;              /* default 7; 1 disables the negative prompt */
    uint64_t seed;           /* image i of a batch uses seed + i */
    int width, height;       /* multiples of 8; default 512 */
    int batch;               /* images, 1..64; default 1 */
    const char *rng;         /* "cpu" (torch CPU generator, default) | "philox" (A1111 "NV") */
    int clip_skip;           /* 1 (default) = last layer; 2 = penultimate */
    const uint8_t *init_image; /* img2img: PNG/JPEG/WebP bytes; NULL = txt2img */
    size_t init_image_len;
    double denoise;          /* img2img strength (0, 1]; default 0.75 */
    int preview_every;       /* a preview every N steps (not with the last); 0 = none */
    /* LoRAs besides the prompt's <lora:name:te[:unet]> tags (which are cut
     * from the prompt before tokenizing, as A1111 does; the negative prompt
     * is left as written, as A1111 leaves it). Tags first, then these; all
     * stack. The model's weights keep the set after the job (the next job
     * with the same set reuses them; another set restores them exactly).
     * The infotext shows the prompt as given plus a <lora:name:te:unet> tag
     * per entry here, and "Lora hashes" (A1111's). */
    const lf_engine_lora_t *loras;
    size_t n_loras;
    /* SDXL size conditioning (other families ignore it); 0 = A1111's
     * default: original = target = the image size, crop 0,0. */
    int orig_width, orig_height, crop_top, crop_left, target_width, target_height;
    /* SDXL refiner aesthetic scores; 0 = A1111's 6.0 and 2.5. */
    double aesthetic_score, negative_aesthetic_score;
    /* Refiner: a checkpoint file or diffusers folder run for the steps after
     * refiner_switch_at (0 < x < 1; default 0.8) on the base's latent. NULL
     * or "" = none. Loaded on first use and kept resident (see above). */
    const char *refiner_path;
    const char *refiner_name;  /* for the infotext; NULL = file name without extension */
    double refiner_switch_at;
    /* The VAE: NULL = as the model was loaded (lf_engine_load_opts_t), "" =
     * the checkpoint's own, else a VAE file. When it differs from the loaded
     * one the model is reloaded with it (only then). */
    const char *vae_path;
    const char *vae_name;    /* for the infotext; NULL = file name without extension */
    /* Inpainting (img2img with a mask; lf_pipeline.h "Inpainting"), A1111's
     * fields and API defaults: mask PNG/JPEG/WebP (white = repaint; NULL =
     * none), blur 4 px each way, masked content 0 fill (1 original, 2
     * latent noise, 3 latent nothing), "only masked" on with padding 0, no
     * inversion. initial_noise_multiplier (img2img, default 1) scales the
     * first noise; inpainting_mask_weight (default 1) is how much an
     * inpainting UNet's conditioning image hides the masked part. */
    const uint8_t *mask;
    size_t mask_len;
    double mask_blur_x, mask_blur_y;
    int inpainting_fill;
    int inpaint_full_res;
    int inpaint_full_res_padding;
    int inpainting_mask_invert;
    double initial_noise_multiplier;
    double inpainting_mask_weight;
    /* Hires-Fix (A1111's txt2img second pass; lf_pipeline.h), with denoise
     * as its strength. width/height are the first pass's; the images come
     * out at the Hires-Fix size. */
    int enable_hr;
    double hr_scale;          /* used when hr_resize_x == hr_resize_y == 0; default 2 */
    int hr_resize_x, hr_resize_y;
    const char *hr_upscaler;  /* "Latent" ... "Nearest" (A1111's built-ins) or an upscaler model
                                 of opts.upscaler_dirs by file stem; NULL = "Latent" */
    int hr_steps;             /* hr_second_pass_steps; 0 = steps */
    const char *hr_sampler;   /* NULL or "" = sampler */
    const char *hr_scheduler; /* NULL or "" = scheduler */
    const char *hr_prompt;    /* NULL or "" = prompt */
    const char *hr_negative;  /* NULL or "" = negative */
    double hr_cfg;            /* 0 = cfg */
    /* ADetailer (lf_detailer.h): units run in order on every image after it
     * is made, each a detector + masked img2img per detection. Detectors:
     * "mediapipe_face_short" / "mediapipe_face_full" (BlazeFace, from
     * <assets>/blazeface/face_detection_{short,full}_range.tflite, loaded on
     * first use and kept) and the files of opts.adetailer_dir by file name
     * (ultralytics YOLOv8/YOLO11 detection or segmentation, lf_yolo.h; seg
     * masks used as the masks; the last few loaded are kept). An unknown
     * model is LF_ENOTFOUND naming it; YOLO-World ("-world") LF_EUNSUPPORTED.
     * The result's steps_run counts the detailer's steps too. */
    const struct lf_detailer_unit *adetailer;
    size_t n_adetailer;
    /* Step caching (FBCache / DeepCache, lf_stepcache.h); zero = none. Bad
     * values: LF_EINVAL naming the field. */
    lf_stepcache_opts_t cache;
    /* Few-step models (lf_pipeline_request_t): the tcd sampler's gamma when
     * has_tcd_gamma (else 0.3), and explicit training timesteps (n_timesteps
     * == steps, strictly descending, 0..999; NULL = the scheduler's). */
    int has_tcd_gamma;
    double tcd_gamma;
    const int *timesteps;
    int n_timesteps;
    /* Flux dev's distilled guidance (Forge's "Distilled CFG Scale"; 0 =
     * 3.5), 0..30; models without a guidance embedding ignore it. */
    double guidance;
    /* Batched jobs (the worker's batches, lf_pipeline.h "rows"): n_rows > 0
     * runs these rows in one UNet batch with the rest of this request's
     * settings; their prompt / negative / seed / batch replace the
     * request's, and row j's images follow row j-1's, each byte for byte
     * the image the row alone makes. Each row's <lora:...> tags must make
     * the same LoRA set (with loras). LF_EUNSUPPORTED (errstr says why)
     * for what cannot run batched (img2img, Hires-Fix, a refiner, step
     * caching, ADetailer, prompts of different chunk counts, different
     * LoRA sets): the caller runs those jobs one by one. */
    const struct lf_engine_row *rows;
    size_t n_rows;
    /* "f32", "bf16" or "auto"; NULL = the engine's (opts.precision). bf16
     * and auto run the UNet's matrix products in bf16 where the backend has them
     * (CPU: AVX512_BF16; CUDA: sm_80+, also attention; f16 on sm_70/75), else
     * f32; the result says which ran. Another word:
     * LF_EINVAL naming the field. */
    const char *precision;
} lf_engine_request_t;

/* One job of a batch (lf_engine_request_t.rows); strings borrowed. */
typedef struct lf_engine_row {
    const char *prompt;   /* NULL = "" */
    const char *negative; /* NULL = "" */
    uint64_t seed;        /* image i of the row uses seed + i */
    int batch;            /* 1..64; 0 means 1 */
    /* The row's own progress (NULL = none; lf_engine_progress_fn's form),
     * called with lf_engine_generate's after each step, with the preview of
     * the row's first image (what the row alone would preview; the
     * generate-level callback's is the batch's first image). */
    void (*progress)(void *ud, int step, int steps, const uint8_t *preview, size_t preview_len);
    void *progress_ud;
} lf_engine_row_t;

/* The ADetailer models this engine can run (lf_engine_request_t.adetailer):
 * writes up to max names into names and returns how many exist: the
 * BlazeFace names whose files are in the assets folder, then the .pt /
 * .pth / .safetensors files of opts.adetailer_dir (sorted; YOLO-World files
 * left out). Names are borrowed from the engine until the next call. */
int lf_engine_adetailer_models(lf_engine_t *self, const char **names, int max);
/* The same without an engine (a worker's caps): assets_dir as
 * lf_engine_opts_t's. *names caller owns (each string and the array). 0 or
 * LF_ENOMEM. */
int lf_engine_list_adetailer(const char *assets_dir, const char *adetailer_dir, char ***names, size_t *n);

/* The defaults above (prompt empty, seed 0). */
lf_engine_request_t lf_engine_request_defaults(void);

typedef struct {
    uint8_t *png;     /* owned: PNG with the A1111 "parameters" text chunk */
    size_t png_len;
    char *infotext;   /* owned: that parameters text */
    uint64_t seed;
    int width, height;
} lf_engine_image_t;

typedef struct {
    lf_engine_image_t *images; /* owned, n_images = batch */
    size_t n_images;
    int steps_run;             /* sampler steps run (img2img runs fewer) */
    int model_calls_full;      /* denoiser evaluations of the whole network */
    int model_calls_cached;    /* ... that reused a cached part (step caching) */
    const char *precision;     /* static: "f32", "bf16" or "f16" (CUDA sm_70/75), the arithmetic that ran */
    char *warnings;            /* owned, NULL when none: LoRA tensors not applied (by file and
                                  tensor name, with the reason), extra-network tags skipped */
} lf_engine_result_t;

/* step is 1-based of steps; preview is a PNG or NULL, borrowed for the call. */
typedef void (*lf_engine_progress_fn)(void *ud, int step, int steps, const uint8_t *preview,
                                      size_t preview_len);

/* What `device` ("cpu", "cuda", "cuda:N"; lf_device.h) is, without starting
 * a backend: for a GPU its name and total memory (what a worker advertises
 * in /v1/workers). 0; on failure name receives the reason: LF_EINVAL (bad
 * device), LF_EUNSUPPORTED (no CUDA in this build), LF_ECUDA (no usable GPU),
 * LF_ENOTFOUND (no GPU with that ordinal). For "cpu": LF_EUNSUPPORTED (the
 * caller describes the machine). Thread-safe. */
int lf_engine_device_info(const char *device, char *name, size_t namelen, uint64_t *memory_bytes);

/* A new engine (no model yet). opts may be NULL. Returns 0 and *out (caller
 * owns), or LF_EINVAL (bad device) / LF_EUNSUPPORTED (CUDA not built in) /
 * LF_ECUDA (no usable GPU) / LF_ENOTFOUND (no GPU with that ordinal) /
 * LF_ENOMEM with a reason in err. */
int lf_engine_new(const lf_engine_opts_t *opts, lf_engine_t **out, char *err, size_t errlen);
/* Destroys the engine and its model. Accepts NULL; sets *self_p NULL. */
void lf_engine_destroy(lf_engine_t **self_p);

/* Loads a .safetensors / .ckpt checkpoint or a diffusers folder, replacing
 * the loaded model (which is unloaded first), and the CLIP tokenizer if not
 * loaded yet. opts may be NULL. Errors: LF_EIO, LF_EFORMAT, LF_EUNSUPPORTED,
 * LF_ENOTFOUND (no CLIP merges file), LF_ENOMEM; reason in errstr. */
int lf_engine_load(lf_engine_t *self, const char *path, const lf_engine_load_opts_t *opts);
/* The loaded model's name, or NULL (borrowed until the next load). */
const char *lf_engine_model_name(const lf_engine_t *self);
/* "sd15", ... of the loaded model, or NULL. */
const char *lf_engine_model_family(const lf_engine_t *self);
/* The live previews the loaded model gives (static string): "taesd" (a
 * TAESD decoder was loaded with it), "approx" (a linear latent-to-RGB map
 * fitted from the model's own VAE decoder on the first preview; every model
 * has one), "none"; NULL when no model is loaded. */
const char *lf_engine_preview_kind(const lf_engine_t *self);

/* The family ("sd15", "sdxl", "flux" or "unknown"; static) of a checkpoint
 * file (.safetensors, .ckpt/.pt/.pth), a diffusers folder (its unet/; transformer/: flux) or a
 * manifest (.model.json: its parts checked, its "resolution" if it says),
 * from tensor names only: reads headers, loads no weights, needs no engine.
 * *resolution (may be NULL) gets the image side the model was trained at:
 * the "resolution" of a safetensors file's lf.config metadata, a diffusers
 * folder's unet/config.json sample_size x 8, else the family's (sd15 512,
 * sdxl and flux 1024; 0 when unknown). Errors: LF_EIO (cannot open),
 * LF_EFORMAT (not a weights file), with a reason naming the file in err.
 * Thread-safe. */
int lf_engine_probe(const char *path, const char **family, uint32_t *resolution, char *err, size_t errlen);

/* The input channels of a checkpoint's UNet (its first conv; 9 for an
 * SD1.5 / SDXL inpainting model, 4 otherwise), from the header only; 0 when
 * the file cannot be read or has no such tensor. Thread-safe. */
int lf_engine_probe_unet_inputs(const char *path);

/* The T5 tokenizer (tokenizer.json or spiece.model) of a Flux model whose
 * files carry none (ComfyUI's t5xxl_*.safetensors): the first of, in each
 * folder of the text parts texts[0..n) and of model_path (a file's folder,
 * a manifest's), then <models>/text_encoders/ and <models>/clip/ (models:
 * model_path's folder), then $LF_ASSETS_DIR/t5/ and assets_dir/t5/ (NULL:
 * the build's assets): t5_tokenizer.json, spiece.model, tokenizer.json,
 * t5/tokenizer.json, t5/spiece.model — the first that lf_t5_tokenizer_new
 * reads (a CLIP tokenizer.json there is skipped). Into buf; buf or NULL.
 * Thread-safe. */
const char *lf_engine_find_t5_tokenizer(const char *model_path, const char *const *texts, size_t n,
                                        const char *assets_dir, char *buf, size_t len);
/* The upscaler models of the ':'-separated folders dirs (the worker passes
 * "<models>/upscale_models:<models>/ESRGAN"), by A1111's name (the file
 * stem; a name given twice: the first), in folder then name order; files
 * that are not upscalers are left out. Reads headers only, needs no
 * engine. *names: caller owns (each string and the array; NULL when
 * none). 0 or LF_ENOMEM. Thread-safe. */
int lf_engine_list_upscalers(const char *dirs, char ***names, size_t *n);
/* The bytes of weights a model at path will hold resident, what it counts
 * against opts.memory_budget, from its files' headers without loading it
 * (lf_model_estimate_bytes: GGUF blocks kept as stored, quantize-on-load
 * applied, f16 vectors widened to f32, weights mapped from their files
 * counted as the model's): a checkpoint, a diffusers folder, or a manifest
 * (its parts and its "weights"). opts (may be NULL): a model from parts
 * (text_paths, parts_vae_path; vae_path overrides the VAE) as
 * lf_engine_load takes them; weights: the engine's quantize-on-load type
 * (lf_engine_opts_t.weights; NULL = none; a manifest's own wins). Files
 * that are not weights files lf_model reads count their sizes (a diffusers
 * folder: its files); 0 when path cannot be read. lf_engine_load refuses
 * (LF_ELIMIT, the sizes in errstr) a base larger than the budget on its
 * own. Thread-safe. */
uint64_t lf_engine_model_bytes(const char *path, const lf_engine_load_opts_t *opts, const char *weights);

/* Generates req->batch images. progress may be NULL; cancel may be NULL.
 * On success fills *out (zeroed on entry). Errors: LF_ESTATE (no model),
 * LF_EINVAL (bad request: reason in errstr), LF_ECANCELED, LF_ENOMEM,
 * LF_EFORMAT / LF_ELIMIT / LF_ETOOBIG (init image), model errors;
 * LoRAs: LF_ENOTFOUND (no such LoRA: errstr names it), LF_EUNSUPPORTED (the
 * model takes none), a bad LoRA file's LF_EIO / LF_EFORMAT (errstr names the
 * file and the layer; the model is left without LoRAs and keeps serving). */
int lf_engine_generate(lf_engine_t *self, const lf_engine_request_t *req,
                       lf_engine_progress_fn progress, void *ud, const atomic_bool *cancel,
                       lf_engine_result_t *out);
void lf_engine_result_clear(lf_engine_result_t *res);

/* An image through an upscaler (A1111's extras upscale). */
typedef struct {
    const uint8_t *image;  /* PNG / JPEG / WebP bytes */
    size_t image_len;
    const char *upscaler;  /* "None", "Lanczos", "Nearest" or an upscaler model of
                              opts.upscaler_dirs (file stem); NULL = "Lanczos" */
    double scale;          /* A1111's "scale by" (width == height == 0); 0 = 4 */
    int width, height;     /* A1111's "scale to": scale to cover, then centre-crop */
} lf_engine_upscale_request_t;

/* Runs req as A1111's postprocessing upscale (Upscaler.upscale: the
 * upscaler until the image covers floor(side * scale / 8) * 8, LANCZOS to
 * that; "scale to" pastes the result centred on a width x height canvas).
 * One image in *out: a PNG whose "postprocessing" text and infotext are
 * A1111's ("Postprocess upscale by: 2, Postprocess upscaler: name"). Needs
 * no model. Errors: LF_EINVAL (bad request, unknown upscaler: errstr names
 * it), LF_EFORMAT / LF_ELIMIT (the image), LF_ECANCELED, LF_ENOMEM, the
 * upscaler model's errors. */
int lf_engine_upscale(lf_engine_t *self, const lf_engine_upscale_request_t *req, lf_engine_progress_fn progress,
                      void *ud, const atomic_bool *cancel, lf_engine_result_t *out);

/* Where the loaded model's pre-packed weights live (opts.pack as applied):
 * "file", "memory" or "off"; NULL before a model is loaded. Static. */
const char *lf_engine_pack(const lf_engine_t *self);
/* The resident refiner's name, or NULL (borrowed until the next call). */
const char *lf_engine_refiner_name(const lf_engine_t *self);
/* The separate VAE file the base model was loaded with, or NULL for the
 * checkpoint's own (borrowed until the next load or generate). */
const char *lf_engine_vae_path(const lf_engine_t *self);
/* Releases the resident refiner (no-op without one). */
void lf_engine_unload_refiner(lf_engine_t *self);

/* Loads done so far (logs and tests: residency means these do not grow). */
typedef struct {
    unsigned model_loads;   /* base loads, VAE reloads included */
    unsigned refiner_loads;
} lf_engine_stats_t;
void lf_engine_stats(const lf_engine_t *self, lf_engine_stats_t *out);

/* The reason for the last failure (borrowed; "" after a success). */
const char *lf_engine_errstr(const lf_engine_t *self);

#endif
