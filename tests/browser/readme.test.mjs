// The README's "A complete page" example, copied as it is into a page (only the gateway's
// address changed): it receives live messages, and sends.
import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startGateway, publish, freePort, ROOT } from '../integration/lib.mjs';
import { browserSkip, launch, harnessDir } from './lib.mjs';

const skip = browserSkip();

test('the README example page works as copied', { skip, timeout: 120000 }, async () => {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('### A complete page'));
  const html = section.slice(section.indexOf('```html\n') + 8, section.indexOf('\n```', section.indexOf('```html')));
  assert.match(html, /import \{ connect \} from 'http:\/\/127\.0\.0\.1:8080\/v1\/client\.js'/);
  const dir = harnessDir();
  // static_dir is read at startup, so the page (which names the gateway) is written first
  const port = await freePort();
  writeFileSync(join(dir, 'readme.html'), html.replaceAll('http://127.0.0.1:8080', `http://127.0.0.1:${port}`));
  const gw2 = await startGateway({ static_dir: dir, listen: { address: '127.0.0.1', port } });
  const browser = await launch();
  try {
    const page = await browser.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(e.message));
    let tokens = 0;
    await page.route('**/my-backend/rtgate-token', (r) => { tokens++; r.fulfill({ status: 200, body: gw2.token('alice') }); });
    // connected (the example logs it) means its subscriptions are live
    const connected = page.waitForEvent('console', { predicate: (m) => m.text().startsWith('on websocket at'), timeout: 30000 });
    await page.goto(`${gw2.url}/readme.html`);
    assert.equal(errors.length, 0, errors.join('\n'));
    const seen = (text) => page.locator('#log li', { hasText: text }).first().waitFor({ timeout: 30000 });
    await connected;
    await publish(gw2, 'room:lobby', { text: 'hello lobby' }, { from: 'bot' });
    await publish(gw2, 'user:alice', { text: 'hello alice' }, { from: 'bob' });
    await seen('hello lobby');
    await seen('hello alice');
    await page.fill('#text', 'typed by alice');
    await page.click('#send');
    await seen('typed by alice');
    assert.deepEqual(await page.locator('#log li').allTextContents(), [
      'room:lobby bot: {"text":"hello lobby"}', 'user:alice bob: {"text":"hello alice"}', 'room:lobby alice: {"text":"typed by alice"}']);
    assert.equal(tokens, 1, 'getToken called once');
  } finally {
    await browser.close();
    await gw2.stop();
  }
});
