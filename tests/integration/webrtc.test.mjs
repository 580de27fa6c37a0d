// WebRTC through rtgate in a real browser: headless Chromium (two browser contexts = two
// users) runs the demo page docker/demo/call.html and client/rtgate-call.js, signaling through
// the page's rtgate.js client (/v1/client.js, on the transport the test forces) or through
// rtgate-call.js's own WebSocket; rtgate carries the signaling (ephemeral sends) and serves
// the TURN credentials (GET /v1/ice); a real coturn
// on 127.0.0.1 relays the media. Every call uses iceTransportPolicy "relay", so all traffic
// stays on loopback and the call can only connect through coturn with valid credentials.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startGateway, waitFor } from './lib.mjs';
import { tokenFor } from './redis-lib.mjs';
import { requireWebrtcTools, startCoturn, startChromium, openDemo, sleep } from './webrtc-lib.mjs';

const SECRET = 'webrtc-test-turn-secret-0123456789';
let turn, chrome;

before(async () => {
  requireWebrtcTools();
  turn = await startCoturn(SECRET);
  chrome = await startChromium();
});

after(async () => {
  if (chrome) await chrome.close();
  if (turn) await turn.stop();
});

async function withCall({ secret = SECRET, query = {}, queryA = {}, queryB = {} } = {}, fn) {
  const gw = await startGateway({ webrtc: { turn_urls: [turn.url], turn_secret: secret, turn_ttl_s: 600 } });
  const pages = [];
  try {
    const a = await openDemo(chrome, gw, tokenFor('alice'), { relay: '1', peer: 'bob', ...query, ...queryA });
    pages.push(a);
    const b = await openDemo(chrome, gw, tokenFor('bob'), { relay: '1', ...query, ...queryB });
    pages.push(b);
    await fn({ gw, a, b });
  } catch (e) {
    // printed as well: the runner shows the error's stack, made before this was appended
    const why = pages.map((p, i) => `\n--- page ${i ? 'bob' : 'alice'} console ---\n` + p.logs.slice(-30).join('\n')).join('')
      + '\n--- rtgate log ---\n' + gw.logs().slice(-2000) + '\n--- coturn log ---\n' + turn.log().slice(-2000);
    e.message += why;
    console.error(why);
    throw e;
  } finally {
    for (const p of pages) await p.ctx.close();
    const r = await gw.stop();
    assert.equal(r.code, 0, gw.logs());
  }
}

// A calls B (the demo's Call button), B accepts; resolves once both see the call connected.
async function connect(a, b) {
  await a.page.click('#call');
  await b.page.waitForFunction(() => window.demo.incoming, null, { timeout: 10000 });
  await b.page.click('#accept');
  for (const p of [a, b])
    await p.page.waitForFunction(() => window.demo.state === 'connected', null, { timeout: 45000 });
}

// Both ways over the DataChannel, in order: @n messages from each side.
async function chat(a, b, n = 1) {
  for (const p of [a, b])
    await p.page.waitForFunction(() => document.getElementById('chanstate').textContent === 'open', null, { timeout: 10000 });
  for (const [from, to, who] of [[a, b, 'alice'], [b, a, 'bob']]) {
    const sent = Array.from({ length: n }, (_, i) => (n === 1 ? `hello from ${who}` : `${who} ${i}`));
    for (const t of sent) {
      await from.page.fill('#text', t);
      await from.page.click('#send');
    }
    await to.page.waitForFunction((k) => window.demo.received.length >= k, n, { timeout: 10000 });
    assert.deepEqual((await to.demo()).received, sent);
  }
}

test('A calls B through rtgate and coturn: the DataChannel opens and carries messages both ways', async () => {
  // signaling over rtgate-call.js's own WebSocket (WsSignaling)
  await withCall({ query: { transport: 'ws' } }, async ({ a, b }) => {
    await connect(a, b);
    await chat(a, b);
    // the path is the relay on loopback, and the page says so
    for (const p of [a, b]) {
      await p.page.waitForFunction(() => window.demo.path, null, { timeout: 10000 });
      const { path } = await p.demo();
      assert.equal(path.relayed, true, JSON.stringify(path));
      assert.equal(path.local, 'relay', JSON.stringify(path));
      assert.match(path.localAddress, /^127\.0\.0\.1:/);
      assert.match(await p.page.textContent('#path'), /^relayed \(TURN\)/);
    }
    // coturn allocated relays for both users, with the credentials /v1/ice handed out
    for (const user of ['alice', 'bob'])
      assert.match(turn.log(), new RegExp(`user <\\d+:${user}>: incoming packet ALLOCATE processed, success`));
    // hang up: the other side hears it through rtgate
    await a.page.click('#hangup');
    await b.page.waitForFunction(() => /^ended/.test(window.demo.state), null, { timeout: 10000 });
  });
});

