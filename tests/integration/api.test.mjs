// The HTTP API and bad input: exact statuses and bodies; operator endpoints; the CLI.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { http, openWS, sleep, API_KEY, BIN, ROOT } from './lib.mjs';
import { withGateway, waitUntil, makeJwt, nowS, metric, rawExchange } from './helpers.mjs';

const KEY = { 'x-api-key': API_KEY };
const post = (gw, path, body, opts = {}) => http(gw, path, { method: 'POST', body, ...opts });

// Asserts status and the exact JSON body (and that it is served as JSON).
function expectJson(r, status, body, what = '') {
  assert.equal(r.status, status, `${what} -> ${r.status} ${r.text}`);
  assert.deepEqual(r.body, body, what);
  assert.equal(r.headers.get('content-type'), 'application/json', what);
}

test('POST /v1/messages: 200 {"id","topic"} for "to" and for "topic"; from is the token sub', async () => {
  await withGateway({}, async (gw) => {
    const alice = gw.token('alice');
    const bob = await openWS(gw, gw.token('bob'));
    await bob.request({ type: 'subscribe', topic: 'user:bob' });
    await bob.request({ type: 'subscribe', topic: 'room:1' });

    const r1 = await post(gw, '/v1/messages', { to: 'bob', data: { text: 'hi' } }, { token: alice });
    assert.equal(r1.status, 200, r1.text);
    assert.deepEqual(Object.keys(r1.body), ['id', 'topic']);
    assert.match(r1.body.id, /^\d+-\d+$/);
    assert.equal(r1.body.topic, 'user:bob');
    assert.equal(r1.headers.get('content-type'), 'application/json');
    assert.equal(r1.headers.get('cache-control'), 'no-store');

    const r2 = await post(gw, '/v1/messages', { topic: 'room:1', data: 7, from: 'mallory' }, { token: alice });
    assert.equal(r2.status, 200, r2.text);
    assert.deepEqual({ ...r2.body, id: 'x' }, { id: 'x', topic: 'room:1' });

    // the token may also come as ?token=
    const r3 = await post(gw, `/v1/messages?token=${alice}`, { to: 'bob', data: 'q' });
    assert.equal(r3.status, 200, r3.text);

    await bob.waitFor((c) => c.messages().length === 3);
    assert.deepEqual(bob.messages().map((m) => [m.id, m.topic, m.from, m.data]), [
      [r1.body.id, 'user:bob', 'alice', { text: 'hi' }],
      [r2.body.id, 'room:1', 'alice', 7],
      [r3.body.id, 'user:bob', 'alice', 'q'],
    ]);
    await bob.close();
  });
});

