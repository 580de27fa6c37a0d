// Logging: log.format "json" (one parseable object per line), log.access (one line per request
// or WebSocket session, never the query string), and the repeat limit that turns a flood of one
// message into a few lines and a "(suppressed K similar lines ...)" summary.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { http, openSSE, openWS, publish, sleep, API_KEY } from './lib.mjs';
import { withGateway, waitUntil, metric, tryUpgrade } from './helpers.mjs';

const RFC3339_MS_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

// The JSON lines of the log; every line must be one (nothing else is written to stderr).
function jsonLines(gw) {
  return gw.logs().split('\n').filter((l) => l !== '').map((l) => {
    try {
      return JSON.parse(l);
    } catch {
      assert.fail(`not a JSON line: ${JSON.stringify(l)}`);
    }
  });
}

const accessLines = (lines) => lines.filter((l) => l.msg === 'access');

// Sends n GET requests with a bad token over a few keep-alive connections.
async function badTokens(gw, n, path = '/v1/poll') {
  const per = Math.ceil(n / 10);
  await Promise.all(Array.from({ length: 10 }, async (_, k) => {
    for (let i = k * per; i < Math.min(n, (k + 1) * per); i++) {
      const r = await http(gw, `${path}?topics=room:1&token=bad-token-${i}`);
      assert.equal(r.status, 401);
    }
  }));
}

test('log.format json: every line is an object with ts (RFC 3339, ms, UTC), level, msg', async () => {
  await withGateway({ log: { format: 'json' } }, async (gw) => {
    const t0 = Date.now();
    const tok = gw.token('alice');
    await http(gw, '/v1/sse?topics=user:bob', { token: tok }); // 403: logged at notice
    await http(gw, '/v1/poll?token=bad');                       // 401: logged at notice
    // stderr is a pipe read on its own: the answer may come back before the line
    const lines = await waitUntil(() => {
      const l = jsonLines(gw);
      return l.some((x) => x.msg.endsWith('refused: malformed token')) ? l : null;
    }, 5000, 'the log lines');
    for (const l of lines) {
      assert.deepEqual(Object.keys(l).slice(0, 3), ['ts', 'level', 'msg'], JSON.stringify(l));
      assert.match(l.ts, RFC3339_MS_UTC);
      assert.ok(Math.abs(Date.parse(l.ts) - t0) < 60000, l.ts);
      assert.ok(['err', 'warn', 'notice', 'info', 'debug'].includes(l.level), l.level);
      assert.equal(typeof l.msg, 'string');
    }
    assert.ok(lines.some((l) => /^gateway: listening on http:\/\/127\.0\.0\.1:\d+/.test(l.msg)));
    assert.ok(lines.some((l) => l.level === 'notice' && l.msg === "http: user 'alice' refused topic 'user:bob'"),
      gw.logs());
    assert.ok(lines.some((l) => l.level === 'notice' && l.msg === 'http: /v1/poll refused: malformed token'),
      gw.logs());
    assert.equal(accessLines(lines).length, 0, 'log.access defaults to false');
    // the tokens never reach the log
    assert.doesNotMatch(gw.logs(), new RegExp(tok.split('.')[2]));
  });
});

test('plain stays the default: "<N>rtgate <level>: <msg>" lines', async () => {
  await withGateway({}, async (gw) => {
    await http(gw, '/v1/poll?token=bad');
    await waitUntil(() => gw.logs().includes('refused: malformed token'), 5000, 'the 401 line');
    const lines = gw.logs().split('\n').filter((l) => l !== '');
    for (const l of lines) assert.match(l, /^<[3-7]>rtgate (err|warn|notice|info|debug): /, l);
    assert.ok(lines.includes('<5>rtgate notice: http: /v1/poll refused: malformed token'), gw.logs());
  });
});

