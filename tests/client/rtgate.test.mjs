// Unit tests of the browser client's state machine (client/rtgate.js) in Node's test runner:
// fake WebSocket, EventSource, fetch and a virtual clock are injected through options.env, so
// every transition (fallback, stall, backoff, upgrade, resume, de-duplication) is checked
// deterministically and in milliseconds. The real transports are tested in Chromium
// (tests/browser/).
import test from 'node:test';
import assert from 'node:assert/strict';
import { Client, splitCursor, joinCursor, compareIds } from '../../client/rtgate.js';
import { ClientSignaling } from '../../client/rtgate-call.js';

const cur = (...parts) => Buffer.from('r1|' + parts.join('|')).toString('base64url');
const pos = (topic, id, epoch = 'aaaaaaaaaaaaaaaa') => `${topic}|${epoch}|${id}`;

// A virtual clock: timers run only when the test advances time.
function clock() {
  let now = 0, seq = 0;
  const timers = new Map();
  const c = {
    setTimeout: (fn, ms) => { const id = ++seq; timers.set(id, { at: now + Math.max(0, ms), fn }); return id; },
    clearTimeout: (id) => timers.delete(id),
    now: () => now,
    pending: () => [...timers.values()].map((t) => t.at - now).sort((a, b) => a - b),
    async advance(ms) {
      const end = now + ms;
      for (;;) {
        await flush();
        let next = null;
        for (const [id, t] of timers) if (t.at <= end && (!next || t.at < next[1].at)) next = [id, t];
        if (!next) break;
        timers.delete(next[0]);
        now = next[1].at;
        next[1].fn();
      }
      now = end;
      await flush();
    },
  };
  return c;
}
const flush = async () => { for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r)); };

// A WebSocket stand-in that records frames and answers like the gateway when `auto` is set.
function wsClass(log, { auto = true, node = 'n1', cursors = {} } = {}) {
  return class FakeWS {
    constructor(url) {
      this.url = url; this.sent = []; this.readyState = 0;
      log.push({ kind: 'websocket', url, ws: this });
      FakeWS.last = this;
    }
    send(text) {
      const f = JSON.parse(text);
      this.sent.push(f);
      if (!auto) return;
      if (f.type === 'hello') this.frame(node === 'old' ? { type: 'error', rid: f.rid, error: 'unknown type' } : { type: 'hello', rid: f.rid, node, ping_interval_s: 20 });
      if (f.type === 'subscribe') this.frame({ type: 'ack', rid: f.rid, topic: f.topic, recovered: true, cursor: cursors[f.topic] || f.cursor || cur(pos(f.topic, '0-0')) });
      if (f.type === 'publish' || f.type === 'send') this.frame({ type: 'ack', rid: f.rid, id: '9-0', topic: f.topic || 'user:' + f.to });
    }
    open() { this.readyState = 1; this.onopen?.(); }
    frame(f) { queueMicrotask(() => this.onmessage?.({ data: JSON.stringify(f) })); }
    serverClose(code = 1006) { this.readyState = 3; this.onclose?.({ code, reason: '' }); }
    close() { this.readyState = 3; this.closed = true; }
  };
}

function esClass(log) {
  return class FakeES {
    constructor(url) {
      this.url = url; this.listeners = {};
      log.push({ kind: 'sse', url, es: this });
      FakeES.last = this;
    }
    addEventListener(type, fn) { (this.listeners[type] ||= []).push(fn); }
    emit(type, data, lastEventId = '') {
      const e = { data: typeof data === 'string' ? data : JSON.stringify(data), lastEventId };
      if (type === 'message') this.onmessage?.(e);
      else for (const fn of this.listeners[type] || []) fn(e);
    }
    fail() { this.onerror?.({}); }
    close() { this.closed = true; }
  };
}

const res = (status, body, headers = {}) => ({
  status, ok: status >= 200 && status < 300,
  headers: { get: (k) => headers[k.toLowerCase()] ?? null },
  json: async () => body,
});

