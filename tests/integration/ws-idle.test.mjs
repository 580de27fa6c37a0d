// WebSocket keep-alive: the server pings a silent connection after websocket.ping_interval_s
// and hangs up one that does not answer by websocket.idle_timeout_s; one that answers stays.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { startGateway, sleep } from './lib.mjs';

function connect(gw, token, opts) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${gw.port}/v1/ws?token=${token}`, opts);
    const c = { ws, pings: 0, closed: null };
    c.closedP = new Promise((r) => ws.on('close', (code) => { c.closed = { code, at: Date.now() }; r(c.closed); }));
    ws.on('ping', () => c.pings++);
    ws.on('open', () => resolve(c));
    ws.on('error', reject);
  });
}

test('a peer that never answers pings is hung up; one that answers is kept', async () => {
  const gw = await startGateway({ websocket: { ping_interval_s: 1, idle_timeout_s: 3 } });
  try {
    const t = gw.token('bob');
    const dead = await connect(gw, t, { autoPong: false });
    const alive = await connect(gw, t); // ws answers pings by itself
    const t0 = Date.now();
    await Promise.race([dead.closedP, sleep(15000)]);
    assert.ok(dead.closed, 'the silent peer was not hung up within 15 s');
    assert.ok(dead.pings >= 1, 'it was pinged first');
    assert.ok(Date.now() - t0 >= 2000, 'not before the idle timeout');
    await sleep(1500);
    assert.equal(alive.closed, null, 'the answering peer must stay connected');
    assert.ok(alive.pings >= 2);
    alive.ws.close();
    await alive.closedP;
  } finally {
    assert.equal((await gw.stop()).code, 0, gw.logs());
  }
});
