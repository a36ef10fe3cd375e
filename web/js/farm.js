// The farm at work: workers (device, memory, resident models, current job, throughput), queue
// depth per priority (from /metrics, or counted from /v1/jobs), and the summary in the top bar.
// One poller feeds the Queue panel too (event 'queue').

import { api, listOf, progressOf } from './api.js';
import { $, el, emit, every, fmtBytes, fmtAgo, on, shortId } from './util.js';

const PRIOS = ['high', 'normal', 'low'];
const samples = new Map(); // worker id -> [{t, done}]
const stepSamples = new Map(); // job id -> {t, step}
let lastOk = 0;

/** Prometheus text exposition -> [{name, labels, value}]. */
export function parseMetrics(text) {
  const out = [];
  if (typeof text !== 'string') return out;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line[0] === '#') continue;
    const m = /^([a-zA-Z_:][\w:]*)(\{([^}]*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels = {};
    if (m[3]) {
      const re = /(\w+)\s*=\s*"((?:\\.|[^"\\])*)"/g;
      let l;
      while ((l = re.exec(m[3])) !== null) labels[l[1]] = l[2].replace(/\\(.)/g, '$1');
    }
    const value = Number(m[4]);
    if (Number.isFinite(value)) out.push({ name: m[1], labels, value });
  }
  return out;
}

/** Queue depth per priority from metrics, or null if /metrics does not say. */
export function depthFromMetrics(metrics) {
  const cand = metrics.filter((x) => x.labels.priority && PRIOS.includes(x.labels.priority)
    && /queue|queued|depth|pending|waiting/i.test(x.name) && !/_total$|_sum$|_count$|_bucket$|seconds|latency/i.test(x.name)
    && (!x.labels.status || x.labels.status === 'queued'));
  if (!cand.length) return null;
  // Prefer a "depth" metric when there are several.
  const name = (cand.find((x) => /depth/i.test(x.name)) || cand[0]).name;
  const d = { high: 0, normal: 0, low: 0 };
  for (const x of cand) if (x.name === name) d[x.labels.priority] += x.value;
  return d;
}

function depthFromJobs(jobs) {
  const d = { high: 0, normal: 0, low: 0 };
  for (const j of jobs) if ((j.status || 'queued') === 'queued') d[j.priority || j.params?.priority || 'normal'] += 1;
  return d;
}

function throughput(id, done, now) {
  if (!Number.isFinite(done)) return null;
  let s = samples.get(id);
  if (!s) samples.set(id, (s = []));
  if (!s.length || s[s.length - 1].done !== done || now - s[s.length - 1].t > 5000) s.push({ t: now, done });
  while (s.length > 2 && now - s[0].t > 600000) s.shift();
  const first = s[0], last = s[s.length - 1];
  const dt = (now - first.t) / 60000;
  if (dt < 0.08) return null;
  return (last.done - first.done) / dt;
}

function jobIdOf(w) {
  const j = w.job ?? w.job_id ?? w.current_job;
  if (!j) return null;
  return typeof j === 'object' ? j.id : String(j);
}

/**
 * The job a worker is running now, or null. The worker registry (GET /v1/workers) is rewritten
 * once per broker heartbeat, so for a while after a job ends it still names that job; the job's own
 * state (GET /v1/jobs lists the running jobs first, then the queued ones) changes in the same Redis
 * step that ends it. So a worker is busy when a listed running job is on it, or when the registry
 * names a job that is listed as running, or one not listed at all when the list was cut short by
 * its page limit (then it may still be running).
 */
export function workerJob(w, jobs, complete) {
  const onIt = jobs.find((j) => j.status === 'running' && (j.worker || j.worker_id) === w.id);
  if (onIt) return onIt;
  const id = jobIdOf(w);
  if (!id) return null;
  const j = jobs.find((x) => x.id === id);
  if (j) return j.status === 'running' && !(j.worker || j.worker_id) ? j : null;
  return complete ? null : (typeof w.job === 'object' ? w.job : { id });
}