function setup(opts = {}, { fetch, ws = {} } = {}) {
  const log = [];
  const clk = clock();
  const env = {
    WebSocket: wsClass(log, ws), EventSource: esClass(log),
    fetch: async (url, o) => { log.push({ kind: 'fetch', url, o }); return fetch ? fetch(url, o) : res(503, { error: 'down' }); },
    setTimeout: clk.setTimeout, clearTimeout: clk.clearTimeout, random: () => 0.5, now: clk.now,
  };
  const c = new Client('http://gw.test', { token: 'T', env, ...opts });
  const events = [];
  for (const e of ['connected', 'disconnected', 'reset', 'error', 'message'])
    c.on(e, (a) => events.push([e, a]));
  return { c, log, clk, events, env };
}

test('cursors: split per topic, join back, ids compare as numbers', () => {
  const text = cur(pos('room:1', '5-0'), pos('user:bob', '7-2'));
  const m = splitCursor(text);
  assert.deepEqual([...m.keys()], ['room:1', 'user:bob']);
  assert.equal(m.get('user:bob'), pos('user:bob', '7-2'));
  assert.equal(joinCursor([m.get('room:1'), m.get('user:bob')]), text);
  assert.equal(joinCursor([]), '');
  assert.equal(splitCursor('!!not base64').size, 0);
  assert.ok(compareIds('10-0', '9-5') > 0, '10 > 9 (a string compare says otherwise)');
  assert.ok(compareIds('9-10', '9-9') > 0);
  assert.equal(compareIds('9-1', '9-1'), 0);
});

test('WebSocket first: connected after hello and the acks; messages to their handler in order', async () => {
  const { c, log, clk, events } = setup();
  const got = [];
  c.subscribe('room:1', (m) => got.push(m.id));
  c.start();
  await clk.advance(0);
  assert.equal(log[0].kind, 'websocket');
  assert.equal(log[0].url, 'ws://gw.test/v1/ws?token=T');
  log[0].ws.open();
  await clk.advance(0);
  assert.deepEqual(events.find((e) => e[0] === 'connected'), ['connected', { transport: 'websocket', node: 'n1' }]);
  log[0].ws.frame({ type: 'message', id: '1-0', topic: 'room:1', from: 'a', ts: 1, data: 'x', cursor: cur(pos('room:1', '1-0')) });
  log[0].ws.frame({ type: 'message', id: '2-0', topic: 'room:1', from: 'a', ts: 2, data: 'y', cursor: cur(pos('room:1', '2-0')) });
  log[0].ws.frame({ type: 'message', id: '2-0', topic: 'room:1', from: 'a', ts: 2, data: 'y', cursor: cur(pos('room:1', '2-0')) });
  await clk.advance(0);
  assert.deepEqual(got, ['1-0', '2-0'], 'a repeated id is dropped');
  assert.equal(c.cursor('room:1'), cur(pos('room:1', '2-0')));
  c.close();
});

test('fallback: WebSocket refused, then SSE stream fails, then long-polling; the cursor travels', async () => {
  const fetches = [];
  let lps = 0;
  const { c, log, clk, events } = setup({}, {
    fetch: (url) => {
      fetches.push(url);
      if (url.includes('/v1/poll')) return res(200, { messages: [], cursor: cur(pos('room:1', '4-0')), recovered: true }, { 'x-rtgate-node': 'n2' });
      if (lps++ > 1) return new Promise(() => {}); // then held, like a real long-poll
      return res(200, { messages: [{ id: '5-0', topic: 'room:1', from: 'a', ts: 5, data: 1 }], cursor: cur(pos('room:1', '5-0')), recovered: true }, { 'x-rtgate-node': 'n2' });
    },
  });
  const got = [];
  c.subscribe('room:1', (m) => got.push(m.id));
  c.start();
  await clk.advance(0);
  log[0].ws.serverClose(1006); // the upgrade was refused
  await clk.advance(20000);
  const sse = log.find((l) => l.kind === 'sse');
  assert.ok(sse, 'SSE is tried after the WebSocket: ' + JSON.stringify(log.map((l) => l.kind)));
  // the SSE stream starts from a known position: a poll fetched "now" first
  assert.ok(fetches[0].startsWith('http://gw.test/v1/poll?topics=room%3A1'));
  const q = new URL(sse.url).searchParams;
  assert.equal(q.get('topics'), 'room:1');
  assert.equal(q.get('hello'), '1');
  assert.equal(splitCursor(q.get('cursor')).get('room:1'), pos('room:1', '4-0'));
  sse.es.fail(); // never opened: a buffering proxy, say
  await clk.advance(20000);
  const after = log.slice(log.indexOf(sse) + 1).filter((l) => l.kind === 'fetch');
  assert.ok(after[0].url.includes('/v1/poll?'), 'long-polling starts with a quick poll');
  const lp = after.find((l) => l.url.includes('/v1/longpoll'));
  assert.ok(lp, 'then holds long-polls');
  assert.equal(splitCursor(new URL(lp.url).searchParams.get('cursor')).get('room:1'), pos('room:1', '4-0'));
  assert.equal(lp.o.headers.authorization, 'Bearer T');
  const conn = events.filter((e) => e[0] === 'connected');
  assert.deepEqual(conn[0], ['connected', { transport: 'longpoll', node: 'n2' }]);
  assert.deepEqual([...new Set(got)], ['5-0']);
  assert.equal(got.length, 1, 'the same message answered again is not shown twice');
  c.close();
});

