// JWT verification with several keys (HS256/384/512, RS256, ES256) chosen by "kid", the
// algorithm pinned by the key, claims (exp, nbf, iat with leeway, iss, aud), topic grants
// ("topics", "publish") on every transport, and secrets read from files. Keys are made by the
// openssl command line; tokens are signed here with Node's crypto.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHmac, createSign, sign as edSign } from 'node:crypto';
import { mkdtempSync, writeFileSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startGateway, http, openSSE, openWS, API_KEY, sleep } from './lib.mjs';

const dir = mkdtempSync(join(tmpdir(), 'rtgate-jwt-'));
const ossl = (...a) => execFileSync('openssl', a, { stdio: ['ignore', 'pipe', 'pipe'] });
ossl('genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', join(dir, 'rsa.key'));
ossl('pkey', '-in', join(dir, 'rsa.key'), '-pubout', '-out', join(dir, 'rsa.pub'));
ossl('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', join(dir, 'ec.key'));
ossl('pkey', '-in', join(dir, 'ec.key'), '-pubout', '-out', join(dir, 'ec.pub'));
writeFileSync(join(dir, 'hs.secret'), 'file-secret-0123456789abcdef\n');
writeFileSync(join(dir, 'api.keys'), '# backends\nfile-api-key-0123456789abcdef\n\n');
const RSA = readFileSync(join(dir, 'rsa.key')), EC = readFileSync(join(dir, 'ec.key'));
const RSA_PUB = readFileSync(join(dir, 'rsa.pub'), 'utf8');
const HS512 = 'hs512-secret-0123456789abcdef-0123456789abcdef';
test.after(() => rmSync(dir, { recursive: true, force: true }));

const b64 = (x) => Buffer.from(typeof x === 'string' ? x : JSON.stringify(x)).toString('base64url');
const now = () => Math.floor(Date.now() / 1000);
function jwt(header, claims, key) {
  const input = b64(header) + '.' + b64(claims);
  let sig;
  if (header.alg.startsWith('HS')) sig = createHmac('sha' + header.alg.slice(2), key).update(input).digest();
  else if (header.alg === 'RS256') sig = createSign('RSA-SHA256').update(input).sign(key);
  else if (header.alg === 'ES256') sig = edSign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' });
  else sig = Buffer.alloc(0);
  return input + '.' + sig.toString('base64url');
}
const rs = (claims) => jwt({ alg: 'RS256', kid: 'rsa1' }, { sub: 'alice', exp: now() + 600, ...claims }, RSA);
const es = (claims) => jwt({ alg: 'ES256', kid: 'ec1' }, { sub: 'alice', exp: now() + 600, ...claims }, EC);

const config = {
  auth: {
    jwt_secret: undefined, // drop lib.mjs's: no key without a kid, so an unknown kid is refused
    api_keys: undefined, // only those of api_keys_file
    keys: [
      { kid: 'rsa1', alg: 'RS256', public_key_file: join(dir, 'rsa.pub') },
      { kid: 'ec1', alg: 'ES256', public_key_file: join(dir, 'ec.pub') },
      { kid: 'hs1', alg: 'HS512', secret: HS512 },
      { kid: 'hsf', alg: 'HS256', secret_file: join(dir, 'hs.secret') },
    ],
    leeway_s: 30,
    issuer: 'https://id.example',
    audience: 'rtgate',
    default_topics: [],
    default_publish: [],
    api_keys_file: join(dir, 'api.keys'),
  },
};
const good = { iss: 'https://id.example', aud: 'rtgate' };

async function status(gw, token) {
  const r = await http(gw, '/v1/poll?topics=user:alice', { token });
  return [r.status, r.body && (r.body.error || 'ok')];
}

