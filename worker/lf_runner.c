/* lf_runner: model name -> backend, and the one resident model. See lf_runner.h. */
#include "lf_runner.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lf_error.h"
#include "lf_batch.h"
#include "lf_extranet.h"
#include "lf_log.h"

struct lf_runner {
    lf_runner_env_t env;
    const lf_runner_backend_t **backends; /* as given */
    size_t n_backends;
    lf_model_info_t *models; /* merged list */
    const lf_runner_backend_t **owner; /* backend of models[i] */
    size_t n_models;
    lf_vae_info_t *vae_info; /* separate VAE files the backends can apply, with their families */
    char **vaes; /* their names (borrowed from vae_info) */
    size_t n_vaes;
    char **upscalers; /* upscaler models the backends can run (names) */
    size_t n_upscalers;
    char **ad_models; /* ADetailer detectors the backends can run (names) */
    size_t n_ad_models;
    /* The resident model: index into models, its backend state. */
    long resident; /* -1 = none */
    void *state;
    lf_lora_info_t *loras; /* every backend's, merged */
    size_t n_loras;
    char lora_set[1024];   /* of the last job that ran to the end */
    uint64_t batched;      /* jobs run through run_batch in batches of two or more */
};

uint64_t lf_runner_batched(const lf_runner_t *self) { return self ? self->batched : 0; }

void lf_runner_loras_free(lf_lora_info_t *loras, size_t n) {
    if (!loras) return;
    for (size_t i = 0; i < n; i++) {
        free(loras[i].name), free(loras[i].alias), free(loras[i].path), free(loras[i].hash);
        lf_model_defaults_clear(&loras[i].defaults);
    }
    free(loras);
}

const lf_lora_info_t *lf_runner_loras(const lf_runner_t *self, size_t *n) {
    *n = self->n_loras;
    return self->loras;
}

const char *lf_runner_lora_set(const lf_runner_t *self) { return self->lora_set; }

int lf_runner_rescan_loras(lf_runner_t *self) {
    lf_lora_info_t *all = NULL;
    size_t n_all = 0;
    for (size_t b = 0; b < self->n_backends; b++) {
        const lf_runner_backend_t *be = self->backends[b];
        lf_lora_info_t *ll = NULL;
        size_t nl = 0;
        int rc = be->rescan_loras ? be->rescan_loras(&self->env, self->loras, self->n_loras, &ll, &nl)
                 : be->list_loras ? be->list_loras(&self->env, &ll, &nl)
                                  : 0;
        if (rc) {
            lf_warn("backend %s: cannot list LoRAs: %s", be->name, lf_strerror(rc));
            continue;
        }
        if (!nl) {
            lf_runner_loras_free(ll, nl);
            continue;
        }
        lf_lora_info_t *m = realloc(all, (n_all + nl) * sizeof *m);
        if (!m) {
            lf_runner_loras_free(ll, nl);
            lf_runner_loras_free(all, n_all);
            return LF_ENOMEM;
        }
        memcpy(m + n_all, ll, nl * sizeof *m); /* move the strings */
        free(ll);
        all = m;
        n_all += nl;
    }
    lf_info("LoRA folders listed again: %zu file(s), %zu before", n_all, self->n_loras);
    lf_runner_loras_free(self->loras, self->n_loras);
    self->loras = all;
    self->n_loras = n_all;
    return 0;
}

void lf_runner_output_clear(lf_runner_output_t *out) {
    if (!out) return;
    for (size_t i = 0; i < out->n_images; i++) free(out->images[i].png.data);
    free(out->images);
    free(out->info_json);
    memset(out, 0, sizeof *out);
}

void lf_runner_models_free(lf_model_info_t *models, size_t n) {
    if (!models) return;
    for (size_t i = 0; i < n; i++) {
        free(models[i].name);
        free(models[i].kind);
        free(models[i].preview);
        lf_model_defaults_clear(&models[i].defaults);
    }
    free(models);
}

static long s_find(const lf_runner_t *self, const char *model) {
    if (!model) return -1;
    for (size_t i = 0; i < self->n_models; i++)
        if (!strcmp(self->models[i].name, model)) return (long)i;
    return -1;
}

