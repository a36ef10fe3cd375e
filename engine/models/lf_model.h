/* lf_model: a diffusion model assembled from parts — text encoder(s),
 * denoiser, VAE and an optional preview decoder — described per family.
 *
 * This is the contract between the networks (CLIP, UNet, VAE, TAESD, built
 * from kernels/ ops) and the pipeline (tokenize → encode → sample → decode).
 * A new family (SDXL, Flux) adds a family description, its networks and a
 * key map; the pipeline code does not change.
 *
 * Families: SD1.x/2.x (one CLIP text encoder) and SDXL (CLIP ViT-L and
 * OpenCLIP ViT-bigG, their penultimate hidden states concatenated, a pooled
 * text embedding and micro-conditioning through the UNet's added
 * embedding; the refiner has the OpenCLIP encoder only), and Flux.1 (dev,
 * schnell: the lf_flux transformer on 2x2-packed 16-channel latents, a
 * flow-matching velocity (LF_PRED_FLOW), CLIP-L's pooled output and T5's
 * hidden states, a VAE with a shift factor; detected from tensor names).
 * A Flux model loads from its transformer file (BFL names, with or without
 * model.diffusion_model.; or diffusers names) with the text encoders and
 * the VAE as parts (opts.text_paths: ComfyUI's clip_l / t5xxl files;
 * opts.vae_path: ae.safetensors), or from a diffusers folder (transformer/,
 * text_encoder/, text_encoder_2/, vae/; tokenizer_2/ names the T5
 * tokenizer). Flux's text: lf_model_encode_text gives CLIP-L's pooled
 * output, lf_model_encode_t5 T5's hidden states (without a T5 part the
 * model loads with a warning and lf_model_encode_t5 is LF_EUNSUPPORTED;
 * a sharded text_encoder_2/ is not read yet). What differs is
 * told by lf_model_desc_t (text_dim, pooled_dim, n_time_ids), so the
 * pipeline passes the extra inputs without knowing the family.
 *
 * Layouts: latents and images are PyTorch NCHW float32 in host memory
 * (x[b][c][y][x]); images are in [-1, 1] (VAE convention). Text conditioning
 * is [batch][tokens][dim] float32.
 *
 * Threading: a model is used by one thread at a time (it owns its backend
 * graphs and activation arenas). Weights stay loaded between calls; no
 * call allocates per step once a shape has been planned (the first call at a
 * new shape plans, later calls reuse). Memory follows the network in use:
 * a call to another network (text encoder, denoiser, VAE) drops the
 * previous one's planned graphs and, on a host backend, the pages of its
 * weights mapped from their file (read again at its next call; not while a
 * LoRA is merged), so that a generation peaks at one network's weights and
 * activations (docs/PERFORMANCE.md, "Memory of a whole generation"). */
#ifndef LF_MODEL_H
#define LF_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "lf_backend.h"
#include "lf_lora_patch.h"
#include "lf_preview.h"
#include "lf_stepcache.h"

typedef enum { LF_FAMILY_UNKNOWN = 0, LF_FAMILY_SD15, LF_FAMILY_SDXL, LF_FAMILY_FLUX } lf_family_t;
/* What the denoiser predicts: the noise (eps), v (Salimans & Ho), or the
 * clean sample x0 itself (diffusers prediction_type="sample"; ComfyUI's
 * "x0": SDXL-Lightning's 1-step UNet), or a flow-matching velocity (Flux:
 * ComfyUI's CONST model sampling; the latent is x = (1 - sigma) x0 +
 * sigma noise with sigma in [0, 1], the model takes x unscaled and
 * t = sigma, and predicts v = noise - x0, so x0 = x - sigma v; the
 * k-diffusion samplers then run unchanged: Euler's (x - x0) / sigma is v). */
typedef enum { LF_PRED_EPS = 0, LF_PRED_V, LF_PRED_SAMPLE, LF_PRED_FLOW } lf_prediction_t;

typedef struct lf_model lf_model_t;