test('keys by kid, algorithm pinned by the key, claims with leeway, issuer and audience', async () => {
  const gw = await startGateway(config);
  try {
    assert.deepEqual(await status(gw, rs(good)), [200, 'ok']);
    assert.deepEqual(await status(gw, es(good)), [200, 'ok']);
    assert.deepEqual(await status(gw, jwt({ alg: 'HS512', kid: 'hs1' }, { sub: 'alice', ...good }, HS512)), [200, 'ok']);
    assert.deepEqual(await status(gw, jwt({ alg: 'HS256', kid: 'hsf' }, { sub: 'alice', ...good }, 'file-secret-0123456789abcdef')), [200, 'ok']);
    // alg none, with and without a signature
    assert.deepEqual(await status(gw, b64({ alg: 'none', kid: 'rsa1' }) + '.' + b64({ sub: 'alice', ...good }) + '.'), [401, 'unsupported algorithm']);
    // HS/RS confusion: HS256 "signed" with the RSA public key under the RSA key's kid
    assert.deepEqual(await status(gw, jwt({ alg: 'HS256', kid: 'rsa1' }, { sub: 'alice', ...good }, RSA_PUB)), [401, 'unsupported algorithm']);
    // a key of another kind than its kid says
    assert.deepEqual(await status(gw, jwt({ alg: 'RS256', kid: 'ec1' }, { sub: 'alice', ...good }, RSA)), [401, 'unsupported algorithm']);
    assert.deepEqual(await status(gw, jwt({ alg: 'RS256', kid: 'nope' }, { sub: 'alice', ...good }, RSA)), [401, 'unknown key']);
    assert.deepEqual(await status(gw, jwt({ alg: 'RS256' }, { sub: 'alice', ...good }, RSA)), [401, 'unsupported algorithm']);
    // tampered: payload swapped under a valid signature
    const t = rs(good).split('.');
    assert.deepEqual(await status(gw, [t[0], b64({ sub: 'mallory', ...good, exp: now() + 600 }), t[2]].join('.')), [401, 'bad signature']);
    const e = es(good).split('.');
    assert.deepEqual(await status(gw, [e[0], b64({ sub: 'mallory', ...good }), e[2]].join('.')), [401, 'bad signature']);
    // time claims with 30 s of leeway
    assert.deepEqual(await status(gw, rs({ ...good, exp: now() - 10 })), [200, 'ok']);
    assert.deepEqual(await status(gw, rs({ ...good, exp: now() - 60 })), [401, 'token expired']);
    assert.deepEqual(await status(gw, rs({ ...good, nbf: now() + 10 })), [200, 'ok']);
    assert.deepEqual(await status(gw, rs({ ...good, nbf: now() + 120 })), [401, 'token not yet valid']);
    assert.deepEqual(await status(gw, rs({ ...good, iat: now() + 120 })), [401, 'token not yet valid']);
    // issuer and audience
    assert.deepEqual(await status(gw, rs({ aud: 'rtgate' })), [401, 'wrong issuer']);
    assert.deepEqual(await status(gw, rs({ iss: 'https://evil.example', aud: 'rtgate' })), [401, 'wrong issuer']);
    assert.deepEqual(await status(gw, rs({ iss: good.iss, aud: 'other' })), [401, 'wrong audience']);
    assert.deepEqual(await status(gw, rs({ iss: good.iss, aud: ['other', 'rtgate'] })), [200, 'ok']);
    // the daemon kept serving: an API key from the keys file publishes
    const p = await http(gw, '/v1/publish', { method: 'POST', headers: { 'x-api-key': 'file-api-key-0123456789abcdef' }, body: { topic: 'room:x', data: 1 } });
    assert.equal(p.status, 200);
    assert.equal((await http(gw, '/v1/publish', { method: 'POST', headers: { 'x-api-key': API_KEY }, body: { topic: 'room:x', data: 1 } })).status, 401);
  } finally {
    assert.equal((await gw.stop()).code, 0, gw.logs());
  }
});

test('grants: "topics" and "publish" claims on every transport; no claim means the safe defaults', async () => {
  const gw = await startGateway(config);
  try {
    const plain = rs(good); // no grants: own inbox only, publish nowhere but inboxes
    const granted = rs({ ...good, topics: ['room:a*', 'user:bob'], publish: ['room:a1'] });
    const read = async (token, topic) => (await http(gw, `/v1/poll?topics=${topic}`, { token })).status;
    assert.equal(await read(plain, 'user:alice'), 200);
    assert.equal(await read(plain, 'room:a1'), 403);
    assert.equal(await read(granted, 'room:a1'), 200);
    assert.equal(await read(granted, 'room:abc'), 200);
    assert.equal(await read(granted, 'room:b'), 403);
    assert.equal(await read(granted, 'user:bob'), 200); // granted explicitly
    assert.equal(await read(granted, 'user:carol'), 403);
    assert.equal((await http(gw, `/v1/longpoll?topics=room:b&timeout=1`, { token: granted })).status, 403);
    const sse = await http(gw, `/v1/sse?topics=room:b&token=${granted}`);
    assert.deepEqual([sse.status, sse.body], [403, { error: 'forbidden topic' }]);

    const ws = await openWS(gw, granted);
    assert.equal((await ws.request({ type: 'subscribe', topic: 'room:a7' })).type, 'ack');
    assert.deepEqual(await ws.request({ type: 'subscribe', topic: 'room:b' }), { type: 'error', rid: 2, error: 'forbidden topic' });
    assert.equal((await ws.request({ type: 'publish', topic: 'room:a1', data: 1 })).type, 'ack');
    assert.deepEqual(await ws.request({ type: 'publish', topic: 'room:a7', data: 1 }), { type: 'error', rid: 4, error: 'forbidden topic' });
    assert.equal((await ws.request({ type: 'send', to: 'carol', data: 1 })).type, 'ack'); // inboxes: always
    await ws.close();

    const post = async (token, body) => { const r = await http(gw, '/v1/messages', { method: 'POST', token, body }); return [r.status, r.body.error || 'ok']; };
    assert.deepEqual(await post(plain, { topic: 'room:a1', data: 1 }), [403, 'forbidden topic']);
    assert.deepEqual(await post(granted, { topic: 'room:a1', data: 1 }), [200, 'ok']);
    assert.deepEqual(await post(plain, { to: 'bob', data: 1 }), [200, 'ok']);
    // malformed grants are refused at the door
    assert.deepEqual(await status(gw, rs({ ...good, topics: 'room:*' })), [401, 'bad grants']);
    assert.deepEqual(await status(gw, rs({ ...good, topics: [1] })), [401, 'bad grants']);
  } finally {
    assert.equal((await gw.stop()).code, 0, gw.logs());
  }
});

