// The Redis backplane (src/redis_backplane.c) with a real redis-server and 2-3 rtgate nodes:
// cross-node delivery on every transport, exactly-once and per-topic order under load, a node
// SIGKILLed mid-stream, a Redis outage and recovery, SUBSCRIBE/UNSUBSCRIBE refcounting,
// cross-node cursors and paging, trimmed and expired history, catch-up after a lost
// connection, publishes in flight when a connection drops, and clean shutdown.
//
// A test named "BUG: ..." fails because of an rtgate bug described in the comment above it.
//
// Each test starts its own redis-server (no persistence) on a free loopback port and stops it
// by pid; every rtgate node still running at the end must exit 0 on SIGTERM. Every wait is
// bounded; nothing asserts a latency.
import { test, before } from 'node:test';
import net from 'node:net';
import assert from 'node:assert/strict';
import { startGateway, http, openSSE, openWS, publish, sleep } from './lib.mjs';
import { decodeCursor, idCmp, publishSeq } from './helpers.mjs';
import {
  requireRedis, startRedis, freePort, withCluster, waitFor, waitReady, readyz, tryPublish,
  tokenFor, pool, rng,
} from './redis-lib.mjs';

before(() => requireRedis());

const BP_DOWN = '{"error":"backplane unavailable"}';
const NOT_READY = '{"status":"backplane unavailable"}';

// Events other than the retry hint and comments (heartbeats).
const realEvents = (s) => s.events.filter((e) => e.retry === undefined && e.comment === undefined);

// An SSE stream that is live: rtgate writes retry: only once every topic has replayed and is
// subscribed in Redis.
async function sseLive(gw, query, opts) {
  const s = openSSE(gw, query, opts);
  await s.waitFor((x) => x.raw.includes('retry:'), 15000);
  return s;
}

// A WebSocket of `user` subscribed to `topic` (acked, so live); returns { c, ack }.
async function wsSub(gw, user, topic = `user:${user}`, cursor) {
  const c = await openWS(gw, tokenFor(user));
  const ack = await c.request({ type: 'subscribe', topic, ...(cursor ? { cursor } : {}) });
  assert.equal(ack.type, 'ack', JSON.stringify(ack));
  return { c, ack };
}

// Writes raw (inline) commands to Redis in one write and resolves to the first `n` reply lines.
function redisRaw(port, payload, n) {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    let buf = '';
    const t = setTimeout(() => { s.destroy(); reject(new Error('redis raw: no answer: ' + JSON.stringify(buf))); }, 15000);
    s.on('data', (d) => {
      buf += d;
      const lines = buf.split('\r\n');
      if (lines.length > n) { clearTimeout(t); s.destroy(); resolve(lines.slice(0, n)); }
    });
    s.on('error', (e) => { clearTimeout(t); reject(e); });
    s.write(payload);
  });
}

const strictlyIncreasing = (ids, what) => {
  for (let i = 1; i < ids.length; i++) assert.equal(idCmp(ids[i - 1], ids[i]), -1, `${what}: ids ${i - 1},${i}: ${ids[i - 1]} ${ids[i]}`);
};

test('cross-node: /v1/messages on node 1 reaches bob on node 2 by SSE, WebSocket and long-poll; a broadcast reaches every node once', async () => {
  await withCluster({ nodes: 3 }, async ({ nodes: [n1, n2, n3] }) => {
    const bob = tokenFor('bob');
    const alice = tokenFor('alice');
    const sse = await sseLive(n2, `token=${bob}`);
    const { c: ws } = await wsSub(n2, 'bob');
    const p0 = await http(n2, '/v1/poll?topics=user:bob', { token: bob });
    assert.equal(p0.status, 200, p0.text);
    assert.deepEqual(p0.body.messages, []);
    const lp = http(n2, `/v1/longpoll?topics=user:bob&cursor=${p0.body.cursor}&timeout=30`, { token: bob });

    const t0 = Date.now();
    const sent = await http(n1, '/v1/messages', { method: 'POST', token: alice, body: { to: 'bob', data: { text: 'hi bob' } } });
    assert.equal(sent.status, 200, sent.text);
    assert.deepEqual(Object.keys(sent.body), ['id', 'topic']);
    assert.equal(sent.body.topic, 'user:bob');
    assert.match(sent.body.id, /^\d+-\d+$/);
    const want = { id: sent.body.id, topic: 'user:bob', from: 'alice', data: { text: 'hi bob' } };

    const lr = await lp;
    assert.equal(lr.status, 200, lr.text);
    assert.equal(lr.body.recovered, true);
    assert.equal(lr.body.messages.length, 1, lr.text);
    const { ts, ...lpEnv } = lr.body.messages[0];
    assert.deepEqual(lpEnv, want);
    assert.ok(Number.isInteger(ts) && Math.abs(ts - t0) < 600000, `ts ${ts}`);
    assert.equal(decodeCursor(lr.body.cursor)[0].id, sent.body.id);

    await sse.waitFor((x) => x.messages().length >= 1, 15000);
    await ws.waitFor((x) => x.messages().length >= 1, 15000);
    await sleep(300); // a duplicate would have arrived by now
    assert.equal(sse.messages().length, 1, sse.raw);
    const { _id, ts: ts2, ...sseEnv } = sse.messages()[0];
    assert.deepEqual(sseEnv, want);
    assert.equal(ts2, ts);
    assert.equal(decodeCursor(_id)[0].id, sent.body.id);
    assert.equal(ws.messages().length, 1, JSON.stringify(ws.frames));
    const { type, cursor, ts: ts3, ...wsEnv } = ws.messages()[0];
    assert.deepEqual(wsEnv, want);
    assert.equal(ts3, ts);
    assert.equal(decodeCursor(cursor)[0].id, sent.body.id);

    // broadcast room:x: an SSE stream, a WebSocket and a long-poll on each of the 3 nodes
    const nodes = [n1, n2, n3];
    const sses = [], wss = [], lps = [];
    for (const [i, gw] of nodes.entries()) {
      const u = tokenFor(`user${i}`);
      sses.push(await sseLive(gw, `token=${u}&topics=room:x`));
      wss.push((await wsSub(gw, `user${i}`, 'room:x')).c);
      const p = await http(gw, '/v1/poll?topics=room:x', { token: u });
      assert.equal(p.status, 200, p.text);
      lps.push(http(gw, `/v1/longpoll?topics=room:x&cursor=${p.body.cursor}&timeout=30`, { token: u }));
    }
    const b = await http(n2, '/v1/messages', { method: 'POST', token: alice, body: { topic: 'room:x', data: 'to all' } });
    assert.equal(b.status, 200, b.text);
    for (const [i, p] of lps.entries()) {
      const r = await p;
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(r.body.messages.map((m) => [m.id, m.from, m.data]), [[b.body.id, 'alice', 'to all']], `long-poll on node ${i + 1}`);
    }
    await waitFor(() => sses.every((s) => s.messages().length >= 1) && wss.every((c) => c.messages().length >= 1), 15000, 'broadcast everywhere');
    await sleep(300);
    sses.forEach((s, i) => assert.deepEqual(s.messages().map((m) => [m.id, m.topic, m.data]), [[b.body.id, 'room:x', 'to all']], `SSE on node ${i + 1}`));
    wss.forEach((c, i) => assert.deepEqual(c.messages().map((m) => [m.id, m.topic, m.data]), [[b.body.id, 'room:x', 'to all']], `WS on node ${i + 1}`));
    // bob's inbox streams saw nothing of the broadcast
    assert.equal(sse.messages().length, 1);
    assert.equal(ws.messages().length, 1);
    for (const s of [sse, ...sses]) await s.close();
    for (const c of [ws, ...wss]) await c.close();
  });
});