typedef struct {
    lf_backend_t *backend;     /* borrowed; NULL = the CPU backend */
    const char *vae_path;      /* optional separate VAE: a VAE file, a checkpoint holding one
                                  (first_stage_model.*) or a diffusers folder (its vae/);
                                  overrides the checkpoint's */
    /* Assembly from parts (lf_manifest.h): where the text encoders come
     * from instead of the checkpoint — each a single-file checkpoint (its
     * cond_stage_model / conditioner), a diffusers folder (text_encoder/,
     * text_encoder_2/) or one encoder file (HF CLIP names under any prefix,
     * e.g. ComfyUI's clip_l / clip_g, or OpenCLIP names). SDXL wants two
     * encoders: the narrower is CLIP ViT-L, the wider OpenCLIP ViT-bigG
     * (told by tensor shapes, never file names). Borrowed; n = 0: none. */
    const char *const *text_paths;
    size_t n_text_paths;
    const char *taesd_path;    /* optional TAESD-family preview decoder (.safetensors/.pth) */
    int weight_type;           /* lf_type_t to keep weights in: -1 = as stored (f16 stays f16) */
    int weight_quant;          /* 0, or a block lf_type_t (LF_TYPE_Q8_0, ...; lf_quant_can_quantize):
                                  the diffusion network's linear layers quantized on load (sd.cpp's
                                  --type), its other weights as stored; CPU backend only */
    lf_prediction_t prediction;/* used when the checkpoint does not say (default eps): the
                                  checkpoint says in a diffusers folder's scheduler config,
                                  lf.config's "prediction_type" or the safetensors metadata
                                  "modelspec.prediction_type" */
} lf_model_opts_t;

/* What the pipeline needs to know about a loaded model. */
typedef struct {
    lf_family_t family;
    lf_prediction_t prediction;
    int latent_channels;       /* 4 for SD1.5 and SDXL */
    int concat_channels;       /* extra denoiser input channels after the latent: 0, or
                                  latent_channels + 1 for an inpainting UNet (9 in: latent,
                                  mask, masked-image latent, as diffusers'
                                  StableDiffusionInpaintPipeline and A1111's c_concat) */
    int vae_scale;             /* 8: pixels per latent */
    float scaling_factor;      /* 0.18215 for SD1.5, 0.13025 for SDXL (or the checkpoint's) */
    int text_dim;              /* 768 for SD1.5; 2048 for SDXL (768 + 1280), 1280 refiner */
    int text_tokens;           /* 77 */
    int pooled_dim;            /* SDXL: pooled text embedding size (1280); 0 = none */
    int n_time_ids;            /* SDXL micro-conditioning numbers the denoiser takes: 6 (base:
                                  orig h, w, crop top, left, target h, w), 5 (refiner: orig
                                  h, w, crop top, left, aesthetic score); 0 = none */
    int has_preview;           /* 1: lf_model_preview works (every model: approx or TAESD) */
    lf_preview_kind_t preview; /* LF_PREVIEW_TAESD when a TAESD decoder is loaded, else
                                  LF_PREVIEW_APPROX (the linear map fitted from this VAE) */
    const char *tokenizer_dir; /* diffusers tokenizer/ folder if the model has one, else NULL */
    const char *t5_tokenizer;  /* Flux: a diffusers folder's tokenizer_2/tokenizer.json (else
                                  its spiece.model) for lf_t5_tokenizer_new, else NULL (the
                                  caller's default T5 tokenizer) */
    /* Flux (LF_PRED_FLOW). The VAE takes z / scaling_factor + shift_factor. */
    float shift_factor;        /* 0.1159 for Flux's VAE; 0 for SD1.5 / SDXL */
    int guidance_embed;        /* 1: the denoiser takes a distilled guidance (FLUX.1-dev), the
                                  last number of vec (after the pooled embedding) */
    int flow_dynamic;          /* flow sigmas shifted by the image's token count (dev: mu from
                                  lf_schedule_flow_mu), else by flow_shift (schnell: 1) */
    float flow_shift;
} lf_model_desc_t;

