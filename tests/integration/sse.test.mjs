// GET /v1/sse: headers, topics, envelope, ordering, resume (Last-Event-ID / ?lastEventId=),
// reset after eviction, heartbeats, clean-up of dropped clients, shutdown.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { http, openSSE, publish, curl, sleep, cpuSeconds, API_KEY } from './lib.mjs';
import { withGateway, waitUntil, decodeCursor, idCmp, metric, publishSeq } from './helpers.mjs';

// Events other than the retry hint and comments (heartbeats).
const realEvents = (s) => s.events.filter((e) => e.retry === undefined && e.comment === undefined);

test('headers are text/event-stream, no-cache, x-accel-buffering: no; retry: comes first', async () => {
  await withGateway({ sse: { retry_ms: 1234, heartbeat_ms: 15000 } }, async (gw) => {
    const r = await curl(['-sN', '-D', '-', '--max-time', '1', `${gw.url}/v1/sse?token=${gw.token('bob')}`]);
    assert.equal(r.code, 28, r.stderr); // the stream stays open until curl's --max-time
    const sep = r.stdout.indexOf('\r\n\r\n');
    assert.ok(sep > 0, r.stdout);
    const [statusLine, ...lines] = r.stdout.slice(0, sep).split('\r\n');
    assert.equal(statusLine, 'HTTP/1.1 200 OK');
    const h = Object.fromEntries(lines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]));
    assert.equal(h['content-type'], 'text/event-stream');
    assert.equal(h['cache-control'], 'no-cache');
    assert.equal(h['x-accel-buffering'], 'no');
    assert.equal(r.stdout.slice(sep + 4), 'retry: 1234\n\n');

    const s = openSSE(gw, `token=${gw.token('bob')}`);
    await s.waitFor((x) => x.events.length >= 1);
    assert.ok(s.raw.startsWith('retry: 1234\n\n'), JSON.stringify(s.raw));
    assert.deepEqual(s.events[0], { data: undefined, retry: '1234' });
    await s.close();
  });
});

test("default topic is the caller's own user:<sub>", async () => {
  await withGateway({}, async (gw) => {
    const s = openSSE(gw, `token=${gw.token('bob')}`);
    await s.waitFor((x) => x.raw.includes('retry:'));
    await publish(gw, 'room:1', 'not for bob');
    await publish(gw, 'user:alice', 'not for bob either');
    const mine = await publish(gw, 'user:bob', 'for bob');
    await s.waitFor((x) => x.messages().length >= 1);
    await sleep(100); // anything wrongly delivered would have been written before "for bob"
    const msgs = s.messages();
    assert.equal(msgs.length, 1, s.raw);
    assert.equal(msgs[0].id, mine.id);
    assert.equal(msgs[0].topic, 'user:bob');
    assert.equal(msgs[0].data, 'for bob');
    const cur = decodeCursor(msgs[0]._id);
    assert.equal(cur.length, 1);
    assert.equal(cur[0].topic, 'user:bob');
    assert.equal(cur[0].id, mine.id);
    await s.close();
  });
});