test('10,000 messages to 100 users on 3 nodes, from random nodes, 50 in flight: each delivered once, in id order', async () => {
  await withCluster({ nodes: 3, overrides: { history: { size: 20000 }, limits: { send_queue: 20000 } } }, async ({ nodes }) => {
    const USERS = 100, TOTAL = 10000;
    const conns = await Promise.all(Array.from({ length: USERS }, (_, u) => openWS(nodes[u % 3], tokenFor(`u${u}`))));
    const acks = await Promise.all(conns.map((c, u) => c.request({ type: 'subscribe', topic: `user:u${u}` })));
    acks.forEach((a, u) => assert.deepEqual([a.type, a.topic, a.recovered], ['ack', `user:u${u}`, true], JSON.stringify(a)));
    const seed = (Date.now() ^ process.pid) >>> 0;
    const rand = rng(seed);
    const plan = Array.from({ length: TOTAL }, () => ({ user: Math.floor(rand() * USERS), node: Math.floor(rand() * 3) }));
    const sent = Array.from({ length: USERS }, () => []);
    await pool(TOTAL, 50, async (k) => {
      const { user, node } = plan[k];
      const r = await tryPublish(nodes[node], `user:u${user}`, { k });
      assert.equal(r.status, 200, `publish ${k} (seed ${seed}): ${r.text}`);
      assert.equal(r.body.topic, `user:u${user}`);
      sent[user].push({ id: r.body.id, k });
    });
    const want = sent.map((v) => [...v].sort((a, b) => idCmp(a.id, b.id)));
    await waitFor(() => conns.every((c, u) => c.messages().length >= want[u].length), 60000,
      `all ${TOTAL} deliveries (seed ${seed}); have ${conns.reduce((n, c) => n + c.messages().length, 0)}`);
    await sleep(500); // duplicates would have arrived by now
    let total = 0;
    for (let u = 0; u < USERS; u++) {
      const got = conns[u].messages();
      total += got.length;
      assert.equal(new Set(want[u].map((x) => x.id)).size, want[u].length, `user u${u}: publish returned a duplicate id`);
      assert.deepEqual(got.map((m) => m.id), want[u].map((x) => x.id), `user u${u} on node ${(u % 3) + 1} (seed ${seed})`);
      assert.deepEqual(got.map((m) => m.data.k), want[u].map((x) => x.k), `user u${u} payloads (seed ${seed})`);
      assert.ok(got.every((m) => m.topic === `user:u${u}` && m.from === null));
      strictlyIncreasing(got.map((m) => m.id), `user u${u}`);
      assert.equal(conns[u].closed, null, `user u${u} was disconnected: ${JSON.stringify(conns[u].closed)}`);
    }
    assert.equal(total, TOTAL);
    await Promise.all(conns.map((c) => c.close()));
  });
});

test('SIGKILL of bob\'s node mid-stream: resuming on another node with his last cursor gets every message once, in order', async () => {
  await withCluster({ nodes: 3 }, async ({ redis, nodes: [n1, n2, n3] }) => {
    const bob = tokenFor('bob');
    const { c: ws } = await wsSub(n2, 'bob');
    const sse = await sseLive(n2, `token=${bob}`);
    const published = [];
    let killedAt = -1;
    const publisher = (async () => {
      for (let i = 0; i < 20000; i++) {
        if (killedAt >= 0 && published.length >= killedAt + 200) return;
        const r = await tryPublish(n1, 'user:bob', i);
        assert.equal(r.status, 200, r.text);
        published.push(r.body.id);
        await sleep(2);
      }
      throw new Error('the publisher ran out before the kill');
    })();
    publisher.catch(() => {}); // awaited below; do not let an early failure go unhandled
    await waitFor(() => ws.messages().length >= 50 && sse.messages().length >= 50, 20000, '50 messages on node 2 before the kill');
    n2.proc.kill('SIGKILL');
    await n2.exited;
    killedAt = published.length;
    await Promise.all([ws.closedP, sse.ended]);
    const wsBefore = ws.messages().map((m) => m.id);
    const sseBefore = sse.messages().map((m) => m.id);
    const wsCursor = ws.messages().at(-1).cursor;
    const sseCursor = sse.messages().at(-1)._id;
    assert.deepEqual(wsBefore, published.slice(0, wsBefore.length), 'WS before the kill: a prefix of what was published');
    assert.deepEqual(sseBefore, published.slice(0, sseBefore.length), 'SSE before the kill: a prefix of what was published');
    // node 2's Redis connections died with it: only node 3 will be subscribed
    await waitFor(async () => (await redis.numsub('topic:user:bob')) === 0, 10000, 'NUMSUB 0 after the kill');

    // bob reconnects to node 3 while messages still flow
    const ws3 = await openWS(n3, bob);
    const ack = await ws3.request({ type: 'subscribe', topic: 'user:bob', cursor: wsCursor });
    assert.equal(ack.type, 'ack', JSON.stringify(ack));
    assert.equal(ack.recovered, true);
    const sse3 = openSSE(n3, `token=${bob}`, { headers: { 'Last-Event-ID': sseCursor } });
    await publisher;
    assert.ok(killedAt < published.length, 'the kill happened mid-stream');
    const last = published.at(-1);
    await waitFor(() => ws3.messages().some((m) => m.id === last) && sse3.messages().some((m) => m.id === last), 20000, 'the last message on node 3');
    await sleep(300);
    assert.deepEqual([...wsBefore, ...ws3.messages().map((m) => m.id)], published, 'WS: before + after the kill == all published');
    assert.deepEqual([...sseBefore, ...sse3.messages().map((m) => m.id)], published, 'SSE: before + after the kill == all published');
    assert.ok(!ws3.frames.some((f) => f.type === 'reset'));
    assert.ok(!sse3.events.some((e) => e.event === 'reset'));
    assert.equal(await redis.numsub('topic:user:bob'), 1);
    // the survivors never noticed
    assert.equal((await readyz(n1)).status, 200);
    assert.equal((await readyz(n3)).status, 200);
    await sse3.close();
    await ws3.close();
  });
});

