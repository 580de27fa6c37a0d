// What rtgate serves itself: the embedded browser client (/v1/client.js, /v1/client.global.js),
// the files of static_dir (safely: no "..", no symlink out, no hidden files), the stats stream
// and who may read it, and the node id clients see on every transport.
import test from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, writeFileSync, symlinkSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import net from 'node:net';
import { startGateway, http, openSSE, openWS, API_KEY, ROOT, curl } from './lib.mjs';

// A raw request, so nothing normalises the path on the way.
function raw(gw, line) {
  return new Promise((resolve, reject) => {
    const s = net.connect(gw.port, '127.0.0.1', () => s.write(`${line}\r\nHost: x\r\nConnection: close\r\n\r\n`));
    let out = '';
    s.on('data', (d) => (out += d));
    s.on('end', () => resolve(out));
    s.on('error', reject);
  });
}

function site() {
  const outside = mkdtempSync(join(tmpdir(), 'rtgate-outside-'));
  writeFileSync(join(outside, 'secret.txt'), 'do not serve');
  const dir = mkdtempSync(join(tmpdir(), 'rtgate-site-'));
  writeFileSync(join(dir, 'index.html'), '<h1>home</h1>');
  writeFileSync(join(dir, 'app.js'), 'export const x = 1;');
  writeFileSync(join(dir, 'style.css'), 'body{}');
  writeFileSync(join(dir, 'data.json'), '{"a":1}');
  writeFileSync(join(dir, 'logo.svg'), '<svg/>');
  writeFileSync(join(dir, 'blob.bin'), Buffer.from([0, 1, 2]));
  writeFileSync(join(dir, '.env'), 'SECRET=1');
  mkdirSync(join(dir, 'sub'));
  writeFileSync(join(dir, 'sub', 'index.html'), 'sub home');
  symlinkSync(join(outside, 'secret.txt'), join(dir, 'escape.txt')); // leads outside: skipped
  symlinkSync(outside, join(dir, 'outdir'));
  symlinkSync(join(dir, 'app.js'), join(dir, 'alias.js')); // inside: served
  return { dir, outside, cleanup: () => { rmSync(dir, { recursive: true, force: true }); rmSync(outside, { recursive: true, force: true }); } };
}

test('the embedded client is served with content type, ETag and revalidation', async () => {
  const gw = await startGateway();
  try {
    const src = readFileSync(join(ROOT, 'client', 'rtgate.js'), 'utf8');
    const r = await http(gw, '/v1/client.js');
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('content-type'), 'text/javascript; charset=utf-8');
    assert.equal(r.headers.get('cache-control'), 'no-cache');
    assert.equal(r.text, src, 'the bytes of client/rtgate.js, embedded at build time');
    const etag = r.headers.get('etag');
    assert.match(etag, /^"[0-9a-f]{16}"$/);
    const again = await http(gw, '/v1/client.js', { headers: { 'if-none-match': etag } });
    assert.equal(again.status, 304);
    assert.equal(again.text, '');
    const g = await http(gw, '/v1/client.global.js');
    assert.equal(g.status, 200);
    assert.match(g.text, /globalThis\.RTGate = \{ connect, Client/);
    assert.doesNotMatch(g.text, /^export /m, 'a classic script has no export statements');
    assert.notEqual(g.headers.get('etag'), etag);
    const call = await http(gw, '/client/rtgate-call.js');
    assert.equal(call.status, 200);
    assert.equal(call.headers.get('content-type'), 'text/javascript; charset=utf-8');
    assert.equal(call.text, readFileSync(join(ROOT, 'client', 'rtgate-call.js'), 'utf8'), 'the WebRTC helper, for docker/demo/call.html');
    const post = await http(gw, '/v1/client.js', { method: 'POST', body: {} });
    assert.equal(post.status, 405);
    assert.deepEqual(post.body, { error: 'method not allowed' });
    assert.equal((await http(gw, '/index.html')).status, 404, 'no static_dir: nothing else');
  } finally {
    await gw.stop();
  }
});