test('a transport that is not open within connectTimeoutMs is abandoned for the next', async () => {
  const { c, log, clk } = setup({ connectTimeoutMs: 3000, transports: ['websocket', 'poll'] }, {
    fetch: () => res(200, { messages: [], cursor: cur(pos('room:1', '1-0')), recovered: true }),
  });
  c.subscribe('room:1');
  c.start();
  await clk.advance(2999);
  assert.equal(log.filter((l) => l.kind === 'fetch').length, 0);
  await clk.advance(1 + 10000);
  assert.ok(log[0].ws.closed, 'the hanging socket is closed');
  assert.ok(log.some((l) => l.kind === 'fetch' && l.url.includes('/v1/poll')));
  assert.equal(c.transport, 'poll');
  c.close();
});

test('stall: an open WebSocket that goes quiet past the stall time is abandoned for SSE', async () => {
  const { c, log, clk, events } = setup({ pingMs: 1000, stallMs: 5000 });
  c.subscribe('room:1');
  c.start();
  await clk.advance(0);
  const ws = log[0].ws;
  ws.open();
  await clk.advance(0);
  assert.equal(c.transport, 'websocket');
  // pings go out, nothing comes back (a proxy that silently dropped the socket)
  ws.send = (t) => ws.sent.push(JSON.parse(t));
  await clk.advance(4000);
  assert.equal(c.transport, 'websocket');
  assert.ok(ws.sent.filter((f) => f.type === 'ping').length >= 3, 'pinged while quiet');
  await clk.advance(1500);
  assert.deepEqual(events.find((e) => e[0] === 'disconnected'), ['disconnected', { transport: 'websocket', reason: 'stalled: no heartbeat' }]);
  await clk.advance(20000);
  assert.ok(log.some((l) => l.kind === 'fetch' && l.url.includes('/v1/poll')), 'SSE fetches its start positions');
  c.close();
});

test('an SSE stream without heartbeats stalls; heartbeats keep it', async () => {
  const { c, log, clk } = setup({ transports: ['sse', 'poll'] }, {
    fetch: () => res(200, { messages: [], cursor: cur(pos('room:1', '1-0')), recovered: true }),
  });
  c.subscribe('room:1');
  c.start();
  await clk.advance(0);
  const es = log.find((l) => l.kind === 'sse').es;
  es.emit('hello', { node: 'n1', heartbeat_ms: 1000 });
  await clk.advance(0);
  assert.equal(c.transport, 'sse');
  for (let i = 0; i < 10; i++) {
    await clk.advance(1000);
    es.emit('hb', {});
  }
  assert.equal(c.transport, 'sse', 'heartbeats keep the stream');
  await clk.advance(7001); // 2 x heartbeat + 5 s
  assert.notEqual(c.transport, 'sse');
  assert.ok(es.closed);
  c.close();
});

