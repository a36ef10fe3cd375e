// Presets: the farm's own (GET /v1/presets: read-only built-ins, then the ones saved on the
// gateway). Each is offered only where it fits the selected model: one that names a model no
// worker serves, or sets a size the model does not draw well (modelfit.js), is listed disabled
// with the reason; a built-in's `aspect` becomes a size at the model's own resolution.

import { ApiError, api, listOf } from './api.js';
import { currentModel, getParams, modelList, showError } from './generate.js';
import { presetFit } from './modelfit.js';
import { $, el, emit, on, toast } from './util.js';

// Names follow the gateway's preset name rule (no spaces).
export const NAME_RE = /^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}$/;

let saved = []; // [{name, description, params}] saved on the farm
let builtins = []; // the farm's read-only built-ins

function formSize() {
  return { width: Number($('#width').value) || undefined, height: Number($('#height').value) || undefined };
}

function fitOf(p) {
  return presetFit(p, currentModel(), modelList(), formSize());
}

function option(p, prefix) {
  const fit = p.params ? fitOf(p) : { ok: true };
  const label = p.description ? `${p.name} — ${p.description}` : p.name;
  return el('option', {
    value: `${prefix}${p.name}`,
    text: fit.ok ? label : `${label} (unavailable: ${fit.reason})`,
    disabled: !fit.ok,
    title: fit.ok ? null : fit.reason,
  });
}

function render(selectName) {
  const sel = $('#preset-select');
  const prev = selectName ?? sel.value;
  const gBuilt = el('optgroup', { label: 'Built-in' }, builtins.map((p) => option(p, 'b:')));
  const gSaved = el('optgroup', { label: saved.length ? 'Saved on the farm' : 'Saved on the farm (none yet)' },
    saved.map((p) => option(p, 's:')));
  sel.replaceChildren(el('option', { value: '', text: '— choose a preset —' }), gBuilt, gSaved);
  if ([...sel.options].some((o) => o.value === prev && !o.disabled)) sel.value = prev;
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
    builtins = all.filter((p) => p.builtin);
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
  let p = (v.startsWith('b:') ? builtins : saved).find((x) => x.name === name);
  if (p && !p.params) {
    try { p = { ...p, ...(await api.preset(name)) }; } catch (e) { toast(`Cannot load preset: ${e.message}`, { error: true }); return; }
  }
  if (!p || !p.params) return;
  const fit = fitOf(p);
  if (!fit.ok) { toast(`Preset “${name}” does not fit: ${fit.reason}`, { error: true }); render(''); return; }
  emit('apply-params', { params: fit.params, source: `preset “${name}”`, keepSeed: v.startsWith('b:') });
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
  on('model-changed', () => render());
  $('#preset-select').addEventListener('change', updateButtons);
  $('#preset-apply').addEventListener('click', applySelected);
  $('#preset-delete').addEventListener('click', deleteSelected);
  $('#preset-save').addEventListener('click', saveCurrent);
  $('#preset-name').addEventListener('keydown', (e) => {
    if (e.key === 'Enter') { e.preventDefault(); saveCurrent(); } // not the form's submit
  });
  $('#preset-name').addEventListener('input', clearPresetError);
}
