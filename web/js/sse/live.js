// Live job events: a Server-Sent Events client over fetch (so it can send the API key, which
// EventSource cannot) and JobWatcher, which follows one job to its end. The broker's events are
// hints (PUB may drop them); the truth is the job view, so the watcher also polls it now and
// then and falls back to polling when the stream breaks.

import { ApiError, api, authHeaders, imagesOf, progressOf } from '../api.js';

export const TERMINAL = new Set(['done', 'failed', 'cancelled']);

/** Parses an SSE byte stream; calls onEvent(name, data, id) per event. Resolves at stream end. */
export async function sseStream(url, { onEvent, signal, onOpen }) {
  const res = await fetch(url, {
    headers: authHeaders({ Accept: 'text/event-stream' }), signal, cache: 'no-store',
  });
  if (!res.ok) {
    let e = null;
    try { e = (await res.json()).error; } catch { /* not JSON */ }
    throw new ApiError(res.status, e && e.code, (e && e.message) || `events: HTTP ${res.status}`, e && e.field);
  }
  if (onOpen) onOpen();
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  let name = '', data = [], id = null;
  const dispatch = () => {
    if (data.length) {
      const text = data.join('\n');
      let value = text;
      try { value = JSON.parse(text); } catch { /* plain text data */ }
      onEvent(name || 'message', value, id);
    }
    name = ''; data = [];
  };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += value;
    for (;;) {
      const i = buf.search(/[\r\n]/);
      if (i < 0) break;
      if (buf[i] === '\r' && i === buf.length - 1) break; // maybe a split \r\n: wait for more
      const line = buf.slice(0, i);
      buf = buf.slice(i + (buf[i] === '\r' && buf[i + 1] === '\n' ? 2 : 1));
      if (line === '') { dispatch(); continue; }
      if (line[0] === ':') continue; // comment / keep-alive
      const c = line.indexOf(':');
      const field = c < 0 ? line : line.slice(0, c);
      let v = c < 0 ? '' : line.slice(c + 1);
      if (v[0] === ' ') v = v.slice(1);
      if (field === 'event') name = v;
      else if (field === 'data') data.push(v);
      else if (field === 'id') id = v;
    }
  }
  dispatch();
}

/** The event a job view implies (for polling and for resynchronising). */
function eventFromView(view) {
  const status = view.status;
  if (TERMINAL.has(status)) return [status, view];
  if (status === 'running') return ['progress', { ...progressOf(view), worker: view.worker || view.worker_id, view }];
  if (status === 'enhancing') return ['enhancing', { view }];
  return ['queued', { position: view.position, view }];
}

/**
 * Follows job `id` until it ends. handlers.onEvent(name, data) receives normalised events:
 *   enhancing {} (the farm's LLM rewrites the prompt first), queued {position}, started {worker},
 *   progress {step, steps}, preview {src, step},
 *   done (job view, with images), failed {code, message}, cancelled {}.
 */
export class JobWatcher {
  constructor(id, { onEvent, pollMs = 2500, fallbackPollMs = 400 } = {}) {
    this.id = id;
    this.onEvent = onEvent || (() => {});
    this.pollMs = pollMs; // while the event stream is up: a slow check (events are hints)
    this.fallbackPollMs = fallbackPollMs; // without a stream: poll the job view quickly
    this.streaming = false;
    this.lastSync = 0;
    this.ctrl = new AbortController();
    this.finished = false;
    this.lastStep = -1;
    this.timer = null;
  }

  start() {
    this.run();
    this.timer = setInterval(() => {
      const due = this.streaming ? this.pollMs : this.fallbackPollMs;
      if (performance.now() - this.lastSync >= due) this.resync();
    }, this.fallbackPollMs);
    return this;
  }

  stop() {
    this.finished = true;
    this.ctrl.abort();
    if (this.timer) clearInterval(this.timer);
  }

  async run() {
    let failures = 0;
    while (!this.finished) {
      try {
        await sseStream(`/v1/jobs/${encodeURIComponent(this.id)}/events`, {
          signal: this.ctrl.signal,
          onOpen: () => { failures = 0; this.streaming = true; this.lastSync = performance.now(); },
          onEvent: (name, data) => this.handle(name, data),
        });
      } catch (e) {
        this.streaming = false;
        if (e.name === 'AbortError' || this.finished) return;
        if (e instanceof ApiError && (e.status === 404 || e.status === 401)) {
          // No stream for this job (or no key): the periodic resync alone follows it.
          failures = 99;
        }
      }
      this.streaming = false;
      if (this.finished) return;
      await this.resync();
      failures++;
      if (failures > 5) return; // keep polling only
      await new Promise((r) => setTimeout(r, Math.min(4000, 250 * 2 ** failures)));
    }
  }

  async resync() {
    if (this.finished || this.syncing) return;
    this.syncing = true;
    this.lastSync = performance.now();
    try {
      const view = await api.job(this.id);
      if (this.finished) return;
      const [name, data] = eventFromView(view);
      if (name === 'progress' && progressOf(view).step <= this.lastStep) return;
      this.handle(name, data, true);
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) this.handle('failed', { code: 'not_found', message: 'The job no longer exists' });
    } finally {
      this.syncing = false;
    }
  }

  async handle(name, data, fromView = false) {
    if (this.finished) return;
    data = data && typeof data === 'object' ? data : { value: data };
    switch (name) {
      case 'status': case 'snapshot': case 'job': {
        // A snapshot of the job at (re)connection.
        if (data.status) {
          const [n, d] = eventFromView({ ...data, id: this.id });
          if (n !== 'queued' || data.position !== undefined) this.handle(n, d, true);
        }
        return;
      }
      case 'enhancing':
        this.onEvent('enhancing', {});
        return;
      case 'queued':
        this.onEvent('queued', { position: data.position ?? data.view?.position, view: data.view });
        return;
      case 'started':
        this.onEvent('started', { worker: data.worker || data.worker_id, attempt: data.attempt });
        return;
      case 'progress': {
        const p = progressOf(data);
        if (p.step < this.lastStep && !fromView) return;
        this.lastStep = p.step;
        this.onEvent('progress', { ...p, worker: data.worker || data.worker_id });
        if (data.preview || data.preview_url) this.handle('preview', data);
        return;
      }
      case 'preview': {
        let src = data.url || data.preview_url || (typeof data.preview === 'string' && data.preview.startsWith('/') ? data.preview : null);
        if (!src) {
          const b64 = data.data || data.image || data.preview || data.png;
          if (typeof b64 === 'string' && b64) {
            src = b64.startsWith('data:') ? b64 : `data:${data.mime || data.content_type || 'image/png'};base64,${b64}`;
          }
        }
        if (src) this.onEvent('preview', { src, step: data.step, steps: data.steps });
        return;
      }
      case 'done': {
        let view = data;
        if (!imagesOf(view).length || !view.params) {
          try { view = await api.job(this.id); } catch { /* keep what the event had */ }
        }
        if (view.status && view.status !== 'done' && !TERMINAL.has(view.status)) view = { ...view, status: 'done' };
        this.finish('done', view);
        return;
      }
      case 'failed': {
        const err = data.error || data;
        this.finish('failed', { code: err.code, message: err.message || 'The job failed', view: data.id ? data : undefined });
        return;
      }
      case 'cancelled':
        this.finish('cancelled', data);
        return;
      default:
        // Unknown event names are ignored (forward compatibility).
    }
  }

  finish(name, data) {
    if (this.finished) return;
    this.stop();
    this.onEvent(name, data);
  }
}
