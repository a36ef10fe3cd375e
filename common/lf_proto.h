/* lf_proto: the lightfarm wire protocol — message structs and the msgpack codec.
 *
 * Every message is ONE ZeroMQ frame holding a msgpack map (after the ROUTER
 * identity frame where there is one; on the broker's PUB socket a first frame
 * carries the topic, the job id). The map always has "v" (protocol version)
 * and "t" (message type name); the other keys depend on the type and are
 * listed in docs/protocol.md. Unknown keys are ignored (forward compatibility
 * within a version); unknown types, wrong key types, missing required keys,
 * truncated or oversized input are rejected with a code and counted.
 *
 * Sockets (defaults; see lf_config.h for the environment variables):
 *   broker ROUTER "frontend" binds tcp port 5555  <- gateways (DEALER)
 *   broker ROUTER "backend"  binds tcp port 5556  <- workers (DEALER)
 *   broker PUB    "events"   binds tcp port 5557  -> gateways (SUB), topic = job id
 *
 * Threading: the codec is pure and reentrant. Ownership: an lf_msg_t owns
 * every pointer inside it (heap, malloc'd); lf_msg_clear() frees them all and
 * zeroes the struct. Encoding never takes ownership of the message. */
#ifndef LF_PROTO_H
#define LF_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lf_params.h"

#define LF_PROTO_VERSION 1
/* Largest message the decoder accepts (results carry PNGs). */
#define LF_PROTO_MAX_BYTES (64u * 1024u * 1024u)
/* Largest string / array counts inside a message. */
#define LF_PROTO_MAX_STR (256u * 1024u)
#define LF_PROTO_MAX_ITEMS 1024u
/* Heartbeat: Paranoid Pirate style. A peer is dead after LIVENESS missed beats. */
#define LF_HEARTBEAT_MS 1000
#define LF_HEARTBEAT_LIVENESS 3

#define LF_MSG_TYPE_LIST(X)                                                    \
    X(SUBMIT, "submit")         /* gateway -> broker: queue a job */           \
    X(ACCEPTED, "accepted")     /* broker -> gateway: job stored, id, pos */   \
    X(REPLY, "reply")           /* broker -> gateway: ok/error for a req */    \
    X(CANCEL, "cancel")         /* gateway -> broker, broker -> worker */      \
    X(READY, "ready")           /* worker -> broker: capabilities, idle */     \
    X(ASSIGN, "assign")         /* broker -> worker: run this job */           \
    X(PROGRESS, "progress")     /* worker -> broker: step, optional preview */ \
    X(RESULT, "result")         /* worker -> broker: PNGs and metadata */      \
    X(FAILED, "failed")         /* worker -> broker: code and message */       \
    X(HEARTBEAT, "heartbeat")   /* both ways, about every second */            \
    X(DISCONNECT, "disconnect") /* both ways: I am leaving */                  \
    X(EVENT, "event")           /* broker PUB -> gateways: job event */     \
    X(RESCAN, "rescan")         /* gateway -> broker -> workers: list the  \
                                   LoRA files again; worker -> broker: done, \
                                   with the new caps; broker -> gateway: a REPLY */ \
    X(ENHANCED, "enhanced")     /* gateway -> broker: an enhancing job's LLM \
                                   answer (prompt, or code + message); REPLY */

typedef enum {
    LF_MSG_NONE = 0,
#define LF__MSG_ENUM(name, str) LF_MSG_##name,
    LF_MSG_TYPE_LIST(LF__MSG_ENUM)
#undef LF__MSG_ENUM
    LF_MSG__COUNT
} lf_msg_type_t;

typedef enum { LF_PRIO_HIGH = 0, LF_PRIO_NORMAL = 1, LF_PRIO_LOW = 2, LF_PRIO__COUNT } lf_priority_t;

typedef enum {
    LF_JOB_QUEUED = 0,
    LF_JOB_RUNNING,
    LF_JOB_DONE,
    LF_JOB_FAILED,
    LF_JOB_CANCELLED,
    LF_JOB_ENHANCING,   /* accepted, its prompt with the gateway's LLM; not yet queued */
    LF_JOB__COUNT
} lf_job_status_t;

