// Shared helpers for rtgate integration tests: a real rtgate process on a free loopback port,
// real clients (curl, Node's fetch, the ws package). Every process started is stopped by pid.
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import net from 'node:net';
import WebSocket from 'ws';

const here = dirname(fileURLToPath(import.meta.url));
export const ROOT = join(here, '..', '..');
export const BIN = process.env.RTGATE_BIN || join(ROOT, 'build', 'rtgate');
export const SECRET = 'integration-secret-0123456789abcdef';
export const API_KEY = 'integration-api-key-0123456789abcdef';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Starts rtgate with the default config plus `overrides` (merged one level deep).
// Resolves to { url, port, proc, logs(), token(sub, ttl), stop(signal) }.
export async function startGateway(overrides = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'rtgate-it-'));
  const base = JSON.parse(readFileSync(join(ROOT, 'conf', 'rtgate.json'), 'utf8'));
  const cf = { ...base, log_level: 'info' };
  cf.listen = { address: '127.0.0.1', port: 0 };
  cf.auth = { jwt_secret: SECRET, api_keys: [API_KEY], default_topics: ['*'], default_publish: ['*'] };
  for (const [k, v] of Object.entries(overrides)) {
    cf[k] = v && typeof v === 'object' && !Array.isArray(v) ? { ...(cf[k] || {}), ...v } : v;
  }
  const cfgPath = join(dir, 'rtgate.json');
  writeFileSync(cfgPath, JSON.stringify(cf, null, 2));
  const proc = spawn(BIN, ['--config', cfgPath], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout.on('data', (d) => (out += d));
  proc.stderr.on('data', (d) => (out += d));
  let scheme = 'http';
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  const port = await new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('rtgate did not start:\n' + out)), 10000);
    const check = () => {
      if (proc.exitCode !== null || proc.signalCode !== null) return; // the exit handler rejects
      const m = out.match(/listening on (https?):\/\/127\.0\.0\.1:(\d+)/);
      if (m) { clearTimeout(t); scheme = m[1]; resolve(Number(m[2])); } else setTimeout(check, 20);
    };
    proc.on('exit', () => { clearTimeout(t); reject(new Error('rtgate exited:\n' + out)); });
    check();
  });
  const url = `${scheme}://127.0.0.1:${port}`;
  const gw = {
    url, port, proc, dir, cfgPath, exited,
    logs: () => out,
    token: (sub, ttl = 3600) =>
      execFileSync(BIN, ['token', '--sub', sub, '--ttl', String(ttl), '--config', cfgPath]).toString().trim(),
    // Sends `signal` and waits for the exit; resolves to { code, signal, ms }.
    async stop(signal = 'SIGTERM', timeoutMs = 15000) {
      if (proc.exitCode !== null || proc.signalCode !== null) return { code: proc.exitCode, signal: proc.signalCode, ms: 0 };
      const t0 = Date.now();
      proc.kill(signal);
      const killer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
      const r = await exited;
      clearTimeout(killer);
      rmSync(dir, { recursive: true, force: true });
      return { ...r, ms: Date.now() - t0 };
    },
  };
  return gw;
}

// fetch() that returns { status, headers, body (parsed JSON when it is JSON), text }.
export async function http(gw, path, { method = 'GET', headers = {}, body, token } = {}) {
  const h = { ...headers };
  if (token) h.authorization = `Bearer ${token}`;
  if (body !== undefined && typeof body !== 'string') {
    body = JSON.stringify(body);
    h['content-type'] = 'application/json';
  }
  const res = await fetch(gw.url + path, { method, headers: h, body });
  const text = await res.text();
  let json;
  try { json = JSON.parse(text); } catch { json = undefined; }
  return { status: res.status, headers: res.headers, body: json, text };
}

// Runs curl with args; resolves to { code, stdout, stderr }.
export function curl(args, { timeoutMs = 10000 } = {}) {
  return new Promise((resolve) => {
    const p = spawn('curl', ['-sS', ...args]);
    let stdout = '', stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    const t = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.on('exit', (code) => { clearTimeout(t); resolve({ code, stdout, stderr }); });
  });
}

