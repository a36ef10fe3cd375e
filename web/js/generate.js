// The parameter form: options from the API, reading and filling parameters, seed and size
// helpers, img2img upload (drag and drop, paste, browse), submit, and API errors shown next
// to the field they name.

import { adetailerParams, setAdetailer } from './adetailer.js';
import { ApiError, api, listOf, nameOf } from './api.js';
import { promptHelp } from './examples.js';
import { addMaskParams, initMaskBrush, setMaskImage } from './maskbrush.js';
import { useParamRows } from './pngmeta.js';
import { $, $$, emit, on, toast } from './util.js';

const FALLBACK_SAMPLERS = [{ name: 'euler', a1111: 'Euler' }, { name: 'euler_ancestral', a1111: 'Euler a', alias: 'euler_a' }, { name: 'heun', a1111: 'Heun' }, { name: 'dpm_2', a1111: 'DPM2' }, { name: 'dpmpp_2m', a1111: 'DPM++ 2M' }, { name: 'dpmpp_2m_sde', a1111: 'DPM++ 2M SDE' }, { name: 'dpmpp_sde', a1111: 'DPM++ SDE' }, { name: 'ddim', a1111: 'DDIM' }, { name: 'lcm', a1111: 'LCM' }];
const FALLBACK_SCHEDULERS = ['normal', 'karras', 'exponential', 'sgm_uniform', 'simple', 'ddim_uniform',
  'beta', 'kl_optimal', 'linear_quadratic', 'ays', 'trailing', 'lcm'];
const FIELD_ALIASES = { cfg: 'cfg_scale', negative: 'negative_prompt', batch: 'batch_size', init: 'init_image', image: 'init_image', upload: 'init_image', size: 'width', strength: 'denoise', denoising_strength: 'denoise' };

const form = () => $('#gen-form');
let models = [];
let vaes = []; // the separate VAEs live workers have (GET /v1/models "vaes": {name, family, ...})
let upload = null; // {id, width, height, name, url}
let lastSeed = null;

// ---- matching names from A1111 text or other tools to our option values -----------------

function keys(s) {
  const k = String(s).toLowerCase().replace(/\+/g, 'p').replace(/[^a-z0-9]/g, '');
  return new Set([k, k.replace(/ancestral$/, 'a'), k.replace(/^k/, '')]);
}

/** The value of the <option> in select that best matches name (value, label or alias). */
export function matchOption(select, name) {
  if (name === undefined || name === null || name === '') return null;
  const want = keys(name);
  for (const o of select.options) {
    const cands = [o.value, o.textContent, ...(o.dataset.aliases ? o.dataset.aliases.split('|') : [])];
    for (const c of cands) for (const k of keys(c)) if (want.has(k)) return o.value;
  }
  return null;
}

function fillSelect(select, items, preferred) {
  const prev = select.value;
  select.replaceChildren();
  for (const it of items) {
    const o = document.createElement('option');
    o.value = it.name;
    o.textContent = it.label && it.label !== it.name ? `${it.label}` : it.name;
    if (Array.isArray(it.aliases) && it.aliases.length) o.dataset.aliases = it.aliases.join('|');
    if (it.kind) o.dataset.kind = it.kind;
    select.append(o);
  }
  const want = [prev, preferred].find((v) => v && items.some((i) => i.name === v));
  if (want) select.value = want;
}

function modelLabel(x) {
  const parts = [x.name];
  if (x.kind) parts.push(x.kind);
  if (typeof x.workers === 'number') parts.push(`${x.workers} worker${x.workers === 1 ? '' : 's'}`);
  return parts.join('  ·  ');
}

function applyModels(reply) {
  models = listOf(reply, 'models').map(nameOf);
  const sel = $('#model');
  if (!models.length) {
    // Models come from live workers: none yet.
    sel.replaceChildren(new Option('(no models yet: no live workers)', ''));
    return;
  }
  const defName = (reply && typeof reply.default === 'string' && reply.default) || undefined;
  const def = models.find((x) => x.name === defName) || models.find((x) => x.default)
    || models.find((x) => x.kind !== 'diagnostic') || models[0];
  fillSelect(sel, models.map((x) => ({ ...x, label: modelLabel(x) })), def && def.name);
  vaes = listOf(reply && reply.vaes ? reply.vaes : [], 'vaes').map(nameOf).filter((x) => x.name);
  updateModelKind();
}