function renderWorkers(workers, jobOf, now) {
  const box = $('#workers');
  $('#workers-total').textContent = workers.length ? `${workers.length}` : '';
  if (!workers.length) {
    box.replaceChildren(el('p.empty', { text: 'No workers connected. Start one: lightfarm-worker' }));
    return;
  }
  box.replaceChildren(...workers.map((w) => {
    const dev = w.device || {};
    const job = jobOf.get(w) || null;
    const busy = Boolean(job);
    const rate = throughput(w.id, Number(w.jobs_done), now);
    const resident = listOf(w.resident, 'resident').map((m) => (typeof m === 'string' ? m : m.name));
    const models = listOf(w.models, 'models').map((m) => (typeof m === 'string' ? m : m.name));
    const p = job ? progressOf(job) : { step: 0, steps: 0 };
    let its = '';
    if (job && p.steps) {
      const prev = stepSamples.get(job.id);
      if (prev && p.step > prev.step) its = `${((p.step - prev.step) / ((now - prev.t) / 1000)).toFixed(1)} it/s`;
      if (!prev || p.step !== prev.step) stepSamples.set(job.id, { t: now, step: p.step });
    }
    const memory = dev.memory ?? dev.memory_bytes ?? w.memory_bytes;
    const card = el('article.worker', { 'aria-label': `Worker ${w.id}, ${busy ? 'busy' : 'idle'}` },
      el('div.worker-head', {},
        el('span.dot', { class: `dot ${busy ? 'busy' : 'ok'}`, 'aria-hidden': 'true' }),
        el('b', { text: w.id || '?', title: w.id }),
        el('span', { class: `state ${busy ? 'busy' : 'idle'}`, text: busy ? 'busy' : 'idle' })),
      el('div.dev', {}, `${(dev.kind || '?').toUpperCase()} · ${dev.name || 'unknown device'} · ${fmtBytes(Number(memory))}`),
      el('div.kv', {},
        el('span', {}, 'host ', el('b', { text: `${w.host || '?'}${w.pid ? `:${w.pid}` : ''}` })),
        el('span', {}, 'jobs ', el('b', { text: String(w.jobs_done ?? 0) })),
        el('span', {}, 'rate ', el('b', { text: rate === null ? '—' : `${rate.toFixed(1)}/min` })),
        (w.seen_ms || w.last_seen_ms) ? el('span', {}, 'seen ', el('b', { text: fmtAgo(w.seen_ms || w.last_seen_ms) })) : null),
      el('div.tags', { 'aria-label': 'Models' },
        ...models.map((m) => el('span.tag', { class: `tag${resident.includes(m) ? ' resident' : ''}`, text: m, title: resident.includes(m) ? 'resident in memory' : 'available' })),
        ...resident.filter((m) => !models.includes(m)).map((m) => el('span.tag.resident', { text: m, title: 'resident in memory' }))),
      job ? el('div.kv', {},
        el('span', {}, 'job ', el('b', { text: shortId(job.id) })),
        p.steps ? el('span', {}, el('b', { text: `${p.step}/${p.steps}` })) : null,
        its ? el('span', { text: its }) : null,
        job.params?.prompt ? el('span', { text: job.params.prompt.slice(0, 40), title: job.params.prompt }) : null) : null,
      job && p.steps ? (
        el('div.mini', { role: 'progressbar', 'aria-label': `Worker ${w.id} progress`, 'aria-valuenow': String(Math.round((100 * p.step) / p.steps)), 'aria-valuemin': '0', 'aria-valuemax': '100' },
          el('i', { style: `width:${(100 * p.step) / p.steps}%` }))) : null);
    return card;
  }));
}

function renderDepth(d) {
  const max = Math.max(1, ...PRIOS.map((p) => d[p] || 0));
  for (const p of PRIOS) {
    const row = $(`.depth-row[data-prio="${p}"]`);
    row.querySelector('b').textContent = String(d[p] || 0);
    row.querySelector('i').style.width = `${(100 * (d[p] || 0)) / max}%`;
  }
}

function renderSummary(workers, busyWorkers, depth, running, ok, needKey) {
  const dot = $('#farm-dot');
  if (needKey) {
    dot.className = 'dot bad';
    $('#farm-summary').textContent = 'API key required';
    return;
  }
  const busy = workers.length ? busyWorkers : running;
  const queued = PRIOS.reduce((a, p) => a + (depth[p] || 0), 0);
  dot.className = `dot ${!ok ? 'bad' : busy ? 'busy' : workers.length ? 'ok' : ''}`;
  $('#farm-summary').textContent = !ok
    ? 'gateway unreachable'
    : `${workers.length} worker${workers.length === 1 ? '' : 's'} · ${busy} busy · ${queued} queued`;
}

export async function pollFarm() {
  const now = Date.now();
  const [w, q, m] = await Promise.allSettled([api.workers(), api.queue(), api.metrics()]);
  const workers = w.status === 'fulfilled' ? listOf(w.value, 'workers') : [];
  const jobs = q.status === 'fulfilled' ? listOf(q.value, 'jobs') : [];
  const total = q.status === 'fulfilled' ? Number(q.value.total ?? jobs.length) : 0;
  if (q.status === 'fulfilled') emit('queue', { jobs, total });
  // Without the job list (its request failed) the registry alone says who is busy.
  const complete = q.status === 'fulfilled' && jobs.length >= total;
  const jobOf = new Map(workers.map((x) => [x, workerJob(x, jobs, complete)]));
  const busyWorkers = [...jobOf.values()].filter(Boolean).length;
  const depth = (m.status === 'fulfilled' && depthFromMetrics(parseMetrics(m.value))) || depthFromJobs(jobs);
  const ok = w.status === 'fulfilled' || q.status === 'fulfilled';
  if (ok) lastOk = now;
  renderWorkers(workers, jobOf, now);
  renderDepth(depth);
  const needKey = [w, q].some((r) => r.status === 'rejected' && r.reason && r.reason.status === 401);
  renderSummary(workers, busyWorkers, depth, jobs.filter((j) => j.status === 'running').length, ok || now - lastOk < 5000, needKey);
  emit('workers', workers);
}

export function initFarm() {
  $('#farm-pill').addEventListener('click', () => {
    const tab = $('#tab-farm');
    tab.click();
    tab.focus();
  });
  every(2000, pollFarm);
  on('job-submitted', () => setTimeout(pollFarm, 100));
  on('job-finished', () => setTimeout(pollFarm, 100));
}
