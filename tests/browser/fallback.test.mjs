// Fallback in real Chromium behind a loopback proxy that breaks what real proxies break:
// WebSocket upgrades refused -> the client settles on SSE; responses buffered until they end
// (no streaming) -> it settles on long-polling. Messages flow both ways in each case.
import test from 'node:test';
import assert from 'node:assert/strict';
import { startGateway } from '../integration/lib.mjs';
import { browserSkip, launch, harnessDir, openUser, startProxy } from './lib.mjs';

const skip = browserSkip();

async function chat(alice, bob, tag, n = 5) {
  try {
    await chat1(alice, bob, tag, n);
  } catch (e) {
    console.log('alice: ' + JSON.stringify(await alice.events()) + JSON.stringify(await alice.got()) +
      '\nbob: ' + JSON.stringify(await bob.events()) + JSON.stringify(await bob.got()), alice.logs.slice(-5));
    throw e;
  }
}

async function chat1(alice, bob, tag, n) {
  await alice.page.evaluate(async ([n, tag]) => { for (let i = 0; i < n; i++) await window.client.send('bob', { i, tag }); }, [n, tag]);
  await bob.page.evaluate(async ([n, tag]) => { for (let i = 0; i < n; i++) await window.client.send('alice', { i, tag }); }, [n, tag]);
  await bob.waitCount('user:bob', n);
  await alice.waitCount('user:alice', n);
  assert.deepEqual((await bob.got('user:bob')).map((m) => m.data.i), [...Array(n).keys()]);
  assert.deepEqual((await alice.got('user:alice')).map((m) => m.data.i), [...Array(n).keys()]);
}

for (const [mode, want] of [['no-upgrade', 'sse'], ['buffer', 'longpoll']]) {
  test(`proxy "${mode}": the client falls back to ${want} and works`, { skip, timeout: 180000 }, async () => {
    const gw = await startGateway({ static_dir: harnessDir() });
    const proxy = await startProxy([gw.url], mode);
    const browser = await launch();
    try {
      // every transport allowed, in the default order; short timeouts keep the test quick
      const opts = { connectTimeoutMs: 3000, backoffMinMs: 100, backoffMaxMs: 500, longpollTimeoutS: 10 };
      const alice = await openUser(browser, proxy.url, { token: gw.token('alice'), topics: ['user:alice'], opts });
      const bob = await openUser(browser, proxy.url, { token: gw.token('bob'), topics: ['user:bob'], opts });
      await alice.waitConnected(want, 60000);
      await bob.waitConnected(want, 60000);
      assert.ok(proxy.refused >= 2, 'the WebSocket was tried and refused');
      const ev = await alice.events();
      assert.deepEqual(ev.filter((e) => e.e === 'connected').map((e) => e.transport), [want],
        'connected once, on ' + want + ': ' + JSON.stringify(ev));
      await chat(alice, bob, mode);
      // still on the fallback, with nothing shown twice
      assert.equal(await alice.page.evaluate(() => window.client.transport), want);
      await alice.close();
      await bob.close();
    } finally {
      await browser.close();
      await proxy.close();
      await gw.stop();
    }
  });
}

test('upgrade: once the proxy lets WebSockets through, the client moves up from SSE', { skip, timeout: 180000 }, async () => {
  const gw = await startGateway({ static_dir: harnessDir() });
  const proxy = await startProxy([gw.url], 'no-upgrade');
  const browser = await launch();
  try {
    const opts = { connectTimeoutMs: 3000, backoffMinMs: 100, backoffMaxMs: 500, upgradeMs: 2000 };
    const alice = await openUser(browser, proxy.url, { token: gw.token('alice'), topics: ['user:alice'], opts });
    const bob = await openUser(browser, proxy.url, { token: gw.token('bob'), topics: ['user:bob'], opts });
    await alice.waitConnected('sse', 60000);
    await bob.waitConnected('sse', 60000);
    await chat(alice, bob, 'before', 3);
    proxy.mode = 'pass';
    await alice.waitConnected('websocket', 60000);
    await bob.waitConnected('websocket', 60000);
    await alice.page.evaluate(async () => { for (let i = 3; i < 6; i++) await window.client.send('bob', { i }); });
    await bob.waitCount('user:bob', 6);
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual((await bob.got('user:bob')).map((m) => m.data.i), [0, 1, 2, 3, 4, 5], 'once each, in order, across the switch');
    await alice.close();
    await bob.close();
  } finally {
    await browser.close();
    await proxy.close();
    await gw.stop();
  }
});