/** Re-reads the models when the workers' set of models changes (workers come and go). */
async function refreshModelsFrom(workers) {
  const names = new Set();
  for (const w of workers) for (const m of listOf(w.models, 'models')) names.add(typeof m === 'string' ? m : m.name);
  const have = new Set(models.map((x) => x.name));
  if (names.size === have.size && [...names].every((n) => have.has(n))) return;
  try { applyModels(await api.models()); } catch { /* the next poll retries */ }
}

// ---- the form's ranges, steps and defaults from the server's parameter table ---------------

let paramRows = {}; // name -> row of GET /v1/params

/** The slider paired with a number field, when there is one. */
const RANGE_FOR = { steps: '#steps-range', cfg_scale: '#cfg-range' };

/** Sets min / max / step (and the value, while the field still shows the page's own default) of every
 * numeric field named after a row of the parameter table (GET /v1/params), so the page never offers a
 * value the server refuses. Sizes take the real-model floor unless the diagnostic model is selected. */
function applyParamRows() {
  for (const row of Object.values(paramRows)) {
    if (row.type !== 'integer' && row.type !== 'number') continue;
    const el = form().elements.namedItem(row.name);
    if (!el || el.tagName !== 'INPUT' || el.type === 'radio') continue;
    let min = row.minimum;
    if (row.real_model_minimum !== undefined && !isDiagnostic()) min = row.real_model_minimum;
    if (row.random_if_negative) min = -1;
    el.min = String(min);
    el.max = String(row.maximum);
    if (row.step) el.step = String(row.step);
    const untouched = el.value === el.defaultValue;
    if (!row.model_default && !row.random_if_negative && untouched && row.default !== undefined) {
      el.value = String(row.default);
      el.defaultValue = String(row.default);
    }
    const r = RANGE_FOR[row.name] && $(RANGE_FOR[row.name]);
    if (r) {
      r.min = String(min);
      r.max = String(Math.min(Number(r.max) || row.maximum, row.maximum));
      if (row.step) r.step = String(row.step);
      r.value = el.value;
    }
  }
  if (paramRows.denoise) $('#denoise-out').value = Number($('#denoise').value).toFixed(2);
}

/** The default of an enum row (sampler, scheduler), or null. */
function rowDefault(name) {
  const row = paramRows[name];
  return row && row.default !== undefined ? row.default : null;
}

/** Loads models, samplers and the parameter table from the API. */
export async function loadOptions() {
  const [m, s, sch, pt] = await Promise.allSettled([api.models(), api.samplers(), api.schedulers(), api.params()]);
  if (pt.status === 'fulfilled') {
    paramRows = Object.fromEntries(listOf(pt.value, 'params').map((r) => [r.name, r]));
    useParamRows(listOf(pt.value, 'params'));
    applyParamRows();
  }
  if (m.status === 'fulfilled') applyModels(m.value);
  let samplers = FALLBACK_SAMPLERS.map(nameOf), schedulers = FALLBACK_SCHEDULERS.map(nameOf);
  if (s.status === 'fulfilled') {
    const v = s.value;
    const sl = listOf(v, 'samplers');
    if (sl.length) samplers = sl.map(nameOf);
    const sc = listOf(v && v.schedulers ? v.schedulers : [], 'schedulers');
    if (sc.length) schedulers = sc.map(nameOf);
  }
  if (sch.status === 'fulfilled') {
    const sc = listOf(sch.value, 'schedulers');
    if (sc.length) schedulers = sc.map(nameOf);
  }
  fillSelect($('#sampler'), samplers, rowDefault('sampler') || samplers.find((x) => x.default)?.name || (samplers.find((x) => x.name === 'euler_ancestral' || x.name === 'euler_a') || samplers[0])?.name);
  fillSelect($('#scheduler'), schedulers, rowDefault('scheduler') || schedulers.find((x) => x.default)?.name || (schedulers.some((x) => x.name === 'normal') ? 'normal' : schedulers[0]?.name));
  updateModelKind();
  const failed = [m, s].find((r) => r.status === 'rejected');
  if (failed) throw failed.reason;
}

export function currentModel() {
  return models.find((x) => x.name === $('#model').value) || { name: $('#model').value };
}

/** The models the farm serves now, as GET /v1/models lists them (borrowed). */
export function modelList() {
  return models;
}

/** The family of a model entry (GET /v1/models "family", else its kind). */
const familyOf = (m) => (m && (m.family || m.kind)) || '';
const isSdxl = () => familyOf(currentModel()) === 'sdxl';