test('static_dir: files by extension, index pages, and nothing outside', async () => {
  const s = site();
  const gw = await startGateway({ static_dir: s.dir });
  try {
    const types = { '/index.html': 'text/html; charset=utf-8', '/app.js': 'text/javascript; charset=utf-8',
      '/style.css': 'text/css; charset=utf-8', '/data.json': 'application/json', '/logo.svg': 'image/svg+xml',
      '/blob.bin': 'application/octet-stream', '/alias.js': 'text/javascript; charset=utf-8' };
    for (const [p, type] of Object.entries(types)) {
      const r = await http(gw, p);
      assert.equal(r.status, 200, p);
      assert.equal(r.headers.get('content-type'), type, p);
    }
    assert.equal((await http(gw, '/')).text, '<h1>home</h1>');
    assert.equal((await http(gw, '/sub/')).text, 'sub home');
    for (const p of ['/.env', '/escape.txt', '/outdir/secret.txt', '/nope.html', '/sub']) {
      const r = await http(gw, p);
      assert.equal(r.status, 404, p);
      assert.deepEqual(r.body, { error: 'not found' }, p);
    }
    // dot segments: lws resolves them within the root ("/sub/../index.html" is the home page),
    // and whatever reaches us only matches a file loaded from inside static_dir
    const up = s.outside.split('/').pop();
    for (const p of [`/../${up}/secret.txt`, `/sub/../../${up}/secret.txt`, '/%2e%2e/etc/passwd', '//etc/passwd',
      '/..%2fetc/passwd', '/../../../../etc/passwd', '/outdir/../escape.txt']) {
      const out = await raw(gw, `GET ${p} HTTP/1.1`);
      assert.doesNotMatch(out, /do not serve|root:/, p);
      assert.match(out, /^HTTP\/1\.1 (404|400|403)/, p + ': ' + out.slice(0, 80));
    }
    assert.match(await raw(gw, 'GET /sub/../index.html HTTP/1.1'), /<h1>home<\/h1>$/);
    assert.match(gw.logs(), /static_dir: skipping '.*escape\.txt': it leads outside/);
    // the API still wins over files
    assert.equal((await http(gw, '/healthz')).status, 200);
  } finally {
    await gw.stop();
    s.cleanup();
  }
});

test('static_dir must be a directory: the gateway refuses to start otherwise', async () => {
  await assert.rejects(startGateway({ static_dir: '/nonexistent-rtgate-dir' }), /static_dir: "\/nonexistent-rtgate-dir" is not a directory/);
});