test('log.access: one line per request and WebSocket session, with no query string', async () => {
  await withGateway({ log: { format: 'json', access: true } }, async (gw) => {
    const tok = gw.token('carol');
    const secret = tok.split('.')[2];
    await http(gw, `/v1/poll?topics=room:1&token=${tok}`);
    await http(gw, `/v1/messages?token=${tok}`, { method: 'POST', body: { topic: 'room:1', data: 'payload-xyz' } });
    await http(gw, '/v1/publish', { method: 'POST', headers: { 'x-api-key': API_KEY }, body: { topic: 'room:1', data: 2 } });
    await http(gw, `/does/not/exist?token=${tok}&x=1`);
    await http(gw, '/healthz');
    await http(gw, '/we%22ird%5Cpath'); // lws decodes the quote and backslash: we escape them again
    const sse = openSSE(gw, `topics=room:1&token=${tok}`);
    await sse.waitFor((s) => s.events.length >= 1);
    await publish(gw, 'room:1', 'to the stream');
    await sse.waitFor((s) => s.messages().length === 1);
    await sse.close();
    const ws = await openWS(gw, tok);
    await ws.request({ type: 'ping' });
    await sleep(50);
    await ws.close();
    assert.equal((await tryUpgrade(gw, '/v1/ws?token=bad')).status, 401);
    const lp = await http(gw, `/v1/longpoll?topics=room:2&timeout=1&token=${tok}`);
    assert.equal(lp.status, 200);

    const want = [
      ['GET', '/v1/poll', 200, 'poll'],
      ['POST', '/v1/messages', 200, 'http'],
      ['POST', '/v1/publish', 200, 'http'],
      ['GET', '/does/not/exist', 404, 'http'],
      ['GET', '/healthz', 200, 'http'],
      ['GET', '/we%22ird%5Cpath', 404, 'http'],
      ['POST', '/v1/publish', 200, 'http'], // publish() to the stream
      ['GET', '/v1/sse', 200, 'sse'],
      ['GET', '/v1/ws', 101, 'ws'],
      ['GET', '/v1/ws', 401, 'ws'],
      ['GET', '/v1/longpoll', 200, 'longpoll'],
    ];
    const got = await waitUntil(() => {
      const a = accessLines(jsonLines(gw));
      return a.length >= want.length ? a : null;
    }, 5000, 'the access lines');
    const sortKey = (x) => x.join(' ');
    assert.deepEqual(got.map((l) => [l.method, l.path, l.status, l.transport]).map(sortKey).sort(),
      want.map(sortKey).sort(), gw.logs());
    for (const l of got) {
      assert.deepEqual(Object.keys(l), ['ts', 'level', 'msg', 'method', 'path', 'status', 'ms', 'transport']);
      assert.equal(l.level, 'info');
      assert.equal(typeof l.ms, 'number');
      assert.ok(l.ms >= 0 && l.ms < 60000, `ms ${l.ms}`);
      assert.ok(!l.path.includes('?'), l.path);
    }
    // the SSE stream and the long-poll lasted as long as they were open
    assert.ok(got.find((l) => l.path === '/v1/longpoll').ms >= 900, 'long-poll held ~1 s');
    // no token, no key, no payload anywhere in the log
    const log = gw.logs();
    assert.doesNotMatch(log, new RegExp(secret));
    assert.doesNotMatch(log, /token=/);
    assert.ok(!log.includes(API_KEY), 'API key logged');
    assert.ok(!log.includes('payload-xyz'), 'payload logged');
  });
});

test('log.access in plain format: key=value fields after "access:"', async () => {
  await withGateway({ log: { access: true } }, async (gw) => {
    await http(gw, '/healthz?token=abc.def.ghi');
    await waitUntil(() => /access: method=GET path=\/healthz status=200 ms=\d+\.\d{3} transport=http$/m.test(gw.logs()),
      5000, 'a plain access line');
    assert.match(gw.logs(), /^<6>rtgate info: access: method=GET path=\/healthz status=200 ms=\d+\.\d{3} transport=http$/m);
    assert.doesNotMatch(gw.logs(), /abc\.def\.ghi/);
  });
});