/* Event kinds published on the PUB socket (and streamed as SSE). */
typedef enum {
    LF_EV_QUEUED = 0,
    LF_EV_STARTED,
    LF_EV_PROGRESS,
    LF_EV_PREVIEW,
    LF_EV_DONE,
    LF_EV_FAILED,
    LF_EV_CANCELLED,
    LF_EV_ENHANCING,    /* accepted in the enhancing state (LF_JOB_ENHANCING) */
    LF_EV__COUNT
} lf_event_kind_t;

typedef struct {
    uint8_t *data; /* owned */
    size_t len;
} lf_bytes_t;

/* What to generate: lf_job_params_t, declared by the parameter table in
 * lf_params.h (LF_PARAM_LIST). */

/* A model's recommended settings (a manifest's "defaults", a file's
 * metadata: engine/models/lf_manifest.h), which the gateway fills in where
 * a request does not say them. 0 / NULL = not said; cfg_scale is said when
 * has_cfg. Strings owned. */
typedef struct {
    uint32_t steps;
    bool has_cfg;
    double cfg_scale;
    char *sampler;   /* the parameter table's names ("euler", "lcm", ...) */
    char *scheduler; /* ("normal", "sgm_uniform", ...) */
    uint32_t width, height;
    char *timesteps; /* the timesteps row's text ("800"; lf_param_timesteps_parse) */
    bool has_weight; /* a LoRA's recommended weight, when said */
    double weight;
} lf_model_defaults_t;

/* True when d says anything. */
bool lf_model_defaults_any(const lf_model_defaults_t *d);
/* Frees d's strings and zeroes it. Accepts NULL. */
void lf_model_defaults_clear(lf_model_defaults_t *d);
/* Deep copy of src into *dst (overwritten). 0 or LF_ENOMEM (*dst zeroed). */
int lf_model_defaults_copy(lf_model_defaults_t *dst, const lf_model_defaults_t *src);

typedef struct {
    char *name; /* owned */
    char *kind; /* "diagnostic", "sd15", ... owned */
    uint32_t resolution; /* the side (px) the model was trained at, for default sizes; 0 = any/unknown */
    char *preview; /* live previews it gives: "approx", "taesd" (owned; NULL = not said) */
    bool inpainting; /* an inpainting UNet (9 input channels: latent, mask, masked image) */
    lf_model_defaults_t defaults; /* its recommended settings (none said = all zero) */
} lf_model_info_t;

/* A LoRA file a worker has (GET /v1/loras). Strings owned. */
typedef struct {
    char *name;  /* A1111's name: the file's stem */
    char *alias; /* the file's ss_output_name metadata, else the name; may be NULL */
    char *path;  /* relative to the worker's LoRA folder (models/lora or models/Lora) */
    char *hash;  /* A1111's SHA-256 (of the data after the header for .safetensors), hex; may be NULL */
    lf_model_defaults_t defaults; /* settings it recommends (its lf.defaults metadata); none = all zero */
} lf_lora_info_t;

/* A separate VAE file a worker has (models/vae/), as its header says: the
 * latent channels its decoder takes and the family it belongs to
 * (lf_vaefamily). Strings owned. */
typedef struct {
    char *name;      /* as jobs name it (params.vae): the file's stem */
    char *kind;      /* "sd15" | "sdxl" | "flux" | "sd" (4 channels, SD1.x or SDXL: not told
                        apart); NULL = unknown */
    uint32_t latent; /* latent channels (4 SD1.x/SDXL, 16 Flux); 0 = unknown */
} lf_vae_info_t;

