// Graceful drain on SIGTERM: /readyz turns 503 at once; during shutdown_grace_ms new clients
// are still served (the balancer's health check takes the node out first); then new clients
// get 503 and existing ones are told to reconnect at random times over shutdown_spread_ms
// (WebSocket close 1012 after its queued messages, SSE a retry: hint then the end, long-polls
// answered); nothing accepted is lost; the process exits 0 before the deadline.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startGateway, http, openSSE, openWS, publish, sleep } from './lib.mjs';

test('SIGTERM: readyz 503 at once, grace, then a spread of reconnect requests, exit 0', async () => {
  const gw = await startGateway({ shutdown_grace_ms: 1000, shutdown_spread_ms: 1500, shutdown_timeout_ms: 6000 });
  const t = gw.token('bob');
  const wss = [];
  for (let i = 0; i < 20; i++) {
    const c = await openWS(gw, t);
    await c.request({ type: 'subscribe', topic: 'room:d' });
    wss.push(c);
  }
  const sse = openSSE(gw, `token=${t}&topics=room:d`);
  await sse.waitFor((s) => s.raw.includes('retry:'));
  const lp = http(gw, '/v1/longpoll?topics=room:d&timeout=30', { token: t });
  await sleep(200);

  const t0 = Date.now();
  gw.proc.kill('SIGTERM');
  await sleep(100);
  assert.deepEqual((await http(gw, '/readyz')).body, { status: 'draining' });
  // still served during the grace period: a publish, and a new poll
  const during = await publish(gw, 'room:d', 'during grace');
  assert.equal((await http(gw, '/v1/poll?topics=room:d', { token: t })).status, 200);
  const lpr = await lp; // the long-poll held before SIGTERM got the message
  assert.equal(lpr.status, 200);
  assert.deepEqual(lpr.body.messages.map((m) => m.id), [during.id]);

  await sleep(1200 - (Date.now() - t0));
  const late = await http(gw, '/v1/poll?topics=room:d', { token: t });
  assert.equal(late.status, 503);
  assert.deepEqual(late.body, { error: 'shutting down' });

  const closes = await Promise.all(wss.map((c) => c.closedP.then((cl) => ({ ...cl, at: Date.now() - t0 }))));
  for (const cl of closes) assert.deepEqual([cl.code, cl.reason], [1012, 'server restarting: reconnect']);
  const ats = closes.map((c) => c.at).sort((a, b) => a - b);
  assert.ok(ats[0] >= 900, `first close at ${ats[0]} ms: before the grace ended`);
  assert.ok(ats.at(-1) - ats[0] >= 300, `closes not spread: ${ats.join(',')}`);
  for (const c of wss) assert.deepEqual(c.messages().map((m) => m.id), [during.id]); // nothing lost

  await sse.ended;
  const tail = sse.raw.slice(sse.raw.indexOf(during.id));
  assert.match(tail, /retry: \d+\n\n$/, 'the stream ends with a retry: hint');
  assert.deepEqual(sse.messages().map((m) => m.id), [during.id]);

  const r = await gw.stop();
  assert.equal(r.code, 0, gw.logs());
  assert.ok(Date.now() - t0 < 6000, 'exited before the deadline');
});
