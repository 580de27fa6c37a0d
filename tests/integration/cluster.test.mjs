// The L4 topology of docker/docker-compose.yml, on loopback: one redis-server, two rtgate nodes on
// the Redis backplane, HAProxy (mode tcp, docker/haproxy.cfg) in front. Clients only ever talk to
// HAProxy. Checked: consecutive connections alternate between the nodes; users on different
// nodes reach each other on every transport; HAProxy's idle timeout leaves heartbeating streams
// alone; a node that is stopped (SIGTERM, with and without shutdown_grace_ms) or killed
// (SIGKILL) loses no message and doubles none for clients that reconnect through HAProxy and
// resume from their cursors, while a publisher keeps publishing through HAProxy.
// Needs redis-server and haproxy (Debian packages redis-server, haproxy).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { startGateway, sleep } from './lib.mjs';
import { requireRedis, startRedis, freePort, waitFor, waitReady, tokenFor } from './redis-lib.mjs';
import {
  requireHaproxy, startHaproxy, request, metrics, landing, wsClient, sseClient, pollClient,
  cursorNow, publisher, assertExactlyOnce,
} from './cluster-lib.mjs';

requireRedis();
requireHaproxy();

const KINDS = ['ws', 'sse', 'longpoll', 'poll'];
const GRACE_MS = 1500;