/* Family from tensor names only (never the file name): inspect-friendly. */
lf_family_t lf_model_detect_family(const char *const *names, size_t n);
const char *lf_family_name(lf_family_t f); /* "sd15", "sdxl", "flux", "unknown" */
/* Prediction type from its diffusers / SAI model-spec / ComfyUI name
 * (case-insensitive): "epsilon" or "eps"; "v_prediction", "v" or
 * "v-prediction"; "sample" or "x0"; "flow" or "const" (ComfyUI's flow
 * model sampling). Returns 0 or LF_ENOTFOUND (*out untouched). */
int lf_prediction_parse(const char *name, lf_prediction_t *out);
/* diffusers' name: "epsilon", "v_prediction", "sample"; "flow"; never NULL. */
const char *lf_prediction_name(lf_prediction_t p);

/* Load a single-file checkpoint (.safetensors, or .ckpt/.pt via the
 * restricted torch-zip reader) or a diffusers folder. A single file may
 * also be a UNet alone — original/SGM names (model.diffusion_model.*), the
 * same without the prefix (input_blocks.*: ComfyUI's models/unet saves) or
 * diffusers names (down_blocks.*: SDXL-Lightning's *_unet.safetensors) —
 * with its other parts from opts->text_paths and opts->vae_path (a UNet
 * file without text encoders and no text_paths is LF_ENOTFOUND naming the
 * file). Each part's config comes from its own source (lf.config metadata,
 * a diffusers config.json), else from shapes. On failure returns a
 * negative LF_E* code and writes a reason naming the file and, where it
 * applies, the tensor into err. *out: caller owns (lf_model_destroy). */
int lf_model_load(const char *path, const lf_model_opts_t *opts, lf_model_t **out, char *err,
                  size_t errlen);
void lf_model_destroy(lf_model_t **self_p);
const lf_model_desc_t *lf_model_desc(const lf_model_t *self);

/* Text encoder: ids[n_chunks][77] (BOS ... EOS padding, from the tokenizer),
 * weights[n_chunks][77] per-token emphasis (A1111: hidden states multiplied
 * by the weight, then rescaled so the chunk's mean is unchanged; NULL = all
 * 1), clip_skip (1 = last layer, 2 = penultimate + final layer norm, as
 * A1111). out: [n_chunks * 77][text_dim] (chunks concatenated).
 * pooled: NULL, or [n_chunks][pooled_dim] (each chunk's pooled embedding;
 * untouched when pooled_dim is 0).
 * SDXL: each encoder's penultimate hidden state WITHOUT the final layer
 * norm (diffusers hidden_states[-2]; clip_skip is ignored, as A1111 does
 * for SDXL by default), CLIP-L's then OpenCLIP's per token; emphasis per
 * encoder (A1111); OpenCLIP sees the ids after each chunk's first EOS (its
 * largest id) as 0 (A1111's id_pad, diffusers' tokenizer_2 pad "!"); the
 * pooled embedding is OpenCLIP's final-norm'd last layer at the EOS through
 * its text projection.
 * Flux: pooled only (out may be NULL and is untouched): CLIP-L's final-norm'd
 * last layer at the EOS (CLIPTextModel's pooler_output, FluxPipeline's
 * pooled_prompt_embeds); weights and clip_skip are ignored. */
int lf_model_encode_text(lf_model_t *self, const int32_t *ids, const float *weights,
                         size_t n_chunks, int clip_skip, float *out, float *pooled);

/* Flux's T5 encoder: ids [n][text_tokens] (lf_t5_tokenizer_encode with
 * n = text_tokens: 512 dev, 256 schnell) -> out [n][text_tokens][text_dim]
 * (T5EncoderModel's last_hidden_state, FluxPipeline's prompt_embeds).
 * LF_EUNSUPPORTED for a model without a T5 encoder, LF_EINVAL for an id
 * outside its vocabulary. */
