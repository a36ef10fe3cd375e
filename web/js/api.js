// The lightfarm HTTP API: one fetch wrapper (API key, JSON, errors) and one function per route.
// Errors from the gateway look like {"error": {"code", "message", "field"}}; they become ApiError.

const KEY_STORAGE = 'lf.apiKey';

export class ApiError extends Error {
  constructor(status, code, message, field) {
    super(message || `HTTP ${status}`);
    this.name = 'ApiError';
    this.status = status;
    this.code = code || (status ? `http_${status}` : 'network');
    this.field = normalizeField(field);
  }
}

/** "params.width" / "/width" / "body.params[0].steps" -> "steps"; keeps plain names. */
export function normalizeField(field) {
  if (!field || typeof field !== 'string') return null;
  const parts = field.split(/[./[\]]+/).filter(Boolean);
  return parts.length ? parts[parts.length - 1] : null;
}

export function getKey() {
  try { return localStorage.getItem(KEY_STORAGE) || ''; } catch { return ''; }
}
export function setKey(key) {
  try {
    if (key) localStorage.setItem(KEY_STORAGE, key);
    else localStorage.removeItem(KEY_STORAGE);
  } catch { /* private mode: the key lives for this page only */ }
  blobCache.clear();
}

let unauthorizedHandler = null;
/** fn(err) is called on every 401 (the UI asks for a key). */
export function onUnauthorized(fn) { unauthorizedHandler = fn; }

export function authHeaders(extra = {}) {
  const h = { ...extra };
  const key = getKey();
  if (key) h.Authorization = `Bearer ${key}`;
  return h;
}

async function errorFrom(res) {
  let body = null;
  try { body = await res.json(); } catch { /* not JSON */ }
  const e = body && body.error;
  if (e && typeof e === 'object') return new ApiError(res.status, e.code, e.message, e.field);
  if (typeof e === 'string') return new ApiError(res.status, null, e, body.field);
  if (body && body.message) return new ApiError(res.status, body.code, body.message, body.field);
  return new ApiError(res.status, null, `${res.status} ${res.statusText || 'error'}`);
}

/** fetch + auth + JSON. Returns parsed JSON (or text for text/plain, null for 204). */
export async function request(method, path, { json, body, headers = {}, signal, accept } = {}) {
  const h = authHeaders(headers);
  if (json !== undefined) { h['Content-Type'] = 'application/json'; body = JSON.stringify(json); }
  if (accept) h.Accept = accept;
  let res;
  try {
    res = await fetch(path, { method, headers: h, body, signal, cache: 'no-store' });
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    throw new ApiError(0, 'network', 'Cannot reach the gateway');
  }
  if (!res.ok) {
    const e = await errorFrom(res);
    if (res.status === 401 && unauthorizedHandler) unauthorizedHandler(e);
    throw e;
  }
  if (res.status === 204) return null;
  const ct = res.headers.get('Content-Type') || '';
  if (ct.includes('json')) return res.json();
  return res.text();
}

const enc = encodeURIComponent;

export const api = {
  health: () => request('GET', '/healthz'),
  models: () => request('GET', '/v1/models'),
  samplers: () => request('GET', '/v1/samplers'),
  schedulers: () => request('GET', '/v1/schedulers'),
  params: () => request('GET', '/v1/params'),
  submit: (params) => request('POST', '/v1/jobs', { json: params }),
  job: (id) => request('GET', `/v1/jobs/${enc(id)}`),
  cancel: (id) => request('DELETE', `/v1/jobs/${enc(id)}`),
  queue: () => request('GET', '/v1/jobs'),
  history: (offset, limit) => request('GET', `/v1/history?offset=${offset | 0}&limit=${limit | 0}`),
  upload: (file) => request('POST', '/v1/uploads', {
    body: file, headers: { 'Content-Type': file.type || 'application/octet-stream' },
  }),
  workers: () => request('GET', '/v1/workers'),
  loras: () => request('GET', '/v1/loras'),
  upscalers: () => request('GET', '/v1/upscalers'),
  presets: () => request('GET', '/v1/presets'),
  preset: (name) => request('GET', `/v1/presets/${enc(name)}`),
  savePreset: (name, params) => request('POST', '/v1/presets', { json: { name, params } }),
  updatePreset: (name, params) => request('PUT', `/v1/presets/${enc(name)}`, { json: { name, params } }),
  deletePreset: (name) => request('DELETE', `/v1/presets/${enc(name)}`),
  metrics: () => request('GET', '/metrics', { accept: 'text/plain' }),
};

// ---- images ------------------------------------------------------------------------------
// <img src> cannot send an Authorization header: with a key set, images are fetched as blobs.

const blobCache = new Map(); // url -> Promise<objectURL>

export function imageSrc(url) {
  if (!url) return Promise.resolve('');
  if (url.startsWith('data:') || url.startsWith('blob:') || !getKey()) return Promise.resolve(url);
  if (!blobCache.has(url)) {
    const p = fetch(url, { headers: authHeaders() })
      .then((r) => (r.ok ? r.blob() : Promise.reject(new ApiError(r.status, null, 'image not available'))))
      .then((b) => URL.createObjectURL(b));
    p.catch(() => blobCache.delete(url));
    blobCache.set(url, p);
    if (blobCache.size > 300) blobCache.delete(blobCache.keys().next().value);
  }
  return blobCache.get(url);
}

/** Sets img.src from an API image URL (with the key where needed). */
export async function setImg(img, url) {
  img.dataset.url = url || '';
  try {
    const src = await imageSrc(url);
    if (img.dataset.url === (url || '')) img.src = src;
  } catch {
    img.alt = `${img.alt || 'image'} (unavailable)`;
  }
}

// ---- shape helpers: tolerate small differences in the gateway's JSON --------------------

/** A list from {key: [...]} or a bare array. */
export function listOf(obj, key) {
  if (Array.isArray(obj)) return obj;
  if (obj && Array.isArray(obj[key])) return obj[key];
  if (obj && Array.isArray(obj.items)) return obj.items;
  return [];
}

/** {name, label} from a string or an object with name/label/title/aliases. */
export function nameOf(x) {
  if (typeof x === 'string') return { name: x, label: x };
  const name = x.name ?? x.id ?? x.value ?? '';
  const aliases = [...(Array.isArray(x.aliases) ? x.aliases : []), x.alias, x.a1111].filter((a) => typeof a === 'string' && a);
  return { ...x, name, aliases, label: x.label ?? x.title ?? x.a1111 ?? name };
}

/** Images of a job view: [{url, seed, width, height}]. */
export function imagesOf(job) {
  const r = (job && (job.result || job)) || {};
  let imgs = r.images || job.images || [];
  if (!Array.isArray(imgs)) imgs = [];
  return imgs.map((im, i) => (typeof im === 'string'
    ? { url: im, seed: undefined }
    : { ...im, url: im.url || im.href || (job.id ? `/v1/images/${job.id}-${i}.png` : '') }));
}

/** {step, steps} of a job view or an event. */
export function progressOf(x) {
  const p = (x && (x.progress || x)) || {};
  return { step: Number(p.step) || 0, steps: Number(p.steps ?? x?.params?.steps) || 0 };
}
