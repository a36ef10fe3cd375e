/* lf_enhancer: the LLM round trips of prompt enhancement (lf_enhancer.h). */
#include "lf_enhancer.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lf_error.h"

static void s_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void s_err(char *err, size_t errlen, const char *fmt, ...) {
    if (!err || !errlen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static pthread_once_t s_curl_once = PTHREAD_ONCE_INIT;
static void s_curl_init(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

/* The reply body, capped at LF_ENHANCE_MAX_BODY. */
typedef struct {
    char *p;
    size_t n;
    bool over;
} s_body_t;

static size_t s_write(char *data, size_t size, size_t nmemb, void *ud) {
    s_body_t *b = ud;
    size_t n = size * nmemb;
    if (b->n + n > LF_ENHANCE_MAX_BODY) {
        b->over = true;
        return 0;
    }
    char *p = realloc(b->p, b->n + n + 1);
    if (!p) return 0;
    memcpy(p + b->n, data, n);
    b->p = p;
    b->n += n;
    p[b->n] = 0;
    return n;
}

static int s_progress(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un) {
    (void)dt, (void)dn, (void)ut, (void)un;
    const atomic_bool *stop = ud;
    return stop && atomic_load(stop) ? 1 : 0;
}

int lf_enhancer_call(const lf_enhance_opts_t *o, const char *prompt, const char *instruction,
                     const atomic_bool *stop, char **text, char *err, size_t errlen) {
    if (!o->url || !*o->url) {
        s_err(err, errlen, "no enhancement endpoint is configured (LF_ENHANCE_URL)");
        return LF_EINVAL;
    }
    pthread_once(&s_curl_once, s_curl_init);
    char url[2048];
    if (lf_enhance_url(o, url, sizeof url)) {
        s_err(err, errlen, "the enhancement URL is too long");
        return LF_EINVAL;
    }
    char *body = NULL;
    int rc = lf_enhance_body(o, prompt, instruction, &body);
    if (rc) {
        s_err(err, errlen, "%s", lf_strerror(rc));
        return rc;
    }
    CURL *c = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    char auth[1100] = "";
    if (o->api_key && *o->api_key) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %.1000s", o->api_key);
        struct curl_slist *t = h ? curl_slist_append(h, auth) : NULL;
        if (t) h = t;
        else {
            curl_slist_free_all(h);
            h = NULL;
        }
    }
    if (!c || !h) {
        if (c) curl_easy_cleanup(c);
        curl_slist_free_all(h);
        free(body);
        s_err(err, errlen, "out of memory");
        return LF_ENOMEM;
    }
    s_body_t b = {0};
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, s_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)o->timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)o->timeout_ms);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, s_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, (void *)stop);
    CURLcode cr = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    curl_slist_free_all(h);
    free(body);
    if (b.over) {
        s_err(err, errlen, "the enhancement endpoint's answer is over %d bytes", LF_ENHANCE_MAX_BODY);
        rc = LF_ETOOBIG;
    } else if (cr == CURLE_OPERATION_TIMEDOUT) {
        s_err(err, errlen, "the enhancement endpoint did not answer within %lld ms", (long long)o->timeout_ms);
        rc = LF_ETIMEDOUT;
    } else if (cr == CURLE_ABORTED_BY_CALLBACK) {
        s_err(err, errlen, "the gateway is stopping");
        rc = LF_ECANCELED;
    } else if (cr != CURLE_OK) {
        s_err(err, errlen, "cannot reach the enhancement endpoint: %s", curl_easy_strerror(cr));
        rc = LF_ECONN;
    } else {
        rc = lf_enhance_parse(o, status, b.p, b.n, text, err, errlen);
    }
    free(b.p);
    return rc;
}

/* ------------------------------------------------------------------ pool */

typedef struct s_task {
    struct s_task *next;
    char *prompt, *instruction;
    lf_enhancer_done_fn fn;
    void *arg;
} s_task_t;