int lf_model_encode_t5(lf_model_t *self, const int32_t *ids, size_t n, float *out);

/* Denoiser: x [batch][C + concat_channels][h][w] latents (already scaled
 * by the sampler's c_in; an inpainting UNet's extra channels follow each
 * item's latent unscaled), t[batch] timesteps (float, the discrete-schedule
 * index space; LF_PRED_FLOW: sigma in [0, 1]),
 * cond [batch][cond_len][text_dim]. vec: the vector conditioning,
 * [batch][pooled_dim + n_time_ids] (the pooled text embedding, then the
 * time ids as plain numbers), required when n_time_ids > 0 (LF_EINVAL
 * without), ignored (may be NULL) otherwise. Flux: vec [batch][pooled_dim
 * + guidance_embed] (CLIP-L's pooled output, then dev's guidance), always
 * required; h and w even. out: the model output (eps, v or the flow
 * velocity), [batch][C][h][w]. */
int lf_model_denoise(lf_model_t *self, const float *x, int batch, int h, int w, const float *t,
                     const float *cond, int cond_len, const float *vec, float *out);

/* lf_model_denoise with step caching (lf_unet_forward_cached: sc decides,
 * per evaluation, whether the cached part of the network is reused). */
int lf_model_denoise_cached(lf_model_t *self, lf_stepcache_t *sc, const float *x, int batch, int h,
                            int w, const float *t, const float *cond, int cond_len,
                            const float *vec, float *out);
/* The denoiser's resnets and transformer blocks computed so far
 * (lf_unet_blocks_run; tests and benchmarks). */
unsigned long lf_model_blocks_run(const lf_model_t *self);
/* Their floating-point operations (lf_unet_flops_run). */
double lf_model_flops_run(const lf_model_t *self);

/* VAE: z [batch][C][h][w] UNSCALED latents (the caller divides by
 * scaling_factor) -> img [batch][3][h*8][w*8] in [-1, 1]. tile > 0 decodes
 * in tiles of that many latent pixels (with overlap) to bound memory.
 * Activations are f32 on every backend; an SDXL VAE also keeps its weights
 * in f32 (the CUDA matmul rounds activations to the weights' type, and the
 * SDXL VAE overflows f16: A1111's --no-half-vae). A non-finite output is an
 * error (LF_EOVERFLOW), never a black image. */
int lf_model_vae_decode(lf_model_t *self, const float *z, int batch, int h, int w, int tile,
                        float *img);
/* img [batch][3][H][W] in [-1, 1] -> mean [batch][C][H/8][W/8] (unscaled;
 * the latent distribution's mean, as diffusers' .latent_dist.mode()). */
int lf_model_vae_encode(lf_model_t *self, const float *img, int batch, int H, int W, int tile,
                        float *mean);

/* Preview: z [C][h][w] (one image, unscaled latents) -> rgb8, row-major
 * RGB. With a TAESD decoder loaded: its output, [h*8][w*8]. Otherwise the
 * "approx" preview: a linear latent-to-RGB map fitted from this model's own
 * VAE decoder (lf_preview.h) on the first call — a fixed synthetic batch
 * encoded, jittered and decoded at 12×12 latents, its cost logged — applied
 * per latent pixel and shown nearest-neighbour upscaled by
 * lf_preview_upscale (a 32×32 latent gives 128×128). *out_w / *out_h get
 * the size. rgb must hold the larger of the two (h*8*w*8*3 bytes always
 * does). Errors: LF_EINVAL, LF_ENOMEM, the VAE's codes (a failed fit is
 * remembered and returned again without retrying). */
int lf_model_preview(lf_model_t *self, const float *z, int h, int w, uint8_t *rgb, int *out_w,
                     int *out_h);

/* Fits the approx preview now instead of on the first lf_model_preview
 * (nothing to do when it is fitted or a TAESD decoder is loaded). *ms (may
 * be NULL) gets the fit's wall time in milliseconds (0 when nothing ran).
 * Returns 0 or the fit's error code. */