/** SDXL models get the ~1 MP size presets and a Refiner section (SDXL models other than the selected one). */
function updateSdxl() {
  const xl = isSdxl();
  $('#sdxl-sizes').hidden = !xl;
  $('#aspect-row').hidden = xl;
  $('#refiner-field').hidden = !xl;
  const sel = $('#refiner_checkpoint');
  const refiners = models.filter((m) => familyOf(m) === 'sdxl' && m.name !== currentModel().name);
  fillSelect(sel, [{ name: '', label: 'None' }, ...refiners.map((m) => ({ name: m.name }))], sel.value);
  if (!xl) sel.value = '';
  updateRefiner();
  // Flux: its distilled guidance (the field is sent only for Flux models).
  $('#guidance-field').hidden = familyOf(currentModel()) !== 'flux';
}

function updateRefiner() {
  const on = !$('#refiner-field').hidden && $('#refiner_checkpoint').value !== '';
  $('#refiner_switch_at').disabled = !on;
  $('#refiner-switch-out').value = Number($('#refiner_switch_at').value).toFixed(2);
}

/** Hires-Fix: its controls show when it is on (txt2img only), with the final size. */
function updateHires() {
  const on = $('#enable_hr').checked && mode() !== 'img2img';
  $('#hires-controls').hidden = !on;
  $('#hr-denoise-out').value = Number($('#hr_denoise').value).toFixed(2);
  const s = Number($('#hr_scale').value), w = Number($('#width').value), h = Number($('#height').value);
  const size = $('#hires-size');
  size.hidden = !on || !(s > 0 && w > 0 && h > 0);
  size.textContent = size.hidden ? '' : `Final size: ${Math.floor(w * s)}×${Math.floor(h * s)}`;
}

/** The upscalers the farm offers (GET /v1/upscalers: A1111's built-ins and the workers' models). */
async function loadUpscalers() {
  let list = [];
  try { list = listOf(await api.upscalers(), 'upscalers'); } catch { return; }
  if (list.length) fillSelect($('#hr_upscaler'), list.map((u) => ({ name: u.name })), $('#hr_upscaler').value || 'Latent');
}

function isDiagnostic() {
  const m = currentModel();
  return m.kind === 'diagnostic' || m.name === 'lf-diagnostic';
}

/** The VAE dropdown offers the VAEs that fit the selected model: its own list in GET /v1/models (the
 * gateway matches each VAE's family — SD1.5, SDXL, Flux — to the model's); all of them from a gateway that
 * gives no per-model list. A choice the new model cannot take falls back to Automatic. */
function updateVaes() {
  const m = currentModel();
  const fit = Array.isArray(m.vaes) ? new Set(m.vaes) : null;
  const shown = vaes.filter((v) => !fit || fit.has(v.name));
  const label = (v) => (v.family ? `${v.name}  ·  ${v.family}` : v.name);
  const prev = $('#vae').value;
  fillSelect($('#vae'), [{ name: '', label: 'Automatic' }, ...shown.map((v) => ({ name: v.name, label: label(v) }))], prev);
  if (prev && !shown.some((v) => v.name === prev)) $('#vae').value = '';
  $('#vae-field').hidden = !shown.length;
}

function updateModelKind() {
  updateVaes();
  $('#step-delay-field').hidden = !isDiagnostic();
  applyParamRows();
  updateSdxl();
  applyModelSize();
  applyModelDefaults();
  const help = promptHelp(currentModel());
  $('#prompt').placeholder = help.placeholder;
  $('#negative_prompt').placeholder = help.negative;
  $('#prompt-hint').textContent = help.hint;
  $('#prompt-hint').hidden = !help.hint;
  emit('model-changed', currentModel());
}

let modelSide = null; // the side the size fields last took from a model's resolution

/** A model trained at another size than the page's 512 (e.g. the built-in lf-tiny-shapes at 256, SDXL at
 * 1024) sets width and height to that size, as long as the user has not changed them: they still hold the
 * page default or the previous model's size. */
function applyModelSize() {
  const side = Number(currentModel().resolution);
  if (!(side >= 64)) return;
  const wasW = modelSide ?? Number($('#width').defaultValue), wasH = modelSide ?? Number($('#height').defaultValue);
  if (num('#width') !== wasW || num('#height') !== wasH) return;
  setNum('#width', side);
  setNum('#height', side);
  modelSide = side;
  markAspect();
}

// ---- a model's recommended settings (GET /v1/models "defaults") ------------------------------

let defaultsSet = null; // the fields the selected model's recommended settings filled in

