// Helpers for the WebRTC browser tests: a real coturn (turnserver) on 127.0.0.1 with
// use-auth-secret, and headless Chromium (Debian's, driven by playwright-core) showing the demo
// page docker/demo/call.html (which loads rtgate.js from the gateway's /v1/client.js). Every process is stopped by its pid.
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import dgram from 'node:dgram';
import { ROOT, waitFor, sleep } from './lib.mjs';

export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

// Fails loudly, never skips: scripts/deps.sh test installs both.
export function requireWebrtcTools() {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: install Debian's chromium (scripts/deps.sh test does)`);
  try {
    execFileSync('sh', ['-c', 'command -v turnserver'], { stdio: 'pipe' });
  } catch {
    throw new Error('turnserver is not on PATH: install Debian\'s coturn (scripts/deps.sh test does)');
  }
}

// A free UDP port on 127.0.0.1 (bind to 0, read it, close).
function freeUdpPort() {
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket('udp4');
    s.on('error', reject);
    s.bind(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

// coturn with the TURN REST API secret, relaying on loopback only. Resolves to
// { port, url, log(), stop() }.
export async function startCoturn(secret) {
  const dir = mkdtempSync(join(tmpdir(), 'rtgate-coturn-'));
  const port = await freeUdpPort();
  // a small relay range picked at random (other test runs may share the machine)
  const min = 40000 + Math.floor(Math.random() * 200) * 100;
  const logFile = join(dir, 'turn.log');
  const conf = [
    'listening-ip=127.0.0.1', 'relay-ip=127.0.0.1', `listening-port=${port}`,
    `min-port=${min}`, `max-port=${min + 99}`, 'use-auth-secret', `static-auth-secret=${secret}`,
    'realm=rtgate.test', 'allow-loopback-peers', 'no-cli', 'no-tls', 'no-dtls', 'fingerprint',
    `log-file=${logFile}`, 'simple-log', 'no-stdout-log', `pidfile=${join(dir, 'turn.pid')}`,
    `userdb=${join(dir, 'turn.db')}`, 'verbose',
  ].join('\n') + '\n';
  writeFileSync(join(dir, 'turnserver.conf'), conf);
  const proc = spawn('turnserver', ['-c', join(dir, 'turnserver.conf')], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout.on('data', (d) => (out += d));
  proc.stderr.on('data', (d) => (out += d));
  const exited = new Promise((r) => proc.on('exit', (code, signal) => r({ code, signal })));
  const log = () => (existsSync(logFile) ? readFileSync(logFile, 'utf8') : '') + out;
  const t = {
    port, url: `turn:127.0.0.1:${port}?transport=udp`, log, proc,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) {
        const killer = setTimeout(() => proc.kill('SIGKILL'), 5000);
        proc.kill('SIGTERM');
        await exited;
        clearTimeout(killer);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    await waitFor(() => {
      if (proc.exitCode !== null) throw new Error('turnserver exited:\n' + log());
      return /IPv4. UDP listener opened on\s*: 127\.0\.0\.1:/.test(log()) || /listener opened on.*127\.0\.0\.1/.test(log());
    }, 10000, 'turnserver listening');
  } catch (e) {
    await t.stop();
    throw e;
  }
  return t;
}

// Headless Chromium with fake media devices (playwright gives it a fresh profile directory of
// its own). Resolves to { browser, close() }.
export async function startChromium() {
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--use-fake-device-for-media-stream',
      '--use-fake-ui-for-media-stream',
      // Chromium 156's Local Network Access checks treat a page fulfilled by page.route() (no
      // server address) as public and block its WebSocket to 127.0.0.1
      // (net::ERR_BLOCKED_BY_LOCAL_NETWORK_ACCESS_CHECKS); a page really served from the
      // gateway's loopback origin is not affected.
      '--disable-features=LocalNetworkAccessChecks',
    ],
  });
  return {
    browser,
    async close() {
      await browser.close();
    },
  };
}

const PAGE = readFileSync(join(ROOT, 'docker', 'demo', 'call.html'), 'utf8');
const LIB = readFileSync(join(ROOT, 'client', 'rtgate-call.js'), 'utf8');

// A new browser context (its own profile: a separate user) showing the demo page, served at
// the gateway's own origin (so /v1/ice and /v1/ws are same-origin), signed in as @token.
export async function openDemo(chrome, gw, token, query = {}) {
  const ctx = await chrome.browser.newContext({ permissions: ['camera', 'microphone'] });
  await ctx.route(`${gw.url}/demo/call.html*`, (r) => r.fulfill({ body: PAGE, contentType: 'text/html' }));
  await ctx.route(`${gw.url}/client/rtgate-call.js`, (r) => r.fulfill({ body: LIB, contentType: 'text/javascript' }));
  const page = await ctx.newPage();
  const logs = [];
  page.on('console', (m) => logs.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => logs.push(`pageerror: ${e.message}`));
  // what the page asked of the gateway: "METHOD /path?query body" and its WebSocket URLs
  const requests = [], sockets = [];
  page.on('request', (r) => {
    const u = new URL(r.url());
    if (u.origin === gw.url) requests.push(`${r.method()} ${u.pathname}${u.search} ${r.postData() || ''}`.trim());
  });
  page.on('websocket', (ws) => sockets.push(ws.url()));
  const q = new URLSearchParams({ token, ...query });
  await page.goto(`${gw.url}/demo/call.html?${q}`);
  await page.click('#connect');
  await page.waitForFunction(() => window.demo && (window.demo.online || window.demo.errors.length), null, { timeout: 10000 });
  const errors = await page.evaluate(() => window.demo.errors);
  if (errors.length) throw new Error('sign-in failed: ' + errors.join('; '));
  return { ctx, page, logs, requests, sockets, demo: () => page.evaluate(() => ({ ...window.demo, phone: undefined, call: undefined, incoming: undefined, rt: undefined })) };
}

export { sleep };
