// /v1/ws: subscribe/ack/message frames, send/publish/ping, ordering, resume and reset, unsubscribe,
// request errors, protocol-error closes, refused upgrades, shutdown, slow consumers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openWS, publish, sleep } from './lib.mjs';
import { withGateway, waitUntil, decodeCursor, idCmp, metric, publishSeq, makeJwt, nowS, tryUpgrade } from './helpers.mjs';

const MSG_KEYS = ['type', 'id', 'topic', 'from', 'ts', 'data', 'cursor'];

// A second client on the same gateway can still subscribe, publish and receive.
async function assertStillServes(gw) {
  const a = await openWS(gw, gw.token('checker'));
  const sub = await a.request({ type: 'subscribe', topic: 'room:check' });
  assert.equal(sub.type, 'ack');
  const ack = await a.request({ type: 'publish', topic: 'room:check', data: 'ok?' });
  assert.equal(ack.type, 'ack');
  await a.waitFor((c) => c.messages().some((m) => m.id === ack.id));
  assert.equal((await a.request({ type: 'ping' })).type, 'pong');
  await a.close();
}

test('subscribe is acked with recovered and cursor; messages carry id, topic, from, ts, data, cursor', async () => {
  await withGateway({}, async (gw) => {
    const bob = await openWS(gw, gw.token('bob'));
    const ack = await bob.request({ type: 'subscribe', topic: 'room:1' });
    assert.deepEqual(Object.keys(ack), ['type', 'rid', 'topic', 'recovered', 'cursor']);
    assert.deepEqual({ ...ack, cursor: 'x' }, { type: 'ack', rid: 1, topic: 'room:1', recovered: true, cursor: 'x' });
    const [pos] = decodeCursor(ack.cursor);
    assert.deepEqual({ ...pos, epoch: 'e' }, { topic: 'room:1', epoch: 'e', id: '0-0' });

    const p = await publish(gw, 'room:1', { hello: 'world' }, { from: 'svc' });
    await bob.waitFor((c) => c.messages().length === 1);
    const m = bob.messages()[0];
    assert.deepEqual(Object.keys(m), MSG_KEYS);
    assert.deepEqual({ ...m, ts: 0, cursor: 'x' }, { type: 'message', id: p.id, topic: 'room:1', from: 'svc', ts: 0, data: { hello: 'world' }, cursor: 'x' });
    assert.ok(Number.isInteger(m.ts));
    assert.deepEqual(decodeCursor(m.cursor), [{ topic: 'room:1', epoch: pos.epoch, id: p.id }]);

    // a later subscriber's ack cursor is "now": the newest id of the topic
    const carol = await openWS(gw, gw.token('carol'));
    const ack2 = await carol.request({ type: 'subscribe', topic: 'room:1' });
    assert.deepEqual(decodeCursor(ack2.cursor), [{ topic: 'room:1', epoch: pos.epoch, id: p.id }]);
    // rid can be any JSON value and comes back as sent
    carol.send({ type: 'ping', rid: { n: 'x' } });
    await carol.waitFor((c) => c.frames.some((f) => f.type === 'pong'));
    assert.deepEqual(carol.frames.find((f) => f.type === 'pong'), { type: 'pong', rid: { n: 'x' } });
    await bob.close();
    await carol.close();
  });
});

