// Redis backplane connection set-up: AUTH with a password and with an ACL user, database
// selection, Redis down at start (the hiredis adapter must report the failed connect), and a
// server that accepts but never answers (connect timeout). Real redis-server, real rtgate.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import net from 'node:net';
import { startGateway, http, sleep, API_KEY, freePort, waitFor } from './lib.mjs';

const until = (pred, ms, what) => waitFor(pred, ms, what, 50);


async function redis(port, extra = []) {
  const dir = mkdtempSync(join(tmpdir(), 'rtgate-redis-auth-'));
  const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '',
    '--appendonly', 'no', '--dir', dir, ...extra], { stdio: 'ignore' });
  const cli = (...args) => execFileSync('redis-cli', ['-p', String(port), ...args]).toString().trim();
  await until(() => new Promise((r) => { const s = net.connect(port, '127.0.0.1', () => { s.end(); r(true); }); s.on('error', () => r(false)); }), 10000, 'redis');
  return {
    proc, cli,
    stop: async () => { proc.kill('SIGTERM'); await new Promise((r) => proc.exitCode !== null ? r() : proc.on('exit', r)); rmSync(dir, { recursive: true, force: true }); },
  };
}

const ready = async (gw) => (await http(gw, '/readyz')).status === 200;
const pub = (gw, topic, data) => http(gw, '/v1/publish', { method: 'POST', headers: { 'x-api-key': API_KEY }, body: { topic, data } });

test('AUTH with a password, and an ACL user; a wrong password stays unready and refuses publishes', async () => {
  const port = await freePort();
  const r = await redis(port, ['--requirepass', 'sekret-pw']);
  const nodes = [];
  try {
    const good = await startGateway({ backplane: { type: 'redis', url: `redis://:sekret-pw@127.0.0.1:${port}/0` } });
    nodes.push(good);
    await until(() => ready(good), 10000, 'ready with password');
    assert.equal((await pub(good, 'room:a', 1)).status, 200);

    const bad = await startGateway({ backplane: { type: 'redis', url: `redis://127.0.0.1:${port}/0`, password: 'wrong-pw' } });
    nodes.push(bad);
    await sleep(1500);
    assert.deepEqual((await http(bad, '/readyz')).body, { status: 'backplane unavailable' });
    const p = await pub(bad, 'room:a', 2);
    assert.equal(p.status, 503);
    assert.deepEqual(p.body, { error: 'backplane unavailable' });
    assert.match(bad.logs(), /refused setup/);
    assert.doesNotMatch(bad.logs(), /wrong-pw/); // no secrets in logs

    r.cli('-a', 'sekret-pw', '--no-auth-warning', 'ACL', 'SETUSER', 'gw', 'on', '>gw-pass-123', '~*', '&*', '+@all');
    const acl = await startGateway({ backplane: { type: 'redis', url: `redis://127.0.0.1:${port}`, username: 'gw', password: 'gw-pass-123' } });
    nodes.push(acl);
    await until(() => ready(acl), 10000, 'ready with ACL user');
    assert.equal((await pub(acl, 'room:a', 3)).status, 200);
  } finally {
    for (const n of nodes) assert.equal((await n.stop()).code, 0, n.logs());
    await r.stop();
  }
});

test('database selection: history streams live in the configured database', async () => {
  const port = await freePort();
  const r = await redis(port);
  try {
    const gw = await startGateway({ backplane: { type: 'redis', url: `redis://127.0.0.1:${port}/3` } });
    await until(() => ready(gw), 10000, 'ready');
    assert.equal((await pub(gw, 'room:db', 'x')).status, 200);
    assert.equal(r.cli('-n', '3', 'EXISTS', '{topic:room:db}:history'), '1');
    assert.equal(r.cli('-n', '0', 'EXISTS', '{topic:room:db}:history'), '0');
    assert.equal((await gw.stop()).code, 0);
  } finally {
    await r.stop();
  }
});

test('Redis down at start: unready at once, not hung; ready once Redis comes up, without a restart', async () => {
  const port = await freePort();
  const gw = await startGateway({ backplane: { type: 'redis', url: `redis://127.0.0.1:${port}/0` } });
  let r;
  try {
    assert.deepEqual((await http(gw, '/readyz')).body, { status: 'backplane unavailable' });
    assert.equal((await pub(gw, 'room:x', 1)).status, 503);
    await sleep(1500); // several failed connects: logged once
    assert.equal((gw.logs().match(/unavailable/g) || []).length, 1, gw.logs());
    r = await redis(port);
    await until(() => ready(gw), 15000, 'ready after Redis started');
    assert.equal((await pub(gw, 'room:x', 2)).status, 200);
    assert.match(gw.logs(), /backplane: redis 127\.0\.0\.1:\d+ ready/);
    assert.equal((await gw.stop()).code, 0);
  } finally {
    if (gw.proc.exitCode === null) await gw.stop();
    if (r) await r.stop();
  }
});

test('a server that accepts but never answers is given up on after connect_timeout_ms', async () => {
  const held = [];
  const silent = net.createServer((s) => held.push(s)).listen(0, '127.0.0.1');
  await new Promise((r) => silent.on('listening', r));
  const port = silent.address().port;
  const gw = await startGateway({ backplane: { type: 'redis', url: `redis://127.0.0.1:${port}/0`, connect_timeout_ms: 300 } });
  try {
    await until(() => gw.logs().includes('connect timed out'), 5000, 'timeout logged');
    assert.equal((await http(gw, '/readyz')).status, 503);
    await until(() => held.length >= 3, 10000, 'retries'); // it keeps retrying, with backoff
  } finally {
    assert.equal((await gw.stop()).code, 0, gw.logs());
    held.forEach((s) => s.destroy());
    silent.close();
  }
});
