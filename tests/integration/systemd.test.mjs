// systemd integration (src/sdnotify.c): rtgate run with $NOTIFY_SOCKET pointing at our stand-in
// for systemd's socket (tests/tools/notify_listen, built next to rtgate) must say READY=1 only
// once it accepts connections, feed the watchdog from its loop every WATCHDOG_USEC/2, and say
// STOPPING=1 between SIGTERM and its exit. Every process started is stopped by pid.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { ROOT, BIN, SECRET, API_KEY, sleep, freePort } from './lib.mjs';

const LISTEN_BIN = join(dirname(BIN), 'notify_listen');

async function waitFor(pred, timeoutMs, what, logs = () => '') {
  const t0 = Date.now();
  while (!pred()) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}\n${logs()}`);
    await sleep(10);
  }
}

// One O_APPEND file that notify_listen's stdout and rtgate's stdout/stderr all write to: its
// lines are in the order they were written, so "the listen log line comes before READY=1" is
// checked without trusting any clock or the scheduling of our pipes. Notify lines are
// "<ms> <payload>" (ms on notify_listen's clock), the rest is rtgate's log.
function openJournal(dir) {
  const path = join(dir, 'journal.log');
  const j = { fd: openSync(path, 'a'), rfd: openSync(path, 'r'), pos: 0, rest: '' };
  j.lines = []; // { seq, text, notify: { ms, text } | undefined }
  j.onNotify = () => {};
  j.poll = () => {
    const buf = Buffer.alloc(65536);
    let n;
    while ((n = readSync(j.rfd, buf, 0, buf.length, j.pos)) > 0) {
      j.pos += n;
      j.rest += buf.subarray(0, n).toString();
    }
    let i;
    while ((i = j.rest.indexOf('\n')) >= 0) {
      const text = j.rest.slice(0, i);
      j.rest = j.rest.slice(i + 1);
      const m = text.match(/^(\d+) (.*)$/);
      const rec = { seq: j.lines.length, text, notify: m ? { ms: Number(m[1]), text: m[2] } : undefined };
      j.lines.push(rec);
      if (rec.notify) j.onNotify(rec);
    }
  };
  j.timer = setInterval(j.poll, 5);
  j.notify = (prefix = '') => j.lines.filter((x) => x.notify && x.notify.text.startsWith(prefix));
  j.log = () => j.lines.filter((x) => !x.notify).map((x) => x.text).join('\n');
  j.dump = () => j.lines.map((x) => x.text).join('\n');
  j.close = () => {
    clearInterval(j.timer);
    j.poll();
    closeSync(j.fd);
    closeSync(j.rfd);
  };
  return j;
}

// notify_listen on `addr` (a path, or "@name"), printing into the journal. Its clock starts
// between `spawnedAt` and `boundAt` of ours, which brackets when a datagram arrived.
async function startListener(addr, j) {
  const proc = spawn(LISTEN_BIN, [addr, '120'], { stdio: ['ignore', j.fd, 'pipe'] });
  const l = { proc, err: '', spawnedAt: Date.now(), boundAt: 0 };
  proc.stderr.on('data', (d) => {
    l.err += d;
    if (!l.boundAt && l.err.includes('listening on')) l.boundAt = Date.now();
  });
  l.exited = new Promise((r) => proc.on('exit', r));
  await waitFor(() => l.boundAt || proc.exitCode !== null, 5000, 'notify_listen', () => l.err);
  assert.ok(l.boundAt, 'notify_listen failed: ' + l.err);
  l.stop = async () => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
    await l.exited;
  };
  return l;
}

// rtgate on a port chosen here (so a READY can be checked against it at once), logging into the
// journal, with `env` added to our environment minus any systemd variables of our own.
async function startRtgate(dir, j, env, extra = {}) {
  const port = await freePort();
  const cf = JSON.parse(readFileSync(join(ROOT, 'conf', 'rtgate.json'), 'utf8'));
  cf.listen = { address: '127.0.0.1', port };
  cf.log_level = 'info';
  cf.auth = { jwt_secret: SECRET, api_keys: [API_KEY] };
  Object.assign(cf, extra);
  const cfgPath = join(dir, 'rtgate.json');
  writeFileSync(cfgPath, JSON.stringify(cf, null, 2));
  const base = { ...process.env };
  for (const k of ['NOTIFY_SOCKET', 'WATCHDOG_USEC', 'WATCHDOG_PID']) delete base[k];
  const proc = spawn(BIN, ['--config', cfgPath], { stdio: ['ignore', j.fd, j.fd], env: { ...base, ...env } });
  const gw = { proc, port, url: `http://127.0.0.1:${port}`, exitedAt: 0 };
  gw.exited = new Promise((resolve) =>
    proc.on('exit', (code, signal) => { gw.exitedAt = Date.now(); resolve({ code, signal }); }));
  gw.kill = async (signal = 'SIGTERM', timeoutMs = 15000) => {
    if (proc.exitCode !== null || proc.signalCode !== null) return gw.exited;
    proc.kill(signal);
    const killer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
    const r = await gw.exited;
    clearTimeout(killer);
    return r;
  };
  return gw;
}

