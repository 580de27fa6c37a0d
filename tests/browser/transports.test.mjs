// Each transport forced in turn, in real headless Chromium: two users on two pages exchange
// direct messages both ways and talk in a room; every message arrives once and in order.
import test from 'node:test';
import assert from 'node:assert/strict';
import { startGateway } from '../integration/lib.mjs';
import { browserSkip, launch, harnessDir, openUser } from './lib.mjs';

const skip = browserSkip();

test('browser client, each transport forced', { skip, timeout: 240000 }, async (t) => {
  const gw = await startGateway({ static_dir: harnessDir(), node_id: 'node-a' });
  const browser = await launch();
  try {
    for (const transport of ['websocket', 'sse', 'longpoll', 'poll']) {
      await t.test(transport, async () => {
        const room = `room:${transport}`;
        const opts = { pollMs: 200, longpollTimeoutS: 10 };
        const alice = await openUser(browser, gw.url, { token: gw.token('alice'), transports: [transport], topics: ['user:alice', room], opts });
        const bob = await openUser(browser, gw.url, { token: gw.token('bob'), transports: [transport], topics: ['user:bob', room], opts });
        try {
          await alice.waitConnected(transport);
          await bob.waitConnected(transport);
          const ev = (await alice.events()).find((e) => e.e === 'connected');
          assert.equal(ev.transport, transport);
          assert.equal(ev.node, 'node-a', 'the node is named on every transport');
          // both ways, sequentially per sender but concurrently between them
          const N = 8;
          await Promise.all([
            alice.page.evaluate(async (n) => { for (let i = 0; i < n; i++) await window.client.send('bob', { i, from: 'alice' }); }, N),
            bob.page.evaluate(async (n) => { for (let i = 0; i < n; i++) await window.client.send('alice', { i, from: 'bob' }); }, N),
          ]);
          await Promise.all([
            alice.page.evaluate(async ([n, room]) => { for (let i = 0; i < n; i++) await window.client.publish(room, { i, who: 'alice' }); }, [N, room]),
            bob.page.evaluate(async ([n, room]) => { for (let i = 0; i < n; i++) await window.client.publish(room, { i, who: 'bob' }); }, [N, room]),
          ]);
          await bob.waitCount('user:bob', N);
          await alice.waitCount('user:alice', N);
          await alice.waitCount(room, 2 * N);
          await bob.waitCount(room, 2 * N);
          await new Promise((r) => setTimeout(r, 500)); // nothing extra trickles in
          const toBob = await bob.got('user:bob');
          assert.deepEqual(toBob.map((m) => m.data.i), [...Array(N).keys()], 'in order, once');
          assert.ok(toBob.every((m) => m.from === 'alice'));
          const toAlice = await alice.got('user:alice');
          assert.deepEqual(toAlice.map((m) => m.data.i), [...Array(N).keys()]);
          assert.ok(toAlice.every((m) => m.from === 'bob'));
          const ra = await alice.got(room), rb = await bob.got(room);
          assert.equal(ra.length, 2 * N, 'each room message once');
          assert.deepEqual(ra.map((m) => m.id), rb.map((m) => m.id), 'both see the room in the same order');
          for (const who of ['alice', 'bob'])
            assert.deepEqual(ra.filter((m) => m.data.who === who).map((m) => m.data.i), [...Array(N).keys()]);
          const sorted = [...ra.map((m) => m.id)].sort((x, y) => { const [a1, a2] = x.split('-').map(Number), [b1, b2] = y.split('-').map(Number); return a1 - b1 || a2 - b2; });
          assert.deepEqual(ra.map((m) => m.id), sorted, 'in id order');
          assert.deepEqual((await alice.events()).filter((e) => e.e !== 'connected'), [], 'no disconnects, resets or errors');
        } finally {
          await alice.close();
          await bob.close();
        }
      });
    }

    await t.test('classic script build sets window.RTGate', async () => {
      const ctx = await browser.newContext();
      const page = await ctx.newPage();
      await page.goto(`${gw.url}/harness.html`);
      await page.addScriptTag({ url: '/v1/client.global.js' });
      const token = gw.token('carol');
      const r = await page.evaluate(async (token) => {
        const c = window.RTGate.connect(location.origin, { token });
        const got = new Promise((res) => c.subscribe('user:carol', (m) => res(m.data)));
        await new Promise((res) => c.on('connected', res));
        await c.send('carol', { hello: 1 });
        const data = await got;
        c.close();
        return { data, transport: c.transport === null ? 'closed' : c.transport, keys: Object.keys(window.RTGate).sort() };
      }, token);
      assert.deepEqual(r.data, { hello: 1 });
      assert.deepEqual(r.keys, ['Client', 'compareIds', 'connect', 'joinCursor', 'splitCursor']);
      await ctx.close();
    });
  } finally {
    await browser.close();
    await gw.stop();
  }
});