test('send to a user, publish to a topic, ping', async () => {
  await withGateway({}, async (gw) => {
    const alice = await openWS(gw, gw.token('alice'));
    const bob = await openWS(gw, gw.token('bob'));
    await bob.request({ type: 'subscribe', topic: 'user:bob' });
    await bob.request({ type: 'subscribe', topic: 'room:1' });

    const sent = await alice.request({ type: 'send', to: 'bob', data: { text: 'hi bob' }, from: 'mallory' });
    assert.deepEqual(Object.keys(sent), ['type', 'rid', 'id', 'topic']);
    assert.deepEqual({ ...sent, id: 'x' }, { type: 'ack', rid: 1, id: 'x', topic: 'user:bob' });
    assert.match(sent.id, /^\d+-\d+$/);
    await bob.waitFor((c) => c.messages().length === 1);
    const m = bob.messages()[0];
    assert.equal(m.id, sent.id);
    assert.equal(m.topic, 'user:bob');
    assert.equal(m.from, 'alice'); // from the token, not the frame
    assert.deepEqual(m.data, { text: 'hi bob' });

    const pub = await alice.request({ type: 'publish', topic: 'room:1', data: [1, 'two', null] });
    assert.deepEqual({ ...pub, id: 'x' }, { type: 'ack', rid: 2, id: 'x', topic: 'room:1' });
    await bob.waitFor((c) => c.messages().length === 2);
    const m2 = bob.messages()[1];
    assert.deepEqual({ ...m2, ts: 0, cursor: 'x' }, { type: 'message', id: pub.id, topic: 'room:1', from: 'alice', ts: 0, data: [1, 'two', null], cursor: 'x' });

    assert.deepEqual(await alice.request({ type: 'ping' }), { type: 'pong', rid: 3 });
    // alice is not subscribed to anything: she got only replies
    assert.deepEqual(alice.frames.map((f) => f.type), ['ack', 'ack', 'pong']);
    await alice.close();
    await bob.close();
  });
});

test('1,000 messages arrive once each and in order over a WebSocket', async () => {
  await withGateway({}, async (gw) => {
    const bob = await openWS(gw, gw.token('bob'));
    await bob.request({ type: 'subscribe', topic: 'room:1' });
    const ids = await publishSeq(gw, 'room:1', 1000);
    await bob.waitFor((c) => c.messages().length >= 1000, 30000);
    await sleep(100);
    const msgs = bob.messages();
    assert.equal(msgs.length, 1000);
    assert.deepEqual(msgs.map((m) => m.data), Array.from({ length: 1000 }, (_, i) => i));
    assert.deepEqual(msgs.map((m) => m.id), ids);
    for (let i = 1; i < 1000; i++) assert.equal(idCmp(msgs[i - 1].id, msgs[i].id), -1);
    assert.equal(new Set(msgs.map((m) => m.cursor)).size, 1000);
    await bob.close();
  });
});

test('resume: subscribe with the last cursor replays exactly the missed messages, then live ones', async () => {
  await withGateway({}, async (gw) => {
    const tok = gw.token('bob');
    const a = await openWS(gw, tok);
    await a.request({ type: 'subscribe', topic: 'room:1' });
    await publishSeq(gw, 'room:1', 10);
    await a.waitFor((c) => c.messages().length === 10);
    const last = a.messages()[9];
    await a.close();
    const missed = await publishSeq(gw, 'room:1', 5, (i) => i, 10);

    const b = await openWS(gw, tok);
    const ack = await b.request({ type: 'subscribe', topic: 'room:1', cursor: last.cursor });
    assert.deepEqual(Object.keys(ack).sort(), ['cursor', 'recovered', 'rid', 'topic', 'type']);
    assert.equal(ack.recovered, true);
    await b.waitFor((c) => c.messages().length >= 5);
    await sleep(100);
    assert.deepEqual(b.messages().map((m) => m.id), missed);
    // the replay comes first, then the ack (now live), whose cursor is that of the last one
    assert.deepEqual(b.frames.map((f) => f.type), ['message', 'message', 'message', 'message', 'message', 'ack']);
    assert.equal(ack.cursor, b.messages()[4].cursor);
    const live = await publishSeq(gw, 'room:1', 2, (i) => i, 15);
    await b.waitFor((c) => c.messages().length >= 7);
    await sleep(100);
    assert.deepEqual(b.messages().map((m) => m.data), [10, 11, 12, 13, 14, 15, 16]);
    assert.deepEqual(b.messages().map((m) => m.id), [...missed, ...live]);
    await b.close();

    // the cursor of a plain subscribe's ack is a resume point too
    const c1 = await openWS(gw, tok);
    const ack1 = await c1.request({ type: 'subscribe', topic: 'room:1' });
    await c1.close();
    const after = await publishSeq(gw, 'room:1', 3, (i) => i, 17);
    const c2 = await openWS(gw, tok);
    assert.equal((await c2.request({ type: 'subscribe', topic: 'room:1', cursor: ack1.cursor })).recovered, true);
    await c2.waitFor((c) => c.messages().length >= 3);
    await sleep(100);
    assert.deepEqual(c2.messages().map((m) => m.id), after);
    await c2.close();
  });
});

