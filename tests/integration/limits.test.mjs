// Abuse limits, each refused with its documented answer while a well-behaved client (from
// another loopback address) keeps being served: streams per address, requests per second per
// address, and publish floods on a WebSocket.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import nodeHttp from 'node:http';
import WebSocket from 'ws';
import { startGateway, http, openWS, sleep } from './lib.mjs';

function get(gw, path, localAddress, headers = {}) {
  return new Promise((resolve) => {
    const req = nodeHttp.get({ host: '127.0.0.1', port: gw.port, path, localAddress, headers, agent: false }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }));
      if (res.headers['content-type'] === 'text/event-stream') resolve({ status: res.statusCode, res, req });
    });
    req.on('error', (e) => resolve({ status: 0, error: e.message }));
  });
}

test('per-address stream limit and request rate: 429, others unaffected', async () => {
  const gw = await startGateway({ limits: { max_connections_per_ip: 20, requests_per_ip_per_s: 50 } });
  const t = gw.token('bob');
  const open = [];
  try {
    let refused = 0, ok = 0;
    for (let i = 0; i < 40; i++) {
      const r = await get(gw, `/v1/sse?token=${t}`, '127.0.0.1');
      if (r.status === 200) { ok++; open.push(r); } else {
        refused++;
        assert.equal(r.status, 429);
        assert.deepEqual(JSON.parse(r.body), { error: 'too many connections from your address' });
        assert.equal(r.headers['retry-after'], '5');
      }
    }
    assert.deepEqual([ok, refused], [20, 20]);
    // a WebSocket from the same address is refused too; from another one it works
    await assert.rejects(openWS(gw, t), (e) => e.status === 429);
    const other = new WebSocket(`ws://127.0.0.1:${gw.port}/v1/ws?token=${t}`, { localAddress: '127.0.0.2' });
    await new Promise((r, j) => { other.on('open', r); other.on('error', j); });
    other.close();
    // closing one frees a place
    open.pop().req.destroy();
    await sleep(2500);
    const again = await get(gw, `/v1/sse?token=${t}`, '127.0.0.1');
    assert.equal(again.status, 200);
    open.push(again);

    // request rate: a burst beyond 50/s gets 429 with retry-after, another address does not
    await sleep(1100);
    const burst = await Promise.all(Array.from({ length: 120 }, () => get(gw, '/healthz', '127.0.0.3')));
    const codes = burst.map((r) => r.status);
    assert.ok(codes.filter((c) => c === 200).length <= 60, `too many allowed: ${codes.filter((c) => c === 200).length}`);
    const limited = burst.find((r) => r.status === 429);
    assert.ok(limited, 'nothing was rate limited');
    assert.deepEqual(JSON.parse(limited.body), { error: 'too many requests' });
    assert.equal(limited.headers['retry-after'], '1');
    assert.equal((await get(gw, '/healthz', '127.0.0.4')).status, 200);
  } finally {
    for (const o of open) o.req.destroy();
    assert.equal((await gw.stop()).code, 0, gw.logs());
  }
});

test('publish flood on a WebSocket: "rate limited" replies, then close 1008', async () => {
  const gw = await startGateway({ limits: { publish_rate: 10, publish_burst: 20 } });
  try {
    const c = await openWS(gw, gw.token('bob'));
    const good = await openWS(gw, gw.token('carol'));
    await good.request({ type: 'subscribe', topic: 'room:f' });
    for (let i = 0; i < 100; i++) c.send({ type: 'publish', topic: 'room:f', data: i, rid: i + 1 });
    const closed = await Promise.race([c.closedP, sleep(10000).then(() => null)]);
    assert.deepEqual(closed, { code: 1008, reason: 'publish flood' });
    const acks = c.frames.filter((f) => f.type === 'ack').length;
    const limited = c.frames.filter((f) => f.type === 'error' && f.error === 'rate limited').length;
    assert.ok(acks >= 20 && acks <= 22, `acks ${acks}`);
    assert.ok(limited >= 19 && limited <= 21, `rate limited ${limited}`);
    // the well-behaved subscriber got exactly what was accepted, and is still served
    await good.waitFor((x) => x.messages().length === acks);
    assert.equal((await good.request({ type: 'publish', topic: 'room:f', data: 'ok' })).type, 'ack');
    await good.close();
  } finally {
    assert.equal((await gw.stop()).code, 0, gw.logs());
  }
});