/* Moves names[0..n) into *list (taking the strings and freeing names),
 * leaving out the ones already there. */
static void s_names_merge(char ***list, size_t *count, char **names, size_t n) {
    for (size_t i = 0; i < n; i++) {
        bool dup = false;
        for (size_t k = 0; k < *count; k++) dup |= !strcmp((*list)[k], names[i]);
        char **nl = dup ? NULL : realloc(*list, (*count + 1) * sizeof *nl);
        if (nl) {
            *list = nl;
            (*list)[(*count)++] = names[i];
        } else {
            free(names[i]);
        }
    }
    free(names);
}

/* Moves the VAEs of list into self's (a name already there keeps the
 * first backend's entry); frees list. False when out of memory. */
static bool s_vaes_merge(lf_runner_t *self, lf_vae_info_t *list, size_t n) {
    bool ok = true;
    for (size_t i = 0; i < n; i++) {
        bool dup = false;
        for (size_t k = 0; k < self->n_vaes; k++) dup |= !strcmp(self->vaes[k], list[i].name);
        lf_vae_info_t *vi = dup || !ok ? NULL : realloc(self->vae_info, (self->n_vaes + 1) * sizeof *vi);
        if (vi) self->vae_info = vi;
        char **names = vi ? realloc(self->vaes, (self->n_vaes + 1) * sizeof *names) : NULL;
        if (names) self->vaes = names;
        if (!dup && (!vi || !names)) ok = false;
        if (!names) {
            free(list[i].name), free(list[i].kind);
            continue;
        }
        self->vae_info[self->n_vaes] = list[i]; /* move the strings */
        self->vaes[self->n_vaes++] = list[i].name;
    }
    free(list);
    return ok;
}

void lf_runner_vaes_free(lf_vae_info_t *vaes, size_t n) {
    for (size_t i = 0; vaes && i < n; i++) free(vaes[i].name), free(vaes[i].kind);
    free(vaes);
}

lf_runner_t *lf_runner_new(const lf_runner_env_t *env, const lf_runner_backend_t *const *backends,
                           size_t n) {
    if (!env || (n && !backends)) return NULL;
    lf_runner_t *self = calloc(1, sizeof *self);
    if (!self) return NULL;
    self->env = *env;
    self->resident = -1;
    if (n && !(self->backends = calloc(n, sizeof *self->backends))) {
        free(self);
        return NULL;
    }
    for (size_t b = 0; b < n; b++) self->backends[b] = backends[b];
    self->n_backends = n;
    for (size_t b = 0; b < n; b++) {
        const lf_runner_backend_t *be = backends[b];
        LF_ASSERT(be && be->list_models && be->load && be->run && be->unload);
        lf_model_info_t *list = NULL;
        size_t count = 0;
        int rc = be->list_models(env, &list, &count);
        if (rc) {
            /* A backend that cannot list (missing dir, no device) contributes
             * nothing; the others still work. */
            lf_warn("backend %s: cannot list models: %s", be->name, lf_strerror(rc));
            continue;
        }
        for (size_t i = 0; i < count; i++) {
            if (s_find(self, list[i].name) >= 0) {
                lf_warn("backend %s: model %s already provided; ignored", be->name, list[i].name);
                continue;
            }
            lf_model_info_t *m = realloc(self->models, (self->n_models + 1) * sizeof *m);
            const lf_runner_backend_t **o =
                realloc(self->owner, (self->n_models + 1) * sizeof *o);
            if (m) self->models = m;
            if (o) self->owner = o;
            if (!m || !o) {
                lf_runner_models_free(list, count);
                lf_runner_destroy(&self);
                return NULL;
            }
            self->models[self->n_models] = list[i]; /* move the strings */
            self->owner[self->n_models] = be;
            list[i].name = list[i].kind = list[i].preview = NULL;
            list[i].defaults = (lf_model_defaults_t){0};
            self->n_models++;
        }
        lf_runner_models_free(list, count);
        lf_lora_info_t *ll = NULL;
        size_t nl = 0;
        if (be->list_loras && (rc = be->list_loras(env, &ll, &nl)) != 0)
            lf_warn("backend %s: cannot list LoRAs: %s", be->name, lf_strerror(rc));
        if (!rc && nl) {
            lf_lora_info_t *m = realloc(self->loras, (self->n_loras + nl) * sizeof *m);
            if (!m) {
                lf_runner_loras_free(ll, nl);
                lf_runner_destroy(&self);
                return NULL;
            }
            memcpy(m + self->n_loras, ll, nl * sizeof *m); /* move the strings */
            self->loras = m;
            self->n_loras += nl;
            free(ll);
            ll = NULL;
        }
        lf_runner_loras_free(ll, nl); /* none listed (or an error): an empty array */
        lf_vae_info_t *vaes = NULL;
        size_t nv = 0;
        if (be->list_vaes && (rc = be->list_vaes(env, &vaes, &nv)) != 0) {
            lf_warn("backend %s: cannot list VAEs: %s", be->name, lf_strerror(rc));
            lf_runner_vaes_free(vaes, nv);
            vaes = NULL, nv = 0;
        }
        if (!s_vaes_merge(self, vaes, nv)) {
            lf_runner_destroy(&self);
            return NULL;
        }
        char **ups = NULL;
        size_t nu = 0;
        if (be->list_upscalers && (rc = be->list_upscalers(env, &ups, &nu)) != 0)
            lf_warn("backend %s: cannot list upscalers: %s", be->name, lf_strerror(rc));
        s_names_merge(&self->upscalers, &self->n_upscalers, ups, nu);
        char **ads = NULL;
        size_t na = 0;
        if (be->list_ad_models && (rc = be->list_ad_models(env, &ads, &na)) != 0)
            lf_warn("backend %s: cannot list ADetailer models: %s", be->name, lf_strerror(rc));
        s_names_merge(&self->ad_models, &self->n_ad_models, ads, na);
    }
    return self;
}