test('resume from an evicted cursor: ack recovered:false, then reset, then the retained messages', async () => {
  await withGateway({ history: { size: 5 } }, async (gw) => {
    const tok = gw.token('bob');
    const a = await openWS(gw, tok);
    await a.request({ type: 'subscribe', topic: 'room:1' });
    await publish(gw, 'room:1', 0);
    await a.waitFor((c) => c.messages().length === 1);
    const old = a.messages()[0].cursor;
    await a.close();
    const ids = await publishSeq(gw, 'room:1', 20, (i) => i, 1);

    const b = await openWS(gw, tok);
    b.send({ type: 'subscribe', topic: 'room:1', cursor: old, rid: 7 });
    await b.waitFor((c) => c.messages().length >= 5);
    await sleep(100);
    // reset first, then the retained messages, then the ack (recovered:false)
    assert.deepEqual(b.frames[0], { type: 'reset', topic: 'room:1' });
    assert.equal(b.frames.length, 7);
    assert.deepEqual(b.frames.slice(1, 6).map((f) => f.data), [16, 17, 18, 19, 20]);
    assert.deepEqual(b.frames.slice(1, 6).map((f) => f.id), ids.slice(15));
    const { cursor: _c, ...ack7 } = b.frames[6];
    assert.deepEqual(ack7, { type: 'ack', rid: 7, topic: 'room:1', recovered: false });
    await publish(gw, 'room:1', 21);
    await b.waitFor((c) => c.messages().length === 6);
    await b.close();

    // a cursor from another gateway (another epoch) is not trusted either
    await withGateway({}, async (other) => {
      const c = await openWS(other, other.token('bob'));
      await publish(other, 'room:1', 'o1');
      c.send({ type: 'subscribe', topic: 'room:1', cursor: old, rid: 1 });
      await c.waitFor((x) => x.messages().length >= 1);
      await sleep(100);
      await c.waitFor((x) => x.frames.some((f) => f.type === 'ack'));
      assert.deepEqual(c.frames[0], { type: 'reset', topic: 'room:1' });
      assert.deepEqual(c.messages().map((m) => m.data), ['o1']);
      assert.equal(c.frames[2].type, 'ack');
      assert.equal(c.frames[2].recovered, false);
      await c.close();
    });
  });
});

test('a resume with more missed messages than limits.send_queue is closed 1013, and resuming again gets the rest', async () => {
  await withGateway({ limits: { send_queue: 8 }, history: { size: 100 } }, async (gw) => {
    const tok = gw.token('bob');
    const a = await openWS(gw, tok);
    const ack = await a.request({ type: 'subscribe', topic: 'room:1' });
    await a.close();
    const missed = await publishSeq(gw, 'room:1', 50);
    // each connection gets at most send_queue of the backlog, then is told to come back
    const got = [];
    let cursor = ack.cursor;
    for (let attempt = 0; attempt < 20 && got.length < missed.length; attempt++) {
      const b = await openWS(gw, tok);
      b.send({ type: 'subscribe', topic: 'room:1', cursor, rid: 1 });
      await Promise.race([b.closedP, b.waitFor((c) => c.frames.some((f) => f.type === 'ack'), 5000)]);
      await sleep(50);
      const m = b.messages();
      assert.ok(m.length > 0, `attempt ${attempt} made no progress`);
      got.push(...m.map((x) => x.id));
      cursor = m[m.length - 1].cursor;
      if (b.closed) assert.equal(b.closed.code, 1013);
      else await b.close();
    }
    assert.deepEqual(got, missed);
  });
});

