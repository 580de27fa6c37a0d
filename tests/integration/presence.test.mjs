// Presence: GET /v1/presence across nodes, who may ask, the presence:<user> events, and a node
// killed with SIGKILL whose users stop counting within presence.ttl_s.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startGateway, http, openSSE, openWS, API_KEY, sleep } from './lib.mjs';
import { makeJwt, nowS } from './helpers.mjs';
import { requireRedis, withCluster, tokenFor, waitFor } from './redis-lib.mjs';

requireRedis();

const TTL = 3;
const presence = (gw, users, opts = {}) =>
  http(gw, `/v1/presence?users=${users}`, { headers: { 'x-api-key': API_KEY }, ...opts });
const conns = async (gw, user) => (await presence(gw, user)).body.users[user].connections;

test('local backplane: counts, answer shape, errors and who may ask', async () => {
  const gw = await startGateway({});
  try {
    let r = await presence(gw, 'alice,bob');
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, {
      users: { alice: { online: false, connections: 0 }, bob: { online: false, connections: 0 } },
    });
    const ws1 = await openWS(gw, tokenFor('alice'));
    const ws2 = await openWS(gw, tokenFor('alice'));
    const sse = openSSE(gw, `token=${tokenFor('bob')}`);
    await waitFor(async () => (await conns(gw, 'bob')) === 1, 5000, 'bob online');
    r = await presence(gw, 'alice,bob,carol');
    assert.deepEqual(r.body.users, {
      alice: { online: true, connections: 2 },
      bob: { online: true, connections: 1 },
      carol: { online: false, connections: 0 },
    });
    await ws1.close();
    await waitFor(async () => (await conns(gw, 'alice')) === 1, 5000, 'alice down to 1');
    await ws2.close();
    await sse.close();
    await waitFor(async () => (await conns(gw, 'alice')) === 0 && (await conns(gw, 'bob')) === 0,
      5000, 'both offline');

    // errors, exact bodies
    r = await presence(gw, '');
    assert.equal(r.status, 400);
    assert.deepEqual(r.body, { error: 'missing users' });
    r = await http(gw, '/v1/presence', { headers: { 'x-api-key': API_KEY } });
    assert.deepEqual([r.status, r.body], [400, { error: 'missing users' }]);
    r = await presence(gw, 'a,,b');
    assert.deepEqual([r.status, r.body], [400, { error: 'invalid user id' }]);
    r = await presence(gw, 'a:b');
    assert.deepEqual([r.status, r.body], [400, { error: 'invalid user id' }]);
    r = await presence(gw, Array.from({ length: 101 }, (_, i) => `u${i}`).join(','));
    assert.deepEqual([r.status, r.body], [400, { error: 'too many users (at most 100)' }]);
    r = await presence(gw, Array.from({ length: 100 }, (_, i) => `u${i}`).join(','));
    assert.equal(r.status, 200);
    assert.equal(Object.keys(r.body.users).length, 100);

    // credentials
    r = await http(gw, '/v1/presence?users=alice');
    assert.deepEqual([r.status, r.body], [401, { error: 'missing token' }]);
    r = await http(gw, '/v1/presence?users=alice', { headers: { 'x-api-key': 'wrong-key-0123456789abcdef' } });
    assert.deepEqual([r.status, r.body], [401, { error: 'bad API key' }]);
    r = await http(gw, '/v1/presence?users=alice', { token: tokenFor('carol') });
    assert.deepEqual([r.status, r.body], [403, { error: 'presence not granted' }]);
    const granted = makeJwt({ sub: 'carol', iat: nowS(), exp: nowS() + 60, presence: true });
    r = await http(gw, '/v1/presence?users=alice', { token: granted });
    assert.deepEqual([r.status, r.body], [200, { users: { alice: { online: false, connections: 0 } } }]);
    const bad = makeJwt({ sub: 'carol', iat: nowS(), exp: nowS() + 60, presence: 'yes' });
    r = await http(gw, '/v1/presence?users=alice', { token: bad });
    assert.deepEqual([r.status, r.body], [401, { error: 'bad grants' }]);
  } finally {
    await gw.stop();
  }
});

test('an API key limited to topic patterns asks only for users it may publish presence of', async () => {
  const key = 'limited-key-0123456789abcdef';
  const gw = await startGateway({
    auth: { api_keys: [API_KEY, { key, topics: ['presence:team-*'] }] },
  });
  try {
    let r = await http(gw, '/v1/presence?users=team-a,team-b', { headers: { 'x-api-key': key } });
    assert.equal(r.status, 200);
    r = await http(gw, '/v1/presence?users=team-a,boss', { headers: { 'x-api-key': key } });
    assert.deepEqual([r.status, r.body], [403, { error: 'presence not granted' }]);
  } finally {
    await gw.stop();
  }
});

test('presence.enabled false: 404', async () => {
  const gw = await startGateway({ presence: { enabled: false } });
  try {
    const r = await presence(gw, 'alice');
    assert.deepEqual([r.status, r.body], [404, { error: 'presence is disabled' }]);
  } finally {
    await gw.stop();
  }
});