test('POST /v1/messages: 401 for a missing, malformed, badly signed or expired token', async () => {
  await withGateway({}, async (gw) => {
    const body = { to: 'bob', data: 1 };
    expectJson(await post(gw, '/v1/messages', body), 401, { error: 'missing token' }, 'no token');
    expectJson(await post(gw, '/v1/messages', body, { headers: { authorization: 'Basic YWxpY2U6eA==' } }), 401,
      { error: 'authorization must be a Bearer token' }, 'basic auth');
    expectJson(await post(gw, '/v1/messages', body, { token: 'not.a.jwt' }), 401, { error: 'malformed token' }, 'garbage');
    expectJson(await post(gw, '/v1/messages', body, { token: makeJwt({ sub: 'alice', exp: nowS() + 600 }, { secret: 'another-secret-0123456789abcdef' }) }),
      401, { error: 'bad signature' }, 'wrong secret');
    // flip one signature character (keeping the base64url padding bits zero)
    const good = gw.token('alice');
    const sig = good.slice(good.lastIndexOf('.') + 1);
    const tampered = good.slice(0, good.lastIndexOf('.') + 1) + (sig[0] === 'A' ? 'B' : 'A') + sig.slice(1);
    expectJson(await post(gw, '/v1/messages', body, { token: tampered }), 401, { error: 'bad signature' }, 'tampered');
    expectJson(await post(gw, '/v1/messages', body, { token: makeJwt({ sub: 'alice', exp: nowS() - 5 }) }), 401, { error: 'token expired' }, 'expired');
    expectJson(await post(gw, '/v1/messages', body, { token: makeJwt({ exp: nowS() + 60 }) }), 401, { error: 'missing sub' }, 'no sub');
    expectJson(await post(gw, '/v1/messages', body, { token: makeJwt({ sub: 'bad sub!', exp: nowS() + 60 }) }), 401, { error: 'invalid sub' }, 'bad sub');
    expectJson(await post(gw, '/v1/messages', body, { token: makeJwt({ sub: 'alice' }, { header: { alg: 'HS512' } }) }), 401, { error: 'unsupported algorithm' }, 'HS512');
    // a CLI token with --ttl 1 stops working once it has expired
    const short = gw.token('alice', 1);
    const r = await waitUntil(async () => {
      const x = await post(gw, '/v1/messages', body, { token: short });
      return x.status === 401 ? x : null;
    }, 5000, 'the 1 s token to expire');
    expectJson(r, 401, { error: 'token expired' }, 'ttl 1');
    assert.equal(await metric(gw, 'rtgate_auth_failures_total'), 10);
  });
});

test('POST /v1/messages: 400 for malformed bodies, with the exact reason', async () => {
  await withGateway({}, async (gw) => {
    const token = gw.token('alice');
    const raw = (text) => post(gw, '/v1/messages', text, { token, headers: { 'content-type': 'application/json' } });
    const cases = [
      [raw('{"to":"bob","data":'), 'malformed JSON'],
      [raw('not json at all'), 'malformed JSON'],
      [raw('{"to":"bob","data":1,"data":2}'), 'malformed JSON'], // duplicate keys are refused
      [raw('[1]'), 'body must be a JSON object'],
      [raw('{"to":"bob"}'), 'missing "data"'],
      [raw('{"topic":"room:1"}'), 'missing "data"'],
      [raw('{"topic":"bad","data":1}'), 'invalid topic'],
      [raw('{"topic":"room:","data":1}'), 'invalid topic'],
      [raw('{"topic":"room:1","to":"bob","data":1}'), 'give "topic" or "to", not both'],
      [raw('{"data":1}'), 'missing "topic" or "to"'],
      [raw('{"to":5,"data":1}'), '"to" must be a string'],
      [raw('{"topic":["room:1"],"data":1}'), '"topic" must be a string'],
      [raw('{"to":"b o b","data":1}'), 'invalid user id in "to"'],
    ];
    for (const [p, error] of cases) expectJson(await p, 400, { error }, error);
    // no body at all
    expectJson(await http(gw, '/v1/messages', { method: 'POST', token }), 400, { error: 'missing body' }, 'no body');
    // null is data like any other
    assert.equal((await raw('{"to":"bob","data":null}')).status, 200);
  });
});

test('POST bodies over limits.max_message_bytes get 413 {"error":"body too large"}; exactly the limit is fine', async () => {
  await withGateway({ limits: { max_message_bytes: 1024 } }, async (gw) => {
    const token = gw.token('alice');
    const big = JSON.stringify({ to: 'bob', data: 'x'.repeat(2000) });
    const r = await post(gw, '/v1/messages', big, { token, headers: { 'content-type': 'application/json' } });
    expectJson(r, 413, { error: 'body too large' }, 'messages');
    assert.equal(r.headers.get('connection'), 'close');
    expectJson(await post(gw, '/v1/publish', big, { headers: { ...KEY, 'content-type': 'application/json' } }), 413, { error: 'body too large' }, 'publish');
    const base = JSON.stringify({ to: 'bob', data: '' });
    const exact = JSON.stringify({ to: 'bob', data: 'x'.repeat(1024 - base.length) });
    assert.equal(exact.length, 1024);
    assert.equal((await post(gw, '/v1/messages', exact, { token, headers: { 'content-type': 'application/json' } })).status, 200);
    const over = JSON.stringify({ to: 'bob', data: 'x'.repeat(1025 - base.length) });
    expectJson(await post(gw, '/v1/messages', over, { token, headers: { 'content-type': 'application/json' } }), 413, { error: 'body too large' }, '1025 bytes');
  });
});