test('backoff: capped exponential with full jitter', async () => {
  const { c, log, clk, env } = setup({ transports: ['websocket'], backoffMinMs: 100, backoffMaxMs: 1000 });
  c.env.random = () => 0.999;
  c.start();
  await clk.advance(0);
  const waits = [];
  for (let i = 0; i < 6; i++) {
    const n = log.length;
    log[n - 1].ws.serverClose(1006);
    await flush();
    waits.push(clk.pending()[0]);
    await clk.advance(waits[i]);
    assert.equal(log.length, n + 1, 'a new attempt after the wait');
  }
  assert.deepEqual(waits, [199, 399, 799, 999, 999, 999]);
  c.env.random = () => 0;
  log[log.length - 1].ws.serverClose(1006);
  await flush();
  assert.equal(clk.pending()[0], 0, 'full jitter: anywhere from 0');
  c.close();
});

test('a connection that worked and drops is retried quickly on the same transport, resuming', async () => {
  const { c, log, clk, events } = setup();
  const got = [];
  c.subscribe('room:1', (m) => got.push(m.id));
  c.start();
  await clk.advance(0);
  log[0].ws.open();
  await clk.advance(0);
  log[0].ws.frame({ type: 'message', id: '3-0', topic: 'room:1', ts: 3, data: 0, cursor: cur(pos('room:1', '3-0')) });
  await clk.advance(0);
  log[0].ws.serverClose(1012);
  await clk.advance(250);
  assert.equal(log[1].kind, 'websocket');
  log[1].ws.open();
  await clk.advance(0);
  const sub = log[1].ws.sent.find((f) => f.type === 'subscribe');
  assert.equal(splitCursor(sub.cursor).get('room:1'), pos('room:1', '3-0'), 'resumes from the last message');
  // the gateway replays from the cursor; an overlap would be dropped
  log[1].ws.frame({ type: 'message', id: '3-0', topic: 'room:1', ts: 3, data: 0, cursor: cur(pos('room:1', '3-0')) });
  log[1].ws.frame({ type: 'message', id: '4-0', topic: 'room:1', ts: 4, data: 0, cursor: cur(pos('room:1', '4-0')) });
  await clk.advance(0);
  assert.deepEqual(got, ['3-0', '4-0']);
  assert.deepEqual(events.filter((e) => e[0] !== 'message').map((e) => e[0]), ['connected', 'disconnected', 'connected']);
  c.close();
});

test('reset: the event fires and ids start again', async () => {
  const { c, log, clk, events } = setup();
  const got = [];
  c.subscribe('room:1', (m) => got.push(m.id));
  c.start();
  await clk.advance(0);
  log[0].ws.open();
  await clk.advance(0);
  log[0].ws.frame({ type: 'message', id: '50-0', topic: 'room:1', ts: 3, data: 0, cursor: cur(pos('room:1', '50-0')) });
  log[0].ws.frame({ type: 'reset', topic: 'room:1' });
  log[0].ws.frame({ type: 'message', id: '2-0', topic: 'room:1', ts: 3, data: 0, cursor: cur(pos('room:1', '2-0', 'bbbbbbbbbbbbbbbb')) });
  await clk.advance(0);
  assert.deepEqual(events.find((e) => e[0] === 'reset'), ['reset', { topic: 'room:1' }]);
  assert.deepEqual(got, ['50-0', '2-0']);
  c.close();
});

test('poll answers with recovered:false fire reset for the topics they name', async () => {
  let n = 0;
  const { c, clk, events } = setup({ transports: ['poll'] }, {
    fetch: () => n++ === 0
      ? res(200, { messages: [], cursor: cur(pos('room:1', '1-0')), recovered: true })
      : res(200, { messages: [{ id: '1-0', topic: 'room:1', ts: 1, data: 0 }], cursor: cur(pos('room:1', '1-0', 'cccccccccccccccc')), recovered: false, reset: ['room:1'] }),
  });
  c.subscribe('room:1');
  c.start();
  await clk.advance(2500);
  assert.deepEqual(events.filter((e) => e[0] === 'reset'), [['reset', { topic: 'room:1' }]]);
  c.close();
});

