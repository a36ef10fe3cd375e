// Presets: built-in parameter sets plus named sets saved on the gateway (/v1/presets).

import { ApiError, api, listOf } from './api.js';
import { getParams, showError } from './generate.js';
import { $, el, emit, toast } from './util.js';

// Names follow the gateway's preset name rule (no spaces).
export const NAME_RE = /^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}$/;

export const BUILTIN = [
  { name: 'Diagnostic · 20 steps × 50 ms', params: { model: 'lf-diagnostic', steps: 20, step_delay_ms: 50, width: 512, height: 512, batch_size: 1, cfg_scale: 7 } },
  { name: 'Fast draft · 12 steps', params: { steps: 12, cfg_scale: 6, sampler: 'euler_a', scheduler: 'normal', width: 512, height: 512 } },
  { name: 'Quality · 30 steps DPM++ 2M Karras', params: { steps: 30, cfg_scale: 7, sampler: 'dpmpp_2m', scheduler: 'karras' } },
  { name: 'Portrait 512×768', params: { width: 512, height: 768 } },
  { name: 'Landscape 768×512', params: { width: 768, height: 512 } },
  { name: 'SDXL square 1024²', params: { width: 1024, height: 1024, steps: 25, cfg_scale: 6 } },
  { name: 'Batch of 4', params: { batch_size: 4 } },
];

let saved = []; // [{name, params}] saved on the farm
let builtins = [...BUILTIN]; // the farm's built-ins first, then this page's

function render(selectName) {
  const sel = $('#preset-select');
  const prev = selectName ?? sel.value;
  const gBuilt = el('optgroup', { label: 'Built-in' }, builtins.map((p) => el('option', { value: `b:${p.name}`, text: p.description ? `${p.name} — ${p.description}` : p.name })));
  const gSaved = el('optgroup', { label: saved.length ? 'Saved on the farm' : 'Saved on the farm (none yet)' },
    saved.map((p) => el('option', { value: `s:${p.name}`, text: p.name })));
  sel.replaceChildren(el('option', { value: '', text: '— choose a preset —' }), gBuilt, gSaved);
  if ([...sel.options].some((o) => o.value === prev)) sel.value = prev;
  updateButtons();
}

function updateButtons() {
  const v = $('#preset-select').value;
  $('#preset-delete').disabled = !v.startsWith('s:');
  $('#preset-apply').disabled = !v;
}

export async function refreshPresets(selectName) {
  try {
    const r = await api.presets();
    const all = listOf(r, 'presets').map((p) => (typeof p === 'string' ? { name: p, params: null } : p));
    saved = all.filter((p) => !p.builtin);
    const farmBuiltins = all.filter((p) => p.builtin);
    builtins = [...farmBuiltins, ...BUILTIN.filter((b) => !farmBuiltins.some((f) => f.name === b.name))];
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 401)) toast(`Cannot load presets: ${e.message}`, { error: true });
  }
  render(selectName);
}

function presetError(message) {
  const slot = $('#err-name');
  slot.textContent = message;
  slot.hidden = false;
  $('#preset-name').setAttribute('aria-invalid', 'true');
  $('#preset-name').setAttribute('aria-describedby', 'err-name');
  $('#preset-name').focus();
}

function clearPresetError() {
  $('#err-name').hidden = true;
  $('#preset-name').removeAttribute('aria-invalid');
}

async function applySelected() {
  const v = $('#preset-select').value;
  if (!v) return;
  const name = v.slice(2);
  let params;
  if (v.startsWith('b:')) {
    params = builtins.find((p) => p.name === name)?.params;
  } else {
    const p = saved.find((x) => x.name === name);
    params = p && p.params;
    if (!params) {
      try { params = (await api.preset(name)).params; } catch (e) { toast(`Cannot load preset: ${e.message}`, { error: true }); return; }
    }
  }
  if (params) emit('apply-params', { params, source: `preset “${name}”`, keepSeed: v.startsWith('b:') });
}

async function saveCurrent() {
  clearPresetError();
  const name = $('#preset-name').value.trim();
  if (!name) { presetError('Give the preset a name'); return; }
  if (!NAME_RE.test(name)) { presetError('Use letters, digits, “-”, “_” or “.” (no spaces), up to 64 characters, e.g. my-portrait'); return; }
  if (builtins.some((p) => p.name === name && p.builtin)) { presetError(`“${name}” is a built-in preset; choose another name`); return; }
  const params = getParams();
  delete params.init_image; // uploads expire; a preset keeps settings, not images
  try {
    if (saved.some((p) => p.name === name)) await api.updatePreset(name, params);
    else await api.savePreset(name, params);
    $('#preset-name').value = '';
    toast(`Preset “${name}” saved`);
    await refreshPresets(`s:${name}`);
  } catch (e) {
    if (e.field && e.field !== 'name' && e.field !== 'params') showError(e.field, e.message);
    else presetError(e.message);
  }
}

async function deleteSelected() {
  const v = $('#preset-select').value;
  if (!v.startsWith('s:')) return;
  const name = v.slice(2);
  try {
    await api.deletePreset(name);
    toast(`Preset “${name}” deleted`);
    await refreshPresets('');
  } catch (e) {
    toast(`Cannot delete “${name}”: ${e.message}`, { error: true });
  }
}

export function initPresets() {
  render();
  $('#preset-select').addEventListener('change', updateButtons);
  $('#preset-apply').addEventListener('click', applySelected);
  $('#preset-delete').addEventListener('click', deleteSelected);
  $('#preset-save').addEventListener('click', saveCurrent);
  $('#preset-name').addEventListener('keydown', (e) => {
    if (e.key === 'Enter') { e.preventDefault(); saveCurrent(); } // not the form's submit
  });
  $('#preset-name').addEventListener('input', clearPresetError);
}