// Parses an event-stream into events { id, event, data, retry, comment }.
export function parseSSE(text) {
  const events = [];
  for (const block of text.split('\n\n')) {
    if (!block.trim()) continue;
    const ev = { data: undefined };
    for (const line of block.split('\n')) {
      if (line.startsWith(':')) { ev.comment = line.slice(1).trim(); continue; }
      const i = line.indexOf(':');
      const field = i < 0 ? line : line.slice(0, i);
      let value = i < 0 ? '' : line.slice(i + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (field === 'data') ev.data = ev.data === undefined ? value : ev.data + '\n' + value;
      else ev[field] = value;
    }
    events.push(ev);
  }
  return events;
}

// An SSE stream read with curl -N. `events` fills as they arrive; close() stops curl by pid.
export function openSSE(gw, query, { headers = {} } = {}) {
  const args = ['-sN', ...Object.entries(headers).flatMap(([k, v]) => ['-H', `${k}: ${v}`]), `${gw.url}/v1/sse?${query}`];
  const p = spawn('curl', args);
  const s = { proc: p, raw: '', events: [] };
  p.stdout.on('data', (d) => {
    s.raw += d;
    s.events = parseSSE(s.raw.slice(0, s.raw.lastIndexOf('\n\n') + 2));
  });
  s.messages = () => s.events.filter((e) => e.data !== undefined && !e.event).map((e) => ({ ...JSON.parse(e.data), _id: e.id }));
  s.waitFor = async (pred, timeoutMs = 5000) => {
    const t0 = Date.now();
    while (!pred(s)) {
      if (Date.now() - t0 > timeoutMs) throw new Error('SSE wait timed out; got:\n' + s.raw.slice(-2000));
      await sleep(10);
    }
  };
  s.ended = new Promise((r) => p.on('exit', r));
  s.close = async () => { if (p.exitCode === null && p.signalCode === null) { p.kill('SIGTERM'); await s.ended; } };
  return s;
}

// A WebSocket client: frames collects parsed server frames; request() sends with a rid and
// resolves to the reply (ack/error/pong) with that rid.
export async function openWS(gw, token, { query = '', headers = {} } = {}) {
  const ws = new WebSocket(`ws://127.0.0.1:${gw.port}/v1/ws?${token ? 'token=' + token : ''}${query}`, { headers });
  const c = { ws, frames: [], closed: null, rid: 0 };
  c.closedP = new Promise((r) => ws.on('close', (code, reason) => { c.closed = { code, reason: reason.toString() }; r(c.closed); }));
  ws.on('message', (d) => c.frames.push(JSON.parse(d.toString())));
  await new Promise((resolve, reject) => {
    ws.on('open', resolve);
    ws.on('unexpected-response', (req, res) => {
      let b = '';
      res.on('data', (d) => (b += d));
      res.on('end', () => { const e = new Error('upgrade refused ' + res.statusCode); e.status = res.statusCode; e.body = b; reject(e); });
    });
    ws.on('error', reject);
  });
  c.messages = () => c.frames.filter((f) => f.type === 'message');
  c.send = (obj) => ws.send(typeof obj === 'string' ? obj : JSON.stringify(obj));
  c.waitFor = async (pred, timeoutMs = 5000) => {
    const t0 = Date.now();
    while (!pred(c)) {
      if (Date.now() - t0 > timeoutMs) throw new Error('WS wait timed out; frames: ' + JSON.stringify(c.frames.slice(-10)));
      await sleep(5);
    }
  };
  c.request = async (obj) => {
    const rid = ++c.rid;
    c.send({ ...obj, rid });
    await c.waitFor(() => c.frames.some((f) => f.rid === rid && f.type !== 'message'));
    return c.frames.find((f) => f.rid === rid && f.type !== 'message');
  };
  c.close = () => { ws.close(); return c.closedP; };
  return c;
}

// Publishes through the backend API; resolves to the JSON answer ({id, topic}).
export async function publish(gw, topic, data, extra = {}) {
  const r = await http(gw, '/v1/publish', { method: 'POST', headers: { 'x-api-key': API_KEY }, body: { topic, data, ...extra } });
  if (r.status !== 200) throw new Error(`publish ${r.status} ${r.text}`);
  return r.body;
}

// CPU seconds (user+system) the process has used, from /proc.
export function cpuSeconds(pid) {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) / 100; // utime, stime in clock ticks (100 Hz)
}

// A port nobody listens on right now (bind to port 0, read it, close).
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

// Polls pred() (may be async) every `every` ms until it is truthy; bounded by timeoutMs.
export async function waitFor(pred, timeoutMs, what, every = 20) {
  const t0 = Date.now();
  for (;;) {
    const v = await pred();
    if (v) return v;
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(every);
  }
}
