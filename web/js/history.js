// History: a paginated gallery of finished jobs from /v1/history, full view on click, and
// reading parameters from a dropped PNG (A1111 "parameters" text).

import { api, imagesOf, listOf, setImg } from './api.js';
import { wireDropzone } from './generate.js';
import { readParamsFromFile } from './pngmeta.js';
import { $, el, emit, fmtAgo, load, on, save, shortId, toast } from './util.js';
import { openViewer } from './viewer.js';

const state = { offset: 0, limit: load('lf.histLimit', 12), total: 0, jobs: [], loading: false };

function render() {
  const g = $('#gallery');
  const { offset, limit, total, jobs } = state;
  if (!jobs.length) {
    g.replaceChildren(el('p.empty', { text: total ? 'Nothing on this page.' : 'No finished jobs yet.' }));
  } else {
    g.replaceChildren(...jobs.map((job, idx) => {
      const imgs = imagesOf(job);
      const p = job.params || {};
      const caption = p.prompt || `(no prompt) ${shortId(job.id)}`;
      const label = `${job.status || 'done'}: ${caption.slice(0, 80)}${imgs.length > 1 ? `, ${imgs.length} images` : ''}${job.finished_ms ? `, ${fmtAgo(job.finished_ms)}` : ''}`;
      const btn = el('button.thumb', {
        type: 'button', role: 'listitem', title: caption, 'aria-label': label, dataset: { id: job.id },
        onclick: () => openViewer(state.jobs.map((j) => ({ job: j })), idx, 0),
      });
      if (imgs.length) {
        const img = el('img', { alt: '', loading: 'lazy', decoding: 'async' });
        setImg(img, imgs[0].url);
        btn.append(img);
        if (imgs.length > 1) btn.append(el('span.badge', { text: `×${imgs.length}` }));
      } else {
        btn.classList.add('nopic');
        btn.append(el('span', { text: job.status || 'no image' }));
      }
      btn.append(el('span.cap', { text: caption }));
      return btn;
    }));
  }
  const page = Math.floor(offset / limit) + 1;
  const pages = Math.max(1, Math.ceil(total / limit));
  $('#hist-range').textContent = total
    ? `${offset + 1}–${Math.min(offset + jobs.length, total)} of ${total} · page ${page}/${pages}`
    : '0 of 0';
  $('#hist-prev').disabled = offset <= 0;
  $('#hist-next').disabled = offset + limit >= total;
}

export async function refreshHistory() {
  if (state.loading) return;
  state.loading = true;
  try {
    const r = await api.history(state.offset, state.limit);
    state.jobs = listOf(r, 'jobs');
    state.total = Number(r.total ?? state.jobs.length) || 0;
    if (state.offset > 0 && state.offset >= state.total) {
      state.offset = Math.max(0, Math.floor((state.total - 1) / state.limit) * state.limit);
      state.loading = false;
      return refreshHistory();
    }
    render();
  } catch (e) {
    $('#gallery').replaceChildren(el('p.empty', { text: `Cannot load history: ${e.message}` }));
  } finally {
    state.loading = false;
  }
}

async function readPng(file) {
  try {
    const { params, text } = await readParamsFromFile(file);
    if (!params) {
      toast(`${file.name || 'This PNG'} has no generation parameters`, { error: true });
      return;
    }
    $('#png-info-name').textContent = file.name || 'PNG';
    $('#png-info-text').textContent = text;
    $('#png-info').hidden = false;
    emit('apply-params', { params, source: file.name || 'PNG' });
  } catch (e) {
    toast(`Cannot read ${file.name || 'file'}: ${e.message}`, { error: true });
  }
}

export function initHistory() {
  $('#hist-limit').value = String(state.limit);
  $('#hist-prev').addEventListener('click', () => { state.offset = Math.max(0, state.offset - state.limit); refreshHistory(); });
  $('#hist-next').addEventListener('click', () => { state.offset += state.limit; refreshHistory(); });
  $('#hist-refresh').addEventListener('click', refreshHistory);
  $('#hist-limit').addEventListener('change', () => {
    state.limit = Number($('#hist-limit').value) || 12;
    state.offset = 0;
    save('lf.histLimit', state.limit);
    refreshHistory();
  });
  wireDropzone($('#png-drop'), $('#png-file'), readPng);
  // Dropping a PNG anywhere outside a drop zone reads its parameters too.
  document.addEventListener('dragover', (e) => { if (e.dataTransfer && [...e.dataTransfer.types].includes('Files')) e.preventDefault(); });
  document.addEventListener('drop', (e) => {
    if (e.defaultPrevented) return;
    const f = e.dataTransfer && e.dataTransfer.files[0];
    if (!f) return;
    e.preventDefault();
    if (f.type === 'image/png') readPng(f);
  });
  on('job-finished', () => { if (state.offset === 0) refreshHistory(); });
  refreshHistory();
}
