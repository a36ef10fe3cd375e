// Reads generation parameters from PNG bytes: the text chunks (tEXt, zTXt, iTXt), and the
// A1111 "parameters" text format:
//   prompt
//   Negative prompt: ...
//   Steps: 20, Sampler: Euler a, Schedule type: Karras, CFG scale: 7, Seed: 1, Size: 512x512, Model: name
// Pure functions (no DOM), so they are easy to test from the browser.

const SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
const MAX_CHUNKS = 10000;

async function inflate(bytes) {
  if (typeof DecompressionStream === 'undefined') throw new Error('this browser cannot inflate zTXt/iTXt');
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream('deflate'));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

const latin1 = new TextDecoder('latin1');
const utf8 = new TextDecoder('utf-8');

/** All text chunks of a PNG as {keyword: text}. Throws Error on a non-PNG or a broken file. */
export async function readPngText(buffer) {
  const b = buffer instanceof Uint8Array ? buffer : new Uint8Array(buffer);
  if (b.length < 8 || SIGNATURE.some((v, i) => b[i] !== v)) throw new Error('not a PNG file');
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const out = {};
  let off = 8;
  for (let n = 0; n < MAX_CHUNKS && off + 8 <= b.length; n++) {
    const len = dv.getUint32(off);
    const type = String.fromCharCode(b[off + 4], b[off + 5], b[off + 6], b[off + 7]);
    const start = off + 8;
    const end = start + len;
    if (end + 4 > b.length) throw new Error(`truncated PNG (${type} chunk)`);
    const data = b.subarray(start, end);
    try {
      if (type === 'tEXt') {
        const z = data.indexOf(0);
        if (z > 0) out[latin1.decode(data.subarray(0, z))] = latin1.decode(data.subarray(z + 1));
      } else if (type === 'zTXt') {
        const z = data.indexOf(0);
        if (z > 0 && data[z + 1] === 0) out[latin1.decode(data.subarray(0, z))] = latin1.decode(await inflate(data.subarray(z + 2)));
      } else if (type === 'iTXt') {
        const z = data.indexOf(0);
        if (z > 0) {
          const key = latin1.decode(data.subarray(0, z));
          const compressed = data[z + 1] === 1;
          let p = z + 3;
          const langEnd = data.indexOf(0, p); // language tag
          if (langEnd < 0) throw new Error('bad iTXt');
          const tkEnd = data.indexOf(0, langEnd + 1); // translated keyword
          if (tkEnd < 0) throw new Error('bad iTXt');
          p = tkEnd + 1;
          const body = data.subarray(p);
          out[key] = utf8.decode(compressed ? await inflate(body) : body);
        }
      }
    } catch (e) {
      if (e.message && e.message.startsWith('this browser')) throw e;
      /* a broken text chunk is skipped; the rest of the file may still be useful */
    }
    if (type === 'IEND') break;
    off = end + 4; // skip CRC
  }
  return out;
}

/** Splits "k: v, k: "v, with comma", ..." into [[k, v], ...]. */
export function splitKeyValues(line) {
  const out = [];
  const re = /\s*([\w][\w \-/+().]*?):\s*("(?:\\.|[^\\"])*"|[^,]*)(?:,|$)/g;
  let m;
  while ((m = re.exec(line)) !== null) {
    if (m[0] === '') { re.lastIndex++; continue; }
    let v = m[2].trim();
    if (v.startsWith('"') && v.endsWith('"') && v.length >= 2) {
      try { v = JSON.parse(v); } catch { v = v.slice(1, -1); }
    }
    out.push([m[1].trim(), v]);
    if (re.lastIndex >= line.length) break;
  }
  return out;
}

// A1111 schedule names that used to be glued to the sampler name ("DPM++ 2M Karras").
const SCHEDULE_SUFFIXES = ['Karras', 'Exponential', 'SGM Uniform', 'Uniform', 'Simple', 'Normal', 'Beta', 'Polyexponential', 'DDIM', 'Align Your Steps'];

