// Integration tests for GET /v1/poll and GET /v1/longpoll (src/http_poll.c): cursors, ETags,
// limits, held long-polls at scale, client disconnects, transport switching, bad input, metrics.
// Every test runs its own rtgate on a free loopback port; every wait is bounded.
//
// The test "query arguments are read wherever they are..." guards a fixed bug: arguments after
// a long one (a cursor, a JWT in ?token=) used to be missed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import nodeHttp from 'node:http';
import { createHmac } from 'node:crypto';
import {
  startGateway, http, curl, openSSE, publish, sleep, cpuSeconds, SECRET,
} from './lib.mjs';

// ---------- helpers ----------

// Runs fn(gw) against a fresh gateway; afterwards stops it and, if fn passed, insists on a
// clean exit (code 0), so a crash during the test is not missed.
async function withGateway(overrides, fn) {
  const gw = await startGateway(overrides);
  let ok = false;
  try {
    await fn(gw);
    ok = true;
  } finally {
    const r = await gw.stop();
    if (ok) assert.equal(r.code, 0, 'rtgate did not exit cleanly:\n' + gw.logs().slice(-3000));
  }
}

async function waitFor(pred, timeoutMs, what) {
  const t0 = Date.now();
  for (;;) {
    const v = await pred();
    if (v) return v;
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(25);
  }
}

function withTimeout(p, ms, what) {
  let t;
  return Promise.race([
    p.finally(() => clearTimeout(t)),
    new Promise((_, reject) => { t = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms); }),
  ]);
}

// /metrics as { name: number } (counters and gauges without labels).
async function metrics(gw) {
  const r = await http(gw, '/metrics');
  assert.equal(r.status, 200);
  const out = {};
  for (const line of r.text.split('\n')) {
    const m = line.match(/^([a-z_]+) (\d+)$/);
    if (m) out[m[1]] = Number(m[2]);
  }
  return out;
}
const metric = async (gw, name) => {
  const v = (await metrics(gw))[name];
  assert.equal(typeof v, 'number', `metric ${name} missing`);
  return v;
};

