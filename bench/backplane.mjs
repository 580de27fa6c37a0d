#!/usr/bin/env node
// Benchmark: unicast fan-out through the Redis backplane vs the local one, in one run.
//
//   redis: one redis-server and two rtgate nodes on loopback; N WebSocket subscribers, each on
//          its own user:<i> topic, spread over both nodes; a publisher POSTs /v1/publish to
//          random users at RATE/s for SECONDS, alternating nodes.
//   local: the same load against one rtgate node with the embedded local backplane.
//
// Each message carries its send time; receivers compute publish-to-receipt latency and check
// per-user order, loss and duplicates. Prints one JSON line per scenario and a ratio line.
// Usage: node bench/backplane.mjs [--subs 10000] [--rate 1000] [--seconds 10]
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import net from 'node:net';
import http from 'node:http';
import WebSocket from 'ws';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const BIN = process.env.RTGATE_BIN || join(ROOT, 'build', 'rtgate');
const arg = (name, def) => {
  const i = process.argv.indexOf('--' + name);
  return i > 0 ? Number(process.argv[i + 1]) : def;
};
const SUBS = arg('subs', 10000), RATE = arg('rate', 1000), SECONDS = arg('seconds', 10);
const SECRET = 'bench-secret-0123456789abcdef', KEY = 'bench-api-key-0123456789abcdef';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)); });
  });
}

function waitFor(pred, ms, what) {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const tick = async () => {
      if (await pred()) return resolve();
      if (Date.now() - t0 > ms) return reject(new Error('timed out: ' + what));
      setTimeout(tick, 50);
    };
    tick();
  });
}

async function startNode(dir, name, backplane) {
  const port = await freePort();
  const cf = JSON.parse(readFileSync(join(ROOT, 'conf', 'rtgate.json'), 'utf8'));
  cf.listen = { address: '127.0.0.1', port };
  cf.log_level = 'warn';
  cf.auth = { jwt_secret: SECRET, api_keys: [KEY], default_topics: ['*'], default_publish: ['*'] };
  cf.limits = { ...cf.limits, max_connections: SUBS + 100, send_queue: 4096 };
  cf.history = { size: 1000 };
  cf.backplane = backplane;
  const path = join(dir, name + '.json');
  writeFileSync(path, JSON.stringify(cf));
  const proc = spawn(BIN, ['--config', path], { stdio: ['ignore', 'ignore', 'inherit'] });
  await waitFor(() => fetch(`http://127.0.0.1:${port}/readyz`).then((r) => r.status === 200, () => false), 15000, name + ' ready');
  return { port, proc, name };
}

function token(sub) {
  // HS256 JWT, as `rtgate token` makes
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  const body = b64({ alg: 'HS256', typ: 'JWT' }) + '.' + b64({ sub, iat: now, exp: now + 3600 });
  return body + '.' + createHmac('sha256', SECRET).update(body).digest('base64url');
}
import { createHmac } from 'node:crypto';

function cpuOf(pid) {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
}

