#!/usr/bin/env node
// Benchmark: the same unicast load over 1, 2 and 3 Redis shards (backplane.shards), and over
// 1 and 2 rtgate processes sharing one port (listen.reuse_port).
//
//   shards:    S redis-servers (S = 1, 2, 3), two rtgate nodes with backplane.shards; N
//              WebSocket subscribers on user:<i>, spread over both nodes; publishers POST
//              /v1/publish to random users as fast as a window of W requests in flight allows,
//              for SECONDS, alternating nodes (a closed loop: the offered load is whatever the
//              slowest part lets through).
//   reuseport: one Redis, P rtgate processes (P = 1, 2) on one port with reuse_port; the
//              same load, every connection to the shared port.
//
// Prints one JSON line per run: delivered msg/s, p50/p99 publish-to-receipt latency, loss,
// and the CPU seconds each process used (rtgate nodes, redis-servers, this load generator),
// then the ratios and which part was the bound (the busiest process relative to one core).
//   cluster:   a 3-master Redis Cluster (backplane.type "redis-cluster"), two nodes, same load.
//
// Usage: node bench/scaleout.mjs [--mode shards|cluster|reuseport|both] [--subs 2000] [--seconds 8]
//        [--window 256]
import { spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdtempSync, writeFileSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import net from 'node:net';
import http from 'node:http';
import WebSocket from 'ws';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const BIN = process.env.RTGATE_BIN || join(ROOT, 'build', 'rtgate');
const opt = (name, def) => {
  const i = process.argv.indexOf('--' + name);
  return i > 0 ? process.argv[i + 1] : def;
};
const MODE = opt('mode', 'both'), SUBS = Number(opt('subs', 2000));
const SECONDS = Number(opt('seconds', 8)), WINDOW = Number(opt('window', 256));
const SECRET = 'bench-secret-0123456789abcdef', KEY = 'bench-api-key-0123456789abcdef';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const freePort = () => new Promise((resolve) => {
  const s = net.createServer().listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)); });
});

async function waitFor(pred, ms, what) {
  const t0 = Date.now();
  while (!(await pred())) {
    if (Date.now() - t0 > ms) throw new Error('timed out: ' + what);
    await sleep(50);
  }
}

const cpuOf = (pid) => {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch { return 0; }
};

function token(sub) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  const body = b64({ alg: 'HS256', typ: 'JWT' }) + '.' + b64({ sub, iat: now, exp: now + 3600 });
  return body + '.' + createHmac('sha256', SECRET).update(body).digest('base64url');
}

async function startRedis(dir, procs) {
  const port = await freePort();
  const p = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: 'ignore' });
  procs.push(p);
  await waitFor(() => new Promise((r) => { const s = net.connect(port, '127.0.0.1', () => { s.end(); r(true); }); s.on('error', () => r(false)); }), 10000, 'redis');
  return { port, proc: p, url: `redis://127.0.0.1:${port}/0` };
}

async function startNode(dir, name, backplane, procs, listen = {}) {
  const port = listen.port || (await freePort());
  const cf = JSON.parse(readFileSync(join(ROOT, 'conf', 'rtgate.json'), 'utf8'));
  cf.listen = { address: '127.0.0.1', port, ...listen };
  cf.log_level = 'warn';
  cf.auth = { jwt_secret: SECRET, api_keys: [KEY], default_topics: ['*'], default_publish: ['*'] };
  cf.limits = { ...cf.limits, max_connections: SUBS + 1000, send_queue: 4096 };
  cf.backplane = backplane;
  cf.presence = { enabled: false }; // the load under test is fan-out
  const path = join(dir, name + '.json');
  writeFileSync(path, JSON.stringify(cf));
  const proc = spawn(BIN, ['--config', path], { stdio: ['ignore', 'ignore', 'inherit'] });
  procs.push(proc);
  await waitFor(() => fetch(`http://127.0.0.1:${port}/readyz`).then((r) => r.status === 200, () => false), 15000, name + ' ready');
  return { port, proc, name };
}

