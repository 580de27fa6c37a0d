// SIGHUP reloads what can change at run time without dropping connections: JWT secret, API
// keys, limits, log level; start-up-only keys are kept (with a warning); a bad file is refused
// and the running config stays in force.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { startGateway, http, openWS, publish, sleep, API_KEY, waitFor as until } from './lib.mjs';


test('SIGHUP: new secret and limits apply, connections stay, bad files are refused', async () => {
  const gw = await startGateway();
  try {
    const oldTok = gw.token('bob');
    const ws = await openWS(gw, oldTok);
    await ws.request({ type: 'subscribe', topic: 'room:r' });
    const cf = JSON.parse(readFileSync(gw.cfgPath, 'utf8'));

    cf.auth.jwt_secret = 'rotated-secret-0123456789abcdef';
    cf.limits.max_message_bytes = 100;
    cf.listen.port = 1; // start-up only: kept, with a warning
    writeFileSync(gw.cfgPath, JSON.stringify(cf));
    gw.proc.kill('SIGHUP');
    await until(() => gw.logs().includes('reloaded'), 5000, 'reload');
    assert.match(gw.logs(), /listen\.port changed; it takes effect at the next restart/);

    const r1 = await http(gw, '/v1/poll?topics=room:r', { token: oldTok });
    assert.equal(r1.status, 401);
    assert.deepEqual(r1.body, { error: 'bad signature' });
    const newTok = gw.token('bob'); // minted from the rewritten file
    assert.equal((await http(gw, '/v1/poll?topics=room:r', { token: newTok })).status, 200);
    const big = await http(gw, '/v1/publish', { method: 'POST', headers: { 'x-api-key': API_KEY }, body: { topic: 'room:r', data: 'x'.repeat(200) } });
    assert.equal(big.status, 413);
    // the WebSocket opened with the old token is still there and still receives
    const p = await publish(gw, 'room:r', 'after reload');
    await ws.waitFor((c) => c.messages().some((m) => m.id === p.id));
    assert.equal(ws.closed, null);

    // a broken file: refused, the running config stays
    writeFileSync(gw.cfgPath, '{"listen": ');
    gw.proc.kill('SIGHUP');
    await until(() => gw.logs().includes('reload refused'), 5000, 'refusal');
    assert.equal((await http(gw, '/v1/poll?topics=room:r', { token: newTok })).status, 200);
    assert.equal((await http(gw, '/healthz')).status, 200);
    cf.listen.port = gw.port;
    writeFileSync(gw.cfgPath, JSON.stringify(cf)); // let stop() and token() read a good file
    await ws.close();
  } finally {
    assert.equal((await gw.stop()).code, 0, gw.logs());
  }
});
