// HTTP/2 over TLS (ALPN h2): many SSE streams, a held long-poll, polls and publishes share one
// connection, each stream gets its messages in order, streams outlive the request timeout, one
// stream ending leaves the others alone, and errors keep their exact status and body. Node's
// own http2 client and curl --http2 are the clients.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { spawnSync } from 'node:child_process';
import { startGateway, parseSSE, sleep, waitFor, API_KEY } from './lib.mjs';
import { testCertificates } from './tls-lib.mjs';

const tc = testCertificates();
test.after(() => tc.cleanup());

function connect(gw) {
  const s = http2.connect(gw.url, { ca: tc.caPem });
  s.on('error', () => {});
  return new Promise((resolve, reject) => {
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

// One request on the session: resolves to { status, headers, text } when the stream ends.
function request(s, path, { method = 'GET', headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    const st = s.request({ ':method': method, ':path': path, ...headers });
    let text = '', h;
    st.setEncoding('utf8');
    st.on('response', (x) => (h = x));
    st.on('data', (d) => (text += d));
    st.on('end', () => resolve({ status: h[':status'], headers: h, text }));
    st.on('error', reject);
    st.end(body);
  });
}

// An SSE stream on the session: events fill as they arrive; ended when the server ends it.
function sse(s, query) {
  const st = s.request({ ':path': `/v1/sse?${query}` });
  const r = { st, raw: '', status: 0, endedCleanly: false, events: () => parseSSE(r.raw.slice(0, r.raw.lastIndexOf('\n\n') + 2)) };
  st.setEncoding('utf8');
  st.on('response', (h) => (r.status = h[':status']));
  st.on('data', (d) => (r.raw += d));
  st.on('error', () => {});
  r.ended = new Promise((resolve) => st.on('close', () => resolve(st.rstCode)));
  st.on('end', () => (r.endedCleanly = true));
  r.messages = () => r.events().filter((e) => e.data !== undefined && !e.event).map((e) => JSON.parse(e.data));
  return r;
}

const post = (s, path, body, headers) => {
  const b = JSON.stringify(body);
  return request(s, path, { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(b), ...headers }, body: b });
};
// Publishes on the session with a JWT (lws 4.1.6 drops X-API-Key on h2: see the README).
const publish = (s, tok, topic, data) => post(s, '/v1/messages', { topic, data }, { authorization: `Bearer ${tok}` });
const H2 = { tls_cert_file: tc.cert, tls_key_file: tc.key, http2: true };

test('twelve SSE streams, a held long-poll, polls and publishes on one HTTP/2 connection', async () => {
  const gw = await startGateway({
    listen: H2,
    limits: { request_timeout_s: 2 },
    sse: { heartbeat_ms: 500 },
  });
  let s;
  try {
    s = await connect(gw);
    assert.equal(s.alpnProtocol, 'h2');
    const tok = gw.token('bob');
    const streams = [];
    for (let i = 0; i < 12; i++) streams.push(sse(s, `topics=room:h2-${i % 4}&token=${tok}${i === 1 ? '&hello=1' : ''}`));
    await waitFor(() => streams.every((x) => x.raw.includes('retry:')), 10000, 'every stream open');
    assert.ok(streams.every((x) => x.status === 200));
    // ?hello=1 is read before the stream lets go of its request (the browser client needs it)
    await waitFor(() => streams[1].raw.includes('event: hello'), 5000, 'the hello event');
    assert.ok(!streams[0].raw.includes('event: hello'));
    const lp = request(s, `/v1/longpoll?topics=room:h2-lp&timeout=20&token=${tok}`);

    // the streams outlive limits.request_timeout_s (2 s) on a connection that stays open
    await sleep(3000);
    for (let n = 1; n <= 5; n++) {
      for (let t = 0; t < 4; t++) {
        const r = await publish(s, tok, `room:h2-${t}`, n);
        assert.equal(r.status, 200, r.text);
      }
    }
    await waitFor(() => streams.every((x) => x.messages().length === 5), 10000, 'five messages on every stream');
    streams.forEach((x, i) => {
      assert.deepEqual(x.messages().map((m) => [m.topic, m.data]), [1, 2, 3, 4, 5].map((n) => [`room:h2-${i % 4}`, n]));
    });
    assert.ok(streams[0].raw.includes(': hb'), 'heartbeats flow on h2 streams');

    // the held long-poll answers with the message published to its topic
    const pub = await publish(s, tok, 'room:h2-lp', 'wake');
    assert.equal(pub.status, 200);
    const a = await lp;
    assert.equal(a.status, 200);
    const body = JSON.parse(a.text);
    assert.deepEqual(body.messages.map((m) => m.data), ['wake']);

    // a poll with that cursor on the same connection: nothing new, ETag/304 work on h2
    const p = await request(s, `/v1/poll?topics=room:h2-lp&cursor=${body.cursor}&token=${tok}`);
    assert.equal(p.status, 200);
    assert.deepEqual(JSON.parse(p.text).messages, []);
    const nm = await request(s, `/v1/poll?topics=room:h2-lp&cursor=${body.cursor}&token=${tok}`, { headers: { 'if-none-match': p.headers.etag } });
    assert.deepEqual([nm.status, nm.text], [304, '']);

    // the client cancels one stream: the others keep receiving
    streams[0].st.close();
    await streams[0].ended;
    await publish(s, tok, 'room:h2-0', 6);
    await waitFor(() => streams[4].messages().length === 6 && streams[8].messages().length === 6, 5000, 'sixth message');

    // exact errors on h2: unknown path, bad token, forbidden inbox, oversized body
    const nf = await request(s, '/nope');
    assert.deepEqual([nf.status, nf.text], [404, '{"error":"not found"}']);
    const bad = await request(s, '/v1/poll?topics=room:x&token=nope');
    assert.equal(bad.status, 401);
    assert.match(bad.text, /^\{"error":"[^"]+"\}$/);
    const other = await request(s, `/v1/poll?topics=user:alice&token=${tok}`);
    assert.deepEqual([other.status, other.text], [403, '{"error":"forbidden topic"}']);
    const big = await post(s, '/v1/messages', { to: 'alice', data: 'x'.repeat(70000) }, { authorization: `Bearer ${tok}` });
    assert.deepEqual([big.status, big.text], [413, '{"error":"body too large"}']);
    const nolen = await request(s, '/v1/messages', { method: 'POST', headers: { authorization: `Bearer ${tok}` }, body: '{"to":"alice","data":1}' });
    assert.deepEqual([nolen.status, nolen.text], [411, '{"error":"content-length required"}']);
    const ok = await post(s, '/v1/messages', { to: 'alice', data: 'after 413' }, { authorization: `Bearer ${tok}` });
    assert.equal(ok.status, 200, ok.text);
    assert.equal((await request(s, '/healthz')).text, '{"status":"ok"}');
    // X-API-Key does not survive lws's h2 header parser: the refusal says so
    const nokey = await post(s, '/v1/publish', { topic: 'room:h2-0', data: 7 }, { 'x-api-key': API_KEY });
    assert.deepEqual([nokey.status, nokey.text], [401, '{"error":"missing X-API-Key header (not readable over HTTP/2: use HTTP/1.1)"}']);

    // curl negotiates h2 too
    const c = spawnSync('curl', ['-sS', '--http2', '--cacert', tc.ca, '-o', '/dev/null', '-w', '%{http_version} %{http_code}', `${gw.url}/healthz`], { encoding: 'utf8' });
    assert.equal(c.stdout, '2 200', c.stderr);
  } finally {
    s?.destroy();
    assert.equal((await gw.stop()).code, 0, gw.logs());
  }
});

test('an SSE stream on HTTP/2 ends cleanly at token expiry; the connection lives on', async () => {
  const gw = await startGateway({ listen: H2 });
  let s;
  try {
    s = await connect(gw);
    const short = sse(s, `topics=room:exp&token=${gw.token('bob', 2)}`);
    const long = sse(s, `topics=room:exp&token=${gw.token('bob')}`);
    await short.ended;
    assert.ok(short.endedCleanly, 'END_STREAM, not a reset');
    assert.ok(short.raw.includes('event: expired'), short.raw);
    await publish(s, gw.token('bob'), 'room:exp', 'still here');
    await waitFor(() => long.messages().length === 1, 5000, 'the other stream');
  } finally {
    s?.destroy();
    assert.equal((await gw.stop()).code, 0, gw.logs());
  }
});

test('without listen.http2 a TLS listener offers HTTP/1.1 only', async () => {
  const gw = await startGateway({ listen: { tls_cert_file: tc.cert, tls_key_file: tc.key } });
  try {
    const c = spawnSync('curl', ['-sS', '--http2', '--cacert', tc.ca, '-o', '/dev/null', '-w', '%{http_version} %{http_code}', `${gw.url}/healthz`], { encoding: 'utf8' });
    assert.equal(c.stdout, '1.1 200', c.stderr);
  } finally {
    assert.equal((await gw.stop()).code, 0, gw.logs());
  }
});