test('?topics=room:1,user:bob: both topics arrive and every id is a cursor over both', async () => {
  await withGateway({}, async (gw) => {
    const bob = gw.token('bob');
    const s = openSSE(gw, `token=${bob}&topics=room:1,user:bob`);
    await s.waitFor((x) => x.raw.includes('retry:'));
    const a = await publish(gw, 'room:1', 'a');
    const b = await publish(gw, 'user:bob', 'b');
    const c = await publish(gw, 'room:1', 'c');
    await publish(gw, 'room:2', 'not subscribed');
    const d = await publish(gw, 'user:bob', 'd');
    await s.waitFor((x) => x.messages().length >= 4);
    await sleep(100);
    const msgs = s.messages();
    assert.deepEqual(msgs.map((m) => m.data), ['a', 'b', 'c', 'd']);
    assert.deepEqual(msgs.map((m) => m.id), [a.id, b.id, c.id, d.id]);
    const expect = [[a.id, '0-0'], [a.id, b.id], [c.id, b.id], [c.id, d.id]];
    const epoch = decodeCursor(msgs[0]._id)[0].epoch;
    assert.match(epoch, /^[0-9a-f]{16}$/);
    msgs.forEach((m, i) => {
      assert.deepEqual(decodeCursor(m._id), [
        { topic: 'room:1', epoch, id: expect[i][0] },
        { topic: 'user:bob', epoch, id: expect[i][1] },
      ]);
    });
    await s.close();

    // Resuming with the id of the first event resumes both topics at once.
    const e = await publish(gw, 'user:bob', 'e');
    const r = openSSE(gw, `token=${bob}&topics=room:1,user:bob`, { headers: { 'Last-Event-ID': msgs[0]._id } });
    await r.waitFor((x) => x.messages().length >= 4);
    await sleep(100);
    // the replay goes topic by topic, in the order the topics were named
    assert.deepEqual(r.messages().map((m) => m.data), ['c', 'b', 'd', 'e']);
    assert.deepEqual(decodeCursor(r.messages()[3]._id), [
      { topic: 'room:1', epoch, id: c.id },
      { topic: 'user:bob', epoch, id: e.id },
    ]);
    await r.close();
  });
});

test('event = id: <cursor>, data: {"id","topic","from","ts","data"} via /v1/publish and /v1/messages', async () => {
  await withGateway({}, async (gw) => {
    const s = openSSE(gw, `token=${gw.token('bob')}`);
    await s.waitFor((x) => x.raw.includes('retry:'));
    const t0 = Date.now();
    const m1 = await http(gw, '/v1/messages', {
      method: 'POST', token: gw.token('alice'), body: { to: 'bob', data: { text: 'hi', n: [1, 2] }, from: 'mallory' },
    });
    assert.equal(m1.status, 200, m1.text);
    assert.deepEqual(Object.keys(m1.body), ['id', 'topic']);
    assert.equal(m1.body.topic, 'user:bob');
    const p1 = await publish(gw, 'user:bob', 'svc says hi', { from: 'billing' });
    const p2 = await publish(gw, 'user:bob', null);
    await s.waitFor((x) => x.messages().length >= 3);
    const ev = realEvents(s);
    assert.equal(ev.length, 3);
    const envs = ev.map((e) => JSON.parse(e.data));
    for (const env of envs) {
      assert.deepEqual(Object.keys(env), ['id', 'topic', 'from', 'ts', 'data']);
      assert.equal(typeof env.ts, 'number');
      assert.ok(Number.isInteger(env.ts) && Math.abs(env.ts - t0) < 600000, `ts ${env.ts}`);
      assert.equal(env.id, `${env.id.split('-')[0]}-${env.id.split('-')[1]}`);
    }
    assert.deepEqual({ ...envs[0], ts: 0 }, { id: m1.body.id, topic: 'user:bob', from: 'alice', ts: 0, data: { text: 'hi', n: [1, 2] } });
    assert.deepEqual({ ...envs[1], ts: 0 }, { id: p1.id, topic: 'user:bob', from: 'billing', ts: 0, data: 'svc says hi' });
    assert.deepEqual({ ...envs[2], ts: 0 }, { id: p2.id, topic: 'user:bob', from: null, ts: 0, data: null });
    // the id: line is the resume cursor of that very message
    ev.forEach((e, i) => {
      assert.equal(e.event, undefined);
      const cur = decodeCursor(e.id);
      assert.equal(cur.length, 1);
      assert.equal(cur[0].topic, 'user:bob');
      assert.equal(cur[0].id, envs[i].id);
    });
    // one data: line per event, no blank-line surprises in the raw stream
    assert.equal(s.raw.split('\ndata: ').length - 1, 3);
    await s.close();
  });
});

