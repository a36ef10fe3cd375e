// Entry point: theme, API key, tabs, global keys, and start-up of every module.

import { initAdetailer } from './adetailer.js';
import { api, getKey, onUnauthorized, setKey } from './api.js';
import { initFarm, pollFarm } from './farm.js';
import { initGenerate, loadOptions, submit } from './generate.js';
import { initHistory, refreshHistory } from './history.js';
import { initLoras, loadLoras } from './loras.js';
import { initPresets, refreshPresets } from './presets.js';
import { initQueue } from './queue.js';
import { initStage } from './stage.js';
import { $, $$, on, toast } from './util.js';
import { initViewer, openViewer } from './viewer.js';

// ---- theme ---------------------------------------------------------------------------------

function effectiveTheme() {
  const t = document.documentElement.dataset.theme;
  if (t === 'light' || t === 'dark') return t;
  return matchMedia('(prefers-color-scheme: dark)').matches ? 'dark' : 'light';
}

function syncThemeButton() {
  const next = effectiveTheme() === 'dark' ? 'light' : 'dark';
  $('#theme-btn').setAttribute('aria-label', `Switch to ${next} theme`);
  // The icon shows the current theme's opposite; keep the attribute explicit for CSS.
  document.documentElement.dataset.theme = effectiveTheme();
}

function initTheme() {
  syncThemeButton();
  $('#theme-btn').addEventListener('click', () => {
    const next = effectiveTheme() === 'dark' ? 'light' : 'dark';
    document.documentElement.dataset.theme = next;
    try { localStorage.setItem('lf.theme', next); } catch { /* private mode */ }
    syncThemeButton();
  });
  matchMedia('(prefers-color-scheme: dark)').addEventListener('change', () => {
    let saved = null;
    try { saved = localStorage.getItem('lf.theme'); } catch { /* ignore */ }
    if (!saved) { delete document.documentElement.dataset.theme; syncThemeButton(); }
  });
}

// ---- API key -------------------------------------------------------------------------------

let keyDialogOpen = false;
let asked = false; // the key dialog opens by itself once per page load (and after each new key)

function openKeyDialog(reason) {
  const d = $('#key-dialog');
  if (d.open) return;
  $('#key-why').textContent = reason || 'If the gateway requires an API key, enter it here. It is kept in this browser (localStorage).';
  $('#api-key').value = getKey();
  keyDialogOpen = true;
  d.showModal();
  $('#api-key').focus();
}

function initKey() {
  const d = $('#key-dialog');
  $('#key-btn').addEventListener('click', () => openKeyDialog());
  $('#key-cancel').addEventListener('click', () => d.close());
  $('#key-clear').addEventListener('click', () => { setKey(''); $('#api-key').value = ''; d.close(); toast('API key forgotten'); });
  $('#key-form').addEventListener('submit', (e) => {
    e.preventDefault();
    setKey($('#api-key').value.trim());
    asked = false; // a refused new key asks again
    d.close();
    toast(getKey() ? 'API key saved' : 'API key cleared');
    reloadData();
  });
  d.addEventListener('close', () => { keyDialogOpen = false; });
  onUnauthorized(() => {
    if (keyDialogOpen || asked) return;
    asked = true; // ask once per page load; the key button is always there
    openKeyDialog(getKey()
      ? 'The gateway refused this API key (401). Enter a valid key.'
      : 'This gateway requires an API key (401). Enter it to continue; it is kept in this browser.');
  });
  $('#key-btn').classList.toggle('has-key', Boolean(getKey()));
}

// ---- tabs (ARIA tabs: arrows move, Home/End jump) ------------------------------------------

function initTabs() {
  const tabs = $$('[role="tab"]');
  const select = (tab) => {
    for (const t of tabs) {
      const on = t === tab;
      t.setAttribute('aria-selected', String(on));
      t.tabIndex = on ? 0 : -1;
      document.getElementById(t.getAttribute('aria-controls')).hidden = !on;
    }
    try { localStorage.setItem('lf.tab', tab.id); } catch { /* ignore */ }
    if (tab.id === 'tab-history') refreshHistory();
    if (tab.id === 'tab-farm') pollFarm();
  };
  for (const t of tabs) {
    t.addEventListener('click', () => select(t));
    t.addEventListener('keydown', (e) => {
      const i = tabs.indexOf(t);
      let n = null;
      if (e.key === 'ArrowRight') n = tabs[(i + 1) % tabs.length];
      if (e.key === 'ArrowLeft') n = tabs[(i - 1 + tabs.length) % tabs.length];
      if (e.key === 'Home') n = tabs[0];
      if (e.key === 'End') n = tabs[tabs.length - 1];
      if (n) { e.preventDefault(); select(n); n.focus(); }
    });
  }
  let saved = null;
  try { saved = localStorage.getItem('lf.tab'); } catch { /* ignore */ }
  const start = tabs.find((t) => t.id === saved);
  if (start) select(start);
}

// ---- global keys ---------------------------------------------------------------------------

function initKeys() {
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey) && !$('#viewer').open && !$('#key-dialog').open) {
      e.preventDefault();
      submit();
    }
  });
}

// ---- start ---------------------------------------------------------------------------------

async function reloadData() {
  try {
    await loadOptions();
    loadLoras();
    $('#banner').hidden = true;
  } catch (e) {
    if (e.status !== 401) {
      const b = $('#banner');
      b.textContent = `Cannot load models from the gateway: ${e.message}. Retrying…`;
      b.hidden = false;
      setTimeout(reloadData, 3000);
      return;
    }
  }
  refreshPresets();
  refreshHistory();
  pollFarm();
}

function start() {
  initTheme();
  initKey();
  initTabs();
  initViewer();
  initGenerate();
  initLoras();
  initAdetailer();
  initStage();
  initQueue();
  initPresets();
  initHistory();
  initFarm();
  initKeys();
  on('show-job', async (id) => {
    try { openViewer([{ job: await api.job(id) }]); } catch (e) { toast(`Cannot open job: ${e.message}`, { error: true }); }
  });
  reloadData();
  document.documentElement.dataset.ready = '1';
}

start();