async function healthz(gw) {
  try {
    const r = await fetch(gw.url + '/healthz');
    await r.text();
    return r.status;
  } catch (e) {
    return `error: ${e.cause?.code || e.message}`;
  }
}

// Runs fn(dir, j, cleanups) with a temp dir and a journal; cleanups run in reverse order.
async function withJournal(fn) {
  const dir = mkdtempSync(join(tmpdir(), 'rtgate-sd-'));
  const j = openJournal(dir);
  const cleanups = [];
  try {
    await fn(dir, j, cleanups);
  } finally {
    for (const c of cleanups.reverse()) await c();
    j.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

test('notify_listen is built next to rtgate', () => {
  assert.ok(existsSync(LISTEN_BIN), `${LISTEN_BIN} missing: build the notify_listen target`);
});

test('READY=1 once listening, STATUS, a watchdog ping every WATCHDOG_USEC/2, STOPPING=1 on SIGTERM', async () => {
  await withJournal(async (dir, j, cleanups) => {
    const sock = join(dir, 'notify.sock');
    const l = await startListener(sock, j);
    cleanups.push(l.stop);
    let readyCheck = null;
    j.onNotify = (rec) => {
      // Probe as soon as we see it: READY must mean "connect now and it works".
      if (rec.notify.text.startsWith('READY=1') && !readyCheck) readyCheck = healthz(gw);
    };
    const gw = await startRtgate(dir, j, { NOTIFY_SOCKET: sock, WATCHDOG_USEC: '400000' });
    cleanups.push(() => gw.kill('SIGKILL'));
    const logs = () => '--- journal ---\n' + j.dump();

    await waitFor(() => readyCheck || gw.proc.exitCode !== null, 10000, 'READY=1', logs);
    assert.ok(readyCheck, 'rtgate exited before READY=1\n' + logs());
    assert.equal(await readyCheck, 200, 'GET /healthz right when READY=1 arrived\n' + logs());
    const ready = j.notify('READY=1');
    assert.equal(ready.length, 1, 'READY=1 exactly once\n' + logs());
    assert.match(ready[0].notify.text, /^READY=1\|STATUS=\S/, 'READY=1 carries a STATUS\n' + logs());
    const listenLine = j.lines.find((x) => !x.notify && x.text.includes('listening on'));
    assert.ok(listenLine && listenLine.seq < ready[0].seq, 'READY=1 after the listen log line\n' + logs());

    // The loop feeds the watchdog: ~10 pings in 2 s at 200 ms; ask for 5, and a sane spacing.
    const t0 = ready[0].notify.ms;
    const last = () => j.notify().at(-1)?.notify.ms ?? 0;
    await waitFor(() => last() >= t0 + 2000, 5000, '2 s of pings', logs);
    const pings = j.notify('WATCHDOG=1').map((x) => x.notify.ms).filter((ms) => ms > t0 && ms <= t0 + 2000);
    assert.ok(pings.length >= 5, `${pings.length} WATCHDOG=1 in 2 s, want >= 5\n` + logs());
    const gaps = pings.slice(1).map((ms, i) => ms - pings[i]).sort((a, b) => a - b);
    const median = gaps[Math.floor(gaps.length / 2)];
    assert.ok(median >= 150 && median <= 300, `median ping gap ${median} ms, want ~200\n` + logs());
    assert.equal(await healthz(gw), 200, 'still serving while pinging');

    const termAt = Date.now();
    const r = await gw.kill('SIGTERM');
    assert.deepEqual(r, { code: 0, signal: null }, 'exit after SIGTERM\n' + logs());
    await waitFor(() => j.notify('STOPPING=1').length, 2000, 'STOPPING=1', logs);
    const stopping = j.notify('STOPPING=1');
    assert.equal(stopping.length, 1, 'STOPPING=1 once\n' + logs());
    assert.match(stopping[0].notify.text, /^STOPPING=1\|STATUS=\S/, 'STOPPING=1 carries a STATUS\n' + logs());
    // notify_listen's clock started in [spawnedAt, boundAt] of ours: the datagram was sent after
    // the signal and before the process was gone (a dead process sends nothing anyway). Both
    // clocks count whole milliseconds, hence a few ms of slack.
    const at = stopping[0].notify.ms;
    assert.ok(l.boundAt + at + 5 >= termAt, 'STOPPING=1 before SIGTERM?\n' + logs());
    assert.ok(l.spawnedAt + at - 5 <= gw.exitedAt, 'STOPPING=1 after the exit?\n' + logs());
    assert.ok(stopping[0].seq > ready[0].seq);
    assert.ok(!j.log().includes('handles still open'), 'the watchdog timer was closed\n' + logs());
    assert.ok(j.notify().every((x) => /^(READY=1|STATUS=|WATCHDOG=1$|STOPPING=1)/.test(x.notify.text)),
      'only sd_notify assignments are sent\n' + logs());
  });
});

test('an abstract NOTIFY_SOCKET works; WATCHDOG_PID of another process turns the pings off', async () => {
  await withJournal(async (dir, j, cleanups) => {
    const addr = `@rtgate-it-${process.pid}-${Date.now()}`;
    const l = await startListener(addr, j);
    cleanups.push(l.stop);
    const gw = await startRtgate(dir, j, { NOTIFY_SOCKET: addr, WATCHDOG_USEC: '200000', WATCHDOG_PID: '1' });
    cleanups.push(() => gw.kill('SIGKILL'));
    const logs = () => '--- journal ---\n' + j.dump();
    await waitFor(() => j.notify('READY=1').length || gw.proc.exitCode !== null, 10000, 'READY=1', logs);
    assert.equal(j.notify('READY=1').length, 1, logs());
    await sleep(700);
    assert.equal(j.notify('WATCHDOG=1').length, 0, 'the watchdog is meant for pid 1, not us\n' + logs());
    assert.deepEqual(await gw.kill('SIGTERM'), { code: 0, signal: null }, logs());
    await waitFor(() => j.notify('STOPPING=1').length, 2000, 'STOPPING=1', logs);
  });
});

test('a NOTIFY_SOCKET nobody listens on does not stop rtgate from serving or exiting 0', async () => {
  await withJournal(async (dir, j, cleanups) => {
    const gw = await startRtgate(dir, j, { NOTIFY_SOCKET: join(dir, 'nobody.sock'), WATCHDOG_USEC: '100000' });
    cleanups.push(() => gw.kill('SIGKILL'));
    await waitFor(() => j.log().includes('listening on') || gw.proc.exitCode !== null, 10000, 'start', j.dump);
    await sleep(300); // a few failing pings
    assert.equal(gw.proc.exitCode, null, 'rtgate exited\n' + j.dump());
    assert.equal(await healthz(gw), 200, j.dump());
    assert.deepEqual(await gw.kill('SIGTERM'), { code: 0, signal: null }, j.dump());
    j.poll();
    const warns = j.log().split('\n').filter((x) => x.includes('sdnotify:') && x.includes('failed'));
    assert.ok(warns.length <= 1, 'a dead socket is logged once, not per ping\n' + j.dump());
  });
});

test('READY=1 waits for the backplane, unless ready_without_backplane', async () => {
  const nowhere = await freePort(); // no Redis listens there
  for (const [extra, ready] of [[{}, false], [{ ready_without_backplane: true }, true]]) {
    await withJournal(async (dir, j, cleanups) => {
      const sock = join(dir, 'notify.sock');
      const l = await startListener(sock, j);
      cleanups.push(l.stop);
      const gw = await startRtgate(dir, j, { NOTIFY_SOCKET: sock },
        { backplane: { type: 'redis', url: `redis://127.0.0.1:${nowhere}/0` }, ...extra });
      cleanups.push(() => gw.kill('SIGKILL'));
      const logs = () => '--- journal ---\n' + j.dump();
      await waitFor(() => j.dump().includes('listening on'), 10000, 'listening', logs);
      await sleep(1500);
      assert.equal(j.notify('READY=1').length, ready ? 1 : 0, logs());
      assert.deepEqual(await gw.kill('SIGTERM'), { code: 0, signal: null }, logs());
    });
  }
});