test('1,000 messages published back-to-back arrive once each, in order', async () => {
  await withGateway({}, async (gw) => {
    const s = openSSE(gw, `token=${gw.token('bob')}&topics=room:1`);
    await s.waitFor((x) => x.raw.includes('retry:'));
    const ids = await publishSeq(gw, 'room:1', 1000);
    await s.waitFor((x) => x.messages().length >= 1000, 30000);
    await sleep(100);
    const msgs = s.messages();
    assert.equal(msgs.length, 1000);
    assert.deepEqual(msgs.map((m) => m.data), Array.from({ length: 1000 }, (_, i) => i));
    assert.deepEqual(msgs.map((m) => m.id), ids);
    for (let i = 1; i < msgs.length; i++) assert.equal(idCmp(msgs[i - 1].id, msgs[i].id), -1, `ids ${i - 1},${i}`);
    assert.equal(new Set(msgs.map((m) => m._id)).size, 1000);
    msgs.forEach((m) => assert.equal(decodeCursor(m._id)[0].id, m.id));
    await s.close();
  });
});

async function resumeCase(how) {
  await withGateway({}, async (gw) => {
    const bob = gw.token('bob');
    const s = openSSE(gw, `token=${bob}&topics=room:1`);
    await s.waitFor((x) => x.raw.includes('retry:'));
    await publishSeq(gw, 'room:1', 10);
    await s.waitFor((x) => x.messages().length >= 10);
    const last = s.messages()[9];
    assert.equal(last.data, 9);
    await s.close();

    const missed = await publishSeq(gw, 'room:1', 5, (i) => i, 10);
    const q = how === 'header' ? `token=${bob}&topics=room:1` : `token=${bob}&topics=room:1&${how}=${last._id}`;
    const r = openSSE(gw, q, { headers: how === 'header' ? { 'Last-Event-ID': last._id } : {} });
    await r.waitFor((x) => x.messages().length >= 5);
    await sleep(150);
    assert.deepEqual(r.messages().map((m) => m.id), missed, r.raw);
    const live = await publishSeq(gw, 'room:1', 2, (i) => i, 15);
    await r.waitFor((x) => x.messages().length >= 7);
    await sleep(100);
    assert.deepEqual(r.messages().map((m) => m.data), [10, 11, 12, 13, 14, 15, 16]);
    assert.deepEqual(r.messages().map((m) => m.id), [...missed, ...live]);
    assert.equal(r.events.filter((e) => e.event === 'reset').length, 0);
    await r.close();
  });
}

test('resume with the Last-Event-ID header: exactly the missed messages, then live ones', () => resumeCase('header'));
test('resume with ?lastEventId=: exactly the missed messages, then live ones', () => resumeCase('lastEventId'));
test('resume with ?cursor=: exactly the missed messages, then live ones', () => resumeCase('cursor'));

test('reset: a cursor older than the ring gives event: reset, then the retained messages', async () => {
  await withGateway({ history: { size: 5 } }, async (gw) => {
    const bob = gw.token('bob');
    const s = openSSE(gw, `token=${bob}&topics=room:1`);
    await s.waitFor((x) => x.raw.includes('retry:'));
    await publish(gw, 'room:1', 0);
    await s.waitFor((x) => x.messages().length >= 1);
    const old = s.messages()[0]._id;
    await s.close();
    const ids = await publishSeq(gw, 'room:1', 20, (i) => i, 1); // data 1..20; 16..20 retained

    const r = openSSE(gw, `token=${bob}&topics=room:1`, { headers: { 'Last-Event-ID': old } });
    await r.waitFor((x) => x.messages().length >= 5);
    await sleep(150);
    const ev = realEvents(r);
    assert.equal(ev.length, 6, r.raw);
    assert.equal(ev[0].event, 'reset');
    assert.equal(ev[0].id, undefined);
    assert.deepEqual(JSON.parse(ev[0].data), { topic: 'room:1' });
    assert.deepEqual(r.messages().map((m) => m.data), [16, 17, 18, 19, 20]);
    assert.deepEqual(r.messages().map((m) => m.id), ids.slice(15));
    await publish(gw, 'room:1', 21);
    await r.waitFor((x) => x.messages().length >= 6);
    assert.equal(r.messages()[5].data, 21);
    await r.close();
  });
});