void lf_runner_destroy(lf_runner_t **self_p) {
    if (!self_p || !*self_p) return;
    lf_runner_t *self = *self_p;
    lf_runner_unload(self);
    lf_runner_models_free(self->models, self->n_models);
    lf_runner_loras_free(self->loras, self->n_loras);
    lf_runner_vaes_free(self->vae_info, self->n_vaes);
    free(self->vaes);
    for (size_t i = 0; i < self->n_upscalers; i++) free(self->upscalers[i]);
    free(self->upscalers);
    for (size_t i = 0; i < self->n_ad_models; i++) free(self->ad_models[i]);
    free(self->ad_models);
    free(self->owner);
    free(self->backends);
    free(self);
    *self_p = NULL;
}

const lf_model_info_t *lf_runner_models(const lf_runner_t *self, size_t *n) {
    *n = self->n_models;
    return self->models;
}

const char *lf_runner_model_kind(const lf_runner_t *self, const char *model) {
    long i = s_find(self, model);
    return i < 0 ? NULL : self->models[i].kind;
}

int lf_runner_device_info(const lf_runner_t *self, char *name, size_t n, uint64_t *memory_bytes) {
    if (!name || !n || !memory_bytes) return LF_EINVAL;
    int last = LF_EUNSUPPORTED;
    snprintf(name, n, "no model backend of this build drives device '%s'", self->env.device ? self->env.device : "");
    for (size_t b = 0; b < self->n_backends; b++) {
        const lf_runner_backend_t *be = self->backends[b];
        if (!be->device_info) continue;
        char tmp[256] = "";
        uint64_t mem = 0;
        if ((last = be->device_info(&self->env, tmp, sizeof tmp, &mem)) == 0) {
            snprintf(name, n, "%s", tmp);
            *memory_bytes = mem;
            return 0;
        }
        if (tmp[0]) snprintf(name, n, "%s", tmp);
    }
    return last;
}

const char *lf_runner_resident(const lf_runner_t *self) {
    return self->resident < 0 ? NULL : self->models[self->resident].name;
}

const char *lf_runner_refiner(const lf_runner_t *self) {
    if (self->resident < 0 || !self->owner[self->resident]->refiner) return NULL;
    return self->owner[self->resident]->refiner(self->state);
}

const char *const *lf_runner_ad_models(const lf_runner_t *self, size_t *n) {
    *n = self->n_ad_models;
    return (const char *const *)self->ad_models;
}