test('upgrade: on SSE the client tries WebSocket again and switches when it works', async () => {
  const { c, log, clk, events } = setup({ upgradeMs: 30000 }, {
    fetch: () => res(200, { messages: [], cursor: cur(pos('room:1', '1-0')), recovered: true }),
  });
  const got = [];
  c.subscribe('room:1', (m) => got.push(m.id));
  c.start();
  await clk.advance(0);
  log[0].ws.serverClose(1006);
  await clk.advance(1000); // the backoff, not the connect timeout
  const es = log.find((l) => l.kind === 'sse').es;
  es.emit('hello', { node: 'n1', heartbeat_ms: 15000 });
  es.emit('message', { id: '2-0', topic: 'room:1', ts: 2, data: 0 }, cur(pos('room:1', '2-0')));
  await clk.advance(0);
  assert.equal(c.transport, 'sse');
  await clk.advance(30000);
  const probe = log.filter((l) => l.kind === 'websocket')[1];
  assert.ok(probe, 'a WebSocket is tried again');
  probe.ws.open();
  await clk.advance(0);
  assert.equal(splitCursor(probe.ws.sent.find((f) => f.type === 'subscribe').cursor).get('room:1'), pos('room:1', '2-0'));
  assert.equal(c.transport, 'websocket');
  assert.ok(es.closed, 'the SSE stream is closed after the switch');
  probe.ws.frame({ type: 'message', id: '2-0', topic: 'room:1', ts: 2, data: 0, cursor: cur(pos('room:1', '2-0')) });
  probe.ws.frame({ type: 'message', id: '3-0', topic: 'room:1', ts: 3, data: 0, cursor: cur(pos('room:1', '3-0')) });
  await clk.advance(0);
  assert.deepEqual(got, ['2-0', '3-0']);
  assert.deepEqual(events.filter((e) => e[0] === 'connected').map((e) => e[1].transport), ['sse', 'websocket']);
  c.close();
});

test('publish and send: over the WebSocket when open, else POST /v1/messages', async () => {
  const posts = [];
  const { c, log, clk } = setup({}, {
    fetch: (url, o) => { posts.push([url, JSON.parse(o.body)]); return res(200, { id: '8-0', topic: 'room:1' }); },
  });
  c.start();
  await clk.advance(0);
  assert.deepEqual(await c.publish('room:1', { a: 1 }), { id: '8-0', topic: 'room:1' });
  assert.deepEqual(posts, [['http://gw.test/v1/messages', { topic: 'room:1', data: { a: 1 } }]]);
  log[0].ws.open();
  await clk.advance(0);
  assert.deepEqual(await c.send('bob', 'hi'), { id: '9-0', topic: 'user:bob' });
  assert.deepEqual(log[0].ws.sent.find((f) => f.type === 'send'), { type: 'send', to: 'bob', data: 'hi', rid: 'r1' });
  assert.equal(posts.length, 1);
  c.close();
});

test('getToken: called for the first token and again after a 401', async () => {
  let calls = 0;
  const { c, clk } = setup({ token: undefined, getToken: async () => `tok${++calls}`, transports: ['poll'] }, {
    fetch: (url, o) => o.headers.authorization === 'Bearer tok1'
      ? res(401, { error: 'token expired' })
      : res(200, { messages: [], cursor: cur(pos('room:1', '1-0')), recovered: true }),
  });
  c.subscribe('room:1');
  c.start();
  await clk.advance(100);
  assert.equal(calls, 2);
  assert.equal(c.transport, 'poll');
  c.close();
});

test('subscribe while connected: the WebSocket subscribes, SSE reopens with every topic', async () => {
  const { c, log, clk } = setup({ transports: ['sse'] }, {
    fetch: (url) => res(200, { messages: [], cursor: cur(pos(new URL(url).searchParams.get('topics'), '1-0')), recovered: true }),
  });
  c.subscribe('room:1');
  c.start();
  await clk.advance(0);
  log.find((l) => l.kind === 'sse').es.emit('hello', { node: 'n', heartbeat_ms: 15000 });
  await clk.advance(0);
  c.subscribe('room:2');
  await clk.advance(1000);
  const streams = log.filter((l) => l.kind === 'sse');
  assert.equal(streams.length, 2);
  assert.equal(new URL(streams[1].url).searchParams.get('topics'), 'room:1,room:2');
  assert.ok(streams[0].es.closed);
  c.close();

  const w = setup();
  w.c.start();
  await w.clk.advance(0);
  w.log[0].ws.open();
  await w.clk.advance(0);
  w.c.subscribe('room:9');
  w.c.unsubscribe('room:9');
  assert.deepEqual(w.log[0].ws.sent.slice(-2).map((f) => [f.type, f.topic]), [['subscribe', 'room:9'], ['unsubscribe', 'room:9']]);
  w.c.close();
});