test('unsubscribe stops delivery of that topic only', async () => {
  await withGateway({}, async (gw) => {
    const bob = await openWS(gw, gw.token('bob'));
    await bob.request({ type: 'subscribe', topic: 'room:1' });
    await bob.request({ type: 'subscribe', topic: 'room:2' });
    await publish(gw, 'room:1', 'a');
    await bob.waitFor((c) => c.messages().length === 1);
    assert.deepEqual(await bob.request({ type: 'unsubscribe', topic: 'room:1' }), { type: 'ack', rid: 3, topic: 'room:1' });
    await publish(gw, 'room:1', 'b');
    const marker = await publish(gw, 'room:2', 'marker');
    await bob.waitFor((c) => c.messages().some((m) => m.id === marker.id));
    await sleep(100);
    assert.deepEqual(bob.messages().map((m) => m.data), ['a', 'marker']);
    assert.equal(await metric(gw, 'rtgate_subscriptions'), 1);
    await bob.close();
  });
});

test('bad requests get {"type":"error"} frames and the connection stays usable', async () => {
  await withGateway({ limits: { max_topics_per_request: 2 } }, async (gw) => {
    const c = await openWS(gw, gw.token('alice'));
    const cases = [
      [{ type: 'subscribe', topic: 'user:other' }, 'forbidden topic'],
      [{ type: 'subscribe', topic: 'bad' }, 'invalid topic'],
      [{ type: 'subscribe', topic: 'Room:1' }, 'invalid topic'],
      [{ type: 'subscribe' }, 'invalid topic'],
      [{ type: 'subscribe', topic: 'room:1', cursor: 'not-a-cursor' }, 'malformed cursor'],
      [{ type: 'subscribe', topic: 'room:1', cursor: 42 }, 'malformed cursor'],
      [{ type: 'frobnicate' }, 'unknown type'],
      [{ topic: 'room:1' }, 'missing "type"'],
      [{ type: 'publish', topic: 'room:1' }, 'missing "data"'],
      [{ type: 'send', to: 'bob' }, 'missing "data"'],
      [{ type: 'send', to: 'not valid!', data: 1 }, 'invalid user id in "to"'],
      [{ type: 'publish', topic: 'nope', data: 1 }, 'invalid topic'],
      [{ type: 'publish', topic: 'room:1', to: 'bob', data: 1 }, 'give "topic" or "to", not both'],
      [{ type: 'publish', data: 1 }, 'missing "topic" or "to"'],
      [{ type: 'unsubscribe' }, 'invalid topic'],
    ];
    for (const [req, error] of cases) {
      const r = await c.request(req);
      assert.deepEqual(r, { type: 'error', rid: c.rid, error }, JSON.stringify(req));
    }
    // not an object: answered without a rid
    for (const frame of ['[1]', '[]', '[{"type":"ping","rid":1}]']) {
      const n = c.frames.length;
      c.send(frame);
      await c.waitFor((x) => x.frames.length > n);
      assert.deepEqual(c.frames[n], { type: 'error', error: 'frame must be a JSON object' }, frame);
    }
    // limits.max_topics_per_request caps the subscriptions of one socket
    assert.equal((await c.request({ type: 'subscribe', topic: 'room:1' })).type, 'ack');
    assert.equal((await c.request({ type: 'subscribe', topic: 'user:alice' })).type, 'ack');
    assert.deepEqual(await c.request({ type: 'subscribe', topic: 'room:3' }), { type: 'error', rid: c.rid, error: 'too many subscriptions' });
    assert.deepEqual(await c.request({ type: 'ping' }), { type: 'pong', rid: c.rid });
    assert.equal(c.closed, null);
    assert.equal(c.messages().length, 0, 'nothing was published');
    await c.close();
  });
});

test('BUG: a JSON scalar frame (42, "x", null, true) closes the socket 1007 "malformed JSON" instead of an error frame', async () => {
  await withGateway({}, async (gw) => {
    const results = [];
    for (const frame of ['42', '"subscribe"', 'null', 'true']) {
      const c = await openWS(gw, gw.token('bob'));
      c.send(frame);
      await Promise.race([c.closedP, c.waitFor((x) => x.frames.length > 0, 3000).catch(() => {})]);
      results.push([frame, c.closed, c.frames]);
      if (!c.closed) await c.close();
    }
    // valid JSON that is not an object should be answered like [1] is, not treated as garbage
    assert.deepEqual(results, ['42', '"subscribe"', 'null', 'true'].map((f) => [f, null, [{ type: 'error', error: 'frame must be a JSON object' }]]));
  });
});