test('Redis outage: 503 while down, nodes recover without restart, every accepted message delivered once, in order', async () => {
  await withCluster({ nodes: 3 }, async ({ redis, nodes: [n1, n2, n3] }) => {
    const bob = tokenFor('bob');
    const { c: ws } = await wsSub(n2, 'bob');
    const sse = await sseLive(n3, `token=${bob}`);
    const accepted = [], bad = [];
    const counts = { before: [0, 0], down: [0, 0], restart: [0, 0], after: [0, 0] }; // [accepted, refused]
    let phase = 'before', stop = false;
    const publisher = (async () => {
      for (let i = 0; !stop && i < 100000; i++) {
        const r = await tryPublish(n1, 'user:bob', i).catch((e) => ({ status: 'fetch failed: ' + e.message }));
        if (r.status === 200) {
          accepted.push({ id: r.body.id, i, phase });
          counts[phase][0]++;
        } else {
          counts[phase][1]++;
          if (r.status !== 503 || r.text !== BP_DOWN) bad.push(r);
        }
        await sleep(5);
      }
    })();
    await waitFor(() => accepted.length >= 20, 15000, '20 accepted before the outage');

    phase = 'down';
    await redis.stop('SIGTERM');
    for (const gw of [n1, n2, n3]) {
      await waitFor(async () => {
        const r = await readyz(gw);
        return r.status === 503 && r.text === NOT_READY;
      }, 10000, `${gw.url}/readyz 503 ${NOT_READY}`);
    }
    await waitFor(() => counts.down[1] >= 10, 10000, '10 refused publishes');
    // the other ways in are refused as well
    const e = await ws.request({ type: 'send', to: 'bob', data: 'during the outage' });
    assert.deepEqual(e, { type: 'error', rid: 2, error: 'backplane unavailable' });
    const m = await http(n3, '/v1/messages', { method: 'POST', token: tokenFor('alice'), body: { to: 'bob', data: 'x' } });
    assert.equal(m.status, 503);
    assert.equal(m.text, BP_DOWN);
    const p = await http(n2, '/v1/poll?topics=user:bob', { token: bob });
    assert.equal(p.status, 503, p.text);
    assert.equal(p.text, BP_DOWN);
    await sleep(500);
    assert.equal((await readyz(n1)).status, 503, 'still down');

    phase = 'restart';
    await redis.start();
    for (const gw of [n1, n2, n3]) await waitReady(gw, 15000);
    phase = 'after';
    await waitFor(() => counts.after[0] >= 30, 15000, '30 accepted after the restart');
    stop = true;
    await publisher;
    assert.deepEqual(bad, [], 'every refusal is 503 backplane unavailable');
    assert.ok(counts.down[1] >= 10, JSON.stringify(counts));

    const want = accepted.map((a) => a.id);
    strictlyIncreasing(want, 'accepted ids');
    await waitFor(() => ws.messages().length >= want.length && sse.messages().length >= want.length, 20000,
      `every accepted message delivered (${want.length}; ws ${ws.messages().length}, sse ${sse.messages().length}; counts ${JSON.stringify(counts)})`);
    await sleep(500);
    const info = `counts ${JSON.stringify(counts)}`;
    assert.deepEqual(ws.messages().map((x) => x.id), want, `WS on node 2: ${info}`);
    assert.deepEqual(ws.messages().map((x) => x.data), accepted.map((a) => a.i), `WS payloads: ${info}`);
    assert.deepEqual(sse.messages().map((x) => x.id), want, `SSE on node 3: ${info}`);
    assert.deepEqual(sse.messages().map((x) => x.data), accepted.map((a) => a.i), `SSE payloads: ${info}`);
    assert.equal(ws.closed, null);
    // Redis lost the history (no persistence): the subscribers are told so, at most once each
    assert.ok(ws.frames.filter((f) => f.type === 'reset').length <= 1, JSON.stringify(ws.frames.filter((f) => f.type !== 'message')));
    assert.ok(sse.events.filter((x) => x.event === 'reset').length <= 1, sse.raw.slice(-2000));

    // a cursor from before the restart is not trusted against the new (empty-then-refilled) stream
    const pre = ws.messages()[0].cursor;
    const pr = await http(n1, `/v1/poll?topics=user:bob&cursor=${pre}`, { token: bob });
    assert.equal(pr.status, 200, pr.text);
    assert.equal(pr.body.recovered, false, 'a pre-restart cursor is reset');
    assert.deepEqual(pr.body.messages.map((x) => x.id), accepted.filter((a) => a.phase !== 'before' && a.phase !== 'down').map((a) => a.id),
      'what Redis has now: the messages accepted since the restart');

    // and life goes on: a message after all that, from each node, arrives once
    const after = [];
    for (const gw of [n1, n2, n3]) after.push((await publish(gw, 'user:bob', 'after')).id);
    await waitFor(() => ws.messages().length === want.length + 3 && sse.messages().length === want.length + 3, 15000, 'three more');
    await sleep(200);
    assert.deepEqual(ws.messages().slice(want.length).map((x) => x.id), after);
    assert.deepEqual(sse.messages().slice(want.length).map((x) => x.id), after);
    assert.equal(await redis.numsub('topic:user:bob'), 2, 'nodes 2 and 3 subscribed again');
    await sse.close();
    await ws.close();
  });
});

