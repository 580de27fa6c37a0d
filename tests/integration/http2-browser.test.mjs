// A real browser (Debian's Chromium, driven by playwright-core) opens ten EventSources and a
// WebSocket from one page. Over HTTP/2 every stream receives its messages on one TCP
// connection; over HTTP/1.1 the browser's six-connections-per-origin limit leaves the rest
// waiting, which is what the h2 run must not show.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chromium } from 'playwright-core';
import { startGateway, sleep, waitFor, API_KEY } from './lib.mjs';
import { testCertificates } from './tls-lib.mjs';

const CHROMIUM = '/usr/bin/chromium';
const skip = !existsSync(CHROMIUM) && !process.env.CI ? 'chromium is not installed' : false;
const tc = skip ? null : testCertificates();
test.after(() => tc?.cleanup());

const STREAMS = 10;

// Established TCP connections to the gateway's port (the browser's side of them).
function connectionsTo(port) {
  const out = execFileSync('ss', ['-Htn', 'state', 'established', `( dport = :${port} )`]).toString();
  return out.split('\n').filter((l) => l.trim()).length;
}

async function publishH1(gw, topic, data) {
  const r = await new Promise((resolve, reject) => {
    const args = ['-sS', '--http1.1', '--cacert', tc.ca, '-H', `x-api-key: ${API_KEY}`, '-H', 'content-type: application/json',
      '-d', JSON.stringify({ topic, data }), `${gw.url}/v1/publish`];
    try { resolve(execFileSync('curl', args).toString()); } catch (e) { reject(e); }
  });
  assert.match(r, /"topic":"/);
}

// Opens the page on the gateway's origin and starts STREAMS EventSources and one WebSocket.
async function openPage(browser, gw) {
  const ctx = await browser.newContext({ ignoreHTTPSErrors: true });
  const page = await ctx.newPage();
  await page.goto(`${gw.url}/healthz`);
  await page.evaluate(({ n, token }) => {
    window.got = Array.from({ length: n }, () => []);
    window.open_ = Array(n).fill(false);
    for (let i = 0; i < n; i++) {
      const es = new EventSource(`/v1/sse?topics=room:b${i}&token=${token}`);
      es.onopen = () => (window.open_[i] = true);
      es.onmessage = (e) => window.got[i].push(JSON.parse(e.data).data);
    }
    window.wsGot = [];
    const ws = (window.ws = new WebSocket(`wss://${location.host}/v1/ws?token=${token}`));
    ws.onclose = (e) => (window.wsErr = 'close ' + e.code);
    ws.onopen = () => ws.send(JSON.stringify({ type: 'subscribe', topic: 'room:bws', rid: 1 }));
    ws.onmessage = (e) => {
      const f = JSON.parse(e.data);
      if (f.type === 'ack') window.wsReady = true;
      if (f.type === 'message') window.wsGot.push(f.data);
    };
  }, { n: STREAMS, token: gw.token('carol') });
  return { ctx, page };
}

test('ten EventSources and a WebSocket in one Chromium page share one HTTP/2 connection', { skip, timeout: 90000 }, async () => {
  const gw = await startGateway({ listen: { tls_cert_file: tc.cert, tls_key_file: tc.key, http2: true } });
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  try {
    const { page } = await openPage(browser, gw);
    await waitFor(async () => (await page.evaluate(() => window.open_.every(Boolean) && window.wsReady === true)), 20000, 'every stream open');
    for (let n = 1; n <= 3; n++) {
      for (let i = 0; i < STREAMS; i++) await publishH1(gw, `room:b${i}`, n);
      await publishH1(gw, 'room:bws', n);
    }
    await waitFor(async () => (await page.evaluate(() => window.got.every((g) => g.length === 3) && window.wsGot.length === 3)), 20000, 'three messages on every stream');
    const got = await page.evaluate(() => ({ sse: window.got, ws: window.wsGot }));
    assert.deepEqual(got.sse, Array.from({ length: STREAMS }, () => [1, 2, 3]));
    assert.deepEqual(got.ws, [1, 2, 3]);
    const proto = await page.evaluate(() => performance.getEntriesByType('navigation')[0].nextHopProtocol);
    assert.equal(proto, 'h2');
    // the page's ten streams and its WebSocket (RFC 8441 over h2) run over one connection
    assert.equal(connectionsTo(gw.port), 1);

    // the server closes the WebSocket with its code (a binary frame: 1003); only that stream
    // ends, the EventSources on the same connection keep receiving
    await page.evaluate(() => window.ws.send(new Uint8Array([1, 2, 3])));
    await waitFor(async () => (await page.evaluate(() => window.wsErr)), 10000, 'the WebSocket closed');
    assert.equal(await page.evaluate(() => window.wsErr), 'close 1003');
    for (let i = 0; i < STREAMS; i++) await publishH1(gw, `room:b${i}`, 4);
    await waitFor(async () => (await page.evaluate(() => window.got.every((g) => g.length === 4))), 20000, 'a fourth message on every stream');
    assert.equal(connectionsTo(gw.port), 1);
  } finally {
    await browser.close();
    assert.equal((await gw.stop()).code, 0, gw.logs());
  }
});

test('control: over HTTP/1.1 the same page gets at most six streams going', { skip, timeout: 90000 }, async () => {
  const gw = await startGateway({ listen: { tls_cert_file: tc.cert, tls_key_file: tc.key } });
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--no-first-run'] });
  try {
    const { page } = await openPage(browser, gw);
    await sleep(3000);
    const open = await page.evaluate(() => window.open_.filter(Boolean).length);
    assert.ok(open <= 6, `${open} EventSources open over HTTP/1.1`);
  } finally {
    await browser.close();
    assert.equal((await gw.stop()).code, 0, gw.logs());
  }
});