async function run(label, nodes, extraPids = []) {
  const state = { got: 0, dups: 0, disorder: 0, lat: [], last: new Map(), seen: new Set() };
  const sockets = [];
  const t0 = Date.now();
  for (let i = 0; i < SUBS; i += 200) {
    const batch = [];
    for (let j = i; j < Math.min(i + 200, SUBS); j++) {
      const node = nodes[j % nodes.length];
      batch.push(new Promise((resolve, reject) => {
        const ws = new WebSocket(`ws://127.0.0.1:${node.port}/v1/ws?token=${token('u' + j)}`);
        ws.on('open', () => ws.send(JSON.stringify({ type: 'subscribe', topic: 'user:u' + j, rid: 1 })));
        ws.on('message', (d) => {
          const f = JSON.parse(d);
          if (f.type === 'ack') return resolve(ws);
          if (f.type !== 'message') return;
          const now = performance.timeOrigin + performance.now();
          const key = f.id + '/' + f.topic;
          if (state.seen.has(key)) { state.dups++; return; }
          state.seen.add(key);
          state.got++;
          state.lat.push(now - f.data.t);
          // the guarantee is id order per topic (the order Redis stored them in); two
          // concurrent publishes to one user may be stored in either order
          const [ms, sq] = f.id.split('-').map(BigInt);
          const prev = state.last.get(f.topic);
          if (prev !== undefined && (ms < prev[0] || (ms === prev[0] && sq <= prev[1]))) state.disorder++;
          state.last.set(f.topic, [ms, sq]);
        });
        ws.on('error', reject);
      }));
    }
    sockets.push(...(await Promise.all(batch)));
  }
  const connectS = (Date.now() - t0) / 1000;
  const agents = nodes.map(() => new http.Agent({ keepAlive: true, maxSockets: 32 }));
  const pids = [...nodes.map((n) => n.proc.pid), ...extraPids];
  const cpu0 = pids.map(cpuOf);
  let sent = 0, refused = 0, inflight = 0, seq = 0;
  const total = RATE * SECONDS, start = Date.now();
  const post = (node, agent, body) => new Promise((resolve) => {
    const req = http.request({ host: '127.0.0.1', port: node.port, path: '/v1/publish', method: 'POST', agent,
      headers: { 'x-api-key': KEY, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    });
    req.on('error', () => resolve(0));
    req.end(body);
  });
  while (seq < total) {
    const due = Math.floor(((Date.now() - start) / 1000) * RATE);
    while (seq < Math.min(due, total) && inflight < 512) {
      const n = seq % nodes.length, user = Math.floor(Math.random() * SUBS);
      const body = JSON.stringify({ topic: 'user:u' + user, data: { seq: seq++, t: performance.timeOrigin + performance.now() } });
      inflight++;
      post(nodes[n], agents[n], body).then((st) => { inflight--; if (st === 200) sent++; else refused++; });
    }
    await sleep(2);
  }
  await waitFor(() => inflight === 0 && state.got >= sent, 15000, 'deliveries').catch(() => {});
  const secs = (Date.now() - start) / 1000;
  const cpu = pids.map((p, i) => +(cpuOf(p) - cpu0[i]).toFixed(2));
  state.lat.sort((a, b) => a - b);
  const pct = (p) => +(state.lat[Math.min(state.lat.length - 1, Math.floor(p * state.lat.length))] || 0).toFixed(2);
  for (const ws of sockets) ws.terminate();
  agents.forEach((a) => a.destroy());
  const out = {
    scenario: label, subscribers: SUBS, nodes: nodes.length, rate: RATE, seconds: SECONDS,
    connect_s: +connectS.toFixed(2), published: sent, refused, delivered: state.got,
    loss: sent - state.got, duplicates: state.dups, out_of_order: state.disorder,
    deliveries_per_s: +(state.got / secs).toFixed(1),
    latency_ms: { p50: pct(0.5), p90: pct(0.9), p99: pct(0.99), max: pct(1) },
    server_cpu_s: cpu,
  };
  console.log(JSON.stringify(out));
  return out;
}

const dir = mkdtempSync(join(tmpdir(), 'rtgate-bench-'));
const procs = [];
try {
  const rport = await freePort();
  const redis = spawn('redis-server', ['--port', String(rport), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: 'ignore' });
  procs.push(redis);
  await waitFor(() => new Promise((r) => { const s = net.connect(rport, '127.0.0.1', () => { s.end(); r(true); }); s.on('error', () => r(false)); }), 10000, 'redis');
  const bp = { type: 'redis', url: `redis://127.0.0.1:${rport}/0` };
  const n1 = await startNode(dir, 'n1', bp), n2 = await startNode(dir, 'n2', bp);
  procs.push(n1.proc, n2.proc);
  const r = await run('redis', [n1, n2], [redis.pid]);
  n1.proc.kill('SIGTERM'); n2.proc.kill('SIGTERM');
  await sleep(500);
  const l1 = await startNode(dir, 'local', { type: 'local' });
  procs.push(l1.proc);
  const l = await run('local', [l1]);
  l1.proc.kill('SIGTERM');
  console.log(JSON.stringify({
    ratio_redis_to_local: {
      deliveries_per_s: +(r.deliveries_per_s / l.deliveries_per_s).toFixed(3),
      latency_p50: +(r.latency_ms.p50 / (l.latency_ms.p50 || 1)).toFixed(2),
      latency_p99: +(r.latency_ms.p99 / (l.latency_ms.p99 || 1)).toFixed(2),
    },
  }));
} finally {
  for (const p of procs) if (p.exitCode === null) p.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
}