test('a flood of one message is rate-limited: 1,000 bad tokens give a few lines and a summary', async () => {
  await withGateway({ log: { format: 'json' } }, async (gw) => {
    const t0 = Date.now();
    await badTokens(gw, 1000);
    const secs = Math.ceil((Date.now() - t0) / 1000) + 1;
    // the summary of the last second comes from the server's timer, with no new line needed
    const lines = await waitUntil(() => {
      const l = jsonLines(gw);
      const sum = l.filter((x) => /^\(suppressed \d+ similar lines: "http: %s refused: %s"\)$/.test(x.msg))
        .reduce((n, x) => n + Number(x.msg.match(/\d+/)[0]), 0);
      const shown = l.filter((x) => x.msg === 'http: /v1/poll refused: malformed token').length;
      return shown + sum === 1000 ? l : null;
    }, 5000, 'every refused line shown or summed up');
    const shown = lines.filter((x) => x.msg === 'http: /v1/poll refused: malformed token');
    const summaries = lines.filter((x) => x.msg.startsWith('(suppressed '));
    assert.ok(shown.length <= 10 * (secs + 1), `${shown.length} lines shown in ~${secs} s`);
    assert.ok(shown.length >= 10, `${shown.length} lines shown`);
    assert.ok(summaries.length >= 1 && summaries.length <= secs + 1, `${summaries.length} summaries`);
    for (const s of summaries) assert.equal(s.level, 'notice');
    assert.ok(lines.length < 100, `${lines.length} lines in all`);
    assert.equal(await metric(gw, 'rtgate_log_lines_suppressed_total'), 1000 - shown.length);
    assert.equal(await metric(gw, 'rtgate_auth_failures_total'), 1000);

    // a different message is not held back by the flood of the first
    await http(gw, '/v1/sse?topics=user:zed', { token: gw.token('amy') });
    await waitUntil(() => gw.logs().includes("refused topic 'user:zed'"), 5000, 'the 403 line');
  });
});

test('log.repeat_limit_per_s: 0 turns the limit off; 2 keeps two a second', async () => {
  await withGateway({ log: { repeat_limit_per_s: 0 } }, async (gw) => {
    await badTokens(gw, 50);
    const count = () => gw.logs().split('\n').filter((l) => l.endsWith('refused: malformed token')).length;
    await waitUntil(() => count() === 50, 5000, '50 lines');
    assert.doesNotMatch(gw.logs(), /suppressed/);
  });
  await withGateway({ log: { repeat_limit_per_s: 2 } }, async (gw) => {
    const t0 = Date.now();
    await badTokens(gw, 50);
    const secs = Math.ceil((Date.now() - t0) / 1000) + 1;
    await waitUntil(() => /suppressed \d+ similar lines/.test(gw.logs()), 5000, 'a summary');
    const n = gw.logs().split('\n').filter((l) => l.endsWith('refused: malformed token')).length;
    assert.ok(n >= 2 && n <= 2 * (secs + 1), `${n} lines`);
  });
});

test('SIGHUP applies a new log.format and log.access', async () => {
  await withGateway({}, async (gw) => {
    const cf = JSON.parse(readFileSync(gw.cfgPath, 'utf8'));
    cf.log = { ...cf.log, format: 'json', access: true };
    writeFileSync(gw.cfgPath, JSON.stringify(cf));
    gw.proc.kill('SIGHUP');
    await waitUntil(() => gw.logs().includes('reloaded'), 5000, 'the reload');
    await sleep(300); // the server picks the format up within a tick (250 ms)
    const mark = gw.logs().length;
    await http(gw, '/healthz');
    await waitUntil(() => gw.logs().slice(mark).includes('"msg":"access"'), 5000, 'a JSON access line');
    const l = JSON.parse(gw.logs().slice(mark).trim().split('\n').at(-1));
    assert.deepEqual([l.msg, l.method, l.path, l.status, l.transport], ['access', 'GET', '/healthz', 200, 'http']);
  });
});