/** "4 steps, CFG 1, Euler, SGM Uniform, 1024×1024": a model's recommended settings in words. */
export function defaultsText(d) {
  if (!d) return '';
  const label = (id, v) => {
    const o = [...$(id).options].find((x) => x.value === matchOption($(id), v));
    return o ? o.text : v;
  };
  const parts = [];
  if (d.weight !== undefined) parts.push(`weight ${d.weight}`); // a LoRA's
  if (d.steps) parts.push(`${d.steps} step${d.steps === 1 ? '' : 's'}`);
  if (d.cfg_scale !== undefined) parts.push(`CFG ${d.cfg_scale}`);
  if (d.sampler) parts.push(label('#sampler', d.sampler));
  if (d.scheduler) parts.push(label('#scheduler', d.scheduler));
  if (d.width && d.height) parts.push(`${d.width}×${d.height}`);
  if (Array.isArray(d.timesteps) && d.timesteps.length) parts.push(`timestep${d.timesteps.length === 1 ? '' : 's'} ${d.timesteps.join(' ')}`);
  return parts.join(', ');
}

/** A model that says how it must be run (few-step models: Lightning's 4 steps, CFG 1, Euler, SGM
 * Uniform) gets those settings when it is chosen, and the form says so; choosing a model without
 * them puts back the page's defaults for the fields the previous one set. */
function applyModelDefaults() {
  const m = currentModel();
  const d = m.defaults && typeof m.defaults === 'object' ? m.defaults : null;
  const note = $('#model-defaults');
  if (defaultsSet && !d) {
    for (const k of ['sampler', 'scheduler']) {
      const v = defaultsSet[k] !== undefined && rowDefault(k);
      if (v) $(`#${k}`).value = matchOption($(`#${k}`), v) || $(`#${k}`).value;
    }
    for (const k of ['steps', 'cfg_scale']) {
      if (defaultsSet[k] !== undefined && paramRows[k] && paramRows[k].default !== undefined) setNum(`#${k}`, paramRows[k].default);
    }
    if (defaultsSet.timesteps !== undefined) $('#timesteps').value = '';
    updateSampler();
  }
  defaultsSet = null;
  if (!d) {
    note.hidden = true;
    note.textContent = '';
    return;
  }
  const p = {};
  for (const k of ['steps', 'cfg_scale', 'sampler', 'scheduler', 'width', 'height', 'timesteps']) if (d[k] !== undefined) p[k] = d[k];
  setParams(p, { keepSeed: true });
  if (p.width && p.height && p.width === p.height) modelSide = p.width; // the next model's size may replace it
  defaultsSet = p;
  note.textContent = `${m.name} is made for: ${defaultsText(d)} (set now; change them if you like).`;
  note.hidden = false;
}

/** A LoRA that says how it must be run (GET /v1/loras "defaults": a Lightning 8-step LoRA's 8 steps,
 * CFG 1, SGM Uniform) is shown under the picker; with apply (the LoRA was added to the prompt) its
 * settings go into the fields that still hold the page's or the model's value, and the fields the
 * user changed are kept and named (the gateway fills only omitted fields, and the form sends all). */
export function showLoraDefaults(name, d, apply = false) {
  const note = $('#lora-defaults');
  if (!name || !d || typeof d !== 'object' || !defaultsText(d)) {
    note.hidden = true;
    note.textContent = '';
    return;
  }
  if (!apply) { // picked: its weight goes into the picker's weight, as A1111's "preferred weight"
    if (d.weight !== undefined) setNum('#lora-weight', d.weight);
    note.textContent = `${name} is made for: ${defaultsText(d)} (Add sets them).`;
    note.hidden = false;
    return;
  }
  const base = (k) => {
    if (defaultsSet && defaultsSet[k] !== undefined) return defaultsSet[k];
    if ((k === 'width' || k === 'height') && modelSide) return modelSide;
    return rowDefault(k);
  };
  const untouched = (k) => {
    const b = base(k), cur = $(`#${k}`).value;
    if (b === null || b === undefined) return false;
    return k === 'sampler' || k === 'scheduler' ? cur === matchOption($(`#${k}`), b) : Number(cur) === Number(b);
  };
  const want = (k) => (k === 'sampler' || k === 'scheduler' ? matchOption($(`#${k}`), d[k]) : d[k]);
  const p = {}, kept = [];
  for (const k of ['steps', 'cfg_scale', 'sampler', 'scheduler', 'width', 'height']) {
    if (d[k] === undefined) continue;
    if (untouched(k)) p[k] = d[k];
    else if (String($(`#${k}`).value) !== String(want(k))) kept.push(k === 'cfg_scale' ? 'CFG' : k);
  }
  setParams(p, { keepSeed: true });
  note.textContent = `${name} is made for: ${defaultsText(d)} (set now${kept.length ? `; your ${kept.join(', ')} kept` : ''}).`;
  note.hidden = false;
}