test('protocol errors close the socket with 1007 / 1003 / 1009, and the daemon keeps serving', async () => {
  await withGateway({ limits: { max_message_bytes: 1024 } }, async (gw) => {
    const tok = gw.token('bob');
    const cases = [
      ['non-JSON text', (c) => c.send('this is not json'), { code: 1007, reason: 'malformed JSON' }],
      ['truncated JSON', (c) => c.send('{"type":"ping"'), { code: 1007, reason: 'malformed JSON' }],
      ['binary frame', (c) => c.ws.send(Buffer.from('{"type":"ping"}'), { binary: true }), { code: 1003, reason: 'binary frames are not supported' }],
      ['frame over max_message_bytes', (c) => c.send({ type: 'publish', topic: 'room:1', data: 'x'.repeat(2000) }), { code: 1009, reason: 'message too big' }],
    ];
    for (const [what, act, expected] of cases) {
      const c = await openWS(gw, tok);
      assert.equal((await c.request({ type: 'ping' })).type, 'pong');
      act(c);
      const closed = await Promise.race([c.closedP, sleep(5000).then(() => 'not closed')]);
      assert.deepEqual(closed, expected, what);
      await assertStillServes(gw);
    }
    // exactly max_message_bytes is still accepted
    const c = await openWS(gw, tok);
    const base = { type: 'publish', topic: 'room:1', rid: 1, data: '' };
    const frame = JSON.stringify({ ...base, data: 'x'.repeat(1024 - JSON.stringify(base).length) });
    assert.equal(frame.length, 1024);
    c.send(frame);
    await c.waitFor((x) => x.frames.length === 1);
    assert.equal(c.frames[0].type, 'ack');
    await c.close();
    assert.equal(await metric(gw, 'rtgate_ws_protocol_errors_total'), 4);
  });
});

test('upgrades are refused with 401 {"error"} for a missing, bad or expired token and 404 off /v1/ws', async () => {
  await withGateway({}, async (gw) => {
    const good = gw.token('bob');
    const cases = [
      ['no token', '/v1/ws', {}, 401, 'missing token'],
      ['garbage token', '/v1/ws?token=abc', {}, 401, 'malformed token'],
      ['wrong secret', `/v1/ws?token=${makeJwt({ sub: 'bob', exp: nowS() + 600 }, { secret: 'some-other-secret-0123456789' })}`, {}, 401, 'bad signature'],
      ['alg none', `/v1/ws?token=${makeJwt({ sub: 'bob' }, { header: { alg: 'none' } })}`, {}, 401, 'unsupported algorithm'],
      ['expired', `/v1/ws?token=${makeJwt({ sub: 'bob', exp: nowS() - 10 })}`, {}, 401, 'token expired'],
      ['expired in header', '/v1/ws', { authorization: `Bearer ${makeJwt({ sub: 'bob', exp: nowS() - 10 })}` }, 401, 'token expired'],
      ['not yet valid', `/v1/ws?token=${makeJwt({ sub: 'bob', nbf: nowS() + 600 })}`, {}, 401, 'token not yet valid'],
      ['other path', `/v1/other?token=${good}`, {}, 404, 'not found'],
      ['root path', `/?token=${good}`, {}, 404, 'not found'],
    ];
    for (const [what, path, headers, status, error] of cases) {
      const r = await tryUpgrade(gw, path, headers);
      assert.equal(r.status, status, `${what}: ${JSON.stringify(r)}`);
      assert.deepEqual(r.body, { error }, what);
      assert.equal(r.headers['content-type'], 'application/json', what);
    }
    // a token minted with --ttl 1 is refused once it has expired
    const short = gw.token('bob', 1);
    const r = await waitUntil(async () => {
      const x = await tryUpgrade(gw, `/v1/ws?token=${short}`);
      if (x.open) return null;
      return x;
    }, 5000, 'the 1 s token to expire');
    assert.equal(r.status, 401);
    assert.deepEqual(r.body, { error: 'token expired' });
    // good tokens work, in the query or as a Bearer header
    assert.deepEqual(await tryUpgrade(gw, `/v1/ws?token=${good}`), { open: true });
    assert.deepEqual(await tryUpgrade(gw, '/v1/ws', { authorization: `Bearer ${good}` }), { open: true });
    await assertStillServes(gw);
  });
});