int lf_model_preview_prepare(lf_model_t *self, double *ms);
/* The fitted approx map (borrowed, valid while the model lives), or NULL
 * before the fit or when it failed. */
const lf_preview_map_t *lf_model_preview_map(const lf_model_t *self);

/* LoRAs merged into the resident weights (lf_lora_patch.h): the UNet and
 * text encoder layers of uses[0..n) are merged (SD1.x: lora_te_ /
 * text_encoder.; SDXL: lora_te1_ / text_encoder. on CLIP-L and lora_te2_ /
 * text_encoder_2. on OpenCLIP, q/k/v into its packed in_proj rows; a
 * refiner has only the latter) (W += weight · ΔW in f32,
 * stored in the weight's type); the plain layers come back from the
 * model's own files, which stay mapped (copies of up to LF_LORA_KEEP_MB,
 * default 0, are kept first; a torch-zip checkpoint's are always copied);
 * n == 0 brings back the plain model bit for bit. The same set as the current one writes
 * nothing; another set restores, then merges. info may be NULL (else its
 * warnings are caller-owned). On failure the plain model is resident and err
 * names the file and the layer. Errors: lf_lora_patch_set's, LF_EINVAL. */
int lf_model_set_loras(lf_model_t *self, const lf_lora_use_t *uses, size_t n,
                       lf_lora_patch_info_t *info, char *err, size_t errlen);
/* 1 when the LoRA file at path opens against this model's layers with every
 * tensor used (each names one of its layers, in its shape), else 0 (a file
 * that fails, or leaves tensors unmatched: a LoRA made for another model,
 * such as an SDXL base LoRA on the refiner, whose UNet differs). */
int lf_model_lora_fits(lf_model_t *self, const char *path);

/* The compute precision of the UNet's following calls (denoise,
 * denoise_cached; lf_backend_set_precision: bf16 matrix products where the
 * backend has them); the text encoders and the VAE stay f32, as the backend
 * between calls. Returns the one in effect, f32 or bf16. */
lf_precision_t lf_model_set_precision(lf_model_t *self, lf_precision_t p);

/* Where the backend keeps its pre-packed weight copies from now on
 * (lf_backend_set_pack; dir: the file mode's directory, borrowed); returns
 * the mode in effect. */
lf_pack_t lf_model_set_pack(lf_model_t *self, lf_pack_t p, const char *dir);

/* Bytes the resident weights take: every pool's tensors, in the types
 * they are held in (GGUF blocks as stored, quantize-on-load's blocks, f32
 * where widened). Thread-safe with other readers. */
uint64_t lf_model_weight_bytes(const lf_model_t *self);
/* What lf_model_weight_bytes will say once the model at path is loaded
 * with opts (NULL: as stored, no parts), from the files' headers alone
 * (lf_model_estimate.c: the loaders' rules tensor by tensor; GGUF blocks
 * kept where the networks keep them, weight_quant applied to the
 * denoiser's linear layers, f16 vectors widened, mapped weights counted).
 * path: a checkpoint or denoiser file, or a diffusers folder; opts'
 * text_paths and vae_path are counted in place of the checkpoint's own.
 * 0 and *out, or the error of a file that cannot be opened or read as
 * weights (LF_EIO, LF_EFORMAT, ...). Thread-safe. */
int lf_model_estimate_bytes(const char *path, const lf_model_opts_t *opts, uint64_t *out);

/* A resident weight read back as f32 (n = its element count), by pool name
 * ("unet.….weight", "clip.…"; "clip2.…" for SDXL's second text encoder,
 * whose pool is its own): for tests and tools that check what the
 * networks hold. 0, LF_ENOTFOUND, LF_EINVAL (n differs), LF_ENOMEM, a
 * backend's code. */
int lf_model_weight_f32(const lf_model_t *self, const char *name, float *out, size_t n);

#endif
