// listen.reuse_port: two rtgate processes bound to one port (SO_REUSEPORT), each its own node
// on the Redis backplane; the kernel spreads connections over both and messages cross.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startGateway, http, openSSE, freePort, BIN } from './lib.mjs';
import { requireRedis, startRedis, tokenFor, waitReady, tryPublish, waitFor } from './redis-lib.mjs';

requireRedis();

test('two processes share one port: both serve, and messages cross between them', async () => {
  const redis = await startRedis(0);
  const port = await freePort();
  const cf = { listen: { port, reuse_port: true }, log: { access: true }, backplane: { type: 'redis', url: redis.url } };
  const gws = [];
  try {
    gws.push(await startGateway(cf));
    gws.push(await startGateway(cf));
    assert.equal(gws[0].port, port);
    assert.equal(gws[1].port, port);
    await waitReady(gws[0]);
    // both processes answer on the shared port: count each one's access lines
    for (let i = 0; i < 60; i++) {
      const r = await http(gws[0], '/healthz', { headers: { connection: 'close' } });
      assert.equal(r.status, 200);
    }
    const count = () => gws.map((g) => (g.logs().match(/path=\/healthz /g) || []).length);
    await waitFor(() => count()[0] + count()[1] === 60, 5000, '60 access lines'); // written as each ends
    const served = count();
    assert.ok(served[0] >= 5 && served[1] >= 5, `both processes served: ${served}`);

    // ten SSE readers land on either process; a publish through either reaches all of them
    const readers = [];
    for (let i = 0; i < 10; i++) readers.push(openSSE(gws[0], `token=${tokenFor('bob')}`));
    await waitFor(async () => (await redis.numsub('topic:user:bob')) === 2, 10000, 'both processes subscribed');
    for (const r of readers) await r.waitFor((s) => s.raw.includes('retry:')); // live
    for (let i = 0; i < 4; i++) assert.equal((await tryPublish(gws[0], 'user:bob', { i })).status, 200);
    for (const r of readers) await r.waitFor((s) => s.messages().length === 4, 10000);
    for (const r of readers) assert.deepEqual(r.messages().map((m) => m.data.i), [0, 1, 2, 3]);
    for (const r of readers) await r.close();

    // one process stops: the other keeps the port
    const r0 = await gws[0].stop();
    assert.equal(r0.code, 0);
    for (let i = 0; i < 5; i++) assert.equal((await http(gws[1], '/healthz', { headers: { connection: 'close' } })).status, 200);
  } finally {
    for (const g of gws) {
      const r = await g.stop();
      assert.equal(r.code, 0, g.logs());
    }
    await redis.destroy();
  }
});

test('without reuse_port a second process on the port fails to start, saying why', async () => {
  const port = await freePort();
  const a = await startGateway({ listen: { port } });
  try {
    const run = (listen) => {
      const cf = JSON.parse(readFileSync(a.cfgPath, 'utf8'));
      cf.listen = { ...cf.listen, ...listen };
      const path = join(a.dir, 'second.json');
      writeFileSync(path, JSON.stringify(cf));
      return spawnSync(BIN, ['--config', path], { encoding: 'utf8', timeout: 10000 });
    };
    let r = run({});
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`cannot listen on 127\\.0\\.0\\.1:${port}`));
    // with reuse_port on one side only, too: every process must ask for it
    r = run({ reuse_port: true });
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`cannot listen on 127\\.0\\.0\\.1:${port} with SO_REUSEPORT: Address already in use`));
  } finally {
    await a.stop();
  }
});