test('stats stream: API key by default (header or ?key=), public, or off', async () => {
  const gw = await startGateway({ node_id: 'node-x', stats: { interval_ms: 200 } });
  try {
    const noKey = await http(gw, '/v1/stats/stream');
    assert.equal(noKey.status, 401);
    assert.deepEqual(noKey.body, { error: 'missing API key' });
    const bad = await http(gw, '/v1/stats/stream?key=wrong-key-0123456789');
    assert.equal(bad.status, 401);
    assert.deepEqual(bad.body, { error: 'bad API key' });
    const ws = await openWS(gw, gw.token('ann'));
    const sse = openSSE(gw, 'topics=user:zed&token=' + gw.token('zed'));
    await sse.waitFor((x) => x.raw.includes('retry:'));
    for (const how of [{ q: `?key=${API_KEY}`, h: [] }, { q: '', h: ['-H', `X-API-Key: ${API_KEY}`] }]) {
      const out = (await curl(['-N', '-m', '1.5', ...how.h, `${gw.url}/v1/stats/stream${how.q}`], { timeoutMs: 5000 })).stdout;
      const events = out.split('\n\n').filter((e) => e.startsWith('data: ')).map((e) => JSON.parse(e.slice(6)));
      assert.ok(events.length >= 3, 'a snapshot every interval_ms: ' + out);
      const last = events.at(-1);
      assert.equal(last.node, 'node-x');
      assert.deepEqual(last.backplane, { type: 'local', up: true });
      assert.equal(last.connections.websocket, 1);
      assert.equal(last.connections.sse, 1, 'the dashboard\'s own stream is not counted');
      assert.equal(last.interval_ms, 200);
      assert.match(out, /^event: hello\ndata: \{"node":"node-x","heartbeat_ms":\d+\}/m);
    }
    await ws.close();
    await sse.close();
  } finally {
    await gw.stop();
  }
  const off = await startGateway({ stats: { access: 'off' } });
  try {
    const r = await http(off, '/v1/stats/stream', { headers: { 'x-api-key': API_KEY } });
    assert.equal(r.status, 404);
    assert.deepEqual(r.body, { error: 'not found' });
  } finally {
    await off.stop();
  }
  const pub = await startGateway({ stats: { access: 'public' } });
  try {
    const out = (await curl(['-N', '-m', '1.5', `${pub.url}/v1/stats/stream`], { timeoutMs: 5000 })).stdout;
    assert.match(out, /^data: \{"node":"[^"]+-\d+"/m, 'default node id: <hostname>-<port>');
  } finally {
    await pub.stop();
  }
});

test('the node id on every transport: WebSocket hello, SSE ?hello=1, poll header', async () => {
  const gw = await startGateway({ node_id: 'node-7', sse: { heartbeat_ms: 300 } });
  try {
    const tok = gw.token('bob');
    const ws = await openWS(gw, tok);
    assert.deepEqual(await ws.request({ type: 'hello' }), { type: 'hello', rid: 1, node: 'node-7', ping_interval_s: 20 });
    await ws.close();
    const sse = openSSE(gw, `hello=1&token=${tok}`);
    await sse.waitFor((s) => s.events.filter((e) => e.event === 'hb').length >= 2, 5000);
    assert.deepEqual(JSON.parse(sse.events.find((e) => e.event === 'hello').data), { node: 'node-7', heartbeat_ms: 300 });
    assert.doesNotMatch(sse.raw, /^: hb/m, 'heartbeats are events on a hello stream');
    await sse.close();
    const plain = openSSE(gw, `token=${tok}`);
    await plain.waitFor((s) => /^: hb/m.test(s.raw), 5000);
    assert.ok(!plain.events.some((e) => e.event === 'hello'), 'without hello=1 the stream is as before');
    await plain.close();
    const p = await http(gw, '/v1/poll', { token: tok });
    assert.equal(p.headers.get('x-rtgate-node'), 'node-7');
  } finally {
    await gw.stop();
  }
});

test('poll answers name the topics whose history was lost', async () => {
  const gw = await startGateway({ history: { size: 2 } });
  try {
    const tok = gw.token('bob');
    const a = await http(gw, '/v1/poll?topics=room:a,room:b', { token: tok });
    for (let i = 0; i < 5; i++) await http(gw, '/v1/publish', { method: 'POST', headers: { 'x-api-key': API_KEY }, body: { topic: 'room:a', data: i } });
    await http(gw, '/v1/publish', { method: 'POST', headers: { 'x-api-key': API_KEY }, body: { topic: 'room:b', data: 'b' } });
    const b = await http(gw, `/v1/poll?topics=room:a,room:b&cursor=${a.body.cursor}`, { token: tok });
    assert.equal(b.body.recovered, false);
    assert.deepEqual(b.body.reset, ['room:a']);
    assert.deepEqual(b.body.messages.map((m) => m.data), [3, 4, 'b']);
    const c = await http(gw, `/v1/poll?topics=room:a,room:b&cursor=${b.body.cursor}`, { token: tok });
    assert.deepEqual(c.body, { messages: [], cursor: b.body.cursor, recovered: true });
  } finally {
    await gw.stop();
  }
});