struct lf_enhancer {
    char *url, *model, *system, *api_key;
    lf_enhance_opts_t o; /* strings point at the copies above */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    s_task_t *head, *tail;
    atomic_bool stop;
    pthread_t *th;
    int n_th;
};

static void s_task_free(s_task_t *t) {
    free(t->prompt);
    free(t->instruction);
    free(t);
}

static void *s_main(void *arg) {
    lf_enhancer_t *e = arg;
    for (;;) {
        pthread_mutex_lock(&e->mu);
        while (!e->head && !atomic_load(&e->stop)) pthread_cond_wait(&e->cv, &e->mu);
        s_task_t *t = e->head;
        if (t) {
            e->head = t->next;
            if (!e->head) e->tail = NULL;
        }
        pthread_mutex_unlock(&e->mu);
        if (!t) return NULL; /* stopping and nothing left */
        char err[512] = "", *text = NULL;
        int rc;
        if (atomic_load(&e->stop)) {
            snprintf(err, sizeof err, "the gateway is stopping");
            rc = LF_ECANCELED;
        } else {
            rc = lf_enhancer_call(&e->o, t->prompt, t->instruction, &e->stop, &text, err, sizeof err);
        }
        t->fn(t->arg, rc, rc ? NULL : text, err);
        s_task_free(t);
    }
}

static char *s_dup(const char *s) { return s ? strdup(s) : NULL; }

lf_enhancer_t *lf_enhancer_new(const lf_enhance_opts_t *o, int threads, char *err, size_t errlen) {
    lf_enhancer_t *e = calloc(1, sizeof *e);
    if (!e) {
        s_err(err, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->cv, NULL);
    atomic_init(&e->stop, false);
    e->url = s_dup(o->url), e->model = s_dup(o->model), e->system = s_dup(o->system);
    e->api_key = s_dup(o->api_key);
    e->o = *o;
    e->o.url = e->url, e->o.model = e->model, e->o.system = e->system, e->o.api_key = e->api_key;
    if (threads < 1) threads = 1;
    if ((o->url && !e->url) || (o->model && !e->model) || (o->system && !e->system) ||
        (o->api_key && !e->api_key) || !(e->th = calloc((size_t)threads, sizeof *e->th))) {
        s_err(err, errlen, "out of memory");
        lf_enhancer_destroy(&e);
        return NULL;
    }
    for (; e->n_th < threads; e->n_th++) {
        if (pthread_create(&e->th[e->n_th], NULL, s_main, e)) {
            s_err(err, errlen, "cannot start the prompt enhancement threads");
            lf_enhancer_destroy(&e);
            return NULL;
        }
    }
    return e;
}

int lf_enhancer_run(lf_enhancer_t *self, const char *prompt, const char *instruction, lf_enhancer_done_fn fn,
                    void *arg) {
    s_task_t *t = calloc(1, sizeof *t);
    if (!t || !(t->prompt = strdup(prompt ? prompt : "")) || (instruction && !(t->instruction = strdup(instruction)))) {
        if (t) s_task_free(t);
        return LF_ENOMEM;
    }
    t->fn = fn, t->arg = arg;
    pthread_mutex_lock(&self->mu);
    if (atomic_load(&self->stop)) {
        pthread_mutex_unlock(&self->mu);
        s_task_free(t);
        return LF_ESTATE;
    }
    if (self->tail) self->tail->next = t;
    else self->head = t;
    self->tail = t;
    pthread_cond_signal(&self->cv);
    pthread_mutex_unlock(&self->mu);
    return 0;
}

void lf_enhancer_destroy(lf_enhancer_t **self_p) {
    if (!self_p || !*self_p) return;
    lf_enhancer_t *e = *self_p;
    pthread_mutex_lock(&e->mu);
    atomic_store(&e->stop, true);
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
    /* The threads answer what waits (stop is set) and return. */
    for (int i = 0; i < e->n_th; i++) pthread_join(e->th[i], NULL);
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->cv);
    free(e->th);
    free(e->url), free(e->model), free(e->system), free(e->api_key);
    free(e);
    *self_p = NULL;
}
