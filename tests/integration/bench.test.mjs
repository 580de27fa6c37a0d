// The load generator itself, run for a few seconds against the real rtgate (and its raw-write
// ceiling): a few hundred clients in broadcast and in churn must see every message exactly once,
// in order, as its final JSON line reports. This keeps `make bench` honest: a generator that
// miscounted would fail here first.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { startGateway, BIN, SECRET } from './lib.mjs';

const BENCH = join(dirname(BIN), 'rtgate-bench');

// Runs rtgate-bench; resolves to its JSON line (stderr kept for the failure message).
function bench(args, timeoutMs = 60000) {
  return new Promise((resolve, reject) => {
    const p = spawn(BENCH, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '', err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    const t = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.on('exit', (code) => {
      clearTimeout(t);
      const line = out.trim().split('\n').pop();
      try {
        resolve({ code, r: JSON.parse(line), err });
      } catch {
        reject(new Error(`rtgate-bench exited ${code} without a JSON line:\n${out}\n${err}`));
      }
    });
  });
}

const overrides = {
  limits: { publish_rate: 0, max_connections: 2000, max_held_longpolls: 2000 },
  log_level: 'notice',
};

function assertExact(r, err) {
  const why = JSON.stringify(r) + '\n' + err.slice(-2000);
  assert.ok(r.published > 0, why);
  assert.equal(r.ready, r.clients, why);
  assert.equal(r.expected, r.published * (r.mode === 'unicast' ? 1 : r.clients), why);
  assert.equal(r.delivered, r.expected, why);
  assert.equal(r.publish_errors, 0, why);
  assert.equal(r.loss, 0, why);
  assert.equal(r.dups, 0, why);
  assert.equal(r.out_of_order, 0, why);
  assert.equal(r.closes, 0, why);
}

test('rtgate-bench is built next to rtgate', () => {
  assert.ok(existsSync(BENCH), `${BENCH} missing: cmake --build builds it`);
});

test('broadcast over WebSocket and SSE: every message to every subscriber, once, in order', async () => {
  const gw = await startGateway(overrides);
  try {
    for (const transport of ['ws', 'sse']) {
      const { code, r, err } = await bench(['broadcast', '--url', `127.0.0.1:${gw.port}`, '--secret', SECRET,
        '--transport', transport, '--clients', '300', '--sources', '4', '--seconds', '2', '--window', '4',
        '--server-pid', String(gw.proc.pid)]);
      assert.equal(code, 0, err);
      assertExact(r, err);
      assert.ok(r.lat_us.p50 > 0 && r.lat_us.p50 <= r.lat_us.p99 && r.lat_us.p99 <= r.lat_us.max, JSON.stringify(r));
      assert.ok(r.server_cpu_s > 0, JSON.stringify(r)); // it read the gateway's /proc figures
    }
  } finally {
    await gw.stop();
  }
});

test('churn: 300 SSE clients drop and resume with their cursors while messages flow: no loss, no dups', async () => {
  const gw = await startGateway(overrides);
  try {
    const { code, r, err } = await bench(['churn', '--url', `127.0.0.1:${gw.port}`, '--secret', SECRET,
      '--transport', 'sse', '--clients', '300', '--seconds', '3', '--rate', '50', '--churn-at', '1',
      '--churn-window-ms', '500']);
    assert.equal(code, 0, err);
    assertExact(r, err);
    assert.equal(r.reconnects, 300, JSON.stringify(r));
    assert.ok(r.recovery_ms > 0, JSON.stringify(r));
  } finally {
    await gw.stop();
  }
});

test('unicast and long-poll: each user gets its own messages exactly once', async () => {
  const gw = await startGateway(overrides);
  try {
    let { code, r, err } = await bench(['unicast', '--url', `127.0.0.1:${gw.port}`, '--secret', SECRET,
      '--clients', '200', '--seconds', '2', '--rate', '500', '--window', '200']);
    assert.equal(code, 0, err);
    assertExact(r, err);
    ({ code, r, err } = await bench(['broadcast', '--url', `127.0.0.1:${gw.port}`, '--secret', SECRET,
      '--transport', 'longpoll', '--clients', '100', '--count', '3', '--rate', '5', '--window', '10',
      '--settle-ms', '500']));
    assert.equal(code, 0, err);
    assertExact(r, err);
  } finally {
    await gw.stop();
  }
});

test('raw-server, the ceiling: the same clients get every frame', async () => {
  const raw = spawn(BENCH, ['raw-server', '--listen', '127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  try {
    const port = await new Promise((resolve, reject) => {
      let out = '';
      raw.stdout.on('data', (d) => { out += d; if (out.includes('\n')) resolve(Number(out.trim())); });
      raw.on('exit', (c) => reject(new Error(`raw-server exited ${c}`)));
    });
    const { code, r, err } = await bench(['broadcast', '--url', `127.0.0.1:${port}`, '--clients', '300',
      '--seconds', '2', '--window', '4', '--server-pid', String(raw.pid)]);
    assert.equal(code, 0, err);
    assertExact(r, err);
  } finally {
    raw.kill('SIGTERM');
  }
});