test('a node started while Redis is down is not ready, then becomes ready and serves once Redis is up', async () => {
  const port = await freePort();
  const gw = await startGateway({ backplane: { type: 'redis', url: `redis://127.0.0.1:${port}/0`, connect_timeout_ms: 500 } });
  let redis = null, ok = false;
  try {
    const r = await readyz(gw);
    assert.equal(r.status, 503);
    assert.equal(r.text, NOT_READY);
    const pr = await tryPublish(gw, 'room:1', 1);
    assert.equal(pr.status, 503);
    assert.equal(pr.text, BP_DOWN);
    assert.equal((await http(gw, '/healthz')).status, 200, 'alive, just not ready');
    // a stream opened now waits for Redis
    const sse = openSSE(gw, `token=${tokenFor('bob')}&topics=room:1`);
    await sleep(1000);
    assert.equal(sse.raw, '', 'nothing is written before the topic is live');
    redis = await startRedis(port);
    await waitReady(gw, 15000);
    await sse.waitFor((x) => x.raw.includes('retry:'), 15000);
    const m = await publish(gw, 'room:1', 'hello');
    await sse.waitFor((x) => x.messages().length >= 1, 15000);
    await sleep(200);
    assert.deepEqual(sse.messages().map((x) => [x.id, x.data]), [[m.id, 'hello']]);
    assert.equal(await redis.numsub('topic:room:1'), 1);
    await sse.close();
    ok = true;
  } finally {
    const r = await gw.stop();
    if (redis) await redis.destroy();
    if (ok) assert.equal(r.code, 0, gw.logs());
    else console.error(gw.logs().slice(-3000));
  }
});

test('subscription refcount: one SUBSCRIBE per node however many local subscribers, UNSUBSCRIBE when the last leaves', async () => {
  await withCluster({ nodes: 2 }, async ({ redis, nodes: [n1, n2] }) => {
    const chan = 'topic:user:bob';
    const bob = tokenFor('bob');
    assert.equal(await redis.numsub(chan), 0);
    const { c: w1 } = await wsSub(n2, 'bob');
    assert.equal(await redis.numsub(chan), 1, 'subscribed once acked');
    const { c: w2 } = await wsSub(n2, 'bob');
    const s = await sseLive(n2, `token=${bob}`);
    assert.equal(await redis.numsub(chan), 1, 'one subscription per node, not per connection');

    const m1 = await http(n1, '/v1/messages', { method: 'POST', token: tokenFor('alice'), body: { to: 'bob', data: 1 } });
    assert.equal(m1.status, 200, m1.text);
    // subscribing again on a connection that has the topic is a no-op
    const again = await w1.request({ type: 'subscribe', topic: 'user:bob' });
    assert.deepEqual(again, { type: 'ack', rid: 2, topic: 'user:bob' });
    const m2 = await publish(n1, 'user:bob', 2);
    const all = [w1, w2, s];
    await waitFor(() => all.every((x) => x.messages().length >= 2), 15000, 'two messages on each connection');
    await sleep(300);
    for (const x of all) assert.deepEqual(x.messages().map((m) => m.id), [m1.body.id, m2.id]);

    await w1.close();
    await sleep(500);
    assert.equal(await redis.numsub(chan), 1, 'still subscribed for the other two');
    await w2.close();
    await sleep(500);
    assert.equal(await redis.numsub(chan), 1, 'still subscribed for the SSE stream');
    await s.close();
    await waitFor(async () => (await redis.numsub(chan)) === 0, 5000, 'NUMSUB 0 after the last connection left');

    // and back: subscribing again works and delivers once
    const { c: w3 } = await wsSub(n2, 'bob');
    assert.equal(await redis.numsub(chan), 1);
    const m3 = await publish(n1, 'user:bob', 3);
    await w3.waitFor((x) => x.messages().length >= 1, 15000);
    await sleep(200);
    assert.deepEqual(w3.messages().map((m) => m.id), [m3.id]);
    // an explicit unsubscribe frame is the last one leaving too
    assert.deepEqual(await w3.request({ type: 'unsubscribe', topic: 'user:bob' }), { type: 'ack', rid: 2, topic: 'user:bob' });
    await waitFor(async () => (await redis.numsub(chan)) === 0, 5000, 'NUMSUB 0 after unsubscribe');
    await publish(n1, 'user:bob', 'not for w3');
    await sleep(300);
    assert.equal(w3.messages().length, 1);

    // a held long-poll is a subscriber while it is held, and leaves when answered
    const p = await http(n2, '/v1/poll?topics=user:bob', { token: bob });
    assert.equal(p.status, 200, p.text);
    const lp = http(n2, `/v1/longpoll?topics=user:bob&cursor=${p.body.cursor}&timeout=30`, { token: bob });
    await waitFor(async () => (await redis.numsub(chan)) === 1, 5000, 'NUMSUB 1 while the long-poll is held');
    const m4 = await publish(n1, 'user:bob', 4);
    const lr = await lp;
    assert.deepEqual(lr.body.messages.map((m) => m.id), [m4.id]);
    await waitFor(async () => (await redis.numsub(chan)) === 0, 5000, 'NUMSUB 0 after the long-poll was answered');

    // churn: subscribe/unsubscribe pairs sent back to back, then a final subscribe
    const rids = [];
    for (let i = 0; i < 50; i++) {
      w3.send({ type: 'subscribe', topic: 'room:churn', rid: `s${i}` });
      w3.send({ type: 'unsubscribe', topic: 'room:churn', rid: `u${i}` });
      rids.push(`u${i}`);
    }
    const fin = await w3.request({ type: 'subscribe', topic: 'room:churn' });
    assert.equal(fin.type, 'ack', JSON.stringify(fin));
    assert.equal(fin.recovered, true);
    await waitFor(() => rids.every((r) => w3.frames.some((f) => f.rid === r)), 5000, 'every unsubscribe acked');
    assert.deepEqual(w3.frames.filter((f) => f.type === 'error'), []);
    await waitFor(async () => (await redis.numsub('topic:room:churn')) === 1, 5000, 'NUMSUB 1 after the churn');
    const mc = await publish(n1, 'room:churn', 'c');
    await waitFor(() => w3.messages().some((m) => m.id === mc.id), 15000, 'the churned topic delivers');
    await sleep(200);
    assert.deepEqual(w3.messages().filter((m) => m.topic === 'room:churn').map((m) => m.id), [mc.id]);
    await w3.close();
    await waitFor(async () => (await redis.numsub('topic:room:churn')) === 0, 5000, 'NUMSUB 0 for room:churn');
  });
});

