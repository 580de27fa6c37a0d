// GET /v1/ice: the ICE servers for RTCPeerConnection, with TURN REST API credentials
// (username "<expiry>:<user>", credential base64(HMAC-SHA1(secret, username))) for the caller.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { http, waitFor } from './lib.mjs';
import { withGateway, nowS } from './helpers.mjs';
import { tokenFor } from './redis-lib.mjs';

const TURN_SECRET = 'ice-test-turn-secret-0123456789';

test('GET /v1/ice needs a token', async () => {
  await withGateway({}, async (gw) => {
    const r = await http(gw, '/v1/ice');
    assert.equal(r.status, 401);
    assert.equal(r.text, '{"error":"missing token"}');
    const bad = await http(gw, '/v1/ice', { token: 'x.y.z' });
    assert.equal(bad.status, 401);
    const post = await http(gw, '/v1/ice', { method: 'POST', token: tokenFor('alice'), body: {} });
    assert.equal(post.status, 405);
  });
});

test('GET /v1/ice without webrtc config: no servers (host candidates only)', async () => {
  await withGateway({}, async (gw) => {
    const r = await http(gw, '/v1/ice', { token: tokenFor('alice') });
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, { iceServers: [], ttl: 86400 });
    assert.equal(r.headers.get('cache-control'), 'no-store');
  });
});

test('GET /v1/ice: STUN URLs as given, TURN with per-user credentials of the TURN REST API scheme', async () => {
  const webrtc = {
    stun_urls: ['stun:stun.example.com:3478'],
    turn_urls: ['turn:127.0.0.1:3478?transport=udp', 'turn:127.0.0.1:3478?transport=tcp'],
    turn_secret: TURN_SECRET,
    turn_ttl_s: 600,
  };
  await withGateway({ webrtc }, async (gw) => {
    const t0 = nowS();
    const r = await http(gw, '/v1/ice?token=' + tokenFor('alice'));
    assert.equal(r.status, 200, r.text);
    const [stun, turn] = r.body.iceServers;
    assert.equal(r.body.iceServers.length, 2);
    assert.deepEqual(stun, { urls: webrtc.stun_urls });
    assert.deepEqual(turn.urls, webrtc.turn_urls);
    assert.equal(r.body.ttl, 600);
    const [expiry, user] = turn.username.split(':');
    assert.equal(user, 'alice');
    assert.ok(Number(expiry) >= t0 + 600 && Number(expiry) <= nowS() + 600, turn.username);
    assert.equal(turn.credential, createHmac('sha1', TURN_SECRET).update(turn.username).digest('base64'));
    // another user gets other credentials; nobody gets the secret
    const b = await http(gw, '/v1/ice', { token: tokenFor('bob') });
    assert.match(b.body.iceServers[1].username, /^\d+:bob$/);
    assert.notEqual(b.body.iceServers[1].credential, turn.credential);
    assert.equal(r.text.includes(TURN_SECRET), false);
    assert.equal(gw.logs().includes(TURN_SECRET), false);
  });
});

test('GET /v1/ice: a reload (SIGHUP) applies new webrtc keys', async () => {
  const webrtc = { turn_urls: ['turn:127.0.0.1:3478'], turn_secret: TURN_SECRET };
  await withGateway({ webrtc }, async (gw) => {
    const cf = JSON.parse(readFileSync(gw.cfgPath, 'utf8'));
    cf.webrtc = { stun_urls: ['stun:127.0.0.1:3479'], turn_urls: ['turn:127.0.0.1:3480'], turn_secret: 'another-turn-secret-0123456789', turn_ttl_s: 120 };
    writeFileSync(gw.cfgPath, JSON.stringify(cf));
    gw.proc.kill('SIGHUP');
    const r = await waitFor(async () => {
      const x = await http(gw, '/v1/ice', { token: tokenFor('alice') });
      return x.body.ttl === 120 && x;
    }, 10000, 'the reloaded webrtc keys');
    const [stun, turn] = r.body.iceServers;
    assert.deepEqual(stun, { urls: ['stun:127.0.0.1:3479'] });
    assert.deepEqual(turn.urls, ['turn:127.0.0.1:3480']);
    assert.equal(turn.credential, createHmac('sha1', 'another-turn-secret-0123456789').update(turn.username).digest('base64'));
  });
});
