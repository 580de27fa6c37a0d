import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startGateway, http, openSSE, openWS, publish } from './lib.mjs';

test('a message from alice reaches bob over SSE and WebSocket', async () => {
  const gw = await startGateway();
  try {
    const alice = gw.token('alice'), bob = gw.token('bob');
    const sse = openSSE(gw, `token=${bob}`);
    await sse.waitFor((s) => s.raw.includes('retry:'));
    const ws = await openWS(gw, bob);
    assert.equal((await ws.request({ type: 'subscribe', topic: 'user:bob' })).type, 'ack');
    const r = await http(gw, '/v1/messages', { method: 'POST', token: alice, body: { to: 'bob', data: { text: 'hi' } } });
    assert.equal(r.status, 200);
    assert.deepEqual(Object.keys(r.body).sort(), ['id', 'topic']);
    await sse.waitFor((s) => s.messages().length === 1);
    await ws.waitFor((c) => c.messages().length === 1);
    const m = sse.messages()[0];
    assert.equal(m.id, r.body.id);
    assert.equal(m.from, 'alice');
    assert.deepEqual(m.data, { text: 'hi' });
    assert.equal(ws.messages()[0].id, r.body.id);
    await publish(gw, 'room:1', 1);
    await sse.close();
    await ws.close();
  } finally {
    const r = await gw.stop();
    assert.equal(r.code, 0, gw.logs());
  }
});
