// Token expiry on long-lived connections: a WebSocket is asked for a fresh token
// ({"type":"refresh"}) and closed with 4001 if none comes within auth.refresh_grace_s; an SSE
// stream ends with "event: expired" so the client reconnects with a fresh token.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startGateway, openSSE, openWS, publish, sleep } from './lib.mjs';

test('expired tokens: WebSocket refresh or close 4001; SSE ends with event: expired', async () => {
  const gw = await startGateway({ auth: { refresh_grace_s: 2 } });
  try {
    const keeper = await openWS(gw, gw.token('bob', 2));
    await keeper.request({ type: 'subscribe', topic: 'user:bob' });
    const quitter = await openWS(gw, gw.token('bob', 2));
    const sse = openSSE(gw, `token=${gw.token('bob', 2)}`);
    await sse.waitFor((s) => s.raw.includes('retry:'));

    await keeper.waitFor((c) => c.frames.some((f) => f.type === 'refresh'), 10000);
    assert.deepEqual(keeper.frames.find((f) => f.type === 'refresh'), { type: 'refresh', grace_s: 2 });
    assert.deepEqual(await keeper.request({ type: 'refresh', token: gw.token('alice', 60) }),
      { type: 'error', rid: 2, error: 'token is for another user' });
    assert.deepEqual(await keeper.request({ type: 'refresh', token: 'nope' }), { type: 'error', rid: 3, error: 'malformed token' });
    assert.deepEqual(await keeper.request({ type: 'refresh', token: gw.token('bob', 60) }), { type: 'ack', rid: 4 });

    const closed = await Promise.race([quitter.closedP, sleep(12000).then(() => null)]);
    assert.deepEqual(closed, { code: 4001, reason: 'token expired' });
    await sse.ended;
    assert.match(sse.raw, /event: expired\ndata: \{"error":"token expired"\}\n\n$/);

    await sleep(2500); // past the grace: the refreshed one stays, and still receives
    assert.equal(keeper.closed, null);
    const p = await publish(gw, 'user:bob', 'still here');
    await keeper.waitFor((c) => c.messages().some((m) => m.id === p.id));
    await keeper.close();
  } finally {
    assert.equal((await gw.stop()).code, 0, gw.logs());
  }
});