test('signaling through the rtgate.js client off WebSocket: alice on SSE + POST, bob on long-polling + POST', async () => {
  await withCall({ queryA: { transport: 'sse' }, queryB: { transport: 'longpoll' } }, async ({ a, b }) => {
    assert.equal((await a.demo()).transport, 'sse');
    assert.equal((await b.demo()).transport, 'longpoll');
    await connect(a, b);
    await chat(a, b, 5);
    for (const p of [a, b]) {
      await p.page.waitForFunction(() => window.demo.path, null, { timeout: 10000 });
      assert.equal((await p.demo()).path.local, 'relay');
    }
    assert.match(turn.log(), /user <\d+:bob>: incoming packet ALLOCATE processed, success/);
    assert.deepEqual((await a.demo()).errors, []);
    assert.deepEqual((await b.demo()).errors, []);
    // the clients stayed on their transports all along
    assert.equal(await a.page.evaluate(() => window.demo.rt.transport), 'sse');
    assert.equal(await b.page.evaluate(() => window.demo.rt.transport), 'longpoll');
    await b.page.click('#hangup');
    await a.page.waitForFunction(() => /^ended/.test(window.demo.state), null, { timeout: 10000 });
    // neither page opened a WebSocket: the signaling went by POST /v1/messages (ephemeral) and
    // came back on alice's SSE stream and bob's held long-polls
    for (const p of [a, b]) {
      assert.deepEqual(p.sockets, [], 'no WebSocket');
      const posts = p.requests.filter((r) => r.startsWith('POST /v1/messages {'));
      assert.ok(posts.length >= 3, 'offer or answer, candidates, hangup by POST: ' + posts.length);
      assert.ok(posts.every((r) => r.includes('"ephemeral":true')));
    }
    assert.ok(a.requests.some((r) => r.startsWith('GET /v1/sse?')));
    assert.ok(b.requests.some((r) => r.startsWith('GET /v1/longpoll?')));
  });
});

test('with the fake camera, a video track arrives and frames are decoded', async () => {
  await withCall({ query: { video: '1' } }, async ({ a, b }) => {
    await connect(a, b);
    await b.page.waitForFunction(() => window.demo.tracks > 0, null, { timeout: 10000 });
    const decoded = () => b.page.evaluate(async () => {
      let n = 0;
      (await window.demo.call.pc.getStats()).forEach((s) => {
        if (s.type === 'inbound-rtp' && s.kind === 'video') n = s.framesDecoded || 0;
      });
      return n;
    });
    await waitFor(async () => (await decoded()) > 5, 20000, 'decoded video frames at bob', 250);
    const size = await b.page.waitForFunction(() => {
      const v = document.getElementById('remote');
      return v.videoWidth > 0 ? [v.videoWidth, v.videoHeight] : null;
    }, null, { timeout: 10000 });
    const [w, h] = await size.jsonValue();
    assert.ok(w > 0 && h > 0);
    // both directions: bob's answer carried his fake camera too
    await a.page.waitForFunction(() => window.demo.tracks > 0, null, { timeout: 10000 });
  });
});

test('with a wrong TURN secret in rtgate the relay-only call does not connect', async () => {
  await withCall({ secret: 'not-the-coturn-secret-0123456789' }, async ({ a, b }) => {
    await a.page.click('#call');
    await b.page.waitForFunction(() => window.demo.incoming, null, { timeout: 10000 });
    await b.page.click('#accept');
    // signaling worked (B got the offer, A the answer), but coturn refuses the credentials
    // (401), so with the relay policy ICE has no candidate at all: give it time to be sure
    for (const p of [a, b])
      await p.page.waitForFunction(() => window.demo.errors.some((e) => /^ice 401/.test(e)), null, { timeout: 15000 });
    await sleep(5000);
    for (const p of [a, b]) {
      const d = await p.demo();
      assert.notEqual(d.state, 'connected', JSON.stringify(d));
      assert.equal(d.path, null);
      assert.equal(await p.page.textContent('#chanstate'), 'closed');
    }
  });
});

test('calling an offline user is refused by rtgate: "recipient offline"', async () => {
  await withCall({}, async ({ a }) => {
    await a.page.fill('#peer', 'carol');
    await a.page.click('#call');
    await a.page.waitForFunction(() => window.demo.state === 'refused', null, { timeout: 10000 });
    assert.equal(await a.page.textContent('#error'), 'recipient offline');
  });
});
