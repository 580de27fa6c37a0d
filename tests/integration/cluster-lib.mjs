// Helpers for cluster.test.mjs: HAProxy (mode tcp, docker/haproxy.cfg) in front of rtgate nodes
// on loopback, and clients that behave like browsers behind a balancer: they reconnect when
// their connection ends and resume from the last cursor they saw. Every process started here is
// stopped by its pid; every loop is bounded (a stop flag plus a cap on iterations).
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import http from 'node:http';
import { join } from 'node:path';
import WebSocket from 'ws';
import { ROOT, sleep, API_KEY } from './lib.mjs';
import { freePort, waitFor } from './redis-lib.mjs';
import { idCmp } from './helpers.mjs';

export const HAPROXY_CFG = join(ROOT, 'docker', 'haproxy.cfg');
export const DEMO_PAGE = join(ROOT, 'docker', 'demo', 'index.html');

// Fails loudly (not a skip) when HAProxy is missing: Debian's package is "haproxy".
export function requireHaproxy() {
  try {
    execFileSync('sh', ['-c', 'command -v haproxy'], { stdio: 'pipe' });
  } catch {
    throw new Error('haproxy is not on PATH: install it (Debian 12: apt-get install haproxy) to run cluster.test.mjs');
  }
}

// One HTTP request on a fresh TCP connection (no keep-alive), so that through HAProxy every
// request is a new connection and is balanced on its own. Resolves to
// { status, headers, text, body (parsed JSON when it is JSON) }; rejects on a network error.
export function request(base, path, { method = 'GET', headers = {}, body, token, timeoutMs = 10000, signal } = {}) {
  const u = new URL(path, base);
  const h = { ...headers };
  if (token) h.authorization = `Bearer ${token}`;
  if (body !== undefined && typeof body !== 'string') {
    body = JSON.stringify(body);
    h['content-type'] = 'application/json';
  }
  if (body !== undefined) h['content-length'] = Buffer.byteLength(body);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: u.hostname, port: u.port, path: u.pathname + u.search, method, headers: h, agent: false, signal }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (text += d));
      res.on('end', () => {
        clearTimeout(t);
        let json;
        try { json = JSON.parse(text); } catch { json = undefined; }
        resolve({ status: res.statusCode, headers: res.headers, text, body: json });
      });
      res.on('error', (e) => { clearTimeout(t); reject(e); });
    });
    const t = setTimeout(() => req.destroy(new Error(`request timed out after ${timeoutMs} ms`)), timeoutMs);
    req.on('error', (e) => { clearTimeout(t); reject(e); });
    req.end(body);
  });
}

// Un-labelled metrics of one node, read from the node directly (not through the balancer).
export async function metrics(gw) {
  const r = await request(gw.url, '/metrics');
  assert.equal(r.status, 200, r.text);
  const out = {};
  for (const m of r.text.matchAll(/^(rtgate_[a-z_]+) (\d+)$/gm)) out[m[1]] = Number(m[2]);
  return out;
}

