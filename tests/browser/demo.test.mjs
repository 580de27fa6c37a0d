// The demo pages of docker/demo/, served by the gateway (static_dir), end to end in Chromium:
// two users chat (direct messages both ways, a room), one forces another transport, and the
// dashboard shows the node's connections by transport. Screenshots go to build/artifacts/.
import test from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { startGateway, publish, API_KEY, ROOT } from '../integration/lib.mjs';
import { browserSkip, launch, artifactPath } from './lib.mjs';

const skip = browserSkip();

test('demo chat and dashboard work end to end', { skip, timeout: 180000 }, async () => {
  const gw = await startGateway({ static_dir: join(ROOT, 'docker', 'demo'), node_id: 'demo-node-1', stats: { interval_ms: 250 } });
  const browser = await launch();
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const errors = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${gw.url}/chat.html#alice=${gw.token('alice')}&bob=${gw.token('bob')}`);
    const box = (u) => page.locator(`section.user[data-user="${u}"]`);
    for (const u of ['alice', 'bob']) {
      await box(u).locator('.status.on').waitFor({ timeout: 30000 });
      assert.equal(await box(u).getAttribute('data-transport'), 'websocket');
      assert.equal(await box(u).locator('.node').textContent(), 'node demo-node-1');
    }
    const say = async (u, to, text) => {
      await box(u).locator('.to').fill(to);
      await box(u).locator('.text').fill(text);
      await box(u).locator('.send').click();
    };
    const sees = (u, text) => box(u).locator('.log li.msg .body', { hasText: text }).first().waitFor({ timeout: 30000 });
    await say('alice', 'bob', 'hi Bob, direct');
    await sees('bob', 'hi Bob, direct');
    await say('bob', 'alice', 'hi Alice, back');
    await sees('alice', 'hi Alice, back');
    // bob forces long-polling; the room still works both ways
    await box('bob').locator('.transport').selectOption('longpoll');
    await page.waitForFunction(() => document.querySelector('section.user[data-user="bob"]').dataset.transport === 'longpoll', null, { timeout: 30000 });
    await say('alice', 'room:lobby', 'hello room');
    await sees('bob', 'hello room');
    await sees('alice', 'hello room');
    await say('bob', 'room:lobby', 'bob on long-polling');
    await sees('alice', 'bob on long-polling');
    const bobRoom = await box('bob').locator('.log li.msg .body').allTextContents();
    assert.deepEqual(bobRoom, ['hi Bob, direct', 'hi Alice, back', 'hello room', 'bob on long-polling'],
      'once each, in order (his own direct message shown as sent)');
    assert.equal(await box('bob').locator('.log li.mine').count(), 1);
    await page.screenshot({ path: artifactPath('demo-chat.png'), fullPage: true });

    const dash = await browser.newPage({ viewport: { width: 1000, height: 700 } });
    dash.on('pageerror', (e) => errors.push(e.message));
    // stats.access is "api_key" (the default): the key travels in the fragment, as demo-url.sh prints it
    await dash.goto(`${gw.url}/dashboard.html#key=${API_KEY}`);
    const card = dash.locator('section.node[data-node="demo-node-1"]');
    await card.waitFor({ timeout: 30000 });
    await dash.waitForFunction(() => {
      const c = document.querySelector('section.node[data-node="demo-node-1"]');
      return c && c.dataset.websocket === '1' && c.dataset.longpoll !== undefined && c.dataset.backplane === 'up';
    }, null, { timeout: 30000 });
    assert.equal(await card.locator('.bp').textContent(), 'local up');
    assert.ok(Number(await card.getAttribute('data-published')) >= 4);
    // a burst of publishes shows as messages per second
    const burst = (async () => { for (let i = 0; i < 40; i++) { await publish(gw, 'room:lobby', { text: `burst ${i}` }); await dash.waitForTimeout(25); } })();
    await dash.waitForFunction(() => Number(document.querySelector('section.node[data-node="demo-node-1"]').dataset.rate) > 0, null, { timeout: 30000 });
    await burst;
    await box('alice').locator('.log li.msg .body', { hasText: 'burst 39' }).waitFor({ timeout: 30000 });
    await dash.screenshot({ path: artifactPath('demo-dashboard.png'), fullPage: true });
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
    await gw.stop();
  }
});
