// Ephemeral messages ("ephemeral": true, the transport of WebRTC signaling): delivered live on
// every transport, never stored, never replayed on resume or poll, refused when nobody is
// subscribed to the target. On the local backplane and on the Redis backplane (a real
// redis-server, two nodes: PUBLISH without XADD).
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { http, openSSE, openWS, sleep, API_KEY } from './lib.mjs';
import { withGateway, decodeCursor } from './helpers.mjs';
import { requireRedis, withCluster, tokenFor } from './redis-lib.mjs';

before(() => requireRedis());

const OFFLINE = '{"error":"recipient offline"}';

async function wsSub(gw, user, topic = `user:${user}`) {
  const c = await openWS(gw, tokenFor(user));
  const ack = await c.request({ type: 'subscribe', topic });
  assert.equal(ack.type, 'ack', JSON.stringify(ack));
  return c;
}

const post = (gw, token, body) => http(gw, '/v1/messages', { method: 'POST', token, body });

async function sseLive(gw, query, opts) {
  const s = openSSE(gw, query, opts);
  await s.waitFor((x) => x.raw.includes('retry:'), 15000);
  return s;
}

test('WS and HTTP: an ephemeral send is delivered live, acked without an id', async () => {
  await withGateway({}, async (gw) => {
    const bob = await wsSub(gw, 'bob');
    const alice = await openWS(gw, tokenFor('alice'));
    const ack = await alice.request({ type: 'send', to: 'bob', ephemeral: true, data: { type: 'offer', call: 'c1', sdp: 'v=0' } });
    assert.deepEqual(ack, { type: 'ack', rid: ack.rid, topic: 'user:bob', ephemeral: true });
    await bob.waitFor((c) => c.messages().length === 1);
    const m = bob.messages()[0];
    assert.equal(m.ephemeral, true);
    assert.equal(m.from, 'alice');
    assert.equal(m.topic, 'user:bob');
    assert.deepEqual(m.data, { type: 'offer', call: 'c1', sdp: 'v=0' });
    assert.equal('id' in m, false, JSON.stringify(m));
    assert.equal('cursor' in m, false, JSON.stringify(m));
    assert.equal(typeof m.ts, 'number');

    // POST /v1/messages: the same, "from" from the token
    const r = await post(gw, tokenFor('carol'), { to: 'bob', ephemeral: true, data: { type: 'hangup', call: 'c1' }, from: 'mallory' });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.body, { topic: 'user:bob', ephemeral: true });
    await bob.waitFor((c) => c.messages().length === 2);
    assert.equal(bob.messages()[1].from, 'carol');

    // POST /v1/publish (API key) to a room with a subscriber
    const room = await wsSub(gw, 'dave', 'room:1');
    const p = await http(gw, '/v1/publish', { method: 'POST', headers: { 'x-api-key': API_KEY }, body: { topic: 'room:1', ephemeral: true, data: 1 } });
    assert.equal(p.status, 200, p.text);
    assert.deepEqual(p.body, { topic: 'room:1', ephemeral: true });
    await room.waitFor((c) => c.messages().length === 1);
    assert.equal(room.messages()[0].from, null);

    // "ephemeral": false is an ordinary, stored message
    const s = await alice.request({ type: 'send', to: 'bob', ephemeral: false, data: 2 });
    assert.match(s.id, /^\d+-\d+$/);
    await Promise.all([bob.close(), alice.close(), room.close()]);
  });
});

