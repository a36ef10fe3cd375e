// The LoRA picker: the LoRAs the workers have (GET /v1/loras) and a weight; "Add" writes A1111's
// <lora:name:weight> tag into the prompt at the cursor, which the engine reads (and the infotext keeps).
import { api, listOf } from './api.js';
import { showLoraDefaults } from './generate.js';
import { $, toast } from './util.js';

const loraDefaults = new Map(); // name -> the settings a LoRA recommends (GET /v1/loras "defaults")

/** The tag for a LoRA at a weight, as A1111's extra-networks cards write it. */
export function loraTag(name, weight) {
  const w = Number(weight);
  return `<lora:${name}:${Number.isFinite(w) ? Number(w.toFixed(3)) : 1}>`;
}

/** Inserts text into a textarea at its cursor (or replacing its selection), with spaces around it. */
export function insertAtCursor(area, text) {
  const v = area.value;
  const a = area.selectionStart ?? v.length, b = area.selectionEnd ?? v.length;
  const before = v.slice(0, a), after = v.slice(b);
  const pre = before && !/\s$/.test(before) ? ' ' : '';
  const post = after && !/^\s/.test(after) ? ' ' : '';
  area.value = before + pre + text + post + after;
  const at = (before + pre + text).length;
  area.setSelectionRange(at, at);
  area.dispatchEvent(new Event('input', { bubbles: true }));
}

/** Fills the picker from GET /v1/loras; the field stays hidden while there are none. */
export async function loadLoras() {
  let loras = [];
  try {
    loras = listOf(await api.loras(), 'loras');
  } catch (e) {
    loras = [];
  }
  const sel = $('#lora-pick');
  loraDefaults.clear();
  for (const l of loras) if (l.defaults && typeof l.defaults === 'object') loraDefaults.set(l.name, l.defaults);
  sel.replaceChildren(...loras.map((l) => {
    const o = document.createElement('option');
    o.value = l.name;
    o.textContent = l.alias && l.alias !== l.name ? `${l.name} (${l.alias})` : l.name;
    if (l.path) o.title = `${l.path}${l.shorthash ? ` · ${l.shorthash}` : ''}`;
    return o;
  }));
  $('#lora-field').hidden = loras.length === 0;
  showLoraDefaults(sel.value, loraDefaults.get(sel.value));
}

export function initLoras() {
  $('#lora-pick').addEventListener('change', () => {
    const name = $('#lora-pick').value;
    showLoraDefaults(name, loraDefaults.get(name));
  });
  $('#lora-add').addEventListener('click', () => {
    const name = $('#lora-pick').value;
    if (!name) return;
    const prompt = $('#prompt');
    insertAtCursor(prompt, loraTag(name, $('#lora-weight').value));
    showLoraDefaults(name, loraDefaults.get(name), true); // a few-step LoRA's steps, CFG, sampler, schedule
    prompt.focus();
    toast(`Added ${name} to the prompt`);
  });
}
