// The ADetailer section: one unit of the A1111 extension's arguments (detector, confidence, denoise,
// prompt) sent as the native `adetailer` list; the detectors come from GET /adetailer/v1/ad_model.
import { request } from './api.js';
import { $ } from './util.js';

/** The form's unit as the `adetailer` list, or null when the section is off. */
export function adetailerParams() {
  if (!$('#ad-enable').checked || !$('#ad-model').value) return null;
  const unit = {
    ad_model: $('#ad-model').value,
    ad_confidence: Number($('#ad-confidence').value),
    ad_denoising_strength: Number($('#ad-denoise').value),
  };
  const prompt = $('#ad-prompt').value;
  if (prompt) unit.ad_prompt = prompt;
  return [unit];
}

function sync() {
  $('#ad-options').hidden = !$('#ad-enable').checked;
  $('#ad-confidence-out').value = Number($('#ad-confidence').value).toFixed(2);
  $('#ad-denoise-out').value = Number($('#ad-denoise').value).toFixed(2);
}

/** Restores the section from a job's params (its first unit); none turns it off. */
export function setAdetailer(list) {
  const u = Array.isArray(list) ? list.find((x) => x && x.ad_model && x.ad_model !== 'None') : null;
  $('#ad-enable').checked = !!u;
  if (u) {
    if ([...$('#ad-model').options].some((o) => o.value === u.ad_model)) $('#ad-model').value = u.ad_model;
    if (u.ad_confidence !== undefined) $('#ad-confidence').value = String(u.ad_confidence);
    if (u.ad_denoising_strength !== undefined) $('#ad-denoise').value = String(u.ad_denoising_strength);
    $('#ad-prompt').value = u.ad_prompt || '';
  }
  sync();
}

/** Fills the detector list; the section hides when the gateway has none. */
export async function loadAdetailer() {
  let names = [];
  try {
    const r = await request('GET', '/adetailer/v1/ad_model');
    names = Array.isArray(r && r.ad_model) ? r.ad_model : [];
  } catch (e) {
    names = [];
  }
  $('#ad-model').replaceChildren(...names.map((n) => {
    const o = document.createElement('option');
    o.value = n;
    o.textContent = n;
    return o;
  }));
  $('#adetailer-field').hidden = names.length === 0;
}

export function initAdetailer() {
  for (const id of ['#ad-enable', '#ad-confidence', '#ad-denoise']) $(id).addEventListener('input', sync);
  $('#ad-enable').addEventListener('change', sync);
  sync();
  loadAdetailer();
}