/** TCD's gamma is a field of the tcd sampler only. */
function updateSampler() {
  $('#tcd-field').hidden = $('#sampler').value !== 'tcd';
}

function mode() {
  return $('#mode-img2img').checked ? 'img2img' : 'txt2img';
}

function updateMode() {
  $('#img2img-block').hidden = mode() !== 'img2img';
  $('#hires-field').hidden = mode() === 'img2img'; // Hires-Fix is a txt2img pass
  updateHires();
}

const num = (id) => {
  const v = $(id).value.trim();
  return v === '' ? NaN : Number(v);
};

/** The form as job params (what POST /v1/jobs takes). Empty numeric fields stay NaN → null. */
export function getParams() {
  const n = (id) => { const v = num(id); return Number.isFinite(v) ? v : null; };
  const p = {
    model: $('#model').value,
    mode: mode(),
    prompt: $('#prompt').value,
    negative_prompt: $('#negative_prompt').value,
    sampler: $('#sampler').value,
    scheduler: $('#scheduler').value,
    steps: n('#steps'),
    cfg_scale: n('#cfg_scale'),
    width: n('#width'),
    height: n('#height'),
    seed: n('#seed') ?? -1,
    batch_size: n('#batch_size'),
    priority: $('#priority').value,
  };
  // Few-step models: TCD's gamma; explicit timesteps (their count is the steps: steps left out).
  if (p.sampler === 'tcd') p.tcd_gamma = n('#tcd_gamma');
  if (!$('#guidance-field').hidden) p.guidance = n('#guidance');
  const ts = $('#timesteps').value.trim();
  if (ts) {
    p.timesteps = ts;
    delete p.steps;
  }
  if (p.mode === 'img2img') {
    p.init_image = upload ? upload.id : null;
    p.denoise = Number($('#denoise').value);
  }
  if (isDiagnostic()) p.step_delay_ms = n('#step_delay_ms') ?? 0;
  if (!$('#refiner-field').hidden && $('#refiner_checkpoint').value) {
    p.refiner_checkpoint = $('#refiner_checkpoint').value;
    p.refiner_switch_at = Number($('#refiner_switch_at').value);
  }
  if (!$('#vae-field').hidden && $('#vae').value) p.vae = $('#vae').value;
  if (p.mode !== 'img2img' && $('#enable_hr').checked) { // Hires-Fix: its strength is the job's denoise
    p.enable_hr = true;
    p.hr_upscaler = $('#hr_upscaler').value || 'Latent';
    p.hr_scale = n('#hr_scale');
    p.hr_second_pass_steps = n('#hr_second_pass_steps');
    p.denoise = Number($('#hr_denoise').value);
  }
  const ad = adetailerParams();
  if (ad) p.adetailer = ad;
  if ($('#enhance_prompt').checked) { // prompt enhancement (the gateway's LLM)
    p.enhance_prompt = true;
    const ins = $('#enhance_instruction').value.trim();
    if (ins) p.enhance_instruction = ins;
  }
  for (const k of Object.keys(p)) if (p[k] === null) delete p[k];
  return p;
}

function setNum(id, v) {
  if (v === undefined || v === null || v === '' || !Number.isFinite(Number(v))) return;
  $(id).value = String(v);
  $(id).dispatchEvent(new Event('input', { bubbles: true }));
}

