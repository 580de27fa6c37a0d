// Slowloris: clients that open connections and send their headers (or body) a byte at a time
// are cut after limits.request_timeout_s, while a well-behaved client keeps being served.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { startGateway, http, sleep } from './lib.mjs';

test('slow headers and slow bodies are cut at request_timeout_s; others are served meanwhile', async () => {
  const gw = await startGateway({ limits: { request_timeout_s: 2 } });
  const socks = [];
  try {
    const closedAt = [];
    const t0 = Date.now();
    for (let i = 0; i < 100; i++) {
      const s = net.connect(gw.port, '127.0.0.1');
      socks.push(s);
      s.on('error', () => {});
      s.on('close', () => closedAt.push(Date.now() - t0));
      s.write(i % 2 ? 'GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ' // headers never finished
        : 'POST /v1/publish HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\nX-API-Key: k\r\n\r\n{'); // body never finished
    }
    const drip = setInterval(() => socks.forEach((s) => !s.destroyed && s.write('a')), 500);
    // a normal client is served while they hang on
    for (let i = 0; i < 5; i++) {
      assert.equal((await http(gw, '/healthz')).status, 200);
      await sleep(200);
    }
    const t1 = Date.now();
    while (closedAt.length < socks.length && Date.now() - t1 < 15000) await sleep(100);
    clearInterval(drip);
    assert.equal(closedAt.length, socks.length, 'some slow connections were never cut');
    assert.ok(Math.max(...closedAt) < 8000, `cut too late: ${Math.max(...closedAt)} ms`);
    assert.equal((await http(gw, '/healthz')).status, 200);
  } finally {
    socks.forEach((s) => s.destroy());
    assert.equal((await gw.stop()).code, 0, gw.logs());
  }
});
