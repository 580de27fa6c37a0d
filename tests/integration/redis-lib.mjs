// Helpers for the Redis backplane tests: a real redis-server on a free loopback port (stopped by
// its pid), redis-cli, and a "cluster" of rtgate nodes sharing it.
import assert from 'node:assert/strict';
import { spawn, execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import net from 'node:net';
import { startGateway, http, sleep, API_KEY, freePort, waitFor } from './lib.mjs';
import { makeJwt, nowS } from './helpers.mjs';

// Fails loudly (not a skip) when Redis is missing: the project's deps script installs it.
export function requireRedis() {
  for (const bin of ['redis-server', 'redis-cli']) {
    try {
      execFileSync('sh', ['-c', `command -v ${bin}`], { stdio: 'pipe' });
    } catch {
      throw new Error(`${bin} is not on PATH: install Redis (the project's deps script does) to run redis.test.mjs`);
    }
  }
}

export { freePort, waitFor } from './lib.mjs';

// A redis-server without persistence. start() may be called again after stop() (same port).
export async function startRedis(port, extraArgs = []) {
  port = port || (await freePort());
  const dir = mkdtempSync(join(tmpdir(), 'rtgate-redis-'));
  const r = { port, dir, url: `redis://127.0.0.1:${port}/0`, proc: null, out: '', exited: null };
  r.start = async () => {
    const proc = spawn('redis-server', [
      '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
      '--dir', dir, '--protected-mode', 'no', '--loglevel', 'notice', ...extraArgs,
    ], { stdio: ['ignore', 'pipe', 'pipe'] });
    r.proc = proc;
    proc.stdout.on('data', (d) => (r.out += d));
    proc.stderr.on('data', (d) => (r.out += d));
    r.exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
    const mark = r.out.length;
    let closed = false;
    proc.on('close', () => (closed = true)); // after its output has been read
    await waitFor(() => {
      if (closed) throw new Error(`redis-server ${proc.spawnargs.slice(1).join(' ')} exited:\n` + r.out.slice(mark));
      return r.out.slice(mark).includes('Ready to accept connections');
    }, 10000, `redis-server on port ${port}`);
  };
  r.running = () => r.proc && r.proc.exitCode === null && r.proc.signalCode === null;
  r.stop = async (signal = 'SIGTERM') => {
    if (!r.running()) return;
    const killer = setTimeout(() => r.proc.kill('SIGKILL'), 10000);
    r.proc.kill(signal);
    await r.exited;
    clearTimeout(killer);
  };
  r.cliArgs = [];
  r.cli = (...args) => new Promise((resolve, reject) => {
    execFile('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...r.cliArgs, ...args], { timeout: 10000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`redis-cli ${args.join(' ')}: ${err.message} ${stderr}`));
      else resolve(stdout);
    });
  });
  // Subscribers of one channel, over all nodes.
  r.numsub = async (channel) => {
    const lines = (await r.cli('PUBSUB', 'NUMSUB', channel)).trim().split('\n');
    assert.equal(lines[0], channel, `PUBSUB NUMSUB answer: ${lines}`);
    return Number(lines[1]);
  };
  r.destroy = async () => {
    await r.stop();
    rmSync(dir, { recursive: true, force: true });
  };
  await r.start();
  return r;
}

export const tokenFor = (sub) => makeJwt({ sub, iat: nowS(), exp: nowS() + 3600 });

export async function readyz(gw) {
  return http(gw, '/readyz');
}

export async function waitReady(gw, timeoutMs = 15000) {
  await waitFor(async () => (await readyz(gw)).status === 200, timeoutMs, `${gw.url}/readyz 200`);
}

// Starts Redis and `nodes` rtgate nodes on it, waits for every /readyz 200 and runs fn(cl).
// cl = { redis, nodes: [gw...], kill(i) }. Afterwards every node still running is stopped with
// SIGTERM and, if fn passed, must exit 0; Redis is stopped by pid. On failure the logs of all
// nodes (and Redis) are attached to the error.
export async function withCluster({ nodes = 3, overrides = {}, redisArgs = [], cliArgs = [] } = {}, fn) {
  const redis = await startRedis(0, redisArgs);
  redis.cliArgs = cliArgs;
  const gws = [];
  const cl = { redis, nodes: gws };
  let failed = null;
  try {
    for (let i = 0; i < nodes; i++) {
      const bp = { type: 'redis', url: redis.url, ...(overrides.backplane || {}) };
      gws.push(await startGateway({ ...overrides, backplane: bp }));
    }
    for (const gw of gws) await waitReady(gw);
    await fn(cl);
  } catch (e) {
    failed = e;
  } finally {
    const results = [];
    for (const gw of gws) {
      const killed = gw.proc.signalCode === 'SIGKILL';
      const r = await gw.stop();
      results.push({ gw, r, killed });
      if (killed) rmSync(gw.dir, { recursive: true, force: true });
    }
    await redis.destroy();
    if (failed) {
      failed.message += results.map(({ gw, r }, i) =>
        `\n--- node ${i + 1} (${gw.url}) exit ${JSON.stringify(r)} log ---\n` + gw.logs().slice(-3000)).join('')
        + '\n--- redis log ---\n' + redis.out.slice(-1500);
      throw failed;
    }
    for (const [i, { gw, r, killed }] of results.entries()) {
      if (killed) continue;
      assert.equal(r.code, 0, `node ${i + 1} exit ${JSON.stringify(r)}\n` + gw.logs().slice(-3000));
      assert.equal(r.signal, null);
    }
  }
}

// POST /v1/publish without throwing: { status, body }.
export async function tryPublish(gw, topic, data) {
  const r = await http(gw, '/v1/publish', { method: 'POST', headers: { 'x-api-key': API_KEY }, body: { topic, data } });
  return { status: r.status, body: r.body, text: r.text };
}

// Runs task(i) for i in [0, n) with at most `limit` in flight.
export async function pool(n, limit, task) {
  let next = 0;
  const worker = async () => {
    for (;;) {
      const i = next++;
      if (i >= n) return;
      await task(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, n) }, worker));
}

// A small deterministic PRNG (mulberry32), so a failing run can be repeated with its seed.
export function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