test('cross-node resume by poll: a cursor from node 1 used on node 2 returns exactly the messages after it', async () => {
  await withCluster({ nodes: 3 }, async ({ nodes: [n1, n2, n3] }) => {
    const bob = tokenFor('bob');
    const first = await publishSeq(n1, 'room:p', 5, (i) => `a${i}`);
    const p1 = await http(n1, '/v1/poll?topics=room:p&since=earliest', { token: bob });
    assert.equal(p1.status, 200, p1.text);
    assert.deepEqual(p1.body.messages.map((m) => m.id), first);
    assert.equal(p1.body.recovered, true);
    const more = await publishSeq(n3, 'room:p', 3, (i) => `b${i}`);
    const p2 = await http(n2, `/v1/poll?topics=room:p&cursor=${p1.body.cursor}`, { token: bob });
    assert.equal(p2.status, 200, p2.text);
    assert.deepEqual(p2.body.messages.map((m) => [m.id, m.data]), more.map((id, i) => [id, `b${i}`]));
    assert.equal(p2.body.recovered, true);
    assert.equal(p2.body.more, undefined);
    // nothing new: empty, and If-None-Match with the same cursor is 304 on yet another node
    const p3 = await http(n3, `/v1/poll?topics=room:p&cursor=${p2.body.cursor}`, { token: bob });
    assert.deepEqual(p3.body.messages, []);
    assert.equal(p3.body.cursor, p2.body.cursor);
    const p4 = await http(n1, `/v1/poll?topics=room:p&cursor=${p2.body.cursor}`, { token: bob, headers: { 'if-none-match': `"${p2.body.cursor}"` } });
    assert.equal(p4.status, 304);
    // a cursor from the middle (the SSE id of the 2nd message, read on node 1) on node 2
    const s = openSSE(n1, `token=${bob}&topics=room:p`, { headers: { 'Last-Event-ID': p1.body.cursor } });
    await s.waitFor((x) => x.messages().length >= 3, 15000);
    const mid = s.messages()[0]._id;
    await s.close();
    const p5 = await http(n2, `/v1/poll?topics=room:p&cursor=${mid}`, { token: bob });
    assert.deepEqual(p5.body.messages.map((m) => m.id), more.slice(1));
    // a long-poll on node 2 held with the latest cursor wakes for a publish on node 3
    const lp = http(n2, `/v1/longpoll?topics=room:p&cursor=${p2.body.cursor}&timeout=30`, { token: bob });
    await sleep(200);
    const last = await publish(n3, 'room:p', 'c');
    const lr = await lp;
    assert.equal(lr.status, 200, lr.text);
    assert.deepEqual(lr.body.messages.map((m) => m.id), [last.id]);
    // and the multi-topic cursor of that answer works on node 1 as well
    const p6 = await http(n1, `/v1/poll?topics=room:p&cursor=${lr.body.cursor}`, { token: bob });
    assert.deepEqual(p6.body.messages, []);
  });
});

test('cross-node paging: poll answers cut at limits.max_messages_per_poll continue on other nodes without gaps or repeats', async () => {
  await withCluster({ nodes: 3, overrides: { history: { size: 5000 } } }, async ({ nodes }) => {
    const bob = tokenFor('bob');
    const ids = [];
    await pool(1200, 20, async (k) => { ids.push((await publish(nodes[k % 3], 'room:page', k)).id); });
    ids.sort(idCmp);
    const got = [];
    let cursor = null, answers = 0, mores = 0;
    for (let n = 0; n < 10; n++) {
      const q = cursor ? `cursor=${cursor}` : 'since=earliest';
      const r = await http(nodes[n % 3], `/v1/poll?topics=room:page&${q}`, { token: bob });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.body.recovered, true);
      answers++;
      got.push(...r.body.messages.map((m) => m.id));
      cursor = r.body.cursor;
      if (!r.body.more) break;
      mores++;
      assert.equal(r.body.messages.length, 500);
    }
    assert.deepEqual([answers, mores], [3, 2]);
    assert.deepEqual(got, ids);
  });
});

test('a resume longer than limits.send_queue completes over reconnects to different nodes (WS 1013, SSE end of stream)', async () => {
  await withCluster({ nodes: 3, overrides: { limits: { send_queue: 40 }, history: { size: 1000 } } }, async ({ nodes }) => {
    const bob = tokenFor('bob');
    const { c: a, ack } = await wsSub(nodes[0], 'bob', 'room:long');
    await a.close();
    const ids = await publishSeq(nodes[1], 'room:long', 300);
    // WebSocket: each connection gets at most send_queue, is closed 1013, resumes elsewhere
    let got = [], cursor = ack.cursor, closes = [];
    for (let attempt = 0; attempt < 30 && got.length < ids.length; attempt++) {
      const c = await openWS(nodes[attempt % 3], bob);
      c.send({ type: 'subscribe', topic: 'room:long', cursor, rid: 1 });
      await Promise.race([c.closedP, c.waitFor((x) => x.frames.some((f) => f.type === 'ack'), 10000)]);
      await sleep(50);
      if (!c.closed) await c.close();
      closes.push(c.closed.code);
      assert.ok(!c.frames.some((f) => f.type === 'reset'), JSON.stringify(c.frames.slice(0, 2)));
      const m = c.messages();
      assert.ok(m.length > 0, `attempt ${attempt} made no progress`);
      got.push(...m.map((x) => x.id));
      cursor = m.at(-1).cursor;
    }
    assert.deepEqual(got, ids, 'WS: no gaps, no duplicates');
    assert.ok(closes.includes(1013), `closes ${closes}`);
    // SSE: a truncated replay ends the stream; Last-Event-ID continues on the next node
    got = [];
    let last = ack.cursor, ends = 0;
    for (let attempt = 0; attempt < 30 && got.length < ids.length; attempt++) {
      const s = openSSE(nodes[(attempt + 1) % 3], `token=${bob}&topics=room:long`, { headers: { 'Last-Event-ID': last } });
      const ended = await Promise.race([s.ended.then(() => true), sleep(3000).then(() => false)]);
      if (ended) ends++;
      await s.close();
      assert.ok(!s.events.some((e) => e.event === 'reset'));
      const m = s.messages();
      assert.ok(m.length > 0, `SSE attempt ${attempt} made no progress: ${JSON.stringify(s.raw.slice(0, 300))}`);
      got.push(...m.map((x) => x.id));
      last = m.at(-1)._id;
    }
    assert.deepEqual(got, ids, 'SSE: no gaps, no duplicates');
    assert.ok(ends >= 1);
  });
});

