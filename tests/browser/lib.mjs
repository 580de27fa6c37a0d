// Helpers for the browser tests: headless Chromium from Debian (/usr/bin/chromium) driven by
// playwright-core, a loopback HTTP proxy that can refuse WebSocket upgrades or buffer whole
// responses (what broken corporate proxies do), and the harness page served by the gateway.
import { chromium } from 'playwright-core';
import { existsSync, mkdirSync, mkdtempSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import http from 'node:http';
import net from 'node:net';

const here = dirname(fileURLToPath(import.meta.url));
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
export const ARTIFACTS = process.env.RTGATE_ARTIFACTS || join(here, '..', '..', 'build', 'artifacts');

// Skipped only when Chromium is genuinely absent on a developer machine; in CI it must run.
export function browserSkip() {
  if (existsSync(CHROMIUM)) return false;
  if (process.env.CI) throw new Error(`${CHROMIUM} is missing: scripts/deps.sh test installs Debian's chromium`);
  return `${CHROMIUM} not installed (apt-get install chromium)`;
}

export async function launch() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    timeout: 60000,
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
  });
}

// A static_dir holding the harness page (tests/browser/harness.html).
export function harnessDir() {
  const dir = mkdtempSync(join(tmpdir(), 'rtgate-web-'));
  copyFileSync(join(here, 'harness.html'), join(dir, 'harness.html'));
  return dir;
}

// Opens the harness for one user in its own browser context (its own cookies, cache, sockets).
// Resolves to { page, ctx, events(), got(), call(fn, ...args) }.
export async function openUser(browser, base, { token, transports, topics = [], opts = {} }) {
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  const logs = [];
  page.on('console', (m) => logs.push(m.text()));
  page.on('pageerror', (e) => logs.push('pageerror: ' + e.message));
  await page.goto(`${base}/harness.html`, { timeout: 30000 });
  await page.evaluate(([token, transports, topics, opts]) => window.start(token, transports, topics, opts),
    [token, transports || null, topics, opts]);
  const u = {
    page, ctx, logs,
    events: () => page.evaluate(() => window.events),
    got: (topic) => page.evaluate((t) => window.got.filter((m) => !t || m.topic === t), topic),
    async waitConnected(transport, timeout = 30000) {
      await page.waitForFunction((tr) => window.client && window.client.transport === tr, transport, { timeout, polling: 50 });
    },
    async waitCount(topic, n, timeout = 30000) {
      await page.waitForFunction(([t, n]) => window.got.filter((m) => m.topic === t).length >= n, [topic, n], { timeout, polling: 50 });
    },
    close: () => ctx.close(),
  };
  return u;
}

// A loopback HTTP proxy in front of one or more gateways. mode: 'pass' (forwards everything),
// 'no-upgrade' (answers WebSocket upgrades 403), 'buffer' (also holds every response until it
// has ended, so streams never arrive). Requests go to backends[target], or the next one when
// it refuses the connection (a dead node).
export async function startProxy(backends, mode = 'pass') {
  const p = { backends, mode, target: 0, upgrades: 0, refused: 0, sockets: new Set() };
  const pick = (tryIndex) => new URL(backends[(p.target + tryIndex) % backends.length]);
  const server = http.createServer((req, res) => {
    if (p.mode === 'down') return req.socket.destroy(); // the network is gone
    if (process.env.PROXY_DEBUG) console.log(Date.now() % 100000, req.method, req.url.slice(0, 40));
    const forward = (attempt) => {
      const u = pick(attempt);
      const up = http.request({ host: u.hostname, port: u.port, method: req.method, path: req.url, headers: req.headers, agent: false }, (ur) => {
        if (p.mode === 'buffer') {
          const chunks = [];
          ur.on('data', (d) => chunks.push(d));
          ur.on('end', () => {
            const h = { ...ur.headers };
            delete h['transfer-encoding'];
            h['content-length'] = Buffer.concat(chunks).length;
            res.writeHead(ur.statusCode, h);
            res.end(Buffer.concat(chunks));
          });
          ur.on('error', () => res.destroy());
        } else {
          res.writeHead(ur.statusCode, ur.headers);
          res.flushHeaders();
          ur.pipe(res);
        }
      });
      up.on('error', (e) => {
        if (e.code === 'ECONNREFUSED' && attempt + 1 < backends.length) return forward(attempt + 1);
        if (!res.headersSent) res.writeHead(502).end();
        else res.destroy();
      });
      res.on('close', () => up.destroy());
      req.pipe(up);
    };
    forward(0);
  });
  server.on('upgrade', (req, sock, head) => {
    p.sockets.add(sock);
    sock.on('close', () => p.sockets.delete(sock));
    if (p.mode === 'down') return sock.destroy();
    if (p.mode !== 'pass') {
      p.refused++;
      sock.end('HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
      return;
    }
    p.upgrades++;
    const connect = (attempt) => {
      const u = pick(attempt);
      const up = net.connect(Number(u.port), u.hostname, () => {
        let raw = `${req.method} ${req.url} HTTP/1.1\r\n`;
        for (let i = 0; i < req.rawHeaders.length; i += 2) raw += `${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}\r\n`;
        up.write(raw + '\r\n');
        if (head.length) up.write(head);
        up.pipe(sock);
        sock.pipe(up);
        up.on('close', () => sock.destroy());
        sock.on('error', () => up.destroy());
        sock.on('close', () => up.destroy());
      });
      up.on('error', (e) => {
        if (e.code === 'ECONNREFUSED' && attempt + 1 < backends.length) return connect(attempt + 1);
        sock.destroy();
      });
    };
    connect(0);
  });
  server.on('connection', (s) => { p.sockets.add(s); s.on('close', () => p.sockets.delete(s)); });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  p.url = `http://127.0.0.1:${server.address().port}`;
  // Cuts every open connection (and, with mode 'down', every new one).
  p.cut = () => { for (const s of p.sockets) s.destroy(); };
  p.close = () => new Promise((r) => { for (const s of p.sockets) s.destroy(); server.close(() => r()); });
  return p;
}

export function artifactPath(name) {
  mkdirSync(ARTIFACTS, { recursive: true });
  return join(ARTIFACTS, name);
}