test('an offer to an offline user is refused: 409 and an error frame; nothing waits for them', async () => {
  await withGateway({}, async (gw) => {
    const alice = await openWS(gw, tokenFor('alice'));
    const e = await alice.request({ type: 'send', to: 'bob', ephemeral: true, data: { type: 'offer', call: 'c1' } });
    assert.deepEqual(e, { type: 'error', rid: e.rid, error: 'recipient offline' });
    const r = await post(gw, tokenFor('alice'), { to: 'bob', ephemeral: true, data: { type: 'offer', call: 'c2' } });
    assert.equal(r.status, 409);
    assert.equal(r.text, OFFLINE);
    const p = await http(gw, '/v1/publish', { method: 'POST', headers: { 'x-api-key': API_KEY }, body: { topic: 'room:empty', ephemeral: true, data: 1 } });
    assert.equal(p.status, 409);
    assert.equal(p.text, OFFLINE);
    // a WebSocket connected but not subscribed to its inbox is not reachable either
    const bobIdle = await openWS(gw, tokenFor('bob'));
    assert.equal((await alice.request({ type: 'send', to: 'bob', ephemeral: true, data: 3 })).error, 'recipient offline');

    // bob comes online: none of the refused offers arrives, and nothing is in his history
    const bob = await wsSub(gw, 'bob');
    const poll = await http(gw, '/v1/poll?since=earliest', { token: tokenFor('bob') });
    assert.equal(poll.status, 200);
    assert.deepEqual(poll.body.messages, []);
    await sleep(200);
    assert.equal(bob.messages().length, 0);
    // and while he is subscribed an offer goes through
    assert.equal((await alice.request({ type: 'send', to: 'bob', ephemeral: true, data: 4 })).type, 'ack');
    await bob.waitFor((c) => c.messages().length === 1);
    // once he left he is offline again
    await bob.close();
    await bobIdle.close();
    const again = await post(gw, tokenFor('alice'), { to: 'bob', ephemeral: true, data: 5 });
    assert.equal(again.status, 409);
    assert.equal(again.text, OFFLINE);

    // a non-boolean flag is a request error
    const bad = await post(gw, tokenFor('alice'), { to: 'bob', ephemeral: 'yes', data: 1 });
    assert.equal(bad.status, 400);
    assert.equal(bad.text, '{"error":"\\"ephemeral\\" must be a boolean"}');
    assert.equal((await alice.request({ type: 'send', to: 'bob', ephemeral: 1, data: 1 })).error, '"ephemeral" must be a boolean');
    await alice.close();
  });
});

// stored m1, ephemeral e, stored m2 on a live SSE stream; then every way of reading again
async function replayScenario(sendNode, readNode, otherNode) {
  const bobTok = tokenFor('bob');
  const sse = await sseLive(readNode, `token=${bobTok}`);
  const alice = await openWS(sendNode, tokenFor('alice'));
  assert.match((await alice.request({ type: 'send', to: 'bob', data: 'm1' })).id, /^\d+-\d+$/);
  const eAck = await alice.request({ type: 'send', to: 'bob', ephemeral: true, data: { type: 'candidate', call: 'c1' } });
  assert.equal(eAck.type, 'ack', JSON.stringify(eAck));
  assert.match((await alice.request({ type: 'send', to: 'bob', data: 'm2' })).id, /^\d+-\d+$/);
  await sse.waitFor((s) => s.messages().length === 3, 10000);
  const live = sse.messages();
  assert.deepEqual(live.map((m) => m.data), ['m1', { type: 'candidate', call: 'c1' }, 'm2']);
  // the ephemeral event has no id: line, so EventSource keeps m1's as its Last-Event-ID
  assert.equal(live[1]._id, undefined);
  assert.equal(live[1].ephemeral, true);
  assert.ok(live[0]._id && live[2]._id);
  await sse.close();

  // SSE reconnect with m1's id (what EventSource would send after the ephemeral event): m2 only
  const again = await sseLive(otherNode, `token=${bobTok}`, { headers: { 'Last-Event-ID': live[0]._id } });
  await again.waitFor((s) => s.messages().length >= 1, 10000);
  await sleep(200);
  assert.deepEqual(again.messages().map((m) => m.data), ['m2']);
  await again.close();

  // poll from the beginning and from m1: never the ephemeral one
  const all = await http(otherNode, '/v1/poll?since=earliest', { token: bobTok });
  assert.deepEqual(all.body.messages.map((m) => m.data), ['m1', 'm2']);
  const from1 = await http(otherNode, `/v1/poll?cursor=${live[0]._id}`, { token: bobTok });
  assert.deepEqual(from1.body.messages.map((m) => m.data), ['m2']);

  // WebSocket resume from m1: m2 only
  const ws = await openWS(otherNode, bobTok);
  const ack = await ws.request({ type: 'subscribe', topic: 'user:bob', cursor: live[0]._id });
  assert.equal(ack.recovered, true);
  assert.deepEqual(ws.messages().map((m) => m.data), ['m2']);
  await ws.close();
  await alice.close();
}

test('local: an ephemeral message is not in SSE, poll or WebSocket replay after reconnect', async () => {
  await withGateway({}, async (gw) => replayScenario(gw, gw, gw));
});