/** Fills the form from params (partial is fine). Returns the list of keys that could not be applied. */
export function setParams(p, { keepSeed = false } = {}) {
  if (!p || typeof p !== 'object') return [];
  const skipped = [];
  if (p.model !== undefined) {
    const v = matchOption($('#model'), p.model);
    if (v) $('#model').value = v; else skipped.push(`model "${p.model}"`);
    updateModelKind();
  }
  if (p.mode === 'img2img' || p.mode === 'txt2img') {
    $(`#mode-${p.mode}`).checked = true;
    updateMode();
  }
  if (typeof p.prompt === 'string') $('#prompt').value = p.prompt;
  // An enhanced job: reuse what was asked (the original prompt, enhancement on).
  if (typeof p.prompt_original === 'string') $('#prompt').value = p.prompt_original;
  if (p.enhance_prompt !== undefined) {
    $('#enhance_prompt').checked = !!p.enhance_prompt;
    $('#enhance_instruction').value = typeof p.enhance_instruction === 'string' ? p.enhance_instruction : '';
    $('#enhance_instruction').hidden = !p.enhance_prompt;
  }
  if (typeof p.negative_prompt === 'string') $('#negative_prompt').value = p.negative_prompt;
  for (const [key, id] of [['sampler', '#sampler'], ['scheduler', '#scheduler']]) {
    if (p[key] === undefined || p[key] === null || p[key] === '') continue;
    const v = matchOption($(id), p[key]);
    if (v) $(id).value = v; else skipped.push(`${key} "${p[key]}"`);
  }
  setNum('#steps', p.steps);
  setNum('#cfg_scale', p.cfg_scale ?? p.cfg);
  setNum('#tcd_gamma', p.tcd_gamma);
  setNum('#guidance', p.guidance);
  if (p.steps !== undefined && p.timesteps === undefined) $('#timesteps').value = ''; // they go together
  if (p.timesteps !== undefined) {
    $('#timesteps').value = Array.isArray(p.timesteps) ? p.timesteps.join(', ') : String(p.timesteps ?? '');
    if (Array.isArray(p.timesteps) && p.timesteps.length) setNum('#steps', p.timesteps.length);
  }
  updateSampler();
  setNum('#width', p.width);
  setNum('#height', p.height);
  if (!keepSeed) setNum('#seed', p.seed);
  setNum('#batch_size', p.batch_size);
  setNum('#step_delay_ms', p.step_delay_ms);
  if (p.denoise !== undefined) setNum('#denoise', p.denoise);
  if (['high', 'normal', 'low'].includes(p.priority)) $('#priority').value = p.priority;
  if (p.refiner_checkpoint !== undefined) {
    const v = p.refiner_checkpoint ? matchOption($('#refiner_checkpoint'), p.refiner_checkpoint) : '';
    if (v !== null) $('#refiner_checkpoint').value = v; else skipped.push(`refiner "${p.refiner_checkpoint}"`);
  }
  if (p.refiner_switch_at !== undefined && Number.isFinite(Number(p.refiner_switch_at))) $('#refiner_switch_at').value = String(p.refiner_switch_at);
  updateRefiner();
  if (p.enable_hr !== undefined) {
    $('#enable_hr').checked = !!p.enable_hr;
    if (p.hr_upscaler) {
      const v = matchOption($('#hr_upscaler'), p.hr_upscaler);
      if (v) $('#hr_upscaler').value = v; else skipped.push(`upscaler "${p.hr_upscaler}"`);
    }
    setNum('#hr_scale', p.hr_scale);
    setNum('#hr_second_pass_steps', p.hr_second_pass_steps);
    if (p.enable_hr && p.denoise !== undefined) setNum('#hr_denoise', p.denoise);
    updateHires();
  }
  if (p.vae !== undefined) {
    const v = p.vae && !/^(automatic|none)$/i.test(p.vae) ? matchOption($('#vae'), p.vae) : '';
    if (v !== null) $('#vae').value = v; else skipped.push(`VAE "${p.vae}"`);
  }
  setAdetailer(p.adetailer);
  if (p.init_image && typeof p.init_image === 'string' && (!upload || upload.id !== p.init_image)) {
    setUpload({ id: p.init_image, name: 'previous upload' });
  }
  markAspect();
  clearErrors();
  return skipped;
}

// ---- errors at their fields ------------------------------------------------------------------

export function clearErrors() {
  for (const e of $$('[data-error-for]')) { e.hidden = true; e.textContent = ''; }
  for (const i of $$('[aria-invalid="true"]')) i.removeAttribute('aria-invalid');
  const fe = $('#form-error');
  fe.hidden = true; fe.textContent = '';
}

function controlFor(field) {
  if (field === 'init_image') return $('#init-drop');
  if (field === 'mode') return $('#mode-txt2img').checked ? $('#mode-txt2img') : $('#mode-img2img');
  if (field === 'name') return $('#preset-name');
  return document.getElementById(field) || $(`[name="${field}"]`);
}

/** Shows message next to field (or at the form's foot if it has no field). Returns true if placed at a field. */
export function showError(field, message) {
  field = field && (FIELD_ALIASES[field] || field);
  const slot = field && $(`[data-error-for="${CSS.escape(field)}"]`);
  if (slot) {
    if (field === 'init_image' || field === 'denoise') { $('#mode-img2img').checked = true; updateMode(); }
    if (field === 'step_delay_ms') $('#step-delay-field').hidden = false;
    slot.textContent = message;
    slot.hidden = false;
    slot.id = slot.id || `err-${field}`;
    const c = controlFor(field);
    if (c) {
      c.setAttribute('aria-invalid', 'true');
      c.setAttribute('aria-describedby', slot.id);
      c.scrollIntoView({ block: 'center', behavior: 'smooth' });
      c.focus({ preventScroll: true });
    }
    return true;
  }
  const fe = $('#form-error');
  fe.textContent = field ? `${field}: ${message}` : message;
  fe.hidden = false;
  return false;
}