test('reset on one topic of a multi-topic stream leaves the other topic resumed normally', async () => {
  await withGateway({ history: { size: 5 } }, async (gw) => {
    const bob = gw.token('bob');
    const q = `token=${bob}&topics=room:1,room:2`;
    const s = openSSE(gw, q);
    await s.waitFor((x) => x.raw.includes('retry:'));
    await publish(gw, 'room:1', 'x0');
    await publish(gw, 'room:2', 'y0');
    await s.waitFor((x) => x.messages().length >= 2);
    const old = s.messages()[1]._id;
    await s.close();
    await publishSeq(gw, 'room:1', 20, (i) => `x${i}`, 1);
    const y = await publishSeq(gw, 'room:2', 2, (i) => `y${i}`, 1);

    const r = openSSE(gw, q, { headers: { 'Last-Event-ID': old } });
    await r.waitFor((x) => x.messages().length >= 7);
    await sleep(150);
    const ev = realEvents(r);
    assert.equal(ev[0].event, 'reset', r.raw);
    assert.deepEqual(JSON.parse(ev[0].data), { topic: 'room:1' });
    assert.deepEqual(r.messages().map((m) => m.data), ['x16', 'x17', 'x18', 'x19', 'x20', 'y1', 'y2']);
    const cur = decodeCursor(r.messages()[6]._id);
    assert.deepEqual(cur.map((c) => [c.topic, c.id]), [['room:1', r.messages()[4].id], ['room:2', y[1]]]);
    await r.close();
  });
});

test('a replay longer than the send queue completes over reconnects, no gaps, no duplicates', async () => {
  await withGateway({ limits: { send_queue: 4 } }, async (gw) => {
    const bob = gw.token('bob');
    const s = openSSE(gw, `token=${bob}&topics=room:1`);
    await s.waitFor((x) => x.raw.includes('retry:'));
    await publish(gw, 'room:1', -1);
    await s.waitFor((x) => x.messages().length >= 1);
    let last = s.messages()[0]._id;
    await s.close();
    const ids = await publishSeq(gw, 'room:1', 10);
    const got = [];
    for (let attempt = 0; attempt < 10 && got.length < 10; attempt++) {
      const r = openSSE(gw, `token=${bob}&topics=room:1`, { headers: { 'Last-Event-ID': last } });
      await Promise.race([r.ended, sleep(3000)]); // a truncated replay ends the stream
      await r.close();
      const m = r.messages();
      assert.ok(m.length > 0, `attempt ${attempt} made no progress: ${JSON.stringify(r.raw)}`);
      got.push(...m.map((x) => x.id));
      last = m[m.length - 1]._id;
    }
    assert.deepEqual(got, ids);
  });
});

test('BUG: with limits.send_queue 1 a resuming SSE client never gets a message', async () => {
  await withGateway({ limits: { send_queue: 1 } }, async (gw) => {
    const bob = gw.token('bob');
    const s = openSSE(gw, `token=${bob}&topics=room:1`);
    await s.waitFor((x) => x.raw.includes('retry:'));
    await publish(gw, 'room:1', 'a');
    await s.waitFor((x) => x.messages().length >= 1);
    const last = s.messages()[0]._id;
    await s.close();
    const b = await publish(gw, 'room:1', 'b');
    // The retry: hint takes the only send-queue slot, the replay is "truncated" at 0 messages
    // and the stream ends; every reconnect with the same Last-Event-ID does the same.
    const r = openSSE(gw, `token=${bob}&topics=room:1`, { headers: { 'Last-Event-ID': last } });
    await Promise.race([r.ended, r.waitFor((x) => x.messages().length >= 1, 3000).catch(() => {})]);
    await r.close();
    assert.deepEqual(r.messages().map((m) => m.id), [b.id], `raw stream: ${JSON.stringify(r.raw)}`);
  });
});