test('a gateway without the hello frame: connected all the same, node unknown', async () => {
  const { c, log, clk, events } = setup({}, { ws: { node: 'old' } });
  c.subscribe('room:1');
  c.start();
  await clk.advance(0);
  log[0].ws.open();
  await clk.advance(0);
  assert.deepEqual(events.filter((e) => e[0] === 'connected'), [['connected', { transport: 'websocket', node: null }]]);
  assert.deepEqual(events.filter((e) => e[0] === 'error'), [], 'not reported as an error');
  c.close();
});

// Ephemeral messages (WebRTC signaling): live only, no id, no cursor.
const eph = (data, extra = {}) => ({ topic: 'user:me', from: 'bob', ts: 7, ephemeral: true, data, ...extra });

test('ephemeral over WebSocket: to the handlers and the message event once, cursor and dedupe untouched', async () => {
  const { c, log, clk, events } = setup();
  const got = [];
  c.subscribe('user:me', (m) => got.push(m));
  c.start();
  await clk.advance(0);
  const ws = log[0].ws;
  ws.open();
  await clk.advance(0);
  ws.frame({ type: 'message', id: '5-0', topic: 'user:me', from: 'bob', ts: 5, data: 'a', cursor: cur(pos('user:me', '5-0')) });
  ws.frame({ type: 'message', ...eph({ type: 'offer', sdp: 'x' }) });
  ws.frame({ type: 'message', id: '5-0', topic: 'user:me', from: 'bob', ts: 5, data: 'a', cursor: cur(pos('user:me', '5-0')) });
  ws.frame({ type: 'message', id: '6-0', topic: 'user:me', from: 'bob', ts: 6, data: 'b', cursor: cur(pos('user:me', '6-0')) });
  ws.frame({ type: 'message', ...eph({ type: 'hangup' }) });
  await clk.advance(0);
  assert.deepEqual(got.map((m) => m.id ?? `eph:${m.data.type}`), ['5-0', 'eph:offer', '6-0', 'eph:hangup'],
    'each once, in order; the replayed 5-0 after the ephemeral is still dropped');
  assert.deepEqual(got[1], { topic: 'user:me', from: 'bob', ts: 7, data: { type: 'offer', sdp: 'x' }, ephemeral: true });
  assert.equal(events.filter((e) => e[0] === 'message' && e[1].ephemeral).length, 2, 'the message event too');
  assert.equal(c.cursor('user:me'), cur(pos('user:me', '6-0')), 'the cursor is the last stored message');
  assert.deepEqual(events.filter((e) => e[0] === 'error'), []);
  c.close();
});

test('ephemeral over SSE: no id: line, so the cursor stays; the next message is not taken for a repeat', async () => {
  const { c, log, clk } = setup({ transports: ['sse'] }, {
    fetch: () => res(200, { messages: [], cursor: cur(pos('user:me', '1-0')), recovered: true }),
  });
  const got = [];
  c.subscribe('user:me', (m) => got.push(m.id ?? 'eph'));
  c.start();
  await clk.advance(0);
  const es = log.find((l) => l.kind === 'sse').es;
  es.emit('hello', { node: 'n1', heartbeat_ms: 15000 });
  es.emit('message', { id: '2-0', topic: 'user:me', ts: 2, data: 0 }, cur(pos('user:me', '2-0')));
  // EventSource keeps the previous Last-Event-ID for an event without one
  es.emit('message', eph('sig'), cur(pos('user:me', '2-0')));
  es.emit('message', { id: '3-0', topic: 'user:me', ts: 3, data: 0 }, cur(pos('user:me', '3-0')));
  await clk.advance(0);
  assert.deepEqual(got, ['2-0', 'eph', '3-0']);
  assert.equal(c.cursor('user:me'), cur(pos('user:me', '3-0')));
  c.close();
});