// ---- size helpers ---------------------------------------------------------------------------

const round64 = (v) => Math.max(64, Math.round(v / 64) * 64);

function applyAspect(ratio) {
  const [a, b] = ratio.split(':').map(Number);
  const w0 = num('#width') || 512, h0 = num('#height') || 512;
  const area = Math.max(64 * 64, w0 * h0);
  const w = round64(Math.sqrt(area * a / b));
  const h = round64(Math.sqrt(area * b / a));
  setNum('#width', w);
  setNum('#height', h);
  markAspect();
}

function markAspect() {
  const w = num('#width'), h = num('#height');
  for (const c of $$('[data-aspect]')) {
    const [a, b] = c.dataset.aspect.split(':').map(Number);
    c.setAttribute('aria-pressed', String(w > 0 && h > 0 && Math.abs(w / h - a / b) < 0.04));
  }
  for (const c of $$('[data-size]')) c.setAttribute('aria-pressed', String(c.dataset.size === `${w}x${h}`));
}

// ---- img2img upload ------------------------------------------------------------------------

function setUpload(u) {
  upload = u;
  const thumb = $('#init-thumb');
  if (u && u.url) { thumb.src = u.url; thumb.alt = `Init image ${u.name || ''}`; thumb.hidden = false; } else { thumb.hidden = true; thumb.removeAttribute('src'); }
  $('#init-drop-text').textContent = u ? 'Drop or press Enter to replace' : 'Drop an image here, paste, or press Enter to browse';
  $('#init-info').textContent = u
    ? `${u.name || 'image'}${u.width ? ` · ${u.width}×${u.height}` : ''} · uploaded (${u.id.slice(-6)})`
    : '';
  setMaskImage(u && u.url ? u.url : null); // the mask brush paints on this image
}

export async function uploadInit(file) {
  if (!file) return;
  const slot = $('[data-error-for="init_image"]');
  slot.hidden = true;
  $('#init-drop').removeAttribute('aria-invalid');
  if (!/^image\/(png|jpeg|webp)$/.test(file.type)) {
    showError('init_image', `${file.name || 'This file'} is not a PNG, JPEG or WebP image`);
    return;
  }
  $('#init-info').textContent = `Uploading ${file.name || 'image'}…`;
  try {
    const r = await api.upload(file);
    const url = URL.createObjectURL(file);
    setUpload({ id: r.id, width: r.width, height: r.height, name: file.name, url });
    if (r.width && r.height && !$('#width').matches(':focus')) {
      // Match the output size to the init image (rounded to multiples of 8).
      setNum('#width', Math.max(64, Math.round(r.width / 8) * 8));
      setNum('#height', Math.max(64, Math.round(r.height / 8) * 8));
      markAspect();
    }
    toast('Init image uploaded');
  } catch (e) {
    setUpload(null);
    showError(e.field || 'init_image', e.message);
  }
}

function wireDropzone(zone, input, onFile) {
  zone.addEventListener('click', () => input.click());
  zone.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); e.stopPropagation(); input.click(); }
  });
  input.addEventListener('change', () => { if (input.files[0]) onFile(input.files[0]); input.value = ''; });
  zone.addEventListener('dragover', (e) => { e.preventDefault(); zone.classList.add('over'); });
  zone.addEventListener('dragleave', () => zone.classList.remove('over'));
  zone.addEventListener('drop', (e) => {
    e.preventDefault();
    zone.classList.remove('over');
    const f = e.dataTransfer && e.dataTransfer.files && e.dataTransfer.files[0];
    if (f) onFile(f);
  });
}
export { wireDropzone };

// ---- submit ------------------------------------------------------------------------------

let submitting = false;