/* A worker's capabilities, sent with READY and refreshed by heartbeats. */
typedef struct {
    char *host;
    int32_t pid;
    char *device_kind;   /* "cpu" | "cuda" */
    char *device_name;
    uint64_t memory_bytes;
    uint64_t max_pixels;
    lf_model_info_t *models; /* models this worker can run */
    size_t n_models;
    char **resident;         /* models loaded right now: the base, then an SDXL refiner */
    size_t n_resident;
    char **vaes;             /* separate VAE files it can apply (models/vae/, by name) */
    size_t n_vaes;
    lf_vae_info_t *vae_info; /* their families (any order; a name of vaes without an entry
                                here is of unknown family: older workers send none) */
    size_t n_vae_info;
    uint64_t jobs_done;
    lf_lora_info_t *loras;   /* LoRA files this worker can apply */
    size_t n_loras;
    char *lora_set;          /* the LoRA set merged into the resident model now
                                (lf_lora_set_key), NULL or "" when none */
    char **upscalers;        /* upscaler models it can run (models/upscale_models/, A1111's
                                models/ESRGAN/; by name: the file stem) */
    size_t n_upscalers;
    char **ad_models;        /* ADetailer detectors it can run (mediapipe_face_* when
                                their assets exist, models/adetailer/ files by name) */
    size_t n_ad_models;
    char *precision;         /* jobs' default compute precision in effect: "f32" | "bf16";
                                NULL = not said (f32) */
    uint32_t batch_max;      /* compatible jobs it runs as one batch (LF_BATCH_MAX); 0 or 1 =
                                one at a time */
    uint64_t batched;        /* jobs it ran in batches of two or more (since its start) */
    uint32_t threads;        /* CPU compute threads (LF_THREADS, else its cores / local workers);
                                0 = not said (an older worker) */
    char *pinning;           /* how they are pinned: "none" | "slice" (the process on its cores) |
                                "threads" (each on its own core); NULL = not said */
    char *cpus;              /* the cores they run on, a list such as "0-3,8"; NULL = not said */
} lf_worker_caps_t;

typedef struct {
    lf_bytes_t png;
    int64_t seed;
    uint32_t width, height;
} lf_image_out_t;

/* A job a worker runs, as READY/HEARTBEAT list them (`jobs`). */
typedef struct {
    char *id;
    uint32_t attempt;        /* 1-based; 0 = not said */
} lf_job_ref_t;

/* One message. Which fields matter depends on `type` (see docs/protocol.md);
 * the rest stay zero/NULL. */
typedef struct {
    lf_msg_type_t type;
    uint32_t version;   /* filled by decode; encode always writes LF_PROTO_VERSION */
    uint64_t req_id;    /* gateway correlation id (SUBMIT, CANCEL, ACCEPTED, REPLY) */
    char *job_id;       /* ASSIGN, PROGRESS, RESULT, FAILED, CANCEL, EVENT, ACCEPTED */
    char *worker_id;    /* READY, HEARTBEAT, DISCONNECT from workers; EVENT */

    /* SUBMIT */
    lf_priority_t priority;
    char *idem_key;         /* idempotency key, may be NULL */
    uint32_t ttl_s;         /* queued-job TTL; 0 = broker default */
    uint32_t max_attempts;  /* 0 = broker default */
    lf_job_params_t params; /* SUBMIT, ASSIGN */
    uint32_t enhance_ms;    /* SUBMIT: > 0 = the job starts "enhancing" (the gateway's LLM
                               rewrites its prompt and sends ENHANCED within this many ms;
                               the broker's reaper moves it on some time after) */

    /* ENHANCED: job_id; code 0 with prompt = the enhanced prompt, else code
     * and message = why the original prompt stays */
    char *prompt;

    /* ACCEPTED (also status: QUEUED, or ENHANCING when the gateway should enhance) */
    int64_t position;       /* 0-based position in the queue */
    bool duplicate;         /* idempotency key matched an existing job */

    /* ASSIGN */
    uint32_t attempt;       /* 1-based */
    lf_bytes_t init_image;  /* encoded image bytes for img2img, may be empty */
    lf_bytes_t mask;        /* inpainting mask bytes (white = repaint), may be empty */
    /* A batch (lf_batch.h): the head job's ASSIGN says how many jobs the
     * batch holds (batch > 1, itself included); the others follow at once
     * on the same connection, each with batch_of = the head's job id. */
    uint32_t batch;
    char *batch_of;

    /* PROGRESS, EVENT */
    uint32_t step, steps;
    lf_bytes_t preview;     /* PNG/JPEG/WebP bytes, optional */

    /* RESULT */
    lf_image_out_t *images;
    size_t n_images;
    char *info_json;        /* generation metadata as JSON text */

    /* FAILED, REPLY, EVENT(failed) */
    int32_t code;           /* LF_E* code; 0 in a REPLY = ok */
    char *message;

    /* READY, HEARTBEAT (from workers) */
    lf_worker_caps_t caps;
    bool busy;              /* HEARTBEAT: worker is running job_id */
    uint32_t assigns;       /* ASSIGNs the worker has received on this connection: a
                               broker that sent more knows the report predates its
                               latest ASSIGN (the worker had not seen it yet) */
    bool has_assigns;       /* assigns is said (encode writes it only then; decode sets
                               it when the key is there; older workers leave it out) */
    lf_job_ref_t *jobs;     /* READY, HEARTBEAT: every job of the running batch not answered
                               yet, with its attempt (job_id stays the batch's first, for
                               older brokers); n_jobs 0 = not said (older workers): job_id */
    size_t n_jobs;

    /* EVENT */
    lf_event_kind_t event;
    lf_job_status_t status;
} lf_msg_t;

