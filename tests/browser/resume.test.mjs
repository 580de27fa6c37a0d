// Resume in real Chromium. Two nodes on one Redis behind a loopback proxy: the page's node is
// killed (SIGKILL) while messages are being published; the client reconnects through the
// proxy to the other node and resumes from its cursor: every message shown once, in order.
// And with a small history: a client cut off while more than history.size messages pass gets
// the reset event, then the retained messages.
import test from 'node:test';
import assert from 'node:assert/strict';
import { startGateway, publish } from '../integration/lib.mjs';
import { requireRedis, withCluster, tryPublish } from '../integration/redis-lib.mjs';
import { browserSkip, launch, harnessDir, openUser, startProxy } from './lib.mjs';

const skip = browserSkip();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

for (const transport of ['websocket', 'sse', 'longpoll']) {
  test(`node killed mid-stream (${transport}): every message once, in order, from the other node`, { skip, timeout: 240000 }, async () => {
    requireRedis();
    await withCluster({ nodes: 2, overrides: { static_dir: harnessDir() } }, async (cl) => {
      const [a, b] = cl.nodes;
      const bPoll = await fetch(`${b.url}/v1/poll?topics=room:x`, { headers: { authorization: `Bearer ${b.token('x')}` } });
      b.nodeId = bPoll.headers.get('x-rtgate-node');
      const proxy = await startProxy([a.url, b.url], 'pass');
      const browser = await launch();
      try {
        const room = `room:resume-${transport}`;
        const opts = { connectTimeoutMs: 4000, backoffMinMs: 100, backoffMaxMs: 1000, longpollTimeoutS: 10 };
        const bob = await openUser(browser, proxy.url, { token: a.token('bob'), transports: [transport], topics: [room], opts });
        await bob.waitConnected(transport);
        const first = (await bob.events()).find((e) => e.e === 'connected');
        const N = 60;
        let published = 0;
        const publisher = (async () => {
          for (let i = 0; i < N; i++) {
            // through node b, which stays up; retried if Redis is briefly busy
            for (let tries = 0; ; tries++) {
              const r = await tryPublish(b, room, { i });
              if (r.status === 200) break;
              if (tries > 50) throw new Error('publish failed: ' + JSON.stringify(r));
              await sleep(50);
            }
            published++;
            await sleep(25);
          }
        })();
        while (published < 15) await sleep(10);
        await bob.waitCount(room, 5);
        a.proc.kill('SIGKILL');
        await publisher;
        await bob.waitCount(room, N, 60000).catch(async (e) => {
          console.log('DEBUG', JSON.stringify(await bob.events()) + '\n' + (await bob.got(room)).map((m) => m.data.i).join(',') + '\n' + bob.logs.slice(-5).join('\n'));
          throw e;
        });
        await sleep(500);
        const got = await bob.got(room);
        assert.deepEqual(got.map((m) => m.data.i), [...Array(N).keys()], 'once each, in order');
        const ev = await bob.events();
        const conns = ev.filter((e) => e.e === 'connected');
        assert.equal(await bob.page.evaluate(() => window.client.transport), transport);
        assert.equal(await bob.page.evaluate(() => window.client.node), b.nodeId, 'now on the other node');
        assert.notEqual(first.node, b.nodeId);
        if (transport !== 'longpoll' || conns.length > 1) {
          // a stream is cut and reconnects; a long-poll between two requests may just carry on
          assert.ok(conns.length >= 2, 'reconnected: ' + JSON.stringify(ev));
          assert.equal(conns.at(-1).node, b.nodeId);
          assert.ok(ev.some((e) => e.e === 'disconnected'));
        }
        assert.equal(ev.filter((e) => e.e === 'reset').length, 0, 'no history was lost');
        await bob.close();
      } finally {
        await browser.close();
        await proxy.close();
      }
    });
  });
}

for (const transport of ['websocket', 'sse', 'poll']) {
  test(`history exceeded while cut off (${transport}): the page gets reset, then what is retained`, { skip, timeout: 180000 }, async () => {
    const gw = await startGateway({ static_dir: harnessDir(), history: { size: 5 } });
    const proxy = await startProxy([gw.url], 'pass');
    const browser = await launch();
    try {
      const room = 'room:small';
      const opts = { connectTimeoutMs: 3000, backoffMinMs: 200, backoffMaxMs: 1000, pollMs: 200 };
      const bob = await openUser(browser, proxy.url, { token: gw.token('bob'), transports: [transport], topics: [room], opts });
      await bob.waitConnected(transport);
      for (let i = 0; i < 3; i++) await publish(gw, room, { i });
      await bob.waitCount(room, 3);
      proxy.mode = 'down';
      proxy.cut();
      await bob.page.waitForFunction(() => window.events.some((e) => e.e === 'disconnected'), null, { timeout: 30000 });
      for (let i = 3; i < 20; i++) await publish(gw, room, { i });
      proxy.mode = 'pass';
      await bob.page.waitForFunction(() => window.events.some((e) => e.e === 'reset'), null, { timeout: 60000 });
      await bob.waitCount(room, 3 + 5);
      await sleep(500);
      const ev = await bob.events();
      assert.deepEqual(ev.filter((e) => e.e === 'reset').map((e) => e.topic), [room], 'one reset, for the room');
      const got = (await bob.got(room)).map((m) => m.data.i);
      assert.deepEqual(got, [0, 1, 2, 15, 16, 17, 18, 19], 'before the cut, then the 5 retained');
      await bob.close();
    } finally {
      await browser.close();
      await proxy.close();
      await gw.stop();
    }
  });
}