// HAProxy with docker/haproxy.cfg, configured through its environment variables, on free
// loopback ports. servers: ['127.0.0.1:P1', '127.0.0.1:P2'].
export async function startHaproxy(servers, { checkInter = '200ms', idleTimeout } = {}) {
  const [port, statsPort, demoPort] = [await freePort(), await freePort(), await freePort()];
  const env = {
    ...process.env,
    RTGATE1_ADDR: servers[0],
    RTGATE2_ADDR: servers[1],
    RTGATE_LB_BIND: `127.0.0.1:${port}`,
    HAPROXY_STATS_BIND: `127.0.0.1:${statsPort}`,
    RTGATE_DEMO_BIND: `127.0.0.1:${demoPort}`,
    RTGATE_DEMO_PAGE: DEMO_PAGE,
    RTGATE_CHECK_INTER: checkInter,
  };
  if (idleTimeout) env.RTGATE_LB_TIMEOUT = idleTimeout;
  const proc = spawn('haproxy', ['-f', HAPROXY_CFG, '-db'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout.on('data', (d) => (out += d));
  proc.stderr.on('data', (d) => (out += d));
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  const lb = {
    proc, port, url: `http://127.0.0.1:${port}`, statsUrl: `http://127.0.0.1:${statsPort}/stats;csv`,
    demoUrl: `http://127.0.0.1:${demoPort}/`, logs: () => out, exited,
    running: () => proc.exitCode === null && proc.signalCode === null,
    // { n1: 'UP' | 'DOWN' | 'UP 1/2' | ..., n2: ... } as HAProxy's health checks see them.
    async servers() {
      const r = await request(lb.statsUrl.replace(/;csv$/, ''), '/stats;csv', { timeoutMs: 3000 });
      const [head, ...rows] = r.text.trim().split('\n');
      const cols = head.replace(/^# /, '').split(',');
      const st = {};
      for (const row of rows) {
        const f = row.split(',');
        const rec = Object.fromEntries(cols.map((c, i) => [c, f[i]]));
        if (rec.pxname === 'rtgate_nodes' && rec.svname !== 'BACKEND') st[rec.svname] = rec.status;
      }
      return st;
    },
    async waitServers(want, timeoutMs = 15000) {
      let last;
      await waitFor(async () => {
        last = await lb.servers().catch((e) => ({ error: e.message }));
        return Object.entries(want).every(([k, v]) => last[k] === v);
      }, timeoutMs, `HAProxy to see ${JSON.stringify(want)} (last: ${JSON.stringify(last)})`, 50);
    },
    // SIGTERM (with -db: a hard stop), then SIGKILL after 5 s; by pid.
    async stop() {
      if (!lb.running()) return exited;
      const killer = setTimeout(() => proc.kill('SIGKILL'), 5000);
      proc.kill('SIGTERM');
      const r = await exited;
      clearTimeout(killer);
      return r;
    },
  };
  await waitFor(async () => {
    if (!lb.running()) throw new Error('haproxy exited:\n' + out);
    return lb.servers().then(() => true, () => false);
  }, 10000, 'haproxy stats page', 50);
  return lb;
}

// The node (index into gws) whose rtgate_streams grows by one while connect() runs.
export async function landing(gws, connect) {
  const before = await Promise.all(gws.map(async (g) => (await metrics(g)).rtgate_streams));
  await connect();
  let now;
  await waitFor(async () => {
    now = await Promise.all(gws.map(async (g) => (await metrics(g)).rtgate_streams));
    return now.reduce((a, b) => a + b, 0) === before.reduce((a, b) => a + b, 0) + 1;
  }, 10000, 'one more stream on some node');
  const grew = now.map((n, i) => n - before[i]);
  assert.equal(grew.filter((d) => d === 1).length, 1, `streams before ${before} after ${now}`);
  return grew.indexOf(1);
}

const MAX_CONNECTS = 1000; // per client: bounds every reconnect loop
const backoff = () => sleep(30 + Math.floor(Math.random() * 40));

function baseClient(kind, lb, { token, topic, cursor }) {
  return {
    kind, lb, token, topic, cursor: cursor || '',
    received: [], // envelopes, in arrival order
    resets: [], refused: [], errors: [], closes: [], retries: [],
    connects: 0, live: false, stopped: false,
  };
}

// A WebSocket client subscribed to one topic. It reconnects (after a short backoff) whenever its
// socket closes or is refused, and resubscribes from the cursor of the last message (or ack).
export function wsClient(lb, opts) {
  const c = baseClient('ws', lb, opts);
  let rid = 0;
  const pending = new Map();
  const once = () => new Promise((resolve) => {
    const ws = new WebSocket(`ws://127.0.0.1:${lb.port}/v1/ws?token=${c.token}`);
    c.ws = ws;
    let subRid = 0;
    ws.on('open', () => {
      c.connects++;
      subRid = ++rid;
      ws.send(JSON.stringify({ type: 'subscribe', topic: c.topic, rid: subRid, ...(c.cursor && { cursor: c.cursor }) }));
    });
    ws.on('message', (d) => {
      const f = JSON.parse(d.toString());
      if (f.type === 'message' && f.topic === c.topic) {
        c.received.push(f);
        c.cursor = f.cursor;
      } else if (f.type === 'reset') {
        c.resets.push(f);
      } else if (f.rid === subRid && f.type === 'ack') {
        if (f.cursor) c.cursor = f.cursor;
        if (f.recovered === false) c.resets.push(f);
        c.live = true;
      } else if (f.rid !== undefined && pending.has(f.rid)) {
        pending.get(f.rid)(f);
        pending.delete(f.rid);
      } else if (f.type === 'error') {
        c.errors.push(f);
      }
    });
    ws.on('error', (e) => c.errors.push(e.message)); // a refused upgrade: "Unexpected server response: 503"
    ws.on('close', (code, reason) => {
      c.live = false;
      if (ws.readyState === WebSocket.CLOSED && subRid) c.closes.push({ code, reason: reason.toString(), at: Date.now() });
      resolve();
    });
  });
  c.done = (async () => {
    for (let i = 0; i < MAX_CONNECTS && !c.stopped; i++) {
      await once();
      if (!c.stopped) { c.retries.push(Date.now()); await backoff(); }
    }
  })();
  // A request on the current connection ({type:'send',...}); resolves to its reply.
  c.request = (obj, timeoutMs = 5000) => new Promise((resolve, reject) => {
    const r = ++rid;
    const t = setTimeout(() => { pending.delete(r); reject(new Error(`no reply to ${JSON.stringify(obj)}`)); }, timeoutMs);
    pending.set(r, (f) => { clearTimeout(t); resolve(f); });
    c.ws.send(JSON.stringify({ ...obj, rid: r }));
  });
  c.stop = async () => { c.stopped = true; c.ws?.terminate(); await c.done; };
  return c;
}

// An EventSource-like client: GET /v1/sse?topics=T, resumed with Last-Event-ID; live once the
// stream's first block (the retry: line, written when the topic is live) has arrived.
export function sseClient(lb, opts) {
  const c = baseClient('sse', lb, opts);
  const handle = (block) => {
    const ev = {};
    for (const line of block.split('\n')) {
      if (!line || line.startsWith(':')) continue;
      const i = line.indexOf(':');
      const field = i < 0 ? line : line.slice(0, i);
      let value = i < 0 ? '' : line.slice(i + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      ev[field] = field === 'data' && ev.data !== undefined ? ev.data + '\n' + value : value;
    }
    if (ev.retry !== undefined) c.live = true;
    if (ev.event === 'reset') c.resets.push(JSON.parse(ev.data));
    else if (ev.data !== undefined) {
      const m = JSON.parse(ev.data);
      m._cursor = ev.id;
      c.received.push(m);
    }
    if (ev.id) c.cursor = ev.id;
  };
  const once = () => new Promise((resolve) => {
    const q = new URLSearchParams({ topics: c.topic, token: c.token });
    const req = http.get({ host: '127.0.0.1', port: lb.port, path: `/v1/sse?${q}`, agent: false,
      headers: c.cursor ? { 'last-event-id': c.cursor } : {} }, (res) => {
      if (res.statusCode !== 200) {
        c.refused.push(res.statusCode);
        res.resume();
        res.on('close', resolve);
        return;
      }
      c.connects++;
      let buf = '';
      res.setEncoding('utf8');
      res.on('data', (d) => {
        buf += d;
        for (let i; (i = buf.indexOf('\n\n')) >= 0;) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          handle(block);
        }
      });
      res.on('error', (e) => c.errors.push(e.message));
      res.on('close', () => {
        c.live = false;
        c.closes.push({ complete: res.complete, at: Date.now() });
        resolve();
      });
    });
    c.req = req;
    req.on('error', (e) => { c.errors.push(e.message); resolve(); });
  });
  c.done = (async () => {
    for (let i = 0; i < MAX_CONNECTS && !c.stopped; i++) {
      await once();
      if (!c.stopped) { c.retries.push(Date.now()); await backoff(); }
    }
  })();
  c.stop = async () => { c.stopped = true; c.req?.destroy(); await c.done; };
  return c;
}

// A long-polling (hold=true, ?timeout=timeoutS) or polling (every intervalMs) client. It needs a
// starting cursor (see cursorNow) so that nothing published meanwhile is missed.
export function pollClient(lb, { hold, timeoutS = 2, intervalMs = 50, ...opts }) {
  const c = baseClient(hold ? 'longpoll' : 'poll', lb, opts);
  c.answers = 0;
  const ac = new AbortController();
  c.done = (async () => {
    for (let i = 0; i < 100 * MAX_CONNECTS && !c.stopped; i++) {
      const q = new URLSearchParams({ topics: c.topic, cursor: c.cursor, ...(hold && { timeout: timeoutS }) });
      try {
        c.live = true;
        const r = await request(lb.url, `/v1/${hold ? 'longpoll' : 'poll'}?${q}`, { token: c.token, timeoutMs: (timeoutS + 10) * 1000, signal: ac.signal });
        if (r.status === 200) {
          c.answers++;
          if (r.body.recovered === false) c.resets.push(r.body);
          c.received.push(...r.body.messages);
          c.cursor = r.body.cursor;
          if (!hold && !r.body.more) await sleep(intervalMs);
          continue;
        }
        c.refused.push(r.status);
      } catch (e) {
        if (c.stopped) break;
        c.errors.push(e.message);
      }
      c.retries.push(Date.now());
      await backoff();
    }
  })();
  c.stop = async () => { c.stopped = true; ac.abort(); await c.done; };
  return c;
}

// A cursor at "now" for one topic, from a simple poll without a cursor.
export async function cursorNow(base, token, topic) {
  const r = await request(base, `/v1/poll?topics=${topic}`, { token });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.body.messages, []);
  return r.body.cursor;
}

// Publishes {seq, attempt} to `topic` through the balancer, one message after the other, each
// on a new connection. A 503 (the node is draining, or lost Redis) is retried with the same seq;
// so is a request whose connection broke: its outcome is unknown (the node may have stored it
// before it died), and it is recorded as such.
export function publisher(lb, topic, { intervalMs = 10, maxMessages = 100000 } = {}) {
  const p = { topic, accepted: [], refused: [], unknown: [], attempts: 0, stopped: false };
  p.done = (async () => {
    for (let seq = 0; seq < maxMessages && !p.stopped; seq++) {
      for (let tries = 0; ; tries++) {
        assert.ok(tries < 500, `publish of seq ${seq} refused 500 times: ${JSON.stringify(p.refused.slice(-3))}`);
        const attempt = ++p.attempts;
        try {
          const r = await request(lb.url, '/v1/publish', { method: 'POST', headers: { 'x-api-key': API_KEY }, body: { topic, data: { seq, attempt } }, timeoutMs: 5000 });
          if (r.status === 200) {
            p.accepted.push({ id: r.body.id, seq, attempt, at: Date.now() });
            break;
          }
          p.refused.push({ seq, attempt, status: r.status, error: r.body && r.body.error, at: Date.now() });
        } catch (e) {
          p.unknown.push({ seq, attempt, error: e.message, at: Date.now() });
        }
        await sleep(20);
      }
      await sleep(intervalMs);
    }
  })();
  p.stop = async () => { p.stopped = true; await p.done; };
  p.waitFor = (n, timeoutMs = 10000) => waitFor(() => p.accepted.length >= n, timeoutMs, `${n} accepted publishes`);
  return p;
}

// Every message the publisher had accepted arrived at client c exactly once and in order. Any
// other message must be a publish whose outcome was unknown (its connection broke).
export function assertExactlyOnce(c, p, what) {
  const ids = c.received.map((m) => m.id);
  for (let i = 1; i < ids.length; i++) {
    assert.ok(idCmp(ids[i - 1], ids[i]) < 0, `${what}: ids not strictly increasing at ${i}: ${ids[i - 1]} then ${ids[i]}`);
  }
  const accepted = new Map(p.accepted.map((a) => [a.id, a]));
  const unknown = new Set(p.unknown.map((u) => u.attempt));
  assert.deepEqual(ids.filter((id) => accepted.has(id)), p.accepted.map((a) => a.id), `${what}: accepted messages`);
  for (const m of c.received) {
    assert.equal(m.topic, p.topic, `${what}: topic`);
    const a = accepted.get(m.id);
    if (!a) assert.ok(unknown.has(m.data.attempt), `${what}: message ${JSON.stringify(m)} was never published`);
    else assert.deepEqual(m.data, { seq: a.seq, attempt: a.attempt }, `${what}: data of ${m.id}`);
  }
  assert.deepEqual(c.resets, [], `${what}: resets`);
}