test('wrong method: 405 with allow; unknown path: 404 {"error":"not found"}', async () => {
  await withGateway({}, async (gw) => {
    for (const [method, path, allow] of [['GET', '/v1/messages', 'POST'], ['GET', '/v1/publish', 'POST'], ['POST', '/healthz', 'GET'], ['POST', '/v1/sse', 'GET']]) {
      const r = await http(gw, path, { method, body: method === 'POST' ? { x: 1 } : undefined, headers: KEY });
      expectJson(r, 405, { error: 'method not allowed' }, `${method} ${path}`);
      assert.equal(r.headers.get('allow'), allow, `${method} ${path}`);
    }
    expectJson(await http(gw, '/nope'), 404, { error: 'not found' }, 'GET /nope');
    expectJson(await http(gw, '/v1/messages/extra'), 404, { error: 'not found' }, 'GET /v1/messages/extra');
    expectJson(await http(gw, '/nope', { method: 'POST', body: { a: 1 } }), 404, { error: 'not found' }, 'POST /nope');
    expectJson(await http(gw, '/'), 404, { error: 'not found' }, 'GET /');
  });
});

test('POST /v1/publish: API key required; optional "from" is used; invalid from is 400', async () => {
  await withGateway({}, async (gw) => {
    const body = { topic: 'room:1', data: 1 };
    expectJson(await post(gw, '/v1/publish', body), 401, { error: 'missing X-API-Key header' }, 'no key');
    expectJson(await post(gw, '/v1/publish', body, { token: gw.token('alice') }), 401, { error: 'missing X-API-Key header' }, 'a JWT is not a key');
    expectJson(await post(gw, '/v1/publish', body, { headers: { 'x-api-key': 'wrong-key-0123456789abcdef' } }), 401, { error: 'bad API key' }, 'bad key');
    expectJson(await post(gw, '/v1/publish', body, { headers: { 'x-api-key': API_KEY.slice(0, -1) } }), 401, { error: 'bad API key' }, 'prefix of key');

    const sub = await openWS(gw, gw.token('bob'));
    await sub.request({ type: 'subscribe', topic: 'room:1' });
    await sub.request({ type: 'subscribe', topic: 'user:bob' });
    const r1 = await post(gw, '/v1/publish', body, { headers: KEY });
    assert.equal(r1.status, 200, r1.text);
    assert.deepEqual({ ...r1.body, id: 'x' }, { id: 'x', topic: 'room:1' });
    const r2 = await post(gw, '/v1/publish', { topic: 'room:1', data: 2, from: 'billing' }, { headers: { 'X-API-Key': API_KEY } });
    assert.equal(r2.status, 200, r2.text);
    const r3 = await post(gw, '/v1/publish', { to: 'bob', data: 3, from: 'orders.svc@x-1' }, { headers: KEY });
    assert.deepEqual({ ...r3.body, id: 'x' }, { id: 'x', topic: 'user:bob' });
    for (const from of ['bad id!', '', 5, null, 'x'.repeat(500)]) {
      expectJson(await post(gw, '/v1/publish', { topic: 'room:1', data: 9, from }, { headers: KEY }), 400,
        { error: '"from" must be a valid user id' }, `from ${JSON.stringify(from)}`);
    }
    expectJson(await post(gw, '/v1/publish', { topic: 'nope', data: 1 }, { headers: KEY }), 400, { error: 'invalid topic' }, 'topic');
    await sub.waitFor((c) => c.messages().length === 3);
    await sleep(100);
    assert.deepEqual(sub.messages().map((m) => [m.id, m.from, m.data]), [
      [r1.body.id, null, 1], [r2.body.id, 'billing', 2], [r3.body.id, 'orders.svc@x-1', 3],
    ]);
    await sub.close();
  });
});