const char *const *lf_runner_upscalers(const lf_runner_t *self, size_t *n) {
    *n = self->n_upscalers;
    return (const char *const *)self->upscalers;
}

const char *const *lf_runner_vaes(const lf_runner_t *self, size_t *n) {
    *n = self->n_vaes;
    return (const char *const *)self->vaes;
}

const lf_vae_info_t *lf_runner_vae_info(const lf_runner_t *self, size_t *n) {
    *n = self->n_vaes;
    return self->vae_info;
}

void lf_runner_unload(lf_runner_t *self) {
    if (self->resident < 0) return;
    lf_info("unloading model %s", self->models[self->resident].name);
    self->owner[self->resident]->unload(&self->state);
    self->state = NULL;
    self->resident = -1;
}

/* lf_runner_load with the backend's reason for a failure in err. */
static int s_load(lf_runner_t *self, const char *model, char *err, size_t errlen) {
    long i = s_find(self, model);
    if (i < 0) return LF_ENOTFOUND;
    if (i == self->resident) return 0;
    lf_runner_unload(self);
    void *state = NULL;
    int rc = self->owner[i]->load(&self->env, self->models[i].name, &state, err, errlen);
    if (rc) {
        lf_warn("loading model %s failed: %s", model, err && *err ? err : lf_strerror(rc));
        return rc;
    }
    lf_info("model %s (%s) resident", self->models[i].name, self->models[i].kind);
    self->state = state;
    self->resident = i;
    self->lora_set[0] = '\0'; /* a fresh model holds no LoRA */
    return 0;
}

int lf_runner_load(lf_runner_t *self, const char *model) {
    char err[256] = "";
    return s_load(self, model, err, sizeof err);
}

/* lf_runner_run's checks, the model loaded, the backend's check. */
static int s_prepare(lf_runner_t *self, const lf_runner_job_t *job, char *errbuf, size_t errlen) {
    const lf_job_params_t *p = job->params;
    if (!p->model || !p->model[0]) {
        snprintf(errbuf, errlen, "no model given");
        return LF_EINVAL;
    }
    if (s_find(self, p->model) < 0) {
        snprintf(errbuf, errlen, "model '%s' is not available on this worker", p->model);
        return LF_ENOTFOUND;
    }
    if (!p->width || !p->height) {
        snprintf(errbuf, errlen, "width and height must be positive");
        return LF_EINVAL;
    }
    uint32_t ow, oh; /* the images' size: Hires-Fix's when on */
    lf_params_output_size(p, &ow, &oh);
    uint64_t px = (uint64_t)ow * oh;
    if (self->env.max_pixels && px > self->env.max_pixels) {
        snprintf(errbuf, errlen, "%ux%u is %llu pixels; this worker takes at most %llu", ow,
                 oh, (unsigned long long)px, (unsigned long long)self->env.max_pixels);
        return LF_ELIMIT;
    }
    if (job->cancel && atomic_load(job->cancel)) {
        snprintf(errbuf, errlen, "cancelled");
        return LF_ECANCELED;
    }
    char why[256] = "";
    int rc = s_load(self, p->model, why, sizeof why);
    if (rc) {
        snprintf(errbuf, errlen, "cannot load model '%s': %s", p->model, why[0] ? why : lf_strerror(rc));
        return rc;
    }
    const lf_runner_backend_t *be = self->owner[self->resident];
    return be->check ? be->check(self->state, p, errbuf, errlen) : 0;
}