test('exactly once when the publisher is on the subscriber\'s node (no local echo on top of Redis)', async () => {
  await withCluster({ nodes: 2 }, async ({ nodes: [n1] }) => {
    const bob = tokenFor('bob');
    const { c: ws } = await wsSub(n1, 'bob');
    const sse = await sseLive(n1, `token=${bob}`);
    const alice = tokenFor('alice');
    const ids = [];
    for (let i = 0; i < 100; i++) {
      const r = await http(n1, '/v1/messages', { method: 'POST', token: alice, body: { to: 'bob', data: i } });
      assert.equal(r.status, 200, r.text);
      ids.push(r.body.id);
    }
    // bob writes to himself over the very connection that is subscribed
    for (let i = 100; i < 120; i++) {
      const a = await ws.request({ type: 'send', to: 'bob', data: i });
      assert.equal(a.type, 'ack', JSON.stringify(a));
      ids.push(a.id);
    }
    ids.push((await publish(n1, 'user:bob', 120)).id);
    await waitFor(() => ws.messages().length >= 121 && sse.messages().length >= 121, 20000, '121 messages');
    await sleep(500);
    const expectData = Array.from({ length: 121 }, (_, i) => i);
    for (const [name, x] of [['WS', ws], ['SSE', sse]]) {
      assert.deepEqual(x.messages().map((m) => m.id), ids, name);
      assert.deepEqual(x.messages().map((m) => m.data), expectData, name);
    }
    assert.deepEqual(ws.messages().map((m) => m.from), [...Array(100).fill('alice'), ...Array(20).fill('bob'), null]);
    await sse.close();
    await ws.close();
  });
});

// BUG (src/redis_backplane.c, history_lua): gap detection relies on XINFO STREAM's
// max-deleted-entry-id, but Redis (7.0.15 here) raises it only for XDEL, never for MAXLEN
// trimming, so it stays 0-0 and a cursor older than the retained stream silently resumes with
// a gap: no event: reset, WS ack recovered:true and no reset frame, poll recovered:true.
test('history trimmed past a cursor (history.size 10): reset, then a contiguous tail ending at the last id, on every transport and node', async () => {
  await withCluster({ nodes: 3, overrides: { history: { size: 10 } } }, async ({ redis, nodes: [n1, n2, n3] }) => {
    const bob = tokenFor('bob');
    const { c: w } = await wsSub(n1, 'bob', 'room:trim');
    const first = await publish(n1, 'room:trim', -1);
    await w.waitFor((x) => x.messages().length === 1, 15000);
    const old = w.messages()[0].cursor;
    assert.equal(decodeCursor(old)[0].id, first.id);
    const p0 = await http(n1, '/v1/poll?topics=room:trim&since=earliest', { token: bob });
    assert.deepEqual(p0.body.messages.map((m) => m.id), [first.id]);
    const oldPoll = p0.body.cursor;
    await w.close();
    const ids = await publishSeq(n2, 'room:trim', 500);
    const lastId = ids.at(-1);
    const xlen = Number((await redis.cli('XLEN', '{topic:room:trim}:history')).trim());
    assert.ok(xlen >= 10 && xlen < 500, `XLEN ${xlen}: the stream was trimmed`);
    const tail = (got) => {
      const k = got.length;
      // trimming is exact: the stream keeps history.size entries (9 of these once 'live' is in)
      return k >= 9 && k <= 10 && JSON.stringify(got) === JSON.stringify(ids.slice(ids.length - k));
    };

    // SSE on node 3 with the old cursor as Last-Event-ID
    const s = openSSE(n3, `token=${bob}&topics=room:trim`, { headers: { 'Last-Event-ID': old } });
    await s.waitFor((x) => x.messages().some((m) => m.id === lastId), 15000);
    await sleep(200);
    const ev = realEvents(s);
    const sse = {
      first: ev[0].event === 'reset' ? JSON.parse(ev[0].data) : 'no reset: ' + ev[0].data.slice(0, 60),
      resets: ev.filter((e) => e.event === 'reset').length,
      tail: tail(s.messages().map((m) => m.id)),
    };
    await s.close();

    // WebSocket on node 2: reset, the retained messages, then ack recovered:false
    const w2 = await openWS(n2, bob);
    const ack = await w2.request({ type: 'subscribe', topic: 'room:trim', cursor: old });
    await w2.waitFor((x) => x.messages().some((m) => m.id === lastId), 15000);
    const ws = {
      ack: [ack.type, ack.recovered],
      first: w2.frames[0].type === 'reset' ? w2.frames[0] : 'no reset',
      resets: w2.frames.filter((f) => f.type === 'reset').length,
      tail: tail(w2.messages().map((m) => m.id)),
    };
    // then it is live
    const live = await publish(n3, 'room:trim', 'live');
    await w2.waitFor((x) => x.messages().some((m) => m.id === live.id), 15000);
    await w2.close();

    // poll on node 2 with the old poll cursor: recovered:false and the tail
    const p = await http(n2, `/v1/poll?topics=room:trim&cursor=${oldPoll}`, { token: bob });
    assert.equal(p.status, 200, p.text);
    const got = p.body.messages.map((m) => m.id);
    const poll = { recovered: p.body.recovered, more: p.body.more, last: got.at(-1) === live.id, tail: tail(got.slice(0, -1)) };

    const info = `(stream kept ${xlen} of 501; XINFO max-deleted-entry-id ${
      (await redis.cli('XINFO', 'STREAM', '{topic:room:trim}:history')).split('\n').find((l, i, a) => a[i - 1] === 'max-deleted-entry-id')})`;
    assert.deepEqual({ sse, ws, poll }, {
      sse: { first: { topic: 'room:trim' }, resets: 1, tail: true },
      ws: { ack: ['ack', false], first: { type: 'reset', topic: 'room:trim' }, resets: 1, tail: true },
      poll: { recovered: false, more: undefined, last: true, tail: true },
    }, info);

    // its cursor resumes normally afterwards (no second reset)
    const next = await publish(n1, 'room:trim', 'next');
    const p2 = await http(n3, `/v1/poll?topics=room:trim&cursor=${p.body.cursor}`, { token: bob });
    assert.equal(p2.body.recovered, true);
    assert.deepEqual(p2.body.messages.map((m) => m.id), [next.id]);
  });
});