/* Decoder counters: the caller owns one per socket or per process. */
typedef struct {
    uint64_t ok;
    uint64_t malformed;  /* not msgpack, not a map, wrong key types */
    uint64_t truncated;
    uint64_t oversized;
    uint64_t unknown;    /* unknown message type */
    uint64_t version;    /* unsupported protocol version */
    uint64_t missing;    /* required key absent */
} lf_codec_stats_t;

/* Name of a type ("submit"), or "?" — borrowed, static. */
const char *lf_msg_type_name(lf_msg_type_t t);
const char *lf_priority_name(lf_priority_t p);  /* "high" | "normal" | "low" */
int lf_priority_parse(const char *s, lf_priority_t *out);
const char *lf_job_status_name(lf_job_status_t s); /* "queued", ... */
int lf_job_status_parse(const char *s, lf_job_status_t *out);
const char *lf_event_name(lf_event_kind_t e);      /* "progress", ... */
int lf_event_parse(const char *s, lf_event_kind_t *out); /* LF_EINVAL if unknown */

/* Encode msg into a new buffer. On success *out (caller owns, free()) and
 * *out_len are set. Errors: LF_EINVAL (missing required field), LF_ENOMEM,
 * LF_ETOOBIG. */
int lf_msg_encode(const lf_msg_t *msg, uint8_t **out, size_t *out_len);

/* Decode buf into *out (which must be zeroed or cleared). On failure *out is
 * left cleared and the matching counter in *stats (may be NULL) is bumped.
 * Errors: LF_EPROTO, LF_ETOOBIG, LF_EUNKNOWN, LF_EVERSION, LF_EINVAL. */
int lf_msg_decode(const uint8_t *buf, size_t len, lf_msg_t *out, lf_codec_stats_t *stats);

/* Free everything a message owns and zero it. Accepts NULL. */
void lf_msg_clear(lf_msg_t *msg);

/* Job params alone (the store keeps them as this msgpack blob). */
int lf_params_encode(const lf_job_params_t *p, uint8_t **out, size_t *out_len);
int lf_params_decode(const uint8_t *buf, size_t len, lf_job_params_t *out);
/* Deep copy; dst must be zeroed. */
int lf_params_copy(lf_job_params_t *dst, const lf_job_params_t *src);

/* Worker caps alone (the store keeps them as this msgpack blob). */
int lf_caps_encode(const lf_worker_caps_t *c, uint8_t **out, size_t *out_len);
int lf_caps_decode(const uint8_t *buf, size_t len, lf_worker_caps_t *out);
void lf_caps_clear(lf_worker_caps_t *c);

#endif
