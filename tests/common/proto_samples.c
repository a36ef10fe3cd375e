/* proto_samples: fully-populated messages for tests and the fuzz corpus. */
#include "proto_samples.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static char *s_dup(const char *s) { return strdup(s); }

static void s_bytes(lf_bytes_t *b, const char *tag, size_t n) {
    b->data = malloc(n);
    b->len = n;
    for (size_t i = 0; i < n; i++) b->data[i] = (uint8_t)(tag[i % strlen(tag)] + i);
}

static void s_params(lf_job_params_t *p) {
    p->model = s_dup("lf-diagnostic");
    p->mode = s_dup("img2img");
    p->prompt = s_dup("a lighthouse at dusk, \xc3\xa9t\xc3\xa9 \xe2\x98\x80");
    p->negative_prompt = s_dup("blurry");
    p->sampler = s_dup("euler_a");
    p->scheduler = s_dup("karras");
    p->init_image = s_dup("0190a1b2c3d4e5f60718293a4b5c6d7e");
    p->rng = s_dup("philox");
    p->width = 768;
    p->height = 512;
    p->steps = 30;
    p->batch_size = 2;
    p->clip_skip = 2;
    p->step_delay_ms = 5;
    p->cfg_scale = 7.5;
    p->denoise = 0.625;
    p->seed = 4294967295LL; /* the largest seed the table allows */
    const lf_param_def_t *lo = &lf_params_table()[LF_P_loras];
    lf_param_loras_add(p, lo, "style/ink \xc3\xa9", 0.75, NAN);
    lf_param_loras_add(p, lo, "detail", -1.5, 0.25);
}

static void s_caps(lf_worker_caps_t *c) {
    c->host = s_dup("gpu-box-1");
    c->pid = 4242;
    c->device_kind = s_dup("cuda");
    c->device_name = s_dup("NVIDIA H100");
    c->memory_bytes = 80ull << 30;
    c->max_pixels = 2048ull * 2048ull;
    c->n_models = 2;
    c->models = calloc(2, sizeof *c->models);
    c->models[0].name = s_dup("lf-diagnostic");
    c->models[0].kind = s_dup("diagnostic");
    c->models[1].name = s_dup("sd15-base");
    c->models[1].kind = s_dup("sd15");
    c->models[1].resolution = 512; /* models[0] has none: the key is optional */
    c->models[1].preview = s_dup("approx"); /* so has the preview kind */
    c->models[1].inpainting = true;                 /* and an inpainting UNet */
    /* Recommended settings (a Lightning-style manifest's); CFG 0 is said. */
    c->models[1].defaults = (lf_model_defaults_t){.steps = 4, .has_cfg = true, .cfg_scale = 0.0,
                                                  .sampler = s_dup("euler"), .scheduler = s_dup("sgm_uniform"),
                                                  .width = 1024, .height = 768, .timesteps = s_dup("999,500")};
    /* An SDXL base with its refiner resident next to it, and a separate VAE. */
    c->n_resident = 2;
    c->resident = calloc(2, sizeof *c->resident);
    c->resident[0] = s_dup("sd15-base");
    c->resident[1] = s_dup("sdxl-refiner");
    c->n_vaes = 1;
    c->vaes = calloc(1, sizeof *c->vaes);
    c->vaes[0] = s_dup("sdxl-vae-fp16-fix");
    /* Its family (one entry without kind or channels: both optional). */
    c->n_vae_info = 2;
    c->vae_info = calloc(2, sizeof *c->vae_info);
    c->vae_info[0] = (lf_vae_info_t){.name = s_dup("sdxl-vae-fp16-fix"), .kind = s_dup("sdxl"), .latent = 4};
    c->vae_info[1] = (lf_vae_info_t){.name = s_dup("old")};
    /* LoRA files (one without alias or hash: both keys optional) and the set merged now. */
    c->n_loras = 2;
    c->loras = calloc(2, sizeof *c->loras);
    c->loras[0].name = s_dup("ink");
    c->loras[0].alias = s_dup("inky");
    c->loras[0].path = s_dup("styles/ink.safetensors");
    c->loras[0].defaults = (lf_model_defaults_t){.steps = 8, .has_cfg = true, .cfg_scale = 1.0,
                                                 .scheduler = s_dup("sgm_uniform"), .has_weight = true,
                                                 .weight = 0.8};
    c->loras[0].hash = s_dup("4a0e5c2b9d71f3e8a6b0c4d2e9f1a3b5c7d9e0f2a4b6c8d0e2f4a6b8c0d2e4f6");
    c->loras[1].name = s_dup("detail");
    c->loras[1].path = s_dup("detail.pt");
    c->lora_set = s_dup("ink:0.75:0.75");
    c->precision = s_dup("bf16");
    c->batch_max = 4;
    c->batched = 7;
    c->threads = 6;
    c->pinning = s_dup("threads");
    c->cpus = s_dup("0-5");
    c->n_upscalers = 2;
    c->upscalers = calloc(2, sizeof *c->upscalers);
    c->upscalers[0] = s_dup("4x-UltraSharp");
    c->upscalers[1] = s_dup("RealESRGAN_x4plus");
    c->n_ad_models = 2;
    c->ad_models = calloc(2, sizeof *c->ad_models);
    c->ad_models[0] = s_dup("mediapipe_face_short");
    c->ad_models[1] = s_dup("face_yolov8n.pt");
    c->jobs_done = 17;
}