test('history that expired in Redis (backplane.history_ttl_s 1): an old cursor is reset, not silently resumed', async () => {
  await withCluster({ nodes: 2, overrides: { backplane: { history_ttl_s: 1 } } }, async ({ redis, nodes: [n1, n2] }) => {
    const bob = tokenFor('bob');
    await publishSeq(n1, 'room:ttl', 3);
    const p0 = await http(n1, '/v1/poll?topics=room:ttl&since=earliest', { token: bob });
    assert.equal(p0.body.messages.length, 3);
    await waitFor(async () => (await redis.cli('EXISTS', '{topic:room:ttl}:history')).trim() === '0', 10000, 'the stream to expire');
    const p1 = await http(n2, `/v1/poll?topics=room:ttl&cursor=${p0.body.cursor}`, { token: bob });
    assert.equal(p1.status, 200, p1.text);
    assert.deepEqual([p1.body.recovered, p1.body.messages], [false, []]);
    // a new history starts (a new epoch); the old cursor is still not trusted against it
    const m = await publish(n2, 'room:ttl', 'new');
    const p2 = await http(n1, `/v1/poll?topics=room:ttl&cursor=${p0.body.cursor}`, { token: bob });
    assert.deepEqual([p2.body.recovered, p2.body.messages.map((x) => x.id)], [false, [m.id]]);
    assert.notEqual(decodeCursor(p2.body.cursor)[0].epoch, decodeCursor(p0.body.cursor)[0].epoch);
    const { c: w } = await wsSub(n2, 'bob', 'room:ttl', p0.body.cursor);
    await w.waitFor((x) => x.messages().length >= 1, 15000);
    assert.deepEqual(w.frames.map((f) => f.type), ['reset', 'message', 'ack']);
    assert.equal(w.frames[2].recovered, false);
    await w.close();
  });
});

test('subscriber nodes cut off from Redis (CLIENT KILL TYPE pubsub) reconnect and catch up from the stream: nothing lost, nothing twice, no reset', async () => {
  await withCluster({ nodes: 3 }, async ({ redis, nodes: [n1, n2, n3] }) => {
    const bob = tokenFor('bob');
    const { c: ws } = await wsSub(n2, 'bob');
    const sse = await sseLive(n3, `token=${bob}`);
    const accepted = [];
    let refused = 0, stop = false;
    // node 1 has no subscriber, so it is not a pubsub client and keeps its connections
    const publisher = (async () => {
      for (let i = 0; !stop && i < 100000; i++) {
        const r = await tryPublish(n1, 'user:bob', i);
        if (r.status === 200) accepted.push({ id: r.body.id, i });
        else refused++;
        await sleep(3);
      }
    })();
    publisher.catch(() => {});
    const kills = [];
    for (let round = 0; round < 3; round++) {
      const n = accepted.length;
      await waitFor(() => accepted.length >= n + 30, 15000, `30 more accepted (round ${round})`);
      kills.push((await redis.cli('CLIENT', 'KILL', 'TYPE', 'pubsub')).trim());
      // messages keep being accepted while nodes 2 and 3 are away
      const m = accepted.length;
      await waitFor(() => accepted.length >= m + 10, 15000, `accepted while away (round ${round})`);
      await waitFor(async () => (await redis.numsub('topic:user:bob')) === 2, 15000, `nodes 2 and 3 subscribed again (round ${round})`);
    }
    const n = accepted.length;
    await waitFor(() => accepted.length >= n + 30, 15000, '30 more accepted at the end');
    stop = true;
    await publisher;
    assert.deepEqual(kills, ['2', '2', '2'], 'each CLIENT KILL cut the subscriber connections of nodes 2 and 3');
    assert.equal(refused, 0, 'node 1 never lost Redis');
    const want = accepted.map((a) => a.id);
    await waitFor(() => ws.messages().length >= want.length && sse.messages().length >= want.length, 20000,
      `all ${want.length} delivered (ws ${ws.messages().length}, sse ${sse.messages().length})`);
    await sleep(500);
    assert.deepEqual(ws.messages().map((x) => x.id), want, 'WS on node 2');
    assert.deepEqual(sse.messages().map((x) => x.id), want, 'SSE on node 3');
    assert.deepEqual(ws.messages().map((x) => x.data), accepted.map((a) => a.i));
    assert.deepEqual(ws.frames.filter((f) => f.type === 'reset'), []);
    assert.deepEqual(sse.events.filter((e) => e.event === 'reset'), []);
    assert.ok(/ready again: resubscribing and catching up/.test(n2.logs()), n2.logs().slice(-1000));
    await sse.close();
    await ws.close();
  });
});

// A raw connection to Redis for inline commands with one-line replies (+OK, :n, -ERR ...),
// kept open so that it still works while maxclients refuses new connections.
function redisSession(port) {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    let buf = '';
    const waiting = [];
    s.on('data', (d) => {
      buf += d;
      let i;
      while ((i = buf.indexOf('\r\n')) >= 0 && waiting.length) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 2);
        waiting.shift()(line);
      }
    });
    s.on('error', reject);
    s.on('connect', () => resolve({
      cmd: (line) => new Promise((r) => { waiting.push(r); s.write(line + '\r\n'); }),
      close: () => s.destroy(),
    }));
  });
}

