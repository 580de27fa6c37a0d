// Extra helpers for sse/websocket/api integration tests (on top of lib.mjs).
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import net from 'node:net';
import WebSocket from 'ws';
import { startGateway, http, sleep, SECRET, API_KEY } from './lib.mjs';

// Starts a gateway, runs fn(gw), then stops it with SIGTERM and checks it exits 0.
// The gateway's log is attached to any failure.
export async function withGateway(overrides, fn) {
  const gw = await startGateway(overrides);
  let failed = null;
  try {
    await fn(gw);
  } catch (e) {
    failed = e;
  } finally {
    const r = await gw.stop();
    if (failed) {
      failed.message += '\n--- rtgate log ---\n' + gw.logs().slice(-4000);
      throw failed;
    }
    assert.equal(r.code, 0, 'rtgate exit code\n' + gw.logs());
    assert.equal(r.signal, null);
  }
}

// Polls pred() (may be async) every 10 ms until it is truthy; bounded by timeoutMs.
export async function waitUntil(pred, timeoutMs = 10000, what = 'condition') {
  const t0 = Date.now();
  for (;;) {
    const v = await pred();
    if (v) return v;
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(10);
  }
}

// An HS256 JWT signed with `secret` (the gateway's by default).
export function makeJwt(claims, { secret = SECRET, header = { alg: 'HS256', typ: 'JWT' } } = {}) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const hp = `${b64(header)}.${b64(claims)}`;
  return `${hp}.${createHmac('sha256', secret).update(hp).digest('base64url')}`;
}

export const nowS = () => Math.floor(Date.now() / 1000);

// "r1|topic|epoch|id|topic|epoch|id..." -> [{topic, epoch, id}]
export function decodeCursor(c) {
  const raw = Buffer.from(c, 'base64url').toString();
  const f = raw.split('|');
  assert.equal(f[0], 'r1', `cursor ${raw}`);
  assert.equal((f.length - 1) % 3, 0, `cursor ${raw}`);
  const out = [];
  for (let i = 1; i < f.length; i += 3) out.push({ topic: f[i], epoch: f[i + 1], id: f[i + 2] });
  return out;
}

export function encodeCursor(parts) {
  return Buffer.from(['r1', ...parts.flatMap((p) => [p.topic, p.epoch, p.id])].join('|')).toString('base64url');
}

// Compares message ids "ms-seq" numerically.
export function idCmp(a, b) {
  const [am, as] = a.split('-').map(BigInt), [bm, bs] = b.split('-').map(BigInt);
  return am !== bm ? (am < bm ? -1 : 1) : as === bs ? 0 : as < bs ? -1 : 1;
}

// Value of one un-labelled metric from GET /metrics.
export async function metric(gw, name) {
  const r = await http(gw, '/metrics');
  assert.equal(r.status, 200);
  const m = r.text.match(new RegExp(`^${name} (\\d+)$`, 'm'));
  assert.ok(m, `metric ${name} not in:\n${r.text}`);
  return Number(m[1]);
}

// Publishes n messages one after the other (each answered before the next) via POST /v1/publish.
export async function publishSeq(gw, topic, n, data = (i) => i, start = 0) {
  const ids = [];
  for (let i = start; i < start + n; i++) {
    const r = await http(gw, '/v1/publish', { method: 'POST', headers: { 'x-api-key': API_KEY }, body: { topic, data: data(i) } });
    assert.equal(r.status, 200, r.text);
    ids.push(r.body.id);
  }
  return ids;
}

// Tries a WebSocket upgrade; resolves to { status, body, headers } if refused or { open: true }.
export function tryUpgrade(gw, pathAndQuery, headers = {}) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${gw.port}${pathAndQuery}`, { headers });
    const t = setTimeout(() => { ws.terminate(); reject(new Error('upgrade attempt timed out')); }, 10000);
    ws.on('unexpected-response', (req, res) => {
      let b = '';
      res.on('data', (d) => (b += d));
      res.on('end', () => {
        clearTimeout(t);
        let body;
        try { body = JSON.parse(b); } catch { body = b; }
        resolve({ status: res.statusCode, body, headers: res.headers });
        req.destroy();
      });
    });
    ws.on('open', () => { clearTimeout(t); ws.close(); resolve({ open: true }); });
    ws.on('error', (e) => { clearTimeout(t); reject(e); });
  });
}

// Sends raw bytes on a fresh TCP connection and collects what comes back until the server
// closes or `ms` passes. Resolves to { data, closedByServer }.
export function rawExchange(gw, payload, ms = 3000) {
  return new Promise((resolve) => {
    const s = net.connect(gw.port, '127.0.0.1');
    let data = '', done = false;
    const finish = (closedByServer) => { if (!done) { done = true; clearTimeout(t); s.destroy(); resolve({ data, closedByServer }); } };
    const t = setTimeout(() => finish(false), ms);
    s.on('data', (d) => (data += d));
    s.on('end', () => finish(true));
    s.on('error', () => finish(true));
    s.write(payload);
  });
}