for (const [signal, code, reason] of [
  ['SIGTERM', 1012, 'server restarting: reconnect'],
  ['SIGINT', 1001, 'server shutting down'],
]) {
  test(`${signal}: queued messages are flushed, then close ${code} "${reason}", exit 0`, async () => {
    await withGateway({}, async (gw) => {
      const c = await openWS(gw, gw.token('bob'));
      await c.request({ type: 'subscribe', topic: 'room:1' });
      const ids = await publishSeq(gw, 'room:1', 50);
      const r = await gw.stop(signal);
      assert.equal(r.code, 0, gw.logs());
      assert.equal(r.signal, null);
      const closed = await Promise.race([c.closedP, sleep(5000).then(() => 'not closed')]);
      assert.deepEqual(closed, { code, reason });
      assert.deepEqual(c.messages().map((m) => m.id), ids);
    });
  });
}

test('slow consumer: a client that stops reading is closed with 1013, the others get everything', async () => {
  await withGateway({ limits: { send_queue: 8, publish_rate: 0 } }, async (gw) => {
    const slow = await openWS(gw, gw.token('slow'));
    const fast = await openWS(gw, gw.token('fast'));
    const pub = await openWS(gw, gw.token('pub'));
    await slow.request({ type: 'subscribe', topic: 'room:1' });
    await fast.request({ type: 'subscribe', topic: 'room:1' });
    slow.ws._socket.pause(); // never reads again (until the end)
    const pad = 'x'.repeat(1000);
    // At least 2,000 ~1 KB messages; on loopback the kernel buffers ~2.6 MB for the paused
    // socket before rtgate's queue fills, so keep going (bounded) until the kick, then 200 more.
    const W = 4; // publish requests in flight
    let n = 0, kickedAt = -1;
    for (let i = 0; i < 10000; i++) {
      pub.send({ type: 'publish', topic: 'room:1', data: { i, pad }, rid: i + 1 });
      n++;
      if (i >= W) await pub.waitFor((c) => c.frames.length >= i + 1 - W, 15000);
      if (kickedAt < 0 && i % 50 === 0 && gw.logs().includes("cutting slow consumer 'slow'")) kickedAt = i;
      if (i >= 1999 && kickedAt >= 0 && i >= kickedAt + 200) break;
    }
    await pub.waitFor((c) => c.frames.length === n, 15000);
    assert.ok(kickedAt >= 0, `slow consumer not cut after ${n} messages`);
    assert.ok(pub.frames.every((f, i) => f.type === 'ack' && f.rid === i + 1), 'publisher acks in order');
    await fast.waitFor((c) => c.messages().length >= n, 30000);
    assert.deepEqual(fast.messages().map((m) => m.data.i), Array.from({ length: n }, (_, i) => i));
    assert.equal(fast.closed, null);
    assert.equal(await metric(gw, 'rtgate_slow_consumers_total'), 1);

    slow.ws._socket.resume();
    const closed = await Promise.race([slow.closedP, sleep(10000).then(() => 'not closed')]);
    assert.deepEqual(closed, { code: 1013, reason: 'send queue overflow: reconnect and resume from your cursor' });
    const got = slow.messages().map((m) => m.data.i);
    assert.ok(got.length > 0 && got.length < n, `slow got ${got.length} of ${n}`);
    assert.deepEqual(got, Array.from({ length: got.length }, (_, i) => i), 'what the slow client got is an in-order prefix');
    await waitUntil(async () => (await metric(gw, 'rtgate_streams')) === 2, 5000, 'slow socket released');
    await fast.close();
    await pub.close();
  });
});