// A node that had not yet received a live message on a topic when it lost Redis must still
// catch up on re-subscribing (hub_on_backplane_subscribed re-reads from the position each live
// subscriber went live at; it used to skip topics whose t->last was still zero, losing what
// was published meanwhile). Made deterministic with maxclients: node 2's reconnects are
// refused while node 1 (which keeps its connections) publishes.
test('a node cut off from Redis before its first live message on a topic still gets what was published meanwhile', async () => {
  await withCluster({ nodes: 2 }, async ({ redis, nodes: [n1, n2] }) => {
    const bob = tokenFor('bob');
    const { c: ws } = await wsSub(n2, 'bob');
    const sse = await sseLive(n2, `token=${bob}&topics=room:quiet`);
    const ses = await redisSession(redis.port);
    let restored = false;
    try {
      // n1's two connections + this session stay; node 2's subscriber is cut and it drops its
      // command connection; its reconnects are refused until maxclients is raised again
      assert.equal(await ses.cmd('CONFIG SET maxclients 3'), '+OK');
      assert.equal(await ses.cmd('CLIENT KILL TYPE pubsub'), ':1');
      await waitFor(async () => (await readyz(n2)).status === 503, 10000, 'node 2 not ready');
      assert.equal((await readyz(n1)).status, 200, 'node 1 kept its connections');
      const missed = [await publish(n1, 'user:bob', 'while away'), await publish(n1, 'room:quiet', 'while away')];
      assert.equal(await ses.cmd('CONFIG SET maxclients 10000'), '+OK');
      restored = true;
      await waitReady(n2, 15000);
      await waitFor(async () => (await redis.numsub('topic:user:bob')) === 1 && (await redis.numsub('topic:room:quiet')) === 1, 10000, 'node 2 subscribed again');
      const after = [await publish(n1, 'user:bob', 'after'), await publish(n1, 'room:quiet', 'after')];
      await waitFor(() => ws.messages().some((m) => m.id === after[0].id) && sse.messages().some((m) => m.id === after[1].id), 15000, 'the messages after the reconnect');
      await sleep(300);
      const got = {
        ws: ws.frames.filter((f) => f.type !== 'ack').map((f) => (f.type === 'message' ? f.data : f.type)),
        sse: realEvents(sse).map((e) => (e.event ? e.event : JSON.parse(e.data).data)),
      };
      // a reset would be honest; silently skipping "while away" is not
      assert.deepEqual(got, { ws: ['while away', 'after'], sse: ['while away', 'after'] },
        `ids published while node 2 was away: ${missed.map((m) => m.id)}`);
    } finally {
      if (!restored) await ses.cmd('CONFIG SET maxclients 10000');
      ses.close();
    }
    await ws.close();
    await sse.close();
  });
});

// A publishing node whose subscriber connection drops must not answer 503 for publishes that
// Redis then runs: a "refused" message must not be delivered (a client retrying a 503 would send
// it twice). The committed go_down() freed the healthy command connection along with the
// subscriber one, failing every publish in flight on it although Redis went on to run them.
// Made deterministic with one write to Redis: DEBUG SLEEP (node 1's next publishes wait, unread,
// in Redis's socket buffer), CLIENT KILL TYPE pubsub, DEBUG SLEEP again (node 1 reacts to the
// drop meanwhile); Redis runs the waiting publishes when it wakes up.
test('a publishing node whose Redis subscriber connection drops with publishes in flight: nothing answered 503 is delivered', async () => {
  await withCluster({ nodes: 2, redisArgs: ['--enable-debug-command', 'yes'] }, async ({ redis, nodes: [n1, n2] }) => {
    const bob = tokenFor('bob');
    // a subscriber on node 1 makes its subscriber connection a pubsub client (CLIENT KILL TYPE)
    const { c: w1 } = await wsSub(n1, 'carol');
    const sse = await sseLive(n2, `token=${bob}`);
    const outcome = new Map(); // payload -> 'ok' | 'refused'
    const accepted = [];
    let stop = false, next = 0;
    const worker = async () => {
      while (!stop) {
        const i = next++;
        const r = await tryPublish(n1, 'user:bob', i).catch(() => ({ status: 0 }));
        outcome.set(i, r.status === 200 ? 'ok' : 'refused');
        if (r.status === 200) accepted.push({ id: r.body.id, i });
        else await sleep(20);
      }
    };
    const workers = Array.from({ length: 20 }, worker);
    await waitFor(() => accepted.length >= 100, 15000, '100 accepted');
    // Redis runs the three in one go: freeze (node 1's next publishes queue up unread), cut the
    // subscriber connections, freeze again (node 1 gives up on its command connection meanwhile)
    const replies = await redisRaw(redis.port, 'DEBUG SLEEP 0.5\r\nCLIENT KILL TYPE pubsub\r\nDEBUG SLEEP 1\r\n', 3);
    assert.deepEqual(replies, ['+OK', ':2', '+OK'], 'both subscriber connections killed between two sleeps');
    const n = accepted.length;
    await waitFor(() => accepted.length >= n + 100, 20000, '100 more accepted after the recovery');
    stop = true;
    await Promise.all(workers);
    const refusedSet = new Set([...outcome].filter(([, v]) => v === 'refused').map(([k]) => k));
    accepted.sort((a, b) => idCmp(a.id, b.id));
    const last = accepted.at(-1).id;
    await waitFor(() => sse.messages().some((m) => m.id === last), 20000, 'the last accepted message');
    await sleep(500);
    const got = sse.messages();
    const refusedButDelivered = got.filter((m) => refusedSet.has(m.data)).map((m) => m.data);
    assert.match(n1.logs(), /backplane: redis \S+ unavailable/, 'node 1 saw its subscriber connection drop');
    assert.deepEqual(refusedButDelivered, [],
      `${refusedButDelivered.length} of ${refusedSet.size} publishes answered 503 were delivered anyway`);
    assert.deepEqual(got.map((m) => m.id), accepted.map((a) => a.id));
    await w1.close();
    await sse.close();
  });
});

test('SIGTERM of a node with Redis configured exits 0: with open streams, and while Redis is down', async () => {
  await withCluster({ nodes: 2 }, async ({ redis, nodes: [n1, n2] }) => {
    const bob = tokenFor('bob');
    const { c: ws } = await wsSub(n1, 'bob');
    const sse = await sseLive(n1, `token=${bob}&topics=room:1`);
    const p = await http(n1, '/v1/poll?topics=room:1', { token: bob });
    const lp = http(n1, `/v1/longpoll?topics=room:1&cursor=${p.body.cursor}&timeout=30`, { token: bob });
    await waitFor(async () => (await redis.numsub('topic:room:1')) === 1, 5000, 'long-poll held');
    const r = await n1.stop();
    assert.deepEqual([r.code, r.signal], [0, null], n1.logs().slice(-2000));
    assert.equal((await ws.closedP).code, 1012);
    assert.equal(await sse.ended, 0);
    const lr = await lp;
    assert.equal(lr.status, 200, lr.text);
    assert.deepEqual(lr.body.messages, []);
    await waitFor(async () => (await redis.numsub('topic:user:bob')) === 0, 5000, 'its subscriptions gone with it');

    // node 2, with Redis gone and reconnecting with backoff, still drains and exits 0
    const { c: ws2 } = await wsSub(n2, 'bob');
    await redis.stop();
    await waitFor(async () => (await readyz(n2)).status === 503, 10000, 'node 2 not ready');
    await sleep(1500); // let a few reconnect attempts fail
    const r2 = await n2.stop();
    assert.deepEqual([r2.code, r2.signal], [0, null], n2.logs().slice(-2000));
    assert.equal((await ws2.closedP).code, 1012);
  });
});