// ports: where clients connect (one entry per node, or the one shared port)
async function run(label, ports, pids) {
  const st = { got: 0, lat: [], seen: new Set(), dups: 0 };
  const sockets = [];
  for (let i = 0; i < SUBS; i += 200) {
    const batch = [];
    for (let j = i; j < Math.min(i + 200, SUBS); j++) {
      batch.push(new Promise((resolve, reject) => {
        const ws = new WebSocket(`ws://127.0.0.1:${ports[j % ports.length]}/v1/ws?token=${token('u' + j)}`);
        ws.on('open', () => ws.send(JSON.stringify({ type: 'subscribe', topic: 'user:u' + j, rid: 1 })));
        ws.on('message', (d) => {
          const f = JSON.parse(d);
          if (f.type === 'ack') return resolve(ws);
          if (f.type !== 'message') return;
          const key = f.id + '/' + f.topic;
          if (st.seen.has(key)) { st.dups++; return; }
          st.seen.add(key);
          st.got++;
          st.lat.push(performance.timeOrigin + performance.now() - f.data.t);
        });
        ws.on('error', reject);
      }));
    }
    sockets.push(...(await Promise.all(batch)));
  }
  const agents = ports.map(() => new http.Agent({ keepAlive: true, maxSockets: 64 }));
  const all = [...pids, process.pid];
  const cpu0 = all.map(cpuOf);
  let sent = 0, refused = 0, inflight = 0, seq = 0;
  const start = Date.now(), end = start + SECONDS * 1000;
  const post = (i) => new Promise((resolve) => {
    const body = JSON.stringify({ topic: 'user:u' + Math.floor(Math.random() * SUBS), data: { s: seq++, t: performance.timeOrigin + performance.now() } });
    const req = http.request({ host: '127.0.0.1', port: ports[i], path: '/v1/publish', method: 'POST', agent: agents[i],
      headers: { 'x-api-key': KEY, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    });
    req.on('error', () => resolve(0));
    req.end(body);
  });
  await new Promise((done) => {
    const pump = () => {
      while (Date.now() < end && inflight < WINDOW) {
        const i = seq % ports.length;
        inflight++;
        post(i).then((code) => { inflight--; if (code === 200) sent++; else refused++; pump(); });
      }
      if (Date.now() >= end && inflight === 0) done();
    };
    pump();
    const t = setInterval(() => { if (Date.now() >= end && inflight === 0) { clearInterval(t); done(); } }, 20);
  });
  await waitFor(async () => st.got >= sent, 10000, 'deliveries').catch(() => {});
  const secs = (Date.now() - start) / 1000;
  const cpu = all.map((p, i) => +(cpuOf(p) - cpu0[i]).toFixed(2));
  st.lat.sort((a, b) => a - b);
  const pct = (p) => +(st.lat[Math.min(st.lat.length - 1, Math.floor(p * st.lat.length))] || 0).toFixed(2);
  for (const ws of sockets) ws.terminate();
  agents.forEach((a) => a.destroy());
  const out = {
    run: label, subscribers: SUBS, seconds: SECONDS, window: WINDOW, published: sent, refused,
    delivered: st.got, loss: sent - st.got, duplicates: st.dups,
    delivered_per_s: +(st.got / secs).toFixed(1),
    latency_ms: { p50: pct(0.5), p99: pct(0.99) },
    cpu_s: cpu, // rtgate nodes, then redis-servers, the last is this load generator
    // what the whole pipeline delivers per CPU second: flat when adding shards costs nothing,
    // even on a box too small for the added capacity to show
    delivered_per_cpu_s: +(st.got / cpu.reduce((a, b) => a + b, 0)).toFixed(1),
    cores_used: +(cpu.reduce((a, b) => a + b, 0) / secs).toFixed(2),
    busiest: null,
  };
  const busiest = cpu.indexOf(Math.max(...cpu));
  out.busiest = { process: busiest === cpu.length - 1 ? 'load generator (node)' : `server #${busiest}`, core_share: +(cpu[busiest] / secs).toFixed(2) };
  console.log(JSON.stringify(out));
  return out;
}

const dir = mkdtempSync(join(tmpdir(), 'rtgate-scale-'));
const procs = [];
const stopAll = async () => {
  for (const p of procs.splice(0).reverse()) if (p.exitCode === null && p.signalCode === null) { p.kill('SIGTERM'); await new Promise((r) => p.on('exit', r)); }
};
try {
  const results = {};
  if (MODE === 'shards' || MODE === 'both') {
    for (const s of [1, 2, 3]) {
      const rs = [];
      for (let i = 0; i < s; i++) rs.push(await startRedis(dir, procs));
      const bp = { type: 'redis', shards: rs.map((r) => r.url) };
      const a = await startNode(dir, `s${s}a`, bp, procs), b = await startNode(dir, `s${s}b`, bp, procs);
      results[`shards_${s}`] = await run(`${s} shard(s), 2 nodes`, [a.port, b.port], [a.proc.pid, b.proc.pid, ...rs.map((r) => r.proc.pid)]);
      await stopAll();
    }
    const r1 = results.shards_1.delivered_per_s;
    console.log(JSON.stringify({
      shards_ratio_to_1: { '2': +(results.shards_2.delivered_per_s / r1).toFixed(3), '3': +(results.shards_3.delivered_per_s / r1).toFixed(3) },
      linear_would_be: { '2': 2, '3': 3 },
    }));
  }
  if (MODE === 'cluster' || MODE === 'both') {
    // three masters with --cluster-enabled yes, joined by redis-cli --cluster create
    const ms = [];
    for (let i = 0; i < 3; i++) {
      let port;
      do port = await freePort(); while (port > 55000 || !(await new Promise((r) => { const s = net.createServer(); s.once('error', () => r(false)); s.listen(port + 10000, '127.0.0.1', () => s.close(() => r(true))); })));
      const d = mkdtempSync(join(dir, 'c'));
      const p = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', d, '--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf'], { stdio: 'ignore' });
      procs.push(p);
      await waitFor(() => new Promise((r) => { const s = net.connect(port, '127.0.0.1', () => { s.end(); r(true); }); s.on('error', () => r(false)); }), 10000, 'cluster node');
      ms.push({ port, proc: p, url: `redis://127.0.0.1:${port}/0` });
    }
    await new Promise((resolve, reject) => {
      const c = spawn('redis-cli', ['--cluster', 'create', ...ms.map((m) => `127.0.0.1:${m.port}`), '--cluster-yes'], { stdio: 'ignore' });
      c.on('exit', (code) => (code === 0 ? resolve() : reject(new Error('cluster create ' + code))));
    });
    const bp = { type: 'redis-cluster', seeds: ms.map((m) => m.url) };
    await sleep(2000); // the masters agree on the configuration
    const a = await startNode(dir, 'ca', bp, procs), b = await startNode(dir, 'cb', bp, procs);
    results.cluster_3 = await run('3-master cluster, 2 nodes', [a.port, b.port], [a.proc.pid, b.proc.pid, ...ms.map((m) => m.proc.pid)]);
    await stopAll();
    if (results.shards_1)
      console.log(JSON.stringify({ cluster_ratio_to_1_shard: +(results.cluster_3.delivered_per_s / results.shards_1.delivered_per_s).toFixed(3) }));
  }
  if (MODE === 'reuseport' || MODE === 'both') {
    for (const n of [1, 2]) {
      const r = await startRedis(dir, procs);
      const port = await freePort();
      const nodes = [];
      for (let i = 0; i < n; i++) nodes.push(await startNode(dir, `p${n}-${i}`, { type: 'redis', url: r.url }, procs, { port, reuse_port: true }));
      results[`procs_${n}`] = await run(`${n} process(es) on one port`, [port], [...nodes.map((x) => x.proc.pid), r.proc.pid]);
      await stopAll();
    }
    console.log(JSON.stringify({ reuseport_ratio_2_to_1: +(results.procs_2.delivered_per_s / results.procs_1.delivered_per_s).toFixed(3) }));
  }
} finally {
  await stopAll();
  rmSync(dir, { recursive: true, force: true });
}