int lf_test_sample_msg(lf_msg_type_t type, lf_msg_t *m) {
    memset(m, 0, sizeof *m);
    m->type = type;
    m->version = LF_PROTO_VERSION;
    m->priority = LF_PRIO_NORMAL; /* what the decoder fills in for every type */
    switch (type) {
    case LF_MSG_SUBMIT:
        m->req_id = 0x1122334455667788ull;
        m->priority = LF_PRIO_LOW;
        m->idem_key = s_dup("client-key-1");
        m->ttl_s = 600;
        m->max_attempts = 3;
        m->enhance_ms = 30000;
        s_params(&m->params);
        break;
    case LF_MSG_ACCEPTED:
        m->req_id = 7;
        m->job_id = s_dup("0190a1b2c3d4e5f60718293a4b5c6d7e");
        m->position = 12;
        m->duplicate = true;
        m->status = LF_JOB_ENHANCING;
        break;
    case LF_MSG_REPLY:
        m->req_id = 8;
        m->code = -6;
        m->message = s_dup("no such job");
        m->job_id = s_dup("0190a1b2c3d4e5f60718293a4b5c6d7e");
        break;
    case LF_MSG_CANCEL:
        m->req_id = 9;
        m->job_id = s_dup("0190a1b2c3d4e5f60718293a4b5c6d7e");
        break;
    case LF_MSG_READY:
        m->worker_id = s_dup("worker-gpu-box-1-4242");
        m->busy = true; /* reconnecting while it runs a job */
        m->job_id = s_dup("0190a1b2c3d4e5f60718293a4b5c6d7e");
        m->has_assigns = true; /* a new socket: none read yet */
        s_caps(&m->caps);
        break;
    case LF_MSG_ASSIGN:
        m->job_id = s_dup("0190a1b2c3d4e5f60718293a4b5c6d7e");
        m->attempt = 2;
        m->batch = 3; /* the first of a batch of three */
        m->batch_of = s_dup("0190a1b2c3d4e5f60718293a4b5c6d7d"); /* (a later one's field) */
        s_params(&m->params);
        s_bytes(&m->init_image, "\x89PNG", 40);
        break;
    case LF_MSG_PROGRESS:
        m->job_id = s_dup("0190a1b2c3d4e5f60718293a4b5c6d7e");
        m->step = 10;
        m->steps = 30;
        s_bytes(&m->preview, "\xff\xd8jpeg", 24);
        m->worker_id = s_dup("worker-gpu-box-1-4242");
        break;
    case LF_MSG_RESULT:
        m->job_id = s_dup("0190a1b2c3d4e5f60718293a4b5c6d7e");
        m->n_images = 2;
        m->images = calloc(2, sizeof *m->images);
        for (int i = 0; i < 2; i++) {
            s_bytes(&m->images[i].png, "\x89PNG\r\n", 48 + (size_t)i);
            m->images[i].seed = -5 + i;
            m->images[i].width = 64;
            m->images[i].height = 32;
        }
        m->info_json = s_dup("{\"sampler\":\"euler_a\"}");
        m->worker_id = s_dup("worker-gpu-box-1-4242");
        break;
    case LF_MSG_FAILED:
        m->job_id = s_dup("0190a1b2c3d4e5f60718293a4b5c6d7e");
        m->code = -14;
        m->message = s_dup("bad file format: model.safetensors");
        m->worker_id = s_dup("worker-gpu-box-1-4242");
        break;
    case LF_MSG_HEARTBEAT:
        m->worker_id = s_dup("worker-gpu-box-1-4242");
        m->job_id = s_dup("0190a1b2c3d4e5f60718293a4b5c6d7e");
        m->busy = true;
        m->has_assigns = true, m->assigns = 7;
        m->n_jobs = 2; /* a batch: its first job and another, both open */
        m->jobs = calloc(2, sizeof *m->jobs);
        m->jobs[0] = (lf_job_ref_t){s_dup("0190a1b2c3d4e5f60718293a4b5c6d7e"), 1};
        m->jobs[1] = (lf_job_ref_t){s_dup("0190a1b2c3d4e5f60718293a4b5c6d7f"), 2};
        s_caps(&m->caps);
        break;
    case LF_MSG_RESCAN:
        m->req_id = 77;
        m->worker_id = s_dup("worker-gpu-box-1-4242");
        s_caps(&m->caps);
        break;
    case LF_MSG_DISCONNECT:
        m->worker_id = s_dup("worker-gpu-box-1-4242");
        m->message = s_dup("shutting down");
        break;
    case LF_MSG_EVENT:
        m->job_id = s_dup("0190a1b2c3d4e5f60718293a4b5c6d7e");
        m->event = LF_EV_FAILED;
        m->status = LF_JOB_FAILED;
        m->step = 3;
        m->steps = 30;
        s_bytes(&m->preview, "RIFFWEBP", 16);
        m->code = -8;
        m->message = s_dup("lease expired");
        m->worker_id = s_dup("worker-gpu-box-1-4242");
        break;
    case LF_MSG_ENHANCED:
        m->req_id = 78;
        m->job_id = s_dup("0190a1b2c3d4e5f60718293a4b5c6d7e");
        m->prompt = s_dup("a cat on a windowsill, golden hour, highly detailed");
        m->code = -10;
        m->message = s_dup("the LLM endpoint answered HTTP 500");
        break;
    default: return -1;
    }
    return 0;
}