// A GET over node:http (own Agent, so hundreds of sockets can be open at once). Returns
// { req, done }; done resolves to { status, headers, text, body } and never rejects unhandled.
function rawGet(gw, path, { token, agent, headers = {} } = {}) {
  const h = { ...headers };
  if (token) h.authorization = `Bearer ${token}`;
  const req = nodeHttp.get(gw.url + path, { agent, headers: h });
  const done = new Promise((resolve, reject) => {
    req.on('response', (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (text += d));
      res.on('end', () => {
        let body;
        try { body = JSON.parse(text); } catch { body = undefined; }
        resolve({ status: res.statusCode, headers: res.headers, text, body });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
  });
  done.catch(() => {}); // aborted requests reject; whoever awaits still sees it
  return { req, done };
}

// "<ms>-<seq>" ordering.
function cmpId(a, b) {
  const [am, as] = a.split('-').map(BigInt);
  const [bm, bs] = b.split('-').map(BigInt);
  if (am !== bm) return am < bm ? -1 : 1;
  if (as !== bs) return as < bs ? -1 : 1;
  return 0;
}
function assertIdsIncreasing(msgs, what = 'messages') {
  for (let i = 1; i < msgs.length; i++)
    assert.ok(cmpId(msgs[i - 1].id, msgs[i].id) < 0, `${what}: id ${msgs[i - 1].id} then ${msgs[i].id} at ${i}`);
}

// What a publish through /v1/publish (no "from") looks like when polled.
function assertEnvelope(m, pub, topic, data) {
  assert.deepEqual(Object.keys(m).sort(), ['data', 'from', 'id', 'topic', 'ts']);
  assert.equal(m.id, pub.id);
  assert.equal(m.topic, topic);
  assert.equal(m.from, null);
  assert.equal(typeof m.ts, 'number');
  assert.deepEqual(m.data, data);
}

const poll = (gw, token, query, opts = {}) => http(gw, `/v1/poll?${query}`, { token, ...opts });
const longpoll = (gw, token, query, opts = {}) => http(gw, `/v1/longpoll?${query}`, { token, ...opts });
const enc = (s) => encodeURIComponent(s);

// An HS256 JWT signed with `secret` (to forge bad tokens).
function jwt(secret, claims) {
  const b = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const head = `${b({ alg: 'HS256', typ: 'JWT' })}.${b(claims)}`;
  return `${head}.${createHmac('sha256', secret).update(head).digest('base64url')}`;
}

// ---------- simple poll ----------

test('first poll gives an empty answer and a cursor (no history dump); since=earliest gives the whole history', { timeout: 30000 }, async () => {
  await withGateway({}, async (gw) => {
    const t = gw.token('alice');
    const pubs = [];
    for (let i = 0; i < 5; i++) pubs.push(await publish(gw, 'room:1', { n: i }));

    // Bearer token
    const a = await poll(gw, t, 'topics=room:1');
    assert.equal(a.status, 200);
    assert.equal(typeof a.body.cursor, 'string');
    assert.match(a.body.cursor, /^[A-Za-z0-9_-]+$/);
    assert.deepEqual(a.body, { messages: [], cursor: a.body.cursor, recovered: true });

    // ?token=, through Node's fetch and through curl: the same cursor ("now" has not moved)
    const b = await http(gw, `/v1/poll?topics=room:1&token=${t}`);
    assert.equal(b.status, 200);
    assert.deepEqual(b.body, { messages: [], cursor: a.body.cursor, recovered: true });
    const c = await curl(['-i', `${gw.url}/v1/poll?topics=room:1&token=${t}`]);
    assert.equal(c.code, 0, c.stderr);
    const [head, body] = c.stdout.split('\r\n\r\n');
    assert.match(head, /^HTTP\/1\.1 200 OK\r\n/);
    assert.deepEqual(JSON.parse(body), { messages: [], cursor: a.body.cursor, recovered: true });

    // since=earliest: all five, in id order, and the cursor of "now"
    const e = await poll(gw, t, 'topics=room:1&since=earliest');
    assert.equal(e.status, 200);
    assert.equal(e.body.recovered, true);
    assert.equal(e.body.messages.length, 5);
    e.body.messages.forEach((m, i) => assertEnvelope(m, pubs[i], 'room:1', { n: i }));
    assertIdsIncreasing(e.body.messages);
    assert.equal(e.body.cursor, a.body.cursor);
    assert.equal(e.body.more, undefined);
  });
});

test('poll with a cursor returns what came after it, in id order, and a cursor that is stable when nothing is new', { timeout: 30000 }, async () => {
  await withGateway({}, async (gw) => {
    const t = gw.token('bob');
    await publish(gw, 'room:1', 'old');
    const c0 = (await poll(gw, t, 'topics=room:1')).body.cursor;

    const pubs = [];
    for (let i = 0; i < 7; i++) pubs.push(await publish(gw, 'room:1', i));
    await publish(gw, 'room:2', 'other topic'); // must not appear
    const r1 = await poll(gw, t, `topics=room:1&cursor=${c0}`);
    assert.equal(r1.status, 200);
    assert.deepEqual(Object.keys(r1.body), ['messages', 'cursor', 'recovered']);
    assert.equal(r1.body.recovered, true);
    assert.equal(r1.body.messages.length, 7);
    r1.body.messages.forEach((m, i) => assertEnvelope(m, pubs[i], 'room:1', i));
    assertIdsIncreasing(r1.body.messages);
    assert.notEqual(r1.body.cursor, c0);

    // again with the new cursor: nothing, same cursor (twice)
    for (let k = 0; k < 2; k++) {
      const r2 = await poll(gw, t, `topics=room:1&cursor=${r1.body.cursor}`);
      assert.equal(r2.status, 200);
      assert.deepEqual(r2.body, { messages: [], cursor: r1.body.cursor, recovered: true });
    }
    // the old cursor still replays the same seven (polling does not consume)
    const r3 = await poll(gw, t, `topics=room:1&cursor=${c0}`);
    assert.deepEqual(r3.body, r1.body);

    // one more message: exactly it
    const p = await publish(gw, 'room:1', 'new');
    const r4 = await poll(gw, t, `topics=room:1&cursor=${r1.body.cursor}`);
    assert.equal(r4.body.messages.length, 1);
    assertEnvelope(r4.body.messages[0], p, 'room:1', 'new');
  });
});

test('poll answers carry cache-control: no-store and etag "<cursor>"; If-None-Match gives 304 until something is published', { timeout: 30000 }, async () => {
  await withGateway({}, async (gw) => {
    const t = gw.token('carol');
    await publish(gw, 'room:1', 'before');
    const a = await poll(gw, t, 'topics=room:1');
    const c = a.body.cursor;
    assert.equal(a.headers.get('cache-control'), 'no-store');
    assert.equal(a.headers.get('etag'), `"${c}"`);

    // nothing new: 304, empty body, same etag (fetch)
    const n1 = await poll(gw, t, `topics=room:1&cursor=${c}`, { headers: { 'if-none-match': `"${c}"` } });
    assert.equal(n1.status, 304);
    assert.equal(n1.text, '');
    assert.equal(n1.headers.get('etag'), `"${c}"`);
    assert.equal(n1.headers.get('cache-control'), 'no-store');

    // ... and with curl
    const k = await curl(['-i', '-H', `If-None-Match: "${c}"`, '-H', `Authorization: Bearer ${t}`, `${gw.url}/v1/poll?topics=room:1&cursor=${c}`]);
    assert.equal(k.code, 0, k.stderr);
    const [head, body] = k.stdout.split('\r\n\r\n');
    assert.match(head, /^HTTP\/1\.1 304 Not Modified\r\n/);
    assert.match(head, new RegExp(`\r\netag: "${c}"(\r\n|$)`, 'i'));
    assert.equal(body, '');

    // an ETag that does not match, or is unquoted: a normal 200
    const n2 = await poll(gw, t, `topics=room:1&cursor=${c}`, { headers: { 'if-none-match': c } });
    assert.equal(n2.status, 200);
    assert.deepEqual(n2.body, { messages: [], cursor: c, recovered: true });

    // after a publish the same conditional request gets 200 with the message and a new etag
    const p = await publish(gw, 'room:1', { hello: 1 });
    const n3 = await poll(gw, t, `topics=room:1&cursor=${c}`, { headers: { 'if-none-match': `"${c}"` } });
    assert.equal(n3.status, 200);
    assert.equal(n3.body.messages.length, 1);
    assertEnvelope(n3.body.messages[0], p, 'room:1', { hello: 1 });
    assert.notEqual(n3.body.cursor, c);
    assert.equal(n3.headers.get('etag'), `"${n3.body.cursor}"`);
    assert.equal(n3.headers.get('cache-control'), 'no-store');

    // and the new cursor is Not Modified again
    const n4 = await poll(gw, t, `topics=room:1&cursor=${n3.body.cursor}`, { headers: { 'if-none-match': `"${n3.body.cursor}"` } });
    assert.equal(n4.status, 304);
  });
});

test('a client polling every 100 ms receives 1,000 messages published in 20 bursts of 50: all, in order, none twice', { timeout: 60000 }, async () => {
  await withGateway({ history: { size: 2000 } }, async (gw) => {
    const t = gw.token('dave');
    const topic = 'room:burst';
    let cursor = (await poll(gw, t, `topics=${topic}`)).body.cursor;
    const published = [];
    const received = [];
    let publishing = true, nonEmpty = 0, polls = 0;

    const publisher = (async () => {
      try {
        for (let b = 0; b < 20; b++) {
          for (let i = 0; i < 50; i++) published.push(await publish(gw, topic, { seq: b * 50 + i }));
          await sleep(60);
        }
      } finally { publishing = false; }
    })();
    const poller = (async () => {
      const deadline = Date.now() + 45000;
      while (received.length < 1000 && Date.now() < deadline) {
        const r = await poll(gw, t, `topics=${topic}&cursor=${cursor}`);
        polls++;
        assert.equal(r.status, 200, r.text);
        assert.equal(r.body.recovered, true);
        assert.equal(r.body.more, undefined);
        if (r.body.messages.length) nonEmpty++;
        received.push(...r.body.messages);
        cursor = r.body.cursor;
        if (received.length < 1000 || publishing) await sleep(100);
      }
    })();
    await Promise.all([publisher, poller]);

    assert.equal(published.length, 1000);
    assert.equal(received.length, 1000, `got ${received.length} in ${polls} polls`);
    received.forEach((m, i) => {
      assert.equal(m.data.seq, i, `message ${i} has seq ${m.data.seq}`);
      assert.equal(m.id, published[i].id);
      assert.equal(m.topic, topic);
    });
    assertIdsIncreasing(received);
    assert.equal(new Set(received.map((m) => m.id)).size, 1000);
    assert.ok(nonEmpty >= 2, `messages arrived over ${nonEmpty} polls: the test did not poll during the bursts`);
    // and then: nothing more, same cursor
    const last = await poll(gw, t, `topics=${topic}&cursor=${cursor}`);
    assert.deepEqual(last.body, { messages: [], cursor, recovered: true });
  });
});

test('limits.max_messages_per_poll 10 with 25 pending: 10 + more:true, then continues exactly where it stopped', { timeout: 30000 }, async () => {
  await withGateway({ limits: { max_messages_per_poll: 10 } }, async (gw) => {
    const t = gw.token('erin');
    const c0 = (await poll(gw, t, 'topics=room:lim')).body.cursor;
    const pubs = [];
    for (let i = 0; i < 25; i++) pubs.push(await publish(gw, 'room:lim', i));

    const got = [];
    let cursor = c0;
    const sizes = [], mores = [];
    for (let k = 0; k < 6 && got.length < 25; k++) {
      const r = await poll(gw, t, `topics=room:lim&cursor=${cursor}`);
      assert.equal(r.status, 200);
      assert.equal(r.body.recovered, true);
      sizes.push(r.body.messages.length);
      mores.push(r.body.more);
      got.push(...r.body.messages);
      assert.equal(r.headers.get('etag'), `"${r.body.cursor}"`);
      cursor = r.body.cursor;
    }
    assert.deepEqual(sizes, [10, 10, 5]);
    assert.deepEqual(mores, [true, true, undefined]);
    got.forEach((m, i) => assertEnvelope(m, pubs[i], 'room:lim', i));
    assertIdsIncreasing(got);
    const end = await poll(gw, t, `topics=room:lim&cursor=${cursor}`);
    assert.deepEqual(end.body, { messages: [], cursor, recovered: true });

    // an exact multiple: 10 pending -> 10 and no "more"
    for (let i = 0; i < 10; i++) await publish(gw, 'room:lim', 100 + i);
    const ex = await poll(gw, t, `topics=room:lim&cursor=${cursor}`);
    assert.equal(ex.body.messages.length, 10);
    assert.equal(ex.body.more, undefined);

    // a long-poll with more pending than the limit answers at once, with the same paging
    const lp = await withTimeout(longpoll(gw, t, `timeout=20&topics=room:lim&cursor=${c0}`), 10000, 'long-poll with 35 pending');
    assert.equal(lp.status, 200);
    assert.equal(lp.body.messages.length, 10);
    assert.equal(lp.body.more, true);
    assert.deepEqual(lp.body.messages.map((m) => m.id), pubs.slice(0, 10).map((p) => p.id));
  });
});

test('recovered:false when the cursor is older than the history; the answer has the retained messages and a working cursor', { timeout: 30000 }, async () => {
  await withGateway({ history: { size: 5 } }, async (gw) => {
    const t = gw.token('frank');
    await publish(gw, 'room:h', -1);
    const c0 = (await poll(gw, t, 'topics=room:h')).body.cursor; // points at a real message
    const cFresh = (await poll(gw, t, 'topics=room:fresh')).body.cursor; // topic with no message yet
    const pubs = [], fresh = [];
    for (let i = 0; i < 20; i++) {
      pubs.push(await publish(gw, 'room:h', i));
      fresh.push(await publish(gw, 'room:fresh', i));
    }

    const r = await poll(gw, t, `topics=room:h&cursor=${c0}`);
    assert.equal(r.status, 200);
    assert.equal(r.body.recovered, false);
    assert.equal(r.body.messages.length, 5);
    r.body.messages.forEach((m, i) => assertEnvelope(m, pubs[15 + i], 'room:h', 15 + i));
    assert.equal(r.body.more, undefined);

    // the cursor it returned works: nothing new, recovered again, then exactly the next one
    const r2 = await poll(gw, t, `topics=room:h&cursor=${r.body.cursor}`);
    assert.deepEqual(r2.body, { messages: [], cursor: r.body.cursor, recovered: true });
    const p = await publish(gw, 'room:h', 'next');
    const r3 = await poll(gw, t, `topics=room:h&cursor=${r.body.cursor}`);
    assert.equal(r3.body.recovered, true);
    assert.equal(r3.body.messages.length, 1);
    assertEnvelope(r3.body.messages[0], p, 'room:h', 'next');

    // a cursor taken before the topic had any message has also lost 15 of them
    const f = await poll(gw, t, `topics=room:fresh&cursor=${cFresh}`);
    assert.equal(f.body.recovered, false);
    assert.deepEqual(f.body.messages.map((m) => m.id), fresh.slice(15).map((x) => x.id));

    // a long-poll with the stale cursor is answered at once, the same way
    const lp = await withTimeout(longpoll(gw, t, `timeout=20&topics=room:h&cursor=${c0}`), 10000, 'stale long-poll');
    assert.equal(lp.status, 200);
    assert.equal(lp.body.recovered, false);
    assert.deepEqual(lp.body.messages.map((m) => m.data), [16, 17, 18, 19, 'next']);

    // since=earliest on a topic that has evicted messages: the 5 retained; recovered:true,
    // since the client gave no position it could have lost anything after
    const e = await poll(gw, t, 'topics=room:h&since=earliest');
    assert.deepEqual(e.body.messages.map((m) => m.data), [16, 17, 18, 19, 'next']);
    assert.equal(e.body.recovered, true);
  });
});

test('multi-topic poll with paging: a history loss is reported once and every retained message comes once', { timeout: 30000 }, async () => {
  // Fails today: when a topic's history was lost but the page is already full, collect()
  // reports recovered:false and parks that topic at id 0-0 of the current epoch; the next
  // poll from that cursor sees "evicted > 0-0" and reports the same loss again.
  await withGateway({ history: { size: 5 }, limits: { max_messages_per_poll: 3 } }, async (gw) => {
    const t = gw.token('pia');
    let cursor = (await poll(gw, t, 'topics=room:a,room:b')).body.cursor;
    for (let i = 0; i < 4; i++) await publish(gw, 'room:a', `a${i}`);
    for (let i = 0; i < 20; i++) await publish(gw, 'room:b', `b${i}`); // b0..b14 evicted
    const pages = [];
    for (let k = 0; k < 6; k++) {
      const r = await poll(gw, t, `topics=room:a,room:b&cursor=${cursor}`);
      assert.equal(r.status, 200);
      pages.push({ data: r.body.messages.map((m) => m.data), recovered: r.body.recovered, more: r.body.more });
      cursor = r.body.cursor;
      if (!r.body.more && !r.body.messages.length) break;
    }
    const all = pages.flatMap((p) => p.data);
    assert.deepEqual(all, ['a0', 'a1', 'a2', 'a3', 'b15', 'b16', 'b17', 'b18', 'b19'], JSON.stringify(pages));
    assert.ok(pages.every((p) => p.data.length <= 3));

    // and a held multi-topic long-poll is woken by either topic
    const lp = longpoll(gw, t, `timeout=20&topics=room:a,room:b&cursor=${cursor}`);
    await waitFor(async () => (await metric(gw, 'rtgate_longpolls_held')) === 1, 10000, 'held');
    const p = await publish(gw, 'room:b', 'b-live');
    const r = await withTimeout(lp, 10000, 'multi-topic long-poll');
    assert.deepEqual(r.body.messages.map((m) => m.id), [p.id]);
    assert.equal(r.body.recovered, true);

    assert.equal(pages.filter((p) => p.recovered === false).length, 1, `recovered:false reported on more than one page for one loss: ${JSON.stringify(pages)}`);
  });
});

// ---------- long-poll ----------

test('long-poll: held until a publish, timeout=1 answers empty, news between long-polls come at once, bad timeout is 400', { timeout: 40000 }, async () => {
  await withGateway({}, async (gw) => {
    const t = gw.token('gina');
    await publish(gw, 'room:lp', 'history');
    const c0 = (await poll(gw, t, 'topics=room:lp')).body.cursor;

    // 1. held, then answered by a publish
    const events = [];
    const held = longpoll(gw, t, `timeout=20&topics=room:lp&cursor=${c0}`).then((r) => { events.push('answered'); return r; });
    await waitFor(async () => (await metric(gw, 'rtgate_longpolls_held')) === 1, 10000, 'the long-poll to be held');
    await sleep(300); // it stays held while nothing happens
    assert.deepEqual(events, []);
    events.push('publish');
    const p = await publish(gw, 'room:lp', { live: true });
    const a = await withTimeout(held, 10000, 'held long-poll answer');
    assert.deepEqual(events, ['publish', 'answered']);
    assert.equal(a.status, 200);
    assert.deepEqual(Object.keys(a.body), ['messages', 'cursor', 'recovered']);
    assert.equal(a.body.recovered, true);
    assert.equal(a.body.messages.length, 1);
    assertEnvelope(a.body.messages[0], p, 'room:lp', { live: true });
    assert.equal(a.headers.get('connection'), 'close');
    assert.equal(a.headers.get('cache-control'), 'no-store');
    assert.equal(a.headers.get('etag'), `"${a.body.cursor}"`);
    await waitFor(async () => (await metric(gw, 'rtgate_longpolls_held')) === 0, 10000, 'held 0 after the answer');

    // 2. timeout=1 with nothing new: empty, same cursor, after about a second
    const t0 = Date.now();
    const e = await withTimeout(longpoll(gw, t, `timeout=1&topics=room:lp&cursor=${a.body.cursor}`), 10000, 'timeout=1');
    const took = Date.now() - t0;
    assert.equal(e.status, 200);
    assert.deepEqual(e.body, { messages: [], cursor: a.body.cursor, recovered: true });
    assert.ok(took >= 950, `timeout=1 answered after ${took} ms`);
    assert.equal(e.headers.get('connection'), 'close');

    // 3. published between two long-polls: the next one answers immediately (well before 20 s)
    const q1 = await publish(gw, 'room:lp', 'between-1');
    const q2 = await publish(gw, 'room:lp', 'between-2');
    const t1 = Date.now();
    const b = await withTimeout(longpoll(gw, t, `timeout=20&topics=room:lp&cursor=${e.body.cursor}`), 10000, 'immediate long-poll');
    assert.ok(Date.now() - t1 < 10000);
    assert.equal(b.status, 200);
    assert.deepEqual(b.body.messages.map((m) => m.id), [q1.id, q2.id]);
    assert.equal(b.headers.get('connection'), 'close');

    // 4. the held-then-answered case again through curl (?token=), checking the raw headers
    const cp = curl(['-i', `${gw.url}/v1/longpoll?timeout=20&topics=room:lp&cursor=${b.body.cursor}&token=${t}`], { timeoutMs: 15000 });
    await waitFor(async () => (await metric(gw, 'rtgate_longpolls_held')) === 1, 10000, 'curl long-poll held');
    const q3 = await publish(gw, 'room:lp', 'for-curl');
    const k = await cp;
    assert.equal(k.code, 0, k.stderr);
    const [head, body] = k.stdout.split('\r\n\r\n');
    assert.match(head, /^HTTP\/1\.1 200 OK\r\n/);
    assert.match(head, /\r\nconnection: close(\r\n|$)/i);
    assert.deepEqual(JSON.parse(body).messages.map((m) => m.id), [q3.id]);

    // 5. invalid timeouts
    // (strtol() also lets " 1" and "+1" through as 1: lenient, not asserted either way)
    for (const bad of ['abc', '-1', '1.5', '', '2s', '0x1', '1e3']) {
      const r = await longpoll(gw, t, `timeout=${enc(bad)}&topics=room:lp`);
      assert.equal(r.status, 400, `timeout=${JSON.stringify(bad)}`);
      assert.deepEqual(r.body, { error: 'timeout must be a whole number of seconds' }, `timeout=${JSON.stringify(bad)}`);
    }
  });
});

test('long-poll timeout above longpoll.max_timeout_s is capped; no timeout means default_timeout_s', { timeout: 30000 }, async () => {
  await withGateway({ longpoll: { default_timeout_s: 1, max_timeout_s: 2 } }, async (gw) => {
    const t = gw.token('hank');
    const timed = async (q) => {
      const t0 = Date.now();
      const r = await withTimeout(longpoll(gw, t, q), 15000, q);
      return { r, ms: Date.now() - t0 };
    };
    const [capped, dflt] = await Promise.all([timed('timeout=100&topics=room:cap'), timed('topics=room:cap')]);
    for (const { r } of [capped, dflt]) {
      assert.equal(r.status, 200);
      assert.deepEqual(r.body.messages, []);
      assert.equal(r.body.recovered, true);
      assert.equal(r.headers.get('connection'), 'close');
    }
    assert.ok(capped.ms >= 1900 && capped.ms < 6000, `timeout=100 with max 2 answered after ${capped.ms} ms`);
    assert.ok(dflt.ms >= 950 && dflt.ms < 5000, `default timeout 1 answered after ${dflt.ms} ms`);
    const m = await metrics(gw);
    assert.equal(m.rtgate_longpoll_timeouts_total, 2);
  });
});

test('query arguments are read wherever they are in the query string (timeout=/since= after a cursor, a token or a long topic)', { timeout: 30000 }, async () => {
  // Suspected cause: http_arg() passes its small caller buffer (16 bytes for timeout= and
  // since=) to lws_get_urlarg_by_name(), which copies EVERY fragment into that buffer while it
  // searches and gives up at the first one that does not fit (lws_hdr_copy_fragment() -> -1).
  // So a timeout=/since= that comes after any argument of 16+ bytes is silently "absent".
  // default_timeout_s is 5 here so an ignored timeout=1 is visible without a long wait.
  await withGateway({ longpoll: { default_timeout_s: 5, max_timeout_s: 55 } }, async (gw) => {
    const t = gw.token('oscar');
    const old = await publish(gw, 'room:a-longer-name', 'history');
    const C = (await poll(gw, t, 'topics=room:q')).body.cursor;
    const timed = async (label, path, opts) => {
      const t0 = Date.now();
      const r = await withTimeout(http(gw, path, opts), 15000, label);
      return { label, r, ms: Date.now() - t0 };
    };
    const cases = await Promise.all([
      timed('control: timeout=1 first', `/v1/longpoll?timeout=1&topics=room:q&cursor=${C}`, { token: t }),
      timed('timeout=1 after cursor=', `/v1/longpoll?topics=room:q&cursor=${C}&timeout=1`, { token: t }),
      timed('timeout=1 after token=', `/v1/longpoll?token=${t}&topics=room:q&timeout=1`, {}),
      timed('timeout=1 after topics=room:cap3', '/v1/longpoll?topics=room:cap3&timeout=1', { token: t }),
      timed('timeout=abc after cursor=', `/v1/longpoll?topics=room:q&cursor=${C}&timeout=abc`, { token: t }),
    ]);
    const problems = [];
    for (const { label, r, ms } of cases) {
      if (label.startsWith('timeout=abc')) {
        if (r.status !== 400 || r.body?.error !== 'timeout must be a whole number of seconds')
          problems.push(`${label}: expected 400 "timeout must be a whole number of seconds", got ${r.status} ${r.text} after ${ms} ms`);
      } else if (r.status !== 200 || ms >= 4000) {
        problems.push(`${label}: expected 200 after ~1 s, got ${r.status} after ${ms} ms (default_timeout_s is 5)`);
      }
    }
    // since=earliest after a 16+ byte topics= argument
    const e1 = await poll(gw, t, 'since=earliest&topics=room:a-longer-name');
    const e2 = await poll(gw, t, 'topics=room:a-longer-name&since=earliest');
    assert.deepEqual(e1.body.messages.map((m) => m.id), [old.id], 'control: since=earliest first');
    if (e2.body.messages.length !== 1)
      problems.push(`since=earliest after topics=room:a-longer-name: expected [${old.id}], got ${JSON.stringify(e2.body.messages)}`);
    assert.ok(cases[0].ms < 4000, `control long-poll took ${cases[0].ms} ms`);
    assert.deepEqual(problems, []);
  });
});

test('1,000 concurrent held long-polls are all answered by ONE publish', { timeout: 80000 }, async () => {
  await withGateway({}, async (gw) => {
    const t = gw.token('ivan');
    const agent = new nodeHttp.Agent({ keepAlive: false, maxSockets: Infinity });
    try {
      const c0 = (await poll(gw, t, 'topics=room:big')).body.cursor;
      const reqs = [];
      for (let i = 0; i < 1000; i++) {
        reqs.push(rawGet(gw, `/v1/longpoll?timeout=20&topics=room:big&cursor=${c0}`, { token: t, agent }));
        if (i % 100 === 99) await sleep(20); // let the accept queue drain a little
      }
      await waitFor(async () => (await metric(gw, 'rtgate_longpolls_held')) === 1000, 30000, '1000 held long-polls');
      const m0 = await metrics(gw);
      assert.equal(m0.rtgate_streams, 1000);
      assert.equal(m0.rtgate_longpoll_requests_total, 1000);

      const p = await publish(gw, 'room:big', { fanout: true });
      const answers = await withTimeout(Promise.all(reqs.map((r) => r.done)), 30000, '1000 answers');
      let good = 0;
      for (const a of answers) {
        assert.equal(a.status, 200, a.text);
        assert.equal(a.headers.connection, 'close');
        assert.equal(a.body.recovered, true);
        assert.equal(a.body.messages.length, 1);
        assertEnvelope(a.body.messages[0], p, 'room:big', { fanout: true });
        good++;
      }
      assert.equal(good, 1000);
      assert.equal(new Set(answers.map((a) => a.body.cursor)).size, 1); // all at the same place
      await waitFor(async () => (await metric(gw, 'rtgate_longpolls_held')) === 0, 15000, 'held 0');
      const m1 = await metrics(gw);
      assert.equal(m1.rtgate_longpolls_held, 0);
      assert.equal(m1.rtgate_streams, 0);
      assert.equal(m1.rtgate_longpoll_timeouts_total, 0);
    } finally {
      agent.destroy();
    }
  });
});

test('limits.max_held_longpolls 3: the 4th held long-poll gets 503 with retry-after', { timeout: 30000 }, async () => {
  await withGateway({ limits: { max_held_longpolls: 3 } }, async (gw) => {
    const t = gw.token('judy');
    const agent = new nodeHttp.Agent({ keepAlive: false, maxSockets: Infinity });
    try {
      const held = [0, 1, 2].map(() => rawGet(gw, '/v1/longpoll?timeout=20&topics=room:cap3', { token: t, agent }));
      await waitFor(async () => (await metric(gw, 'rtgate_longpolls_held')) === 3, 10000, '3 held');

      const r = await longpoll(gw, t, 'timeout=20&topics=room:cap3');
      assert.equal(r.status, 503);
      assert.equal(r.headers.get('retry-after'), '1');
      assert.deepEqual(r.body, { error: 'too many held long-polls' });
      assert.equal(r.text, '{"error":"too many held long-polls"}');
      // with curl too
      const k = await curl(['-i', `${gw.url}/v1/longpoll?timeout=20&topics=room:cap3&token=${t}`]);
      const [head, body] = k.stdout.split('\r\n\r\n');
      assert.match(head, /^HTTP\/1\.1 503 Service Unavailable\r\n/);
      assert.match(head, /\r\nretry-after: 1(\r\n|$)/i);
      assert.equal(body, '{"error":"too many held long-polls"}');
      assert.equal(await metric(gw, 'rtgate_longpolls_held'), 3);

      // the limit is on HELD requests: one that can be answered at once still is
      const old = await publish(gw, 'room:other', 'x');
      const now = await longpoll(gw, t, 'timeout=20&since=earliest&topics=room:other');
      assert.equal(now.status, 200);
      assert.deepEqual(now.body.messages.map((m) => m.id), [old.id]);

      // one publish frees all three; then a new one is held again
      const p = await publish(gw, 'room:cap3', 'free');
      for (const a of await withTimeout(Promise.all(held.map((h) => h.done)), 10000, '3 answers')) {
        assert.equal(a.status, 200);
        assert.deepEqual(a.body.messages.map((m) => m.id), [p.id]);
      }
      await waitFor(async () => (await metric(gw, 'rtgate_longpolls_held')) === 0, 10000, 'held 0');
      const again = rawGet(gw, '/v1/longpoll?timeout=20&topics=room:cap3', { token: t, agent });
      await waitFor(async () => (await metric(gw, 'rtgate_longpolls_held')) === 1, 10000, 'held again');
      const p2 = await publish(gw, 'room:cap3', 'again');
      const a2 = await withTimeout(again.done, 10000, 'answer again');
      assert.deepEqual(a2.body.messages.map((m) => m.id), [p2.id]);
    } finally {
      agent.destroy();
    }
  });
});

test('held long-polls whose clients disconnect are cleaned up, without burning CPU', { timeout: 40000 }, async () => {
  await withGateway({}, async (gw) => {
    const t = gw.token('kate');
    const agent = new nodeHttp.Agent({ keepAlive: false, maxSockets: Infinity });
    try {
      // one
      const one = rawGet(gw, '/v1/longpoll?timeout=30&topics=room:gone', { token: t, agent });
      await waitFor(async () => (await metric(gw, 'rtgate_longpolls_held')) === 1, 10000, '1 held');
      one.req.destroy();
      await waitFor(async () => (await metric(gw, 'rtgate_longpolls_held')) === 0, 8000, 'the aborted long-poll to be cleaned up');
      assert.equal(await metric(gw, 'rtgate_streams'), 0);

      // a hundred
      const many = [];
      for (let i = 0; i < 100; i++) many.push(rawGet(gw, '/v1/longpoll?timeout=30&topics=room:gone', { token: t, agent }));
      await waitFor(async () => (await metric(gw, 'rtgate_longpolls_held')) === 100, 15000, '100 held');
      const cpu0 = cpuSeconds(gw.proc.pid);
      for (const r of many) r.req.destroy();
      await sleep(3000);
      const cpu = cpuSeconds(gw.proc.pid) - cpu0;
      assert.ok(cpu < 0.3, `rtgate used ${cpu.toFixed(2)} s of CPU in the 3 s after 100 clients left`);
      await waitFor(async () => (await metric(gw, 'rtgate_longpolls_held')) === 0, 8000, '100 aborted long-polls cleaned up');
      const m = await metrics(gw);
      assert.equal(m.rtgate_streams, 0);
      assert.equal(m.rtgate_dead_peers_total, 101);
      assert.equal(m.rtgate_subscriptions, 0);
      assert.equal(m.rtgate_longpoll_timeouts_total, 0);

      // still serving: a new long-poll is held and answered
      const live = rawGet(gw, '/v1/longpoll?timeout=30&topics=room:gone', { token: t, agent });
      await waitFor(async () => (await metric(gw, 'rtgate_longpolls_held')) === 1, 10000, 'new held');
      const p = await publish(gw, 'room:gone', 'still here');
      const a = await withTimeout(live.done, 10000, 'answer after cleanup');
      assert.deepEqual(a.body.messages.map((x) => x.id), [p.id]);
    } finally {
      agent.destroy();
    }
  });
});

test('a held long-poll is answered (empty, same cursor) when rtgate shuts down', { timeout: 30000 }, async () => {
  const gw = await startGateway();
  let stopped = false;
  try {
    const t = gw.token('liam');
    const c = (await poll(gw, t, 'topics=room:bye')).body.cursor;
    const lp = longpoll(gw, t, `timeout=30&topics=room:bye&cursor=${c}`);
    await waitFor(async () => (await metric(gw, 'rtgate_longpolls_held')) === 1, 10000, 'held');
    const st = await gw.stop();
    stopped = true;
    assert.equal(st.code, 0, gw.logs());
    const r = await withTimeout(lp, 5000, 'answer on shutdown');
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, { messages: [], cursor: c, recovered: true });
  } finally {
    if (!stopped) await gw.stop();
  }
});

// ---------- switching transports ----------

test('switching SSE -> long-poll -> poll with the same cursor loses and repeats nothing', { timeout: 30000 }, async () => {
  await withGateway({}, async (gw) => {
    const t = gw.token('mia');
    const pubs = [];
    const sse = openSSE(gw, `topics=room:x&token=${t}`);
    try {
      await sse.waitFor((s) => s.raw.includes('retry:'), 10000);
      for (let i = 0; i < 10; i++) pubs.push(await publish(gw, 'room:x', { n: i }));
      await sse.waitFor((s) => s.messages().length === 10, 10000);
    } finally {
      await sse.close();
    }
    const viaSse = sse.messages();
    const lastId = viaSse[9]._id;
    assert.ok(lastId, 'SSE events carry an id');

    for (let i = 10; i < 20; i++) pubs.push(await publish(gw, 'room:x', { n: i }));
    const viaLp = [];
    let cursor = lastId;
    for (let k = 0; k < 5 && viaLp.length < 10; k++) {
      const r = await withTimeout(longpoll(gw, t, `timeout=10&topics=room:x&cursor=${enc(cursor)}`), 15000, 'long-poll after SSE');
      assert.equal(r.status, 200, r.text);
      assert.equal(r.body.recovered, true);
      viaLp.push(...r.body.messages);
      cursor = r.body.cursor;
    }
    assert.equal(viaLp.length, 10);

    for (let i = 20; i < 25; i++) pubs.push(await publish(gw, 'room:x', { n: i }));
    const r = await poll(gw, t, `topics=room:x&cursor=${enc(cursor)}`);
    assert.equal(r.status, 200);
    assert.equal(r.body.recovered, true);
    const viaPoll = r.body.messages;
    assert.equal(viaPoll.length, 5);

    const all = [...viaSse.map(({ _id, ...m }) => m), ...viaLp, ...viaPoll];
    assert.equal(all.length, 25);
    all.forEach((m, i) => assertEnvelope(m, pubs[i], 'room:x', { n: i }));
    assertIdsIncreasing(all, 'SSE+long-poll+poll');
    assert.equal(new Set(all.map((m) => m.id)).size, 25);
  });
});

// ---------- bad input ----------

test('bad input: malformed cursor, too many topics, forbidden topic, missing or bad token, wrong method', { timeout: 30000 }, async () => {
  await withGateway({ limits: { max_topics_per_request: 2 } }, async (gw) => {
    const t = gw.token('alice');
    const good = (await poll(gw, t, 'topics=room:1')).body.cursor;
    const raw = Buffer.from(good, 'base64url').toString('latin1');
    const b64 = (s) => Buffer.from(s, 'latin1').toString('base64url');
    const now = Math.floor(Date.now() / 1000);

    for (const path of ['/v1/poll', '/v1/longpoll']) {
      const q = (s) => `${path}?${path === '/v1/longpoll' ? 'timeout=0&' : ''}${s}`; // timeout=0: answer at once
      const malformed = [
        'abc!', 'not-a-cursor', good.slice(0, -1), good + 'A', good + '==',
        b64(raw.replace(/^r1\|/, 'r2|')), // unknown version
        b64(raw + '|'), // dangling separator
        b64(raw.replace(/\|[0-9a-f]{16}\|/, '|0123|')), // short epoch
        b64(raw.replace(/\|(\d+)-(\d+)$/, '|$1')), // id without seq
        b64(raw + '|' + raw.slice(3)), // the same topic twice
      ];
      for (const c of malformed) {
        const r = await http(gw, q(`topics=room:1&cursor=${enc(c)}`), { token: t });
        assert.equal(r.status, 400, `${path} cursor ${c}`);
        assert.deepEqual(r.body, { error: 'malformed cursor' }, `${path} cursor ${c}`);
      }
      const many = await http(gw, q('topics=room:1,room:2,room:3'), { token: t });
      assert.equal(many.status, 400);
      assert.deepEqual(many.body, { error: 'too many topics (limit 2)' });
      assert.equal((await http(gw, q('topics=room:1,room:2'), { token: t })).status, 200);

      for (const topics of ['user:other', 'room:1,user:other']) {
        const f = await http(gw, q(`topics=${topics}`), { token: t });
        assert.equal(f.status, 403, topics);
        assert.deepEqual(f.body, { error: 'forbidden topic' });
      }
      assert.equal((await http(gw, q('topics=user:alice'), { token: t })).status, 200);
      const inv = await http(gw, q('topics=room'), { token: t });
      assert.equal(inv.status, 400);
      assert.deepEqual(inv.body, { error: 'invalid topic "room"' });

      const none = await http(gw, q('topics=room:1'));
      assert.equal(none.status, 401);
      assert.deepEqual(none.body, { error: 'missing token' });
      const tokens = [
        ['abc', 'malformed token'],
        [jwt('some-other-secret-0123456789abcdef', { sub: 'alice', exp: now + 3600 }), 'bad signature'],
        [jwt(SECRET, { sub: 'alice', exp: now - 10 }), 'token expired'],
        [t.slice(0, -2) + (t.slice(-2) === 'AA' ? 'BA' : 'AA'), 'bad signature'],
      ];
      for (const [tok, why] of tokens) {
        const bad = await http(gw, q('topics=room:1'), { token: tok });
        assert.equal(bad.status, 401, why);
        assert.deepEqual(bad.body, { error: why });
        const badQ = await http(gw, q(`topics=room:1&token=${enc(tok)}`));
        assert.equal(badQ.status, 401, why);
        assert.deepEqual(badQ.body, { error: why });
      }
      const basic = await http(gw, q('topics=room:1'), { headers: { authorization: 'Basic YWxpY2U6eA==' } });
      assert.equal(basic.status, 401);
      assert.deepEqual(basic.body, { error: 'authorization must be a Bearer token' });

      for (const body of [undefined, '{}']) {
        const post = await http(gw, `${path}?topics=room:1`, { method: 'POST', token: t, body });
        assert.equal(post.status, 405);
        assert.deepEqual(post.body, { error: 'method not allowed' });
        assert.equal(post.headers.get('allow'), 'GET');
      }
    }
    // with curl: POST -> 405
    const k = await curl(['-i', '-X', 'POST', '-H', `Authorization: Bearer ${t}`, '-d', '{}', `${gw.url}/v1/poll?topics=room:1`]);
    assert.match(k.stdout, /^HTTP\/1\.1 405 Method Not Allowed\r\n/);
    assert.equal(k.stdout.split('\r\n\r\n')[1], '{"error":"method not allowed"}');
    // the gateway is fine afterwards
    assert.deepEqual((await poll(gw, t, `topics=room:1&cursor=${good}`)).body, { messages: [], cursor: good, recovered: true });
  });
});

test('every single-bit tampering of a cursor is either 400 malformed cursor or read as the position it decodes to', { timeout: 30000 }, async () => {
  await withGateway({}, async (gw) => {
    const t = gw.token('alice');
    const pubs = [];
    for (let i = 0; i < 3; i++) pubs.push(await publish(gw, 'room:1', i));
    const C = (await poll(gw, t, 'topics=room:1')).body.cursor; // after message 3
    for (let i = 3; i < 5; i++) pubs.push(await publish(gw, 'room:1', i));
    const F = (await poll(gw, t, `topics=room:1&cursor=${C}`)).body.cursor; // after message 5
    const [, , epoch] = Buffer.from(C, 'base64url').toString('latin1').split('|');

    const ALPHA = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const VALID = /^r1\|([a-z][a-z0-9_-]{0,31}:[A-Za-z0-9_.@-]{1,128})\|([0-9a-f]{16})\|(\d{1,20})-(\d{1,20})$/;
    const counts = { malformed: 0, otherTopic: 0, otherEpoch: 0, otherId: 0 };
    for (let i = 0; i < C.length; i++) {
      for (const bit of [1, 2, 4, 8, 16, 32]) {
        const T = C.slice(0, i) + ALPHA[ALPHA.indexOf(C[i]) ^ bit] + C.slice(i + 1);
        const canonical = Buffer.from(T, 'base64url').toString('base64url') === T;
        const m = canonical ? Buffer.from(T, 'base64url').toString('latin1').match(VALID) : null;
        const r = await poll(gw, t, `topics=room:1&cursor=${T}`);
        const what = `tampered cursor ${T} (char ${i}, bit ${bit}) decodes to ${JSON.stringify(Buffer.from(T, 'base64url').toString('latin1'))}`;
        if (!m || BigInt(m[3]) >= 2n ** 64n || BigInt(m[4]) >= 2n ** 64n) {
          counts.malformed++;
          assert.equal(r.status, 400, what);
          assert.deepEqual(r.body, { error: 'malformed cursor' }, what);
          continue;
        }
        assert.equal(r.status, 200, what);
        const [, topic, ep, ms, seq] = m;
        if (topic !== 'room:1') {
          // no position for the requested topic: as if no cursor was given
          counts.otherTopic++;
          assert.deepEqual(r.body, { messages: [], cursor: F, recovered: true }, what);
        } else if (ep !== epoch) {
          // another history epoch: lost history, everything retained is replayed
          counts.otherEpoch++;
          assert.equal(r.body.recovered, false, what);
          assert.deepEqual(r.body.messages.map((x) => x.id), pubs.map((p) => p.id), what);
          assert.equal(r.body.cursor, F, what);
        } else {
          // same epoch, another id: messages after that id; with none, the position is echoed
          counts.otherId++;
          const id = `${BigInt(ms)}-${BigInt(seq)}`;
          const after = pubs.filter((p) => cmpId(p.id, id) > 0);
          assert.equal(r.body.recovered, true, what);
          assert.deepEqual(r.body.messages.map((x) => x.id), after.map((p) => p.id), what);
          assert.equal(r.body.cursor, after.length ? F : Buffer.from(`r1|room:1|${epoch}|${id}`, 'latin1').toString('base64url'), what);
        }
      }
    }
    // the sweep exercised every branch
    for (const [k, v] of Object.entries(counts)) assert.ok(v > 0, `no tampering fell in ${k}: ${JSON.stringify(counts)}`);
  });
});

// ---------- metrics ----------

test('metrics: rtgate_poll_requests_total, rtgate_longpoll_requests_total and rtgate_longpoll_timeouts_total count exactly', { timeout: 30000 }, async () => {
  await withGateway({}, async (gw) => {
    const t = gw.token('nora');
    const m0 = await metrics(gw);
    assert.equal(m0.rtgate_poll_requests_total, 0);
    assert.equal(m0.rtgate_longpoll_requests_total, 0);
    assert.equal(m0.rtgate_longpoll_timeouts_total, 0);
    assert.equal(m0.rtgate_longpolls_held, 0);

    // 3 polls answered 200, 1 refused (401): every request is counted
    const c = (await poll(gw, t, 'topics=room:m')).body.cursor;
    await http(gw, `/v1/poll?topics=room:m&token=${t}`);
    await poll(gw, t, `topics=room:m&cursor=${c}`);
    assert.equal((await http(gw, '/v1/poll?topics=room:m')).status, 401);
    let m = await metrics(gw);
    assert.equal(m.rtgate_poll_requests_total, 4);
    assert.equal(m.rtgate_longpoll_requests_total, 0);

    // 2 long-polls that time out
    const [x, y] = await Promise.all([
      longpoll(gw, t, `timeout=1&topics=room:m&cursor=${c}`),
      longpoll(gw, t, 'timeout=1&topics=room:m'),
    ]);
    assert.deepEqual([x.status, y.status], [200, 200]);
    m = await metrics(gw);
    assert.equal(m.rtgate_longpoll_requests_total, 2);
    assert.equal(m.rtgate_longpoll_timeouts_total, 2);

    // 1 long-poll answered by a publish (not a timeout)
    const lp = longpoll(gw, t, `timeout=20&topics=room:m&cursor=${c}`);
    await waitFor(async () => (await metric(gw, 'rtgate_longpolls_held')) === 1, 10000, 'held');
    await publish(gw, 'room:m', 1);
    assert.equal((await withTimeout(lp, 10000, 'answer')).body.messages.length, 1);
    // 1 answered at once (news pending), 1 bad timeout
    assert.equal((await longpoll(gw, t, `timeout=20&topics=room:m&cursor=${c}`)).body.messages.length, 1);
    assert.equal((await longpoll(gw, t, 'timeout=abc&topics=room:m')).status, 400);
    await waitFor(async () => (await metric(gw, 'rtgate_longpolls_held')) === 0, 10000, 'held 0');
    m = await metrics(gw);
    assert.equal(m.rtgate_poll_requests_total, 4);
    assert.equal(m.rtgate_longpoll_requests_total, 5);
    assert.equal(m.rtgate_longpoll_timeouts_total, 2);
    assert.equal(m.rtgate_longpolls_held, 0);
    assert.equal(m.rtgate_streams, 0);
  });
});
