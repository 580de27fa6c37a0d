// backplane.signing_key: every message a node publishes to Redis carries an HMAC; a node
// drops (and logs, once per interval) any message from Redis with a missing or wrong one,
// live or replayed from the stream, so access to Redis alone cannot inject messages to users.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startGateway, http, openSSE, openWS, publish, sleep, freePort, waitFor } from './lib.mjs';

const until = (pred, ms, what) => waitFor(pred, ms, what, 30);


test('signed messages flow; forged ones, live or in history, are dropped and logged', async () => {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'rtgate-sign-'));
  const redis = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: 'ignore' });
  const cli = (...a) => execFileSync('redis-cli', ['-p', String(port), ...a]).toString().trim();
  const nodes = [];
  try {
    await until(() => { try { return cli('PING') === 'PONG'; } catch { return false; } }, 10000, 'redis');
    const bp = { type: 'redis', url: `redis://127.0.0.1:${port}/0`, signing_key: 'node-signing-key-0123456789abcdef' };
    const n1 = await startGateway({ backplane: bp });
    const n2 = await startGateway({ backplane: bp });
    const rogue = await startGateway({ backplane: { type: 'redis', url: bp.url } }); // no key
    nodes.push(n1, n2, rogue);
    for (const n of nodes) await until(async () => (await http(n, '/readyz')).status === 200, 10000, 'ready');

    const bob = await openWS(n2, n2.token('bob'));
    const ack = await bob.request({ type: 'subscribe', topic: 'user:bob' });
    const a = await publish(n1, 'user:bob', 'genuine');
    await bob.waitFor((c) => c.messages().some((m) => m.id === a.id), 10000);

    // forged live: straight into the channel, and through a node that has no key
    const epoch = cli('GET', '{topic:user:bob}:epoch');
    cli('PUBLISH', 'topic:user:bob', `${epoch}\n9999999999999-0\n${'0'.repeat(64)}\nmallory\n"forged"`);
    await publish(rogue, 'user:bob', 'unsigned');
    const b = await publish(n1, 'user:bob', 'genuine 2');
    await bob.waitFor((c) => c.messages().some((m) => m.id === b.id), 10000);
    await sleep(200);
    assert.deepEqual(bob.messages().map((m) => m.data), ['genuine', 'genuine 2']);
    await until(() => n2.logs().includes('missing or wrong signature'), 5000, 'drop logged');
    assert.equal((n2.logs().match(/missing or wrong signature/g) || []).length, 1, 'logged once per interval');
    await bob.close();

    // forged in history: an entry added to the stream directly is skipped on resume
    cli('XADD', '{topic:user:bob}:history', '*', 'f', 'mallory', 'd', '"in history"', 's', 'f'.repeat(64));
    const c = await publish(n1, 'user:bob', 'genuine 3');
    const bob2 = await openWS(n1, n1.token('bob'));
    await bob2.request({ type: 'subscribe', topic: 'user:bob', cursor: ack.cursor });
    await sleep(300);
    assert.deepEqual(bob2.messages().map((m) => m.data), ['genuine', 'genuine 2', 'genuine 3']);
    assert.equal(bob2.messages().at(-1).id, c.id);
    await bob2.close();
  } finally {
    for (const n of nodes) assert.equal((await n.stop()).code, 0, n.logs());
    redis.kill('SIGTERM');
    await new Promise((r) => (redis.exitCode !== null ? r() : redis.on('exit', r)));
    rmSync(dir, { recursive: true, force: true });
  }
});

test('without a key, raw Redis entries that would break the envelope or inject SSE lines are dropped', async () => {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'rtgate-wire-'));
  const redis = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: 'ignore' });
  const cli = (...a) => execFileSync('redis-cli', ['-p', String(port), ...a]).toString().trim();
  let n1, sse;
  try {
    await until(() => { try { return cli('PING') === 'PONG'; } catch { return false; } }, 10000, 'redis');
    n1 = await startGateway({ backplane: { type: 'redis', url: `redis://127.0.0.1:${port}/0` } });
    await until(async () => (await http(n1, '/readyz')).status === 200, 10000, 'ready');
    sse = openSSE(n1, `topics=room:wire&token=${n1.token('bob')}`);
    await sse.waitFor((s) => s.raw.includes('retry:'), 10000);
    await until(() => cli('PUBSUB', 'NUMSUB', 'topic:room:wire').endsWith('1'), 5000, 'subscribed');
    const a = await publish(n1, 'room:wire', 'first');
    await sse.waitFor((s) => s.messages().length === 1, 10000);
    const epoch = cli('GET', '{topic:room:wire}:epoch');
    // ids just after the first message's, so the hub takes them as the next ones
    const ms = a.id.split('-')[0];
    const raw = (seq, from, data) => cli('PUBLISH', 'topic:room:wire', `${epoch}\n${ms}-${seq}\n\n${from}\n${data}`);
    raw(1, 'mal"lory', '1');                                      // a quote in the sender
    raw(2, 'mallory', '"x"\n\nevent: reset\ndata: {}');          // SSE injection
    raw(3, 'mallory', '{"open":');                                // not JSON
    raw(4, 'mallory', '"hand-written but well formed"');          // accepted: there is no key
    const b = await publish(n1, 'room:wire', 'last');
    await sse.waitFor((s) => s.messages().some((m) => m.id === b.id), 10000);
    assert.deepEqual(sse.messages().map((m) => m.data), ['first', 'hand-written but well formed', 'last']);
    assert.ok(!sse.raw.includes('event: reset'), sse.raw);
    assert.equal(sse.messages()[0].id, a.id);
    assert.match(n1.logs(), /ignored a malformed message on 'topic:room:wire'/);
  } finally {
    await sse?.close();
    if (n1) assert.equal((await n1.stop()).code, 0, n1.logs());
    redis.kill('SIGTERM');
    await new Promise((r) => (redis.exitCode !== null ? r() : redis.on('exit', r)));
    rmSync(dir, { recursive: true, force: true });
  }
});