describe('two nodes behind HAProxy (L4)', () => {
  let redis, lb;
  const ports = [];
  const gws = [];
  const clients = [];
  const startNode = async (i, extra = {}) => {
    gws[i] = await startGateway({
      listen: { address: '127.0.0.1', port: ports[i] },
      backplane: { type: 'redis', url: redis.url },
      sse: { heartbeat_ms: 500, retry_ms: 100 },
      websocket: { ping_interval_s: 1, idle_timeout_s: 10 },
      longpoll: { default_timeout_s: 2, max_timeout_s: 10 },
      shutdown_timeout_ms: 5000,
      ...extra,
    });
    await waitReady(gws[i]);
  };
  const open = (kind, opts) => {
    const c = kind === 'ws' ? wsClient(lb, opts) : kind === 'sse' ? sseClient(lb, opts)
      : pollClient(lb, { ...opts, hold: kind === 'longpoll' });
    clients.push(c);
    return c;
  };
  const stopClients = async () => { for (const c of clients.splice(0)) await c.stop(); };
  const logs = () => gws.map((g, i) => `\n--- node ${i + 1} (${g.url}) ---\n` + g.logs().slice(-2500)).join('')
    + '\n--- haproxy ---\n' + (lb ? lb.logs().slice(-2500) : '');
  // Attaches the logs of every process to a failure.
  const step = (fn) => async () => {
    try { await fn(); } catch (e) { e.message += logs(); throw e; }
  };

  before(async () => {
    redis = await startRedis(0);
    ports.push(await freePort(), await freePort());
    await startNode(0);
    await startNode(1);
    lb = await startHaproxy(ports.map((p) => `127.0.0.1:${p}`));
    await lb.waitServers({ n1: 'UP', n2: 'UP' });
  });

  after(async () => {
    await stopClients();
    const r = lb ? await lb.stop() : null;
    const results = [];
    for (const g of gws) {
      const killed = g.proc.signalCode === 'SIGKILL';
      results.push({ r: await g.stop(), killed });
      if (killed) rmSync(g.dir, { recursive: true, force: true });
    }
    if (redis) await redis.destroy();
    if (r) assert.ok(r.signal === 'SIGTERM' || r.code === 0, `haproxy exit ${JSON.stringify(r)}`);
    for (const [i, { r: x, killed }] of results.entries()) {
      if (!killed) assert.deepEqual({ code: x.code, signal: x.signal }, { code: 0, signal: null }, `node ${i + 1} exit` + logs());
    }
  });

  it('HAProxy health-checks /readyz and serves the demo page', step(async () => {
    assert.deepEqual(await lb.servers(), { n1: 'UP', n2: 'UP' });
    const r = await request(lb.url, '/readyz');
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, { status: 'ready' });
    const page = await request(lb.demoUrl, '/');
    assert.equal(page.status, 200);
    assert.equal(page.headers['content-type'], 'text/html; charset=utf-8');
    assert.match(page.text, /<title>rtgate demo<\/title>/);
    assert.match(page.text, /new WebSocket\(/);
    assert.match(page.text, /new EventSource\(/);
  }));

  it('consecutive connections alternate between the nodes, whatever the transport', step(async () => {
    // Cursors fetched from node 1 directly, so that each client below makes exactly one connection.
    const seen = [];
    const order = ['ws', 'sse', 'longpoll', 'ws', 'sse', 'longpoll', 'ws', 'sse'];
    for (const [i, kind] of order.entries()) {
      const sub = `alt${i}`, topic = `user:${sub}`, token = tokenFor(sub);
      const cursor = kind === 'ws' ? '' : await cursorNow(gws[0].url, token, topic);
      seen.push(await landing(gws, async () => {
        const c = open(kind, { token, topic, cursor, timeoutS: 10 });
        await waitFor(() => c.live, 10000, `${kind} client live`);
      }));
    }
    assert.notEqual(seen[0], seen[1]);
    assert.deepEqual(seen, order.map((_, i) => (i % 2 === 0 ? seen[0] : seen[1])), `nodes per connection: ${seen}`);
    for (const g of gws) assert.equal((await metrics(g)).rtgate_streams, 4);
    await stopClients();
    for (const g of gws) await waitFor(async () => (await metrics(g)).rtgate_streams === 0, 10000, `${g.url} streams 0`);
  }));

  for (const kind of KINDS) {
    it(`users on different nodes reach each other (${kind})`, step(async () => {
      const users = [`${kind}-ann`, `${kind}-bob`];
      const tok = Object.fromEntries(users.map((u) => [u, tokenFor(u)]));
      const cl = {};
      const node = {};
      for (const u of users) {
        const topic = `user:${u}`;
        const cursor = kind === 'ws' ? '' : await cursorNow(gws[0].url, tok[u], topic);
        if (kind === 'poll') {
          cl[u] = open(kind, { token: tok[u], topic, cursor, intervalMs: 30 });
        } else {
          node[u] = await landing(gws, async () => {
            cl[u] = open(kind, { token: tok[u], topic, cursor, timeoutS: 10 });
            await waitFor(() => cl[u].live, 10000, `${u} live`);
          });
        }
      }
      if (kind === 'poll') {
        // Each poll is a new connection: both nodes answer them.
        const counts = async () => Promise.all(gws.map(async (g) => (await metrics(g)).rtgate_poll_requests_total));
        const c0 = await counts();
        await waitFor(async () => (await counts()).every((n, i) => n >= c0[i] + 3), 10000, 'polls answered by both nodes');
      } else {
        assert.notEqual(node[users[0]], node[users[1]], `${users} on nodes ${JSON.stringify(node)}`);
      }
      const N = 5;
      const sent = { [users[0]]: [], [users[1]]: [] };
      for (let i = 0; i < N; i++) {
        for (const [from, to] of [users, [...users].reverse()]) {
          let ack;
          if (kind === 'ws') {
            ack = await cl[from].request({ type: 'send', to, data: { text: `${from}->${to} ${i}` } });
            assert.equal(ack.type, 'ack', JSON.stringify(ack));
          } else {
            const r = await request(lb.url, '/v1/messages', { method: 'POST', token: tok[from], body: { to, data: { text: `${from}->${to} ${i}` } } });
            assert.equal(r.status, 200, r.text);
            ack = r.body;
          }
          assert.equal(ack.topic, `user:${to}`);
          sent[to].push(ack.id);
        }
      }
      for (const [me, other] of [users, [...users].reverse()]) {
        await waitFor(() => cl[me].received.length >= N, 10000, `${me} receives ${N}`);
        await sleep(100); // nothing more may come
        assert.deepEqual(cl[me].received.map((m) => ({ id: m.id, topic: m.topic, from: m.from, data: m.data })),
          sent[me].map((id, i) => ({ id, topic: `user:${me}`, from: other, data: { text: `${other}->${me} ${i}` } })));
        assert.deepEqual(cl[me].resets, []);
        if (kind === 'ws' || kind === 'sse') assert.deepEqual([cl[me].connects, cl[me].closes], [1, []]);
      }
      await stopClients();
    }));
  }

  // Why docker/haproxy.cfg's timeouts must be longer than every transport's silence: with a
  // 2.5 s idle timeout, SSE (a heartbeat every 0.5 s) and WebSocket (a ping after 1 s) stay
  // open, a long-poll held 1 s is answered, and one held 5 s is cut by HAProxy unanswered.
  it('HAProxy idle timeout: heartbeats keep streams open, a longer long-poll is cut', step(async () => {
    const lb2 = await startHaproxy(ports.map((p) => `127.0.0.1:${p}`), { idleTimeout: '2500ms' });
    const token = tokenFor('idle'), topic = 'user:idle';
    const cursor = await cursorNow(gws[0].url, token, topic);
    const ws = wsClient(lb2, { token, topic });
    const sse = sseClient(lb2, { token, topic, cursor });
    try {
      await lb2.waitServers({ n1: 'UP', n2: 'UP' });
      await waitFor(() => ws.live && sse.live, 10000, 'ws and sse live through the second HAProxy');
      const t0 = Date.now();
      const q = `/v1/longpoll?topics=${topic}&cursor=${cursor}`;
      const short = await request(lb2.url, `${q}&timeout=1`, { token });
      assert.equal(short.status, 200, short.text);
      assert.deepEqual(short.body.messages, []);
      const t1 = Date.now();
      const long = await request(lb2.url, `${q}&timeout=5`, { token }).then((r) => ({ status: r.status }), (e) => ({ error: e.message }));
      const held = Date.now() - t1;
      assert.deepEqual(long, { error: 'socket hang up' });
      assert.ok(held >= 2300 && held < 4500, `long-poll cut after ${held} ms`);
      await sleep(Math.max(0, 6000 - (Date.now() - t0))); // well over two idle timeouts
      assert.deepEqual([ws.connects, ws.closes, ws.live], [1, [], true], 'WebSocket stayed open');
      assert.deepEqual([sse.connects, sse.closes, sse.live], [1, [], true], 'SSE stream stayed open');
      const r = await request(lb2.url, '/v1/messages', { method: 'POST', token, body: { to: 'idle', data: 'still here' } });
      assert.equal(r.status, 200, r.text);
      await waitFor(() => ws.received.length === 1 && sse.received.length === 1, 5000, 'the message on both streams');
      assert.deepEqual([ws.received[0].id, sse.received[0].id], [r.body.id, r.body.id]);
    } catch (e) {
      e.message += '\n--- second haproxy ---\n' + lb2.logs().slice(-2000);
      throw e;
    } finally {
      await ws.stop();
      await sse.stop();
      await lb2.stop();
    }
  }));

  // Subscribers on every transport, spread over both nodes, on one room; a publisher publishes
  // through HAProxy all along; then node `victim` is stopped with `signal`.
  const failover = async (victim, signal, { grace = false } = {}) => {
    const survivor = 1 - victim;
    const topic = `room:failover-${signal}`;
    // The streaming clients first, one at a time, to see where each lands (one of each kind on
    // each node); then the pollers.
    const subs = [];
    for (const kind of ['ws', 'ws', 'sse', 'sse', 'longpoll', 'longpoll', 'poll', 'poll']) {
      const sub = `${signal}-${kind}-${subs.length}`, token = tokenFor(sub);
      // (from a node directly: a cursor is valid on every node, and HAProxy's rotation stays as it is)
      const cursor = kind === 'ws' ? '' : await cursorNow(gws[survivor].url, token, topic);
      if (kind === 'ws' || kind === 'sse') {
        let c;
        const node = await landing(gws, async () => {
          c = open(kind, { token, topic, cursor });
          await waitFor(() => c.live, 10000, `${sub} live`);
        });
        c.node = node;
        subs.push(c);
      } else {
        subs.push(open(kind, { token, topic, cursor, timeoutS: 2, intervalMs: 30 }));
      }
    }
    const streaming = subs.filter((c) => c.kind === 'ws' || c.kind === 'sse');
    assert.deepEqual(streaming.map((c) => c.node), [0, 1, 0, 1].map((i) => (i + streaming[0].node) % 2), 'streaming clients alternate');

    const pub = publisher(lb, topic, { intervalMs: 5 });
    try {
      return await switchOver(victim, signal, subs, streaming, pub, grace);
    } finally {
      await pub.stop();
      await stopClients();
    }
  };

  const switchOver = async (victim, signal, subs, streaming, pub, grace) => {
    const survivor = 1 - victim;
    await pub.waitFor(30);
    const t0 = Date.now();
    const closesBefore = new Map(streaming.map((c) => [c, c.closes.length]));
    if (signal === 'SIGKILL') {
      gws[victim].proc.kill('SIGKILL');
      const r = await gws[victim].exited;
      assert.equal(r.signal, 'SIGKILL');
    } else {
      const r = await gws[victim].stop('SIGTERM');
      assert.deepEqual({ code: r.code, signal: r.signal }, { code: 0, signal: null }, 'exit after SIGTERM');
    }
    const tExit = Date.now() - t0;
    await lb.waitServers({ [`n${victim + 1}`]: 'DOWN', [`n${survivor + 1}`]: 'UP' });
    // Every streaming client that was on the victim saw its connection end (the others did not),
    // and came back through HAProxy: all of them are on the survivor now.
    for (const [i, c] of streaming.entries()) {
      const closes = c.closes.slice(closesBefore.get(c));
      if (c.node === survivor) {
        assert.deepEqual(closes, [], `${c.kind} client ${i} on the surviving node was cut`);
      } else {
        await waitFor(() => c.closes.length > closesBefore.get(c), 10000, `${c.kind} client ${i} on the stopped node sees its end`);
        if (c.kind === 'ws') {
          const codes = c.closes.slice(closesBefore.get(c)).map((x) => x.code);
          if (signal === 'SIGKILL') assert.deepEqual(codes, [1006], 'WebSocket close codes after SIGKILL');
          else assert.ok(codes.every((x) => x === 1001 || x === 1012), `WebSocket close codes after SIGTERM: ${codes}`);
        } else if (signal === 'SIGTERM') {
          assert.ok(c.closes.slice(closesBefore.get(c)).every((x) => x.complete), 'SSE streams end cleanly on SIGTERM');
        }
      }
    }
    await waitFor(() => streaming.every((c) => c.live), 15000, 'every streaming client live again');
    let m;
    await waitFor(async () => {
      m = await metrics(gws[survivor]);
      return m.rtgate_streams - m.rtgate_longpolls_held === streaming.length;
    }, 10000, `${streaming.length} WebSocket and SSE streams on the survivor`);
    const n0 = pub.accepted.length;
    await pub.waitFor(n0 + 30);
    await pub.stop();
    const last = pub.accepted[pub.accepted.length - 1].id;
    await waitFor(() => subs.every((c) => c.received.some((m) => m.id === last)), 20000, 'every subscriber has the last message');
    await sleep(300); // a duplicate would arrive now
    for (const c of subs) assertExactlyOnce(c, pub, `${c.kind} client ${subs.indexOf(c)}`);
    assert.deepEqual(pub.accepted.map((a) => a.seq), pub.accepted.map((_, i) => i), 'every seq accepted once');
    const report = {
      signal, grace, published: pub.accepted.length, refused503: pub.refused.filter((r) => r.status === 503).length,
      refusedOther: pub.refused.filter((r) => r.status !== 503).length, unknownOutcome: pub.unknown.length,
      extraDelivered: subs.map((c) => c.received.length - pub.accepted.length), exitMs: tExit,
      reconnects: Object.fromEntries(subs.map((c, i) => [`${c.kind}${i}`, c.retries.length])),
      clientRefusals: subs.reduce((n, c) => n + c.refused.length + c.errors.filter((e) => /Unexpected server response/.test(e)).length, 0),
    };
    console.log(JSON.stringify(report));
    assert.ok(pub.refused.every((r) => r.status === 503), `publish refusals: ${JSON.stringify(pub.refused.slice(0, 5))}`);
    if (grace) {
      // HAProxy took the node out during the grace period: nobody was refused.
      assert.deepEqual(pub.refused, [], 'publishes refused although the node had a grace period');
      for (const c of subs) {
        assert.deepEqual([c.refused, c.errors.filter((e) => /Unexpected server response/.test(e))], [[], []], `${c.kind} client refused`);
      }
    }
    // Every poll client was answered after the switch too (it kept polling, no reset).
    for (const c of subs.filter((x) => x.kind === 'poll' || x.kind === 'longpoll')) assert.ok(c.answers > 0);
    return report;
  };

  // Without shutdown_grace_ms (the default), the node refuses new requests (503) at once, while
  // HAProxy still sends it some until its health check fails: clients and the publisher retry.
  it('SIGTERM: clients move to the other node and resume, no loss, no duplicates', step(async () => {
    try {
      await failover(0, 'SIGTERM');
    } finally {
      // Node 1 comes back on its port, with a grace period longer than HAProxy needs to see
      // /readyz fail (inter 200 ms x fall 2); HAProxy takes it in again.
      if (gws[0].proc.exitCode === null && gws[0].proc.signalCode === null) await gws[0].stop();
      await startNode(0, { shutdown_grace_ms: GRACE_MS });
      await lb.waitServers({ n1: 'UP', n2: 'UP' });
    }
  }));

  it('SIGTERM with shutdown_grace_ms: HAProxy takes the node out first, nobody is refused', step(async () => {
    try {
      await failover(0, 'SIGTERM', { grace: true });
    } finally {
      if (gws[0].proc.exitCode === null && gws[0].proc.signalCode === null) await gws[0].stop();
      await startNode(0);
      await lb.waitServers({ n1: 'UP', n2: 'UP' });
    }
  }));

  it('SIGKILL: clients detect the drop, move to the other node and resume, no loss, no duplicates', step(async () => {
    await failover(1, 'SIGKILL');
  }));
});