test('local: a held long-poll is answered with an ephemeral message; its cursor does not move', async () => {
  await withGateway({}, async (gw) => {
    const tok = tokenFor('bob');
    const first = await http(gw, '/v1/poll', { token: tok });
    const cursor = first.body.cursor;
    const held = http(gw, `/v1/longpoll?cursor=${cursor}&timeout=20`, { token: tok });
    const alice = await openWS(gw, tokenFor('alice'));
    let ack;
    for (let i = 0; i < 200; i++) { // until the long-poll is held (subscribed)
      ack = await alice.request({ type: 'send', to: 'bob', ephemeral: true, data: 'ring' });
      if (ack.type === 'ack') break;
      await sleep(20);
    }
    assert.equal(ack.type, 'ack', JSON.stringify(ack));
    const r = await held;
    assert.equal(r.status, 200);
    assert.equal(r.body.messages.length, 1);
    assert.equal(r.body.messages[0].ephemeral, true);
    assert.equal(r.body.messages[0].data, 'ring');
    assert.deepEqual(decodeCursor(r.body.cursor), decodeCursor(cursor));
    const after = await http(gw, `/v1/poll?cursor=${r.body.cursor}`, { token: tok });
    assert.deepEqual(after.body.messages, []);
    await alice.close();
  });
});

test('redis: ephemeral across nodes is PUBLISH only: delivered, never in the stream, never replayed', async () => {
  await withCluster({ nodes: 2 }, async ({ redis, nodes: [n1, n2] }) => {
    const bob = await wsSub(n2, 'bob');
    const alice = await openWS(n1, tokenFor('alice'));
    const ack = await alice.request({ type: 'send', to: 'bob', ephemeral: true, data: { type: 'offer', call: 'x' } });
    assert.deepEqual(ack, { type: 'ack', rid: ack.rid, topic: 'user:bob', ephemeral: true });
    await bob.waitFor((c) => c.messages().length === 1, 10000);
    assert.equal(bob.messages()[0].ephemeral, true);
    assert.equal(bob.messages()[0].from, 'alice');
    assert.equal('id' in bob.messages()[0], false);
    assert.equal((await redis.cli('EXISTS', '{topic:user:bob}:history')).trim(), '0');
    // offline across the cluster: nobody subscribes topic:user:carol anywhere
    assert.equal(await redis.numsub('topic:user:carol'), 0);
    const r = await post(n1, tokenFor('alice'), { to: 'carol', ephemeral: true, data: { type: 'offer' } });
    assert.equal(r.status, 409);
    assert.equal(r.text, OFFLINE);
    const e = await alice.request({ type: 'send', to: 'carol', ephemeral: true, data: 1 });
    assert.equal(e.error, 'recipient offline');
    await bob.close();
    await alice.close();
    // bob left: his channel is unsubscribed, so he is offline too
    for (let i = 0; i < 100 && (await redis.numsub('topic:user:bob')) !== 0; i++) await sleep(20);
    const gone = await post(n1, tokenFor('alice'), { to: 'bob', ephemeral: true, data: 1 });
    assert.equal(gone.status, 409);
    await replayScenario(n1, n2, n1);
    assert.equal((await redis.cli('XLEN', '{topic:user:bob}:history')).trim(), '2');
  });
});

test('redis: signed backplane delivers ephemeral messages too', async () => {
  await withCluster({ nodes: 2, overrides: { backplane: { signing_key: 'signing-key-0123456789abcdef' } } }, async ({ nodes: [n1, n2] }) => {
    const bob = await wsSub(n2, 'bob');
    const r = await post(n1, tokenFor('alice'), { to: 'bob', ephemeral: true, data: { type: 'answer' } });
    assert.equal(r.status, 200, r.text);
    await bob.waitFor((c) => c.messages().length === 1, 10000);
    assert.deepEqual(bob.messages()[0].data, { type: 'answer' });
    await bob.close();
  });
});

test('ephemeral messages respect the usual limits: size and the WebSocket publish rate', async () => {
  await withGateway({ limits: { max_message_bytes: 1024, publish_rate: 1, publish_burst: 2 } }, async (gw) => {
    const bob = await wsSub(gw, 'bob');
    const r = await post(gw, tokenFor('alice'), { to: 'bob', ephemeral: true, data: 'x'.repeat(2000) });
    assert.equal(r.status, 413);
    assert.equal(r.text, '{"error":"body too large"}');
    const alice = await openWS(gw, tokenFor('alice'));
    const replies = [];
    for (let i = 0; i < 3; i++) replies.push(await alice.request({ type: 'send', to: 'bob', ephemeral: true, data: { type: 'candidate', call: 'c', n: i } }));
    assert.deepEqual(replies.map((x) => x.type), ['ack', 'ack', 'error']);
    assert.equal(replies[2].error, 'rate limited');
    await bob.waitFor((c) => c.messages().length === 2);
    await sleep(100);
    assert.deepEqual(bob.messages().map((m) => m.data.n), [0, 1]);
    await Promise.all([bob.close(), alice.close()]);
  });
});