test('heartbeat comments ": hb" arrive at sse.heartbeat_ms', async () => {
  await withGateway({ sse: { heartbeat_ms: 200 } }, async (gw) => {
    await withGateway({ sse: { heartbeat_ms: 15000 } }, async (quiet) => {
      const s = openSSE(gw, `token=${gw.token('bob')}`);
      const q = openSSE(quiet, `token=${quiet.token('bob')}`);
      await s.waitFor((x) => x.raw.includes('retry:'));
      await q.waitFor((x) => x.raw.includes('retry:'));
      await sleep(1500);
      const hbs = s.events.filter((e) => e.comment !== undefined);
      assert.ok(hbs.length >= 3, `only ${hbs.length} heartbeats in 1.5 s: ${JSON.stringify(s.raw)}`);
      assert.ok(hbs.every((e) => e.comment === 'hb' && e.data === undefined && e.id === undefined));
      assert.ok(s.raw.includes('\n\n: hb\n\n'));
      assert.equal(q.events.filter((e) => e.comment !== undefined).length, 0, 'heartbeat_ms 15000 sent one within 1.5 s');
      // heartbeats do not disturb delivery
      await publish(gw, 'user:bob', 'x');
      await s.waitFor((x) => x.messages().length === 1);
      await s.close();
      await q.close();
    });
  });
});

test('dropped clients are cleaned up: no busy loop, rtgate_streams back to 0', async () => {
  await withGateway({}, async (gw) => {
    const bob = gw.token('bob');
    const procs = [];
    const outs = [];
    for (let i = 0; i < 100; i++) {
      const p = spawn('curl', ['-sN', `${gw.url}/v1/sse?token=${bob}&topics=room:1,user:bob`]);
      outs[i] = '';
      p.stdout.on('data', (d) => (outs[i] += d));
      procs.push({ p, ended: new Promise((r) => p.on('exit', r)) });
    }
    try {
      await waitUntil(async () => (await metric(gw, 'rtgate_streams')) === 100, 20000, '100 streams');
      await publish(gw, 'room:1', 'before the drop'); // exercise the write path on every stream
      await waitUntil(() => outs.every((o) => o.includes('before the drop')), 20000, 'all 100 got the message');
    } finally {
      for (const { p } of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
      await Promise.all(procs.map((x) => x.ended));
    }
    const killedAt = Date.now();
    await waitUntil(async () => (await metric(gw, 'rtgate_streams')) === 0, 15000, 'rtgate_streams 0');
    await sleep(Math.max(0, 4000 - (Date.now() - killedAt)));
    const c0 = cpuSeconds(gw.proc.pid);
    await sleep(3000);
    const used = cpuSeconds(gw.proc.pid) - c0;
    assert.ok(used < 0.3, `rtgate used ${used.toFixed(2)} s CPU in 3 s after its clients left`);
    assert.equal(await metric(gw, 'rtgate_streams'), 0);
    assert.equal(await metric(gw, 'rtgate_subscriptions'), 0);
    assert.equal(await metric(gw, 'rtgate_sse_streams_total'), 100);
    // and it still serves streams
    const s = openSSE(gw, `token=${bob}`);
    await s.waitFor((x) => x.raw.includes('retry:'));
    await publish(gw, 'user:bob', 'after');
    await s.waitFor((x) => x.messages().length === 1);
    await s.close();
  });
});

test('SIGTERM ends open SSE streams and rtgate exits 0', async () => {
  await withGateway({}, async (gw) => {
    const s = openSSE(gw, `token=${gw.token('bob')}`);
    await s.waitFor((x) => x.raw.includes('retry:'));
    await publish(gw, 'user:bob', 'last words');
    await s.waitFor((x) => x.messages().length === 1);
    const r = await gw.stop();
    assert.equal(r.code, 0, gw.logs());
    const exit = await Promise.race([s.ended, sleep(5000).then(() => 'still open')]);
    assert.equal(exit, 0, 'curl should see a clean end of stream');
  });
});

test('BUG: an ordinary SSE stream makes rtgate log an error ("lws_mux_mark_immortal: not h2 substream")', async () => {
  await withGateway({}, async (gw) => {
    const s = openSSE(gw, `token=${gw.token('bob')}`);
    await s.waitFor((x) => x.raw.includes('retry:'));
    await s.close();
    await sleep(100);
    const errs = gw.logs().split('\n').filter((l) => l.startsWith('<3>'));
    assert.deepEqual(errs, []);
  });
});