test('redis: counts over two nodes, events, and a SIGKILLed node stops counting within the TTL', async () => {
  await withCluster({ nodes: 2, overrides: { presence: { ttl_s: TTL, events: true } } }, async (cl) => {
    const [a, b] = cl.nodes;
    const watcher = openSSE(b, `topics=presence:alice&token=${tokenFor('watcher')}`);
    await waitFor(async () => (await cl.redis.numsub('topic:presence:alice')) >= 1, 5000, 'watcher subscribed');
    await watcher.waitFor((s) => s.raw.includes('retry:')); // written once the stream is live

    const wsA = await openWS(a, tokenFor('alice'));
    const sseA = openSSE(a, `token=${tokenFor('alice')}`);
    const wsB = await openWS(b, tokenFor('alice'));
    const wsBob = await openWS(b, tokenFor('bob'));
    for (const gw of [a, b])
      await waitFor(async () => (await conns(gw, 'alice')) === 3 && (await conns(gw, 'bob')) === 1,
        5000, `3 + 1 connections seen from ${gw.url}`);
    const r = await presence(a, 'alice,bob,nobody');
    assert.deepEqual(r.body.users, {
      alice: { online: true, connections: 3 },
      bob: { online: true, connections: 1 },
      nobody: { online: false, connections: 0 },
    });
    // one join for alice, though three connections on two nodes
    await watcher.waitFor((s) => s.messages().length >= 1);
    await sleep(300);
    assert.deepEqual(watcher.messages().map((m) => m.data), [{ event: 'join', user: 'alice' }]);

    // node a dies without clean-up: its two connections stop counting within the TTL
    const t0 = Date.now();
    a.proc.kill('SIGKILL');
    await sseA.ended;
    await waitFor(async () => (await conns(b, 'alice')) === 1, (TTL + 3) * 1000, 'alice down to 1 after the kill');
    const took = Date.now() - t0;
    assert.ok(took <= (TTL + 2) * 1000, `took ${took} ms for a TTL of ${TTL} s`);
    assert.deepEqual(watcher.messages().map((m) => m.data), [{ event: 'join', user: 'alice' }],
      'still online through node b: no leave');

    // the last connection goes: one leave
    await wsB.close();
    await waitFor(async () => (await conns(b, 'alice')) === 0, 5000, 'alice offline');
    await watcher.waitFor((s) => s.messages().length >= 2);
    await sleep(300);
    assert.deepEqual(watcher.messages().map((m) => m.data),
      [{ event: 'join', user: 'alice' }, { event: 'leave', user: 'alice' }]);
    await wsBob.close();
    await watcher.close();
    wsA.ws.terminate();
  });
});

test('redis: a SIGKILLed node that held the only connection: offline and one leave event', async () => {
  await withCluster({ nodes: 2, overrides: { presence: { ttl_s: TTL, events: true } } }, async (cl) => {
    const [a, b] = cl.nodes;
    const watcher = openSSE(b, `topics=presence:dave&token=${tokenFor('watcher')}`);
    await waitFor(async () => (await cl.redis.numsub('topic:presence:dave')) >= 1, 5000, 'watcher subscribed');
    await watcher.waitFor((s) => s.raw.includes('retry:')); // written once the stream is live
    const ws = await openWS(a, tokenFor('dave'));
    await waitFor(async () => (await conns(b, 'dave')) === 1, 5000, 'dave online');
    // the join is published right after the count is stored: wait for it before the kill (a
    // node killed in between loses that one event; the count and the leave are not lost)
    await watcher.waitFor((s) => s.messages().length >= 1);
    a.proc.kill('SIGKILL');
    await ws.closedP;
    await waitFor(async () => (await conns(b, 'dave')) === 0, (TTL + 3) * 1000, 'dave offline');
    // the leave is announced by the surviving node when it reaps (every ttl/3)
    await watcher.waitFor((s) => s.messages().length >= 2, (TTL + 3) * 1000);
    await sleep(300);
    assert.deepEqual(watcher.messages().map((m) => m.data),
      [{ event: 'join', user: 'dave' }, { event: 'leave', user: 'dave' }]);
    await watcher.close();
  });
});

test('redis: counts come back after Redis restarts empty', async () => {
  await withCluster({ nodes: 1, overrides: { presence: { ttl_s: TTL } } }, async (cl) => {
    const [a] = cl.nodes;
    const ws = await openWS(a, tokenFor('erin'));
    await waitFor(async () => (await conns(a, 'erin')) === 1, 5000, 'erin online');
    await cl.redis.stop();
    let r = await presence(a, 'erin');
    assert.deepEqual([r.status, r.body], [503, { error: 'backplane unavailable' }]);
    await cl.redis.start();
    await waitFor(async () => (await presence(a, 'erin')).status === 200, 15000, 'backplane back');
    await waitFor(async () => (await conns(a, 'erin')) === 1, 5000, 'erin counted again');
    await ws.close();
  });
});