test('bad key configuration stops start-up with file, key and reason', async () => {
  const bad = (keys) => JSON.stringify({ auth: { keys } });
  const f = join(dir, 'bad.json');
  const check = (keys) => {
    writeFileSync(f, bad(keys));
    try { execFileSync(process.env.RTGATE_BIN || 'build/rtgate', ['--check-config', '--config', f], { stdio: 'pipe' }); return 'ok'; } catch (e) { return e.stderr.toString().trim(); }
  };
  assert.equal(check([{ kid: 'a', alg: 'RS256', public_key: 'nope' }]), `rtgate: ${f}: auth.keys[0]: not a PEM public key (-----BEGIN PUBLIC KEY-----)`);
  assert.equal(check([{ kid: 'a', alg: 'ES256', public_key_file: join(dir, 'rsa.pub') }]), `rtgate: ${f}: auth.keys[0]: ES256 needs an EC P-256 public key`);
  assert.equal(check([{ kid: 'a', alg: 'HS256', secret: 'short' }]), `rtgate: ${f}: auth.keys[0]: a secret must be at least 16 bytes`);
  assert.equal(check([{ kid: 'a', alg: 'none', secret: 'x'.repeat(20) }]), `rtgate: ${f}: auth.keys[0].alg: must be one of HS256, HS384, HS512, RS256, ES256`);
  assert.equal(check([{ kid: 'a', alg: 'RS256', public_key_file: join(dir, 'rsa.pub') }, { kid: 'a', alg: 'ES256', public_key_file: join(dir, 'ec.pub') }]), `rtgate: ${f}: auth.keys[1].kid: "a" is used twice`);
  assert.equal(check([{ kid: 'a', alg: 'RS256', public_key_file: join(dir, 'rsa.pub') }]), 'ok');
});

test('websocket.allowed_origins: a page of another origin cannot open a WebSocket', async () => {
  const gw = await startGateway({ websocket: { allowed_origins: ['https://app.example.com'] } });
  try {
    const t = gw.token('bob');
    const ok = await openWS(gw, t, { headers: { origin: 'https://app.example.com' } });
    await ok.close();
    const noOrigin = await openWS(gw, t); // not a browser: no Origin header
    await noOrigin.close();
    await assert.rejects(openWS(gw, t, { headers: { origin: 'https://evil.example' } }), (e) => {
      assert.equal(e.status, 403);
      assert.deepEqual(JSON.parse(e.body), { error: 'origin not allowed' });
      return true;
    });
  } finally {
    assert.equal((await gw.stop()).code, 0, gw.logs());
  }
});

test('API keys limited to topic patterns', async () => {
  const limited = 'limited-api-key-0123456789abcdef';
  const gw = await startGateway({ auth: { api_keys: [API_KEY, { key: limited, topics: ['room:news*', 'user:*'] }] } });
  try {
    const pub = async (key, topic) => {
      const r = await http(gw, '/v1/publish', { method: 'POST', headers: { 'x-api-key': key }, body: { topic, data: 1 } });
      return [r.status, r.body.error || 'ok'];
    };
    assert.deepEqual(await pub(limited, 'room:news-1'), [200, 'ok']);
    assert.deepEqual(await pub(limited, 'user:bob'), [200, 'ok']);
    assert.deepEqual(await pub(limited, 'room:other'), [403, 'forbidden topic']);
    assert.deepEqual(await pub(API_KEY, 'room:other'), [200, 'ok']); // an unlimited key
  } finally {
    assert.equal((await gw.stop()).code, 0, gw.logs());
  }
});