test('GET /v1/sse refusals: 401, 403, 400 (bad topic, malformed cursor, too many / no topics)', async () => {
  await withGateway({ limits: { max_topics_per_request: 2 } }, async (gw) => {
    const t = gw.token('alice');
    expectJson(await http(gw, '/v1/sse'), 401, { error: 'missing token' }, 'no token');
    expectJson(await http(gw, `/v1/sse?token=${makeJwt({ sub: 'alice', exp: nowS() - 1 })}`), 401, { error: 'token expired' }, 'expired');
    expectJson(await http(gw, `/v1/sse?token=${t}&topics=user:someoneelse`), 403, { error: 'forbidden topic' }, 'other inbox');
    expectJson(await http(gw, `/v1/sse?token=${t}&topics=room:1,user:bob`), 403, { error: 'forbidden topic' }, 'other inbox in a list');
    expectJson(await http(gw, `/v1/sse?token=${t}&topics=bad`), 400, { error: 'invalid topic "bad"' }, 'bad');
    expectJson(await http(gw, `/v1/sse?token=${t}&topics=room:1,`), 400, { error: 'invalid topic ""' }, 'trailing comma');
    expectJson(await http(gw, `/v1/sse?token=${t}&topics=`), 400, { error: 'no topics' }, 'empty');
    expectJson(await http(gw, `/v1/sse?token=${t}&topics=room:1,room:2,room:3`), 400, { error: 'too many topics (limit 2)' }, 'three topics');
    expectJson(await http(gw, `/v1/sse?token=${t}`, { headers: { 'last-event-id': 'garbage' } }), 400, { error: 'malformed cursor' }, 'Last-Event-ID');
    expectJson(await http(gw, `/v1/sse?token=${t}&lastEventId=garbage`), 400, { error: 'malformed cursor' }, 'lastEventId');
    const notHex = Buffer.from('r1|user:alice|zzzzzzzzzzzzzzzz|1-0').toString('base64url');
    expectJson(await http(gw, `/v1/sse?token=${t}`, { headers: { 'last-event-id': notHex } }), 400, { error: 'malformed cursor' }, 'bad epoch');
    assert.equal(await metric(gw, 'rtgate_streams'), 0);
  });
});