// The infotext labels come from the server's parameter table (GET /v1/params: each row's `infotext`
// label and type), the same table the farm writes its PNGs from; generate.js hands the rows over.
let labelRows = new Map(); // lower-case label -> [rows] ("Size" names two: width and height)

/** Takes the parameter table's rows (GET /v1/params `params`). */
export function useParamRows(rows) {
  labelRows = new Map();
  for (const r of rows || []) {
    if (!r.infotext) continue;
    const k = r.infotext.toLowerCase();
    labelRows.set(k, [...(labelRows.get(k) || []), r]);
  }
}

/** A value of the text as its row's type; undefined when it does not parse. */
function rowValue(row, value) {
  if (row.type === 'integer') { const n = parseInt(value, 10); return Number.isFinite(n) ? n : undefined; }
  if (row.type === 'number') { const n = Number(value); return Number.isFinite(n) ? n : undefined; }
  if (row.type === 'boolean') return value === 'True' || value === 'true';
  return value; // strings and enums keep the text (A1111 names; the form matches them to options)
}

/**
 * Parses A1111 "parameters" text into lightfarm job params, through the parameter table's infotext
 * labels (see useParamRows): {prompt, negative_prompt, <row name>: value..., extra: {other keys}}.
 * "Size: WxH" fills the two rows labelled Size (width, height); older texts that glue the schedule to
 * the sampler ("DPM++ 2M Karras") are split. Unknown keys stay in `extra`. Returns null for empty text.
 */
export function parseA1111(text) {
  if (typeof text !== 'string' || !text.trim()) return null;
  const lines = text.replace(/\r\n?/g, '\n').split('\n');
  // The settings line is the last line that looks like "Key: value, Key: value" with Steps.
  let settingsIdx = -1;
  for (let i = lines.length - 1; i >= 0; i--) {
    if (/(^|,\s*)Steps:\s*\d+/.test(lines[i])) { settingsIdx = i; break; }
  }
  const head = settingsIdx >= 0 ? lines.slice(0, settingsIdx) : lines;
  const negIdx = head.findIndex((l) => l.startsWith('Negative prompt:'));
  const prompt = (negIdx >= 0 ? head.slice(0, negIdx) : head).join('\n').trim();
  const negative = negIdx >= 0
    ? [head[negIdx].slice('Negative prompt:'.length), ...head.slice(negIdx + 1)].join('\n').trim()
    : '';
  const p = { prompt, negative_prompt: negative, extra: {} };
  if (settingsIdx < 0) return p;
  for (const [key, value] of splitKeyValues(lines.slice(settingsIdx).join(', '))) {
    const rows = labelRows.get(key.toLowerCase());
    if (!rows) { p.extra[key] = value; continue; }
    if (rows.length === 2) { // "Size: WxH": the width row first, as the table lists them
      const m = /^(\d+)\s*x\s*(\d+)$/i.exec(value);
      if (m) { p[rows[0].name] = Number(m[1]); p[rows[1].name] = Number(m[2]); }
      continue;
    }
    const v = rowValue(rows[0], value);
    if (v !== undefined) p[rows[0].name] = v;
  }
  if (p.sampler && !p.scheduler) {
    for (const s of SCHEDULE_SUFFIXES) {
      if (p.sampler.endsWith(` ${s}`)) { p.scheduler = s; p.sampler = p.sampler.slice(0, -s.length - 1); break; }
    }
  }
  return p;
}

/** Reads a File/Blob: {params, text, chunks}. params is null when no A1111 text is found. */
export async function readParamsFromFile(file) {
  const chunks = await readPngText(await file.arrayBuffer());
  const text = chunks.parameters ?? chunks.Parameters ?? null;
  if (text) return { params: parseA1111(text), text, chunks };
  // Some tools store JSON (lightfarm's own "lightfarm" chunk, or ComfyUI's "prompt").
  for (const key of ['lightfarm', 'lf_params']) {
    if (chunks[key]) {
      try { return { params: JSON.parse(chunks[key]), text: chunks[key], chunks }; } catch { /* not JSON */ }
    }
  }
  return { params: null, text: null, chunks };
}