export async function submit() {
  if (submitting) return;
  clearErrors();
  const params = getParams();
  if (params.mode === 'img2img' && !params.init_image) {
    showError('init_image', 'Upload an init image for img2img (drop, paste or browse)');
    return;
  }
  submitting = true;
  const btn = $('#generate-btn');
  btn.setAttribute('aria-busy', 'true');
  try {
    await addMaskParams(params); // the painted mask, uploaded now (img2img only)
    const r = await api.submit(params);
    const id = r.id || r.job_id || (r.job && r.job.id);
    if (!id) throw new ApiError(0, 'bad_reply', 'The gateway accepted the job but returned no id');
    emit('job-submitted', { id, position: r.position, status: r.status, params });
  } catch (e) {
    if (e instanceof ApiError) {
      if (e.status === 401) showError(null, 'The gateway needs an API key (key button, top right).');
      else showError(e.field, e.message);
    } else {
      showError(null, String(e.message || e));
    }
  } finally {
    submitting = false;
    btn.removeAttribute('aria-busy');
  }
}

// ---- wiring ---------------------------------------------------------------------------------

export function initGenerate() {
  const f = form();
  f.addEventListener('submit', (e) => { e.preventDefault(); submit(); });
  $('#prompt').addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); submit(); }
  });
  $('#negative_prompt').addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) { e.preventDefault(); submit(); }
  });
  for (const r of $$('input[name="mode"]')) r.addEventListener('change', updateMode);
  $('#model').addEventListener('change', updateModelKind);
  $('#sampler').addEventListener('change', updateSampler);

  // Range <-> number pairs.
  for (const [rangeId, numId] of [['#steps-range', '#steps'], ['#cfg-range', '#cfg_scale']]) {
    const r = $(rangeId), n = $(numId);
    r.addEventListener('input', () => { n.value = r.value; });
    n.addEventListener('input', () => { if (n.value !== '') r.value = n.value; });
  }
  $('#denoise').addEventListener('input', () => { $('#denoise-out').value = Number($('#denoise').value).toFixed(2); });

  // Clearing an error as the user edits the field.
  f.addEventListener('input', (e) => {
    const t = e.target;
    if (t.getAttribute && t.getAttribute('aria-invalid') === 'true') {
      t.removeAttribute('aria-invalid');
      const slot = $(`[data-error-for="${CSS.escape(t.name || t.id)}"]`);
      if (slot) slot.hidden = true;
    }
  });

  // Size.
  for (const c of $$('[data-aspect]')) c.addEventListener('click', () => applyAspect(c.dataset.aspect));
  for (const c of $$('[data-size]')) {
    c.addEventListener('click', () => {
      const [w, h] = c.dataset.size.split('x');
      setNum('#width', w);
      setNum('#height', h);
      markAspect();
    });
  }
  // Hires-Fix.
  for (const id of ['#enable_hr', '#hr_scale', '#hr_denoise', '#width', '#height'])
    $(id).addEventListener('input', updateHires);
  $('#enable_hr').addEventListener('change', updateHires);
  $('#enhance_prompt').addEventListener('change', () => { $('#enhance_instruction').hidden = !$('#enhance_prompt').checked; });
  loadUpscalers();
  updateHires();
  // Refiner.
  $('#refiner_checkpoint').addEventListener('change', updateRefiner);
  $('#refiner_switch_at').addEventListener('input', updateRefiner);
  $('#swap-size').addEventListener('click', () => {
    const w = $('#width').value;
    $('#width').value = $('#height').value;
    $('#height').value = w;
    markAspect();
  });
  $('#width').addEventListener('input', markAspect);
  $('#height').addEventListener('input', markAspect);
  markAspect();

  // Seed.
  $('#seed-random').addEventListener('click', () => { $('#seed').value = '-1'; });
  $('#seed-reuse').addEventListener('click', () => { if (lastSeed !== null) $('#seed').value = String(lastSeed); });
  on('job-finished', (d) => {
    const seeds = (d.images || []).map((i) => i.seed).filter((s) => s !== undefined && s !== null);
    const seed = seeds[0] ?? d.params?.seed;
    if (seed !== undefined && seed !== null && Number(seed) >= 0) {
      lastSeed = Number(seed);
      $('#seed-reuse').disabled = false;
      $('#seed-reuse').title = `Reuse last seed (${lastSeed})`;
    }
  });

  // img2img.
  wireDropzone($('#init-drop'), $('#init-file'), uploadInit);
  initMaskBrush();
  document.addEventListener('paste', (e) => {
    if (mode() !== 'img2img') return;
    const f = [...(e.clipboardData?.files || [])].find((x) => x.type.startsWith('image/'));
    if (f) { e.preventDefault(); uploadInit(f); }
  });

  on('workers', refreshModelsFrom);
  on('apply-params', (d) => {
    const skipped = setParams(d.params, d);
    if (d.source) toast(`Parameters loaded from ${d.source}${skipped.length ? ` (not available here: ${skipped.join(', ')})` : ''}`);
  });
  updateMode();
}