test('/healthz, /readyz, /metrics; GET /v1/ws without an upgrade is 426', async () => {
  await withGateway({}, async (gw) => {
    expectJson(await http(gw, '/healthz'), 200, { status: 'ok' });
    expectJson(await http(gw, '/readyz'), 200, { status: 'ready' });
    const m = await http(gw, '/metrics');
    assert.equal(m.status, 200);
    assert.equal(m.headers.get('content-type'), 'text/plain; version=0.0.4');
    assert.match(m.text, /^# HELP rtgate_http_requests_total /m);
    assert.match(m.text, /^# TYPE rtgate_http_requests_total counter$/m);
    const before = await metric(gw, 'rtgate_http_requests_total');
    await http(gw, '/healthz');
    assert.equal(await metric(gw, 'rtgate_http_requests_total'), before + 2); // /healthz and this /metrics
    for (const name of ['rtgate_streams', 'rtgate_topics', 'rtgate_subscriptions', 'rtgate_draining']) assert.equal(await metric(gw, name), 0, name);
    expectJson(await http(gw, '/v1/ws'), 426, { error: 'WebSocket upgrade required' }, '/v1/ws');
  });
});

test('after a barrage of bad input the daemon still serves, and SIGTERM exits 0', async () => {
  await withGateway({ limits: { max_message_bytes: 1024 } }, async (gw) => {
    const token = gw.token('alice');
    const bad = [
      () => post(gw, '/v1/messages', '{', { token, headers: { 'content-type': 'application/json' } }),
      () => post(gw, '/v1/messages', 'x'.repeat(5000), { token }),
      () => post(gw, '/v1/publish', { topic: 'room:1', data: 1 }),
      () => http(gw, '/v1/sse?topics=%%%'),
      () => http(gw, `/v1/sse?token=${token}&topics=${'a'.repeat(3000)}:x`),
      () => post(gw, '/v1/messages', { to: 'bob', data: 1 }, { headers: { authorization: 'Bearer ' + 'A'.repeat(7000) } }),
      () => rawExchange(gw, 'GARBAGE\r\n\r\n', 1000),
      () => rawExchange(gw, 'GET / HTTP/1.1\r\nHost: x\r\n', 500), // never finishes its headers
      () => rawExchange(gw, `GET /v1/sse?token=${token} HTTP/1.1\r\nHost: x\r\nLast-Event-ID: ${'z'.repeat(4000)}\r\n\r\n`, 1000),
      () => rawExchange(gw, 'PUT /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 24\r\n\r\nGET /nope HTTP/1.1\r\n\r\n', 1000),
      () => rawExchange(gw, '\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03', 500), // a TLS hello
    ];
    for (let round = 0; round < 3; round++) {
      const rs = await Promise.all(bad.map((f) => f()));
      for (const r of rs.slice(0, 6)) assert.ok(r.status >= 400 && r.status < 500, `status ${r.status} ${r.text}`);
      // a PUT body must not be read as a second request
      assert.equal(rs[9].data.split('HTTP/1.1 ').length - 1, 1, rs[9].data);
      assert.match(rs[9].data, /^HTTP\/1\.1 405 /);
    }
    const r = await post(gw, '/v1/messages', { to: 'bob', data: 'still here' }, { token });
    assert.equal(r.status, 200, r.text);
    expectJson(await http(gw, '/readyz'), 200, { status: 'ready' });
    await waitUntil(async () => (await metric(gw, 'rtgate_streams')) === 0, 5000, 'no streams left');
    const stop = await gw.stop();
    assert.deepEqual({ code: stop.code, signal: stop.signal }, { code: 0, signal: null }, gw.logs());
  });
});

test('a chunked POST body (Transfer-Encoding: chunked) is refused at once with 411', async () => {
  await withGateway({}, async (gw) => {
    const body = JSON.stringify({ topic: 'room:1', data: 'chunked' });
    const req = `POST /v1/publish HTTP/1.1\r\nHost: x\r\nx-api-key: ${API_KEY}\r\ncontent-type: application/json\r\n` +
      `Transfer-Encoding: chunked\r\n\r\n${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`;
    const r = await rawExchange(gw, req, 4000);
    // the size of a body must be known before it is read (limits.max_message_bytes)
    assert.match(r.data, /^HTTP\/1\.1 411 Length Required\r\n/, `got ${JSON.stringify(r.data)}`);
    assert.ok(r.data.endsWith('{"error":"content-length required"}'), r.data);
    assert.equal(r.closedByServer, true);
  });
});

// ---- CLI ----

const run = (args) => spawnSync(BIN, args, { encoding: 'utf8', timeout: 10000 });

test('CLI: --version, --help, bad usage', () => {
  const version = readFileSync(join(ROOT, 'CMakeLists.txt'), 'utf8').match(/project\(rtgate VERSION (\d+\.\d+\.\d+)/)[1];
  const v = run(['--version']);
  assert.equal(v.status, 0);
  assert.equal(v.stdout, `rtgate ${version}\n`);
  assert.match(v.stdout, /^rtgate \d+\.\d+\.\d+\n$/);
  assert.deepEqual(run(['-v']).stdout, v.stdout);
  const h = run(['--help']);
  assert.equal(h.status, 0);
  assert.match(h.stdout, /^usage: rtgate \[--config FILE\] \[--check-config\]\n/);
  assert.match(h.stdout, /--check-config/);
  assert.equal(h.stderr, '');
  const u = run(['--bogus']);
  assert.equal(u.status, 2);
  assert.match(u.stderr, /usage: rtgate/);
  const c = run(['frobnicate']);
  assert.equal(c.status, 2);
  assert.match(c.stderr, /^rtgate: unknown command "frobnicate"\n/);
});

test('CLI: --check-config accepts the shipped config and names file, key and reason for a bad one', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rtgate-cli-'));
  try {
    const good = join(ROOT, 'conf', 'rtgate.json');
    const g = run(['--check-config', '--config', good]);
    assert.equal(g.status, 0, g.stderr);
    assert.equal(g.stdout, `${good}: ok\n`);

    const cf = JSON.parse(readFileSync(good, 'utf8'));
    cf.listen.prot = 8080;
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, JSON.stringify(cf, null, 2));
    const b = run(['--check-config', '--config', bad]);
    assert.equal(b.status, 1);
    assert.equal(b.stdout, '');
    assert.equal(b.stderr, `rtgate: ${bad}: listen.prot: unknown key\n`);

    const top = join(dir, 'top.json');
    writeFileSync(top, JSON.stringify({ ...JSON.parse(readFileSync(good, 'utf8')), lisen: {} }));
    const t = run(['--config', top, '--check-config']);
    assert.equal(t.status, 1);
    assert.equal(t.stderr, `rtgate: ${top}: lisen: unknown key\n`);

    const missing = join(dir, 'nope.json');
    const m = run(['--check-config', '--config', missing]);
    assert.equal(m.status, 1);
    assert.equal(m.stderr, `rtgate: ${missing}: cannot read: No such file or directory\n`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('CLI: `rtgate token --sub alice` prints a JWT the gateway accepts', async () => {
  await withGateway({}, async (gw) => {
    const t = run(['token', '--sub', 'alice', '--config', gw.cfgPath]);
    assert.equal(t.status, 0, t.stderr);
    assert.match(t.stdout, /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}\n$/);
    const token = t.stdout.trim();
    const claims = JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString());
    assert.equal(claims.sub, 'alice');
    assert.equal(claims.exp - claims.iat, 3600);
    assert.deepEqual(JSON.parse(Buffer.from(token.split('.')[0], 'base64url').toString()), { alg: 'HS256', typ: 'JWT' });

    const bob = await openWS(gw, gw.token('bob'));
    await bob.request({ type: 'subscribe', topic: 'user:bob' });
    const r = await post(gw, '/v1/messages', { to: 'bob', data: 'from the cli token' }, { token });
    assert.equal(r.status, 200, r.text);
    await bob.waitFor((c) => c.messages().length === 1);
    assert.equal(bob.messages()[0].from, 'alice');
    await bob.close();

    // --config before the command and --ttl work too
    const t2 = run(['--config', gw.cfgPath, 'token', '--sub', 'carol', '--ttl', '60']);
    assert.equal(t2.status, 0, t2.stderr);
    const c2 = JSON.parse(Buffer.from(t2.stdout.trim().split('.')[1], 'base64url').toString());
    assert.deepEqual([c2.sub, c2.exp - c2.iat], ['carol', 60]);
    assert.equal((await post(gw, '/v1/messages', { topic: 'room:1', data: 1 }, { token: t2.stdout.trim() })).status, 200);

    const bad = run(['token', '--sub', 'not ok', '--config', gw.cfgPath]);
    assert.equal(bad.status, 1);
    assert.equal(bad.stderr, 'rtgate token: invalid user id "not ok" (allowed: A-Z a-z 0-9 _ . @ -)\n');
    assert.equal(run(['token', '--config', gw.cfgPath]).status, 2);
    assert.equal(run(['token', '--sub', 'x', '--ttl', '0', '--config', gw.cfgPath]).status, 2);
  });
});
