// GET /metrics: Prometheus text that promtool accepts, and values that match the traffic that
// made them: connections by transport, deliveries and their latency histogram, bytes written,
// HTTP answers by endpoint and code, publishes by source, Redis round trips, process_*.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { http, openSSE, openWS, publish, sleep, cpuSeconds, API_KEY } from './lib.mjs';
import { withGateway, waitUntil, tryUpgrade } from './helpers.mjs';
import { requireRedis, withCluster, waitFor } from './redis-lib.mjs';

// What write_headers() in src/http_sse.c sends before the event stream.
const SSE_HEADERS =
  'HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n' +
  'x-accel-buffering: no\r\nconnection: close\r\n\r\n';

// Parses the text format: { text, samples: Map('name{a="x",b="y"}' -> number), types, helps }.
// Labels are keyed in the order written, which for rtgate is fixed per family.
function parse(text) {
  const samples = new Map(), types = new Map(), helps = new Map();
  for (const line of text.split('\n')) {
    if (!line) continue;
    let m;
    if ((m = line.match(/^# TYPE (\S+) (\S+)$/))) { types.set(m[1], m[2]); continue; }
    if ((m = line.match(/^# HELP (\S+) (.+)$/))) { helps.set(m[1], m[2]); continue; }
    m = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$/);
    assert.ok(m, `unparseable metrics line: ${JSON.stringify(line)}`);
    assert.ok(!samples.has(m[1] + (m[2] || '')), `duplicate series ${m[1]}${m[2] || ''}`);
    samples.set(m[1] + (m[2] || ''), m[3] === '+Inf' ? Infinity : Number(m[3]));
  }
  return { text, samples, types, helps };
}

const key = (name, labels = {}) => {
  const l = Object.entries(labels).map(([k, v]) => `${k}="${v}"`).join(',');
  return l ? `${name}{${l}}` : name;
};

// One sample's value; a missing series is 0 only when `missingIsZero` (http responses are
// written only once seen).
function val(m, name, labels = {}, missingIsZero = false) {
  const k = key(name, labels);
  if (!m.samples.has(k)) {
    assert.ok(missingIsZero, `${k} missing from:\n${m.text}`);
    return 0;
  }
  return m.samples.get(k);
}

async function scrape(gw) {
  const r = await http(gw, '/metrics');
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('content-type'), 'text/plain; version=0.0.4');
  return parse(r.text);
}

// promtool from the Debian package "prometheus" (CI installs it): a missing tool fails.
function promtool(text) {
  const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  if (r.error && r.error.code === 'ENOENT')
    assert.fail('promtool is not on PATH: apt-get install prometheus (it provides /usr/bin/promtool)');
  assert.equal(r.status, 0, `promtool check metrics failed:\n${r.stdout}${r.stderr}`);
  assert.equal((r.stdout + r.stderr).trim(), '', 'promtool lint output');
}

const resp = (m, endpoint, code) => val(m, 'rtgate_http_responses_total', { endpoint, code }, true);
const conns = (m, transport) => val(m, 'rtgate_connections', { transport });
const delivered = (m, transport) => val(m, 'rtgate_messages_delivered_total', { transport });
const written = (m, transport) => val(m, 'rtgate_client_written_bytes_total', { transport });

// The histogram of one label: buckets cumulative, +Inf bucket == count.
function histogram(m, name, label, value) {
  const buckets = [...m.samples.entries()]
    .filter(([k]) => k.startsWith(`${name}_bucket{${label}="${value}",le=`))
    .map(([k, v]) => [k.match(/le="([^"]+)"/)[1], v]);
  assert.ok(buckets.length >= 10, `${name} ${label}=${value}: ${buckets.length} buckets`);
  for (let i = 1; i < buckets.length; i++) {
    const le = (x) => (x === '+Inf' ? Infinity : Number(x));
    assert.ok(le(buckets[i][0]) > le(buckets[i - 1][0]), `le order ${buckets[i][0]}`);
    assert.ok(buckets[i][1] >= buckets[i - 1][1], `${name} buckets cumulative at le=${buckets[i][0]}`);
  }
  assert.equal(buckets.at(-1)[0], '+Inf');
  const count = val(m, `${name}_count`, { [label]: value });
  const sum = val(m, `${name}_sum`, { [label]: value });
  assert.equal(buckets.at(-1)[1], count, `${name} +Inf bucket == count`);
  return { buckets, count, sum };
}

test('promtool accepts /metrics before and after traffic; names follow the conventions', async () => {
  await withGateway({}, async (gw) => {
    const fresh = await scrape(gw);
    promtool(fresh.text);

    const tok = gw.token('bob');
    const sse = openSSE(gw, `topics=room:1&token=${tok}`);
    const ws = await openWS(gw, tok);
    await ws.request({ type: 'subscribe', topic: 'room:1' });
    await waitUntil(async () => conns(await scrape(gw), 'sse') === 1, 5000, 'sse open');
    await publish(gw, 'room:1', { n: 1 });
    await sse.waitFor((s) => s.messages().length === 1);
    await ws.waitFor((c) => c.messages().length === 1);
    await http(gw, '/v1/poll?topics=room:1&since=earliest', { token: tok });
    await http(gw, '/v1/poll?token=bad');
    await http(gw, '/nope');
    const m = await scrape(gw);
    promtool(m.text);

    for (const [name, type] of m.types) {
      assert.match(name, /^(rtgate|process)_[a-z_]+$/, name);
      assert.ok(m.helps.has(name), `${name} has HELP`);
      if (type === 'counter') assert.match(name, /_total$/, `counter ${name} ends in _total`);
      else assert.doesNotMatch(name, /_total$/, `${type} ${name} does not end in _total`);
      if (type === 'histogram') assert.match(name, /_seconds$/, `histogram ${name} in seconds`);
    }
    for (const [name, type] of [
      ['rtgate_connections', 'gauge'], ['rtgate_subscriptions', 'gauge'], ['rtgate_topics', 'gauge'],
      ['rtgate_messages_published_total', 'counter'], ['rtgate_messages_delivered_total', 'counter'],
      ['rtgate_client_written_bytes_total', 'counter'], ['rtgate_deliveries_dropped_total', 'counter'],
      ['rtgate_slow_consumers_total', 'counter'], ['rtgate_backplane_up', 'gauge'],
      ['rtgate_backplane_reconnects_total', 'counter'], ['rtgate_redis_command_duration_seconds', 'histogram'],
      ['rtgate_delivery_latency_seconds', 'histogram'], ['rtgate_http_responses_total', 'counter'],
      ['process_resident_memory_bytes', 'gauge'], ['process_open_fds', 'gauge'],
      ['process_cpu_seconds_total', 'counter'],
    ]) assert.equal(m.types.get(name), type, `# TYPE ${name}`);
    assert.equal(val(m, 'rtgate_backplane_up'), 1);
    assert.equal(val(m, 'rtgate_backplane_reconnects_total'), 0);
    await sse.close();
    await ws.close();
  });
});

test('connections by transport equal what is open, and return to 0', async () => {
  await withGateway({}, async (gw) => {
    const tok = gw.token('alice');
    const sses = [openSSE(gw, `token=${tok}`), openSSE(gw, `topics=room:1&token=${tok}`)];
    const wss = [];
    for (let i = 0; i < 3; i++) wss.push(await openWS(gw, tok));
    const lp = http(gw, '/v1/longpoll?topics=room:9&timeout=30', { token: tok });
    let m = await waitUntil(async () => {
      const x = await scrape(gw);
      return conns(x, 'sse') === 2 && conns(x, 'longpoll') === 1 ? x : null;
    }, 5000, '2 SSE streams and 1 held long-poll');
    assert.equal(conns(m, 'ws'), 3);
    assert.equal(val(m, 'rtgate_streams'), 6);
    assert.equal(val(m, 'rtgate_longpolls_held'), 1);

    await publish(gw, 'room:9', 'wake'); // answers the long-poll
    assert.equal((await lp).status, 200);
    await wss[0].close();
    await sses[0].close();
    m = await waitUntil(async () => {
      const x = await scrape(gw);
      return conns(x, 'longpoll') === 0 && conns(x, 'ws') === 2 && conns(x, 'sse') === 1 ? x : null;
    }, 5000, '1 SSE, 2 WS, 0 long-polls');
    for (const s of sses) await s.close();
    for (const w of wss) await w.close();
    m = await waitUntil(async () => {
      const x = await scrape(gw);
      return ['sse', 'ws', 'longpoll'].every((t) => conns(x, t) === 0) ? x : null;
    }, 5000, 'all connections closed');
    assert.equal(val(m, 'rtgate_streams'), 0);
  });
});

test('delivered counters grow by exactly the messages written; histogram count equals deliveries', async () => {
  await withGateway({}, async (gw) => {
    const tok = gw.token('carol');
    const sse = [openSSE(gw, `topics=room:1&token=${tok}`), openSSE(gw, `topics=room:1,room:2&token=${tok}`)];
    const ws = await openWS(gw, tok);
    let wsBytes = 0;
    ws.ws.on('message', (d) => (wsBytes += d.length));
    await ws.request({ type: 'subscribe', topic: 'room:1' });
    await waitUntil(async () => val(await scrape(gw), 'rtgate_subscriptions') === 4, 5000, '4 subscriptions');
    const before = await scrape(gw);
    for (const t of ['ws', 'sse', 'poll', 'longpoll']) assert.equal(delivered(before, t), 0, t);

    const N = 7;
    for (let i = 0; i < N; i++) await publish(gw, 'room:1', { i });
    await publish(gw, 'room:2', 'only the second stream');
    for (const s of sse) await s.waitFor((x) => x.messages().length === (x === sse[0] ? N : N + 1));
    await ws.waitFor((c) => c.messages().length === N);
    // history read by a poll: N + 1 messages; a long-poll woken by one more
    const p = await http(gw, '/v1/poll?topics=room:1,room:2&since=earliest', { token: tok });
    assert.equal(p.body.messages.length, N + 1);
    const lp = http(gw, `/v1/longpoll?topics=room:3&timeout=30`, { token: tok });
    await waitUntil(async () => val(await scrape(gw), 'rtgate_longpolls_held') === 1, 5000, 'held');
    await publish(gw, 'room:3', 'lp');
    assert.equal((await lp).body.messages.length, 1);

    const m = await scrape(gw);
    assert.equal(delivered(m, 'sse'), N + N + 1);
    assert.equal(delivered(m, 'ws'), N);
    assert.equal(delivered(m, 'poll'), N + 1);
    assert.equal(delivered(m, 'longpoll'), 1);
    for (const t of ['sse', 'ws', 'poll', 'longpoll']) {
      const h = histogram(m, 'rtgate_delivery_latency_seconds', 'transport', t);
      assert.equal(h.count, delivered(m, t), `${t}: histogram count == delivered`);
      assert.ok(h.sum >= 0 && h.sum < 30 * h.count, `${t}: latency sum ${h.sum}`);
    }
    // live deliveries on this machine: all well under 10 s
    const wsh = histogram(m, 'rtgate_delivery_latency_seconds', 'transport', 'ws');
    assert.equal(wsh.buckets.find(([le]) => le === '10')[1], N);
    assert.equal(val(m, 'rtgate_messages_published_total', { source: 'api' }), N + 2);

    // bytes: exactly what the clients received (the WebSocket handshake is lws's, not counted)
    assert.equal(written(m, 'ws'), wsBytes);
    const sseBytes = sse.reduce((n, s) => n + SSE_HEADERS.length + Buffer.byteLength(s.raw), 0);
    assert.equal(written(m, 'sse'), sseBytes);
    assert.ok(written(m, 'poll') > p.text.length, 'poll answer bytes, headers included');
    assert.ok(written(m, 'http') > 0);
    assert.equal(val(m, 'rtgate_deliveries_dropped_total'), 0);
    for (const s of sse) await s.close();
    await ws.close();
  });
});

test('publishes by source; HTTP answers by endpoint and code; WebSocket sessions as 101', async () => {
  await withGateway({}, async (gw) => {
    const tok = gw.token('dave');
    for (let i = 0; i < 3; i++) await http(gw, '/healthz');
    for (let i = 0; i < 2; i++) assert.equal((await http(gw, '/v1/poll?token=nope')).status, 401);
    assert.equal((await http(gw, '/nope/x?token=secret')).status, 404);
    assert.equal((await http(gw, '/v1/publish')).status, 405);
    assert.equal((await http(gw, '/v1/ws')).status, 426);
    const post = (path, body, opts) => http(gw, path, { method: 'POST', body, ...opts });
    for (let i = 0; i < 2; i++)
      assert.equal((await post('/v1/messages', { topic: 'room:x', data: i }, { token: tok })).status, 200);
    assert.equal((await post('/v1/messages', { topic: 'room:x' }, { token: tok })).status, 400);
    for (let i = 0; i < 4; i++)
      assert.equal((await post('/v1/publish', { topic: 'room:x', data: i }, { headers: { 'x-api-key': API_KEY } })).status, 200);
    assert.equal((await post('/v1/publish', { topic: 'room:x', data: 1 }, { headers: { 'x-api-key': 'wrong-key-0123456789abcdef' } })).status, 401);
    const ws = await openWS(gw, tok);
    for (let i = 0; i < 5; i++) assert.equal((await ws.request({ type: 'publish', topic: 'room:x', data: i })).type, 'ack');
    await ws.close();
    const ws2 = await openWS(gw, tok);
    await ws2.close();
    assert.equal((await tryUpgrade(gw, '/v1/ws?token=bad')).status, 401);
    const sse = openSSE(gw, `token=${tok}`);
    await sse.waitFor((s) => s.events.length >= 1);
    await sse.close();

    const m = await waitUntil(async () => {
      const x = await scrape(gw);
      return resp(x, '/v1/ws', '101') === 2 && resp(x, '/v1/sse', '200') === 1 ? x : null;
    }, 5000, 'the WebSocket sessions and the SSE stream to end');
    assert.equal(val(m, 'rtgate_messages_published_total', { source: 'messages' }), 2);
    assert.equal(val(m, 'rtgate_messages_published_total', { source: 'api' }), 4);
    assert.equal(val(m, 'rtgate_messages_published_total', { source: 'ws' }), 5);
    for (const s of ['api', 'messages', 'ws'])
      assert.equal(val(m, 'rtgate_messages_publish_refused_total', { source: s }), 0);
    assert.equal(resp(m, '/healthz', '200'), 3);
    assert.equal(resp(m, '/v1/poll', '401'), 2);
    assert.equal(resp(m, 'other', '404'), 1);
    assert.equal(resp(m, '/v1/publish', '405'), 1);
    assert.equal(resp(m, '/v1/ws', '426'), 1);
    assert.equal(resp(m, '/v1/ws', '401'), 1);
    assert.equal(resp(m, '/v1/messages', '200'), 2);
    assert.equal(resp(m, '/v1/messages', '400'), 1);
    assert.equal(resp(m, '/v1/publish', '200'), 4);
    assert.equal(resp(m, '/v1/publish', '401'), 1);
    // every request routed has ended with one answer, except this scrape
    const answered = [...m.samples].filter(([k]) => k.startsWith('rtgate_http_responses_total{'))
      .reduce((n, [, v]) => n + v, 0);
    assert.equal(val(m, 'rtgate_http_requests_total'), answered + 1);
  });
});

test('a slow consumer: cut once, its missed deliveries counted as dropped, written ones as delivered', async () => {
  await withGateway({ limits: { send_queue: 8 } }, async (gw) => {
    const slow = await openWS(gw, gw.token('slow'));
    const fast = await openWS(gw, gw.token('fast'));
    const pub = await openWS(gw, gw.token('pub'));
    await slow.request({ type: 'subscribe', topic: 'room:1' });
    await fast.request({ type: 'subscribe', topic: 'room:1' });
    slow.ws._socket.pause(); // the kernel buffers a few MB, then rtgate's queue of 8 fills
    const pad = 'x'.repeat(1000);
    let n = 0;
    // at most 4 publishes in flight, so the fast client (queue of 8) keeps up
    const burst = async (k) => {
      const first = pub.frames.length;
      for (let i = 0; i < k; i++) {
        pub.send({ type: 'publish', topic: 'room:1', data: { i: n++, pad } });
        if (i >= 4) await pub.waitFor((c) => c.frames.length >= first + i - 4, 15000);
      }
      await pub.waitFor((c) => c.frames.length === first + k, 15000);
    };
    let m;
    for (let round = 0; round < 100; round++) {
      await burst(100);
      m = await scrape(gw);
      if (val(m, 'rtgate_slow_consumers_total') === 1) break;
    }
    assert.equal(val(m, 'rtgate_slow_consumers_total'), 1, `not cut after ${n} messages`);
    const dropped = val(m, 'rtgate_deliveries_dropped_total');
    assert.ok(dropped >= 1, 'the delivery that found the queue full');
    // until the cut client has written its queue and gone, each message for it is dropped
    await burst(50);

    slow.ws._socket.resume();
    assert.equal((await slow.closedP).code, 1013);
    await fast.waitFor((c) => c.messages().length === n, 30000);
    m = await scrape(gw);
    const dropped2 = val(m, 'rtgate_deliveries_dropped_total');
    assert.ok(dropped2 >= dropped && dropped2 <= n - slow.messages().length,
      `dropped ${dropped} then ${dropped2}, slow missed ${n - slow.messages().length}`);
    assert.equal(val(m, 'rtgate_slow_consumers_total'), 1);
    assert.equal(delivered(m, 'ws'), n + slow.messages().length);
    assert.equal(histogram(m, 'rtgate_delivery_latency_seconds', 'transport', 'ws').count, delivered(m, 'ws'));
    assert.equal(val(m, 'rtgate_messages_published_total', { source: 'ws' }), n);
    assert.equal(conns(m, 'ws'), 2);
    await fast.close();
    await pub.close();
  });
});

test('a client that leaves a held long-poll is counted as 499', async () => {
  await withGateway({}, async (gw) => {
    const tok = gw.token('erin');
    const ac = new AbortController();
    const lp = fetch(`${gw.url}/v1/longpoll?topics=room:1&timeout=30`, { headers: { authorization: `Bearer ${tok}` }, signal: ac.signal })
      .catch(() => null);
    await waitUntil(async () => val(await scrape(gw), 'rtgate_longpolls_held') === 1, 5000, 'held');
    ac.abort();
    await lp;
    const m = await waitUntil(async () => {
      const x = await scrape(gw);
      return resp(x, '/v1/longpoll', '499') === 1 ? x : null;
    }, 10000, 'the abandoned long-poll to be cleaned up');
    assert.equal(conns(m, 'longpoll'), 0);
  });
});

test('process_* metrics describe this process', async () => {
  await withGateway({}, async (gw) => {
    const pid = gw.proc.pid;
    await sleep(200);
    const m = await scrape(gw);
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const rssKb = Number(status.match(/^VmRSS:\s+(\d+) kB$/m)[1]);
    const rss = val(m, 'process_resident_memory_bytes');
    assert.ok(Math.abs(rss - rssKb * 1024) < 0.25 * rssKb * 1024, `rss ${rss} vs VmRSS ${rssKb} kB`);
    const fds = readdirSync(`/proc/${pid}/fd`).length;
    assert.ok(Math.abs(val(m, 'process_open_fds') - fds) <= 2, `open fds ${val(m, 'process_open_fds')} vs ${fds}`);
    assert.ok(val(m, 'process_max_fds') >= fds);
    assert.ok(Math.abs(val(m, 'process_cpu_seconds_total') - cpuSeconds(pid)) < 0.1, 'cpu seconds');
    const start = val(m, 'process_start_time_seconds');
    assert.ok(Math.abs(start - Date.now() / 1000) < 60, `start time ${start}`);
    assert.ok(val(m, 'process_virtual_memory_bytes') >= rss);
  });
});

test('redis: publish and history round trips are timed; backplane_up and reconnects follow Redis', async () => {
  requireRedis();
  await withCluster({ nodes: 1 }, async ({ redis, nodes: [gw] }) => {
    const tok = gw.token('frank');
    let m = await scrape(gw);
    assert.equal(val(m, 'rtgate_backplane_up'), 1);
    const hist0 = histogram(m, 'rtgate_redis_command_duration_seconds', 'command', 'history').count;
    for (let i = 0; i < 5; i++) await publish(gw, 'room:r', i);
    const p = await http(gw, '/v1/poll?topics=room:r,room:s&since=earliest', { token: tok });
    assert.equal(p.body.messages.length, 5);
    m = await scrape(gw);
    promtool(m.text);
    const pub = histogram(m, 'rtgate_redis_command_duration_seconds', 'command', 'publish');
    assert.equal(pub.count, 5);
    assert.ok(pub.sum > 0 && pub.sum < 5, `publish sum ${pub.sum}`);
    const hist = histogram(m, 'rtgate_redis_command_duration_seconds', 'command', 'history');
    assert.equal(hist.count - hist0, 2, 'one history read per polled topic');
    promtool(m.text);

    await redis.stop();
    await waitFor(async () => val(await scrape(gw), 'rtgate_backplane_up') === 0, 10000, 'backplane down');
    assert.equal((await publish(gw, 'room:r', 'x').catch((e) => e.message)).slice(0, 11), 'publish 503');
    await redis.start();
    m = await waitFor(async () => {
      const x = await scrape(gw);
      return val(x, 'rtgate_backplane_up') === 1 ? x : null;
    }, 15000, 'backplane up again');
    assert.equal(val(m, 'rtgate_backplane_reconnects_total'), 1);
    assert.equal(val(m, 'rtgate_messages_publish_refused_total', { source: 'api' }), 1);
    promtool(m.text);
  });
});