int lf_runner_run(lf_runner_t *self, const lf_runner_job_t *job, lf_runner_output_t *out,
                  char *errbuf, size_t errlen) {
    char scratch[8];
    if (!errbuf || !errlen) {
        errbuf = scratch;
        errlen = sizeof scratch;
    }
    errbuf[0] = '\0';
    if (!job || !job->params || !out) {
        snprintf(errbuf, errlen, "no job");
        return LF_EINVAL;
    }
    const lf_job_params_t *p = job->params;
    int rc = s_prepare(self, job, errbuf, errlen);
    if (rc) return rc;
    const lf_runner_backend_t *be = self->owner[self->resident];
    lf_runner_output_t tmp = {0};
    lf_runner_job_t j = *job;
    j.errbuf = errbuf, j.errlen = errlen;
    rc = be->run(self->state, &j, &tmp);
    /* The set the weights hold now, as far as the worker can tell: a failed
     * job may have left the model plain (a bad LoRA file restores it). */
    if (!rc) lf_extranet_lora_set(p, self->lora_set, sizeof self->lora_set);
    else if (rc != LF_ECANCELED) self->lora_set[0] = '\0';
    if (rc) {
        lf_runner_output_clear(&tmp);
        if (!errbuf[0]) snprintf(errbuf, errlen, "%s", lf_strerror(rc));
        return rc;
    }
    *out = tmp;
    return 0;
}

int lf_runner_run_batch(lf_runner_t *self, const lf_runner_job_t *jobs, size_t n,
                        const atomic_bool *cancel, lf_runner_output_t *outs, int *codes,
                        char *errbufs, size_t errlen) {
    if (!self || !jobs || !n || n > LF_RUNNER_BATCH_MAX || !outs || !codes || !errbufs || errlen < 2)
        return LF_EINVAL;
    lf_runner_job_t ok[LF_RUNNER_BATCH_MAX];
    size_t at[LF_RUNNER_BATCH_MAX], k = 0;
    char key0[LF_BATCH_KEY_LEN + 1] = "", key[LF_BATCH_KEY_LEN + 1];
    bool together = n > 1;
    for (size_t j = 0; j < n; j++) {
        char *eb = errbufs + j * errlen;
        eb[0] = '\0';
        memset(&outs[j], 0, sizeof outs[j]);
        codes[j] = jobs[j].params ? s_prepare(self, &jobs[j], eb, errlen) : LF_EINVAL;
        if (codes[j]) continue;
        /* The batch is the model loaded last: a job for another one runs alone. */
        if (k && strcmp(jobs[j].params->model, ok[0].params->model)) together = false;
        if (lf_batch_key(jobs[j].params, k ? key : key0) || !key0[0] || (k && strcmp(key, key0)))
            together = false;
        at[k] = j;
        ok[k++] = jobs[j];
    }
    int rc = LF_EUNSUPPORTED;
    const lf_runner_backend_t *be = k ? self->owner[self->resident] : NULL;
    /* Every job of a batch shares the model its checks loaded. */
    if (together && k > 1 && be->run_batch) {
        lf_runner_output_t tmp[LF_RUNNER_BATCH_MAX] = {{0}};
        char *eb = errbufs + at[0] * errlen;
        ok[0].errbuf = eb, ok[0].errlen = errlen;
        rc = be->run_batch(self->state, ok, k, cancel, tmp);
        if (!rc) lf_extranet_lora_set(ok[0].params, self->lora_set, sizeof self->lora_set);
        else if (rc != LF_ECANCELED) self->lora_set[0] = '\0';
        if (!rc) self->batched += k;
        /* A failed batch runs again one by one: a job that fails alone (a
         * LoRA that does not load...) fails alone. */
        if (rc && rc != LF_ECANCELED) {
            lf_info("runner: batch of %zu jobs failed (%s: %s); one by one", k, lf_strerror(rc), eb);
            rc = LF_EUNSUPPORTED;
        }
        for (size_t q = 0; q < k && rc != LF_EUNSUPPORTED; q++) {
            codes[at[q]] = rc;
            if (!rc) outs[at[q]] = tmp[q];
            else if (q) snprintf(errbufs + at[q] * errlen, errlen, "%s", eb[0] ? eb : lf_strerror(rc));
        }
        if (rc == LF_EUNSUPPORTED) {
            lf_info("runner: %zu jobs run one by one: %s", k, eb);
            eb[0] = '\0';
        }
    }
    if (rc != LF_EUNSUPPORTED) return 0;
    for (size_t q = 0; q < k; q++) {
        size_t j = at[q];
        codes[j] = (cancel && atomic_load(cancel)) || (jobs[j].cancel && atomic_load(jobs[j].cancel))
                       ? LF_ECANCELED
                       : lf_runner_run(self, &jobs[j], &outs[j], errbufs + j * errlen, errlen);
    }
    return 0;
}