test('ephemeral in a held long-poll answer: delivered, the answer\'s cursor (unchanged) kept', async () => {
  let n = 0;
  const { c, log, clk } = setup({ transports: ['longpoll'] }, {
    fetch: () => {
      n++;
      if (n === 1) return res(200, { messages: [], cursor: cur(pos('user:me', '4-0')), recovered: true });
      if (n === 2) return res(200, { messages: [eph('sig')], cursor: cur(pos('user:me', '4-0')), recovered: true });
      return new Promise(() => {});
    },
  });
  const got = [];
  c.subscribe('user:me', (m) => got.push(m));
  c.start();
  await clk.advance(100);
  assert.equal(log.filter((l) => l.kind === 'fetch' && l.url.includes('/v1/longpoll')).length, 2, 'held again after the answer');
  assert.deepEqual(got.map((m) => [m.ephemeral, m.data]), [[true, 'sig']]);
  assert.equal(c.cursor('user:me'), cur(pos('user:me', '4-0')));
  c.close();
});

test('ephemeral from a probe during an upgrade is taken from the current transport only', async () => {
  const { c, log, clk } = setup({ upgradeMs: 30000 }, {
    fetch: () => res(200, { messages: [], cursor: cur(pos('user:me', '1-0')), recovered: true }),
  });
  const got = [];
  c.subscribe('user:me', (m) => got.push(m.data));
  c.start();
  await clk.advance(0);
  log[0].ws.serverClose(1006);
  await clk.advance(1000);
  const es = log.find((l) => l.kind === 'sse').es;
  es.emit('hello', { node: 'n1', heartbeat_ms: 15000 });
  await clk.advance(30000);
  const probe = log.filter((l) => l.kind === 'websocket')[1].ws;
  // the probe's socket is open but still subscribing: both streams carry the same message
  probe.readyState = 1;
  probe.onopen();
  probe.onmessage({ data: JSON.stringify({ type: 'message', ...eph('twice?') }) });
  es.emit('message', eph('twice?'), cur(pos('user:me', '1-0')));
  await clk.advance(0);
  assert.deepEqual(got, ['twice?']);
  assert.equal(c.transport, 'websocket');
  probe.frame({ type: 'message', ...eph('after') });
  await clk.advance(0);
  assert.deepEqual(got, ['twice?', 'after']);
  c.close();
});

test('send and publish with {ephemeral: true}: the flag in the WebSocket frame and in the POST body', async () => {
  const posts = [];
  const { c, log, clk, events } = setup({}, {
    fetch: (url, o) => {
      const b = JSON.parse(o.body);
      posts.push([url, b]);
      return b.to === 'carol' ? res(409, { error: 'recipient offline' }) : res(200, { topic: 'user:' + b.to, ephemeral: true });
    },
    ws: { auto: false },
  });
  c.start();
  await clk.advance(0);
  // not connected yet: POST /v1/messages
  assert.deepEqual(await c.send('bob', { type: 'offer' }, { ephemeral: true }), { topic: 'user:bob', ephemeral: true });
  assert.deepEqual(posts[0], ['http://gw.test/v1/messages', { to: 'bob', ephemeral: true, data: { type: 'offer' } }]);
  await assert.rejects(c.send('carol', 'x', { ephemeral: true }), (e) => e.message === 'recipient offline' && e.status === 409);
  // connected: over the WebSocket
  const ws = log[0].ws;
  ws.open();
  ws.frame({ type: 'hello', rid: 'hello', node: 'n1' });
  await clk.advance(0);
  assert.equal(c.transport, 'websocket');
  const p1 = c.send('bob', 'c1', { ephemeral: true });
  const p2 = c.publish('room:1', 'p1', { ephemeral: true });
  const p3 = c.send('dave', 'c2', { ephemeral: true }).then(() => 'sent', (e) => e.message);
  const p4 = c.send('bob', 'stored');
  const frames = ws.sent.filter((f) => f.type === 'send' || f.type === 'publish');
  assert.deepEqual(frames.slice(0, 3), [
    { type: 'send', to: 'bob', ephemeral: true, data: 'c1', rid: frames[0].rid },
    { type: 'publish', topic: 'room:1', ephemeral: true, data: 'p1', rid: frames[1].rid },
    { type: 'send', to: 'dave', ephemeral: true, data: 'c2', rid: frames[2].rid },
  ]);
  assert.equal('ephemeral' in frames[3], false, 'a plain send carries no flag');
  ws.frame({ type: 'ack', rid: frames[0].rid, topic: 'user:bob', ephemeral: true });
  ws.frame({ type: 'ack', rid: frames[1].rid, topic: 'room:1', ephemeral: true });
  ws.frame({ type: 'error', rid: frames[2].rid, error: 'recipient offline' });
  ws.frame({ type: 'ack', rid: frames[3].rid, topic: 'user:bob', id: '10-0' });
  await clk.advance(0);
  assert.deepEqual(await p1, { topic: 'user:bob', ephemeral: true });
  assert.deepEqual(await p2, { topic: 'room:1', ephemeral: true });
  assert.equal(await p3, 'recipient offline');
  assert.deepEqual(await p4, { id: '10-0', topic: 'user:bob' });
  assert.equal(posts.length, 2, 'nothing else went by POST');
  assert.deepEqual(events.filter((e) => e[0] === 'error'), [], '"recipient offline" rejects the send; it is no error event');
  c.close();
});

