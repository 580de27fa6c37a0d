// backplane.sentinel: rtgate finds the primary through Redis Sentinel (a primary, a replica and
// three sentinels on loopback, started here), and when the primary is killed during traffic it
// follows the failover to the promoted replica, resubscribes and catches up: a subscriber gets
// every message the new primary holds, in order, once, and a client resuming from a cursor
// taken before the failover misses none of them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startGateway, http, openSSE, freePort, sleep } from './lib.mjs';
import { requireRedis, startRedis, tokenFor, waitFor, waitReady, tryPublish } from './redis-lib.mjs';

requireRedis();
try {
  execFileSync('sh', ['-c', 'command -v redis-sentinel'], { stdio: 'pipe' });
} catch {
  throw new Error('redis-sentinel is not on PATH: the project\'s deps script installs it (Debian package redis-sentinel)');
}

const MASTER = 'rtgm';

async function startSentinel(primaryPort) {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'rtgate-sentinel-'));
  const conf = join(dir, 'sentinel.conf');
  writeFileSync(conf, [
    `port ${port}`, 'bind 127.0.0.1', 'protected-mode no', `dir ${dir}`,
    `sentinel monitor ${MASTER} 127.0.0.1 ${primaryPort} 2`,
    `sentinel down-after-milliseconds ${MASTER} 1000`,
    `sentinel failover-timeout ${MASTER} 4000`,
    `sentinel parallel-syncs ${MASTER} 1`, '',
  ].join('\n'));
  const proc = spawn('redis-sentinel', [conf], { stdio: ['ignore', 'pipe', 'pipe'] });
  const s = { port, proc, out: '' };
  proc.stdout.on('data', (d) => (s.out += d));
  proc.stderr.on('data', (d) => (s.out += d));
  s.exited = new Promise((r) => proc.on('exit', r));
  await waitFor(() => s.out.includes('+monitor master'), 10000, `sentinel on ${port}`);
  s.stop = async () => {
    if (proc.exitCode === null && proc.signalCode === null) { proc.kill('SIGTERM'); await s.exited; }
    rmSync(dir, { recursive: true, force: true });
  };
  s.cli = (...args) => execFileSync('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...args]).toString();
  return s;
}

test('the primary is killed during traffic: delivery resumes on the promoted replica, nothing it holds is missed', async () => {
  const primary = await startRedis(0);
  const replica = await startRedis(0, ['--replicaof', '127.0.0.1', String(primary.port)]);
  const sentinels = [];
  let gw;
  try {
    await waitFor(async () => (await replica.cli('INFO', 'replication')).includes('master_link_status:up'), 10000, 'replica in sync');
    for (let i = 0; i < 3; i++) sentinels.push(await startSentinel(primary.port));
    // the sentinels must have found the replica and each other before a failover can happen
    await waitFor(() => sentinels.every((s) => /num-other-sentinels\n2\n/.test(s.cli('SENTINEL', 'master', MASTER)) &&
      /num-slaves\n1\n/.test(s.cli('SENTINEL', 'master', MASTER))), 15000, 'sentinels know the replica and each other');

    gw = await startGateway({
      backplane: { type: 'redis', sentinel: { master: MASTER, addresses: sentinels.map((s) => `127.0.0.1:${s.port}`) } },
      history: { size: 10000 },
    });
    await waitReady(gw);
    assert.match(gw.logs(), new RegExp(`sentinel names 127\\.0\\.0\\.1:${primary.port} as the primary of '${MASTER}'`));

    const reader = openSSE(gw, `token=${tokenFor('bob')}`);
    await waitFor(async () => (await primary.numsub('topic:user:bob')) === 1, 5000, 'reader subscribed');
    await reader.waitFor((s) => s.raw.includes('retry:')); // written once the stream is live

    // traffic: one publish after the other, through the failover
    const acked = [];
    let refused = 0, i = 0, killedAt = -1;
    const deadline = Date.now() + 40000;
    while (Date.now() < deadline) {
      const r = await tryPublish(gw, 'user:bob', { i });
      if (r.status === 200) acked.push({ i, id: r.body.id, after: killedAt >= 0 });
      else {
        assert.deepEqual([r.status, r.body], [503, { error: 'backplane unavailable' }]);
        refused++;
      }
      i++;
      if (acked.length === 30 && killedAt < 0) {
        killedAt = i;
        await primary.stop('SIGKILL');
      }
      if (acked.filter((a) => a.after).length >= 30) break;
      await sleep(20);
    }
    assert.ok(killedAt > 0);
    assert.ok(acked.filter((a) => a.after).length >= 30, `publishes succeed again after the failover (refused ${refused})`);
    assert.match(gw.logs(), new RegExp(`sentinel names 127\\.0\\.0\\.1:${replica.port} as the primary of '${MASTER}'`));

    // what the new primary holds, the reader got: in order, each once
    const held = (await replica.cli('XRANGE', '{topic:user:bob}:history', '-', '+')).split('\n')
      .filter((l) => /^\d+-\d+$/.test(l.trim())).map((l) => l.trim());
    assert.ok(held.length >= 30);
    await reader.waitFor((s) => held.every((id) => s.messages().some((m) => m.id === id)), 15000);
    const got = reader.messages().map((m) => m.id);
    assert.equal(new Set(got).size, got.length, 'no duplicates');
    const sorted = [...got].sort((a, b) => { const [am, as] = a.split('-').map(Number), [bm, bs] = b.split('-').map(Number); return am - bm || as - bs; });
    assert.deepEqual(got, sorted, 'in id order');
    // every publish acknowledged after the failover is held and was delivered
    for (const a of acked.filter((x) => x.after)) assert.ok(held.includes(a.id), `acked ${a.i} (${a.id}) held`);

    // a client resuming from a cursor taken before the kill misses nothing the new primary holds
    const early = reader.events.filter((e) => e.data !== undefined && !e.event)[9];
    const earlyId = JSON.parse(early.data).id;
    const r = await http(gw, `/v1/poll?topics=user:bob&cursor=${encodeURIComponent(early.id)}`, { token: tokenFor('bob') });
    assert.equal(r.status, 200);
    const after = held.filter((id) => { const [am, as] = id.split('-').map(Number), [bm, bs] = earlyId.split('-').map(Number); return am > bm || (am === bm && as > bs); });
    assert.deepEqual(r.body.messages.map((m) => m.id), after);
    await reader.close();
  } catch (e) {
    e.message += '\n--- rtgate ---\n' + (gw ? gw.logs().slice(-3000) : '') + sentinels.map((s, k) => `\n--- sentinel ${k} ---\n` + s.out.slice(-1500)).join('');
    throw e;
  } finally {
    if (gw) {
      const r = await gw.stop();
      assert.equal(r.code, 0);
    }
    for (const s of sentinels) await s.stop();
    await replica.destroy();
    await primary.destroy();
  }
});
