// backplane.shards: topics spread over three independent redis-servers by consistent hashing;
// every node places each topic alike; a shard that dies takes only its own topics down (their
// publishes 503, the others flow), /readyz says degraded, the metrics say which shard; and
// when it comes back its topics flow again and subscribers catch up from its history.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startGateway, http, openSSE, API_KEY, sleep } from './lib.mjs';
import { requireRedis, startRedis, tokenFor, waitFor, waitReady, tryPublish } from './redis-lib.mjs';

requireRedis();

const N = 30;
const topics = Array.from({ length: N }, (_, i) => `room:t${i}`);

async function withShards(nShards, nNodes, overrides, fn) {
  const redises = [];
  const nodes = [];
  let failed = null;
  try {
    for (let i = 0; i < nShards; i++) redises.push(await startRedis(0));
    const backplane = { type: 'redis', shards: redises.map((r) => r.url) };
    for (let i = 0; i < nNodes; i++) nodes.push(await startGateway({ ...overrides, backplane }));
    for (const gw of nodes) await waitReady(gw);
    await fn({ redises, nodes });
  } catch (e) {
    failed = e;
  } finally {
    const codes = [];
    for (const gw of nodes) codes.push(await gw.stop());
    for (const r of redises) await r.destroy();
    if (failed) {
      failed.message += nodes.map((gw, i) => `\n--- node ${i + 1} log ---\n` + gw.logs().slice(-3000)).join('');
      throw failed;
    }
    for (const [i, c] of codes.entries()) assert.equal(c.code, 0, `node ${i + 1} exit ${JSON.stringify(c)}`);
  }
}

// Which shard holds a topic: the one whose Redis has its history stream.
async function placement(redises, topic) {
  const where = [];
  for (const [i, r] of redises.entries())
    if ((await r.cli('EXISTS', `{topic:${topic}}:history`)).trim() === '1') where.push(i);
  return where;
}

test('three shards: topics spread, every node agrees, one dead shard takes only its topics down', async () => {
  await withShards(3, 2, {}, async ({ redises, nodes: [a, b] }) => {
    let r = await http(a, '/readyz');
    assert.deepEqual([r.status, r.body], [200, { status: 'ready' }]);

    // subscribers on node b, publishes through node a: a message only arrives if both nodes
    // put the topic on the same shard
    const sse = openSSE(b, `topics=${topics.join(',')}&token=${tokenFor('reader')}`);
    for (const t of topics) await waitFor(async () => (await Promise.all(redises.map((x) => x.numsub(`topic:${t}`)))).reduce((s, n) => s + n, 0) === 1, 5000, `${t} subscribed once`);
    await sse.waitFor((s) => s.raw.includes('retry:')); // written once every topic is live
    for (const t of topics) assert.equal((await tryPublish(a, t, { n: 1, t })).status, 200);
    await sse.waitFor((s) => s.messages().length === N, 10000);

    const shardOf = {};
    const perShard = [0, 0, 0];
    for (const t of topics) {
      const w = await placement(redises, t);
      assert.equal(w.length, 1, `${t} is on exactly one shard: ${w}`);
      shardOf[t] = w[0];
      perShard[w[0]]++;
      // the channel subscription is on that shard too
      assert.equal(await redises[w[0]].numsub(`topic:${t}`), 1);
    }
    for (const n of perShard) assert.ok(n >= 3, `every shard holds some of ${N} topics: ${perShard}`);

    // shard 1 dies
    await redises[1].stop('SIGKILL');
    await waitFor(async () => (await http(a, '/readyz')).body.status === 'degraded', 10000, 'degraded');
    r = await http(a, '/readyz');
    assert.deepEqual([r.status, r.body], [200, { status: 'degraded', shards: 3, shards_up: 2 }]);
    const m = (await http(a, '/metrics')).text;
    const label = (i) => `127.0.0.1:${redises[i].port}/0`;
    assert.match(m, new RegExp(`^rtgate_backplane_shard_up\\{shard="${label(1)}"\\} 0$`, 'm'));
    assert.match(m, new RegExp(`^rtgate_backplane_shard_up\\{shard="${label(0)}"\\} 1$`, 'm'));
    assert.match(m, /^rtgate_backplane_up 1$/m);

    for (const t of topics) {
      const p = await tryPublish(a, t, { n: 2, t });
      if (shardOf[t] === 1) assert.deepEqual([p.status, p.body], [503, { error: 'backplane unavailable' }], t);
      else assert.equal(p.status, 200, `${t} on a live shard: ${p.text}`);
    }
    const live = topics.filter((t) => shardOf[t] !== 1);
    await sse.waitFor((s) => s.messages().length === N + live.length, 10000);
    assert.deepEqual(sse.messages().slice(N).map((x) => x.topic).sort(), [...live].sort());
    const refused = m.match(new RegExp(`^rtgate_backplane_shard_publishes_total\\{shard="${label(0)}",result="ok"\\} (\\d+)$`, 'm'));
    assert.ok(refused && Number(refused[1]) >= 1);

    // it comes back (empty: no persistence); its topics flow again, to the same subscriber
    await redises[1].start();
    await waitFor(async () => (await http(a, '/readyz')).body.status === 'ready', 15000, 'ready again');
    const mine = topics.filter((t) => shardOf[t] === 1);
    for (const t of mine) await waitFor(async () => (await redises[1].numsub(`topic:${t}`)) === 1, 10000, `${t} resubscribed`);
    for (const t of mine) assert.equal((await tryPublish(a, t, { n: 3, t })).status, 200);
    await sse.waitFor((s) => s.messages().filter((x) => x.data.n === 3).length === mine.length, 10000);
    const m2 = (await http(a, '/metrics')).text;
    assert.match(m2, new RegExp(`^rtgate_backplane_shard_reconnects_total\\{shard="${label(1)}"\\} 1$`, 'm'));
    await sse.close();
  });
});

test('three shards: presence across shards and nodes', async () => {
  await withShards(3, 2, { presence: { ttl_s: 3 } }, async ({ nodes: [a, b] }) => {
    const { openWS } = await import('./lib.mjs');
    const users = Array.from({ length: 12 }, (_, i) => `p${i}`);
    const socks = [];
    for (const [i, u] of users.entries()) socks.push(await openWS(i % 2 ? a : b, tokenFor(u)));
    await waitFor(async () => {
      const r = await http(a, `/v1/presence?users=${users.join(',')},nobody`, { headers: { 'x-api-key': API_KEY } });
      return r.status === 200 && users.every((u) => r.body.users[u].connections === 1) && !r.body.users.nobody.online;
    }, 5000, 'all 12 online, seen from node a');
    for (const s of socks) await s.close();
    await waitFor(async () => {
      const r = await http(b, `/v1/presence?users=${users.join(',')}`, { headers: { 'x-api-key': API_KEY } });
      return r.status === 200 && users.every((u) => !r.body.users[u].online);
    }, 5000, 'all offline');
  });
});