// The WebRTC helper's signaling on an rtgate.js client (client/rtgate-call.js); the calls
// themselves are tested in Chromium (tests/integration/webrtc.test.mjs).
test('ClientSignaling on an SSE client: reachable once its inbox is live; signals in on the stream, out by ephemeral POST', async () => {
  const jwt = 'h.' + Buffer.from(JSON.stringify({ sub: 'alice' })).toString('base64url') + '.s';
  const posts = [];
  let reach = 0, bob = 0;
  const { c, log, clk } = setup({ transports: ['sse'], token: jwt }, {
    fetch: (url, o) => {
      if (url.includes('/v1/poll')) return res(200, { messages: [], cursor: cur(pos('user:alice', '1-0')), recovered: true });
      const b = JSON.parse(o.body);
      posts.push(b);
      const off = res(409, { error: 'recipient offline' }), ok = res(200, { topic: 'user:' + b.to, ephemeral: true });
      if (b.data.type === 'reachable') return ++reach < 2 ? off : ok;
      if (b.to === 'bob') return ++bob < 3 ? off : ok; // bob between two long-polls, say
      return b.to === 'carol' ? off : ok;
    },
  });
  const sig = new ClientSignaling({ client: c, offlineGraceMs: 2000 });
  const got = [];
  sig.onSignal((m, info) => got.push(m ? m.data : info));
  const ready = sig.connect(); // starts the client, subscribes user:alice
  await clk.advance(0);
  const es = log.find((l) => l.kind === 'sse').es;
  assert.equal(new URL(es.url).searchParams.get('topics'), 'user:alice');
  es.emit('hello', { node: 'n1', heartbeat_ms: 15000 });
  await clk.advance(0);
  await ready;
  assert.equal(sig.user, 'alice', 'the user is the token\'s sub');
  assert.equal(reach, 2, 'asked again until the gateway said alice is reachable');
  assert.deepEqual(posts[0], { to: 'alice', ephemeral: true, data: { type: 'reachable' } });
  got.length = 0;
  es.emit('message', { topic: 'user:alice', from: 'bob', ts: 1, ephemeral: true, data: { type: 'offer', call: 'k', sdp: 's' } });
  es.emit('message', { id: '2-0', topic: 'user:alice', from: 'bob', ts: 2, data: 'a stored message is not a signal' }, cur(pos('user:alice', '2-0')));
  assert.deepEqual(got, [{ type: 'offer', call: 'k', sdp: 's' }]);
  // out: POST /v1/messages, ephemeral; "recipient offline" tried again within the grace
  assert.deepEqual(await sig.send('bob', { type: 'answer', call: 'k', sdp: 'a' }), { topic: 'user:bob', ephemeral: true });
  assert.equal(bob, 3);
  assert.ok(posts.filter((p) => p.to === 'bob').every((p) => p.ephemeral === true && p.data.type === 'answer'));
  sig.offlineGraceMs = 300;
  await assert.rejects(sig.send('carol', { type: 'offer', call: 'j', sdp: 's' }), /recipient offline/);
  sig.close();
  es.emit('message', { topic: 'user:alice', from: 'bob', ts: 3, ephemeral: true, data: { type: 'hangup', call: 'k' } });
  assert.equal(got.length, 1, 'closed: no more signals');
  c.close();
});
